// `npm run bench`: the performance suite. Everything runs in one process tree
// pinned to one CPU (`taskset -c 0`: cross-CPU wake-ups on a VM cost more
// than the round trips being measured), and every ratio is against a baseline
// measured in the same run. Writes docs/benchmarks.md and docs/benchmarks.svg.
//
//   node bench/run.mjs            the full suite
//   node bench/run.mjs --smoke    a few thousand iterations, no vp peer;
//                                 writes to --out DIR (default: a temp dir)
//   --no-peer                     skip the vite-plus peer
//   --out DIR                     write the report files there instead of docs/

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { renderMarkdown, renderSvg, summarize } from './report.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const outArg = args.indexOf('--out');
const outDir = outArg >= 0 ? args[outArg + 1] : smoke ? mkdtempSync(join(tmpdir(), 'ra-bench-smoke-')) : join(root, 'docs');
const withPeer = !smoke && !args.includes('--no-peer');

// Re-run the whole suite under `taskset -c 0` so every process it starts
// inherits the pinning.
const PINNED = 'RUNNER_AWARE_BENCH_PINNED';
if (!process.env[PINNED]) {
  const taskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const command = taskset ? 'taskset' : process.execPath;
  const argv = taskset ? ['-c', '0', process.execPath, ...process.argv.slice(1)] : process.argv.slice(1);
  const child = spawn(command, argv, { stdio: 'inherit', env: { ...process.env, [PINNED]: taskset ? '1' : 'no' } });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

function log(line) {
  process.stderr.write(`bench: ${line}\n`);
}

/** Iteration counts: the full suite, or the smoke run that keeps the code from rotting. */
function sizes() {
  return smoke
    ? { roundTrips: 2000, rounds: 1, warmup: 200, dedupeBatches: 200, syscallRoundTrips: 1000, reports: 5000, concurrentCalls: 200, startups: 3, connects: 3, closePaths: 20000, traceClosePaths: 20000, serverCycles: 50, memoryCycles: 200, memoryWarmup: 20, traceModules: 40, traceRounds: 1, cacheFiles: 500, cacheRounds: 1 }
    : { roundTrips: 50000, rounds: 5, warmup: 5000, dedupeBatches: 5000, syscallRoundTrips: 20000, reports: 200000, concurrentCalls: 4000, startups: 40, connects: 40, closePaths: 1000000, traceClosePaths: 200000, serverCycles: 5000, memoryCycles: 10000, memoryWarmup: 2000, traceModules: 600, traceRounds: 10, cacheFiles: 10000, cacheRounds: 5 };
}

function readSamples(file) {
  const bytes = readFileSync(file);
  return Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8));
}

function run(command, argv, options = {}) {
  const result = spawnSync(command, argv, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (result.status !== 0) {
    throw new Error(`${command} ${argv.join(' ')} exited ${result.status ?? result.signal}:\n${result.stderr}`);
  }
  return result.stdout;
}

function lastJson(stdout) {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

async function main() {
  const n = sizes();
  const work = mkdtempSync(join(tmpdir(), 'ra-bench-'));
  // Tools import the tool-only entry; the runner side comes from its own.
  const apiUrl = pathToFileURL(join(root, 'dist', 'index.mjs')).href;
  const runnerUrl = pathToFileURL(join(root, 'dist', 'runner.mjs')).href;
  const { createServer } = await import(runnerUrl);
  const results = {
    smoke,
    pinned: process.env[PINNED] === '1',
    machine: machineLine(),
    files: fileSizes(),
    loadBefore: loadavg()[0],
    paths: {},
    figures: {},
    notes: [],
  };
  const samplesFile = (name) => join(work, `${name}.bin`);

  // The exact frames of one getEnv round trip, so every baseline moves the same bytes.
  const request = Buffer.byteLength(JSON.stringify({ op: 'getEnv', names: [`RA_BENCH_${(n.roundTrips / n.rounds) >> 1}`], tracked: true })) + 4;
  const answer = Buffer.byteLength(JSON.stringify({ op: 'env', values: [null] })) + 4;
  results.frames = { request, answer };
  results.rounds = n.rounds;

  // Our path: the tool loop through the addon's `load()`, under our server,
  // over the transport given (the runner reads RUNNER_AWARE_TRANSPORT from
  // its own env when it starts a server; the tool inherits it).
  const underServer = async (argv, transport = 'socket', env = {}) => {
    process.env.RUNNER_AWARE_TRANSPORT = transport;
    const server = await createServer({ env });
    delete process.env.RUNNER_AWARE_TRANSPORT;
    try {
      return run(process.execPath, [join(root, 'bench', 'tool-loop.cjs'), ...argv], {
        env: { ...process.env, ...server.env, RUNNER_AWARE_TRANSPORT: transport, RA_BENCH_API: join(root, 'dist', 'index.cjs') },
      });
    } finally {
      await server.close();
    }
  };
  const raw = buildRawPingPong();
  if (!raw) results.notes.push('cargo is not available: the raw Rust ping-pong was not measured.');
  let peer = null;
  if (withPeer) {
    peer = preparePeer();
    if (!peer.ok) {
      results.notes.push(`The upstream peer was not measured: ${peer.reason}`);
      peer = null;
    }
  } else {
    results.notes.push('The upstream peer (vite-plus under vp run) is skipped in this mode.');
  }
  const script = (name) => join(root, 'bench', name);
  const paths = {
    ours: (k, file) => underServer(['getenv', k, n.warmup, file]),
    fifo: (k, file) => underServer(['getenv', k, n.warmup, file], 'fifo'),
    raw: raw && ((k, file) => run(raw, [k, n.warmup, request, answer, file])),
    // The answering peer on a current-thread tokio runtime: the runner's
    // shape with none of its work, the floor of an async server.
    tokio: raw && ((k, file) => run(raw, ['--tokio', k, n.warmup, request, answer, file])),
    ipc: (k, file) => run(process.execPath, [script('node-ipc.mjs'), k, n.warmup, file]),
    net: (k, file) => run(process.execPath, [script('node-net.mjs'), k, n.warmup, file]),
    vp: peer && ((k, file) => runPeer(peer, k, n.warmup, file)),
  };
  // The paths take turns, a round each, so a change in the machine's load
  // during the run lands on all of them alike.
  const perRound = n.roundTrips / n.rounds;
  log(`round trips: ${n.rounds} round(s) of ${perRound} per path, taking turns`);
  for (let round = 0; round < n.rounds; round++) {
    for (const [key, measure] of Object.entries(paths)) {
      if (!measure) continue;
      const file = samplesFile(`${key}-${round}`);
      try {
        await measure(perRound, file);
      } catch (err) {
        if (key !== 'vp') throw err;
        results.notes.push(`The upstream peer stopped working mid-run and is left out: ${err.message.split('\n')[0]}`);
        paths.vp = null;
        delete results.paths.vp;
        continue;
      }
      (results.paths[key] ??= []).push(...readSamples(file));
    }
  }

  log('syscalls per round trip (strace -c)');
  results.syscalls = countSyscalls(n, runnerUrl, raw, request, answer);
  if (!results.syscalls) results.notes.push('strace is not available: syscalls per round trip were not counted.');

  log('dedupe: a name already answered');
  await underServer(['dedupe', n.dedupeBatches, 100, samplesFile('dedupe')]);
  results.figures.dedupe = readSamples(samplesFile('dedupe'));
  await underServer(['dedupe-api', n.dedupeBatches, 100, samplesFile('dedupeApi')]);
  results.figures.dedupeApi = readSamples(samplesFile('dedupeApi'));

  log('fire-and-forget reports from one thread');
  const reportRun = lastJson(await underServer(['report', n.reports, 1000, samplesFile('report')]));
  results.figures.report = { samples: readSamples(samplesFile('report')), ...reportRun };

  log('fire-and-forget reports over FIFOs');
  const reportFifoRun = lastJson(await underServer(['report', n.reports, 1000, samplesFile('reportFifo')], 'fifo'));
  results.figures.reportFifo = { samples: readSamples(samplesFile('reportFifo')), ...reportFifoRun };

  log('connect + first answer, socket and FIFOs, taking turns');
  results.figures.connect = { socket: [], fifo: [] };
  for (let i = 0; i < n.connects; i++) {
    for (const transport of ['socket', 'fifo']) {
      await underServer(['connect', 1, 0, samplesFile('connect')], transport, { RA_BENCH_CONNECT: 'yes' });
      results.figures.connect[transport].push(...readSamples(samplesFile('connect')));
    }
  }

  log(`the longest event-loop stall while close() hands over ${n.closePaths.toLocaleString('en-US')} paths`);
  results.figures.closeStall = lastJson(run(process.execPath, [join(root, 'bench', 'close-stall.mjs'), runnerUrl, n.closePaths]));

  log('8 worker threads + 8 child processes at once');
  results.figures.concurrent = await measureConcurrent(createServer, n.concurrentCalls, n.rounds);

  log('tool start-up through a runner, and outside any runner');
  results.figures.startup = await measureStartups(createServer, apiUrl, n.startups);

  // Each in a child with TMPDIR pointing at a fresh directory: under the
  // system temp dir (what a runner gets by default), and on tmpfs when there
  // is one, which shows the part the temp dir's filesystem costs.
  const cycles = (mode, base, warmup, count) => {
    const dir = mkdtempSync(join(base, 'ra-bench-cycles-'));
    try {
      const env = { ...process.env, TMPDIR: dir };
      const argv = ['--expose-gc', join(root, 'bench', 'server-cycles.mjs'), mode, runnerUrl, warmup, count];
      return { dir: base, ...lastJson(run(process.execPath, argv, { env })) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  log('createServer + close with no clients');
  results.figures.serverCycle = cycles('times', tmpdir(), 50, n.serverCycles);
  if (existsSync('/dev/shm')) results.figures.serverCycleTmpfs = cycles('times', '/dev/shm', 50, n.serverCycles);

  log(`runner memory over ${n.memoryCycles} createServer/close cycles`);
  results.figures.memory = { cycles: n.memoryCycles, warmup: n.memoryWarmup, ...cycles('memory', tmpdir(), n.memoryWarmup, n.memoryCycles) };
  rmSync(work, { recursive: true, force: true });

  // File-access tracing, where there is a tracer (Linux x64 and arm64).
  const server = await createServer({ trace: true });
  const traceSupported = server.trace !== 'unsupported';
  await server.close();
  if (traceSupported) {
    log(`traced vite build of a ${n.traceModules}-module app: untraced, preload, seccomp, taking turns ${n.traceRounds} time(s); strace; the reference runner`);
    results.figures.trace = lastJson(run(process.execPath, [join(root, 'bench', 'trace.mjs'), runnerUrl, n.traceModules, n.traceRounds]));
    log(`the longest event-loop stall while close() reads a trace of ${n.traceClosePaths.toLocaleString('en-US')} paths`);
    results.figures.trace.closeStall = lastJson(run(process.execPath, [join(root, 'bench', 'close-stall.mjs'), runnerUrl, n.traceClosePaths, 'trace']));
    log(`the cache store on that app and on a ${n.cacheFiles.toLocaleString('en-US')}-file output tree: plain, store, hit, floor, archiving; ${n.cacheRounds} round(s)`);
    results.figures.cache = lastJson(run(process.execPath, [join(root, 'bench', 'cache.mjs'), runnerUrl, n.traceModules, n.cacheFiles, n.cacheRounds]));
  } else {
    results.notes.push('File-access tracing is not supported here: its rows were not measured.');
  }
  if (traceSupported && !smoke) {
    // The mutation suite of the test suite, its counts kept: every input of
    // real toolchains' builds mutated in turn, with no configuration.
    log('zero-config hit rate: the mutation suite on real toolchains (vite, tsc, esbuild, rolldown, sass, an npm script)');
    const rowsFile = join(tmpdir(), `ra-bench-mutation-${process.pid}.json`);
    const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
    run(process.execPath, [vitest, 'run', 'test/mutation.test.ts'], { cwd: root, env: { ...process.env, RUNNER_AWARE_MUTATION_JSON: rowsFile } });
    results.figures.mutation = JSON.parse(readFileSync(rowsFile, 'utf8'));
    rmSync(rowsFile, { force: true });
  }
  if (spawnSync('git', ['--version'], { stdio: 'ignore' }).status === 0) {
    log(`a look-up keyed on a ${n.cacheFiles.toLocaleString('en-US')}-file git repository against git status; ${n.cacheRounds} round(s)`);
    results.figures.repo = lastJson(run(process.execPath, [join(root, 'bench', 'repo.mjs'), runnerUrl, n.cacheFiles, n.cacheRounds]));
  } else {
    results.notes.push('git is not installed: the repository key was not measured.');
  }

  results.loadAfter = loadavg()[0];
  const summary = summarize(results);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'benchmarks.md'), renderMarkdown(summary));
  writeFileSync(join(outDir, 'benchmarks.svg'), renderSvg(summary));
  writeFileSync(join(outDir, 'benchmarks.json'), JSON.stringify(summary, null, 2) + '\n');
  if (!smoke && outArg < 0) rmSync(join(outDir, 'benchmarks.json'));
  process.stdout.write(renderMarkdown(summary, { tableOnly: true }));
  log(`wrote ${join(outDir, 'benchmarks.md')} and benchmarks.svg`);
}

/** The bytes a tool loads: the tool bundle it imports and the addon a runner hands it. */
function fileSizes() {
  const size = (file) => (existsSync(file) ? statSync(file).size : null);
  const addon = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file));
  return { toolBundle: size(join(root, 'dist', 'index.mjs')), addon: addon ? size(join(root, addon)) : null };
}

function machineLine() {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  let rustc = 'rustc not found';
  try {
    rustc = execFileSync('rustc', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // Reported as missing.
  }
  return `${cpu}, ${cpus().length} CPUs, Linux ${release()}, Node ${process.version}, ${rustc}`;
}

/**
 * Syscalls per getEnv round trip, runner and tool together, for our path and
 * the raw baseline: `strace -f -c` of a run of N round trips minus a run of 0,
 * divided by N. `null` without strace.
 */
function countSyscalls(n, runnerUrl, raw, request, answer) {
  if (spawnSync('strace', ['-V'], { stdio: 'ignore' }).status !== 0) return null;
  const iterations = n.syscallRoundTrips;
  const dir = mkdtempSync(join(tmpdir(), 'ra-bench-strace-'));
  const count = (argv, label) => {
    const out = join(dir, `${label}.txt`);
    run('strace', ['-f', '-c', '-o', out, '--', ...argv]);
    const calls = {};
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
      if (m && m[2] !== 'total') calls[m[2]] = Number(m[1]);
    }
    return calls;
  };
  const perRoundTrip = (argvFor) => {
    const base = count(argvFor(0), 'base');
    const full = count(argvFor(iterations), 'full');
    const per = {};
    for (const [name, calls] of Object.entries(full)) {
      const extra = (calls - (base[name] ?? 0)) / iterations;
      if (extra >= 0.05) per[name] = Math.round(extra * 100) / 100;
    }
    return per;
  };
  try {
    const ours = perRoundTrip((k) => [process.execPath, join(root, 'bench', 'syscalls.mjs'), runnerUrl, k]);
    const limit = raw ? perRoundTrip((k) => [raw, k, 0, request, answer, join(dir, 'raw.bin')]) : null;
    return { iterations, ours, raw: limit };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Builds the raw ping-pong baseline in its own target dir; `null` without cargo. */
function buildRawPingPong() {
  const manifest = join(root, 'bench', 'raw-pingpong', 'Cargo.toml');
  const targetDir = join(root, 'target', 'raw-pingpong');
  const built = spawnSync('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest, '--target-dir', targetDir], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (built.status !== 0) return null;
  return join(targetDir, 'release', 'raw-pingpong');
}

/**
 * The upstream implementation: vite-plus 1.5.1's `vp run --cache` runs the
 * same tool loop with its own addon in VP_RUN_NODE_CLIENT_PATH. vp needs
 * Node >= 22.18, installed from the npm registry into a cache directory.
 */
function preparePeer() {
  const cache = join(root, 'node_modules', '.cache', 'runner-aware-bench');
  const nodePackage = `node-${process.platform}-${process.arch}`;
  const node22 = join(cache, 'node_modules', nodePackage, 'bin', 'node');
  const vp = join(cache, 'node_modules', 'vite-plus', 'bin', 'vp');
  if (!existsSync(node22) || !existsSync(vp)) {
    mkdirSync(cache, { recursive: true });
    if (!existsSync(join(cache, 'package.json'))) writeFileSync(join(cache, 'package.json'), '{ "private": true }\n');
    log(`installing vite-plus@1.5.1 and ${nodePackage}@22 into ${cache}`);
    const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', cache, 'vite-plus@1.5.1', `${nodePackage}@22`], {
      encoding: 'utf8',
    });
    if (npm.status !== 0 || !existsSync(node22) || !existsSync(vp)) {
      const why = (npm.stderr || npm.error?.message || '').trim().split('\n').pop();
      return { ok: false, reason: `npm install of vite-plus@1.5.1 and ${nodePackage}@22 failed: ${why}` };
    }
  }
  return { ok: true, node22, vp };
}

/** One `vp run --cache` of the tool loop; throws when vp fails. */
function runPeer({ node22, vp }, iterations, warmup, outFile) {
  const project = mkdtempSync(join(tmpdir(), 'ra-bench-vp-'));
  try {
    // vp runs on Node 22; the tool loop runs on this Node, as ours does.
    const script = [process.execPath, join(root, 'bench', 'tool-loop.cjs'), 'getenv', iterations, warmup, outFile]
      .map((a) => JSON.stringify(String(a)))
      .join(' ');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'ra-bench-vp', private: true, scripts: { bench: script } }));
    const env = { ...process.env, PATH: `${dirname(node22)}:${process.env.PATH}` };
    delete env.VP_RUN_NODE_CLIENT_PATH;
    run(node22, [vp, 'run', '--cache', 'bench'], { cwd: project, env });
    if (!existsSync(outFile)) throw new Error('vp run wrote no samples');
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

async function measureConcurrent(createServer, calls, rounds) {
  const clients = 16;
  const env = { RA_BENCH_CONNECT: 'yes' };
  for (let c = 0; c < clients; c++) for (let i = 0; i < calls; i++) env[`RA_BENCH_C${c}_${i}`] = `v${c}.${i}`;
  const measure = async (threads, processes) => {
    const server = await createServer({ env });
    const out = lastJson(run(process.execPath, [join(root, 'bench', 'concurrent.cjs'), threads, processes, calls], { env: { ...process.env, ...server.env } }));
    const reports = await server.close();
    return { ...out, envRequests: reports.envRequests, connections: reports.clients, errors: reports.errors.length };
  };
  // Taking turns, as the round trips do; each side's median round counts.
  const singles = [];
  const manys = [];
  for (let round = 0; round < rounds; round++) {
    singles.push(await measure(0, 1));
    manys.push(await measure(8, 8));
  }
  const median = (runs) => [...runs].sort((a, b) => a.perSecond - b.perSecond)[runs.length >> 1];
  const many = median(manys);
  // Every call of every round must have been answered.
  const wrong = manys.reduce((total, r) => total + r.wrong, 0);
  const errors = manys.reduce((total, r) => total + r.errors, 0);
  return { single: median(singles), many: { ...many, wrong, errors }, rounds };
}

async function measureStartups(createServer, apiUrl, count) {
  const script = join(root, 'bench', 'startup.mjs');
  const runner = [];
  for (let i = 0; i < count; i++) {
    const server = await createServer({ env: { RA_BENCH_STARTUP: 'yes' } });
    runner.push(lastJson(run(process.execPath, [script, 'runner', apiUrl], { env: { ...process.env, ...server.env } })));
    await server.close();
  }
  const warm = [];
  for (let i = 0; i < count; i++) {
    const server = await createServer({ env: { RA_BENCH_STARTUP: 'yes' } });
    warm.push(lastJson(run(process.execPath, [script, 'warm', apiUrl], { env: { ...process.env, ...server.env } })));
    await server.close();
  }
  const bare = { ...process.env };
  for (const name of ['RUNNER_AWARE_SOCKET', 'RUNNER_AWARE_TOKEN', 'VP_RUN_NODE_CLIENT_PATH']) delete bare[name];
  const noop = pathToFileURL(join(root, 'bench', 'noop-api.mjs')).href;
  const outside = [];
  const floor = [];
  // Interleaved, so both see the same machine.
  for (let i = 0; i < count; i++) {
    outside.push(lastJson(run(process.execPath, [script, 'outside', apiUrl], { env: bare })));
    floor.push(lastJson(run(process.execPath, [script, 'outside', noop], { env: bare })));
  }
  return { runner, warm, outside, floor };
}
