// Nested runners: a runner built on runner-aware that is a task of another
// forwards what its tools said, so the outer run's reports are a superset.

import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { createServer, verdict, type Reports } from '../dist/runner.mjs';
import { fixtures, root, run } from './helpers.js';

const nestedRunner = join(root, 'test', 'scenarios', 'nested-runner.mjs');

/** An outer server running `nested-runner.mjs <levels> ...flags`. */
async function outerRun(levels: number, flags: string[] = []) {
  const outer = await createServer({
    env: { ...process.env, NODE_ENV: 'production', VITE_API: 'https://example', LOCAL_ONLY: 'x' },
  });
  const inner = await run(process.execPath, [nestedRunner, String(levels), ...flags], {
    env: { ...process.env, NODE_ENV: 'production', VITE_API: 'https://example', LOCAL_ONLY: 'x', ...outer.env },
  });
  const reports = await outer.close();
  return { reports, inner };
}

function expectTheToolsWords(reports: Reports) {
  expect(reports.envs['NODE_ENV']).toEqual({ value: 'production', tracked: true });
  expect(reports.envQueries).toEqual([{ glob: 'VITE_*', tracked: true, matches: { VITE_API: 'https://example' } }]);
  expect(reports.ignoredInputs).toContain('/app/node_modules/.vite');
  expect(reports.inputs).toContain('/app/vite.config.js');
  expect(reports.outputs).toContain('/app/dist');
  expect(reports.values).toEqual({ 'tool-version': '8.0.0' });
  expect(reports.cacheable).toBe(false);
  expect(reports.notCacheable.some((r) => r.kind === 'disable-cache' && r.message.endsWith('disable-cache: dev server'))).toBe(true);
  // Untracked reads stay untracked: the outer key does not get them.
  expect(reports.envs['LOCAL_ONLY']).toBeUndefined();
  // The inner runner's own channel variables are never forwarded as env.
  expect(Object.keys(reports.envs).filter((name) => name.startsWith('RUNNER_AWARE_'))).toEqual([]);
}

describe('nested runners', () => {
  it('forwards the tools of an inner runner upstream', async () => {
    const { reports, inner } = await outerRun(1);
    expect(inner.code, inner.stderr).toBe(0);
    expectTheToolsWords(reports);
    const innerReports = JSON.parse(inner.stdout.trim()) as Reports;
    expect(innerReports.envs['LOCAL_ONLY']).toEqual({ value: 'x', tracked: false });
  });

  it('works three levels deep', async () => {
    const { reports, inner } = await outerRun(3);
    expect(inner.code, inner.stderr).toBe(0);
    expectTheToolsWords(reports);
  });

  it('forwards nothing from a runner that opts out', async () => {
    const { reports, inner } = await outerRun(1, ['--no-forward']);
    expect(inner.code, inner.stderr).toBe(0);
    expect(reports.envs).toEqual({});
    expect(reports.ignoredInputs).toEqual([]);
    expect(reports.cacheable).toBe(true);
  });

  it('leaves the outer run not cacheable when the inner runner dies before forwarding', async () => {
    const { reports, inner } = await outerRun(1, ['--die']);
    expect(inner.signal).toBe('SIGKILL');
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable).toContainEqual(
      expect.objectContaining({ kind: 'lost', message: expect.stringContaining('a nested runner ended before it forwarded') }),
    );
    expect(verdict(reports, { signal: 'SIGKILL' }).cacheable).toBe(false);
  });
});
