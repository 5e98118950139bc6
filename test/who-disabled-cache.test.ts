// Who disabled caching: every disableCache is recorded with the calling code
// (from the JavaScript stack inside the addon) and process (pid, command
// line); inspect and the reference runner print it, and the reference runner
// lets its user overrule a caller for a task (`--cacheable-despite`).

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServer, describeReason, verdict, type Reports, type UncacheableReason } from '../dist/runner.mjs';
import { entryManifest, root, run, type Run } from './helpers.js';

const cli = join(root, 'dist', 'cli.cjs');
const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;
const vite = pathToFileURL(join(root, 'node_modules', 'vite', 'dist', 'node', 'index.js')).href;
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const viteTaskClient = pathToFileURL(join(root, 'node_modules', '@voidzero-dev', 'vite-task-client', 'src', 'index.js')).href;

let work = '';

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'runner-aware-who-'));
  // Vite's createServer as SSR and prerender tools call it, and Vitest does.
  writeFileSync(
    join(work, 'vite-server.mjs'),
    `const { createServer } = await import(${JSON.stringify(vite)});
const server = await createServer({ root: process.cwd(), logLevel: 'silent', configFile: false, server: { middlewareMode: true } });
await server.close();
`,
  );
  // The tool API and the published vite-task-client, each called from a named function.
  writeFileSync(
    join(work, 'tool.mjs'),
    `const ra = await import(${JSON.stringify(api)});
const client = await import(${JSON.stringify(viteTaskClient)});
function startWatching() { ra.disableCache(); }
function serve() { client.disableCache(); }
startWatching();
serve();
ra.disableCache('watch mode');
`,
  );
  // A test file Vitest runs with its globals, so it needs no import.
  writeFileSync(join(work, 'sum.test.js'), "test('adds', () => { expect(1 + 1).toBe(2); });\n");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The runner's env: a clean base, but for RUNNER_AWARE_TRANSPORT (`npm run test:fifo`). */
function baseEnv(): Record<string, string> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }) };
}

/** `node <args>` under a server; its reports. */
async function reportsOf(args: string[]): Promise<Reports> {
  const server = await createServer();
  const tool = await run(process.execPath, args, { cwd: work, env: { ...process.env, ...server.env } });
  const reports = await server.close();
  expect(tool.code, tool.stderr).toBe(0);
  return reports;
}

function disableCacheReasons(reports: Reports): UncacheableReason[] {
  return reports.notCacheable.filter((r) => r.kind === 'disable-cache');
}

describe('who disabled caching', () => {
  it("names Vite's createServer by package and function, with the process's pid and command line", async () => {
    const reports = await reportsOf(['vite-server.mjs']);
    const [reason, ...others] = disableCacheReasons(reports);
    expect(others).toEqual([]);
    expect(reason).toMatchObject({ message: 'disableCache() with no reason', caller: 'vite … _createServer' });
    expect(reason?.pid).toBeGreaterThan(0);
    expect(reason?.command).toMatch(/ vite-server\.mjs$/);
  });

  it('names the code that called the tool API or vite-task-client, not their wrappers, with a reason too', async () => {
    const reports = await reportsOf(['tool.mjs']);
    const reasons = disableCacheReasons(reports).map(({ message, caller }) => ({ message, caller }));
    expect(reasons).toEqual([
      { message: 'disableCache() with no reason', caller: 'tool.mjs serve' },
      { message: 'disableCache() with no reason', caller: 'tool.mjs startWatching' },
      { message: 'watch mode', caller: 'tool.mjs' },
    ]);
  });

  it('inspect prints the caller and the process', async () => {
    const result = await run(process.execPath, [cli, 'inspect', '--', process.execPath, 'vite-server.mjs'], { cwd: work, env: { ...process.env } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(
      /^ {4}disable-cache: disableCache\(\) with no reason, from vite … _createServer \(pid \d+: \S+ vite-server\.mjs\)$/m,
    );
  });

  it('describeReason shows the caller and a long command line cut short', () => {
    const reason: UncacheableReason = { kind: 'disable-cache', message: 'disableCache() with no reason', pid: 7, caller: 'vite … _createServer', command: `node ${'x'.repeat(300)}` };
    const line = describeReason(reason);
    expect(line.startsWith('disable-cache: disableCache() with no reason, from vite … _createServer (pid 7: node xxx')).toBe(true);
    expect(line.endsWith('…)')).toBe(true);
    expect(line.length).toBeLessThan(300);
    expect(describeReason({ kind: 'lost', message: 'gone' })).toBe('lost: gone');
  });

  it('verdict() overrules disableCache only for the callers named, never another kind', () => {
    const vite: UncacheableReason = { kind: 'disable-cache', message: 'disableCache() with no reason', caller: 'vite … _createServer' };
    const vitest: UncacheableReason = { kind: 'disable-cache', message: 'no', caller: 'vitest … x' };
    const anonymous: UncacheableReason = { kind: 'disable-cache', message: 'no caller' };
    const lost: UncacheableReason = { kind: 'lost', message: 'a tool could not deliver what it said', caller: 'vite' };
    expect(verdict({ notCacheable: [vite] }, {}, { cacheableDespite: ['vite'] })).toEqual({ cacheable: true, reasons: [], overruled: [vite] });
    expect(verdict({ notCacheable: [vite] }, {}, { cacheableDespite: ['vite … _createServer'] }).cacheable).toBe(true);
    const mixed = verdict({ notCacheable: [vite, vitest, anonymous, lost] }, { exitCode: 0 }, { cacheableDespite: ['vite'] });
    expect(mixed).toEqual({ cacheable: false, reasons: [vitest, anonymous, lost], overruled: [vite] });
    expect(verdict({ notCacheable: [vite] }, { exitCode: 1 }, { cacheableDespite: ['vite'] }).cacheable).toBe(false);
    // Without the option the verdict keeps its shape.
    expect(verdict({ notCacheable: [] })).toEqual({ cacheable: true, reasons: [] });
  });
});

describe('vitest run under the reference caching runner', () => {
  const app = () => join(work, 'vitest-app');
  const cacheDir = () => join(work, 'vitest-cache');

  beforeAll(() => {
    mkdirSync(app());
    writeFileSync(join(app(), 'sum.test.js'), readFileSync(join(work, 'sum.test.js')));
  });

  function vitestRun(runnerArgs: string[] = []): Promise<Run> {
    // Vitest reads and rewrites its results cache under node_modules/.vite on
    // every run and does not say so: traced, that is a modified input, unless
    // the user ignores it.
    const args = ['--cache-dir', cacheDir(), '--input', '*.js', '--ignore', 'node_modules/.vite', ...runnerArgs];
    return run(process.execPath, [runner, ...args, '--', process.execPath, vitest, 'run', '--globals'], {
      cwd: app(),
      env: baseEnv(),
    });
  }

  function status(result: Run): string {
    const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
    expect(lines, result.stderr).toHaveLength(1);
    return lines[0] ?? '';
  }

  const fromVite = /disable-cache: disableCache\(\) with no reason, from vite … _createServer \(pid \d+: \S+ \S+vitest\.mjs run --globals\)/;

  it('is never cacheable, and says Vite disabled it', async () => {
    const result = await vitestRun();
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toMatch(new RegExp(`^cache skipped: ${fromVite.source}$`));
    expect(result.stderr).not.toContain('cache stored despite');
  });

  it('is stored with --cacheable-despite vite, which prints and keeps what it overruled, then hits', async () => {
    const stored = await vitestRun(['--cacheable-despite', 'vite']);
    expect(stored.code, stored.stderr).toBe(0);
    expect(stored.stderr).toMatch(new RegExp(`^cache stored despite: ${fromVite.source}$`, 'm'));
    expect(status(stored)).toBe('cache miss: no entry');
    const [task] = readdirSync(cacheDir(), { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && readdirSync(join(cacheDir(), entry.name)).length > 0)
      .map((entry) => entry.name);
    const [entry] = readdirSync(join(cacheDir(), task ?? '')).filter((id) => !id.startsWith('.'));
    const recorded = entryManifest(join(cacheDir(), task ?? '', entry ?? ''));
    expect(recorded.overruled).toEqual([expect.stringMatching(new RegExp(`^${fromVite.source}$`))]);

    const hit = await vitestRun(['--cacheable-despite', 'vite']);
    expect(status(hit)).toBe('cache hit');
    // The entry is the override's: a run without it still runs, and is still skipped.
    expect(status(await vitestRun())).toMatch(/^cache skipped: disable-cache: /);
  });

  it('overrules no other caller', async () => {
    const result = await vitestRun(['--cacheable-despite', 'vitest']);
    expect(status(result)).toMatch(new RegExp(`^cache skipped: ${fromVite.source}$`));
  });
});
