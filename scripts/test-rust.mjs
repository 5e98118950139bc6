// `npm run test:rust`: the workspace's tests (the core crate and the binding) for this machine's target.
// They run with a private TMPDIR, and the run fails if they left anything in
// it (a server's directory, a test's scratch files), as the vitest suites do.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { hostTarget } from './host-target.mjs';

const temp = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-rust-tests-')));
const result = spawnSync('cargo', ['test', '--workspace', '--target', hostTarget(), ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: temp },
});
const left = readdirSync(temp).sort();
rmSync(temp, { recursive: true, force: true });
if (left.length > 0) {
  process.stderr.write(`test:rust: the tests left ${left.length} entr${left.length === 1 ? 'y' : 'ies'} in the temp dir (${left.join(', ')}): a test must remove what it creates\n`);
  process.exit(1);
}
process.exit(result.status ?? 1);
