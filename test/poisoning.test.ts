// Poisoning the reference caching runner's remote cache, as any holder of a
// team token can: the runner (examples/cache-runner) against the real npm
// `turborepo-remote-cache` server on loopback, whose artifacts the test reads,
// forges and re-PUTs with plain HTTP. A forged index line or archive must
// never write outside the checkout, never restore bytes its manifest does not
// name, never hit without inputs, never blow up the runner, never make it read
// its own process' memory or environment, and, with a signing key, never be
// trusted unsigned. The runner's secrets (token, signing key, URL password)
// stay the runner's.
//
// Each attack is made complete (ids recomputed, archives consistent with
// their forged manifest) so that only the defence under test stands between
// it and a hit; a control forgery that stays inside the checkout shows the
// forgeries are otherwise well-formed.

import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { entryMembers, root, run, type Run } from './helpers.js';
import { startRemoteServer, type RemoteServer } from './remote-server.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;

const TOKEN = 'poisoning-test-token';
const SECRET = 'runner-secret-value-3b9e1c';
const RUNNER_ONLY = 'runner-only-secret-5d20aa';
const GENUINE = 'built from version 1\n';
const KEY1 = 'signing-key-one-4f2a';
const KEY2 = 'signing-key-two-8b1c';

// The app: reads its input, writes dist/out.txt.
const build = `
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
const input = readFileSync('src/input.txt', 'utf8').trim();
mkdirSync('dist', { recursive: true });
writeFileSync('dist/out.txt', 'built from ' + input + '\\n');
console.log('built');
`;

interface Server {
  url: string;
  storage: string;
  child: ChildProcess;
}

interface FileOutput {
  type: 'file';
  path: string;
  mode: number;
  size: number;
  sha256: string;
}
type Output = FileOutput | { type: 'symlink'; path: string; target: string } | { type: 'dir'; path: string };

interface Manifest {
  format: string;
  id: string;
  key: { task: string; inputs: Record<string, { kind: string; fingerprint: string }>; env: unknown };
  outputs: Output[];
  stdout: { size: number; sha256: string };
  stderr: { size: number; sha256: string };
  createdAt: number;
  overruled?: string[];
}

let work = '';
const servers: RemoteServer[] = [];
let plain: Server;
// What a genuine run uploaded: the task's index hash, its manifest, and what it printed.
let indexHash = '';
let genuine: Manifest;
let genuineStdout: Buffer = Buffer.alloc(0);
let genuineStderr: Buffer = Buffer.alloc(0);

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** The entry id of `key`, as the core computes it: inputs sorted by path (a BTreeMap in the core). */
function entryId(key: Manifest['key']): string {
  const inputs = Object.fromEntries(Object.entries(key.inputs).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  return sha256(`runner-aware-entry/1\0${JSON.stringify({ task: key.task, inputs, env: key.env })}`);
}

/** Starts a turborepo-remote-cache server on a free loopback port, with `extra` in its env. */
async function startServer(name: string, extra: Record<string, string> = {}): Promise<Server> {
  const storage = join(work, `storage-${name}`);
  const server = await startRemoteServer({ storage, tmp: join(work, `server-tmp-${name}`), token: TOKEN, env: extra });
  servers.push(server);
  return { url: server.url, storage, child: server.child };
}

/** A fresh checkout of the app at `<work>/<name>/app`, with no local cache. */
function checkout(name: string): string {
  const dir = join(work, name, 'app');
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'build.mjs'), build);
  writeFileSync(join(dir, 'src', 'input.txt'), 'version 1\n');
  return dir;
}

/** The runner in `app` on the app's build against `server` as `team`; its env is PATH, TMPDIR, the secrets and `env`. */
function cacheRun(app: string, server: Server, team: string, env: Record<string, string> = {}, args: string[] = []): Promise<Run> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return run(
    process.execPath,
    [runner, '--input', 'src/**', '--output', 'dist/**', '--env', 'SECRET_TOKEN', '--remote', server.url, '--team', team, ...args, '--', process.execPath, 'build.mjs'],
    {
      cwd: app,
      env: {
        PATH: process.env['PATH'] ?? '',
        TMPDIR: tmpdir(),
        SECRET_TOKEN: SECRET,
        RUNNER_ONLY_SECRET: RUNNER_ONLY,
        TURBO_TOKEN: TOKEN,
        ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }),
        ...env,
      },
    },
  );
}

function status(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] ?? '';
}

/** The artifacts a server holds for `team`: hash → bytes (tags apart). */
function artifacts(server: Server, team: string): Map<string, Buffer> {
  const dir = join(server.storage, team);
  return new Map(readdirSync(dir).filter((name) => !name.endsWith('.tag')).map((name) => [name, readFileSync(join(dir, name))]));
}

/** `x-artifact-tag` of `body` under `hash` for `team`, as Turborepo signs: HMAC-SHA256 of `{"hash","teamId"}` then the body. */
function artifactTag(key: string, hash: string, team: string, body: Buffer): string {
  return createHmac('sha256', key).update(JSON.stringify({ hash, teamId: team })).update(body).digest('base64');
}

/** PUTs an artifact as any holder of the team's token can; with `tag`, as `x-artifact-tag`. */
async function put(server: Server, team: string, hash: string, body: Buffer, tag?: string): Promise<void> {
  const response = await fetch(`${server.url}/v8/artifacts/${hash}?slug=${encodeURIComponent(team)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', ...(tag === undefined ? {} : { 'x-artifact-tag': tag }) },
    body: new Uint8Array(body),
  });
  expect(response.status, await response.text()).toBe(200);
}

function indexBody(entries: Manifest[]): Buffer {
  return Buffer.from(JSON.stringify({ format: 'runner-aware-index/1', entries }));
}

/** Puts `lines` as the task's index and each archive under its hash; with `key`, tagged with it. */
async function plant(server: Server, team: string, lines: Manifest[], archives: Record<string, Buffer>, key?: string): Promise<void> {
  for (const [hash, body] of Object.entries(archives)) await put(server, team, hash, body, key === undefined ? undefined : artifactTag(key, hash, team, body));
  const index = indexBody(lines);
  await put(server, team, indexHash, index, key === undefined ? undefined : artifactTag(key, indexHash, team, index));
}

// --- forging archives ---------------------------------------------------------

interface Member {
  name: string;
  data?: Buffer;
  /** `0` file, `2` link, `5` directory. */
  type?: string;
  mode?: number;
  link?: string;
}

function octal(header: Buffer, value: number, at: number, length: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, at, length, 'latin1');
}

/** A 512-byte ustar header. */
function tarHeader(name: string, size: number, type: string, mode: number, link = ''): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  octal(header, mode, 100, 8);
  octal(header, 0, 108, 8);
  octal(header, 0, 116, 8);
  octal(header, size, 124, 12);
  octal(header, 0, 136, 12);
  header.fill(' ', 148, 156);
  header.write(type, 156, 1, 'latin1');
  header.write(link, 157, 100, 'utf8');
  header.write('ustar\0', 257, 6, 'latin1');
  header.write('00', 263, 2, 'latin1');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return header;
}

function padded(data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return pad === 0 ? [data] : [data, Buffer.alloc(pad)];
}

/** A tar of `members` (a name over 100 bytes as a GNU long name), compressed with the zstd CLI; `trailer` follows tar's end. */
function archive(members: Member[], trailer: Buffer = Buffer.alloc(0)): Buffer {
  const parts: Buffer[] = [];
  for (const member of members) {
    const data = member.data ?? Buffer.alloc(0);
    let name = member.name;
    if (Buffer.byteLength(name) > 100) {
      const long = Buffer.from(`${name}\0`);
      parts.push(tarHeader('././@LongLink', long.length, 'L', 0o644), ...padded(long));
      name = name.slice(0, 100);
    }
    parts.push(tarHeader(name, data.length, member.type ?? '0', member.mode ?? 0o644, member.link), ...padded(data));
  }
  parts.push(Buffer.alloc(1024), trailer);
  return execFileSync('zstd', ['-q', '-c'], { input: Buffer.concat(parts), maxBuffer: 1 << 30 });
}

/** The members of an archive of `manifest`: its stdout and stderr the genuine run's, each file output's bytes from `files`. */
function entryMembersOf(manifest: Manifest, files: Record<string, Buffer>): Member[] {
  return [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
    { name: 'stdout', data: genuineStdout },
    { name: 'stderr', data: genuineStderr },
    ...manifest.outputs.map((output): Member => {
      const name = `outputs/${output.path}`;
      if (output.type === 'dir') return { name, type: '5', mode: 0o755 };
      if (output.type === 'symlink') return { name, type: '2', mode: 0o777, link: output.target };
      const data = files[output.path];
      if (!data) throw new Error(`no bytes for ${output.path}`);
      return { name, data, mode: output.mode };
    }),
  ];
}

/** A file output record of `bytes`. */
function fileOutput(path: string, bytes: Buffer): FileOutput {
  return { type: 'file', path, mode: 0o644, size: bytes.length, sha256: sha256(bytes) };
}

/**
 * The genuine manifest with `outputs` in place of its own. Its id still holds,
 * since outputs are not in the key: its inputs and env hold in any clean
 * checkout, so only the checks on what it restores can refuse it.
 */
function withOutputs(outputs: Output[]): Manifest {
  const manifest = clone(genuine);
  manifest.outputs = outputs;
  return manifest;
}

/** A sentinel outside every checkout: `<work>/<name>/victim/x`. */
function sentinel(name: string): string {
  const dir = join(work, name, 'victim');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'x'), 'original\n');
  return dir;
}

function expectUntouched(dir: string): void {
  expect(readdirSync(dir), 'nothing was added beside the sentinel').toEqual(['x']);
  expect(readFileSync(join(dir, 'x'), 'utf8')).toBe('original\n');
}

/** A run that missed, built, and left the genuine output in `app`. */
function expectBuilt(result: Run, app: string): void {
  expect(result.code, result.stderr).toBe(0);
  expect(status(result)).toMatch(/^cache miss: /);
  expect(result.stdout, 'the build ran').toBe('built\n');
  expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe(GENUINE);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ra-poisoning-'));
  plain = await startServer('plain');
  // A genuine run uploads the task's index and its entry.
  const seed = checkout('seed');
  const first = await cacheRun(seed, plain, 'seed');
  expect(first.code, first.stderr).toBe(0);
  expect(status(first)).toBe('cache miss: no entry');
  const stored = artifacts(plain, 'seed');
  expect(stored.size, 'an index and an entry').toBe(2);
  for (const [hash, body] of stored) {
    if (body[0] === '{'.charCodeAt(0)) {
      indexHash = hash;
      const index = JSON.parse(body.toString('utf8')) as { format: string; entries: Manifest[] };
      expect(index.format).toBe('runner-aware-index/1');
      expect(index.entries).toHaveLength(1);
      genuine = index.entries[0] as Manifest;
    }
  }
  expect(indexHash).not.toBe('');
  expect(entryId(genuine.key), 'the test computes ids as the core does').toBe(genuine.id);
  const file = join(work, 'genuine.tar.zst');
  writeFileSync(file, stored.get(genuine.id) ?? Buffer.alloc(0));
  const members = entryMembers(file);
  genuineStdout = members.find((m) => m.name === 'stdout')?.data ?? Buffer.alloc(0);
  genuineStderr = members.find((m) => m.name === 'stderr')?.data ?? Buffer.alloc(0);
  expect(genuine.outputs.map((output) => output.path)).toEqual(['dist', 'dist/out.txt']);
}, 60_000);

afterAll(async () => {
  for (const server of servers) await server.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('poisoning the reference runner through its remote cache', () => {
  it('restores a well-formed forgery inside the checkout when unsigned (the control for what follows)', async () => {
    // Without a signing key the team's token holders are trusted with what an
    // entry holds inside the checkout: that is what signing is for. This shows
    // the forgeries below pass every check but the one each test is about.
    const poison = Buffer.from('poisoned in the checkout\n');
    const forged = withOutputs([fileOutput('dist/out.txt', poison)]);
    await plant(plain, 'control', [forged], { [forged.id]: archive(entryMembersOf(forged, { 'dist/out.txt': poison })) });
    const app = checkout('control');
    const result = await cacheRun(app, plain, 'control');
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toBe('cache hit');
    expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe(poison.toString());
  });

  it('refuses outputs outside the checkout, and writes nothing there', async () => {
    const poison = Buffer.from('pwned\n');
    const cases: { name: string; outputs: (victim: string) => Output[] }[] = [
      { name: 'dotdot', outputs: () => [fileOutput('../victim/x', poison)] },
      { name: 'inner-dotdot', outputs: () => [fileOutput('dist/../../victim/x', poison)] },
      { name: 'absolute', outputs: (victim) => [fileOutput(join(victim, 'x'), poison)] },
      // A link leading out, then a file through it.
      { name: 'link', outputs: () => [{ type: 'symlink', path: 'out', target: '../victim' }, fileOutput('out/x', poison)] },
    ];
    for (const { name, outputs } of cases) {
      const victim = sentinel(`out-${name}`);
      const forged = withOutputs(outputs(victim));
      const files = Object.fromEntries(forged.outputs.filter((o) => o.type === 'file').map((o) => [o.path, poison]));
      await plant(plain, `out-${name}`, [forged], { [forged.id]: archive(entryMembersOf(forged, files)) });
      const app = checkout(`out-${name}`);
      const result = await cacheRun(app, plain, `out-${name}`);
      expectBuilt(result, app);
      expect(result.stderr, name).toContain('cache-runner: a remote index line was refused: malformed cache entry: the path');
      expectUntouched(victim);
      expect(existsSync(join(app, 'out')), name).toBe(false);
    }
  }, 180_000);

  it('never hits an entry that rests on no input', async () => {
    const poison = Buffer.from('pwned by an entry resting on nothing\n');
    const forged = withOutputs([fileOutput('dist/out.txt', poison)]);
    forged.key.inputs = {};
    forged.id = entryId(forged.key);
    await plant(plain, 'no-inputs', [forged], { [forged.id]: archive(entryMembersOf(forged, { 'dist/out.txt': poison })) });
    const app = checkout('no-inputs');
    const result = await cacheRun(app, plain, 'no-inputs');
    expectBuilt(result, app);
    expect(status(result)).toBe('cache miss: no entry');
    expect(result.stderr).toContain('a remote index line was refused: malformed cache entry: the entry rests on no input');
  });

  it('refuses an artifact that is not the entry its index line names', async () => {
    const other = Buffer.from('built from version X\n');
    expect(other.length, 'same size: only the digest tells them apart').toBe(Buffer.byteLength(GENUINE));
    const cases: { name: string; body: Buffer; why: string }[] = [
      // The genuine manifest, other bytes for its output.
      { name: 'bytes', body: archive(entryMembersOf(genuine, { 'dist/out.txt': other })), why: 'outputs/dist/out.txt does not match its digest' },
      // A complete, consistent archive of another entry, under the id the line names.
      {
        name: 'manifest',
        body: (() => {
          const forged = withOutputs([fileOutput('dist/out.txt', other)]);
          return archive(entryMembersOf(forged, { 'dist/out.txt': other }));
        })(),
        why: "the archive's manifest is not the one that was looked up",
      },
      // Another output member in place of the one named.
      {
        name: 'member',
        body: archive([...entryMembersOf(genuine, { 'dist/out.txt': Buffer.from(GENUINE) }).slice(0, 3), { name: 'outputs/dist/other.txt', data: Buffer.from(GENUINE) }]),
        why: 'the archive holds "outputs/dist/other.txt" where its manifest names "outputs/dist"',
      },
    ];
    for (const { name, body, why } of cases) {
      await plant(plain, `disagree-${name}`, [genuine], { [genuine.id]: body });
      const app = checkout(`disagree-${name}`);
      const result = await cacheRun(app, plain, `disagree-${name}`);
      expectBuilt(result, app);
      expect(result.stderr, name).toContain(`cache-runner: remote entry ${genuine.id} refused: malformed cache entry: ${why}`);
    }
  }, 120_000);

  it('refuses an archive that decompresses to far more than its manifest says', async () => {
    const bomb = Buffer.alloc(64 << 20);
    const one = Buffer.from('x');
    const small = withOutputs([fileOutput('dist/out.txt', one)]);
    const [manifest, stdout, stderr] = entryMembersOf(small, { 'dist/out.txt': one });
    const cases: { name: string; body: Buffer; why: string }[] = [
      // 64 MiB of zeros as the output the manifest says is 1 byte.
      { name: 'output', body: archive([manifest!, stdout!, stderr!, { name: 'outputs/dist/out.txt', data: bomb }]), why: 'outputs/dist/out.txt is not the file the manifest names' },
      // 64 MiB of zeros as the stdout it says is a few bytes.
      {
        name: 'stdout',
        body: archive([manifest!, { name: 'stdout', data: bomb }, stderr!, { name: 'outputs/dist/out.txt', data: one }]),
        why: `stdout of ${bomb.length} bytes exceeds the ${genuineStdout.length}-byte limit`,
      },
      // 64 MiB of zeros and a byte after tar's end.
      {
        name: 'trailer',
        body: archive(entryMembersOf(small, { 'dist/out.txt': one }), Buffer.concat([bomb, Buffer.from('!')])),
        why: 'the archive holds data after its end',
      },
    ];
    for (const { name, body, why } of cases) {
      expect(body.length, 'a small download').toBeLessThan(1 << 20);
      await plant(plain, `bomb-${name}`, [small], { [small.id]: body });
      const app = checkout(`bomb-${name}`);
      const started = Date.now();
      const result = await cacheRun(app, plain, `bomb-${name}`);
      expectBuilt(result, app);
      expect(result.stderr, name).toContain(`cache-runner: remote entry ${small.id} refused: malformed cache entry: ${why}`);
      expect(Date.now() - started, name).toBeLessThan(30_000);
    }
  }, 150_000);

  it('never reads its own memory or environment for an input a remote line names', async () => {
    const forged = clone(genuine);
    const fake = { kind: 'content', fingerprint: sha256('whatever the attacker guesses') };
    for (const path of [
      '/proc/self/environ',
      '/proc/self/mem',
      // Sequential reads of it never end: a hang if it were hashed.
      '/proc/self/pagemap',
      // Into /proc by a relative climb, and through a link.
      '../../../../../../../../../../proc/self/environ',
      ...(existsSync('/etc/mtab') ? ['/etc/mtab'] : []),
    ]) {
      forged.key.inputs[path] = fake;
    }
    forged.id = entryId(forged.key);
    await plant(plain, 'pseudo', [forged], { [forged.id]: archive(entryMembersOf(forged, { 'dist/out.txt': Buffer.from(GENUINE) })) });
    const app = checkout('pseudo');
    const result = await cacheRun(app, plain, 'pseudo');
    expectBuilt(result, app);
    expect(status(result)).toContain('input /proc/self/environ cannot be checked');
    expect(status(result)).toContain('input /proc/self/pagemap cannot be checked');
    for (const secret of [SECRET, RUNNER_ONLY, TOKEN]) {
      expect(result.stdout.includes(secret) || result.stderr.includes(secret), 'a secret of the runner was printed').toBe(false);
    }
    // Nothing of /proc was hashed into the stat cache either.
    const statCache = join(app, 'node_modules', '.cache', 'cache-runner', 'stat-cache.json');
    if (existsSync(statCache)) expect(readFileSync(statCache, 'utf8')).not.toContain('"/proc/');
  }, 60_000);

  it('with a signing key, trusts only what the key signed', async () => {
    const signing = await startServer('signing', { TURBO_REMOTE_CACHE_SIGNATURE_KEY: KEY1 });
    const k1 = { TURBO_REMOTE_CACHE_SIGNATURE_KEY: KEY1 };
    const team = 'signed';

    // A stores, signed; B, elsewhere, hits.
    const a = checkout('sign-a');
    const stored = await cacheRun(a, signing, team, k1);
    expect(stored.code, stored.stderr).toBe(0);
    expect(status(stored)).toBe('cache miss: no entry');
    const tags = readdirSync(join(signing.storage, team)).filter((name) => name.endsWith('.tag'));
    expect(tags, 'both artifacts carry a tag').toHaveLength(2);
    const b = checkout(join('sign-b', 'deeper'));
    const hit = await cacheRun(b, signing, team, k1);
    expect(hit.code, hit.stderr).toBe(0);
    expect(status(hit)).toBe('cache hit');
    expect(readFileSync(join(b, 'dist', 'out.txt'), 'utf8')).toBe(GENUINE);

    const poison = Buffer.from('poisoned past the signature\n');
    const forged = withOutputs([fileOutput('dist/out.txt', poison)]);
    const forgedArchive = archive(entryMembersOf(forged, { 'dist/out.txt': poison }));

    // Re-PUT without a tag: the server still serves the genuine tag, over other bytes.
    await plant(signing, team, [forged], { [forged.id]: forgedArchive });
    const untagged = await cacheRun(checkout('sign-untagged'), signing, team, k1);
    expectBuilt(untagged, join(work, 'sign-untagged', 'app'));
    expect(untagged.stderr).toContain(`cache-runner: remote artifact ${indexHash} has a signature that does not match: ignored`);

    // Tagged with another key.
    await plant(signing, team, [forged], { [forged.id]: forgedArchive }, KEY2);
    const otherKey = await cacheRun(checkout('sign-k2'), signing, team, k1);
    expectBuilt(otherKey, join(work, 'sign-k2', 'app'));
    expect(otherKey.stderr).toContain(`cache-runner: remote artifact ${indexHash} has a signature that does not match: ignored`);

    // The genuine signed index, and the entry alone replaced, tagged with another key.
    const genuineIndex = readFileSync(join(signing.storage, team, indexHash));
    const line = (JSON.parse(genuineIndex.toString('utf8')) as { entries: Manifest[] }).entries[0] as Manifest;
    const sameManifest = archive(entryMembersOf(line, { 'dist/out.txt': Buffer.from('built from version X\n') }));
    await put(signing, team, line.id, sameManifest, artifactTag(KEY2, line.id, team, sameManifest));
    const entryOnly = await cacheRun(checkout('sign-entry'), signing, team, k1);
    expectBuilt(entryOnly, join(work, 'sign-entry', 'app'));
    expect(entryOnly.stderr).toContain(`cache-runner: remote artifact ${line.id} has a signature that does not match: ignored`);

    // A server that keeps no tags (or a fresh team on this one, which then answers 404): never a hit.
    await plant(plain, 'sign-plain', [forged], { [forged.id]: forgedArchive });
    const unsigned = await cacheRun(checkout('sign-plain'), plain, 'sign-plain', k1);
    expectBuilt(unsigned, join(work, 'sign-plain', 'app'));
    expect(unsigned.stderr).toContain(`cache-runner: remote artifact ${indexHash} is not signed: ignored`);
    await plant(signing, 'fresh', [forged], { [forged.id]: forgedArchive });
    const fresh = await cacheRun(checkout('sign-fresh'), signing, 'fresh', k1);
    expectBuilt(fresh, join(work, 'sign-fresh', 'app'));
    expect(status(fresh)).toBe('cache miss: no entry');

    // A runner with the wrong key never hits what k1 signed.
    const wrong = await cacheRun(checkout('sign-wrong'), signing, team, { TURBO_REMOTE_CACHE_SIGNATURE_KEY: KEY2 });
    expectBuilt(wrong, join(work, 'sign-wrong', 'app'));
    expect(wrong.stderr).toContain(`cache-runner: remote artifact ${indexHash} has a signature that does not match: ignored`);
    for (const result of [stored, hit, untagged, otherKey, entryOnly, unsigned, fresh, wrong]) {
      expect(result.stdout + result.stderr, 'a signing key was printed').not.toContain(KEY1);
      expect(result.stdout + result.stderr, 'a signing key was printed').not.toContain(KEY2);
    }
  }, 240_000);

  it("keeps the runner's secrets from the task and from its output", async () => {
    const tool = `
const ra = await import(${JSON.stringify(api)});
const { mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
readFileSync('src/input.txt');
mkdirSync('dist', { recursive: true });
writeFileSync('dist/out.txt', 'tool\\n');
const names = ['TURBO_TOKEN', 'TURBO_REMOTE_CACHE_SIGNATURE_KEY', 'TURBO_API', 'TURBO_TEAM', 'RUNNER_AWARE_CACHE_TOKEN'];
console.log(JSON.stringify({
  getEnv: Object.fromEntries(names.map((name) => [name, ra.getEnv(name) ?? null])),
  getEnvs: ra.getEnvs('TURBO_*'),
  prefix: ra.getEnvs({ prefix: 'RUNNER_AWARE_CACHE' }),
  child: Object.keys(process.env).filter((name) => /TURBO|CACHE_TOKEN|SIGNATURE/i.test(name)),
}));
`;
    const app = checkout('secrets');
    writeFileSync(join(app, 'tool.mjs'), tool);
    const token = 'turbo-token-never-in-the-task-91c4';
    const key = 'signing-key-never-in-the-task-77ab';
    const result = await run(
      process.execPath,
      // The user even asks for them by name and by glob.
      [runner, '--input', 'src/**', '--output', 'dist/**', '--env', 'TURBO_TOKEN', '--env', 'TURBO_*', '--', process.execPath, 'tool.mjs'],
      {
        cwd: app,
        env: {
          PATH: process.env['PATH'] ?? '',
          TMPDIR: tmpdir(),
          TURBO_API: plain.url,
          TURBO_TEAM: 'secrets',
          TURBO_TOKEN: TOKEN,
          RUNNER_AWARE_CACHE_TOKEN: token,
          TURBO_REMOTE_CACHE_SIGNATURE_KEY: key,
          ...(process.env['RUNNER_AWARE_TRANSPORT'] === undefined ? {} : { RUNNER_AWARE_TRANSPORT: process.env['RUNNER_AWARE_TRANSPORT'] }),
        },
      },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toBe('cache miss: no entry');
    const seen = JSON.parse(result.stdout.trim().split('\n').pop() ?? 'null') as Record<string, unknown>;
    expect(seen).toEqual({
      getEnv: { TURBO_TOKEN: null, TURBO_REMOTE_CACHE_SIGNATURE_KEY: null, TURBO_API: null, TURBO_TEAM: null, RUNNER_AWARE_CACHE_TOKEN: null },
      getEnvs: {},
      prefix: {},
      child: [],
    });
    for (const secret of [TOKEN, token, key]) {
      expect(result.stdout + result.stderr, 'printed').not.toContain(secret);
    }
    // Uploaded (signed): neither the secrets nor their digests are in what the server holds.
    const uploaded = Buffer.concat([...artifacts(plain, 'secrets').values()]);
    expect(uploaded.length).toBeGreaterThan(0);
    for (const secret of [TOKEN, token, key]) {
      expect(uploaded.includes(secret), 'uploaded in plaintext').toBe(false);
      expect(uploaded.includes(sha256(secret)), 'uploaded as a digest').toBe(false);
    }
    const file = join(work, 'secrets-entry.tar.zst');
    for (const [hash, body] of artifacts(plain, 'secrets')) {
      if (hash === indexHash || body[0] === '{'.charCodeAt(0)) continue;
      writeFileSync(file, body);
      const members = Buffer.concat(entryMembers(file).map((member) => member.data));
      for (const secret of [TOKEN, token, key]) expect(members.includes(secret) || members.includes(sha256(secret))).toBe(false);
    }

    // --token warns that the process list shows it, and prints it nowhere.
    const cli = await cacheRun(checkout('token-flag'), plain, 'token-flag', { TURBO_TOKEN: '' }, ['--token', 'cli-token-3e7f']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toContain('cache-runner: warning: --token puts the token in the process list, where any local user can read it: use TURBO_TOKEN or --token-file\n');
    expect(cli.stderr).toContain('remote cache unavailable');
    expect(cli.stdout + cli.stderr).not.toContain('cli-token-3e7f');

    // A URL with a password, where nothing listens: the warning names the server without it.
    const closed = await freePort();
    for (const [name, args, env] of [
      ['flag', ['--remote', `http://user:pw-secret-flag@127.0.0.1:${closed}`], {}],
      ['env', [], { TURBO_API: `http://user:pw-secret-env@127.0.0.1:${closed}` }],
    ] as const) {
      const app2 = checkout(`password-${name}`);
      const result2 = await run(process.execPath, [runner, '--input', 'src/**', '--output', 'dist/**', ...args, '--team', 't', '--', process.execPath, 'build.mjs'], {
        cwd: app2,
        env: { PATH: process.env['PATH'] ?? '', TMPDIR: tmpdir(), TURBO_TOKEN: TOKEN, ...env },
      });
      expect(result2.code, result2.stderr).toBe(0);
      expect(result2.stderr).toContain(`cache-runner: remote cache unavailable: GET http://127.0.0.1:${closed}: `);
      expect(result2.stdout + result2.stderr, name).not.toContain('pw-secret');
      expect(result2.stdout + result2.stderr, name).not.toContain('user:');
    }

    // A server that redirects elsewhere: the runner does not follow, so the token goes nowhere else.
    const elsewhere: string[] = [];
    const target = createHttpServer((request, response) => {
      elsewhere.push(`${request.method} ${request.url} ${request.headers.authorization ?? ''}`);
      response.writeHead(404).end();
    });
    const redirector = createHttpServer((request, response) => {
      response.writeHead(307, { location: `http://127.0.0.1:${portOf(target)}${request.url ?? '/'}` }).end();
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    try {
      const app3 = checkout('redirect');
      const redirected = await cacheRun(app3, { url: `http://127.0.0.1:${portOf(redirector)}`, storage: '', child: plain.child }, 'redirect');
      expect(redirected.code, redirected.stderr).toBe(0);
      expect(status(redirected)).toBe('cache miss: no entry');
      expect(redirected.stderr).toContain(`cache-runner: remote cache unavailable: GET http://127.0.0.1:${portOf(redirector)}: `);
      expect(redirected.stdout + redirected.stderr).not.toContain(TOKEN);
      expect(elsewhere, 'the redirect was followed').toEqual([]);
    } finally {
      await new Promise((resolve) => redirector.close(resolve));
      await new Promise((resolve) => target.close(resolve));
    }
  }, 120_000);
});

function portOf(server: HttpServer): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** A loopback port nothing listens on right now. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}
