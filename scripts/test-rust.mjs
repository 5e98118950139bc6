// `npm run test:rust`: the crate's tests for this machine's target.

import { spawnSync } from 'node:child_process';

import { hostTarget } from './host-target.mjs';

const result = spawnSync('cargo', ['test', '--target', hostTarget(), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
