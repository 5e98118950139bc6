// `npm run test:fifo`: the whole vitest suite again with
// RUNNER_AWARE_TRANSPORT=fifo, so every runner the tests start serves named
// FIFOs only (no socket is bound) and every tool connects over FIFOs: zero
// loss, hostile peers, worker threads, grandchildren, dedupe and close timing
// are checked on that transport too. Arguments go to vitest. Windows has no
// FIFOs (its transport is a named pipe): nothing to run there.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

if (process.platform === 'win32') {
  process.stdout.write('test:fifo: no FIFO transport on Windows; skipped\n');
  process.exit(0);
}
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
// The mutation suite holds the trace and the cache to real toolchains (about
// three minutes); its tools' few reports are no test of the transport, which
// every other suite covers here.
const args = process.argv.length > 2 ? process.argv.slice(2) : ['--exclude', 'test/mutation.test.ts'];
const result = spawnSync(process.execPath, [vitest, 'run', ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, RUNNER_AWARE_TRANSPORT: 'fifo' },
});
process.exit(result.status ?? 1);
