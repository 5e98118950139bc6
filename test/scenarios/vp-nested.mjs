// A task for `vp run`: a runner-aware runner whose tool reads NODE_ENV
// (tracked) and appends a line to argv[2] each time it really runs.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { createServer } from 'runner-aware/runner';

const [log] = process.argv.slice(2);
const server = await createServer();
const tool = `require('runner-aware').getEnv('NODE_ENV'); require('node:fs').appendFileSync(${JSON.stringify(log)}, 'ran\\n')`;
const child = spawnSync(process.execPath, ['-e', tool], {
  // Where `runner-aware` resolves: the package's own checkout.
  cwd: fileURLToPath(new URL('../..', import.meta.url)),
  env: { ...process.env, ...server.env },
  stdio: 'inherit',
});
await server.close();
process.exit(child.status ?? 1);
