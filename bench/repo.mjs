// The repository key's look-up cost: a look-up of a task keyed on a
// generated git repository's content (where nothing traces) against `git
// status` of the same tree, both measured here, taking turns.
//
//   node bench/repo.mjs <runner.mjs url> <files> <rounds>
//
// Prints one JSON line: `{ files, gitStatusMs: [...], lookupMs: [...] }`.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [runnerUrl, filesArg = '10000', roundsArg = '5'] = process.argv.slice(2);
const files = Number(filesArg);
const rounds = Number(roundsArg);
const { openCache } = await import(runnerUrl);

const work = mkdtempSync(join(tmpdir(), 'ra-bench-repo-'));
// No automatic gc: the commit of 10,000 loose objects would start one in the
// background, repacking while the rounds are timed and while the tree is removed.
const git = (...args) =>
  execFileSync('git', ['-c', 'user.email=bench@example.com', '-c', 'user.name=bench', '-c', 'gc.auto=0', '-c', 'maintenance.auto=false', ...args], {
    cwd: work,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
const result = { files, gitStatusMs: [], lookupMs: [] };
try {
  for (let i = 0; i < files; i++) {
    const dir = join(work, 'src', `d${i % 100}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.js`), `export const v${i} = ${i};\n`);
  }
  writeFileSync(join(work, '.gitignore'), 'dist/\nnode_modules/\n');
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'bench');
  git('status', '--porcelain');

  // One stored run, keyed on the repository: the build writes dist/.
  const cache = openCache({ dir: join(work, 'node_modules', '.cache', 'bench'), root: work });
  const before = await cache.snapshot();
  if (!before.available) throw new Error(before.reason);
  const startedAt = Date.now();
  mkdirSync(join(work, 'dist'));
  writeFileSync(join(work, 'dist', 'out.js'), 'built\n');
  const reports = {
    ignoredInputs: [], ignoredOutputs: [], inputs: [], outputs: [], values: {}, envValues: 'sha256', envs: {}, envQueries: [],
    untrackedEnv: [], cacheable: true, notCacheable: [], errors: [], clients: 0, clientsStillConnected: 0, envRequests: 0,
  };
  const stored = await cache.store('bench', { reports, outcome: { exitCode: 0 }, startedAt, before });
  if (!stored.stored) throw new Error(stored.reasons.join('; '));
  cache.close();

  for (let i = 0; i < rounds; i++) {
    let start = process.hrtime.bigint();
    git('status', '--porcelain');
    result.gitStatusMs.push(Number(process.hrtime.bigint() - start) / 1e6);
    // A runner's look-up as it makes it: a store opened, its stat cache read.
    start = process.hrtime.bigint();
    const found = await openCache({ dir: join(work, 'node_modules', '.cache', 'bench'), root: work }).lookup('bench');
    result.lookupMs.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (!found.hit) throw new Error(`the look-up missed: ${found.reasons.join(', ')}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
