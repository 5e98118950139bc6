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
