// Nested runners: a runner built on runner-aware that is a task of another
// forwards what its tools said, so the outer run's reports are a superset.

import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { createServer, packageManagerPaths, verdict, type Reports } from '../dist/runner.mjs';
import { fixtures, root, run, sha256 } from './helpers.js';

const nestedRunner = join(root, 'test', 'scenarios', 'nested-runner.mjs');

/** An outer server running `nested-runner.mjs <levels> ...flags`. */
async function outerRun(levels: number, flags: string[] = []) {
  const outer = await createServer({
    env: { ...process.env, NODE_ENV: 'production', VITE_API: 'https://example', LOCAL_ONLY: 'x' },
  });
  // An inner runner that dies leaves its private directory behind: in a temp dir of its own, removed here.
  const tmp = mkdtempSync(join(tmpdir(), 'ra-nested-'));
  try {
    const inner = await run(process.execPath, [nestedRunner, String(levels), ...flags], {
      env: { ...process.env, NODE_ENV: 'production', VITE_API: 'https://example', LOCAL_ONLY: 'x', ...outer.env, TMPDIR: tmp },
    });
    const reports = await outer.close({ envValues: 'plain' });
    return { reports, inner };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function expectTheToolsWords(reports: Reports) {
  expect(reports.envs['NODE_ENV']).toEqual({ value: 'production', tracked: true });
  expect(reports.envQueries).toEqual([{ glob: 'VITE_*', tracked: true, matches: { VITE_API: 'https://example' } }]);
  expect(reports.ignoredInputs).toContain('/app/node_modules/.vite');
  expect(reports.inputs).toContain('/app/vite.config.js');
  expect(reports.outputs).toContain('/app/dist');
  expect(reports.values).toEqual({ 'tool-version': '8.0.0' });
  expect(reports.cacheable).toBe(false);
  expect(reports.notCacheable.some((r) => r.kind === 'disable-cache' && /disable-cache: dev server, from \[eval\]/.test(r.message))).toBe(true);
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
    // The inner runner's own reports hold digests.
    expect(innerReports.envs['LOCAL_ONLY']).toEqual({ value: sha256('x'), tracked: false });
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
    expect(reports.values).toEqual({});
    expect(reports.inputs).toEqual([]);
    // Only the inner runner's own channel directory, which is plumbing, never its tools' words.
    expect(reports.ignoredInputs).toHaveLength(1);
    expect(reports.ignoredInputs[0]).toMatch(/\/ra-nested-[^/]+\/runner-aware-[^/]+$/);
    expect(reports.ignoredOutputs).toEqual(reports.ignoredInputs);
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

/**
 * vite-plus's `vp run --cache` as the outermost runner (vp needs Node ≥ 22.18,
 * installed from the registry with vite-plus, as the bench does). Its cache
 * is the observable: a nested runner-aware runner forwards its tool's tracked
 * `getEnv('NODE_ENV')` through vp's own addon, so vp keys the task on
 * NODE_ENV. Without forwarding, vp never hears of it and replays the task
 * after NODE_ENV changed.
 */
describe('under a real vp run', () => {
  it('keys the outer task on what the nested tool read', async () => {
    const { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { dirname } = await import('node:path');
    const cache = join(root, 'node_modules', '.cache', 'runner-aware-bench');
    const nodePackage = `node-${process.platform}-${process.arch}`;
    const node22 = join(cache, 'node_modules', nodePackage, 'bin', 'node');
    const vp = join(cache, 'node_modules', 'vite-plus', 'bin', 'vp');
    if (!existsSync(node22) || !existsSync(vp)) {
      mkdirSync(cache, { recursive: true });
      if (!existsSync(join(cache, 'package.json'))) writeFileSync(join(cache, 'package.json'), '{ "private": true }\n');
      const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefix', cache, 'vite-plus@1.5.1', `${nodePackage}@22`]);
      expect(install.code, install.stderr).toBe(0);
    }
    const project = mkdtempSync(join(tmpdir(), 'ra-vp-nested-'));
    // Outside the project: vp would see writes there as the task modifying its inputs.
    const vpTmp = mkdtempSync(join(tmpdir(), 'ra-vp-tmp-'));
    try {
      const runs = join(project, 'runs.log');
      // The nested runner's tool appends a line per real run.
      const script = [process.execPath, join(root, 'test', 'scenarios', 'vp-nested.mjs'), runs].map((a) => JSON.stringify(a)).join(' ');
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'ra-vp-nested', private: true, scripts: { build: script } }));
      const vpRun = (nodeEnv: string) => {
        const env: Record<string, string | undefined> = { ...process.env, PATH: `${dirname(node22)}:${process.env['PATH']}`, NODE_ENV: nodeEnv };
        delete env['VP_RUN_NODE_CLIENT_PATH'];
        for (const name of Object.keys(env)) if (name.startsWith('RUNNER_AWARE_') && name !== 'RUNNER_AWARE_TRANSPORT') delete env[name];
        // vp unpacks its helpers (fspy, vt_client_napi, a compile cache) into the temp dir: one removed below.
        env['TMPDIR'] = vpTmp;
        return run(node22, [vp, 'run', '--cache', 'build'], { cwd: project, env });
      };
      const count = () => (existsSync(runs) ? readFileSync(runs, 'utf8').trim().split('\n').length : 0);
      for (const [nodeEnv, expected] of [['production', 1], ['production', 1], ['development', 2]] as const) {
        const result = await vpRun(nodeEnv);
        expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
        expect(count(), `NODE_ENV=${nodeEnv}: ${result.stdout}`).toBe(expected);
        if (nodeEnv === 'development') expect(result.stdout).toContain("cache miss: env 'NODE_ENV' changed");
      }
    } finally {
      rmSync(project, { recursive: true, force: true });
      rmSync(vpTmp, { recursive: true, force: true });
    }
  }, 300_000);
});

// A traced runner whose task is a runner that would trace too (the reference
// runner traces by default): one process tree takes one tracer, the outer one.
describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('nested runners, traced', () => {
  it("leaves tracing to the outer runner, whose trace holds the inner task's accesses, complete", async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ra-nested-trace-')));
    try {
      writeFileSync(join(dir, 'input.txt'), 'in');
      const outer = await createServer({ trace: true });
      const task = [process.execPath, '-e', "const fs = require('fs'); fs.writeFileSync('out.txt', fs.readFileSync('input.txt', 'utf8'))"];
      const [file, ...args] = outer.command([process.execPath, join(root, 'examples', 'cache-runner', 'index.mjs'), '--cache-dir', join(dir, 'cache'), '--', ...task]);
      const inner = await run(file ?? '', args, { cwd: dir, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...outer.env } });
      const reports = await outer.close();
      expect(inner.code, inner.stderr).toBe(0);
      // The inner runner says why it has no trace of its own, and stores nothing without one.
      expect(inner.stderr).toMatch(/^cache skipped: no inputs known \(trace: unsupported: this runner is itself traced by an outer runner \(\/.*\), whose trace records what this task does; .* is not in a git repository/m);
      expect(reports.trace).toMatchObject({ mode: 'preload', complete: true, incomplete: [] });
      expect(reports.trace?.read).toContain(join(dir, 'input.txt'));
      expect(reports.trace?.written).toContain(join(dir, 'out.txt'));
      // The inner runner's channel is plumbing the outer trace saw: ignored, so no modified input.
      // (The package managers' own files the inner runner ignores reach the outer one too.)
      const packageManager = new Set(packageManagerPaths({ HOME: process.env['HOME'] }));
      expect(reports.ignoredInputs.filter((path) => !path.startsWith(dir) && !packageManager.has(path))).toHaveLength(1);
      expect(reports.notCacheable).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
