// Keeps the per-platform packages under npm/ in sync with `napi.targets` and
// the root version, using the napi-rs CLI as the source of truth for what a
// platform package looks like.
//
//   node scripts/platform-packages.mjs          check: fail on any drift
//   node scripts/platform-packages.mjs --write  regenerate npm/ (napi create-npm-dirs + napi version)
//
// `npm version` runs the --write form through the `version` lifecycle script.
// The root optionalDependencies are not committed: `npm ci` needs every
// dependency in the lockfile, and unpublished platform packages cannot be
// locked. scripts/pack-all.mjs writes them, at the exact version, into the
// manifest it packs (what `napi pre-publish` would do).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
const write = process.argv.includes('--write');

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** `npm/<dir>` names generated from the current targets, into `npmDir` (relative to the root). */
function generate(npmDir) {
  execFileSync(process.execPath, [napi, 'create-npm-dirs', '--npm-dir', npmDir], { cwd: root, stdio: 'pipe' });
  return readdirSync(join(root, npmDir)).sort();
}

if (write) {
  const dirs = generate('npm');
  for (const dir of readdirSync(join(root, 'npm'))) {
    if (!dirs.includes(dir)) rmSync(join(root, 'npm', dir), { recursive: true });
  }
  execFileSync(process.execPath, [napi, 'version', '--npm-dir', 'npm'], { cwd: root, stdio: 'pipe' });
  process.stdout.write(`platform packages: wrote ${dirs.length} packages at ${pkg.version}\n`);
} else {
  // Generate into the ignored target/ dir (the CLI only writes inside the
  // project) and compare file by file with what is committed.
  const scratch = join('target', 'platform-packages-check');
  rmSync(join(root, scratch), { recursive: true, force: true });
  mkdirSync(join(root, scratch), { recursive: true });
  const dirs = generate(join(scratch, 'npm'));
  const problems = [];
  const committed = existsSync(join(root, 'npm')) ? readdirSync(join(root, 'npm')).sort() : [];
  if (committed.join() !== dirs.join()) {
    problems.push(`npm/ holds [${committed.join(', ')}], napi.targets give [${dirs.join(', ')}]`);
  }
  for (const dir of dirs) {
    for (const file of readdirSync(join(root, scratch, 'npm', dir))) {
      const want = readFileSync(join(root, scratch, 'npm', dir, file), 'utf8');
      const have = existsSync(join(root, 'npm', dir, file)) ? readFileSync(join(root, 'npm', dir, file), 'utf8') : null;
      if (have !== want) problems.push(`npm/${dir}/${file} differs from what napi create-npm-dirs generates`);
    }
  }
  if (pkg.optionalDependencies) {
    problems.push('package.json has optionalDependencies: npm ci cannot lock unpublished platform packages; pack:all adds them');
  }
  rmSync(join(root, scratch), { recursive: true, force: true });
  if (problems.length) {
    process.stderr.write(`${problems.map((p) => `  ${p}`).join('\n')}\nfix: node scripts/platform-packages.mjs --write\n`);
    process.exit(1);
  }
  process.stdout.write(`platform packages: ${dirs.length} in sync at ${pkg.version}\n`);
}
