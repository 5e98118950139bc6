// A runner built on runner-aware that is itself a task of another runner.
// argv: <levels> [--no-forward] [--die]
// With levels > 1 it runs another nested runner under its own server; at 1 it
// runs the tool below. --die: SIGKILLs itself once its task has run, before
// its server closes (a runner killed mid-run). Prints its own reports.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { createServer } from 'runner-aware/runner';

const [levelsArg, ...flags] = process.argv.slice(2);
const levels = Number(levelsArg);
const server = await createServer({ forward: !flags.includes('--no-forward') });
const tool = `
const ra = require('runner-aware');
ra.getEnv('NODE_ENV');
ra.getEnv('LOCAL_ONLY', { tracked: false });
ra.getEnvs('VITE_*');
ra.ignoreInput('/app/node_modules/.vite');
ra.addInput('/app/vite.config.js');
ra.addOutput('/app/dist');
ra.addValue('tool-version', '8.0.0');
ra.disableCache('dev server');
`;
const args = levels > 1 ? [fileURLToPath(import.meta.url), String(levels - 1), ...flags.filter((f) => f !== '--die')] : ['-e', tool];
const child = spawnSync(process.execPath, args, { env: { ...process.env, ...server.env }, stdio: ['ignore', 'pipe', 'inherit'] });
if (flags.includes('--die')) process.kill(process.pid, 'SIGKILL');
const reports = await server.close();
process.stdout.write(`${JSON.stringify(reports)}\n`);
process.exit(child.status ?? 1);
