// `runner-aware inspect [--json] [--out FILE] -- <command…>`: runs a command
// under a server and shows what its tools reported.

import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';

import { createServer, verdict, type CommandOutcome, type Server } from './server.js';
import type { Reports } from './types.js';

const USAGE = `Usage: runner-aware inspect [--json] [--out FILE] [--close-timeout MS] -- <command> [args…]

Runs <command> under a runner-aware server with your environment, passes its
stdio through, exits with its exit code, and prints what its tools reported:
a summary on stderr (with the verdict: cacheable, or every reason it is
not), or the Reports JSON with its verdict: with --json on stderr, with
--out in FILE. The command's own stdout stays clean.`;

function fail(message: string): never {
  process.stderr.write(`runner-aware: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function list(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  return [`  ${title}:`, ...items.map((item) => `    ${item}`)];
}

/** A human-readable summary of `reports`; env values are never printed. */
export function summarize(reports: Reports, exitCode: number, outcome: CommandOutcome = { exitCode }): string {
  const envLines = Object.entries(reports.envs).map(
    ([name, record]) => `${name}  ${record.tracked ? 'tracked' : 'untracked'}  ${record.value === null ? 'absent' : 'set'}`,
  );
  const queryLines = reports.envQueries.map((q) => {
    const label = 'glob' in q ? q.glob : `${q.prefix} (prefix)`;
    const names = Object.keys(q.matches);
    return `${label}  ${q.tracked ? 'tracked' : 'untracked'}  ${names.length} match${names.length === 1 ? '' : 'es'}${names.length ? `: ${names.join(', ')}` : ''}`;
  });
  const { cacheable, reasons } = verdict(reports, outcome);
  const lines = [
    `runner-aware: exit ${exitCode}, ${reports.clients} client${reports.clients === 1 ? '' : 's'}, ${cacheable ? 'cacheable' : 'not cacheable'}`,
    ...list(
      'not cacheable because',
      reasons.map((r) => `${r.kind}: ${r.message}${r.pid ? ` (pid ${r.pid})` : ''}`),
    ),
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

/** The reports of a run no server listened to: empty, and not cacheable because of `why`. */
function noReports(why: string): Reports {
  return {
    ignoredInputs: [],
    ignoredOutputs: [],
    inputs: [],
    outputs: [],
    values: {},
    envs: {},
    envQueries: [],
    untrackedEnv: [],
    cacheable: false,
    notCacheable: [{ kind: 'lost', message: why }],
    errors: [],
    clients: 0,
    clientsStillConnected: 0,
    envRequests: 0,
  };
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

  // The out file is opened before the command runs: a bad path is found
  // before the work, not after it.
  let out: number | undefined;
  if (parsed.values.out !== undefined) {
    try {
      out = openSync(parsed.values.out, 'w');
    } catch (err) {
      fail(`cannot write --out ${parsed.values.out}: ${(err as Error).message}`);
    }
  }

  // No server (no transport can be set up here): the command still runs,
  // and the run is reported not cacheable, since nothing its tools say is heard.
  let server: Server | undefined;
  let unserved: string | undefined;
  try {
    server = await createServer(closeTimeoutMs === undefined ? {} : { closeTimeoutMs });
  } catch (err) {
    if (err instanceof TypeError) fail(err.message);
    unserved = err instanceof Error ? err.message : String(err);
    // With --json alone stderr is the JSON, which carries the reason.
    if (!parsed.values.json || out !== undefined) process.stderr.write(`runner-aware: ${unserved}\nrunner-aware: running the command without a server; the run is not cacheable\n`);
  }
  // Without a terminal the command gets a process group of its own, so a
  // signal to inspect reaches every process of it once. With one, the
  // terminal already sends Ctrl-C to the whole foreground group: forwarding
  // SIGINT too would deliver it twice.
  const ownGroup = process.platform !== 'win32' && !process.stdin.isTTY;
  const child = spawn(command, args, {
    stdio: 'inherit',
    env: server ? { ...process.env, ...server.env } : process.env,
    shell: process.platform === 'win32',
    detached: ownGroup,
  });
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal === 'SIGINT' && !ownGroup) return;
    try {
      if (ownGroup && child.pid !== undefined) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  const outcome = await new Promise<CommandOutcome & { exitCode: number }>((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`runner-aware: cannot run ${command}: ${err.message}\n`);
      resolve({ exitCode: 127 });
    });
    child.on('exit', (code, signal) => {
      resolve({ exitCode: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0), signal });
    });
  });
  for (const [signal, handler] of handlers) process.off(signal, handler);
  const reports = server ? await server.close() : noReports(`no runner-aware server heard the tools: ${unserved}`);
  if (out !== undefined) {
    // A file is for programs: always the JSON, with the verdict.
    writeSync(out, `${JSON.stringify({ ...reports, verdict: verdict(reports, outcome) }, null, 2)}\n`);
    closeSync(out);
  } else if (parsed.values.json) {
    process.stderr.write(`${JSON.stringify({ ...reports, verdict: verdict(reports, outcome) }, null, 2)}\n`);
  } else {
    process.stderr.write(summarize(reports, outcome.exitCode, outcome));
  }
  return outcome.exitCode;
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
