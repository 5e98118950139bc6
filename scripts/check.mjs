// Static checks that run before the tests: formatting, lints, types, and the
// committed index.d.ts against the one the last `napi build` generated.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

function step(title, command, args) {
  process.stdout.write(`check: ${title}\n`);
  try {
    execFileSync(command, args, { cwd: root, stdio: 'inherit' });
  } catch {
    process.stderr.write(`check failed: ${title} (${command} ${args.join(' ')})\n`);
    process.exit(1);
  }
}

/** Runs a step like `step` and returns what it printed. */
function output(title, command, args) {
  process.stdout.write(`check: ${title}\n`);
  try {
    return execFileSync(command, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  } catch {
    process.stderr.write(`check failed: ${title} (${command} ${args.join(' ')})\n`);
    process.exit(1);
  }
}

step('cargo fmt', 'cargo', ['fmt', '--all', '--check']);
step('cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--all-features', '--quiet', '--', '-D', 'warnings']);
// A Rust tool depends on the core's `client` feature alone: it must build by
// itself and pull in none of the runner's dependencies, on any platform.
const clientOnly = ['-p', 'runner_aware', '--no-default-features', '--features', 'client'];
step('cargo check of the client-only core', 'cargo', ['check', ...clientOnly, '--quiet']);
const clientTree = output('the client-only core has none of the runner\'s dependencies', 'cargo', ['tree', ...clientOnly, '-e', 'normal', '--prefix', 'none', '--target', 'all']);
const runnerOnly = clientTree.split('\n').filter((line) => /^(tokio|globset|tempfile|zstd|tar|sha2|hmac|base64) /.test(line));
if (runnerOnly.length > 0) {
  process.stderr.write(`check failed: the client-only core depends on ${[...new Set(runnerOnly)].join(', ')}\n`);
  process.exit(1);
}
// The tracer's supervisor is a small static program: it takes the core's
// record format (runner_aware::trace_format) and none of its features.
const supervisorTree = output('the tracer\'s supervisor has none of the client\'s or the runner\'s dependencies', 'cargo', ['tree', '-p', 'runner-aware-trace', '-e', 'normal', '--prefix', 'none', '--target', 'all']);
const supervisorExtra = supervisorTree.split('\n').filter((line) => /^(tokio|globset|tempfile|zstd|tar|sha2|hmac|base64|socket2|getrandom|rustc-hash) /.test(line));
if (supervisorExtra.length > 0) {
  process.stderr.write(`check failed: the tracer's supervisor depends on ${[...new Set(supervisorExtra)].join(', ')}\n`);
  process.exit(1);
}
if (process.platform === 'linux') {
  const preloadSources = readdirSync(join(root, 'src-rs', 'tracer', 'preload')).filter((name) => name.endsWith('.c')).map((name) => `preload/${name}`);
  for (const file of preloadSources) {
    step(`cc -Werror src-rs/tracer/${file}`, process.env.CC || 'cc', ['-fsyntax-only', '-Wall', '-Wextra', '-Werror', join(root, 'src-rs', 'tracer', file)]);
  }
}
step('tsc', process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', 'tsconfig.json']);
step('npm/ platform packages match napi.targets', process.execPath, [join(root, 'scripts', 'platform-packages.mjs')]);
if (existsSync(join(root, '.git'))) {
  // `npm install` ran `napi build`, which regenerates index.d.ts from the Rust
  // doc comments; a difference means the committed file is stale.
  step('index.d.ts matches the Rust source', 'git', ['diff', '--exit-code', '--', 'index.d.ts']);
}
