// Runs the vitest suites under other Node majors, taken from the npm
// registry's `node` package and cached under node_modules/.cache/.
//
//   node scripts/test-node-versions.mjs                 Node 22 and 24, every suite
//   node scripts/test-node-versions.mjs --node 24 test/install.test.ts
//
// The chosen Node is first on PATH, so the processes the tests spawn (tools,
// npm) run on it too. The addon is Node-API, so the one build serves every
// version.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values, positionals: files } = parseArgs({
  options: { node: { type: 'string', multiple: true, default: ['22', '24'] } },
  allowPositionals: true,
});
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
// No files: vitest runs every suite, as `npm test` does under Node 20.
const suites = files;

function version(bin) {
  return existsSync(bin) ? execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim() : '';
}

const failed = [];
for (const major of values.node) {
  const dir = join(root, 'node_modules', '.cache', 'runner-aware-node', major);
  const binDir = join(dir, 'node_modules', '.bin');
  const node = join(binDir, process.platform === 'win32' ? 'node.cmd' : 'node');
  if (!version(node).startsWith(`v${major}.`)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{ "private": true }\n');
    process.stdout.write(`node-versions: installing node@${major} from the npm registry\n`);
    // The package's preinstall fetches the platform binary (node-<os>-<arch>), also from npm.
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error', `node@${major}`], {
      cwd: dir,
      stdio: 'inherit',
      shell: process.platform === 'win32',
    });
  }
  const running = version(node);
  process.stdout.write(`node-versions: vitest under node ${running}\n`);
  const result = spawnSync(node, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...suites], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}` },
  });
  if (result.status !== 0) failed.push(running || `node@${major}`);
}
if (failed.length) {
  process.stderr.write(`node-versions: failed under ${failed.join(', ')}\n`);
  process.exit(1);
}
