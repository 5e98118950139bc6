// The cost and completeness of file-access tracing on a real build: `vite
// build` of a generated app under a runner-aware server, untraced, traced in
// preload mode and in whole-tree seccomp mode, taking turns; CPU time of the
// whole process tree (the build's and the supervisor's, from the shell's
// `times`). Every run has the server's env, so Vite talks to the runner in
// each and the difference is the tracing alone. Then the
// paths `strace -f` sees under the app and node_modules against what preload
// mode recorded, and the reference runner's hit time for the app.
//
//   node bench/trace.mjs <runner.mjs url> <modules> <rounds>
//
// Prints one JSON line.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { generateViteApp } from './vite-app.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const [runnerUrl, modulesArg = '600', roundsArg = '5'] = process.argv.slice(2);
const { createServer } = await import(runnerUrl);
const modules = Number(modulesArg);
const rounds = Number(roundsArg);
const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js');

const work = mkdtempSync(join(tmpdir(), 'ra-bench-trace-'));
const app = generateViteApp(join(work, 'app'), modules);
const build = [process.execPath, vite, 'build', '--logLevel', 'silent'];
const quote = (arg) => `'${arg.replaceAll("'", "'\\''")}'`;

/** CPU seconds (user + system) of `argv` and every process under it. */
function cpuSeconds(argv, env) {
  rmSync(join(app, 'dist'), { recursive: true, force: true });
  // `times` prints the shell's own times, then its children's: user and system.
  const out = execFileSync('bash', ['-c', `${argv.map(quote).join(' ')} >/dev/null && times`], { cwd: app, env, encoding: 'utf8' });
  const [, children] = out.trim().split('\n');
  const seconds = children.split(/\s+/).map((t) => {
    const [, m, s] = /^(\d+)m([\d.]+)s$/.exec(t) ?? [];
    return Number(m) * 60 + Number(s);
  });
  return seconds[0] + seconds[1];
}

async function traced(mode) {
  const server = await createServer(mode ? { trace: mode } : {});
  try {
    return cpuSeconds(server.command(build), { ...process.env, ...server.env });
  } finally {
    const reports = await server.close();
    if (mode && !reports.trace.complete) throw new Error(`the ${mode} trace is incomplete: ${reports.trace.incomplete.join('; ')}`);
  }
}

const result = { modules, rounds, untraced: [], preload: [], seccomp: [] };
try {
  // One of each first, to warm the page cache and Node's compile caches.
  await traced(false);
  await traced('preload');
  await traced('seccomp');
  for (let i = 0; i < rounds; i++) {
    result.untraced.push(await traced(false));
    result.preload.push(await traced('preload'));
    result.seccomp.push(await traced('seccomp'));
  }

  // Completeness: every path strace -f sees under the app (node_modules
  // included) against what preload mode recorded.
  if (spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0) {
    rmSync(join(app, 'dist'), { recursive: true, force: true });
    const log = join(work, 'strace.log');
    spawnSync('strace', ['-f', '-qq', '-e', 'trace=%file', '-o', log, ...build], { cwd: app, stdio: 'ignore' });
    const scope = [app, join(root, 'node_modules')];
    const strace = new Set(
      [...readFileSync(log, 'utf8').matchAll(/"((?:[^"\\]|\\.)*)"/g)]
        .map((m) => m[1].replace(/\/+$/, ''))
        .filter((p) => scope.some((dir) => p === dir || p.startsWith(`${dir}/`))),
    );
    rmSync(join(app, 'dist'), { recursive: true, force: true });
    const server = await createServer({ trace: true });
    const argv = server.command(build);
    spawnSync(argv[0], argv.slice(1), { cwd: app, env: { ...process.env, ...server.env }, stdio: 'ignore' });
    const { trace } = await server.close();
    const seen = new Set(['read', 'found', 'missing', 'listed', 'written', 'deleted'].flatMap((kind) => trace[kind]));
    result.completeness = {
      strace: strace.size,
      missed: [...strace].filter((p) => !seen.has(p)).sort(),
      complete: trace.complete,
      incomplete: trace.incomplete,
    };
  }

  // The reference runner on the app, zero configuration: a first run stores,
  // then hits restore dist from the cache.
  const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
  const cacheDir = join(work, 'cache');
  const runOnce = () => {
    const start = process.hrtime.bigint();
    const run = spawnSync(process.execPath, [runner, '--cache-dir', cacheDir, '--', ...build], { cwd: app, encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    const status = run.stderr.split('\n').find((line) => /^cache (hit|miss|skipped)/.test(line)) ?? run.stderr.trim();
    return { ms, status };
  };
  rmSync(join(app, 'dist'), { recursive: true, force: true });
  result.runner = { miss: runOnce(), hits: [] };
  for (let i = 0; i < rounds; i++) {
    rmSync(join(app, 'dist'), { recursive: true, force: true });
    result.runner.hits.push(runOnce());
  }
  const untracedWall = [];
  for (let i = 0; i < rounds; i++) {
    rmSync(join(app, 'dist'), { recursive: true, force: true });
    const start = process.hrtime.bigint();
    spawnSync(build[0], build.slice(1), { cwd: app, stdio: 'ignore' });
    untracedWall.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  result.runner.buildMs = untracedWall;
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
