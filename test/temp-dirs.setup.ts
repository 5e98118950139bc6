// Vitest global setup: every test file runs with a private temp dir, and the
// run fails if a test left anything in it. A runner killed before its
// close() leaves its socket directory (`runner-aware-*`), and a test that
// forgets its scratch dir leaves `ra-*`; each run of `npm test` would add
// more to the user's /tmp. The private dir makes the check exact even while
// other processes use /tmp, and it is removed whatever the outcome.

import { mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const outer = process.env['TMPDIR'];
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-tests-')));
  // Set before the workers start: every fork, and every process a test
  // spawns with `...process.env`, inherits it.
  process.env['TMPDIR'] = dir;
  return () => {
    if (outer === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = outer;
    // Node 22+ keeps its module compile cache in the temp dir (npx enables
    // it): Node's, not a test's.
    const left = readdirSync(dir)
      .filter((entry) => entry !== 'node-compile-cache')
      .sort();
    rmSync(dir, { recursive: true, force: true });
    if (left.length > 0) {
      // Vitest reports a teardown error but keeps the exit code; set it.
      process.exitCode = 1;
      throw new Error(
        `the tests left ${left.length} entr${left.length === 1 ? 'y' : 'ies'} in the temp dir (${left.join(', ')}): ` +
          'a test must remove what it creates, and give a runner it kills a TMPDIR of its own to remove',
      );
    }
  };
}
