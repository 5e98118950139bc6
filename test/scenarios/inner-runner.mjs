// A runner-aware runner that is itself a task of an outer runner: it reports
// to the outer one, runs a tool under its own server, and prints that
// server's reports.
import { spawnSync } from 'node:child_process';

import { ignoreInput } from 'runner-aware';
import { createServer } from 'runner-aware/runner';

ignoreInput('/inner-runner/own-cache');
const server = await createServer();
const tool = spawnSync(
  process.execPath,
  ['-e', "const ra = require('runner-aware'); ra.ignoreInput('/tool/cache'); require('node:child_process').spawnSync(process.execPath, ['-e', \"require('runner-aware').ignoreInput('/tool/grandchild')\"])"],
  { env: { ...process.env, ...server.env }, stdio: 'inherit' },
);
const reports = await server.close();
if (tool.status !== 0) process.exit(1);
console.log(JSON.stringify(reports));
