// `npm run build:native`: `napi build` of the addon, once it is sure cargo
// is there. `npm install` in a checkout runs this through `prepare`; without
// Rust, napi's own error ("cargo metadata failed to run") does not say that
// Rust is what is missing, so this says it in one sentence first.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const windows = process.platform === 'win32';

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
if (cargo.error || cargo.status !== 0) {
  // rustup installs into ~/.cargo/bin and adds it to PATH only for new shells.
  const installed = join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'bin', windows ? 'cargo.exe' : 'cargo');
  const why = existsSync(installed)
    ? `cargo is installed in ${dirname(installed)} but that directory is not on PATH (open a new shell, or run \`source "${join(dirname(dirname(installed)), 'env')}"\`)`
    : 'cargo was not found on PATH: install Rust with rustup (https://rustup.rs)';
  process.stderr.write(`runner-aware: building the native addon needs Rust (cargo), and ${why}, then run npm install again.\n`);
  process.exit(1);
}

const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
const args = [
  'build', '--platform', '--release',
  '--manifest-path', 'src-rs/node/Cargo.toml',
  '--package-json-path', 'package.json',
  '--output-dir', '.',
  '--no-js',
  '--dts', 'index.d.ts',
  ...process.argv.slice(2),
];
const build = spawnSync(process.execPath, [napi, ...args], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// On Linux, the file-access tracer ships beside the addon: a preload library
// and the seccomp supervisor (static, so a preload in its own env never
// loads into it). Built for this machine only; scripts/ci-cross.sh builds
// the other Linux targets.
if (process.platform === 'linux' && !process.argv.slice(2).includes('--target')) {
  const { buildTracer } = await import('./build-tracer.mjs');
  if (!buildTracer({ root })) process.exit(1);
}
