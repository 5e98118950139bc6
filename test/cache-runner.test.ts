// The reference caching runner (examples/cache-runner) driven by a scripted
// tool that uses every verb the runner keys or archives on.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { root, run, type Run } from './helpers.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;
const rawPeer = pathToFileURL(join(root, 'test', 'scenarios', 'raw-peer.mjs')).href;

// Writes out/a.txt (archived) and out/.tmp/scratch (ignored), declares
// config.json as an input, asks for MODE, and on request reports setting.txt
// as a value (never as an input), leaves a daemon connected, or misbehaves.
const tool = `
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
const ra = await import(${JSON.stringify(api)});
// The tool's strict env has no RUNNER_AWARE_TRANSPORT: the raw peer, like the
// client, uses the socket, or the FIFOs when the runner serves only those.
const { connect } = await import(${JSON.stringify(rawPeer)});
const args = process.argv.slice(2);
mkdirSync('out/.tmp', { recursive: true });
const config = readFileSync('config.json', 'utf8');
writeFileSync('out/a.txt', 'built with ' + config.trim() + ' mode ' + ra.getEnv('MODE'));
writeFileSync('out/.tmp/scratch', 'scratch');
ra.addInput('config.json');
ra.addOutput('out');
ra.ignoreOutput('out/.tmp');
console.log('tool ran', JSON.stringify({ other: process.env.OTHER ?? null, extra: process.env.EXTRA ?? null }));
console.error('tool warning');
if (args.includes('watch')) ra.disableCache('watch mode');
if (args.includes('value')) ra.addValue('config-hash', readFileSync('setting.txt', 'utf8'));
if (args.includes('daemon')) {
  const daemon = spawn(process.execPath, ['daemon.mjs'], { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  await new Promise((resolve) => daemon.once('message', resolve));
  writeFileSync('daemon.pid', String(daemon.pid));
  daemon.disconnect();
  daemon.unref();
}
if (args.includes('bad-frame')) {
  await new Promise((resolve) => {
    // A peer with the token that breaks the protocol after its hello.
    const hello = Buffer.from(JSON.stringify({ op: 'hello', minVersion: 1, maxVersion: 2, token: process.env.RUNNER_AWARE_TOKEN, pid: process.pid }));
    const header = Buffer.alloc(4);
    header.writeUInt32LE(hello.length);
    const socket = connect(process.env.RUNNER_AWARE_SOCKET, () => socket.end(Buffer.concat([header, hello, Buffer.from([0xff, 0xff, 0xff, 0xff])])));
    socket.resume();
    socket.on('close', resolve);
    socket.on('error', resolve);
  });
}
if (args.includes('fail')) process.exit(3);
`;

// A daemon that inherited the task's env: it reports, says it is up, and stays
// connected well past the runner's close grace period.
const daemon = `
const ra = await import(${JSON.stringify(api)});
ra.addOutput('out');
process.send('up');
setTimeout(() => {}, 30_000);
`;

let work = '';
let app = '';
let cacheDir = '';

/** RUNNER_AWARE_TRANSPORT for the runner, when the suite runs with one (`npm run test:fifo`). */
function transport(): Record<string, string> {
  const value = process.env['RUNNER_AWARE_TRANSPORT'];
  return value === undefined ? {} : { RUNNER_AWARE_TRANSPORT: value };
}

function cacheRun(toolArgs: string[] = [], env: Record<string, string> = {}, runnerArgs: string[] = []): Promise<Run> {
  return run(process.execPath, [runner, '--cache-dir', cacheDir, ...runnerArgs, '--', process.execPath, 'tool.mjs', ...toolArgs], {
    cwd: app,
    env: { PATH: process.env['PATH'] ?? '', ...transport(), ...env },
  });
}

function status(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] ?? '';
}

function entryCount(): number {
  if (!existsSync(cacheDir)) return 0;
  // Task directories; the stat cache of traced inputs sits beside them.
  const tasks = readdirSync(cacheDir, { withFileTypes: true }).filter((entry) => entry.isDirectory());
  return tasks.reduce((n, task) => n + readdirSync(join(cacheDir, task.name)).filter((id) => !id.startsWith('.')).length, 0);
}

/** A fresh app dir with the test tool, `config.json` and `files`, and an empty cache dir beside it. */
function makeApp(files: Record<string, string>): void {
  work = mkdtempSync(join(tmpdir(), 'runner-aware-cache-runner-'));
  app = join(work, 'app');
  cacheDir = join(work, 'cache');
  mkdirSync(app);
  writeFileSync(join(app, 'tool.mjs'), tool);
  writeFileSync(join(app, 'config.json'), '{"v":1}\n');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(app, name), text);
}

describe('reference caching runner', () => {
  beforeEach(() => makeApp({ 'daemon.mjs': daemon }));
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  it('archives declared outputs minus ignored ones and replays stdout and stderr', async () => {
    const first = await cacheRun();
    expect(first.code, first.stderr).toBe(0);
    expect(status(first)).toBe('cache miss: no entry');
    expect(first.stdout).toContain('tool ran');
    rmSync(join(app, 'out'), { recursive: true });

    const second = await cacheRun();
    expect(second.code).toBe(0);
    expect(status(second)).toBe('cache hit');
    expect(second.stdout).toBe(first.stdout);
    expect(second.stderr).toBe('tool warning\ncache hit\n');
    expect(readFileSync(join(app, 'out', 'a.txt'), 'utf8')).toBe('built with {"v":1} mode undefined');
    expect(existsSync(join(app, 'out', '.tmp')), 'an ignored output is not archived').toBe(false);
  });

  it('keys on a declared input file and on an absent env var', async () => {
    expect(status(await cacheRun())).toBe('cache miss: no entry');
    writeFileSync(join(app, 'config.json'), '{"v":2}\n');
    expect(status(await cacheRun())).toBe('cache miss: input config.json changed');
    expect(status(await cacheRun([], { MODE: 'fast' }))).toBe('cache miss: env MODE added');
    expect(readFileSync(join(app, 'out', 'a.txt'), 'utf8')).toBe('built with {"v":2} mode fast');
    expect(status(await cacheRun([], { MODE: 'fast', UNRELATED: '1' }))).toBe('cache hit');
  });

  it('gives the child a strict env plus --env names, and keys on those', async () => {
    const first = await cacheRun([], { OTHER: 'o', EXTRA: 'e1' }, ['--env', 'EXTRA']);
    expect(first.stdout).toContain('{"other":null,"extra":"e1"}');
    expect(status(await cacheRun([], { OTHER: 'changed', EXTRA: 'e1' }, ['--env', 'EXTRA']))).toBe('cache hit');
    expect(status(await cacheRun([], { EXTRA: 'e2' }, ['--env', 'EXTRA']))).toBe('cache miss: env EXTRA changed');
  });

  it('never stores a run a tool disabled caching for, that failed, or that saw protocol errors', async () => {
    const watch = await cacheRun(['watch']);
    expect(status(watch)).toMatch(/^cache skipped: disable-cache: watch mode, from tool\.mjs \(pid \d+: \S+ tool\.mjs watch\)$/);
    const failed = await cacheRun(['fail']);
    expect(failed.code).toBe(3);
    expect(status(failed)).toBe('cache skipped: exit: the command exited with code 3');
    const bad = await cacheRun(['bad-frame']);
    expect(bad.code).toBe(0);
    expect(status(bad)).toMatch(/^cache skipped: channel-error: a tool broke the protocol, so what it sent after that was lost: frame of 4294967295 bytes exceeds /);
    expect(entryCount()).toBe(0);
    expect(status(await cacheRun(['watch']))).toMatch(/^cache skipped: /);
  });

  it('never stores a run with a client still connected at close', async () => {
    const result = await cacheRun(['daemon']);
    try {
      expect(result.code, result.stderr).toBe(0);
      // The daemon also outlived the task, so the trace cannot say what it did afterwards.
      expect(status(result)).toMatch(
        /^cache skipped: still-connected: a tool was still connected when the close grace period ended; what it says later is lost \(pid \d+\); trace: the file-access trace may be incomplete: processes of the task outlived it, and what they did afterwards was not seen$/,
      );
      expect(entryCount()).toBe(0);
    } finally {
      const pid = Number(readFileSync(join(app, 'daemon.pid'), 'utf8'));
      try {
        process.kill(pid);
      } catch {
        // Already gone.
      }
    }
  });

  it('checks addValue values on every run it makes, since a look-up cannot', async () => {
    // Untraced: a traced run would see the read of setting.txt and key on it.
    const cacheRun_ = (args: string[], env: Record<string, string> = {}, flags: string[] = []) =>
      cacheRun(args, env, ['--trace', 'off', '--input', 'config.json', ...flags]);
    writeFileSync(join(app, 'setting.txt'), 'a');
    expect(status(await cacheRun_(['value']))).toBe('cache miss: no entry');

    // The value changes with inputs and env unchanged: nothing before the run can see it.
    writeFileSync(join(app, 'setting.txt'), 'b');
    expect(status(await cacheRun_(['value']))).toBe('cache hit');

    // A run with the same inputs and env and another value shows the key is incomplete.
    const forced = await cacheRun_(['value'], {}, ['--force']);
    expect(forced.code).toBe(0);
    expect(status(forced)).toBe(
      'cache skipped: value config-hash changed with the same inputs and env, so the key misses what it depends on (stored entry dropped)',
    );
    expect(entryCount()).toBe(0);
    expect(status(await cacheRun_(['value']))).toBe('cache miss: no entry');
    expect(status(await cacheRun_(['value'], {}, ['--force']))).toBe('cache miss: forced');
    expect(entryCount()).toBe(1);

    // A miss for another reason names the values that changed too, once the run told them.
    writeFileSync(join(app, 'config.json'), '{"v":2}\n');
    writeFileSync(join(app, 'setting.txt'), 'c');
    expect(status(await cacheRun_(['value']))).toBe('cache miss: input config.json changed, value config-hash changed');
    expect(status(await cacheRun_(['value']))).toBe('cache hit');
  });
});

describe('reference caching runner: its command line', () => {
  const envTool = `console.log(JSON.stringify(Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('VITE_')))));`;

  beforeEach(() => makeApp({ 'env-tool.mjs': envTool }));
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  /** The runner with `args` (its flags, `--` and a command), in the app dir, with `env` and PATH only. */
  function runner_(args: string[], env: Record<string, string> = {}): Promise<Run> {
    return run(process.execPath, [runner, ...args], {
      cwd: app,
      env: { PATH: process.env['PATH'] ?? '', TMPDIR: tmpdir(), ...env },
    });
  }
  const toolCommand = ['--', process.execPath, 'tool.mjs'];

  it('prints its usage for --help and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const result = await runner_([flag]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      for (const text of ['usage: cache-runner', '--env NAME', '--input GLOB', '--dry-run', '--clean', 'Exit status']) expect(result.stdout).toContain(text);
    }
  });

  it('answers a typo, a missing command or a bad env glob with a usage error, not a stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [['--forse', ...toolCommand], /^cache-runner: unknown option --forse\n/],
      // The command's own option, with no -- before the command: the line that works.
      [['--trace', 'off', 'node', '-e', '1'], /^cache-runner: unknown option -e: options of the command go after --, as in: cache-runner --trace off -- node -e 1\n/],
      [['--env'], /^cache-runner: Option '--env <value>' argument missing/],
      [[], /^cache-runner: no command: put it after --\n/],
      [['--env', 'VITE_[', ...toolCommand], /^cache-runner: --env invalid env glob "VITE_\["/],
    ];
    for (const [args, message] of cases) {
      const result = await runner_(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toContain('\nusage: cache-runner ');
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(result.stdout).toBe('');
    }
  });

  it('hands the command every variable an --env glob matches and keys on the whole match set', async () => {
    const args = ['--cache-dir', cacheDir, '--env', 'VITE_*', '--', process.execPath, 'env-tool.mjs'];
    const env = { VITE_A: '1', VITE_B: '2', OTHER: 'o' };
    const first = await runner_(args, env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout.split('\n')[0] ?? '')).toEqual({ VITE_A: '1', VITE_B: '2' });
    expect(status(first)).toBe('cache miss: no entry');
    expect(status(await runner_(args, { ...env, OTHER: 'changed' }))).toBe('cache hit');
    expect(status(await runner_(args, { ...env, VITE_A: 'changed' }))).toBe('cache miss: env query VITE_* changed');
    expect(status(await runner_(args, { ...env, VITE_C: 'new' }))).toBe('cache miss: env query VITE_* changed');
    expect(status(await runner_(args, env))).toBe('cache hit');
    // A name without glob characters stays a literal name.
    const literal = await runner_(['--cache-dir', cacheDir, '--env', 'VITE_A', '--', process.execPath, 'env-tool.mjs'], env);
    expect(JSON.parse(literal.stdout.split('\n')[0] ?? '')).toEqual({ VITE_A: '1' });
  });

  it('warns about an --input glob that matches no file', async () => {
    const result = await runner_(['--cache-dir', cacheDir, '--input', 'src/**/*.ts', '--input', 'config.json', ...toolCommand]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^cache-runner: warning: --input src\/\*\*\/\*\.ts matches no file$/m);
    expect(result.stderr).not.toContain('--input config.json');
    expect(status(result)).toBe('cache miss: no entry');
  });

  it('expands --input globs with braces, classes and negation; a matching directory covers its files', async () => {
    const files = ['src/a.ts', 'src/a.test.ts', 'src/lib/b.ts', 'src/.hidden.ts', 'lib/c.js', 'lib/d.ts', 'docs/e.md', 'node_modules/x/i.ts', 'src/node_modules/y.ts'];
    for (const file of files) {
      mkdirSync(dirname(join(app, file)), { recursive: true });
      writeFileSync(join(app, file), file);
    }
    const globs = ['{src,lib}/**', '!**/*.test.ts', 'lib/[cx].js', 'src', '**/i.ts'];
    const dry = await runner_(['--cache-dir', cacheDir, '--dry-run', ...globs.flatMap((glob) => ['--input', glob]), ...toolCommand]);
    expect(dry.code, dry.stderr).toBe(0);
    // Each glob with the files it adds: `  input GLOB: N files` and then the files.
    const matched = new Map<string, string[]>();
    let current: string[] = [];
    for (const line of dry.stdout.split('\n')) {
      const input = /^ {2}input (.+): (\d+ files?|left out)$/.exec(line);
      if (input) matched.set(input[1] ?? '', (current = []));
      else if (/^ {4}\S+ {2}sha256 /.test(line)) current.push(line.trim().split(/\s+/)[0] ?? '');
      else current = [];
    }
    expect(Object.fromEntries(matched)).toEqual({
      '!**/*.test.ts': [],
      '{src,lib}/**': ['lib/c.js', 'lib/d.ts', 'src/.hidden.ts', 'src/a.ts', 'src/lib/b.ts'],
      'lib/[cx].js': ['lib/c.js'],
      src: ['src/.hidden.ts', 'src/a.ts', 'src/lib/b.ts'],
      '**/i.ts': [],
    });
    expect(dry.stderr).toBe('cache-runner: warning: --input **/i.ts matches no file\n');

    // The same globs key a run: a file they leave out changes nothing, one they match misses.
    const keyed = (): Promise<Run> => cacheRun([], {}, ['--trace', 'off', ...globs.slice(0, 4).flatMap((glob) => ['--input', glob])]);
    expect(status(await keyed())).toBe('cache miss: no entry');
    writeFileSync(join(app, 'src', 'a.test.ts'), 'changed');
    writeFileSync(join(app, 'docs', 'e.md'), 'changed');
    expect(status(await keyed())).toBe('cache hit');
    writeFileSync(join(app, 'src', 'lib', 'b.ts'), 'changed');
    expect(status(await keyed())).toBe('cache miss: input src/lib/b.ts changed');
  });

  it('prints the key part by part with --dry-run, and runs and stores nothing', async () => {
    const args = ['--cache-dir', cacheDir, '--env', 'MODE', '--env', 'VITE_*', '--input', 'config.json', '--output', 'out/**'];
    const env = { MODE: 'secret-mode-value', VITE_A: 'secret-vite-value' };
    const before = await runner_([...args, '--dry-run', ...toolCommand], env);
    expect(before.code, before.stderr).toBe(0);
    expect(existsSync(join(app, 'out')), 'the command did not run').toBe(false);
    expect(existsSync(cacheDir), 'nothing was stored').toBe(false);
    const configHash = createHash('sha256').update('{"v":1}\n').digest('hex');
    expect(before.stdout).toMatch(/^task [0-9a-f]{64}\n {2}command: \[".*","tool\.mjs"\]\n/);
    expect(before.stdout).toContain('\n  env MODE: set\n  env VITE_*: 1 match (VITE_A)\n');
    expect(before.stdout).toContain(`\n  input config.json: 1 file\n    config.json  sha256 ${configHash}\n  output out/**\n`);
    expect(before.stdout).toMatch(/\nentries: 0\nwould run: no entry\n$/);

    expect(status(await runner_([...args, ...toolCommand], env))).toBe('cache miss: no entry');
    const after = await runner_([...args, '--dry-run', ...toolCommand], env);
    expect(after.stdout).toMatch(
      /\nentries: 1\n {2}([0-9a-f]{64}): holds\n {4}tracked env and queries: MODE, VITE_\*\n {4}inputs: \d+ \(\d+ content(, \d+ listing)?(, \d+ existence)?; \d+ outside the working directory\)\n {4}output files: out, out\/a\.txt\nwould hit: \1\n$/,
    );
    const stale = await runner_([...args, '--dry-run', ...toolCommand], { ...env, MODE: 'other' });
    expect(stale.stdout).toMatch(/: stale: env MODE changed\n[^]*would run: every entry is stale\n$/);
    for (const output of [before.stdout, after.stdout, stale.stdout]) {
      expect(output).not.toContain('secret-');
    }
  });

  it('removes a task\'s entries, or its whole cache, with --clean', async () => {
    const other = ['--', process.execPath, 'env-tool.mjs'];
    expect(status(await runner_(['--cache-dir', cacheDir, ...toolCommand]))).toBe('cache miss: no entry');
    expect(status(await runner_(['--cache-dir', cacheDir, ...other]))).toBe('cache miss: no entry');
    expect(entryCount()).toBe(2);

    const task = await runner_(['--cache-dir', cacheDir, '--clean', ...toolCommand]);
    expect(task.code, task.stderr).toBe(0);
    expect(task.stderr).toMatch(/^cache-runner: removed .* \(1 entry\)\n$/);
    expect(entryCount()).toBe(1);
    expect(status(await runner_(['--cache-dir', cacheDir, ...other]))).toBe('cache hit');

    const all = await runner_(['--cache-dir', cacheDir, '--clean']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stderr).toBe(`cache-runner: removed ${cacheDir} (1 entry)\n`);
    expect(existsSync(cacheDir)).toBe(false);
    expect((await runner_(['--cache-dir', cacheDir, '--clean'])).stderr).toBe(`cache-runner: nothing to clean: ${cacheDir} does not exist\n`);
  });

  it('keeps a good build good when the cache cannot be written or read', async () => {
    // A file where the cache directory should be: nothing can be stored there.
    writeFileSync(join(app, 'not-a-dir'), 'a file');
    const blocked = await runner_(['--cache-dir', 'not-a-dir/cache', ...toolCommand]);
    expect(blocked.code, blocked.stderr).toBe(0);
    expect(blocked.stdout).toContain('tool ran');
    // A warning, besides the status line: the cache is broken, not the run.
    expect(status(blocked)).toMatch(/^cache skipped: the cache could not store the run: cache i\/o: .*not-a-dir/);
    expect(blocked.stderr).toMatch(/^cache-runner: the cache could not store the run: cache i\/o: .*not-a-dir/m);
    expect(blocked.stderr).not.toMatch(/^\s+at /m);
    // An entry that is not an archive at all: a miss that names it, then a store over it.
    expect(status(await runner_(['--cache-dir', cacheDir, ...toolCommand]))).toBe('cache miss: no entry');
    const [task] = readdirSync(cacheDir).filter((name) => /^[0-9a-f]{64}$/.test(name));
    const [entry] = readdirSync(join(cacheDir, task ?? '')).filter((name) => name.endsWith('.tar.zst'));
    writeFileSync(join(cacheDir, task ?? '', entry ?? ''), 'not an archive');
    const garbled = await runner_(['--cache-dir', cacheDir, ...toolCommand]);
    expect(garbled.code, garbled.stderr).toBe(0);
    expect(status(garbled)).toMatch(/^cache miss: no entry, entry [0-9a-f]{64} refused: /);
    expect(status(await runner_(['--cache-dir', cacheDir, ...toolCommand]))).toBe('cache hit');
  });

  it('refuses to --clean a directory it did not write', async () => {
    const result = await runner_(['--cache-dir', '.', '--clean']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^cache-runner: not cleaning .*: it holds what cache-runner did not write \(/);
    expect(existsSync(join(app, 'config.json'))).toBe(true);
  });
});
