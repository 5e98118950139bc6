// Agent sandboxes (issue 11): the runner and its tools under the seccomp
// filters of Claude Code's sandbox runtime (no AF_UNIX socket) and of Codex
// (AF_UNIX sockets, but no bind/connect/accept…), reproduced by
// test/sandbox/sandbox.c, compiled here with `cc`. Both placements: the whole
// runner inside the sandbox (an agent runs `inspect` or a runner library in
// its shell), and the runner outside with the tool inside.
//
// Codex's filter denies getsockopt and shutdown, which Node needs for piped
// stdio (spawnSync of a piped child fails with EPERM): everything sandboxed
// writes to files, and runners inside spawn with inherited stdio.

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServer, type Reports, type Verdict } from '../dist/runner.mjs';
import { root, sha256 } from './helpers.js';

const cli = join(root, 'dist', 'cli.cjs');
const sandboxes = ['claude', 'codex'] as const;
type Sandbox = (typeof sandboxes)[number];

// A tool: asks for a value, reports an ignored input and a value, and says
// what it got (stdout is a file: see above).
const TOOL = `const ra = require('runner-aware');
const value = ra.getEnv('SANDBOX_VALUE');
ra.ignoreInput('sandbox-ignored');
ra.addValue('sandbox', 'yes');
console.log(JSON.stringify({ value: value ?? null, connected: ra.isConnected() }));`;

// A runner library inside the sandbox: createServer, the tool with inherited
// stdio, close; prints the transports and the reports, or why it could not start.
const RUNNER = `import { spawn } from 'node:child_process';
import { createServer } from 'runner-aware/runner';
let server;
try {
  server = await createServer();
} catch (err) {
  console.log(JSON.stringify({ error: err.message }));
  process.exit(0);
}
const child = spawn(process.execPath, ['-e', process.env.SANDBOX_TOOL], { stdio: 'inherit', env: { ...process.env, ...server.env } });
const code = await new Promise((resolve) => child.on('exit', resolve));
const reports = await server.close();
console.log(JSON.stringify({ transports: server.transports, code, reports }));`;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let sandbox: string;
let runs = 0;
const savedTransport = process.env['RUNNER_AWARE_TRANSPORT'];

/** This process's env without a runner's variables: these tests choose the transport. */
function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('RUNNER_AWARE_') && name !== 'VP_RUN_NODE_CLIENT_PATH') env[name] = value;
  }
  return { ...env, ...extra };
}

/** Runs `command` under `box` from the repository root, its stdout and stderr in files. */
async function sandboxed(box: Sandbox, command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const n = ++runs;
  const outPath = join(dir, `${n}.out`);
  const errPath = join(dir, `${n}.err`);
  const out = openSync(outPath, 'w');
  const err = openSync(errPath, 'w');
  try {
    const child = spawn(sandbox, [box, command, ...args], { cwd: root, env, stdio: ['ignore', out, err] });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (c, s) => resolve([c, s]));
    });
    return { code, signal, stdout: readFileSync(outPath, 'utf8'), stderr: readFileSync(errPath, 'utf8') };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

function lastLine<T>(run: Run): T {
  const lines = run.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as T;
}

/** The reports of a clean, served run of TOOL (env values as digests, as runners get them). */
function expectServed(reports: Reports, value: string): void {
  expect(reports.notCacheable).toEqual([]);
  expect(reports.cacheable).toBe(true);
  expect(reports.clients).toBe(1);
  expect(reports.envs['SANDBOX_VALUE']).toEqual({ value: sha256(value), tracked: true });
  expect(reports.values).toEqual({ sandbox: 'yes' });
  expect(reports.ignoredInputs).toContain(join(root, 'sandbox-ignored'));
}

const value = () => `v-${process.pid}-${runs}-${Math.random().toString(36).slice(2)}`;

describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('agent sandboxes (seccomp)', () => {
  beforeAll(() => {
    // These tests choose the transport themselves, also when the whole suite
    // runs with RUNNER_AWARE_TRANSPORT=fifo.
    delete process.env['RUNNER_AWARE_TRANSPORT'];
    dir = mkdtempSync(join(tmpdir(), 'runner-aware-sandbox-test-'));
    sandbox = join(dir, 'sandbox');
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', sandbox, join(root, 'test', 'sandbox', 'sandbox.c')], { stdio: 'pipe' });
  });
  afterAll(() => {
    if (savedTransport !== undefined) process.env['RUNNER_AWARE_TRANSPORT'] = savedTransport;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(sandboxes)('the %s filter denies Unix sockets to Node, and Node still starts', async (box) => {
    // Listening: `claude` denies socket(AF_UNIX), `codex` bind.
    const probe = `const net = require('node:net');
const s = net.createServer();
s.on('error', (e) => console.log(JSON.stringify({ code: e.code })));
s.listen(process.argv[1], () => { console.log(JSON.stringify({ code: 'listening' })); s.close(); });`;
    const free = await sandboxed(box, process.execPath, ['-e', probe, join(dir, `${box}-free.sock`)], baseEnv());
    expect(free.stderr).toBe('');
    expect(lastLine(free)).toEqual({ code: 'EPERM' });
    // A stream socketpair (Node's own stdio pipes) stays allowed under both.
    const spawned = await sandboxed(
      box,
      process.execPath,
      ['-e', "require('node:child_process').spawn(process.execPath, ['-e', 'console.log(1)'], { stdio: 'inherit' })"],
      baseEnv(),
    );
    expect(spawned).toMatchObject({ code: 0, stdout: '1\n', stderr: '' });
  });

  describe.each(sandboxes)('%s: the runner inside the sandbox', (box) => {
    it('inspect runs the command over FIFOs: getEnv answers, the reports arrive, cacheable', async () => {
      const v = value();
      const out = join(dir, `${box}-inspect.json`);
      const run = await sandboxed(box, process.execPath, [cli, 'inspect', '--json', '--out', out, '--', process.execPath, '-e', TOOL], baseEnv({ SANDBOX_VALUE: v }));
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(lastLine(run)).toEqual({ value: v, connected: true });
      const reports = JSON.parse(readFileSync(out, 'utf8')) as Reports & { verdict: Verdict };
      expectServed(reports, v);
      expect(reports.verdict).toEqual({ cacheable: true, reasons: [] });
    });

    it('createServer serves FIFOs only, and its tool is heard', async () => {
      const v = value();
      const run = await sandboxed(box, process.execPath, ['--input-type=module', '-e', RUNNER], baseEnv({ SANDBOX_VALUE: v, SANDBOX_TOOL: TOOL }));
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(JSON.parse(lines[0]!)).toEqual({ value: v, connected: true });
      const result = JSON.parse(lines[1]!) as { transports: string[]; code: number; reports: Reports };
      expect(result.transports).toEqual(['fifo']);
      expect(result.code).toBe(0);
      expectServed(result.reports, v);
    });

    it('with RUNNER_AWARE_TRANSPORT=socket, createServer fails saying why and what to do', async () => {
      const run = await sandboxed(box, process.execPath, ['--input-type=module', '-e', RUNNER], baseEnv({ RUNNER_AWARE_TRANSPORT: 'socket', SANDBOX_TOOL: TOOL }));
      expect(run.code).toBe(0);
      const { error } = lastLine<{ error: string }>(run);
      // Why: the socket was denied, and the variable rules out the FIFOs.
      expect(error).toMatch(/cannot listen on \/.*\/s: Operation not permitted/);
      expect(error).toContain('RUNNER_AWARE_TRANSPORT=socket rules out the named FIFOs');
      // What to do.
      expect(error).toMatch(/unset it, or set it to auto/);
    });

    it('with RUNNER_AWARE_TRANSPORT=socket, inspect still runs the command and reports it not cacheable', async () => {
      const out = join(dir, `${box}-inspect-socket.json`);
      const run = await sandboxed(
        box,
        process.execPath,
        [cli, 'inspect', '--json', '--out', out, '--', process.execPath, '-e', TOOL],
        baseEnv({ RUNNER_AWARE_TRANSPORT: 'socket', SANDBOX_VALUE: value() }),
      );
      expect(run.code).toBe(0);
      // The command ran, with no runner to answer.
      expect(lastLine(run)).toEqual({ value: null, connected: false });
      expect(run.stderr).toContain('RUNNER_AWARE_TRANSPORT=socket rules out the named FIFOs');
      expect(run.stderr).toContain('the run is not cacheable');
      const reports = JSON.parse(readFileSync(out, 'utf8')) as Reports & { verdict: Verdict };
      expect(reports.cacheable).toBe(false);
      expect(reports.clients).toBe(0);
      expect(reports.notCacheable).toHaveLength(1);
      expect(reports.notCacheable[0]).toMatchObject({ kind: 'lost' });
      expect(reports.notCacheable[0]!.message).toMatch(/no runner-aware server heard the tools: cannot listen on .*RUNNER_AWARE_TRANSPORT=socket/);
      expect(reports.verdict.cacheable).toBe(false);
      // The summary says so too.
      const summary = await sandboxed(box, process.execPath, [cli, 'inspect', '--', process.execPath, '-e', TOOL], baseEnv({ RUNNER_AWARE_TRANSPORT: 'socket' }));
      expect(summary.code).toBe(0);
      expect(summary.stderr).toMatch(/runner-aware: exit 0, 0 clients, not cacheable\n {2}not cacheable because:\n {4}lost: no runner-aware server heard the tools/);
    });
  });

  describe.each(sandboxes)('%s: the runner outside, the tool inside', (box) => {
    it('the tool is served over FIFOs: getEnv answers, the reports arrive, cacheable', async () => {
      const v = value();
      const server = await createServer({ env: { ...baseEnv(), SANDBOX_VALUE: v } });
      expect(server.transports).toEqual(['socket', 'fifo']);
      const run = await sandboxed(box, process.execPath, ['-e', TOOL], { ...baseEnv(), ...server.env });
      const reports = await server.close();
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      // FIFOs work under both filters: the served outcome, not the fallback
      // of an uncacheable run.
      expect(lastLine(run)).toEqual({ value: v, connected: true });
      expectServed(reports, v);
    });

    it('with RUNNER_AWARE_TRANSPORT=socket the tool cannot connect: not cacheable (lost), never a clean run', async () => {
      const server = await createServer({ env: { ...baseEnv(), SANDBOX_VALUE: value() } });
      const run = await sandboxed(box, process.execPath, ['-e', TOOL], { ...baseEnv({ RUNNER_AWARE_TRANSPORT: 'socket' }), ...server.env });
      const reports = await server.close();
      expect(run.code).toBe(0);
      expect(lastLine(run)).toEqual({ value: null, connected: false });
      expect(reports.cacheable).toBe(false);
      expect(reports.clients).toBe(0);
      const lost = reports.notCacheable.filter((r) => r.kind === 'lost');
      expect(lost).toHaveLength(1);
      expect(lost[0]!.message).toMatch(/cannot connect to .*: Operation not permitted/);
    });
  });
});
