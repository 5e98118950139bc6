// One tool process's start-up, timed from inside it. <api-url> is the tool
// entry point, `runner-aware` (dist/index.mjs).
//
//   node startup.mjs runner <api-url>   import + the first getEnv through a runner,
//                                       the addon's process.dlopen timed apart
//   node startup.mjs warm <api-url>     the same in a tool that has started: the
//                                       module loader warm, Node's common builtins loaded
//   node startup.mjs outside <api-url>  import, then 1,000 calls with no runner;
//                                       counts native modules loaded (with
//                                       bench/noop-api.mjs as <api-url>: the floor)
//
// Prints one JSON line with the times in milliseconds.

import { performance } from 'node:perf_hooks';

const [mode, apiUrl] = process.argv.slice(2);
let nativeLoads = 0;
let dlopenMs = 0;
const dlopen = process.dlopen;
process.dlopen = (...args) => {
  nativeLoads++;
  const started = performance.now();
  try {
    return dlopen.apply(process, args);
  } finally {
    dlopenMs += performance.now() - started;
  }
};

if (mode === 'warm') {
  await Promise.all(['node:fs', 'node:path', 'node:url', 'node:module', 'node:crypto'].map((m) => import(m)));
  await import('./noop-api.mjs');
}

const t0 = performance.now();
const api = await import(apiUrl);
const t1 = performance.now();
if (mode === 'runner' || mode === 'warm') {
  const home = api.getEnv('RA_BENCH_STARTUP');
  const t2 = performance.now();
  console.log(JSON.stringify({ importMs: t1 - t0, firstCallMs: t2 - t1, totalMs: t2 - t0, dlopenMs, answered: home === 'yes', nativeLoads }));
} else {
  for (let i = 0; i < 200; i++) {
    api.getEnv('NODE_ENV');
    api.getEnvs('VITE_*');
    api.ignoreInput('node_modules/.cache');
    api.addValue('version', '1');
    api.disableCache('watch');
  }
  const t2 = performance.now();
  console.log(JSON.stringify({ importMs: t1 - t0, callsMs: t2 - t1, connected: api.isConnected(), nativeLoads }));
}
