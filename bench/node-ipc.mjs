// Baseline: Node's built-in IPC. The parent forks this file and times
// `process.send` of a getEnv-shaped request until the child's answer arrives.
//
//   node node-ipc.mjs <iterations> <warmup> <out-file>

import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

if (process.argv[2] === '--serve') {
  process.on('message', () => process.send({ op: 'env', values: [null] }));
} else {
  const [iterations, warmup] = process.argv.slice(2, 4).map(Number);
  const outFile = process.argv[4];
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { serialization: 'json' });
  const roundTrip = (name) =>
    new Promise((resolve) => {
      child.once('message', resolve);
      child.send({ op: 'getEnv', names: [name], tracked: true });
    });
  for (let i = 0; i < warmup; i++) await roundTrip(`RA_BENCH_WARM_${i}`);
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await roundTrip(`RA_BENCH_${i}`);
    samples[i] = (performance.now() - t0) * 1000;
  }
  child.disconnect();
  writeFileSync(outFile, Buffer.from(samples.buffer));
}
