// `npm run test:rust`: the workspace's tests (the core crate and the binding) for this machine's target.

import { spawnSync } from 'node:child_process';

import { hostTarget } from './host-target.mjs';

const result = spawnSync('cargo', ['test', '--workspace', '--target', hostTarget(), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(result.status ?? 1);
