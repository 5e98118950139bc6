// File-access tracing (Linux): `createServer({ trace })` records what every
// process of the task read, looked up, listed, wrote and deleted, through the
// preload library and the seccomp supervisor, and says when it may have
// missed something. Real processes throughout: Node, a static C program
// built here, coreutils, and the sandbox filters of test/sandbox.

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServer, fingerprintInput, inferAccesses, verdict, type Reports, type ServerOptions, type Trace } from '../dist/runner.mjs';
import { root, run, type Run } from './helpers.js';

let dir = '';
let staticReader = '';
let sandbox = '';
let rawMain = '';
let rawAddon = '';

interface Traced {
  reports: Reports;
  trace: Trace;
  result: Run;
}

/** Runs `argv` as a traced task in `cwd`: through `server.command()` unless `wrap` is false. */
async function traced(
  argv: string[],
  options: {
    trace?: ServerOptions['trace'];
    ignore?: string[];
    env?: Record<string, string>;
    cwd?: string;
    wrap?: (argv: string[]) => string[];
    command?: boolean;
  } = {},
): Promise<Traced> {
  const server = await createServer({ trace: options.trace ?? true, ...(options.ignore ? { ignore: options.ignore } : {}) });
  const full = options.command === false ? argv : server.command(argv);
  const wrapped = options.wrap ? options.wrap(full) : full;
  const result = await run(wrapped[0] ?? '', wrapped.slice(1), { cwd: options.cwd ?? dir, env: { ...process.env, ...options.env, ...server.env } });
  const reports = await server.close();
  if (!reports.trace) throw new Error('close() returned no trace');
  return { reports, trace: reports.trace, result };
}

const node = (code: string): string[] => [process.execPath, '-e', code];

/** A scratch directory of the suite's, with files a task can read. */
function scratch(name: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, 'listed'), { recursive: true });
  writeFileSync(join(path, 'input.txt'), 'input\n');
  writeFileSync(join(path, 'looked-up.txt'), 'exists\n');
  writeFileSync(join(path, 'listed', 'one'), '1');
  writeFileSync(join(path, 'doomed.txt'), 'to be deleted\n');
  return path;
}

// What the Node task of the first tests does, by every API a tool uses.
const NODE_TASK = `
const fs = require('node:fs');
fs.readFileSync('input.txt');
fs.statSync('looked-up.txt');
fs.existsSync('absent.txt');
fs.readdirSync('listed');
fs.mkdirSync('out', { recursive: true });
fs.writeFileSync('out/result.txt', 'result');
fs.unlinkSync('doomed.txt');
`;

function expectNodeTask(trace: Trace, cwd: string): void {
  expect(trace.incomplete).toEqual([]);
  expect(trace.complete).toBe(true);
  expect(trace.read).toContain(join(cwd, 'input.txt'));
  expect(trace.read).toContain(process.execPath);
  expect(trace.found).toContain(join(cwd, 'looked-up.txt'));
  expect(trace.missing).toContain(join(cwd, 'absent.txt'));
  expect(trace.listed).toContain(join(cwd, 'listed'));
  expect(trace.written).toEqual(expect.arrayContaining([join(cwd, 'out'), join(cwd, 'out', 'result.txt')]));
  expect(trace.deleted).toContain(join(cwd, 'doomed.txt'));
  // Absolute, clean, sorted, deduplicated, and nothing of the runner's own.
  for (const list of [trace.read, trace.found, trace.missing, trace.listed, trace.written, trace.deleted]) {
    expect([...list].sort()).toEqual(list);
    expect(new Set(list).size).toBe(list.length);
    for (const path of list) {
      expect(path.startsWith('/')).toBe(true);
      expect(path).not.toMatch(/\/\.\.?(\/|$)|\/\/|^\/(proc|sys|dev)\//);
    }
  }
}

describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('file-access tracing', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'runner-aware-trace-test-'));
    staticReader = join(dir, 'static-reader');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-static', '-o', staticReader, join(root, 'test', 'trace', 'static-reader.c')], { stdio: 'pipe' });
    rawAddon = join(dir, 'raw-addon.so');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-shared', '-fPIC', '-o', rawAddon, join(root, 'test', 'trace', 'raw-addon.c'), '-lpthread'], { stdio: 'pipe' });
    rawMain = join(dir, 'raw-main');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', rawMain, join(root, 'test', 'trace', 'raw-main.c'), '-ldl'], { stdio: 'pipe' });
    sandbox = join(dir, 'sandbox');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', sandbox, join(root, 'test', 'sandbox', 'sandbox.c')], { stdio: 'pipe' });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(['preload', 'seccomp'] as const)('%s mode records what a Node task read, looked up, listed, wrote and deleted', async (mode) => {
    const cwd = scratch(`node-task-${mode}`);
    const { trace, reports, result } = await traced(node(NODE_TASK), { trace: mode, cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.mode).toBe(mode);
    expectNodeTask(trace, cwd);
    expect(reports.cacheable).toBe(true);
  });

  it('sees a static program and its raw system calls through seccomp, and refuses it io_uring', async () => {
    const cwd = scratch('static');
    const code = `process.stdout.write(require('node:child_process').execFileSync(${JSON.stringify(staticReader)}, ['input.txt', 'probe.txt', 'static-out.txt']))`;
    const { trace, result } = await traced(node(code), { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('io_uring: ENOSYS');
    expect(trace.complete).toBe(true);
    expect(trace.read).toEqual(expect.arrayContaining([staticReader, join(cwd, 'input.txt')]));
    expect(trace.missing).toContain(join(cwd, 'probe.txt'));
    expect(trace.written).toContain(join(cwd, 'static-out.txt'));
  });

  it.each(['preload', 'seccomp'] as const)('%s mode keeps the order of accesses across a static program and a Node step', async (mode) => {
    const run = (reads: string, writes: string, after: string): string =>
      `require('node:child_process').execFileSync(${JSON.stringify(staticReader)}, [${JSON.stringify(reads)}, 'probe.txt', ${JSON.stringify(writes)}]); ${after}`;
    // The static program reads input.txt, a later Node step rewrites it: the run modified its input.
    const cwd = scratch(`order-read-${mode}`);
    const modified = await traced(node(run('input.txt', 'made.txt', "require('node:fs').writeFileSync('input.txt', 'rewritten')")), { trace: mode, cwd });
    expect(modified.result.code, modified.result.stderr).toBe(0);
    expect(modified.trace.readThenWritten).toContain(join(cwd, 'input.txt'));
    expect(modified.reports.notCacheable.map((reason) => reason.kind)).toContain('modified-input');
    // The static program writes made.txt, a later Node step reads it: its own output, not a modified input.
    const other = scratch(`order-write-${mode}`);
    const made = await traced(node(run('input.txt', 'made.txt', "require('node:fs').readFileSync('made.txt')")), { trace: mode, cwd: other });
    expect(made.result.code, made.result.stderr).toBe(0);
    expect(made.trace.written).toContain(join(other, 'made.txt'));
    expect(made.trace.readThenWritten).toEqual([]);
    expect(made.reports.cacheable, JSON.stringify(made.reports.notCacheable)).toBe(true);
  });

  it.each(['preload', 'seccomp'] as const)('%s mode takes a file opened read-write and truncated for a write, not a read', async (mode) => {
    const cwd = scratch(`trunc-${mode}`);
    const code = `const fs = require('node:fs');
fs.writeFileSync('out.css', 'old');
fs.closeSync(fs.openSync('out.css', fs.constants.O_RDWR | fs.constants.O_TRUNC));
fs.closeSync(fs.openSync('input.txt', fs.constants.O_RDWR));`;
    const { trace, result } = await traced(node(code), { trace: mode, cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.written).toContain(join(cwd, 'out.css'));
    expect(trace.read).not.toContain(join(cwd, 'out.css'));
    // Read-write without truncation can read what was there: a read, then a write.
    expect(trace.readThenWritten).toEqual([join(cwd, 'input.txt')]);
  });

  it("sees a native library thread's raw system calls in the thread itself, and through the supervisor with dispatch off", async () => {
    const cwd = scratch('raw-thread');
    // newfstatat's number, which the supervisor's statistics name.
    const nr = process.arch === 'x64' ? 262 : 79;
    const notified = (result: Run) => Number(new RegExp(`system call ${nr}: (\\d+) notifications`).exec(result.stderr)?.[1] ?? 0);
    const stats = { RUNNER_AWARE_TRACE_STATS: '1' };
    const dispatched = await traced([rawMain, rawAddon, 'raw-probe'], { cwd, env: stats });
    const supervised = await traced([rawMain, rawAddon, 'raw-probe'], { cwd, env: { ...stats, RUNNER_AWARE_TRACE_DISPATCH: '0' } });
    for (const { trace, result } of [dispatched, supervised]) {
      expect(result.code, result.stderr).toBe(0);
      expect(trace.incomplete).toEqual([]);
      expect(trace.missing).toContain(join(cwd, 'raw-probe'));
    }
    // With dispatch the thread's raw look-up never reached the supervisor.
    expect(notified(dispatched.result)).toBe(notified(supervised.result) - 1);
    // Its raw rt_sigprocmask took effect as the kernel's would, except that
    // the tracer keeps SIGSYS, which dispatch needs, unblocked.
    expect(dispatched.result.stdout).toBe('SIGUSR1 blocked: 1, SIGSYS blocked: 0\n');
    expect(supervised.result.stdout).toBe('SIGUSR1 blocked: 1, SIGSYS blocked: 1\n');
  });

  it('keeps tracing a child spawned with a cleaned env, and a shell pipeline', async () => {
    const cwd = scratch('clean-env');
    const code = `
const { execFileSync } = require('node:child_process');
execFileSync('/bin/cat', ['input.txt'], { env: {} });
execFileSync(process.execPath, ['-e', "require('fs').readFileSync('looked-up.txt')"], { env: {} });
execFileSync('/bin/sh', ['-c', 'ls listed > listing.txt'], { env: { PATH: '/usr/bin:/bin' } });`;
    const { trace, result } = await traced(node(code), { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.complete).toBe(true);
    expect(trace.read).toEqual(expect.arrayContaining(['/bin/cat', join(cwd, 'input.txt'), join(cwd, 'looked-up.txt')]));
    expect(trace.listed).toContain(join(cwd, 'listed'));
    expect(trace.written).toContain(join(cwd, 'listing.txt'));
  });

  it('keeps what a SIGKILLed process did before it died, and the trace stays complete', async () => {
    const cwd = scratch('sigkill');
    // The grandchild writes and reads, then is SIGKILLed; the task goes on and succeeds.
    const code = `
const { spawnSync } = require('node:child_process');
const r = spawnSync(process.execPath, ['-e', "const fs = require('fs'); fs.writeFileSync('before-kill.txt', 'x'); fs.readFileSync('input.txt'); process.kill(process.pid, 'SIGKILL')"]);
if (r.signal !== 'SIGKILL') process.exit(1);`;
    const { trace, reports, result } = await traced(node(code), { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.complete).toBe(true);
    expect(trace.written).toContain(join(cwd, 'before-kill.txt'));
    expect(trace.read).toContain(join(cwd, 'input.txt'));
    expect(verdict(reports, { exitCode: result.code }).cacheable).toBe(true);

    // The task itself SIGKILLed: the trace is still whole; the exit makes the run not cacheable.
    const killed = await traced(node("require('fs').writeFileSync('self.txt', 'x'); process.kill(process.pid, 'SIGKILL')"), { cwd });
    expect(killed.result.signal ?? killed.result.code).toBeTruthy();
    expect(killed.trace.complete).toBe(true);
    expect(killed.trace.written).toContain(join(cwd, 'self.txt'));
    const outcome = killed.result.signal ? { signal: killed.result.signal } : { exitCode: killed.result.code };
    expect(verdict(killed.reports, outcome).cacheable).toBe(false);
  });

  it('says the trace is incomplete when the supervisor itself is SIGKILLed', async () => {
    const cwd = scratch('supervisor-killed');
    const server = await createServer({ trace: true });
    const [file, ...args] = server.command(node("require('fs').writeFileSync('ready', String(process.pid)); setInterval(() => {}, 1000)"));
    const child = spawn(file ?? '', args, { cwd, env: { ...process.env, ...server.env }, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    let command = 0;
    try {
      for (let i = 0; i < 300 && !existsSync(join(cwd, 'ready')); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      command = Number(readFileSync(join(cwd, 'ready'), 'utf8'));
      child.kill('SIGKILL');
      await exited;
    } finally {
      if (command) process.kill(command, 'SIGKILL');
    }
    const reports = await server.close();
    expect(reports.trace?.complete).toBe(false);
    expect(reports.trace?.incomplete).toEqual([
      'the trace supervisor did not see the task to its end (it was killed, or died), so what the task did last may be missing',
    ]);
    expect(reports.trace?.written).toContain(join(cwd, 'ready'));
    expect(reports.notCacheable.map((reason) => reason.kind)).toEqual(['trace']);
  });

  it('makes a run that modified its input not cacheable, unless a tool or the runner ignored it', async () => {
    const cwd = scratch('modified');
    const tool = pathToFileURL(join(root, 'dist', 'index.mjs')).href;
    const task = (ignore: boolean) => [
      process.execPath,
      '--input-type=module',
      '-e',
      `import fs from 'node:fs';
import { ignoreInput } from ${JSON.stringify(tool)};
${ignore ? "ignoreInput('state');" : ''}
fs.mkdirSync('state', { recursive: true });
const count = fs.existsSync('state/count') ? Number(fs.readFileSync('state/count', 'utf8')) : 0;
fs.writeFileSync('state/count', String(count + 1));`,
    ];
    // First run: nothing to read yet; the second reads what it then writes.
    await traced(task(false), { cwd });
    const modified = await traced(task(false), { cwd });
    expect(modified.trace.readThenWritten).toContain(join(cwd, 'state', 'count'));
    expect(inferAccesses(modified.reports).modifiedInputs).toEqual([join(cwd, 'state', 'count')]);
    // The verdict a runner acts on says so, with no help from the inference helpers.
    expect(modified.trace.complete).toBe(true);
    expect(verdict(modified.reports, { exitCode: modified.result.code })).toEqual({
      cacheable: false,
      reasons: [{ kind: 'modified-input', message: `the command modified its input: ${join(cwd, 'state', 'count')}` }],
    });

    const ignored = await traced(task(true), { cwd });
    expect(ignored.trace.readThenWritten).toContain(join(cwd, 'state', 'count'));
    const inferred = inferAccesses(ignored.reports);
    expect(inferred.modifiedInputs).toEqual([]);
    expect(inferred.inputs.map((input) => input.path)).not.toContain(join(cwd, 'state', 'count'));
    expect(ignored.reports.notCacheable).toEqual([]);

    // The runner's user says it instead of the tool: createServer({ ignore }),
    // relative to the runner's working directory.
    const runnerIgnored = await traced(task(false), { cwd, ignore: [relative(process.cwd(), join(cwd, 'state'))] });
    expect(runnerIgnored.trace.readThenWritten).toContain(join(cwd, 'state', 'count'));
    expect(runnerIgnored.reports.ignoredInputs).toEqual([join(cwd, 'state')]);
    expect(runnerIgnored.reports.ignoredOutputs).toEqual([join(cwd, 'state')]);
    expect(runnerIgnored.reports.notCacheable).toEqual([]);
    expect(inferAccesses(runnerIgnored.reports).modifiedInputs).toEqual([]);

    // An ignored output alone does not excuse it: the writes there are not
    // outputs, but what the run read there still mattered.
    const outputOnly = await traced(
      task(false).map((arg) => arg.replace("import { ignoreInput }", "import { ignoreOutput }").replace('fs.mkdirSync', "ignoreOutput('state');\nfs.mkdirSync")),
      { cwd },
    );
    expect(outputOnly.reports.ignoredOutputs).toEqual([join(cwd, 'state')]);
    expect(outputOnly.reports.notCacheable.map((reason) => reason.kind)).toEqual(['modified-input']);
  });

  it('keeps tracing in a runner that put a server env of its own into process.env', async () => {
    const first = await createServer({ trace: true });
    const saved = { ...process.env };
    try {
      Object.assign(process.env, first.env);
      const second = await createServer({ trace: true });
      expect(second.trace).toBe('preload');
      await second.close();
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
      await first.close();
    }
  });

  it('fingerprints a link inside a directory input by where it points', async () => {
    const cwd = scratch('linked-tree');
    for (const copy of ['a', 'b']) {
      mkdirSync(join(cwd, 'store', copy), { recursive: true });
      writeFileSync(join(cwd, 'store', copy, 'index.js'), 'same');
    }
    mkdirSync(join(cwd, 'modules'));
    symlinkSync(join('..', 'store', 'a'), join(cwd, 'modules', 'pkg'));
    const input = { path: join(cwd, 'modules'), kind: 'content' as const };
    const before = fingerprintInput(input);
    expect(fingerprintInput(input)).toBe(before);
    rmSync(join(cwd, 'modules', 'pkg'));
    symlinkSync(join('..', 'store', 'b'), join(cwd, 'modules', 'pkg'));
    expect(fingerprintInput(input)).not.toBe(before);
    // The link itself as an input: its target, then what is there.
    expect(fingerprintInput({ path: join(cwd, 'modules', 'pkg'), kind: 'existence' })).toBe(`link ${JSON.stringify(join('..', 'store', 'b'))} directory`);

    // Links back up the tree are followed once, not forever.
    symlinkSync('.', join(cwd, 'modules', 'self'));
    symlinkSync('..', join(cwd, 'modules', 'up'));
    const cyclic = fingerprintInput(input);
    expect(cyclic).toMatch(/^tree:[0-9a-f]{64}$/);
    expect(fingerprintInput(input)).toBe(cyclic);
  });

  it('names the first five inputs a run modified, and counts them all', async () => {
    const cwd = scratch('modified-many');
    const names = Array.from({ length: 7 }, (_, i) => `f${i}.txt`);
    for (const name of names) writeFileSync(join(cwd, name), 'before');
    const { reports } = await traced(node(`const fs = require('node:fs'); for (const f of ${JSON.stringify(names)}) fs.writeFileSync(f, fs.readFileSync(f, 'utf8') + '!');`), { cwd });
    const shown = names.slice(0, 5).map((name) => join(cwd, name)).join(', ');
    expect(reports.notCacheable).toEqual([{ kind: 'modified-input', message: `the command modified its input: ${shown}, … (7 in all)` }]);
    expect(reports.trace?.readThenWritten).toEqual(names.map((name) => join(cwd, name)));
  });

  it('refuses an ignore that is not a list of paths', async () => {
    await expect(createServer({ ignore: 'dist' as unknown as string[] })).rejects.toThrow('ignore must be an array of paths');
    await expect(createServer({ ignore: [''] })).rejects.toThrow('ignore[0] must not be empty');
  });

  it('infers inputs by kind and outputs that still exist', async () => {
    const cwd = scratch('infer');
    const code = `${NODE_TASK}
fs.writeFileSync('temp.txt', 'scratch'); fs.unlinkSync('temp.txt');`;
    const { reports } = await traced(node(code), { cwd });
    const { inputs, outputs, modifiedInputs } = inferAccesses(reports);
    const kindOf = (path: string) => inputs.find((input) => input.path === path)?.kind;
    expect(kindOf(join(cwd, 'input.txt'))).toBe('content');
    expect(kindOf(join(cwd, 'looked-up.txt'))).toBe('existence');
    expect(kindOf(join(cwd, 'absent.txt'))).toBe('existence');
    expect(kindOf(join(cwd, 'listed'))).toBe('listing');
    // Written or deleted paths are never inputs; a deleted temp file is no output.
    expect(kindOf(join(cwd, 'out', 'result.txt'))).toBeUndefined();
    expect(kindOf(join(cwd, 'doomed.txt'))).toBeUndefined();
    expect(outputs).toEqual([join(cwd, 'out'), join(cwd, 'out', 'result.txt')]);
    expect(modifiedInputs).toEqual([]);
  });

  it('says the trace is incomplete when the command was not started through server.command()', async () => {
    const cwd = scratch('unwrapped');
    const { trace, reports } = await traced(node(NODE_TASK), { cwd, command: false });
    expect(trace.complete).toBe(false);
    expect(trace.incomplete.join('\n')).toContain('server.command()');
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable.map((reason) => reason.kind)).toContain('trace');
  });

  it('without seccomp user notification, a static program makes the trace incomplete', async () => {
    const cwd = scratch('no-seccomp');
    const code = `require('node:child_process').execFileSync(${JSON.stringify(staticReader)}, ['input.txt', 'probe.txt', 'out.txt']); require('fs').readFileSync('looked-up.txt')`;
    const { trace, reports, result } = await traced(node(code), { cwd, wrap: (argv) => [sandbox, 'no-seccomp', ...argv] });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.complete).toBe(false);
    const why = trace.incomplete.join('\n');
    expect(why).toContain('seccomp user notification is unavailable');
    expect(why).toContain(`a static program ran untraced: ${staticReader}`);
    // The preload library still recorded what Node did.
    expect(trace.read).toContain(join(cwd, 'looked-up.txt'));
    expect(reports.cacheable).toBe(false);
  });

  it("inside Codex's sandbox (no process_vm_readv) the supervisor reads paths through /proc", async () => {
    const cwd = scratch('codex');
    // The static program as the task itself: Codex's filter also trips Node's spawnSync.
    const { trace, result } = await traced([staticReader, 'input.txt', 'probe.txt', 'out.txt'], { cwd, wrap: (argv) => [sandbox, 'codex', ...argv] });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.incomplete).toEqual([]);
    expect(trace.missing).toContain(join(cwd, 'probe.txt'));
    expect(trace.written).toContain(join(cwd, 'out.txt'));
  });

  it('says the trace is incomplete when a process cannot write its records', async () => {
    const cwd = scratch('lost-records');
    // A directory where the trace file was: the child's preload library cannot open it.
    const code = `
const fs = require('node:fs');
const trace = process.env.RUNNER_AWARE_TRACE;
fs.renameSync(trace, trace + '.moved');
fs.mkdirSync(trace);
require('node:child_process').execFileSync(process.execPath, ['-e', "require('fs').readFileSync('input.txt')"]);
fs.rmdirSync(trace);
fs.renameSync(trace + '.moved', trace);`;
    const { trace, reports, result } = await traced(node(code), { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.complete).toBe(false);
    expect(trace.incomplete.join('\n')).toMatch(/process \d+ could not write its trace records/);
    expect(reports.cacheable).toBe(false);
  });

  it('gives an incomplete trace, and still closes, when the trace file cannot be read', async () => {
    const cwd = scratch('unreadable-trace');
    const { trace, reports, result } = await traced(node("require('fs').unlinkSync(process.env.RUNNER_AWARE_TRACE)"), { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(trace.complete).toBe(false);
    expect(trace.incomplete[0]).toMatch(/^the trace file could not be read: /);
    expect(reports.notCacheable.map((reason) => reason.kind)).toContain('trace');
  });

  it('says so when processes outlive the task, and waits for those that end soon', async () => {
    const cwd = scratch('outlive');
    const lingering = (ms: number) =>
      node(`require('node:child_process').spawn(process.execPath, ['-e', "setTimeout(() => require('fs').readFileSync('looked-up.txt'), ${ms})"], { detached: true, stdio: 'ignore' }).unref()`);
    const soon = await traced(lingering(300), { cwd });
    expect(soon.trace.complete).toBe(true);
    expect(soon.trace.read).toContain(join(cwd, 'looked-up.txt'));

    const late = await traced(lingering(3000), { cwd, env: { RUNNER_AWARE_TRACE_GRACE_MS: '200' } });
    expect(late.trace.complete).toBe(false);
    expect(late.trace.incomplete.join('\n')).toContain('outlived');
    expect(late.reports.cacheable).toBe(false);
  });

  it('passes signals to the command and exits like it', async () => {
    const server = await createServer({ trace: true });
    const argv = server.command(node("process.on('SIGTERM', () => process.exit(42)); setInterval(() => {}, 1000); console.log('ready')"));
    const { spawn } = await import('node:child_process');
    const child = spawn(argv[0] ?? '', argv.slice(1), { env: { ...process.env, ...server.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    await server.close();
    expect(code).toBe(42);
  });

  it('reports an unsupported trace, and no reason, where the tracer is not installed', async () => {
    // A copy of the package with the addon but without the tracer's files.
    const pkg = join(dir, 'no-tracer');
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'runner-aware', type: 'module' }));
    const addon = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file)) ?? '';
    copyFileSync(join(root, addon), join(pkg, addon));
    const code = `import { createServer } from ${JSON.stringify(pathToFileURL(join(pkg, 'dist', 'runner.mjs')).href)};
const server = await createServer({ trace: true });
const argv = server.command(['true']);
const reports = await server.close();
console.log(JSON.stringify({ mode: server.trace, argv, trace: reports.trace, cacheable: reports.cacheable }));`;
    const result = await run(process.execPath, ['--input-type=module', '-e', code]);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { mode: string; argv: string[]; trace: Trace; cacheable: boolean };
    expect(out.mode).toBe('unsupported');
    expect(out.argv).toEqual(['true']);
    expect(out.trace.mode).toBe('unsupported');
    expect(out.trace.complete).toBe(false);
    expect(out.trace.incomplete[0]).toMatch(/^trace: unsupported: .*runner-aware-(preload\.|trace\.).* is missing/);
    expect(out.cacheable).toBe(true);
  });

  it('rejects a trace option it does not know', async () => {
    await expect(createServer({ trace: 'ptrace' as unknown as true })).rejects.toThrow(/trace must be true, false, 'preload' or 'seccomp'/);
  });
});
