// The runner's server life cycle, in its own process so TMPDIR can be chosen
// (leftovers are then this process's own):
//
//   node server-cycles.mjs memory <runner-url> <warmup> <cycles>
//     RSS, open file descriptors and leftover socket directories before and
//     after the cycles
//   node server-cycles.mjs times <runner-url> <warmup> <cycles>
//     each createServer + close() timed, µs
//
// Prints one JSON line.

import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';

const [mode, runnerUrl, warmupArg, cyclesArg] = process.argv.slice(2);
const { createServer } = await import(runnerUrl);
const fds = () => readdirSync('/proc/self/fd').length;
const cycle = async () => (await createServer()).close();

for (let i = 0; i < Number(warmupArg); i++) await cycle();
if (mode === 'times') {
  const times = [];
  for (let i = 0; i < Number(cyclesArg); i++) {
    const t0 = performance.now();
    await cycle();
    times.push((performance.now() - t0) * 1000);
  }
  console.log(JSON.stringify({ times }));
} else {
  globalThis.gc?.();
  const before = { rss: process.memoryUsage.rss(), fds: fds() };
  for (let i = 0; i < Number(cyclesArg); i++) await cycle();
  globalThis.gc?.();
  const after = { rss: process.memoryUsage.rss(), fds: fds() };
  console.log(JSON.stringify({ before, after, leftoverDirs: readdirSync(tmpdir()).length }));
}
