// Static checks that run before the tests: formatting, lints, types, and the
// committed index.d.ts against the one the last `napi build` generated.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

step('cargo fmt', 'cargo', ['fmt', '--all', '--check']);
step('cargo clippy', 'cargo', ['clippy', '--workspace', '--all-targets', '--all-features', '--quiet', '--', '-D', 'warnings']);
if (process.platform === 'linux') {
  for (const file of ['preload.c', 'supervisor.c']) {
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
