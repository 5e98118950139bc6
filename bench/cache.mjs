// The cache store's cost on real work, against floors measured in the same
// run: the traced `vite build` of a generated app, and a build that writes a
// 10,000-file tree. For each:
// - plain: the build alone (wall time, the output deleted first);
// - store: a runner process that looks up, runs the build traced and stores
//   it, with an empty cache every time (the stat cache too): the first run;
// - hit: the same process restoring the deleted output from the entry;
// - floor: a fresh Node process that stats every input of the entry once and
//   copies the output into place;
// - archiving: the store of the output tree alone (in-process) against
//   `tar -cf - | zstd -3` of the same tree.
//
//   node bench/cache.mjs <runner.mjs url> <modules> <files> <rounds>
//
// Prints one JSON line.

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { generateViteApp } from './vite-app.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const [runnerUrl, modulesArg = '600', filesArg = '10000', roundsArg = '5'] = process.argv.slice(2);
const rounds = Number(roundsArg);
const { openCache } = await import(runnerUrl);
const work = mkdtempSync(join(tmpdir(), 'ra-bench-cache-'));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall milliseconds of `argv` in `cwd`, and what it printed. */
function timed(argv, cwd) {
  const start = process.hrtime.bigint();
  const run = spawnSync(argv[0], argv.slice(1), { cwd, encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (run.status !== 0) throw new Error(`${argv.join(' ')} failed: ${run.stderr}`);
  return { ms, stdout: run.stdout };
}

/** A build that reads a 10,000-file source tree and writes one file per source into out/. */
function generateTree(dir, files) {
  mkdirSync(join(dir, 'src'), { recursive: true });
  for (let i = 0; i < files; i++) {
    const sub = join(dir, 'src', `d${i % 100}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.js`), `export const value${i} = ${JSON.stringify(`${i} `.repeat(200 + (i % 400)))};\n`);
  }
  writeFileSync(join(dir, 'package.json'), '{ "name": "generated-tree", "private": true }\n');
  writeFileSync(join(dir, 'build.mjs'), `import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
for (const sub of readdirSync('src')) {
  mkdirSync(join('out', sub), { recursive: true });
  for (const name of readdirSync(join('src', sub))) {
    writeFileSync(join('out', sub, name), '// built\\n' + readFileSync(join('src', sub, name), 'utf8'));
  }
}
`);
  return dir;
}

async function measure(app, build, outName) {
  const out = join(app, outName);
  const loop = (cacheDir) => [process.execPath, join(root, 'bench', 'cache-loop.mjs'), runnerUrl, cacheDir, '--', ...build];
  const result = { plain: [], store: [], hit: [], floor: [] };
  // Warm the page cache and compile caches once.
  rmSync(out, { recursive: true, force: true });
  timed(build, app);
  for (let i = 0; i < rounds; i++) {
    rmSync(out, { recursive: true, force: true });
    result.plain.push(timed(build, app).ms);
    rmSync(out, { recursive: true, force: true });
    const cacheDir = join(work, `cache-${outName}-${i}`);
    const stored = timed(loop(cacheDir), app);
    result.store.push(stored.ms);
    const status = JSON.parse(stored.stdout.trim().split('\n').pop()).status;
    if (status !== 'stored') throw new Error(`the run was not stored: ${status}`);
    if (i < rounds - 1) rmSync(cacheDir, { recursive: true, force: true });
  }
  const cacheDir = join(work, `cache-${outName}-${rounds - 1}`);
  const saved = join(work, `saved-${outName}`);
  cpSync(out, saved, { recursive: true });
  const [{ entry }] = await openCache({ dir: cacheDir, root: app }).entries('bench');
  const inputsFile = join(work, `inputs-${outName}.json`);
  writeFileSync(inputsFile, JSON.stringify(entry.inputs.map((input) => resolve(app, input))));
  result.inputs = entry.inputs.length;
  result.outputs = entry.outputs.length;
  for (let i = 0; i < rounds; i++) {
    rmSync(out, { recursive: true, force: true });
    const hit = timed(loop(cacheDir), app);
    const status = JSON.parse(hit.stdout.trim().split('\n').pop()).status;
    if (status !== 'hit') throw new Error(`the look-up did not hit: ${status}`);
    result.hit.push(hit.ms);
    rmSync(out, { recursive: true, force: true });
    result.floor.push(timed([process.execPath, join(root, 'bench', 'cache-floor.mjs'), inputsFile, saved, out], app).ms);
  }
  const archive = JSON.parse(execFileSync(process.execPath, [join(root, 'bench', 'cache-archive.mjs'), runnerUrl, app, outName, String(rounds)], { encoding: 'utf8' }));
  const tarZstd = [];
  for (let i = 0; i < rounds; i++) tarZstd.push(timed(['bash', '-c', `tar -cf - -C '${app}' '${outName}' | zstd -3 -q -c > /dev/null`], app).ms);
  result.archive = { ...archive, tarZstdMs: median(tarZstd) };
  return result;
}

const result = {};
try {
  const vite = join(root, 'node_modules', 'vite', 'bin', 'vite.js');
  const viteApp = generateViteApp(join(work, 'vite-app'), Number(modulesArg));
  result.vite = { modules: Number(modulesArg), ...(await measure(viteApp, [process.execPath, vite, 'build', '--logLevel', 'silent'], 'dist')) };
  const tree = generateTree(join(work, 'tree'), Number(filesArg));
  result.tree = { files: Number(filesArg), ...(await measure(tree, [process.execPath, 'build.mjs'], 'out')) };
} finally {
  rmSync(work, { recursive: true, force: true });
}
result.rounds = rounds;
process.stdout.write(`${JSON.stringify(result)}\n`);
