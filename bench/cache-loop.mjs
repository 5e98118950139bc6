// One run of a task through runner-aware/runner's cache loop, as a runner
// process makes it: look up; a hit restores the outputs; a miss runs the
// command traced and stores the run. Prints one JSON line: `{ status }`.
//
//   node bench/cache-loop.mjs <runner.mjs url> <cache dir> -- <command…>

import { spawn } from 'node:child_process';

const [runnerUrl, cacheDir, separator, ...command] = process.argv.slice(2);
if (separator !== '--' || command.length === 0) throw new Error('usage: cache-loop.mjs <runner.mjs url> <cache dir> -- <command…>');
const { createServer, openCache } = await import(runnerUrl);

const cache = openCache({ dir: cacheDir });
const found = await cache.lookup('bench');
let status;
if (found.hit) {
  await cache.restore(found.entry);
  status = 'hit';
} else {
  const server = await createServer({ trace: true });
  const [file, ...args] = server.command(command);
  const startedAt = Date.now();
  const child = spawn(file, args, { env: { ...process.env, ...server.env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const stdout = [];
  child.stdout.on('data', (chunk) => stdout.push(chunk));
  const [exitCode, signal] = await new Promise((resolve) => child.on('close', (...exit) => resolve(exit)));
  const reports = await server.close();
  const stored = await cache.store('bench', { reports, outcome: { exitCode, signal }, startedAt, stdout: Buffer.concat(stdout) });
  status = stored.stored ? 'stored' : `skipped: ${stored.reasons.join('; ')}`;
}
cache.close();
process.stdout.write(`${JSON.stringify({ status })}\n`);
