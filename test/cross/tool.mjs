// One tool process of test/cross/scenario.mjs. It talks to its runner only
// through the public tool API, as a build tool would.
//
//   tool.mjs tool <i>           the reports and requests every tool makes, and
//                               one extra each (see `extras`)
//   tool.mjs grandchild         a process the tool spawned: reports too
//   tool.mjs unanswered <file>  asks a runner that never answers; writes how
//                               long the call took to <file>
//
// Under Wine and qemu a child's stdout may be unusable (node.exe dies with
// EBADF on a Unix pipe), so nothing here writes to stdout: results go in the
// reports, or in a file.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

import * as tool from 'runner-aware';

const self = fileURLToPath(import.meta.url);

/** How to start another Node process here: qemu has no binfmt, so the runner says. */
function launch(args) {
  const [command, ...prefix] = JSON.parse(process.env.CROSS_NODE ?? 'null') ?? [process.execPath];
  return spawn(command, [...prefix, self, ...args], { stdio: 'ignore' });
}

function exited(child) {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? signal));
  });
}

/** The one thing tool `i` does beyond what every tool does. */
const extras = {
  // An answer of 8 MiB: many reads and writes of one frame.
  0: () => {
    const big = tool.getEnvs({ prefix: 'BIG_' });
    tool.addValue('big', String(Object.values(big).reduce((sum, value) => sum + value.length, 0)));
  },
  // A process the tool spawns inherits the env and connects on its own.
  1: async () => {
    const code = await exited(launch(['grandchild']));
    tool.addValue('grandchild-exit', String(code));
  },
  // Fire-and-forget reports, then an abrupt exit: none of them may be lost.
  2: () => {
    for (let k = 0; k < 200; k++) tool.addInput(`burst/${k}`);
    process.exit(0);
  },
  // Worker threads share the process's connection.
  3: async () => {
    const workers = [0, 1, 2, 3].map((k) => exited(new Worker(self, { workerData: { k } })));
    await Promise.all(workers);
  },
};

async function main() {
  const [mode, arg] = process.argv.slice(2);
  if (mode === 'grandchild') {
    tool.addValue('grandchild', tool.isConnected() ? 'connected' : 'offline');
    return;
  }
  if (mode === 'unanswered') {
    const started = Date.now();
    const value = tool.getEnv('A');
    const elapsedMs = Date.now() - started;
    writeFileSync(arg, JSON.stringify({ elapsedMs, value: value ?? null, connected: tool.isConnected() }));
    return;
  }
  const i = Number(arg);
  tool.addValue(`connected-${i}`, String(tool.isConnected()));
  tool.ignoreInput(`cache/${i}`);
  tool.addInput(`src/${i}.js`);
  tool.addOutput('dist');
  tool.ignoreOutput(`dist/.cache-${i}`);
  // Env names ignore case on Windows: the runner has CROSS_A and Vite_Mode.
  tool.addValue(`cross_a-${i}`, String(tool.getEnv('cross_a')));
  tool.addValue(`vite-${i}`, Object.keys(tool.getEnvs('VITE_*')).join(','));
  if (process.env.CROSS_DISABLE === String(i)) tool.disableCache('the cross scenario says so');
  await extras[i]?.();
}

if (isMainThread) {
  await main();
} else {
  tool.addInput(`worker/${workerData.k}`);
  tool.addValue(`worker-${workerData.k}`, String(tool.getEnv('CROSS_A')));
}
