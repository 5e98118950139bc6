// A runner and one tool doing <iterations> getEnv round trips, for counting
// syscalls under `strace -f -c` (bench/run.mjs subtracts a run with 0).
//
//   node syscalls.mjs <runner-url> <iterations>

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [runnerUrl, iterations] = process.argv.slice(2);
const { createServer } = await import(runnerUrl);
const dir = mkdtempSync(join(tmpdir(), 'ra-bench-sys-'));
const server = await createServer({ env: {} });
const tool = spawnSync(
  process.execPath,
  [join(dirname(fileURLToPath(import.meta.url)), 'tool-loop.cjs'), 'getenv', iterations, '0', join(dir, 'samples.bin')],
  { env: { ...process.env, ...server.env }, stdio: 'inherit' },
);
await server.close();
rmSync(dir, { recursive: true, force: true });
process.exitCode = tool.status ?? 1;
