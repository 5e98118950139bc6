// `runner-aware inspect [--json] [--out FILE] -- <command…>`: runs a command
// under a server, traced where the tracer runs, and shows what its tools
// reported and what it read and wrote. Bundled as CommonJS (dist/cli.cjs).

import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { isAbsolute, relative, sep } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { didYouMean } from './checks.js';
import { nodeModulesBinPath, packageManagerPaths } from './cache.js';
import { inferAccesses } from './infer.js';
import { createServer, describeReason, TraceUnavailableError, verdict, type CommandOutcome, type Server } from './server.js';
import type { Reports } from './types.js';

const USAGE = `Usage: runner-aware inspect [--json] [--out FILE] [--trace MODE] [--ignore PATH]… [--close-timeout MS] [--plain-values] -- <command> [args…]
       runner-aware --help | --version`;

const HELP = `${USAGE}

Runs <command> under a runner-aware server, as a task runner would, and shows
what the tools it started reported: env they read, paths they ignored or
declared, values, and the verdict (cacheable, or every reason it is not).
Where the tracer runs (Linux; Windows x64 with the tracer beside the addon)
it also traces what every process of the command read and wrote, and shows
the inputs and outputs a runner would infer from that.

The command gets your environment plus the server's variables
(RUNNER_AWARE_*, VP_RUN_NODE_CLIENT_PATH) and your stdio; its stdout stays its
own. The report goes to stderr after it exits. Env values are never printed
in the summary.

Options:
  --json              print the Reports JSON, with its verdict, instead of the summary
  --out FILE          write the Reports JSON, with its verdict, to FILE (always JSON;
                      FILE is opened before the command runs, so a bad path costs no run)
  --trace MODE        auto (default: preload where the tracer runs, none elsewhere),
                      preload, seccomp (every process under the supervisor), or off.
                      preload and seccomp must be had: where no tracer runs (not
                      Linux x64 or arm64 or Windows x64, a build without it;
                      seccomp: not Linux), inspect exits 2.
                      A trace that may miss accesses, or shows the command modifying
                      what it read, makes the run not cacheable
  --ignore PATH       reads and writes under PATH are neither inputs nor outputs, as
                      when a tool says so itself (a tool's own cache); repeatable
  --close-timeout MS  how long to wait, after the command exited, for processes still
                      connected to the server (default 1000)
  --plain-values      env values in the JSON as the tools got them; by default each is
                      its sha256 digest, so a stored or shared report holds no secret
  -h, --help          show this help
  -v, --version       print the version of runner-aware

Exit status: the command's. A command killed by a signal makes inspect end by
the same signal, after it printed the report. SIGINT, SIGTERM and SIGHUP sent
to inspect reach every process of the command (its process group, when stdin
is not a terminal; a terminal's Ctrl-C reaches them itself). 2: a usage error;
127: the command could not be started.

Examples:
  runner-aware inspect -- npx vite build
  runner-aware inspect --out reports.json -- npm run build`;

/** `message` as a line of this CLI: one `runner-aware` prefix, whether or not the message has its own. */
function line(message: string): string {
  return `${/^runner-aware[ :]/.test(message) ? message : `runner-aware: ${message}`}\n`;
}

function fail(message: string): never {
  process.stderr.write(`${line(message)}${USAGE}\nRun runner-aware --help for more.\n`);
  process.exit(2);
}

/** The options of `inspect`. */
const OPTIONS = {
  json: { type: 'boolean', default: false },
  out: { type: 'string' },
  'close-timeout': { type: 'string' },
  'plain-values': { type: 'boolean', default: false },
  trace: { type: 'string', default: 'auto' },
  ignore: { type: 'string', multiple: true, default: [] as string[] },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false },
} satisfies NonNullable<ParseArgsConfig['options']>;

/**
 * What to say about an argument `parseArgs` refused: an option of the
 * command given without `--` before it (`inspect --json node -e 1`), with
 * the line that works, or an option of inspect's own mistyped, with the
 * nearest one.
 */
function usageHint(argv: string[], err: Error): string {
  if ((err as { code?: string }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return err.message;
  const { tokens = [] } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  const unknown = tokens.find((token) => token.kind === 'option' && !(token.name in OPTIONS));
  const shown = unknown?.kind === 'option' ? unknown.rawName : '';
  const command = tokens.find((token) => token.kind === 'positional');
  if (command?.kind === 'positional' && unknown !== undefined && command.index < unknown.index) {
    const quoted = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`);
    const fixed = [...argv.slice(0, command.index), '--', ...argv.slice(command.index)].map(quoted).join(' ');
    return `unknown option ${shown}: options of the command go after --, as in: runner-aware inspect ${fixed}`;
  }
  const name = shown.replace(/^--?/, '');
  return `unknown option ${shown}${didYouMean(name, Object.keys(OPTIONS)).replace(/'(.+)'/, "'--$1'")}`;
}

/** This package's version, from the package.json next to dist/. */
function version(): string {
  const manifest = createRequire(__filename)('../package.json') as { version: string };
  return manifest.version;
}

function list(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  return [`  ${title}:`, ...items.map((item) => `    ${item}`)];
}

/** How many traced outputs the summary names; `--json` has them all. */
const SHOWN_OUTPUTS = 20;

/** `path` relative to the working directory when it is inside it. */
function shownPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) ? path : rel;
}

/** The trace's lines of the summary: what a runner would infer, counted, and the outputs. */
function traceLines(reports: Reports): string[] {
  const { trace } = reports;
  if (!trace) return [];
  if (trace.mode === 'unsupported') return [`  trace: ${trace.incomplete.join('; ').replace(/^trace: /, '')}`];
  const { inputs, outputs } = inferAccesses(reports);
  const byKind = new Map<string, number>();
  for (const input of inputs) byKind.set(input.kind, (byKind.get(input.kind) ?? 0) + 1);
  const kinds = (['content', 'listing', 'existence'] as const).filter((kind) => byKind.has(kind)).map((kind) => `${byKind.get(kind)} ${kind}`);
  const outside = inputs.filter((input) => shownPath(input.path) === input.path).length;
  const shown = outputs.slice(0, SHOWN_OUTPUTS).map(shownPath);
  if (outputs.length > SHOWN_OUTPUTS) shown.push(`… ${outputs.length - SHOWN_OUTPUTS} more (--json lists every path)`);
  return [
    `  trace (${trace.mode}, ${trace.complete ? 'complete' : 'may be incomplete'}): ${inputs.length} input${inputs.length === 1 ? '' : 's'}` +
      `${kinds.length ? ` (${kinds.join(', ')}; ${outside} outside the working directory)` : ''}, ${outputs.length} output${outputs.length === 1 ? '' : 's'}`,
    ...list('traced outputs', shown),
  ];
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
  const packageManager = new Set(packageManagerPaths());
  const lines = [
    `runner-aware: exit ${exitCode}, ${reports.clients} client${reports.clients === 1 ? '' : 's'}, ${cacheable ? 'cacheable' : 'not cacheable'}`,
    ...list(
      'not cacheable because',
      reasons.map(describeReason),
    ),
    // The package managers' own files are ignored on every run: not news.
    ...list('ignored inputs', reports.ignoredInputs.filter((path) => !packageManager.has(path))),
    ...list('ignored outputs', reports.ignoredOutputs.filter((path) => !packageManager.has(path))),
    ...list('inputs', reports.inputs),
    ...list('outputs', reports.outputs),
    ...list('values', Object.entries(reports.values).map(([n, v]) => `${n} = ${v}`)),
    ...list('env', envLines),
    ...list('env queries', queryLines),
    ...traceLines(reports),
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

async function inspect(argv: string[]): Promise<CommandOutcome & { exitCode: number }> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    fail(usageHint(argv, err as Error));
  }
  if (parsed.values.help) {
    process.stdout.write(`${HELP}\n`);
    return { exitCode: 0 };
  }
  if (parsed.values.version) {
    process.stdout.write(`${version()}\n`);
    return { exitCode: 0 };
  }
  const [command, ...args] = parsed.positionals;
  if (!command) fail('inspect needs a command after --');
  const closeTimeout = parsed.values['close-timeout'];
  const closeTimeoutMs = closeTimeout === undefined ? undefined : Number(closeTimeout);
  if (closeTimeoutMs !== undefined && !Number.isInteger(closeTimeoutMs)) fail(`--close-timeout ${closeTimeout} is not a number of milliseconds`);
  const traceMode = parsed.values.trace;
  if (!['auto', 'preload', 'seccomp', 'off'].includes(traceMode)) fail(`--trace ${traceMode}: expected auto, preload, seccomp or off`);
  const ignore = parsed.values.ignore;
  if (ignore.includes('')) fail('--ignore needs a path, not an empty string');
  // auto is the reference runner's default too, so both reach the same verdict:
  // a trace where one can be made. A mode by name must be had.
  const trace = traceMode === 'off' ? false : traceMode === 'auto' ? true : (traceMode as 'preload' | 'seccomp');

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
    // The package managers' own files (npm's logs, caches) are no task's
    // inputs or outputs: `npm run build` is judged as its command is.
    server = await createServer({ trace, ignore: [...ignore, ...packageManagerPaths()], ...(closeTimeoutMs === undefined ? {} : { closeTimeoutMs }) });
  } catch (err) {
    if (err instanceof TraceUnavailableError) {
      process.stderr.write(line(`--trace ${err.mode} cannot be done here: ${err.reason} (--trace auto traces where it can)`));
      return { exitCode: 2 };
    }
    if (err instanceof TypeError) fail(err.message);
    unserved = err instanceof Error ? err.message : String(err);
    // With --json alone stderr is the JSON, which carries the reason.
    if (!parsed.values.json || out !== undefined) process.stderr.write(`${line(unserved)}runner-aware: running the command without a server; the run is not cacheable\n`);
  }
  // Without a terminal the command gets a process group of its own, so a
  // signal to inspect reaches every process of it once. With one, the
  // terminal already sends Ctrl-C to the whole foreground group: forwarding
  // SIGINT too would deliver it twice.
  const ownGroup = process.platform !== 'win32' && !process.stdin.isTTY;
  const [file, ...fileArgs] = server ? server.command([command, ...args]) : [command, ...args];
  const child = spawn(file as string, fileArgs, {
    stdio: 'inherit',
    // node_modules/.bin on PATH, as npm puts it for a script: `inspect -- vite build` runs the project's vite.
    env: { ...process.env, PATH: nodeModulesBinPath(process.cwd(), process.env['PATH'] ?? ''), ...server?.env },
    shell: process.platform === 'win32',
    detached: ownGroup,
  });
  // Traced, the child is the trace supervisor: it leads the command's group
  // and passes a signal to the whole group itself, once.
  const supervised = file !== command;
  const forward = (signal: NodeJS.Signals) => () => {
    if (signal === 'SIGINT' && !ownGroup) return;
    try {
      if (ownGroup && child.pid !== undefined && !supervised) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  const outcome = await new Promise<CommandOutcome & { exitCode: number }>((resolve) => {
    child.on('error', (err) => {
      const notFound = (err as NodeJS.ErrnoException).code === 'ENOENT' && !command.includes('/');
      process.stderr.write(line(`cannot run ${command}: ${notFound ? 'not found on PATH' : err.message}`));
      resolve({ exitCode: 127 });
    });
    child.on('exit', (code, signal) => {
      resolve({ exitCode: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0), signal });
    });
  });
  for (const [signal, handler] of handlers) process.off(signal, handler);
  const reports = server ? await server.close({ envValues: parsed.values['plain-values'] ? 'plain' : 'sha256' }) : noReports(`no runner-aware server heard the tools: ${unserved}`);
  if (out !== undefined) {
    // A file is for programs: always the JSON, with the verdict.
    writeSync(out, `${JSON.stringify({ ...reports, verdict: verdict(reports, outcome) }, null, 2)}\n`);
    closeSync(out);
  } else if (parsed.values.json) {
    process.stderr.write(`${JSON.stringify({ ...reports, verdict: verdict(reports, outcome) }, null, 2)}\n`);
  } else {
    process.stderr.write(summarize(reports, outcome.exitCode, outcome));
  }
  return outcome;
}

async function main(argv: string[]): Promise<CommandOutcome & { exitCode: number }> {
  const [subcommand, ...rest] = argv;
  if (subcommand === 'inspect') return inspect(rest);
  if (subcommand === '--help' || subcommand === '-h') {
    process.stdout.write(`${HELP}\n`);
    return { exitCode: 0 };
  }
  if (subcommand === '--version' || subcommand === '-v') {
    process.stdout.write(`${version()}\n`);
    return { exitCode: 0 };
  }
  fail(subcommand === undefined ? 'no command' : `unknown command ${subcommand}`);
}

/**
 * Ends this process as the command ended: by the same signal when one killed
 * it (so a shell or runner above sees what happened), else with its exit code.
 * A signal whose default action is not to end the process (or one Node
 * ignores, as SIGPIPE) falls back to the exit code 128 + its number.
 */
function exitLike({ exitCode, signal }: CommandOutcome & { exitCode: number }): void {
  if (!signal || process.platform === 'win32') process.exit(exitCode);
  // What was written to stderr is flushed before the signal ends the process.
  process.stderr.write('', () => {
    // inspect's own handlers are gone, so the signal takes its default action.
    process.kill(process.pid, signal);
    setTimeout(() => process.exit(exitCode), 100);
  });
}

main(process.argv.slice(2)).then(
  exitLike,
  (err: unknown) => {
    process.stderr.write(line(err instanceof Error ? err.message : String(err)));
    process.exit(1);
  },
);
