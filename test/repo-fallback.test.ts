// Zero configuration where nothing traces: the reference runner with
// `--trace off` (as on macOS and Windows) keys a run on its git repository's
// content. Each kind of file a build may read, mutated in turn, misses by
// name; what a tool ignored and the run's own outputs do not count.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { root, run, type Run } from './helpers.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;

// Reads its sources (through nothing runner-aware can see), keeps a private
// cache it tells the runner to ignore, and writes dist/out.txt.
const build = `
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
const { ignoreInput } = await import(${JSON.stringify(api)});
ignoreInput('.cache');
mkdirSync('.cache', { recursive: true });
writeFileSync('.cache/state', String(Date.now()));
const text = readdirSync('src').sort().map((name) => readFileSync('src/' + name, 'utf8')).join('');
mkdirSync('dist', { recursive: true });
writeFileSync('dist/out.txt', text.toUpperCase());
console.log('built');
`;

let work = '';
let app = '';

function write(rel: string, text: string): void {
  mkdirSync(dirname(join(app, rel)), { recursive: true });
  writeFileSync(join(app, rel), text);
}

function git(...args: string[]): void {
  execFileSync('git', ['-c', 'user.email=ci@example.com', '-c', 'user.name=ci', ...args], { cwd: app, stdio: 'ignore' });
}

function cacheRun(): Promise<Run> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return run(process.execPath, [runner, '--trace', 'off', '--', process.execPath, 'build.mjs'], {
    cwd: app,
    env: { PATH: process.env['PATH'] ?? '', ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }) },
  });
}

function status(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] ?? '';
}

const HIT = "cache hit (keyed on the repository's content)";

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'runner-aware-repo-'));
  app = join(work, 'app');
  mkdirSync(app);
  write('build.mjs', build);
  write('src/a.txt', 'a\n');
  write('src/b.txt', 'b\n');
  write('.gitignore', 'dist/\n.cache/\n.env.local\ntmp/\nnode_modules/\n');
  write('.env.local', 'VITE_KEY=1\n');
  write('tmp/notes.txt', 'scratch\n');
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'app');
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('the reference runner where nothing traces, in a git repository', () => {
  it('stores the first run keyed on the repository, and hits the next, restoring dist', async () => {
    const first = await cacheRun();
    expect(first.code, first.stderr).toBe(0);
    expect(status(first)).toBe("cache miss: no entry (keyed on the repository's content)");
    rmSync(join(app, 'dist'), { recursive: true });
    const hit = await cacheRun();
    expect(status(hit)).toBe(HIT);
    expect(hit.stdout).toBe('built\n');
    expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe('A\nB\n');
  });

  it('misses by name when a tracked file, an untracked file, .env.local or another ignored file changes', async () => {
    for (const [rel, text] of [
      ['src/a.txt', 'changed\n'],
      ['src/new.txt', 'added\n'],
      ['.env.local', 'VITE_KEY=2\n'],
      ['tmp/notes.txt', 'other\n'],
    ] as const) {
      const was = (() => {
        try {
          return readFileSync(join(app, rel), 'utf8');
        } catch {
          return null;
        }
      })();
      write(rel, text);
      const changed = await cacheRun();
      expect(changed.code, changed.stderr).toBe(0);
      expect(status(changed), rel).toBe(`cache miss: repository file ${rel} ${was === null ? 'added' : 'changed'} (keyed on the repository's content)`);
      if (was === null) rmSync(join(app, rel));
      else write(rel, was);
      // Put back: the first entry holds again, and its dist comes back.
      expect(status(await cacheRun()), `${rel} put back`).toBe(HIT);
      expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe('A\nB\n');
    }
  });

  it('still hits when what a tool ignored changes or an output is deleted', async () => {
    write('.cache/state', 'anything');
    rmSync(join(app, 'dist', 'out.txt'));
    expect(status(await cacheRun())).toBe(HIT);
    expect(readFileSync(join(app, 'dist', 'out.txt'), 'utf8')).toBe('A\nB\n');
  });

  it('never stores a run that rewrote a file it may have read', async () => {
    write('fmt.mjs', "import { readFileSync, writeFileSync } from 'node:fs'; writeFileSync('src/b.txt', readFileSync('src/b.txt', 'utf8').trim() + ' formatted\\n');");
    const result = await run(process.execPath, [runner, '--trace', 'off', '--', process.execPath, 'fmt.mjs'], { cwd: app, env: { PATH: process.env['PATH'] ?? '' } });
    expect(result.code, result.stderr).toBe(0);
    expect(status(result)).toBe('cache skipped: the command changed or deleted files of the repository it may have read: src/b.txt');
    git('checkout', '--', 'src/b.txt');
    rmSync(join(app, 'fmt.mjs'));
  });
});
