// A runner and its tools, end to end, on a platform this host only emulates:
// Windows (node.exe under Wine) and Linux arm64 (node under qemu-user). Run by
// scripts/ci-cross.sh from a staged install (node_modules/runner-aware holds
// dist/ and the cross-built addon), not by vitest.
//
//   node scenario.mjs <result.json>
//
// CROSS_NODE, when set, is a JSON array: the command that starts a Node
// process here (qemu-user has no binfmt in CI containers, so a child `node`
// must be started through qemu). Output goes to the result file and stdout;
// the exit code says whether every check held.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createServer } from 'runner-aware/runner';

const here = dirname(fileURLToPath(import.meta.url));
const toolPath = join(here, 'tool.mjs');
const windows = process.platform === 'win32';
const [command, ...prefix] = JSON.parse(process.env.CROSS_NODE ?? 'null') ?? [process.execPath];
const TOOLS = 6;

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok: Boolean(ok), ...(ok ? {} : { detail }) });
}

function runTool(args, env) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, [...prefix, toolPath, ...args], { env, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolvePromise(code ?? signal));
  });
}

const MiB = 1024 * 1024;
const runnerEnv = { CROSS_A: 'a', Vite_Mode: 'm', NODE_ENV: 'production' };
for (let k = 0; k < 8; k++) runnerEnv[`BIG_${k}`] = String(k).repeat(MiB);

/** Run 1: several tools at once, every kind of report, a clean verdict. */
async function cleanRun() {
  const server = await createServer({ env: runnerEnv });
  const env = { ...process.env, ...server.env };
  const started = Date.now();
  const codes = await Promise.all(Array.from({ length: TOOLS }, (_, i) => runTool(['tool', String(i)], env)));
  const toolsMs = Date.now() - started;
  const reports = await server.close();
  check('every tool exited 0', codes.every((code) => code === 0), codes);
  check('every tool and the grandchild connected', reports.clients === TOOLS + 1, reports.clients);
  check('the run is cacheable', reports.cacheable === true && reports.notCacheable.length === 0, reports.notCacheable);
  check('no protocol errors', reports.errors.length === 0, reports.errors);
  for (let i = 0; i < TOOLS; i++) {
    check(`tool ${i} was connected`, reports.values[`connected-${i}`] === 'true', reports.values[`connected-${i}`]);
    check(`tool ${i}'s input`, reports.inputs.includes(resolve(`src/${i}.js`)), reports.inputs.slice(0, 5));
    check(`tool ${i}'s ignored input`, reports.ignoredInputs.includes(resolve(`cache/${i}`)), reports.ignoredInputs);
    check(`tool ${i}'s ignored output`, reports.ignoredOutputs.includes(resolve(`dist/.cache-${i}`)), reports.ignoredOutputs);
    // Windows: `cross_a` is the runner's CROSS_A; Unix: another name.
    const crossA = reports.values[`cross_a-${i}`];
    check(`tool ${i}'s getEnv('cross_a')`, crossA === (windows ? 'a' : 'undefined'), crossA);
    const vite = reports.values[`vite-${i}`];
    check(`tool ${i}'s getEnvs('VITE_*')`, vite === (windows ? 'Vite_Mode' : ''), vite);
  }
  check('the output', reports.outputs.includes(resolve('dist')), reports.outputs);
  check('an 8 MiB answer arrived whole', reports.values.big === String(8 * MiB), reports.values.big);
  check('the grandchild connected', reports.values.grandchild === 'connected', reports.values.grandchild);
  const burst = reports.inputs.filter((path) => path.startsWith(resolve('burst'))).length;
  check('a tool that exited at once lost nothing', burst === 200, burst);
  for (let k = 0; k < 4; k++) {
    check(`worker ${k}`, reports.values[`worker-${k}`] === 'a' && reports.inputs.includes(resolve(`worker/${k}`)), reports.values[`worker-${k}`]);
  }
  // One record per variable, under the runner's spelling.
  const envNames = Object.keys(reports.envs).sort();
  const expected = windows ? ['CROSS_A'] : ['CROSS_A', 'cross_a'];
  check('env records', JSON.stringify(envNames) === JSON.stringify(expected), envNames);
  return { toolsMs, clients: reports.clients, inputs: reports.inputs.length, values: Object.keys(reports.values).length };
}

/** Run 2: a tool says not to cache, and a tool that cannot reach the runner leaves a marker. */
async function failingRun() {
  const server = await createServer({ env: runnerEnv });
  const env = { ...process.env, ...server.env, CROSS_DISABLE: '4' };
  // An address nothing answers at (on Unix, in a directory with neither a
  // socket nor a FIFO rendezvous), markers still going to the runner.
  const dir = server.env.RUNNER_AWARE_DIR ?? dirname(server.env.RUNNER_AWARE_SOCKET);
  const nowhere = windows ? '\\\\.\\pipe\\runner-aware-nobody-listens-here' : join(dir, 'elsewhere', 's');
  const lost = { ...env, RUNNER_AWARE_SOCKET: nowhere, RUNNER_AWARE_DIR: dir };
  check('Windows runners name their private directory', !windows || Boolean(server.env.RUNNER_AWARE_DIR), server.env);
  const codes = await Promise.all([runTool(['tool', '4'], env), runTool(['tool', '5'], lost)]);
  const reports = await server.close();
  check('both tools exited 0', codes.every((code) => code === 0), codes);
  const kinds = [...new Set(reports.notCacheable.map((reason) => reason.kind))].sort();
  check('not cacheable: disableCache and a lost marker', JSON.stringify(kinds) === '["disable-cache","lost"]', reports.notCacheable);
  check('only the tool that reached the runner connected', reports.clients === 1, reports.clients);
  return { notCacheable: reports.notCacheable };
}

/**
 * Run 3: a "runner" that accepts and never answers. The tool must give up
 * after its timeout (no hang), go offline and leave a marker.
 */
async function unansweredRun(addonPath) {
  const dir = mkdtempSync(join(tmpdir(), 'runner-aware-cross-'));
  const address = windows ? `\\\\.\\pipe\\runner-aware-cross-${process.pid}` : join(dir, 's');
  const held = [];
  const silent = createNetServer((socket) => held.push(socket));
  await new Promise((ready) => silent.listen(address, ready));
  const result = join(dir, 'result.json');
  const env = {
    ...process.env,
    RUNNER_AWARE_SOCKET: address,
    RUNNER_AWARE_TOKEN: 'token',
    RUNNER_AWARE_TIMEOUT_MS: '500',
    RUNNER_AWARE_DIR: dir,
    VP_RUN_NODE_CLIENT_PATH: addonPath,
  };
  const started = Date.now();
  const code = await runTool(['unanswered', result], env);
  const wallMs = Date.now() - started;
  for (const socket of held) socket.destroy();
  silent.close();
  const outcome = JSON.parse(readFileSync(result, 'utf8'));
  const markers = readdirSync(dir).filter((name) => name.startsWith('lost-'));
  rmSync(dir, { recursive: true, force: true });
  check('the unanswered tool exited 0', code === 0, code);
  check('the unanswered call gave up after the timeout', outcome.elapsedMs >= 450 && outcome.elapsedMs < 5000, outcome);
  check('the unanswered tool went offline', outcome.connected === false && outcome.value === null, outcome);
  check('the unanswered tool left a marker', markers.length === 1, markers);
  return { elapsedMs: outcome.elapsedMs, wallMs };
}

const started = Date.now();
const summary = { node: process.version, platform: `${process.platform}-${process.arch}` };
try {
  summary.clean = await cleanRun();
  summary.failing = await failingRun();
  const probe = await createServer({ env: {} });
  const addonPath = probe.env.VP_RUN_NODE_CLIENT_PATH;
  await probe.close();
  summary.unanswered = await unansweredRun(addonPath);
} catch (err) {
  check('the scenario ran', false, String(err?.stack ?? err));
}
summary.ms = Date.now() - started;
summary.failed = checks.filter((c) => !c.ok);
summary.passed = checks.length - summary.failed.length;
const text = JSON.stringify(summary, null, 2);
if (process.argv[2]) writeFileSync(process.argv[2], text);
console.log(text);
process.exitCode = summary.failed.length === 0 ? 0 : 1;
