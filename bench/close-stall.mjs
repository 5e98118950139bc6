// The longest event-loop stall of a runner while close() hands over huge
// reports: a tool reports N distinct paths, then the runner closes while a
// timer measures how late the loop gets to run. With `trace`, the task is
// traced instead and looks up N distinct paths, so close() reads a trace of
// N records (Linux).
//
//   node close-stall.mjs <runner-url> <paths> [trace]
// Prints { paths, received, closeMs, maxStallMs } as JSON.

import { spawnSync } from 'node:child_process';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const [runnerUrl, countArg, mode] = process.argv.slice(2);
const count = Number(countArg);
const traced = mode === 'trace';
const { createServer } = await import(runnerUrl);
const server = await createServer({ env: {}, trace: traced });
const prefix = '/bench/close-stall/some/dir/';
const tool = traced
  ? `const { existsSync } = require('node:fs'); for (let i = 0; i < ${count}; i++) existsSync('${prefix}' + i);`
  : `const client = require(process.env.VP_RUN_NODE_CLIENT_PATH).load();
for (let i = 0; i < ${count}; i++) client.ignoreInput('${prefix}' + i);`;
const [file, ...args] = server.command([process.execPath, '-e', tool]);
const child = spawnSync(file, args, { env: { ...process.env, ...server.env }, stdio: 'inherit' });
if (child.status !== 0) throw new Error('close-stall: the tool failed');
const delay = monitorEventLoopDelay({ resolution: 1 });
// A timer keeps the loop turning, so every stall shows as a late tick.
let maxGap = 0;
let last = performance.now();
const ticker = setInterval(() => {
  const now = performance.now();
  maxGap = Math.max(maxGap, now - last);
  last = now;
}, 1);
delay.enable();
const started = performance.now();
last = started;
const reports = await server.close();
const closeMs = performance.now() - started;
delay.disable();
clearInterval(ticker);
const received = traced ? (reports.trace?.missing ?? []).filter((path) => path.startsWith(prefix)).length : reports.ignoredInputs.length;
if (traced && !reports.trace?.complete) throw new Error(`close-stall: the trace is incomplete: ${reports.trace?.incomplete.join('; ')}`);
console.log(JSON.stringify({ paths: count, received, closeMs, maxStallMs: Math.max(maxGap, delay.max / 1e6) }));
