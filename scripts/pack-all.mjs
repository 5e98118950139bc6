// Packs what would be published from this machine: the root package and the
// platform package of the addon built here, into artifacts/ (or --out DIR).
// Then it checks that each tarball holds only what users need and, unless
// --skip-lint, runs publint and @arethetypeswrong/cli on the root tarball.
//
// Only this machine's addon exists here, so it is copied into its npm/<triple>/
// as `napi artifacts` would. The release workflow runs `napi artifacts` over
// the whole build matrix first and then packs with --all: every platform
// package, each of which must hold its addon.

import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'artifacts' },
    all: { type: 'boolean', default: false },
    'skip-lint': { type: 'boolean', default: false },
  },
});
const out = resolve(root, args.out);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The file-access tracer's files a Linux platform package ships beside its addon. */
function tracerFiles(triple) {
  return triple.startsWith('linux-') ? [`runner-aware-preload.${triple}.so`, `runner-aware-trace.${triple}`] : [];
}

/**
 * A platform package, staged with the tracer's files added to its `files`:
 * napi create-npm-dirs, which the committed manifests follow, knows only the addon.
 */
function stagePlatform(triple) {
  const files = tracerFiles(triple);
  if (files.length === 0) return join(root, 'npm', triple);
  const dir = join(root, 'target', 'pack', triple);
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(root, 'npm', triple), dir, { recursive: true });
  const platform = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  platform.files = [...platform.files, ...files];
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(platform, null, 2)}\n`);
  return dir;
}

function fail(message) {
  process.stderr.write(`pack:all: ${message}\n`);
  process.exit(1);
}

for (const entry of ['index', 'runner', 'cli']) {
  const file = entry === 'cli' ? 'cli.cjs' : `${entry}.mjs`;
  if (!existsSync(join(root, 'dist', file))) fail(`dist/${file} is missing: run npm run build`);
}
let triples;
if (args.all) {
  triples = readdirSync(join(root, 'npm')).sort();
} else {
  const addons = readdirSync(root).filter((file) => /^runner-aware\.[\w-]+\.node$/.test(file));
  if (addons.length !== 1) fail(`expected one local addon build at the root, found [${addons.join(', ')}]: run npm run build`);
  const triple = addons[0].slice('runner-aware.'.length, -'.node'.length);
  if (!existsSync(join(root, 'npm', triple, 'package.json'))) fail(`npm/${triple}/ is missing: is ${triple} in napi.targets?`);
  copyFileSync(join(root, addons[0]), join(root, 'npm', triple, addons[0]));
  for (const file of tracerFiles(triple)) {
    if (!existsSync(join(root, file))) fail(`${file} is missing: run npm run build`);
    copyFileSync(join(root, file), join(root, 'npm', triple, file));
  }
  triples = [triple];
}
for (const triple of triples) {
  if (!existsSync(join(root, 'npm', triple, `runner-aware.${triple}.node`))) fail(`npm/${triple}/ has no addon: run napi artifacts`);
  for (const file of tracerFiles(triple)) if (!existsSync(join(root, 'npm', triple, file))) fail(`npm/${triple}/ has no ${file}: build the tracer for ${triple}`);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// The root package is packed from a staged copy of its manifest: no scripts,
// devDependencies, devEngines or overrides (`prepare` builds a checkout, and
// npm flags any package carrying it as one with install scripts to approve;
// the rest only ever apply to a checkout), and the platform packages as
// optionalDependencies.
const stage = join(root, 'target', 'pack', 'runner-aware');
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
delete manifest.scripts;
delete manifest.devDependencies;
delete manifest.devEngines;
delete manifest.overrides;
// Every platform package at exactly this version; npm installs the one whose
// os, cpu and libc match. Committed manifests leave them out (see
// scripts/platform-packages.mjs).
manifest.optionalDependencies = {};
for (const triple of readdirSync(join(root, 'npm')).sort()) {
  const platform = JSON.parse(readFileSync(join(root, 'npm', triple, 'package.json'), 'utf8'));
  if (platform.version !== manifest.version) fail(`npm/${triple} is at ${platform.version}, the root at ${manifest.version}: run node scripts/platform-packages.mjs --write`);
  manifest.optionalDependencies[platform.name] = platform.version;
}
writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
for (const entry of manifest.files) cpSync(join(root, entry), join(stage, entry), { recursive: true });

/** Packs `dir` without lifecycle scripts (the build already ran) and returns npm's report. */
function pack(dir) {
  const json = execFileSync(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', out], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    // Node refuses to spawn npm.cmd without a shell.
    shell: process.platform === 'win32',
  });
  const [report] = JSON.parse(json);
  return report;
}

const tarballs = [
  { report: pack(stage), allowed: /^(package\.json|README\.md|LICENSE|dist\/[\w.-]+\.(mjs|cjs|d\.mts|d\.cts))$/ },
  ...triples.map((triple) => ({
    report: pack(stagePlatform(triple)),
    allowed: new RegExp(`^(package\\.json|README\\.md|runner-aware\\.${triple}\\.node|runner-aware-preload\\.${triple}\\.so|runner-aware-trace\\.${triple})$`),
  })),
];
for (const { report, allowed } of tarballs) {
  const unexpected = report.files.map((file) => file.path).filter((path) => !allowed.test(path));
  if (unexpected.length) fail(`${report.filename} carries files users do not need: ${unexpected.join(', ')}`);
  const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
  process.stdout.write(
    `${join(args.out, report.filename)}: ${kb(report.size)} packed, ${kb(report.unpackedSize)} unpacked, ${report.entryCount} files\n`,
  );
}

if (!args['skip-lint']) {
  const rootTarball = join(out, tarballs[0].report.filename);
  const bin = (pkg, file) => join(root, 'node_modules', pkg, ...file.split('/'));
  execFileSync(process.execPath, [bin('publint', 'src/cli.js'), 'run', '--strict', rootTarball], { stdio: 'inherit' });
  execFileSync(process.execPath, [bin('@arethetypeswrong/cli', 'dist/index.js'), rootTarball], { stdio: 'inherit' });
}
