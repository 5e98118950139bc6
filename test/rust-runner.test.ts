// The Rust runner example: the crate's server API, a Node tool using the npm
// package, the reports printed as JSON.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type { Reports } from '../dist/runner.mjs';
import { root, run } from './helpers.js';

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
    expect(reports.envs['NODE_ENV']).toEqual({ value: 'production', tracked: true });
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
