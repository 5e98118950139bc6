// The reference caching runner (examples/cache-runner) sharing its entries
// through the Turborepo remote-cache HTTP API, against the open-source server
// from npm (`turborepo-remote-cache`) run as a real process on loopback with
// local storage: a build stored from one checkout is a hit in a second
// checkout at another path, no plaintext secret reaches the server, and a
// remote that refuses the runner never fails the task.

import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { entryMembers, root, run, sha256, type Run } from './helpers.js';
import { startRemoteServer, type RemoteServer } from './remote-server.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');

const TOKEN = 'remote-cache-test-token';
const TEAM = 'runner-aware-ci';
const SECRET = 'never-upload-this-secret-value-7f3a';

// The app: reads its input, writes dist/out.txt, reads SECRET_TOKEN (handed
// to it through --env) without printing it.
const build = `
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
const input = readFileSync('src/input.txt', 'utf8').trim();
if (!process.env.SECRET_TOKEN) throw new Error('no SECRET_TOKEN');
mkdirSync('dist', { recursive: true });
writeFileSync('dist/out.txt', 'built from ' + input + '\\n');
console.log('built');
`;

let work = '';
let storage = '';
let server: RemoteServer | undefined;
let url = '';

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ra-remote-cache-'));
  storage = join(work, 'storage');
  server = await startRemoteServer({ storage, tmp: join(work, 'server-tmp'), token: TOKEN });
  url = server.url;
}, 30_000);

afterAll(async () => {
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh checkout of the app at `dir`, with an empty local cache. */
function checkout(dir: string, input = 'version 1'): string {
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'build.mjs'), build);
  writeFileSync(join(dir, 'src', 'input.txt'), `${input}\n`);
  return dir;
}

/** The runner in `app` on the app's build, with `args` before `--` and an env of PATH, TMPDIR and `env` only. */
function cacheRun(app: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return run(process.execPath, [runner, '--input', 'src/**', '--output', 'dist/**', '--env', 'SECRET_TOKEN', ...args, '--', process.execPath, 'build.mjs'], {
    cwd: app,
    env: { PATH: process.env['PATH'] ?? '', TMPDIR: tmpdir(), SECRET_TOKEN: SECRET, ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }), ...env },
  });
}

function status(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] ?? '';
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = join(dir, name);
    return statSync(file).isDirectory() ? filesUnder(file) : [file];
  });
}

/**
 * What the server stored, as bytes and decoded: each artifact raw, and an
 * entry's archive unpacked member by member, so a secret cannot hide behind
 * the compression.
 */
function storedBytes(): Buffer {
  const parts: Buffer[] = [];
  for (const file of filesUnder(storage)) {
    const raw = readFileSync(file);
    parts.push(raw);
    // zstd's magic number: an entry's archive.
    if (raw.readUInt32LE(0) !== 0xfd2fb528) continue;
    for (const member of entryMembers(file)) parts.push(member.data);
  }
  return Buffer.concat(parts);
}

describe('reference caching runner: a remote cache', () => {
  const remote = (): string[] => ['--remote', url, '--team', TEAM, '--token', TOKEN];

  it('shares a build between two checkouts at different paths, and keys on their inputs', async () => {
    const a = checkout(join(work, 'a', 'app'));
    const first = await cacheRun(a, remote());
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('built\n');
    expect(status(first)).toBe('cache miss: no entry');
    expect(first.stderr).not.toContain('remote cache');
    expect(readdirSync(join(storage, TEAM)).length, 'an entry and the task index were uploaded').toBe(2);

    // Another checkout, deeper and elsewhere, with no local cache; the settings through TURBO_* this time.
    const b = checkout(join(work, 'b', 'elsewhere', 'app'));
    const turbo = { TURBO_API: url, TURBO_TEAM: TEAM, TURBO_TOKEN: TOKEN };
    const second = await cacheRun(b, [], turbo);
    expect(second.code, second.stderr).toBe(0);
    expect(status(second)).toBe('cache hit');
    expect(second.stdout, 'the stored stdout is replayed').toBe('built\n');
    expect(readFileSync(join(b, 'dist', 'out.txt'), 'utf8')).toBe('built from version 1\n');
    expect(status(await cacheRun(b, [], turbo)), 'the hit populated the local cache').toBe('cache hit');

    writeFileSync(join(b, 'src', 'input.txt'), 'version 2\n');
    const changed = await cacheRun(b, [], turbo);
    expect(changed.code, changed.stderr).toBe(0);
    expect(status(changed)).toBe('cache miss: input src/input.txt changed');
    expect(readFileSync(join(b, 'dist', 'out.txt'), 'utf8')).toBe('built from version 2\n');

    // Checkout A, with its local cache cleared, gets B's build of version 2 from the remote.
    writeFileSync(join(a, 'src', 'input.txt'), 'version 2\n');
    rmSync(join(a, 'node_modules'), { recursive: true });
    rmSync(join(a, 'dist'), { recursive: true });
    const back = await cacheRun(a, remote());
    expect(status(back)).toBe('cache hit');
    expect(readFileSync(join(a, 'dist', 'out.txt'), 'utf8')).toBe('built from version 2\n');

    // A remote entry whose env no longer holds explains the miss.
    const other = checkout(join(work, 'c', 'app'), 'version 2');
    expect(status(await cacheRun(other, remote(), { SECRET_TOKEN: 'another value' }))).toBe('cache miss: env SECRET_TOKEN changed');
  });

  it('uploads no plaintext secret and no checkout path', async () => {
    const stored = storedBytes();
    expect(stored.length).toBeGreaterThan(0);
    // What the entries must hold, so the search below is not vacuous.
    expect(stored.includes('built from version 1\n'), 'the archived output').toBe(true);
    expect(stored.includes(sha256(SECRET)), 'the secret as a digest in the key').toBe(true);
    expect(stored.includes(SECRET), 'the secret in plaintext').toBe(false);
    expect(stored.includes(work), 'a checkout path').toBe(false);
  });

  it('goes on locally and warns once when the remote refuses the token', async () => {
    const app = checkout(join(work, 'wrong-token', 'app'), 'version 3');
    const before = filesUnder(storage).length;
    const result = await cacheRun(app, ['--remote', url, '--team', TEAM, '--token', 'wrong-token'], { TURBO_TOKEN: TOKEN });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('built\n');
    expect(status(result)).toBe('cache miss: no entry');
    const warnings = result.stderr.split('\n').filter((line) => line.startsWith('cache-runner: remote cache unavailable: '));
    expect(warnings, result.stderr).toHaveLength(1);
    expect(warnings[0]).toContain('401');
    expect(warnings[0]).toContain('the token or team is wrong');
    expect(result.stderr).not.toContain('wrong-token');
    expect(filesUnder(storage).length, 'nothing was uploaded').toBe(before);
    expect(status(await cacheRun(app, ['--remote', url, '--token', 'wrong-token'])), 'the local cache still works').toBe('cache hit');
  });

  it('goes on locally when no server listens, or no token is set', async () => {
    const app = checkout(join(work, 'offline', 'app'), 'version 4');
    // A port that was just free: nothing listens there.
    const closed = `http://127.0.0.1:${await freePort()}`;
    const result = await cacheRun(app, ['--remote', closed, '--team', TEAM, '--token', TOKEN]);
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toBe('cache miss: no entry');
    expect(result.stderr).toMatch(/^cache-runner: remote cache unavailable: GET http:\/\/127\.0\.0\.1:\d+: .*; going on with the local cache$/m);
    expect(result.stderr.match(/remote cache unavailable/g), 'warned once').toHaveLength(1);

    const noToken = await cacheRun(app, [], { TURBO_API: url, TURBO_TEAM: TEAM });
    expect(status(noToken)).toBe('cache hit');
    expect(noToken.stderr).toContain('cache-runner: remote cache off: no token (--token or TURBO_TOKEN)\n');

    const bad = await cacheRun(app, ['--remote', 'not a url', '--token', TOKEN]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^cache-runner: --remote not a URL: not a url\nusage: cache-runner /);
  });
});

/** A loopback port nothing listens on right now. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}
