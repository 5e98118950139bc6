// Archiving alone: how long the cache store takes to store a run whose only
// work is its outputs (one declared input, the output tree), in-process, so
// the figure is the store's digests, tar and zstd and nothing of a build.
// Prints one JSON line: `{ ms, bytes }` (the median of `rounds`, the tree's size).
//
//   node bench/cache-archive.mjs <runner.mjs url> <app dir> <output dir name> <rounds>

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [runnerUrl, app, outName, roundsArg = '5'] = process.argv.slice(2);
const { openCache } = await import(runnerUrl);
process.chdir(app);

const size = (dir) => readdirSync(dir, { withFileTypes: true })
  .reduce((n, entry) => n + (entry.isDirectory() ? size(join(dir, entry.name)) : statSync(join(dir, entry.name)).size), 0);
const reports = {
  ignoredInputs: [], ignoredOutputs: [], inputs: [join(app, 'package.json')], outputs: [join(app, outName)], values: {},
  envValues: 'sha256', envs: {}, envQueries: [], untrackedEnv: [], cacheable: true, notCacheable: [], errors: [],
  clients: 1, clientsStillConnected: 0, envRequests: 0,
};
const times = [];
for (let i = 0; i < Number(roundsArg); i++) {
  const dir = mkdtempSync(join(tmpdir(), 'ra-bench-archive-'));
  try {
    const cache = openCache({ dir });
    const start = process.hrtime.bigint();
    // No input changed while this "run" went on: it has no run.
    const stored = await cache.store(`archive ${i}`, { reports, outcome: { exitCode: 0 }, startedAt: Date.now() + 60_000 });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (!stored.stored) throw new Error(`not stored: ${stored.reasons.join('; ')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
times.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({ ms: times[Math.floor(times.length / 2)], bytes: size(join(app, outName)) })}\n`);
