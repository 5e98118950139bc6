// Stock Vite 8 from npm, no plugin, under the reference caching runner
// (examples/cache-runner): Vite reports through the vite-task-client
// contract, and the runner caches on what it said.

import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtures, root, run, type Run } from './helpers.js';

const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js');
const runner = join(root, 'examples', 'cache-runner', 'index.mjs');

let work = '';
let app = '';
let cacheDir = '';

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'runner-aware-vite-'));
  app = join(work, 'app');
  cacheDir = join(work, 'cache');
  cpSync(join(fixtures, 'vite-app'), app, { recursive: true });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * The runner's own env: a clean base, so nothing from the test process leaks
 * into what Vite sees, but for RUNNER_AWARE_TRANSPORT (`npm run test:fifo`).
 */
function runnerEnv(extra: Record<string, string>): Record<string, string> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }), ...extra };
}

// Every file of the app is an input, dist included: only Vite's
// `ignoreInput(outDir)` keeps its own output out of the key.
function runnerArgs(viteArgs: string[]): string[] {
  return [runner, '--cache-dir', cacheDir, '--input', '**', '--output', 'dist', '--', process.execPath, vite, ...viteArgs];
}

function build(env: Record<string, string>): Promise<Run> {
  return run(process.execPath, runnerArgs(['build']), { cwd: app, env: runnerEnv(env) });
}

/** The runner's one status line; fails unless there is exactly one. */
function status(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] ?? '';
}

/** Every file under `dir`, relative, with its content. */
function tree(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = join(dir, entry.name);
    if (entry.isDirectory()) Object.assign(out, tree(file, `${prefix}${entry.name}/`));
    else out[`${prefix}${entry.name}`] = readFileSync(file, 'utf8');
  }
  return out;
}

function bundle(): string {
  const assets = join(app, 'dist', 'assets');
  return readdirSync(assets)
    .filter((name) => name.endsWith('.js'))
    .map((name) => readFileSync(join(assets, name), 'utf8'))
    .join('\n');
}

function entryCount(): number {
  // Task directories; the stat cache of traced inputs sits beside them.
  const tasks = readdirSync(cacheDir, { withFileTypes: true }).filter((entry) => entry.isDirectory());
  return tasks.reduce((n, task) => n + readdirSync(join(cacheDir, task.name)).filter((id) => !id.startsWith('.')).length, 0);
}

const production = { NODE_ENV: 'production', VITE_API_URL: 'https://staging.example' };

describe('stock Vite build under the reference caching runner', () => {
  let firstBuild: Record<string, string> = {};

  it('misses the first time and writes dist', async () => {
    const result = await build(production);
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toBe('cache miss: no entry');
    expect(result.stdout).toContain('built in');
    expect(bundle()).toContain('branch:production');
    expect(bundle()).not.toContain('branch:development');
    expect(bundle()).toContain('https://staging.example');
    firstBuild = tree(join(app, 'dist'));
    expect(Object.keys(firstBuild)).toContain('index.html');
  });

  it('hits once dist is deleted, restoring it and replaying the output', async () => {
    rmSync(join(app, 'dist'), { recursive: true });
    const result = await build(production);
    expect(result.code).toBe(0);
    expect(status(result)).toBe('cache hit');
    expect(tree(join(app, 'dist'))).toEqual(firstBuild);
    expect(result.stdout).toContain('built in');
  });

  it('still hits after an unrelated env change', async () => {
    const result = await build({ ...production, UNRELATED: 'changed', VITEX: 'not a VITE_ var', HOME: '/elsewhere' });
    expect(status(result)).toBe('cache hit');
  });

  it('misses naming NODE_ENV when it goes production → development, and the bundle changes branch', async () => {
    const result = await build({ ...production, NODE_ENV: 'development' });
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toBe('cache miss: env NODE_ENV changed');
    expect(bundle()).toContain('branch:development');
    expect(bundle()).not.toContain('branch:production');
  });

  it('misses naming the VITE_ query when a VITE_ var changes, and the bundle has the new value', async () => {
    const result = await build({ ...production, NODE_ENV: 'development', VITE_API_URL: 'https://prod.example' });
    expect(status(result)).toBe('cache miss: env query VITE_ (prefix) changed');
    expect(bundle()).toContain('https://prod.example');
    expect(bundle()).not.toContain('https://staging.example');
  });

  it('misses naming the query when a VITE_ var appears', async () => {
    const result = await build({ ...production, NODE_ENV: 'development', VITE_API_URL: 'https://prod.example', VITE_EXTRA: '1' });
    expect(status(result)).toBe('cache miss: env query VITE_ (prefix) changed');
  });

  it('hits the production entry again when the env goes back', async () => {
    const result = await build(production);
    expect(status(result)).toBe('cache hit');
    // Every file of the production build, as it was. A restore deletes
    // nothing its entry does not name, so the development build's asset
    // (another hashed name, which index.html no longer loads) stays beside it.
    expect(tree(join(app, 'dist'))).toMatchObject(firstBuild);
  });

  it('misses naming a changed source file', async () => {
    const main = join(app, 'src', 'main.js');
    writeFileSync(main, `${readFileSync(main, 'utf8')}\nconsole.log('edited');\n`);
    const result = await build(production);
    expect(status(result)).toBe('cache miss: input src/main.js changed');
    expect(bundle()).toContain('edited');
  });

  it('never stores a failed build', async () => {
    const broken = join(app, 'src', 'broken.js');
    const main = join(app, 'src', 'main.js');
    const source = readFileSync(main, 'utf8');
    writeFileSync(broken, 'export const x = ;\n');
    writeFileSync(main, `import './broken.js';\n${source}`);
    const entries = entryCount();
    const first = await build(production);
    expect(first.code).not.toBe(0);
    expect(status(first)).toMatch(/^cache skipped: exit: the command exited with code [1-9]/);
    const second = await build(production);
    expect(status(second)).toMatch(/^cache skipped: /);
    expect(entryCount()).toBe(entries);
    writeFileSync(main, source);
    rmSync(broken);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts a long-running Vite command under the runner, waits until it serves
 * HTTP, stops it with SIGTERM (SIGKILL if it hangs), and returns the run.
 */
async function serveAndStop(viteArgs: string[]): Promise<{ result: Run; page: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, runnerArgs([...viteArgs, '--port', String(port), '--strictPort', '--host', '127.0.0.1']), {
    cwd: app,
    env: runnerEnv(production),
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a hung run can be killed with Vite under it.
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const killAll = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const hardStop = setTimeout(killAll, 20_000);
  try {
    let page = '';
    const deadline = Date.now() + 15_000;
    while (!page && Date.now() < deadline && child.exitCode === null) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/`);
        if (response.ok) page = await response.text();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    child.kill('SIGTERM');
    const result = await exited;
    return { result, page };
  } finally {
    clearTimeout(hardStop);
    killAll();
  }
}

// Stopped with SIGTERM so the runner can report, and killed with their process group if hung: Unix only.
describe.runIf(process.platform !== 'win32')('long-running Vite commands under the reference caching runner', () => {
  it('a dev server is reported as not cacheable', async () => {
    const entries = entryCount();
    const { result, page } = await serveAndStop([]);
    expect(page, result.stderr).toContain('/src/main.js');
    expect(result.signal).toBeNull();
    // Vite says no reason; the reports name its code and the process.
    expect(status(result)).toMatch(/^cache skipped: disable-cache: disableCache\(\) with no reason, from vite … _createServer \(pid \d+: \S+ \S+vite\.js /);
    expect(entryCount()).toBe(entries);
  });

  it('vite preview is reported as not cacheable', async () => {
    const entries = entryCount();
    const { result, page } = await serveAndStop(['preview']);
    expect(page, result.stderr).toContain('<div id="app">');
    expect(status(result)).toMatch(/^cache skipped: disable-cache: disableCache\(\) with no reason, from vite … preview \(pid \d+: \S+ \S+vite\.js preview /);
    expect(entryCount()).toBe(entries);
  });
});
