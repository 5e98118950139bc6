// Fail-closed scenarios (issue 10): every way a tool's words can be lost
// either loses nothing or leaves the run not cacheable, with the reason.
// Shared by test/fail-closed.test.ts (small sizes) and `npm run stress` (full
// sizes). Each one runs real processes against a real server and returns what
// it observed; the callers judge it.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createServer, envFingerprint, parseFingerprint, serializeFingerprint, validateFingerprint, verdict } from '../../dist/runner.mjs';
import { root, run } from './reliability.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `node -e code` (CommonJS) with `env` over this process's env. */
function node(code, env = {}, options = {}) {
  return run(process.execPath, ['-e', code], { env: { ...process.env, ...env }, ...options });
}

/** Lines of a stream, handed out one at a time. */
function lineReader(stream) {
  let buffered = '';
  const lines = [];
  const waiting = [];
  let ended = false;
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buffered += chunk;
    for (let end = buffered.indexOf('\n'); end !== -1; end = buffered.indexOf('\n')) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (waiting.length > 0) waiting.shift().resolve(line);
      else lines.push(line);
    }
  });
  stream.on('end', () => {
    ended = true;
    for (const { reject } of waiting.splice(0)) reject(new Error('the stream ended'));
  });
  return () =>
    lines.length > 0
      ? Promise.resolve(lines.shift())
      : ended
        ? Promise.reject(new Error('the stream ended'))
        : new Promise((resolve, reject) => waiting.push({ resolve, reject }));
}

/**
 * A runner in a process of its own (runner-process.mjs), started through
 * `wrap` (e.g. `unshare --net sh -c …`). Resolves once its server is up;
 * fails with its stderr when it dies first.
 */
export async function startRunner({ server = {}, hoardFds = false, full = false, wrap = [] } = {}) {
  const argv = [...wrap, process.execPath, join(here, 'runner-process.mjs'), JSON.stringify({ server, hoardFds, full })];
  const child = spawn(argv[0], argv.slice(1), { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const nextLine = lineReader(child.stdout);
  const next = async (what) => {
    try {
      return JSON.parse(await nextLine());
    } catch (err) {
      const exit = await Promise.race([exited, sleep(1000).then(() => null)]);
      throw new Error(`the runner process gave no ${what} (${err.message}; exit ${JSON.stringify(exit)}): ${stderr}`);
    }
  };
  const info = await next('start-up line');
  const signal = (name) => {
    try {
      process.kill(info.pid, name);
    } catch (err) {
      if (err.code !== 'ESRCH') throw err;
    }
  };
  return {
    ...info,
    stop: () => signal('SIGSTOP'),
    cont: () => signal('SIGCONT'),
    async release() {
      child.stdin.write('release\n');
      return next('answer to release');
    },
    /** Closes the server; resolves with `{ closeMs, reports }` (reports summarised, see runner-process.mjs). */
    async close() {
      child.stdin.write('close\n');
      const result = await next('reports');
      await exited;
      return result;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

const kinds = (reports) => reports.notCacheable.map((r) => r.kind);

/** Spawns `count` tools at once (not awaited); resolves once each has printed its first line. */
async function spawnTools(count, code, env) {
  const tools = [];
  const ready = [];
  for (let i = 0; i < count; i++) {
    const child = spawn(process.execPath, ['-e', code, String(i)], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exit = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
    ready.push(
      new Promise((resolve, reject) => {
        const onData = () => stdout.includes('\n') && resolve();
        child.stdout.on('data', onData);
        exit.then((e) => reject(new Error(`tool ${i} exited before it was ready: ${JSON.stringify(e)}`)));
      }),
    );
    tools.push(exit);
  }
  await Promise.all(ready);
  return tools;
}

/** What `ss` shows of a listening Unix socket in process `pid`'s network namespace: [queued, backlog]. */
function listenQueue(pid, socketPath) {
  return run('nsenter', [`--net=/proc/${pid}/ns/net`, 'ss', '-xlnH'], {}).then((r) => {
    const line = r.stdout.split('\n').find((l) => l.includes(socketPath));
    const fields = line?.trim().split(/\s+/);
    return fields ? [Number(fields[2]), Number(fields[3])] : null;
  });
}

/**
 * Row 1: `tools` Node tools connect at once to a runner whose listen backlog
 * is `somaxconn` (its own network namespace, `unshare --net`). The runner is
 * stopped for `stopMs` while they connect, so the backlog is sure to fill and
 * every later connect finds it full.
 */
export async function fullBacklog({ tools, somaxconn, stopMs }) {
  const dir = mkdtempSync(join(tmpdir(), 'ra-backlog-'));
  const go = join(dir, 'go');
  const wrap = somaxconn === undefined ? [] : ['unshare', '--net', 'sh', '-c', `sysctl -qw net.core.somaxconn=${somaxconn} && exec "$0" "$@"`];
  const runner = await startRunner({ server: { env: { A: 'answer' } }, wrap });
  try {
    const tool = `
      const ra = require('runner-aware');
      const { existsSync } = require('node:fs');
      const nap = new Int32Array(new SharedArrayBuffer(4));
      process.stdout.write('ready\\n');
      while (!existsSync(${JSON.stringify(go)})) Atomics.wait(nap, 0, 0, 2);
      ra.addInput('/backlog/' + process.argv[1]);
      process.stdout.write(JSON.stringify(ra.getEnv('A') ?? null) + '\\n');`;
    const started = performance.now();
    const exits = await spawnTools(tools, tool, runner.env);
    const spawnMs = Math.round(performance.now() - started);
    if (stopMs > 0) runner.stop();
    writeFileSync(go, '');
    let queue = null;
    if (stopMs > 0) {
      await sleep(stopMs);
      queue = await listenQueue(runner.pid, runner.socketPath).catch(() => null);
      runner.cont();
    }
    const results = await Promise.all(exits);
    const { reports } = await runner.close();
    const answered = results.filter((r) => r.code === 0 && r.stdout.split('\n')[1] === '"answer"').length;
    return {
      somaxconn: runner.somaxconn,
      tools,
      spawnMs,
      queueWhileStopped: queue,
      answered,
      failedTools: results.filter((r) => r.code !== 0).map((r) => r.stderr).slice(0, 3),
      clients: reports.clients,
      inputs: reports.counts.inputs,
      cacheable: reports.cacheable,
      notCacheable: reports.notCacheable,
    };
  } finally {
    runner.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Row 2: the runner is SIGSTOPped for `stallMs` while a tool streams
 * `reports` reports, with the tool's timeout `timeoutMs` (the default when
 * undefined). The tool sends its first report, waits until the runner is
 * stopped, then sends the rest.
 */
export async function stalledRunner({ stallMs, timeoutMs, reports }) {
  const dir = mkdtempSync(join(tmpdir(), 'ra-stall-'));
  const stopped = join(dir, 'stopped');
  const runner = await startRunner();
  try {
    const tool = `
      const ra = require('runner-aware');
      const { existsSync } = require('node:fs');
      const nap = new Int32Array(new SharedArrayBuffer(4));
      ra.addInput('/stall/0');
      process.stdout.write('streaming\\n');
      while (!existsSync(${JSON.stringify(stopped)})) Atomics.wait(nap, 0, 0, 2);
      const started = Date.now();
      for (let i = 1; i < ${reports}; i++) ra.addInput('/stall/' + i);
      process.stdout.write(JSON.stringify({ ms: Date.now() - started, connected: ra.isConnected() }) + '\\n');`;
    const env = { ...runner.env, ...(timeoutMs === undefined ? {} : { RUNNER_AWARE_TIMEOUT_MS: String(timeoutMs) }) };
    const [exit] = await spawnTools(1, tool, env);
    runner.stop();
    writeFileSync(stopped, '');
    await sleep(stallMs);
    runner.cont();
    const result = await exit;
    const { reports: got } = await runner.close();
    return {
      toolExit: result.code,
      tool: JSON.parse(result.stdout.split('\n')[1] || 'null'),
      sent: reports,
      received: got.counts.inputs,
      cacheable: got.cacheable,
      kinds: kinds(got),
      notCacheable: got.notCacheable,
    };
  } finally {
    runner.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Row 3: the runner is stopped before a tool's handshake and resumed after the tool gave up (after `timeoutMs`, the default when undefined). */
export async function stalledHandshake({ timeoutMs }) {
  const runner = await startRunner({ server: { env: { NODE_ENV: 'production' } } });
  try {
    runner.stop();
    const tool = await node(
      `const ra = require('runner-aware'); console.log(JSON.stringify({ nodeEnv: ra.getEnv('NODE_ENV') ?? null, connected: ra.isConnected() }))`,
      { ...runner.env, ...(timeoutMs === undefined ? {} : { RUNNER_AWARE_TIMEOUT_MS: String(timeoutMs) }) },
    );
    runner.cont();
    const { reports } = await runner.close();
    return { toolExit: tool.code, tool: JSON.parse(tool.stdout || 'null'), envs: reports.envs, clients: reports.clients, cacheable: reports.cacheable, kinds: kinds(reports), notCacheable: reports.notCacheable };
  } finally {
    runner.cont();
    runner.kill();
  }
}

/**
 * Row 4: the runner has no file descriptor left (it opened files until
 * EMFILE), so `accept` fails; a tool connects. `release` says whether the
 * runner gets its descriptors back before `close()`.
 */
export async function fdLimit({ timeoutMs, release }) {
  // A low limit keeps the hoard small; the runner then takes every descriptor left.
  const runner = await startRunner({ server: { env: { NODE_ENV: 'production' } }, hoardFds: true, wrap: ['prlimit', '--nofile=256:256'] });
  try {
    const started = performance.now();
    const tool = await node(
      `const ra = require('runner-aware'); ra.addInput('/fd-limit'); console.log(JSON.stringify({ nodeEnv: ra.getEnv('NODE_ENV') ?? null, connected: ra.isConnected() }))`,
      { ...runner.env, RUNNER_AWARE_TIMEOUT_MS: String(timeoutMs) },
    );
    const toolMs = Math.round(performance.now() - started);
    if (release) await runner.release();
    const { reports } = await runner.close();
    return {
      hoarded: runner.hoarded,
      toolExit: tool.code,
      toolMs,
      tool: JSON.parse(tool.stdout || 'null'),
      inputs: reports.counts.inputs,
      clients: reports.clients,
      cacheable: reports.cacheable,
      kinds: kinds(reports),
      notCacheable: reports.notCacheable,
      errors: reports.errors,
    };
  } finally {
    runner.kill();
  }
}

/** Row 6: a raw peer breaks the protocol in one way (see token-peer.mjs). */
export async function brokenPeer(mode) {
  const server = await createServer({ env: { A: 'answer' } });
  const peer = await run(process.execPath, [join(here, 'token-peer.mjs'), server.socketPath, server.env.RUNNER_AWARE_TOKEN, mode]);
  // A real tool after it: the runner still serves.
  const tool = await node(`console.log(require('runner-aware').getEnv('A'))`, server.env);
  const reports = await server.close();
  return {
    peerExit: peer.code,
    peerStderr: peer.stderr,
    answers: peer.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line)),
    toolServed: tool.stdout.trim() === 'answer',
    ignoredInputs: reports.ignoredInputs,
    cacheable: reports.cacheable,
    kinds: kinds(reports),
    notCacheable: reports.notCacheable,
    errors: reports.errors.map((e) => e.message),
  };
}

const LONG_GLOBS = {
  star: "'*a'.repeat(100000)",
  set: "'{' + Array.from({ length: 50000 }, (_, i) => 'NAME_' + i).join(',') + '}'",
};

/**
 * Row 7, tool side: `getEnvs` with a 200,000-byte glob and a 50,000-name set,
 * through the tool API and (under a runner) the addon's own `load()` client.
 */
export async function longGlobTool({ withRunner }) {
  const tool = `
    const ra = require('runner-aware');
    const globs = { star: ${LONG_GLOBS.star}, set: ${LONG_GLOBS.set} };
    const outcome = (call) => { try { call(); return 'returned'; } catch (err) { return err.constructor.name + ': ' + err.message.slice(0, 300); } };
    const out = {};
    for (const [name, glob] of Object.entries(globs)) {
      out['api.' + name] = outcome(() => ra.getEnvs(glob));
      if (process.env.VP_RUN_NODE_CLIENT_PATH) {
        const client = require(process.env.VP_RUN_NODE_CLIENT_PATH).load();
        out['addon.' + name] = outcome(() => client.getEnvs(glob));
      }
    }
    out.after = ra.getEnv('A') ?? null;
    console.log(JSON.stringify(out));`;
  if (!withRunner) {
    const env = { ...process.env };
    for (const name of ['VP_RUN_NODE_CLIENT_PATH', 'RUNNER_AWARE_SOCKET', 'RUNNER_AWARE_TOKEN']) delete env[name];
    const exit = await run(process.execPath, ['-e', tool], { env });
    return { code: exit.code, signal: exit.signal, stderr: exit.stderr, out: JSON.parse(exit.stdout || 'null') };
  }
  const server = await createServer({ env: { A: 'answer' } });
  const exit = await node(tool, server.env);
  const reports = await server.close();
  return { code: exit.code, signal: exit.signal, stderr: exit.stderr, out: JSON.parse(exit.stdout || 'null'), cacheable: reports.cacheable, notCacheable: reports.notCacheable };
}

/**
 * Row 7, runner side, in a process of its own so an abort would show: the
 * cache helpers and `createServer` given the same globs.
 */
export async function longGlobRunner() {
  const code = `
    import { createServer, envFingerprint, envMatcher, validateFingerprint, parseFingerprint, InvalidEnvGlobError } from 'runner-aware/runner';
    const globs = { star: ${LONG_GLOBS.star}, set: ${LONG_GLOBS.set} };
    const outcome = async (call) => { try { await call(); return 'returned'; } catch (err) { return (err instanceof InvalidEnvGlobError ? 'InvalidEnvGlobError' : err.constructor.name) + ': ' + err.message.slice(0, 300); } };
    const out = {};
    for (const [name, glob] of Object.entries(globs)) {
      out['envMatcher.' + name] = await outcome(() => envMatcher(glob));
      out['envMatcher.stored.' + name] = await outcome(() => envMatcher({ glob }));
      out['envFingerprint.untrackedEnv.' + name] = await outcome(() => envFingerprint({ envs: {}, envQueries: [], values: {}, untrackedEnv: [glob] }));
      const stored = envFingerprint({ envs: {}, envQueries: [{ glob, tracked: true, matches: {} }], values: {}, untrackedEnv: [] });
      out['validateFingerprint.' + name] = await outcome(() => validateFingerprint(stored, { A: '1' }));
      out['validateFingerprint.parsed.' + name] = await outcome(() => validateFingerprint(parseFingerprint(JSON.stringify(stored)), { A: '1' }));
      out['createServer.untrackedEnv.' + name] = await outcome(async () => (await createServer({ untrackedEnv: [glob] })).close());
    }
    console.log(JSON.stringify(out));`;
  const exit = await run(process.execPath, ['--input-type=module', '-e', code]);
  return { code: exit.code, signal: exit.signal, stderr: exit.stderr, out: JSON.parse(exit.stdout || 'null') };
}

/** Row 8: `values` addValues of `valueBytes` each (just under the frame limit by default). */
export async function valueCap({ values, valueBytes = 1024 * 1024 - 100 }) {
  const runner = await startRunner();
  try {
    const tool = await node(
      `const ra = require('runner-aware'); const value = 'v'.repeat(${valueBytes}); for (let i = 0; i < ${values}; i++) ra.addValue('value-' + i, value); ra.addInput('/after-the-values');`,
      runner.env,
    );
    const { closeMs, reports } = await runner.close();
    return {
      toolExit: tool.code,
      toolStderr: tool.stderr,
      sentBytes: values * valueBytes,
      closeMs,
      keptValues: reports.counts.values,
      keptBytes: reports.counts.valueBytes,
      cacheable: reports.cacheable,
      kinds: kinds(reports),
      notCacheable: reports.notCacheable,
    };
  } finally {
    runner.kill();
  }
}

/** Row 8 at full size: `paths` distinct paths from `tools` tools, to hit the entry cap. */
export async function pathCap({ paths, tools }) {
  const runner = await startRunner();
  try {
    const per = Math.ceil(paths / tools);
    const exits = await Promise.all(
      Array.from({ length: tools }, (_, t) =>
        node(`const ra = require('runner-aware'); for (let i = ${t * per}; i < ${Math.min(paths, (t + 1) * per)}; i++) ra.addInput('/p/' + i);`, runner.env),
      ),
    );
    const { closeMs, reports } = await runner.close();
    return { failedTools: exits.filter((e) => e.code !== 0).length, sent: paths, closeMs, kept: reports.counts.inputs, cacheable: reports.cacheable, kinds: kinds(reports), notCacheable: reports.notCacheable };
  } finally {
    runner.kill();
  }
}

/**
 * Row 9: `close()` of `paths` reported paths, in this process; the longest
 * event-loop stall while it runs is measured with a 1 ms timer.
 */
export async function manyPaths({ paths }) {
  const server = await createServer();
  const tool = await node(`const ra = require('runner-aware'); for (let i = 0; i < ${paths}; i++) ra.addInput('/many/' + i);`, server.env);
  let longestStallMs = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    longestStallMs = Math.max(longestStallMs, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  const reports = await server.close();
  const closeMs = performance.now() - started;
  clearInterval(ticker);
  const inputs = new Set(reports.inputs);
  let missing = 0;
  for (let i = 0; i < paths; i++) if (!inputs.has(`/many/${i}`)) missing++;
  return { toolExit: tool.code, sent: paths, received: reports.inputs.length, missing, closeMs: Math.round(closeMs), longestStallMs: Math.round(longestStallMs), cacheable: reports.cacheable, notCacheable: reports.notCacheable };
}

/**
 * Row 10: a runner process with an open server ends by `how`
 * (ending-runner.mjs): `exit`, `throw`, or `signal` (sent to it, no handler of
 * its own), or `handler` (its own SIGTERM handler, then an exit of its own).
 * Returns how it ended and whether its directory was there before and gone
 * after.
 */
export async function runnerEnds({ how, signal }) {
  const child = spawn(process.execPath, [join(here, 'ending-runner.mjs'), how], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  const nextLine = lineReader(child.stdout);
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
  try {
    const dir = dirname(await nextLine());
    if ((await nextLine()) !== 'ready') throw new Error(`the runner did not get ready: ${stderr}`);
    const dirBefore = existsSync(dir);
    let handled = false;
    let aliveAfterSignal = null;
    if (signal) child.kill(signal);
    if (how === 'handler') {
      handled = (await nextLine()) === 'handled';
      await sleep(200);
      aliveAfterSignal = child.exitCode === null && child.signalCode === null;
    }
    const dirBeforeExit = existsSync(dir);
    if (how !== 'signal') child.stdin.write('end\n');
    const exit = await exited;
    return { ...exit, handled, aliveAfterSignal, dirBefore, dirBeforeExit, dirGone: !existsSync(dir), stderr };
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * Row 11: a runner whose TMPDIR is not valid UTF-8 (a directory named with a
 * 0xFF byte, passed through /bin/sh); a tool connects and reports.
 */
export async function nonUtf8Tmpdir() {
  const base = mkdtempSync(join(tmpdir(), 'ra-tmpdir-'));
  const bad = Buffer.concat([Buffer.from(`${base}/bad-`), Buffer.from([0xff]), Buffer.from('-dir')]);
  mkdirSync(bad);
  try {
    const script = `
      import { spawnSync } from 'node:child_process';
      import { createServer } from 'runner-aware/runner';
      const server = await createServer({ env: { A: 'answer' } });
      const tool = spawnSync(process.execPath, ['-e', "const ra = require('runner-aware'); ra.ignoreInput('/from-tool'); console.log(JSON.stringify([ra.isConnected(), ra.getEnv('A') ?? null]))"], { env: { ...process.env, ...server.env }, encoding: 'utf8' });
      const reports = await server.close();
      console.log(JSON.stringify({ socketPath: server.socketPath, tool: tool.stdout.trim(), toolStderr: tool.stderr, ignoredInputs: reports.ignoredInputs, cacheable: reports.cacheable, notCacheable: reports.notCacheable }));`;
    const shell = `TMPDIR="$(printf '${base}/bad-\\377-dir')" exec "$0" --input-type=module -e "$1"`;
    const runner = await run('/bin/sh', ['-c', shell, process.execPath, script]);
    return { code: runner.code, stderr: runner.stderr, ...JSON.parse(runner.stdout.trim().split('\n').pop() || '{}') };
  } finally {
    rmSync(bad, { recursive: true, force: true });
    rmSync(base, { recursive: true, force: true });
  }
}

/** Row 12: a tool with `RUNNER_AWARE_TIMEOUT_MS=0` (no limit). */
export async function zeroTimeout() {
  const server = await createServer({ env: { NODE_ENV: 'production' } });
  const tool = await node(
    `const ra = require('runner-aware'); ra.addInput('/zero-timeout'); console.log(JSON.stringify([ra.isConnected(), ra.getEnv('NODE_ENV') ?? null]))`,
    { ...server.env, RUNNER_AWARE_TIMEOUT_MS: '0' },
  );
  const reports = await server.close();
  return { toolExit: tool.code, tool: JSON.parse(tool.stdout || 'null'), inputs: reports.inputs, clients: reports.clients, cacheable: reports.cacheable, notCacheable: reports.notCacheable };
}

/**
 * Row 13: an env variable and a value named `__proto__`, end to end: served,
 * in `getEnvs('*')`, in the reports, in a fingerprint that sees it change.
 */
export async function protoNames() {
  const server = await createServer({ env: JSON.parse('{"__proto__":"x","OTHER":"y"}') });
  const tool = await node(
    `const ra = require('runner-aware');
     ra.addValue('__proto__', 'value');
     const one = ra.getEnv('__proto__') ?? null;
     const all = ra.getEnvs('*');
     console.log(JSON.stringify({ one, own: Object.hasOwn(all, '__proto__'), all: Object.entries(all) }));`,
    server.env,
  );
  const reports = await server.close();
  const own = (record) => Object.hasOwn(record, '__proto__') ? record['__proto__'] : undefined;
  const fingerprint = envFingerprint(reports);
  const stored = parseFingerprint(serializeFingerprint(fingerprint));
  const same = JSON.parse('{"__proto__":"x","OTHER":"y"}');
  const changed = JSON.parse('{"__proto__":"changed","OTHER":"y"}');
  return {
    toolExit: tool.code,
    toolStderr: tool.stderr,
    tool: JSON.parse(tool.stdout || 'null'),
    reportedEnv: own(reports.envs) ?? null,
    reportedMatch: own(reports.envQueries.find((q) => q.glob === '*')?.matches ?? {}) ?? null,
    reportedValue: own(reports.values) ?? null,
    fingerprintEnv: own(fingerprint.envs) ?? null,
    fingerprintValue: own(fingerprint.values) ?? null,
    sameEnv: validateFingerprint(stored, same, { values: JSON.parse('{"__proto__":"value"}') }),
    changedEnv: validateFingerprint(stored, changed),
    changedValue: validateFingerprint(stored, same, { values: JSON.parse('{"__proto__":"other"}') }),
    removedEnv: validateFingerprint(stored, { OTHER: 'y' }),
  };
}

/** Row 14: a tool whose cwd was deleted reports relative paths, with and without a runner. */
export async function deletedCwd() {
  const tool = `
    const { mkdtempSync, rmdirSync } = require('node:fs');
    const dir = mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'ra-cwd-'));
    process.chdir(dir);
    rmdirSync(dir);
    const ra = require('runner-aware');
    const outcome = (call) => { try { call(); return 'ok'; } catch (err) { return err.message; } };
    console.log(JSON.stringify([outcome(() => ra.ignoreInput('dist')), outcome(() => ra.addOutput('out/x'))]));`;
  const env = { ...process.env };
  for (const name of ['VP_RUN_NODE_CLIENT_PATH', 'RUNNER_AWARE_SOCKET', 'RUNNER_AWARE_TOKEN']) delete env[name];
  const without = await run(process.execPath, ['-e', tool], { env });
  const server = await createServer();
  const under = await node(tool, server.env);
  const reports = await server.close();
  return {
    withoutRunner: { code: without.code, out: JSON.parse(without.stdout || 'null'), stderr: without.stderr },
    underRunner: { code: under.code, out: JSON.parse(under.stdout || 'null'), stderr: under.stderr },
    ignoredInputs: reports.ignoredInputs,
    outputs: reports.outputs,
    cacheable: reports.cacheable,
  };
}

/**
 * Row 15: the task's command starts a detached grandchild and exits at once;
 * the grandchild reports `delayMs` later and writes whether it was connected
 * to a file. With `daemonMs`, a second grandchild (a daemon) connects before
 * the command exits and holds its connection until that file appears (at most
 * `daemonMs`), so `close()` is still waiting when the late one arrives.
 */
export async function lateClient({ delayMs, closeTimeoutMs, daemonMs }) {
  const dir = mkdtempSync(join(tmpdir(), 'ra-late-'));
  const seen = join(dir, 'late.json');
  const server = await createServer({ closeTimeoutMs });
  try {
    // Written whole and renamed: the reader below never parses a half-written file.
    const late = `setTimeout(() => { const ra = require('runner-aware'); ra.ignoreInput('/late'); const fs = require('node:fs'); fs.writeFileSync(${JSON.stringify(`${seen}.tmp`)}, JSON.stringify(ra.isConnected())); fs.renameSync(${JSON.stringify(`${seen}.tmp`)}, ${JSON.stringify(seen)}); }, ${delayMs})`;
    // The daemon holds its connection until the late one has reported, at most `daemonMs`.
    const daemon = `const ra = require('runner-aware'); ra.ignoreInput('/daemon'); process.stdout.write(String(ra.isConnected()));
      setInterval(() => require('node:fs').existsSync(${JSON.stringify(seen)}) && process.exit(0), 10); setTimeout(() => process.exit(0), ${daemonMs})`;
    // With a daemon, the command exits once the daemon says it is connected.
    const command = await node(
      `const { spawn } = require('node:child_process');
       spawn(process.execPath, ['-e', ${JSON.stringify(late)}], { detached: true, stdio: 'ignore' }).unref();
       if (${daemonMs !== undefined}) {
         const daemon = spawn(process.execPath, ['-e', ${JSON.stringify(daemon)}], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
         daemon.stdout.once('data', () => process.exit(0));
       }`,
      server.env,
    );
    const started = performance.now();
    const reports = await server.close();
    const closeMs = Math.round(performance.now() - started);
    const deadline = Date.now() + delayMs + 5000;
    while (!existsSync(seen) && Date.now() < deadline) await sleep(20);
    return {
      commandExit: command.code,
      commandStderr: command.stderr,
      closeMs,
      lateConnected: existsSync(seen) ? JSON.parse(readFileSync(seen, 'utf8')) : null,
      ignoredInputs: reports.ignoredInputs,
      clients: reports.clients,
      cacheable: reports.cacheable,
      kinds: kinds(reports),
      notCacheable: reports.notCacheable,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Row 16: `runner-aware inspect` (text and --json) of a command that ends by `script` (a /bin/sh script). */
export async function inspectExit(script) {
  const cli = join(root, 'dist', 'cli.cjs');
  const text = await run(process.execPath, [cli, 'inspect', '--', '/bin/sh', '-c', script]);
  const json = await run(process.execPath, [cli, 'inspect', '--json', '--', '/bin/sh', '-c', script]);
  const printed = JSON.parse(json.stderr.slice(json.stderr.indexOf('{')));
  return {
    code: text.code,
    // inspect ends by the signal that killed the command, as the command did.
    signal: text.signal,
    summary: text.stderr,
    jsonVerdict: printed.verdict,
    reportsVerdict: { cacheable: printed.cacheable, notCacheable: printed.notCacheable },
    verdictOf: (outcome) => verdict(printed, outcome),
  };
}
