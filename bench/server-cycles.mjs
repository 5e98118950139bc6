// Runner memory: creates and closes servers in a loop and reports RSS, open
// file descriptors and leftover socket directories before and after. Run with
// TMPDIR set to an empty private directory so leftovers are this process's own.
//
//   node server-cycles.mjs <api-url> <warmup-cycles> <cycles>

import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';

const [apiUrl, warmupArg, cyclesArg] = process.argv.slice(2);
const { createServer } = await import(apiUrl);
const fds = () => readdirSync('/proc/self/fd').length;
const cycle = async () => (await createServer()).close();

for (let i = 0; i < Number(warmupArg); i++) await cycle();
globalThis.gc?.();
const before = { rss: process.memoryUsage.rss(), fds: fds() };
for (let i = 0; i < Number(cyclesArg); i++) await cycle();
globalThis.gc?.();
const after = { rss: process.memoryUsage.rss(), fds: fds() };
console.log(JSON.stringify({ before, after, leftoverDirs: readdirSync(tmpdir()).length }));
