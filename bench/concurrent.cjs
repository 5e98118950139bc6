// Many callers at once: worker threads and child processes of one tool, each
// asking the runner for its own new names through the addon's `load()`, all
// started together. Checks every answer and prints throughput as JSON.
//
//   node concurrent.cjs <threads> <processes> <calls-per-client>

'use strict';
const { fork } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

/** The value the runner holds for a client's i-th name (see bench/run.mjs). */
const nameOf = (client, i) => `RA_BENCH_C${client}_${i}`;
const valueOf = (client, i) => `v${client}.${i}`;

/** One client's calls; `send` reports to the coordinator. */
function client(id, calls, send, onGo) {
  const addon = require(process.env.VP_RUN_NODE_CLIENT_PATH).load();
  addon.getEnv('RA_BENCH_CONNECT');
  onGo(() => {
    const start = performance.timeOrigin + performance.now();
    let wrong = 0;
    for (let i = 0; i < calls; i++) {
      if (addon.getEnv(nameOf(id, i)) !== valueOf(id, i)) wrong++;
    }
    const end = performance.timeOrigin + performance.now();
    send({ id, start, end, wrong });
  });
  send({ ready: id });
}

if (!isMainThread) {
  const { id, calls } = workerData;
  client(id, calls, (m) => parentPort.postMessage(m), (go) => parentPort.once('message', go));
} else if (process.argv[2] === '--child') {
  const [id, calls] = process.argv.slice(3).map(Number);
  client(id, calls, (m) => process.send(m), (go) => process.once('message', () => { go(); process.disconnect(); }));
} else {
  const [threads, processes, calls] = process.argv.slice(2).map(Number);
  const peers = [];
  for (let t = 0; t < threads; t++) {
    const worker = new Worker(__filename, { workerData: { id: t, calls } });
    peers.push({ on: (f) => worker.on('message', f), go: () => worker.postMessage('go'), done: worker });
  }
  for (let p = 0; p < processes; p++) {
    const child = fork(__filename, ['--child', String(threads + p), String(calls)]);
    peers.push({ on: (f) => child.on('message', f), go: () => child.send('go'), done: child });
  }
  const results = [];
  let ready = 0;
  const all = new Promise((resolve, reject) => {
    for (const peer of peers) {
      peer.done.on('error', reject);
      peer.on((m) => {
        if ('ready' in m) {
          if (++ready === peers.length) for (const p of peers) p.go();
        } else if (results.push(m) === peers.length) resolve();
      });
    }
  });
  all.then(() => {
    const start = Math.min(...results.map((r) => r.start));
    const end = Math.max(...results.map((r) => r.end));
    const total = results.length * calls;
    const wrong = results.reduce((n, r) => n + r.wrong, 0);
    console.log(JSON.stringify({ clients: results.length, calls: total, wrong, seconds: (end - start) / 1000, perSecond: total / ((end - start) / 1000) }));
    process.exit(0);
  });
}
