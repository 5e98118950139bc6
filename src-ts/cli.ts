// `runner-aware inspect [--json] [--out FILE] -- <command…>`: runs a command
// under a server and shows what its tools reported.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';

import { createServer } from './server.js';
import type { Reports } from './types.js';

const USAGE = `Usage: runner-aware inspect [--json] [--out FILE] [--close-timeout MS] -- <command> [args…]

Runs <command> under a runner-aware server with your environment, passes its
stdio through, exits with its exit code, and prints what its tools reported:
a summary on stderr, or the Reports JSON with --json (on stderr, or to FILE
with --out), so the command's own stdout stays clean.`;

function fail(message: string): never {
  process.stderr.write(`runner-aware: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function list(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  return [`  ${title}:`, ...items.map((item) => `    ${item}`)];
}

/** A human-readable summary of `reports`; env values are never printed. */
export function summarize(reports: Reports, exitCode: number): string {
  const envLines = Object.entries(reports.envs).map(
    ([name, record]) => `${name}  ${record.tracked ? 'tracked' : 'untracked'}  ${record.value === null ? 'absent' : 'set'}`,
  );
  const queryLines = reports.envQueries.map((q) => {
    const label = 'glob' in q ? q.glob : `${q.prefix} (prefix)`;
    const names = Object.keys(q.matches);
    return `${label}  ${q.tracked ? 'tracked' : 'untracked'}  ${names.length} match${names.length === 1 ? '' : 'es'}${names.length ? `: ${names.join(', ')}` : ''}`;
  });
  const cache = reports.cacheDisabled
    ? `disabled${reports.cacheDisabledReasons.length ? ` (${reports.cacheDisabledReasons.join('; ')})` : ''}`
    : 'allowed';
  const lines = [
    `runner-aware: exit ${exitCode}, ${reports.clients} client${reports.clients === 1 ? '' : 's'}, caching ${cache}`,
    ...list('ignored inputs', reports.ignoredInputs),
    ...list('ignored outputs', reports.ignoredOutputs),
    ...list('inputs', reports.inputs),
    ...list('outputs', reports.outputs),
    ...list('values', Object.entries(reports.values).map(([n, v]) => `${n} = ${v}`)),
    ...list('env', envLines),
    ...list('env queries', queryLines),
    ...list('errors', reports.errors.map((e) => (e.pid ? `${e.message} (pid ${e.pid})` : e.message))),
  ];
  if (reports.clientsStillConnected > 0) {
    lines.push(`  ${reports.clientsStillConnected} client(s) were still connected when the close grace period ended`);
  }
  return `${lines.join('\n')}\n`;
}

async function inspect(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
        'close-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    fail((err as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command, ...args] = parsed.positionals;
  if (!command) fail('inspect needs a command after --');
  const closeTimeout = parsed.values['close-timeout'];
  const closeTimeoutMs = closeTimeout === undefined ? undefined : Number(closeTimeout);
  if (closeTimeoutMs !== undefined && !Number.isInteger(closeTimeoutMs)) fail(`--close-timeout ${closeTimeout} is not a number of milliseconds`);

  const server = await createServer(closeTimeoutMs === undefined ? {} : { closeTimeoutMs });
  const child = spawn(command, args, {
    stdio: 'inherit',
    env: { ...process.env, ...server.env },
    shell: process.platform === 'win32',
  });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const exitCode = await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`runner-aware: cannot run ${command}: ${err.message}\n`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  const reports = await server.close();
  const text = parsed.values.json ? `${JSON.stringify(reports, null, 2)}\n` : summarize(reports, exitCode);
  if (parsed.values.out) writeFileSync(parsed.values.out, text);
  else process.stderr.write(text);
  return exitCode;
}

async function main(argv: string[]): Promise<number> {
  const [subcommand, ...rest] = argv;
  if (subcommand === 'inspect') return inspect(rest);
  if (subcommand === undefined || subcommand === '--help' || subcommand === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return subcommand === undefined ? 2 : 0;
  }
  fail(`unknown command ${subcommand}`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`runner-aware: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
