// Reliability scenarios shared by the test suite (small sizes) and
// `npm run stress` (full sizes). Each one runs real processes against a real
// server and returns the figures it measured.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createServer } from '../../dist/runner.mjs';
import { connect } from './raw-peer.mjs';

export const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const here = dirname(fileURLToPath(import.meta.url));

/** Runs a process to completion; resolves with its exit code and output. */
export function run(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, pid: child.pid }));
  });
}

function node(code, env, extra = []) {
  return run(process.execPath, [...extra, '-e', code], { env: { ...process.env, ...env } });
}

/** Waits until `done()` holds, polling; throws after `ms` naming what it waited for. */
async function until(done, ms, what) {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs `count` jobs with at most `limit` at a time. */
async function pool(count, limit, job) {
  let next = 0;
  const results = new Array(count);
  async function worker() {
    while (next < count) {
      const i = next++;
      results[i] = await job(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}

export function frame(payload) {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length);
  return Buffer.concat([header, body]);
}

/**
 * Zero loss: `processes` short-lived tools, `concurrency` at a time, each
 * sending `reports` reports and calling process.exit(0) right after the last;
 * close() as soon as the last one exits.
 */
export async function zeroLoss({ processes, concurrency, reports }) {
  const server = await createServer();
  const started = performance.now();
  const exits = await pool(processes, concurrency, (i) =>
    node(
      `const ra = require('runner-aware'); for (let j = 0; j < ${reports}; j++) ra.addInput('/zero-loss/${i}/' + j); process.exit(0);`,
      server.env,
    ),
  );
  const result = await server.close();
  return {
    sent: processes * reports,
    received: result.inputs.length,
    failedProcesses: exits.filter((e) => e.code !== 0).length,
    firstFailure: exits.find((e) => e.code !== 0),
    clients: result.clients,
    errors: result.errors.length,
    ms: Math.round(performance.now() - started),
  };
}

/** A tool whose grandchildren report and exit before it does. */
export async function grandchildren({ children, reports }) {
  const server = await createServer();
  const grandchild = `const ra = require('runner-aware'); const id = process.argv[1]; for (let j = 0; j < ${reports}; j++) ra.ignoreOutput('/grandchild/' + id + '/' + j); process.exit(0);`;
  const tool = `
    const { spawnSync } = require('node:child_process');
    const ra = require('runner-aware');
    ra.addValue('parent', 'yes');
    for (let i = 0; i < ${children}; i++) {
      const r = spawnSync(process.execPath, ['-e', ${JSON.stringify(grandchild)}, String(i)], { stdio: 'inherit' });
      if (r.status !== 0) process.exit(1);
    }
    process.exit(0);`;
  const exit = await node(tool, server.env);
  const result = await server.close();
  return { exit: exit.code, sent: children * reports, received: result.ignoredOutputs.length, clients: result.clients, parentValue: result.values.parent };
}

/** Reports sent from a worker thread just before the process exits. */
export async function workerBeforeExit({ workers, reports }) {
  const server = await createServer();
  const tool = `
    import { Worker } from 'node:worker_threads';
    let done = 0;
    for (let w = 0; w < ${workers}; w++) {
      const worker = new Worker("import('runner-aware').then((ra) => { for (let j = 0; j < ${reports}; j++) ra.addOutput('/worker/' + ${'${w}'} + '/' + j); import('node:worker_threads').then((wt) => wt.parentPort.postMessage('done')); })".replace('\${w}', String(w)), { eval: true });
      worker.on('message', () => { if (++done === ${workers}) process.exit(0); });
    }`;
  const exit = await run(process.execPath, ['--input-type=module', '-e', tool], { env: { ...process.env, ...server.env } });
  const result = await server.close();
  return { exit: exit.code, stderr: exit.stderr, sent: workers * reports, received: result.outputs.length };
}

function rssMiB() {
  return process.memoryUsage().rss / 2 ** 20;
}

/**
 * Hostile peers on the channel (socket or FIFOs) next to a real tool: bad frames of every kind
 * and `idle` connections that never send a byte, still open at close.
 */
export async function hostile({ idle, closeTimeoutMs }) {
  // BIG makes each answer to the peer that never reads large enough to fill its socket.
  const server = await createServer({ env: { SECRET: 'hunter2', PATH: process.env.PATH ?? '', BIG: 'x'.repeat(100_000) }, closeTimeoutMs });
  const rssBefore = rssMiB();
  const token = server.env.RUNNER_AWARE_TOKEN;
  const peer = spawn(process.execPath, [join(here, 'hostile-peer.mjs'), server.socketPath, token, String(idle)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let peerOut = '';
  peer.stdout.on('data', (chunk) => (peerOut += chunk));
  try {
    await until(() => peerOut.includes('ready') || peer.exitCode !== null, 30_000, 'the hostile peer');
    if (peer.exitCode !== null) throw new Error(`hostile peer exited ${peer.exitCode}`);
    const leakedSecret = peerOut.includes('hunter2');
    // A real tool, served while the hostile peers are connected.
    const tool = await node(`const ra = require('runner-aware'); ra.ignoreInput('/real'); console.log(ra.getEnv('SECRET'))`, server.env);
    const rssPeak = rssMiB();
    const closeStarted = performance.now();
    const result = await server.close();
    const closeMs = Math.round(performance.now() - closeStarted);
    return {
      toolServed: tool.stdout.trim() === 'hunter2' && result.ignoredInputs.includes('/real'),
      leakedSecret,
      closeMs,
      rssGrowthMiB: Math.max(0, rssPeak - rssBefore),
      errors: result.errors.map((e) => e.message),
      realClients: result.clients,
    };
  } finally {
    peer.kill('SIGKILL');
  }
}

/** The runner is SIGKILLed mid-task; the tool then makes `calls` calls. */
export async function deadRunner({ calls }) {
  const dir = mkdtempSync(join(tmpdir(), 'ra-dead-'));
  const flag = join(dir, 'runner-dead');
  // The killed runner leaves its private directory behind; in `dir`, it goes with it.
  const runner = spawn(process.execPath, [join(root, 'test', 'fixtures', 'runner-then-hang.mjs'), join(root, 'test', 'fixtures', 'tool-outlives-runner.mjs'), flag, String(calls)], {
    cwd: root,
    env: { ...process.env, TMPDIR: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  runner.stdout.on('data', (chunk) => (out += chunk));
  let toolPid;
  try {
    await until(() => /ready \d+/.test(out) || runner.exitCode !== null, 15_000, 'the tool to connect');
    toolPid = Number(/ready (\d+)/.exec(out)?.[1]);
    runner.kill('SIGKILL');
    await new Promise((resolve) => (runner.exitCode !== null ? resolve() : runner.on('exit', resolve)));
    writeFileSync(flag, '');
    const resultFile = `${flag}.json`;
    await until(() => existsSync(resultFile), 15_000, 'the tool to finish its calls');
    return JSON.parse(readFileSync(resultFile, 'utf8'));
  } finally {
    runner.kill('SIGKILL');
    // The tool is detached from the runner; never leave it behind.
    if (toolPid) {
      try {
        process.kill(toolPid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A tool killed while writing a frame: earlier reports kept, the partial frame noted. */
export async function killedMidFrame() {
  const server = await createServer();
  const exit = await run(process.execPath, [join(here, 'half-frame-peer.mjs'), server.socketPath, server.env.RUNNER_AWARE_TOKEN]);
  const result = await server.close();
  return {
    signal: exit.signal,
    kept: result.ignoredInputs,
    errors: result.errors.map((e) => e.message),
  };
}

/** Runs `code` with `node -e` as `nobody` (uid/gid 65534); resolves with what it printed. */
function asNobody(code) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', code], { uid: 65534, gid: 65534, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('close', () => resolve(out.trim()));
  });
}

/**
 * Ownership and mode of the private directory (and of the FIFO rendezvous in
 * it, when FIFOs are served), and whether another user can connect: to the
 * socket, and by opening the rendezvous for writing as a FIFO client would.
 */
export async function accessControl() {
  const server = await createServer({ env: { SECRET: 'x' } });
  const dir = dirname(server.socketPath);
  const stat = statSync(dir);
  const rendezvous = join(dir, 'r');
  const fifo = server.transports.includes('fifo') ? statSync(rendezvous) : null;
  let otherUser;
  if (process.getuid?.() === 0) {
    const socket = server.transports.includes('socket')
      ? await asNobody(`require('node:net').connect(${JSON.stringify(server.socketPath)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`)
      : null;
    const rendezvousOpen = fifo
      ? await asNobody(`const fs = require('node:fs'); try { fs.openSync(${JSON.stringify(rendezvous)}, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK); console.log('opened') } catch (e) { console.log(e.code) }`)
      : null;
    otherUser = { ran: true, result: socket ?? rendezvousOpen, socket, rendezvous: rendezvousOpen };
  } else {
    otherUser = { ran: false, result: `not root (uid ${process.getuid?.()}, user ${userInfo().username}): cannot switch to another user` };
  }
  const noToken = await new Promise((resolve) => {
    const chunks = [];
    const socket = connect(server.socketPath, () => socket.end(Buffer.concat([
      frame(JSON.stringify({ op: 'hello', version: 1, token: '0'.repeat(32), pid: process.pid })),
      frame(JSON.stringify({ op: 'getEnv', names: ['SECRET'], tracked: true })),
    ])));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
  await server.close();
  return {
    transports: server.transports,
    mode: (stat.mode & 0o777).toString(8),
    ownerIsRunner: stat.uid === process.getuid?.(),
    rendezvous: fifo && { isFifo: fifo.isFIFO(), mode: (fifo.mode & 0o777).toString(8), ownerIsRunner: fifo.uid === process.getuid?.() },
    otherUser,
    noTokenAnswer: noToken,
    noTokenGotSecret: noToken.includes('"x"'),
    dirRemoved: !existsSync(dir),
  };
}

/** A runner killed with SIGKILL leaves its directory; the next server starts anyway. */
export async function leftoversAfterKill() {
  const runner = spawn(process.execPath, ['--input-type=module', '-e', `import { createServer } from 'runner-aware/runner'; const s = await createServer(); console.log(s.socketPath); setInterval(() => {}, 1000);`], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  runner.stdout.on('data', (chunk) => (out += chunk));
  await until(() => out.includes('\n') || runner.exitCode !== null, 15_000, 'the runner to print its socket path');
  runner.kill('SIGKILL');
  await new Promise((resolve) => runner.on('exit', resolve));
  // The directory: the socket in it, or the FIFO rendezvous when only FIFOs are served.
  const leftover = dirname(out.trim());
  const server = await createServer();
  const tool = await node(`console.log(require('runner-aware').isConnected())`, server.env);
  await server.close();
  const leftoverExists = existsSync(leftover);
  rmSync(leftover, { recursive: true, force: true });
  return { leftoverExists, nextServerWorks: tool.stdout.trim() === 'true' };
}

/** Encoding edges: a non-UTF-8 env value, values and paths near and over the frame limit. */
export async function encodingEdges() {
  // A runner whose own env holds bytes that are not UTF-8; it serves its
  // default snapshot of process.env.
  const runner = await run('/bin/sh', ['-c', `BAD_BYTES="$(printf 'a\\377b')" exec "${process.execPath}" --input-type=module -e "
    import { createServer } from 'runner-aware/runner';
    import { spawnSync } from 'node:child_process';
    const server = await createServer();
    const tool = spawnSync(process.execPath, ['-e', \\"process.stdout.write(JSON.stringify(require('runner-aware').getEnv('BAD_BYTES')))\\"], { env: { ...process.env, ...server.env }, encoding: 'utf8' });
    const reports = await server.close();
    console.log(JSON.stringify({ tool: tool.stdout, recorded: reports.envs.BAD_BYTES }));
  "`]);
  const nonUtf8 = JSON.parse(runner.stdout.trim().split('\n').pop() ?? 'null');
  const server = await createServer();
  const near = 1024 * 1024 - 200;
  const over = 1024 * 1024 + 1;
  const tool = await node(
    `const ra = require('runner-aware');
     ra.addValue('near', 'v'.repeat(${near}));
     ra.ignoreInput('/' + 'p'.repeat(${near}));
     ra.addValue('over', 'v'.repeat(${over}));
     ra.addOutput('/' + 'q'.repeat(${over}));
     ra.addValue('after', 'still delivered');`,
    server.env,
  );
  const result = await server.close();
  return {
    nonUtf8,
    toolExit: tool.code,
    nearValueKept: result.values.near?.length === near,
    nearPathKept: result.ignoredInputs.some((p) => p.length === near + 1),
    overValueKept: 'over' in result.values,
    overPathKept: result.outputs.length > 0,
    afterKept: result.values.after === 'still delivered',
    cacheable: result.cacheable,
    reasons: result.notCacheable.map((r) => r.message),
    errors: result.errors.length,
  };
}

/** A runner-aware runner inside a task of another: reports go to the nearest runner, which forwards them upstream at close. */
export async function nesting() {
  const outer = await createServer();
  const inner = await run(process.execPath, [join(here, 'inner-runner.mjs')], { env: { ...process.env, ...outer.env } });
  const outerReports = await outer.close();
  const innerReports = JSON.parse(inner.stdout.trim().split('\n').pop() ?? 'null');
  return {
    exit: inner.code,
    stderr: inner.stderr,
    outerInputs: outerReports.ignoredInputs,
    innerInputs: innerReports?.ignoredInputs,
    outerClients: outerReports.clients,
    innerClients: innerReports?.clients,
  };
}
