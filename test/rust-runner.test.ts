// The Rust runner example: the crate's server API, a Node tool using the npm
// package, the reports printed as JSON.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { describe, expect, it } from 'vitest';

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
