// The Rust runner example: the crate's server API, a Node tool using the npm
// package, the reports printed as JSON.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Reports } from '../dist/runner.mjs';
import { root, run, sha256 } from './helpers.js';

// The same target `npm run test:rust` builds for, so its example build is reused.
const host = /^host: (\S+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1] ?? '';

describe('examples/rust-runner', () => {
  it('runs a Node tool under the crate server and prints its reports', async () => {
    const result = await run('cargo', ['run', '--quiet', '--target', host, '--example', 'rust-runner']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('tool: connected=true mode=production');
    const reports = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as Reports;
    expect(reports.ignoredInputs).toEqual([join(root, 'node_modules', '.cache', 'example-tool')]);
    expect(reports.outputs).toEqual([join(root, 'dist')]);
    expect(reports.values).toEqual({ 'example-tool-version': '1.0.0' });
    // The crate's reports hold env values as digests unless asked for plain text.
    expect(reports.envValues).toBe('sha256');
    expect(reports.envs['NODE_ENV']).toEqual({ value: sha256('production'), tracked: true });
    expect(result.stderr).toContain('1 client(s), cacheable');
  }, 600_000);

  it('passes a command through and reports its cache opt-out', async () => {
    const result = await run('cargo', [
      'run', '--quiet', '--target', host, '--example', 'rust-runner', '--',
      process.execPath, '-e', "require('runner-aware').disableCache('demo')",
    ]);
    expect(result.code, result.stderr).toBe(0);
    const reports = JSON.parse(result.stdout) as Reports;
    expect(reports.notCacheable.map((r) => r.message)).toEqual(['demo']);
  }, 600_000);
});

describe('examples/rust-runner with --cache-dir', () => {
  it('caches a task through the crate store: a miss stores, a hit restores and replays, an edited input misses', async () => {
    const built = await run('cargo', ['build', '--quiet', '--target', host, '--example', 'rust-runner']);
    expect(built.code, built.stderr).toBe(0);
    const app = mkdtempSync(join(tmpdir(), 'runner-aware-rust-cache-'));
    try {
      const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;
      writeFileSync(join(app, 'input.txt'), 'one');
      writeFileSync(
        join(app, 'build.mjs'),
        `import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
const { addInput, addOutput } = await import(${JSON.stringify(api)});
addInput('input.txt');
addOutput('dist');
mkdirSync('dist', { recursive: true });
writeFileSync('dist/out.txt', readFileSync('input.txt', 'utf8').toUpperCase());
console.log('built');`,
      );
      const binary = join(root, 'target', host, 'debug', 'examples', process.platform === 'win32' ? 'rust-runner.exe' : 'rust-runner');
      const cached = () => run(binary, ['--cache-dir', join(app, '.cache'), '--', process.execPath, 'build.mjs'], { cwd: app });
      // A file written within a clock tick of the start may have changed while
      // the run went on, as far as its time says: such a run is not stored.
      // The inputs are older than that, as a person's edits are.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const first = await cached();
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toContain('cache miss: no entry');
      expect(first.stderr).toMatch(/^cache stored [0-9a-f]{64} \(keyed on the declared inputs\)$/m);
      rmSync(join(app, 'dist'), { recursive: true });
      const hit = await cached();
      expect(hit.stderr).toContain('cache hit');
      expect(hit.stdout, 'the stored stdout is replayed').toBe('built\n');
      expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe('ONE');
      writeFileSync(join(app, 'input.txt'), 'two');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const edited = await cached();
      expect(edited.stderr).toContain('cache miss: input input.txt changed');
      expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe('TWO');
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  }, 600_000);
});

describe('examples/rust-runner nested under a Node runner', () => {
  it("forwards its tool's tracked env, paths, values and verdict upstream", async () => {
    const { createServer } = await import('../dist/runner.mjs');
    const outer = await createServer({ env: { ...process.env, NODE_ENV: 'test' } });
    const result = await run(
      'cargo',
      [
        'run', '--quiet', '--target', host, '--example', 'rust-runner', '--',
        process.execPath, '-e',
        "const ra = require('runner-aware'); ra.getEnv('NODE_ENV'); ra.getEnv('QUIET', { tracked: false }); ra.ignoreInput('/nested/cache'); ra.addValue('v', '1'); ra.disableCache('watch')",
      ],
      { env: { ...process.env, ...outer.env } },
    );
    const reports = await outer.close({ envValues: 'plain' });
    expect(result.code, result.stderr).toBe(0);
    // The outer runner records the value it serves, not the inner runner's.
    expect(reports.envs['NODE_ENV']).toEqual({ value: 'test', tracked: true });
    expect(reports.envs['QUIET']).toBeUndefined();
    expect(reports.ignoredInputs).toContain('/nested/cache');
    expect(reports.values).toEqual({ v: '1' });
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable.map((r) => r.message)).toContainEqual(expect.stringMatching(/^a nested run \(pid \d+\) is not cacheable: disable-cache: watch, from \[eval\]$/));
  }, 600_000);
});

describe('a Rust runner written from the crate README', () => {
  // The examples built once: the runner (the README's loop) and a tool on the client feature alone.
  const example = (name: string): string => join(root, 'target', host, 'debug', 'examples', name);
  const addon = (): string => join(root, readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file)) ?? 'missing');
  let app = '';

  beforeAll(async () => {
    const built = await run('cargo', ['build', '--quiet', '--target', host, '--example', 'rust-runner', '--example', 'rust-tool']);
    expect(built.code, built.stderr).toBe(0);
    app = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-rust-tools-')));
    writeFileSync(join(app, 'in.txt'), 'source');
    // A Node tool on the npm package, which loads its own addon: the runner hands out none.
    writeFileSync(
      join(app, 'node-tool.mjs'),
      `const ra = await import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'index.mjs')).href)});
ra.addValue('node-tool', String(ra.isConnected()));
ra.getEnv('NODE_ENV');`,
    );
    // A tool on @voidzero-dev/vite-task-client (as stock Vite reports), which loads only VP_RUN_NODE_CLIENT_PATH.
    writeFileSync(
      join(app, 'vtc-tool.mjs'),
      `const { ignoreInput } = await import(${JSON.stringify(pathToFileURL(join(root, 'node_modules', '@voidzero-dev', 'vite-task-client', 'src', 'index.js')).href)});
ignoreInput('.vtc-cache');`,
    );
  }, 600_000);

  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('hears a Node tool with no client_path, a Rust tool, and a vite-task-client tool with one', async () => {
    const chain = `node node-tool.mjs && ${JSON.stringify(example('rust-tool'))} in.txt out.txt && node vtc-tool.mjs`;
    const result = await run(example('rust-runner'), ['--client-path', addon(), '--', 'sh', '-c', chain], { cwd: app });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('rust-tool: connected=true mode=production');
    const reports = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as Reports;
    expect(reports.clients).toBe(3);
    expect(reports.values).toEqual({ 'node-tool': 'true' });
    expect(reports.inputs).toEqual([join(app, 'in.txt')]);
    expect(reports.outputs).toEqual([join(app, 'out.txt')]);
    expect(reports.ignoredInputs).toEqual([join(app, '.vtc-cache')]);
    expect(reports.envs['NODE_ENV']).toEqual({ value: sha256('production'), tracked: true });
    expect(result.stderr).toContain('3 client(s), cacheable');
    expect(readFileSync(join(app, 'out.txt'), 'utf8')).toBe('production: source');
  }, 120_000);

  it("says why a Rust tool's run is not cacheable", async () => {
    const result = await run(example('rust-runner'), ['--', example('rust-tool'), '--watch', 'in.txt', 'out.txt'], { cwd: app });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/not cacheable: disable-cache: rust-tool --watch \(pid \d+: .*rust-tool --watch in\.txt out\.txt\)/);
  }, 120_000);

  it('refuses to start with a client_path that is no addon, rather than leave vite-task-client tools unheard', async () => {
    const garbage = join(app, 'x.node');
    writeFileSync(garbage, randomBytes(4096));
    const result = await run(example('rust-runner'), ['--client-path', garbage, '--', 'node', 'vtc-tool.mjs'], { cwd: app });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`client_path ${garbage} is not a Node addon for this platform`);
  }, 120_000);

  it('marks the run not cacheable, naming the tool, when a Node tool can load no client at all', async () => {
    // The tool bundle vendored without its addon, under a runner that hands out none.
    const vendored = join(app, 'vendored');
    cpSync(join(root, 'dist'), join(vendored, 'dist'), { recursive: true });
    const code = `const ra = await import(${JSON.stringify(pathToFileURL(join(vendored, 'dist', 'index.mjs')).href)}); ra.getEnv('NODE_ENV'); console.log('pid', process.pid);`;
    const result = await run(example('rust-runner'), ['--', process.execPath, '--input-type=module', '-e', code], { cwd: app });
    expect(result.code, result.stderr).toBe(0);
    const pid = /^pid (\d+)$/m.exec(result.stdout)?.[1];
    const reports = JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as Reports;
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable.map((reason) => [reason.kind, reason.pid])).toEqual([['lost', Number(pid)]]);
    expect(reports.notCacheable[0]?.message).toContain(`a tool (pid ${pid}: `);
    expect(result.stderr).toMatch(/not cacheable: lost: a tool could not deliver what it said: a tool \(pid \d+: /);
  }, 120_000);
});
