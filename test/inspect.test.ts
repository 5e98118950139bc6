// `runner-aware inspect` as a user drives it: its help and version, the out
// file, signals to the whole command, exiting as the command did, and the
// same verdict as the reference caching runner.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { describeReason, packageManagerPaths, type Reports, type Verdict } from '../dist/runner.mjs';
import { root, run, type Run } from './helpers.js';

const cliPath = join(root, 'dist', 'cli.cjs');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const unix = process.platform !== 'win32';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ra-inspect-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]): Promise<Run> {
  return run(process.execPath, [cliPath, ...args]);
}

/** Polls `check` every 20 ms until it holds, or fails after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('inspect: help and version', () => {
  it('prints its help with every option, and exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['inspect', '--help']]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stderr).toBe('');
      for (const text of ['Usage: runner-aware inspect', '--json', '--out FILE', '--close-timeout MS', '--version', 'Exit status', 'Examples:']) {
        expect(result.stdout).toContain(text);
      }
    }
  });

  it('prints the package version', async () => {
    for (const args of [['--version'], ['-v'], ['inspect', '--version']]) {
      const result = await cli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${version}\n`);
    }
  });

  it('answers a typo with the usage and exit 2, without a stack trace', async () => {
    for (const args of [['inspect', '--jsno', '--', 'true'], ['inspcet'], []]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/^runner-aware: .+\nUsage: runner-aware inspect /);
      expect(result.stderr).toContain('runner-aware --help');
      expect(result.stderr).not.toMatch(/^\s+at /m);
    }
  });
});

describe('inspect --out', () => {
  it('writes the Reports JSON with its verdict even without --json', async () => {
    const out = join(dir, 'reports.json');
    const result = await cli(['inspect', '--out', out, '--', process.execPath, '-e', "require('runner-aware').getEnv('HOME'); console.log('hi')"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('hi\n');
    const reports = JSON.parse(readFileSync(out, 'utf8'));
    expect(reports.envs.HOME.tracked).toBe(true);
    expect(reports.verdict).toEqual({ cacheable: true, reasons: [] });
  });

  it('checks its path before the command runs', async () => {
    const marker = join(dir, 'ran');
    const result = await cli(['inspect', '--out', join(dir, 'no', 'such', 'dir', 'reports.json'), '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^runner-aware: cannot write --out .*reports\.json: ENOENT/);
    expect(existsSync(marker), 'the command must not run').toBe(false);
  });
});

/**
 * Runs `inspect <args>` until the process that writes its pid to `ready`
 * has started, sends inspect SIGTERM, and hands `check` how inspect ended and
 * what it printed; every process is killed afterwards.
 */
async function terminateInspect(args: string[], ready: string, check: (exit: [number | null, NodeJS.Signals | null], stderr: string) => void): Promise<void> {
  const child = spawn(process.execPath, [cliPath, 'inspect', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
  let pid = 0;
  try {
    await until(() => existsSync(ready) && readFileSync(ready, 'utf8') !== '', 15_000, 'the command to start');
    pid = Number(readFileSync(ready, 'utf8'));
    child.kill('SIGTERM');
    check(await exited, stderr);
  } finally {
    child.kill('SIGKILL');
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

describe.runIf(unix)('inspect: signals and exit', () => {
  // Traced (the default here), the command runs under the trace supervisor,
  // which passes the signal on itself: still once, to every process.
  it.each(['auto', 'off'])('forwards SIGTERM to the whole command, grandchildren included (--trace %s)', async (trace) => {
    const ready = join(dir, 'ready');
    const got = join(dir, 'got');
    // A grandchild in the background: the shell waits for it, and only a
    // signal to the process group reaches it.
    const grandchild = `process.on('SIGTERM', () => { require('fs').writeFileSync(${JSON.stringify(got)}, 'SIGTERM'); process.exit(0); }); require('fs').writeFileSync(${JSON.stringify(ready)}, String(process.pid)); setInterval(() => {}, 1000);`;
    await terminateInspect(['--trace', trace, '--', 'sh', '-c', `"${process.execPath}" -e "${grandchild.replaceAll('"', '\\"')}" & wait`], ready, ([code, signal], stderr) => {
      expect(readFileSync(got, 'utf8'), 'the grandchild got SIGTERM').toBe('SIGTERM');
      // The shell was killed by it: inspect reports that, then ends the same way.
      expect(stderr).toContain('exit: the command was killed by SIGTERM');
      expect([code, signal]).toEqual([null, 'SIGTERM']);
    });
  });

  it.each(['auto', 'off'])('delivers one SIGTERM to the command, not two (--trace %s)', async (trace) => {
    const ready = join(dir, 'ready');
    const got = join(dir, 'got');
    // The command counts the SIGTERMs it gets in the 300 ms after the first.
    const counter = `let n = 0; process.on('SIGTERM', () => { if (n++ === 0) setTimeout(() => { require('fs').writeFileSync(${JSON.stringify(got)}, String(n)); process.exit(0); }, 300); }); require('fs').writeFileSync(${JSON.stringify(ready)}, String(process.pid)); setInterval(() => {}, 1000);`;
    await terminateInspect(['--trace', trace, '--', process.execPath, '-e', counter], ready, (exit) => {
      expect(exit).toEqual([0, null]);
      expect(readFileSync(got, 'utf8'), 'SIGTERMs the command got').toBe('1');
    });
  });

  it('ends by the signal that killed the command, after printing the report', async () => {
    const out = join(dir, 'reports.json');
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
      const result = await cli(['inspect', '--out', out, '--', 'sh', '-c', `kill -${signal.slice(3)} $$`]);
      expect([result.code, result.signal]).toEqual([null, signal]);
      const reports = JSON.parse(readFileSync(out, 'utf8'));
      expect(reports.verdict.reasons).toEqual([{ kind: 'exit', message: `the command was killed by ${signal}` }]);
    }
    // Untraced, so the summary is the same on every machine.
    const text = await cli(['inspect', '--trace', 'off', '--', 'sh', '-c', 'kill -TERM $$']);
    expect(text.signal).toBe('SIGTERM');
    expect(text.stderr).toBe('runner-aware: exit 143, 0 clients, not cacheable\n  not cacheable because:\n    exit: the command was killed by SIGTERM\n');
  });

  it('exits with the code of a command that exited', async () => {
    const result = await cli(['inspect', '--', 'sh', '-c', 'exit 42']);
    expect([result.code, result.signal]).toEqual([42, null]);
  });
});

describe('inspect and the reference runner', () => {
  it('give the same verdict and reasons', async () => {
    const api = JSON.stringify(pathToFileURL(join(root, 'dist', 'index.mjs')).href);
    writeFileSync(join(dir, 'tool.mjs'), `const ra = await import(${api}); ra.disableCache('dev server'); ra.addValue('x', '1'); process.exit(3);`);
    const tool = [process.execPath, 'tool.mjs'];
    const out = join(dir, 'reports.json');
    const inspected = await run(process.execPath, [cliPath, 'inspect', '--out', out, '--', ...tool], { cwd: dir });
    expect(inspected.code).toBe(3);
    const reports = JSON.parse(readFileSync(out, 'utf8')) as { verdict: Verdict };
    const fromInspect = reports.verdict.reasons.map(describeReason);
    const summary = await run(process.execPath, [cliPath, 'inspect', '--', ...tool], { cwd: dir });
    const summaryLines = summary.stderr.split('\n');
    const from = summaryLines.indexOf('  not cacheable because:') + 1;
    const summaryReasons = summaryLines.slice(from, summaryLines.findIndex((line, i) => i >= from && !line.startsWith('    '))).map((line) => line.trim());

    const cached = await run(process.execPath, [join(root, 'examples', 'cache-runner', 'index.mjs'), '--cache-dir', join(dir, 'cache'), '--', ...tool], {
      cwd: dir,
      env: { PATH: process.env['PATH'] ?? '', TMPDIR: tmpdir() },
    });
    expect(cached.code).toBe(3);
    const skipped = /^cache skipped: (.*)$/m.exec(cached.stderr)?.[1];
    expect(skipped, cached.stderr).toBeDefined();
    const fromRunner = skipped!.split('; ');

    const withoutPids = (reasons: string[]) => reasons.map((r) => r.replace(/\(pid \d+: \S+ tool\.mjs\)$/, '(pid N: node tool.mjs)'));
    expect(withoutPids(fromInspect)).toEqual(['disable-cache: dev server, from tool.mjs (pid N: node tool.mjs)', 'exit: the command exited with code 3']);
    expect(withoutPids(summaryReasons)).toEqual(withoutPids(fromInspect));
    expect(withoutPids(fromRunner)).toEqual(withoutPids(fromInspect));
  });
});

describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('inspect: what the command read and wrote', () => {
  const build = [
    process.execPath,
    '-e',
    "const fs = require('fs'); fs.mkdirSync('out', { recursive: true }); fs.writeFileSync('out/b.txt', fs.readFileSync('in.txt', 'utf8')); fs.existsSync('.env')",
  ];

  it('traces it, and shows the inputs and outputs a runner would infer', async () => {
    const cwd = realpathSync(dir);
    writeFileSync(join(cwd, 'in.txt'), 'in');
    const out = join(cwd, 'reports.json');
    const inspected = await run(process.execPath, [cliPath, 'inspect', '--out', out, '--', ...build], { cwd });
    expect(inspected.code, inspected.stderr).toBe(0);
    const reports = JSON.parse(readFileSync(out, 'utf8')) as Reports & { verdict: Verdict };
    expect(reports.trace).toMatchObject({ mode: 'preload', complete: true, incomplete: [] });
    expect(reports.trace?.read).toContain(join(cwd, 'in.txt'));
    expect(reports.trace?.missing).toContain(join(cwd, '.env'));
    expect(reports.trace?.written).toEqual([join(cwd, 'out'), join(cwd, 'out', 'b.txt')]);
    expect(reports.verdict).toEqual({ cacheable: true, reasons: [] });

    const text = await run(process.execPath, [cliPath, 'inspect', '--', ...build], { cwd });
    expect(text.stderr).toMatch(/^runner-aware: exit 0, 0 clients, cacheable\n/);
    expect(text.stderr).toMatch(
      /\n {2}trace \(preload, complete\): \d+ inputs \(\d+ content(, \d+ listing)?, \d+ existence; \d+ outside the working directory\), 1 output\n {2}traced outputs:\n {4}out\/b\.txt\n$/,
    );

    const untraced = await run(process.execPath, [cliPath, 'inspect', '--trace', 'off', '--', ...build], { cwd });
    expect(untraced.stderr).toBe('runner-aware: exit 0, 0 clients, cacheable\n');
  });

  it('says the command modified its input, in the reference runner\'s words, unless --ignore covers it', async () => {
    const cwd = realpathSync(dir);
    writeFileSync(join(cwd, 'count.txt'), '1');
    const bump = [process.execPath, '-e', "const fs = require('fs'); fs.writeFileSync('count.txt', String(Number(fs.readFileSync('count.txt', 'utf8')) + 1))"];
    const out = join(cwd, 'reports.json');
    const inspected = await run(process.execPath, [cliPath, 'inspect', '--out', out, '--', ...bump], { cwd });
    expect(inspected.code, inspected.stderr).toBe(0);
    const { verdict: fromInspect } = JSON.parse(readFileSync(out, 'utf8')) as { verdict: Verdict };
    expect(fromInspect).toEqual({ cacheable: false, reasons: [{ kind: 'modified-input', message: `the command modified its input: ${join(cwd, 'count.txt')}` }] });

    const cached = await run(process.execPath, [join(root, 'examples', 'cache-runner', 'index.mjs'), '--cache-dir', join(cwd, 'cache'), '--', ...bump], {
      cwd,
      env: { PATH: process.env['PATH'] ?? '', TMPDIR: tmpdir() },
    });
    expect(cached.code, cached.stderr).toBe(0);
    expect(cached.stderr.split('\n')).toContain(`cache skipped: ${fromInspect.reasons.map(describeReason).join('; ')}`);
    expect(readFileSync(join(cwd, 'count.txt'), 'utf8')).toBe('3');

    const ignored = await run(process.execPath, [cliPath, 'inspect', '--ignore', 'count.txt', '--out', out, '--', ...bump], { cwd });
    expect(ignored.code, ignored.stderr).toBe(0);
    const overruled = JSON.parse(readFileSync(out, 'utf8')) as Reports & { verdict: Verdict };
    // Besides the package managers' own files, which inspect ignores on every run.
    const packageManager = new Set(packageManagerPaths(process.env));
    expect(overruled.ignoredInputs.filter((path) => !packageManager.has(path))).toEqual([join(cwd, 'count.txt')]);
    expect(overruled.verdict).toEqual({ cacheable: true, reasons: [] });
  });

  it('answers an unknown --trace mode with a usage error, before running anything', async () => {
    const result = await cli(['inspect', '--trace', 'strace', '--', 'sh', '-c', `touch ${join(dir, 'ran')}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^runner-aware: --trace strace: expected auto, preload, seccomp or off\n/);
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  });
});
