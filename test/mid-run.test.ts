// An input that changes while the task runs: an editor saving a file into a
// directory the build listed, deleting a file it read, creating one it looked
// for. What the build read is then not what a look-up would see, so the
// reference runner must not store the run, or the next run would hit stale.
// Real processes: the reference runner, a traced Node build that waits for a
// signal halfway, and this test changing the project meanwhile.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { root } from './helpers.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
let work = '';

beforeAll(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-mid-run-')));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A project whose build lists src/, reads src/a.ts, looks for .env.local, then waits for SIGUSR2 before writing dist/. */
function project(name: string): string {
  const app = join(work, name);
  mkdirSync(join(app, 'src'), { recursive: true });
  writeFileSync(join(app, 'src', 'a.ts'), 'export const a = 1;');
  writeFileSync(
    join(app, 'build.mjs'),
    `import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
const sources = readdirSync('src');
const a = readFileSync('src/a.ts', 'utf8');
const local = existsSync('.env.local');
process.on('SIGUSR2', () => {
  mkdirSync('dist', { recursive: true });
  writeFileSync('dist/out.txt', JSON.stringify({ sources, a, local }));
  process.exit(0);
});
console.log('ready', process.pid);
setInterval(() => {}, 1000);`,
  );
  return app;
}

/** Runs the reference runner on the build; `during` changes the project once the build has read it. */
function build(app: string, during: () => void): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [runner, '--', process.execPath, 'build.mjs'], {
      cwd: app,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const pid = /^ready (\d+)$/m.exec(stdout)?.[1];
      if (pid && !signalled) {
        signalled = true;
        during();
        try {
          process.kill(Number(pid), 'SIGUSR2');
        } catch {
          // A hit replays what the build once printed, pid included: nothing runs.
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

const status = (stderr: string): string => stderr.split('\n').find((line) => /^cache (hit|miss|skipped)/.test(line) && !line.startsWith('cache miss')) ?? stderr;

describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('an input that changes while the task runs', () => {
  it.each([
    ['a file saved into a directory it listed', (app: string) => writeFileSync(join(app, 'src', 'extra.ts'), 'export {};'), /src/],
    ['a file it read, deleted', (app: string) => unlinkSync(join(app, 'src', 'a.ts')), /src\/a\.ts \(removed\)/],
    ['a file it looked for, created', (app: string) => writeFileSync(join(app, '.env.local'), 'VITE_X=1'), /\.env\.local \(added\)/],
  ] as const)('keeps the run from being stored: %s', async (_, change, named) => {
    const app = project(`app-${Math.random().toString(36).slice(2)}`);
    const first = await build(app, () => change(app));
    expect(first.code, first.stderr).toBe(0);
    const skipped = status(first.stderr);
    expect(skipped, first.stderr).toMatch(/^cache skipped: inputs changed while the command ran: /);
    expect(skipped).toMatch(named);
  });

  it('stores a run nothing changed under, which then hits', async () => {
    const app = project('app-still');
    const first = await build(app, () => undefined);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(/^cache skipped/m);
    const again = await build(app, () => undefined);
    expect(again.stderr).toMatch(/^cache hit/m);
  });
});
