// Reports without secrets by default: the env values a runner gets back from
// close() (and stores, prints or uploads) are sha256 digests, the digest the
// fingerprint uses; plaintext only when the runner asks. The tools still get
// plaintext answers.

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  createServer,
  digestReports,
  envFingerprint,
  envValueDigest,
  parseReports,
  serializeReports,
  validateFingerprint,
  type CloseOptions,
  type Reports,
} from '../dist/runner.mjs';
import { entryMembers, lastJson, root, run, sha256, type Run } from './helpers.js';

const SECRET = 'hunter2-5f0c7d2e9a4b';
const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;
const cli = join(root, 'dist', 'cli.cjs');
const runner = join(root, 'examples', 'cache-runner', 'index.mjs');

// Reads the secret tracked by name and through a glob, and another variable
// untracked; with --print, prints what it got.
const tool = `
const ra = await import(${JSON.stringify(api)});
const got = { token: ra.getEnv('API_TOKEN'), keys: ra.getEnvs('API_*'), home: ra.getEnv('QUIET', { tracked: false }) };
console.log(process.argv.includes('--print') ? JSON.stringify(got) : 'built');
`;

let work = '';
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'runner-aware-secrets-'));
  writeFileSync(join(work, 'tool.mjs'), tool);
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const env = { API_TOKEN: SECRET, API_URL: 'https://api.example', QUIET: `quiet-${SECRET}` };

/** The tool under a fresh server; its output and the reports `close(options)` gives. */
async function underServer(options?: CloseOptions): Promise<{ reports: Reports; got: unknown; snapshot: Reports }> {
  const server = await createServer({ env: { PATH: process.env['PATH'], ...env } });
  const tool = await run(process.execPath, ['tool.mjs', '--print'], { cwd: work, env: { ...process.env, ...server.env } });
  expect(tool.code, tool.stderr).toBe(0);
  const snapshot = server.snapshot(options);
  const reports = await server.close(options);
  return { reports, got: lastJson(tool), snapshot };
}

describe('reports a runner gets', () => {
  it('hold sha256 digests of env values by default, while the tool gets plaintext', async () => {
    const { reports, got, snapshot } = await underServer();
    expect(got).toEqual({ token: SECRET, keys: { API_TOKEN: SECRET, API_URL: 'https://api.example' }, home: env.QUIET });
    expect(reports.envValues).toBe('sha256');
    expect(reports.envs['API_TOKEN']).toEqual({ value: sha256(SECRET), tracked: true });
    expect(reports.envs['QUIET']).toEqual({ value: sha256(env.QUIET), tracked: false });
    expect(reports.envQueries).toEqual([
      { glob: 'API_*', tracked: true, matches: { API_TOKEN: sha256(SECRET), API_URL: sha256('https://api.example') } },
    ]);
    expect(envValueDigest(SECRET)).toBe(sha256(SECRET));
    for (const text of [JSON.stringify(reports), serializeReports(reports), JSON.stringify(snapshot)]) expect(text).not.toContain(SECRET);
    expect(snapshot.envValues).toBe('sha256');
  });

  it("hold plaintext only when the runner asks, and give the same fingerprint either way", async () => {
    const plain = await underServer({ envValues: 'plain' });
    expect(plain.reports.envValues).toBe('plain');
    expect(plain.reports.envs['API_TOKEN']).toEqual({ value: SECRET, tracked: true });
    expect(plain.snapshot.envs['API_TOKEN']?.value).toBe(SECRET);
    const digested = await underServer();
    expect(envFingerprint(digested.reports)).toEqual(envFingerprint(plain.reports));
    expect(digestReports(plain.reports)).toEqual({ ...digested.reports, clients: plain.reports.clients, envRequests: plain.reports.envRequests });
    expect(digestReports(digested.reports)).toBe(digested.reports);

    // Stored and parsed back, a digest fingerprint validates against the runner's env.
    const stored = envFingerprint(parseReports(serializeReports(digested.reports)));
    expect(validateFingerprint(stored, env)).toEqual({ valid: true, reasons: [] });
    expect(validateFingerprint(stored, { ...env, API_TOKEN: 'rotated' })).toEqual({
      valid: false,
      reasons: ['env API_TOKEN changed', 'env query API_* changed'],
    });
  });

  it('refuses an unknown encoding, and parseReports reads reports from before the field as plain', async () => {
    const server = await createServer();
    expect(() => server.snapshot({ envValues: 'rot13' as 'plain' })).toThrow(TypeError);
    await expect(server.close({ envValues: 'rot13' as 'plain' })).rejects.toThrow("envValues must be 'sha256' or 'plain'");
    const reports = await server.close();
    expect(() => parseReports(JSON.stringify({ ...reports, envValues: 'rot13' }))).toThrow("envValues must be 'sha256' or 'plain'");
    const { envValues: _, ...old } = reports;
    const parsed = parseReports(JSON.stringify({ ...old, envs: { A: { value: 'x', tracked: true } } }));
    expect(envFingerprint(parsed).envs).toEqual({ A: sha256('x') });
  });
});

describe('inspect', () => {
  function inspect(args: string[]): Promise<Run> {
    return run(process.execPath, [cli, 'inspect', ...args, '--', process.execPath, 'tool.mjs'], { cwd: work, env: { ...process.env, ...env } });
  }

  it('--json and --out show digests, --plain-values the values', async () => {
    const json = await inspect(['--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toContain(sha256(SECRET));
    expect(json.stderr).not.toContain(SECRET);
    const out = join(work, 'reports.json');
    expect((await inspect(['--out', out])).code).toBe(0);
    expect(readFileSync(out, 'utf8')).not.toContain(SECRET);
    expect((JSON.parse(readFileSync(out, 'utf8')) as Reports).envValues).toBe('sha256');
    const plain = await inspect(['--json', '--plain-values']);
    expect(plain.code, plain.stderr).toBe(0);
    const reports = JSON.parse(plain.stderr.slice(plain.stderr.indexOf('{'))) as Reports;
    expect(reports.envs['API_TOKEN']).toEqual({ value: SECRET, tracked: true });
    const summary = await inspect([]);
    expect(summary.stderr).toContain('API_TOKEN  tracked  set');
    expect(summary.stderr).not.toContain(SECRET);
  });
});

describe('the reference caching runner', () => {
  /** Every file under `dir`, whole. */
  function filesUnder(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const file = join(dir, name);
      return statSync(file).isDirectory() ? filesUnder(file) : [file];
    });
  }

  function cacheRun(extra: Record<string, string> = {}): Promise<Run> {
    const transport = process.env['RUNNER_AWARE_TRANSPORT'];
    return run(process.execPath, [runner, '--cache-dir', join(work, 'cache'), '--', process.execPath, 'tool.mjs'], {
      cwd: work,
      env: { PATH: process.env['PATH'] ?? '', ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }), ...env, ...extra },
    });
  }

  it('never writes a tracked secret to its cache dir, and still keys on it', async () => {
    const first = await cacheRun();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('cache miss: no entry');
    const files = filesUnder(join(work, 'cache'));
    // The entry's archive, the stat cache of traced inputs (paths and file
    // digests) and the task's record of the outputs it left (paths, digests,
    // file identities).
    expect(files.map((file) => basename(file).replace(/^[0-9a-f]{64}\.tar\.zst$/, '<id>.tar.zst')).sort()).toEqual(['.placed.json', '<id>.tar.zst', 'stat-cache.json']);
    const archive = files.find((file) => file.endsWith('.tar.zst')) ?? '';
    const members = entryMembers(archive);
    for (const { name, data } of members) expect(data.toString('utf8'), name).not.toContain(SECRET);
    for (const name of ['stat-cache.json', '.placed.json']) {
      expect(readFileSync(files.find((file) => basename(file) === name) ?? '', 'utf8'), name).not.toContain(SECRET);
    }
    const stored = members.find((member) => member.name === 'manifest.json')?.data.toString('utf8') ?? '';
    expect(stored).toContain(sha256(SECRET));

    expect((await cacheRun()).stderr).toContain('cache hit');
    expect((await cacheRun({ API_TOKEN: 'rotated' })).stderr).toContain('cache miss: env API_TOKEN changed, env query API_* changed');
  });
});
