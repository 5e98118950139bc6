// A tool's hot loop through the `@voidzero-dev/vite-task-client` contract:
// `require(process.env.VP_RUN_NODE_CLIENT_PATH).load()`. The same file runs
// under runner-aware's server and under `vp run`, so both are measured through
// one contract. Writes its samples (µs, Float64 little-endian) to argv[4].
//
//   node tool-loop.cjs <mode> <iterations> <warmup> <out-file>
//
// modes: getenv  — a new name each call (one round trip each)
//        dedupe  — the same name again (answered from the addon's cache);
//                  samples are µs per call, averaged over batches of 1000
//        dedupe-api — the same through runner-aware's tool API wrapper
//        report  — ignoreInput, fire-and-forget, one sample per call; prints
//                  the loop's wall time as JSON
//        connect — the first call of a fresh process with the addon already
//                  open: connect + handshake + one answer (one sample)

'use strict';
const { writeFileSync } = require('node:fs');
const { performance } = require('node:perf_hooks');

const [mode, iterationsArg, warmupArg, outFile] = process.argv.slice(2);
const iterations = Number(iterationsArg);
const warmup = Number(warmupArg);
const addonPath = process.env.VP_RUN_NODE_CLIENT_PATH;
if (!addonPath) throw new Error('tool-loop: VP_RUN_NODE_CLIENT_PATH is not set');
const client = require(addonPath).load();
const samples = new Float64Array(iterations);
const BATCH = 1000;

if (mode === 'getenv') {
  for (let i = 0; i < warmup; i++) client.getEnv(`RA_BENCH_WARM_${i}`);
  for (let i = 0; i < iterations; i++) {
    const name = `RA_BENCH_${i}`;
    const t0 = performance.now();
    client.getEnv(name);
    samples[i] = (performance.now() - t0) * 1000;
  }
} else if (mode === 'dedupe' || mode === 'dedupe-api') {
  const getEnv =
    mode === 'dedupe' ? (name) => client.getEnv(name) : require(process.env.RA_BENCH_API).getEnv;
  getEnv('RA_BENCH_DEDUPE');
  for (let i = 0; i < warmup; i++) getEnv('RA_BENCH_DEDUPE');
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    for (let j = 0; j < BATCH; j++) getEnv('RA_BENCH_DEDUPE');
    samples[i] = ((performance.now() - t0) * 1000) / BATCH;
  }
} else if (mode === 'report') {
  for (let i = 0; i < warmup; i++) client.ignoreInput(`/bench/warm/${i}`);
  const start = performance.now();
  for (let i = 0; i < iterations; i++) {
    const path = `/bench/ignored/${i}`;
    const t0 = performance.now();
    client.ignoreInput(path);
    samples[i] = (performance.now() - t0) * 1000;
  }
  const elapsedUs = (performance.now() - start) * 1000;
  console.log(JSON.stringify({ calls: iterations, elapsedUs }));
} else if (mode === 'connect') {
  const t0 = performance.now();
  const value = client.getEnv('RA_BENCH_CONNECT');
  samples[0] = (performance.now() - t0) * 1000;
  if (value !== 'yes') throw new Error('tool-loop: the first call got no answer');
} else {
  throw new Error(`tool-loop: unknown mode ${mode}`);
}

// Under `vp run` the script would otherwise be cached and not run next time.
client.disableCache();
writeFileSync(outFile, Buffer.from(samples.buffer));
