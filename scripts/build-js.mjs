// Bundles each entry point of the TypeScript API (`runner-aware`, the tool
// side; `runner-aware/runner`, the runner side and cache helpers) as ESM and
// CommonJS, the CLI as CommonJS, and writes the declaration files for both
// formats.

import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  // The CommonJS bundle gets an empty `import.meta`; native.ts then uses `__filename`.
  logOverride: { 'empty-import-meta': 'silent' },
  legalComments: 'none',
};

const entries = ['index', 'runner'];

await Promise.all([
  ...entries.flatMap((entry) =>
    ['esm', 'cjs'].map((format) =>
      build({ ...common, entryPoints: [`src-ts/${entry}.ts`], format, outfile: `dist/${entry}.${format === 'esm' ? 'mjs' : 'cjs'}` }),
    ),
  ),
  build({
    ...common,
    entryPoints: ['src-ts/cli.ts'],
    format: 'cjs',
    outfile: 'dist/cli.cjs',
    banner: { js: '#!/usr/bin/env node' },
  }),
]);

// Declarations: tsc emits one tree; it is written twice, as .d.mts for
// `import` and .d.cts for `require`, with relative specifiers rewritten to
// match, so each entry point's types have the format of its code (a .d.ts
// under "type": "module" would be ESM types for the CommonJS entry too).
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
const emitted = join(dist, 'types');
const declarations = readdirSync(emitted)
  .filter((file) => file.endsWith('.d.ts'))
  .map((file) => [file.slice(0, -'.d.ts'.length), readFileSync(join(emitted, file), 'utf8')]);
// The napi-generated index.d.ts at the root types the addon; tsc refers to it as '../index.js'.
declarations.push(['binding', readFileSync(join(root, 'index.d.ts'), 'utf8')]);
for (const [ext, dts] of [['mjs', 'd.mts'], ['cjs', 'd.cts']]) {
  for (const [name, text] of declarations) {
    const rewritten = text
      .replaceAll("'../index.js'", `'./binding.${ext}'`)
      .replace(/(from |import\()'\.\/([\w-]+)\.js'/g, `$1'./$2.${ext}'`);
    writeFileSync(join(dist, `${name}.${dts}`), rewritten);
  }
}
rmSync(emitted, { recursive: true, force: true });
// npm marks bins executable when it installs a package, not in a checkout.
chmodSync(join(dist, 'cli.cjs'), 0o755);
