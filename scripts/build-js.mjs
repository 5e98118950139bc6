// Bundles the TypeScript API as ESM and CommonJS, the CLI as CommonJS, and
// writes the declaration files for both entry points.

import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  external: ['*.node'],
  // native.ts reads `import.meta.url` only where `__filename` is missing (ESM).
  logOverride: { 'empty-import-meta': 'silent' },
  legalComments: 'none',
};

await Promise.all([
  build({ ...common, entryPoints: ['src-ts/index.ts'], format: 'esm', outfile: 'dist/index.mjs' }),
  build({ ...common, entryPoints: ['src-ts/index.ts'], format: 'cjs', outfile: 'dist/index.cjs' }),
  build({
    ...common,
    entryPoints: ['src-ts/cli.ts'],
    format: 'cjs',
    outfile: 'dist/cli.cjs',
    banner: { js: '#!/usr/bin/env node' },
  }),
]);

// Declarations: one .d.ts tree, exposed to `require` as index.d.ts and to
// `import` as index.d.mts.
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
mkdirSync(dist, { recursive: true });
copyFileSync(join(root, 'index.d.ts'), join(dist, 'binding.d.ts'));
for (const file of ['types.d.ts', 'tool.d.ts', 'runner.d.ts', 'native.d.ts']) {
  const text = readFileSync(join(dist, 'types', file), 'utf8').replaceAll("'../index.js'", "'./binding.js'");
  writeFileSync(join(dist, file), text);
}
const index = readFileSync(join(dist, 'types', 'index.d.ts'), 'utf8');
writeFileSync(join(dist, 'index.d.ts'), index);
writeFileSync(join(dist, 'index.d.mts'), index);
rmSync(join(dist, 'types'), { recursive: true, force: true });
// npm marks bins executable when it installs a package, not in a checkout.
chmodSync(join(dist, 'cli.cjs'), 0o755);
