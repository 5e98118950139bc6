// The runner side: one server per task run. Loads the addon on first use.

import { createRequire } from 'node:module';
import { dirname } from 'node:path';

import type { ReportChunks } from '../index.js';
import { checkOptions, checkOutcome, checkReason, checkReports, checkStringArray, refuse, toPaths, typeName } from './checks.js';
import { openChunks } from './chunks.js';
import { digestedMatches, nullRecord, sha256 } from './digest.js';
import { loadBinding } from './native.js';
import { startTrace, traceReasons, type TraceOption, type TraceSession } from './trace.js';
import { addInput, addOutput, addValue, disableCache, getEnv, getEnvs, ignoreInput, ignoreOutput, isConnected } from './tool.js';
import type { EnvRecord, EnvValueEncoding, Reports, TraceMode, UncacheableReason } from './types.js';

/** How a server is set up. */
export interface ServerOptions {
  /** The variables tools may fetch. Default: a snapshot of `process.env`. */
  env?: Record<string, string | undefined>;
  /**
   * Name globs that are served but never tracked, so a broad query stays
   * cacheable. Default: shell noise such as `OLDPWD`, `PWD`, `SHLVL`, `_`.
   * The channel's own variables (`RUNNER_AWARE_*`, `VP_RUN_NODE_CLIENT_PATH`)
   * are added to any list: they differ on every run.
   */
  untrackedEnv?: string[];
  /** How long `close()` waits for connections still open (a daemon). Default 1000. */
  closeTimeoutMs?: number;
  /**
   * Whether a runner that is itself a task of another runner forwards what
   * its tools said upstream at `close()`, so the outer run's reports are a
   * superset of this one's. Default `true`; it does nothing when no runner
   * listens to this process. Turn it off for a runner that deliberately
   * isolates its tasks (its own cache key covers them, and the outer runner
   * caches the inner runner's process on its own inputs).
   */
  forward?: boolean;
  /**
   * Trace what every process of the task reads, looks up, lists, writes and
   * deletes (Linux x64 and arm64, glibc and musl): `close()` then returns it
   * as `reports.trace`, and a trace that may miss accesses makes the run not
   * cacheable (a `trace` reason), as does a path the task read and then
   * wrote or deleted that no ignored input covers (`modified-input`). Start the command as
   * `server.command(argv)`, with `server.env` in its env.
   * - `true`: trace where it can be done, in `'preload'` mode; where it
   *   cannot (not Linux x64 or arm64 or Windows x64, no tracer beside the
   *   addon), nothing is traced and `reports.trace.mode` is `unsupported`,
   *   with the reason;
   * - `'preload'`: a preload library records the calls of dynamically
   *   linked programs, and a seccomp supervisor everything it cannot see
   *   (static programs, raw system calls); a few percent of CPU. On Windows
   *   a DLL loaded into every process of the task records ntdll's calls;
   * - `'seccomp'`: the supervisor sees every file system call; slower.
   *   Linux only.
   * A mode asked for by name must be honoured: where it cannot be,
   * `createServer` rejects with a {@link TraceUnavailableError} saying why.
   * A runner that is itself traced by an outer runner traces nothing,
   * whatever it asks for (`unsupported`, saying so): the outer trace records
   * its task, and one process tree takes one tracer.
   * Default `false`.
   */
  trace?: TraceOption;
  /**
   * Paths whose reads and writes are neither inputs nor outputs, as if a tool
   * had called `ignoreInput` and `ignoreOutput` for each: the runner's user's
   * word for what a tool does not say itself (a test runner's results cache).
   * Relative paths resolve against the runner's working directory now; they
   * are in the reports' `ignoredInputs` and `ignoredOutputs`. Default none.
   */
  ignore?: readonly (string | URL)[];
}

/** Options of `close()` and `snapshot()`. */
export interface CloseOptions {
  /**
   * How the reports hold env values (`envs` and query `matches`). Default
   * `sha256`: each value's sha256 digest, so that nothing a runner stores,
   * prints or uploads carries a secret, and `envFingerprint` and
   * `validateFingerprint` work as with values. `plain`: the values
   * themselves, for a runner that needs them (and keeps them to itself).
   * The tools get plaintext answers either way.
   */
  envValues?: EnvValueEncoding;
}

/** A server for one task run. */
export interface Server {
  /** Merge into the child's environment; every process that inherits it can report. */
  readonly env: Readonly<Record<string, string>>;
  /** The socket the server listens on (on Unix its directory also holds the FIFO rendezvous). */
  readonly socketPath: string;
  /**
   * The transports tools can reach this server by: `socket` and `fifo` on
   * Unix (`fifo` only where a sandbox denies Unix sockets, or when
   * `RUNNER_AWARE_TRANSPORT=fifo`), `pipe` on Windows.
   */
  readonly transports: readonly string[];
  /**
   * How the task is traced (`ServerOptions.trace`): `preload`, `seccomp`,
   * `unsupported` on a platform without the tracer; `undefined` when not asked.
   */
  readonly trace: TraceMode | undefined;
  /**
   * The command line to spawn for `argv`: wrapped in the trace supervisor
   * when tracing, `argv` as it is otherwise. The supervisor exits like the
   * command and passes it SIGINT, SIGTERM, SIGHUP and SIGQUIT.
   */
  command(argv: readonly string[]): string[];
  /** The reports so far, without closing; env values as digests unless `options.envValues` is `plain`. */
  snapshot(options?: CloseOptions): Reports;
  /**
   * Stops accepting, reads everything the tools sent, waits at most
   * `closeTimeoutMs` for connections still open, and resolves with the reports.
   * Env values in them are sha256 digests unless `options.envValues` is
   * `plain`. Huge reports are taken in a piece per event-loop turn: the loop
   * is never blocked for long, whatever their size.
   */
  close(options?: CloseOptions): Promise<Reports>;
}

/**
 * Whether this is the main thread, whose `process.env` Node keeps in step
 * with the C environment: there the addon snapshots the environment itself,
 * sparing a server's start a JS walk over every variable (~30 µs).
 */
let mainThread: boolean | undefined;
function isMainThread(): boolean {
  mainThread ??= (createRequire(process.execPath)('node:worker_threads') as typeof import('node:worker_threads')).isMainThread;
  return mainThread;
}

function definedEntries(env: Record<string, string | undefined>): Record<string, string> {
  const out = nullRecord<string>();
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Reports as parsed from JSON, with every keyed record made prototype-free. */
function withNullRecords(reports: Reports): Reports {
  reports.values = nullRecord(Object.entries(reports.values));
  reports.envs = nullRecord(Object.entries(reports.envs));
  for (const query of reports.envQueries) query.matches = nullRecord(Object.entries(query.matches));
  return reports;
}

/** The fields of the reports their later chunks fill: lists (`items`) and records (`entries`). */
type ChunkField = 'ignoredInputs' | 'ignoredOutputs' | 'inputs' | 'outputs' | 'envQueries' | 'values' | 'envs';

/** Replaces the env values of `envs` and `queries` by their digests, in place. */
function digestValues(envs: Iterable<EnvRecord>, queries: Reports['envQueries']): void {
  for (const record of envs) if (record.value !== null) record.value = sha256(record.value);
  for (const query of queries) query.matches = digestedMatches(query.matches);
}

function checkCloseOptions(options: CloseOptions, method: string): EnvValueEncoding {
  checkOptions(options, ['envValues'], method);
  const encoding = options.envValues ?? 'sha256';
  if (encoding !== 'sha256' && encoding !== 'plain') {
    throw new TypeError(`runner-aware ${method}: envValues must be 'sha256' or 'plain', got ${String(encoding)}`);
  }
  return encoding;
}

/**
 * Puts the reports together from their chunks, one chunk per event-loop
 * turn: each is a few hundred KiB of JSON, parsed (and its env values
 * digested) in a few milliseconds.
 */
async function readChunks(chunks: ReportChunks, encoding: EnvValueEncoding): Promise<Reports> {
  const { head, rest } = openChunks<Reports, ChunkField>(chunks, 'runner-aware: the server returned no reports');
  const reports = withNullRecords(head);
  const digest = encoding === 'sha256';
  if (digest) digestValues(Object.values(reports.envs), reports.envQueries);
  reports.envValues = encoding;
  for await (const part of rest) {
    if ('items' in part) {
      const list = reports[part.field] as unknown[];
      for (const item of part.items) list.push(item);
      if (part.field === 'envQueries') {
        const queries = part.items as Reports['envQueries'];
        if (digest) digestValues([], queries);
        else for (const query of queries) query.matches = nullRecord(Object.entries(query.matches));
      }
    } else {
      const record = reports[part.field] as Record<string, unknown>;
      if (digest && part.field === 'envs') digestValues(part.entries.map(([, value]) => value as EnvRecord), []);
      for (const [name, value] of part.entries) record[name] = value;
    }
  }
  return reports;
}

/**
 * The private directories of this process's open servers, removed if the
 * process ends before their `close()`: on exit (including an uncaught
 * exception), and on SIGINT, SIGTERM or SIGHUP when nothing else handles the
 * signal (which is then re-raised, so the process still ends by it). A
 * SIGKILL leaves them behind: nothing can run then.
 */
const openDirs = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function removeOpenDirs(): void {
  const { rmSync } = createRequire(process.execPath)('node:fs') as typeof import('node:fs');
  for (const dir of openDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort while the process ends.
    }
  }
  openDirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  // Another handler means the runner decides what the signal does; its
  // exit, if any, cleans up through the exit hook.
  if (process.listenerCount(signal) > 1) return;
  removeOpenDirs();
  unwatchExit();
  process.kill(process.pid, signal);
}

function watchExit(): void {
  if (openDirs.size > 0) return;
  process.on('exit', removeOpenDirs);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function unwatchExit(): void {
  process.off('exit', removeOpenDirs);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

function track(dir: string): () => void {
  watchExit();
  openDirs.add(dir);
  return () => {
    openDirs.delete(dir);
    if (openDirs.size === 0) unwatchExit();
  };
}

/**
 * While a nested run is open, a marker in the outer runner's directory says
 * so: if this runner dies before it forwarded what its tools said, the outer
 * run finds the marker at its close and is not cacheable. Removed once the
 * reports went upstream. Only an outer runner-aware runner has such a
 * directory; under another runner (`vp run`) this is a no-op.
 */
function openNestedMarker(): () => void {
  const dir = process.env['RUNNER_AWARE_DIR'] || (process.env['RUNNER_AWARE_SOCKET'] ? dirname(process.env['RUNNER_AWARE_SOCKET']) : '');
  if (!dir) return () => {};
  const fs = createRequire(process.execPath)('node:fs') as typeof import('node:fs');
  const { join } = createRequire(process.execPath)('node:path') as typeof import('node:path');
  const marker = join(dir, `lost-${process.pid}-nested-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  try {
    fs.writeFileSync(marker, JSON.stringify({ pid: process.pid, reason: 'a nested runner ended before it forwarded what its tools said' }), { flag: 'wx', mode: 0o600 });
  } catch {
    return () => {};
  }
  return () => fs.rmSync(marker, { force: true });
}

/**
 * Tells the runner this process is a task of what this run's tools said,
 * through the tool API (so it works under any runner whose addon the tool API can use):
 * tracked env names and queries are asked again, tracked, so the outer run
 * records them with the values it serves; paths, values and the verdict are
 * reported as they are. Untracked reads stay untracked.
 */
function forwardUpstream(reports: Reports): void {
  const tracked = { tracked: true };
  for (const [name, record] of Object.entries(reports.envs)) if (record.tracked) getEnv(name, tracked);
  for (const query of reports.envQueries) {
    if (!query.tracked) continue;
    getEnvs('glob' in query ? query.glob : { prefix: query.prefix }, tracked);
  }
  for (const path of reports.ignoredInputs) ignoreInput(path);
  for (const path of reports.ignoredOutputs) ignoreOutput(path);
  for (const path of reports.inputs) addInput(path);
  for (const path of reports.outputs) addOutput(path);
  for (const [name, value] of Object.entries(reports.values)) addValue(name, value);
  for (const reason of reports.notCacheable) {
    const from = reason.caller ? `, from ${reason.caller}` : '';
    disableCache(`a nested run (pid ${process.pid}) is not cacheable: ${reason.kind}: ${reason.message}${from}`);
  }
}

/**
 * A reason as one line for people, with who gave it when known: `kind:
 * message`, then `, from <caller>` and ` (pid N: <command line>)`, e.g.
 * `disable-cache: disableCache() with no reason, from vite … _createServer
 * (pid 4242: node node_modules/vite/bin/vite.js)`. `runner-aware inspect` and
 * the reference runner print reasons this way.
 */
export function describeReason(reason: UncacheableReason): string {
  checkReason(reason, 'reason', 'describeReason');
  return loadBinding().binding.describeReason(reason);
}

/** How the task's command ended, for {@link verdict}. */
export interface CommandOutcome {
  /** Its exit code; `null` when a signal ended it. */
  exitCode?: number | null;
  /** The signal that ended it. */
  signal?: NodeJS.Signals | null;
}

/** Whether to cache a run, and why not: the reports' verdict and the command's exit. */
export interface Verdict {
  /** Whether the run may be cached. */
  cacheable: boolean;
  /** Every reason it may not, the reports' first. */
  reasons: UncacheableReason[];
  /**
   * The `disableCache` calls the runner's user overruled
   * (`VerdictOptions.cacheableDespite`): not in `reasons`, kept here so a
   * runner can record and show them. Present only with that option.
   */
  overruled?: UncacheableReason[];
}

/** Options of `verdict()`: what the runner's user decided. */
export interface VerdictOptions {
  /**
   * Callers whose `disableCache` the user overrules for this task (user
   * config wins): a `disable-cache` reason whose `caller` is one of these,
   * or starts with one and a space, does not count (`'vite'` overrules
   * `vite … _createServer`, not `vitest … x`). Only `disable-cache` can be
   * overruled, and only with a caller: every other reason means what a tool
   * said may be missing.
   */
  cacheableDespite?: readonly string[];
}

/**
 * The one verdict a runner acts on: the reports' `cacheable` with their
 * reasons, plus the command's exit (a failed or killed command is never
 * cached), minus the `disableCache` calls the user overruled.
 * `runner-aware inspect` and the reference runner print this.
 */
export function verdict(reports: Pick<Reports, 'notCacheable'>, outcome: CommandOutcome = {}, options: VerdictOptions = {}): Verdict {
  checkReports(reports, ['notCacheable'], 'verdict');
  checkOutcome(outcome, 'outcome', 'verdict');
  if (checkOptions(options, ['cacheableDespite'], 'verdict').cacheableDespite !== undefined) checkStringArray(options.cacheableDespite, 'options.cacheableDespite', 'verdict');
  const { exitCode = null, signal = null } = outcome;
  const { cacheableDespite } = options;
  return loadBinding().binding.verdict(reports.notCacheable, { exitCode, signal }, cacheableDespite === undefined ? {} : { cacheableDespite }) as Verdict;
}

/** Every option `createServer` takes. */
const SERVER_OPTIONS = ['env', 'untrackedEnv', 'closeTimeoutMs', 'forward', 'trace', 'ignore'] as const;

/** `options` checked, with the `ignore` paths as strings (`file:` URLs made paths). */
function checkServerOptions(options: ServerOptions): Omit<ServerOptions, 'ignore'> & { ignore?: readonly string[] } {
  const { closeTimeoutMs, untrackedEnv, env, forward, trace, ignore } = checkOptions(options, SERVER_OPTIONS, 'createServer');
  if (ignore !== undefined && !Array.isArray(ignore)) refuse('createServer', `ignore must be an array of paths, got ${typeName(ignore)}`);
  if (trace !== undefined && typeof trace !== 'boolean' && trace !== 'preload' && trace !== 'seccomp') {
    throw new TypeError(`runner-aware createServer: trace must be true, false, 'preload' or 'seccomp', got ${String(trace)}`);
  }
  if (forward !== undefined && typeof forward !== 'boolean') {
    throw new TypeError('runner-aware createServer: forward must be a boolean');
  }
  if (closeTimeoutMs !== undefined && !(Number.isInteger(closeTimeoutMs) && closeTimeoutMs >= 0 && closeTimeoutMs <= 0xffffffff)) {
    throw new TypeError(`runner-aware createServer: closeTimeoutMs must be a whole number of milliseconds, got ${closeTimeoutMs}`);
  }
  if (untrackedEnv !== undefined && !(Array.isArray(untrackedEnv) && untrackedEnv.every((g) => typeof g === 'string'))) {
    throw new TypeError('runner-aware createServer: untrackedEnv must be an array of strings');
  }
  if (env !== undefined && (env === null || typeof env !== 'object')) {
    throw new TypeError('runner-aware createServer: env must be an object of strings');
  }
  const { ignore: paths, ...checked } = options;
  return paths === undefined ? checked : { ...checked, ignore: toPaths(paths, 'ignore', 'createServer') };
}

/**
 * A file-access trace asked for by mode (`createServer({ trace: 'preload' })`
 * or `'seccomp'`, `inspect --trace seccomp`) that cannot be made here: not
 * Linux x64 or arm64 or Windows x64 (`'seccomp'`: not Linux), or no tracer
 * beside the addon. `trace: true` runs
 * untraced in those cases instead.
 */
export class TraceUnavailableError extends Error {
  /** The mode asked for. */
  readonly mode: 'preload' | 'seccomp';
  /** Why it cannot be made. */
  readonly reason: string;
  constructor(mode: 'preload' | 'seccomp', reason: string) {
    super(`runner-aware createServer: trace '${mode}' was asked for and cannot be done: ${reason} (trace: true traces where it can and runs untraced elsewhere)`);
    this.name = 'TraceUnavailableError';
    this.mode = mode;
    this.reason = reason;
  }
}

/** Starts a server for one task run. Put `server.env` in the child's env; call `close()` after it exits. */
export async function createServer(serverOptions: ServerOptions = {}): Promise<Server> {
  const options = checkServerOptions(serverOptions);
  const { binding, path } = loadBinding();
  const native = binding.createServer({
    ...(options.env || !isMainThread() ? { env: definedEntries(options.env ?? process.env) } : {}),
    ...(options.untrackedEnv ? { untrackedEnv: options.untrackedEnv } : {}),
    ...(options.closeTimeoutMs !== undefined ? { closeTimeoutMs: options.closeTimeoutMs } : {}),
    // The runner's user's ignores, as if a tool had said them: the core adds them at close.
    ...(options.ignore ? { ignore: [...options.ignore] } : {}),
    clientPath: path,
  });
  const socketPath = native.socketPath;
  // The private directory: named in the env where the address is not a path
  // inside it (a Windows named pipe), else the socket's parent.
  const privateDir = native.env['RUNNER_AWARE_DIR'] ?? dirname(socketPath);
  let tracing: TraceSession | undefined;
  try {
    tracing = options.trace ? startTrace(options.trace, privateDir) : undefined;
  } catch (err) {
    await native.close();
    if (typeof options.trace !== 'string') throw err;
    const reason = (err as Error).message.replace(/^file-access tracing \(\w+\) was asked for and cannot be done: /, '');
    throw new TraceUnavailableError(options.trace, reason);
  }
  const env = Object.freeze({ ...native.env, ...tracing?.env });
  const untrack = track(privateDir);
  // A runner that is a task of another forwards upstream; it connects now,
  // so the outer runner knows of it from the start. Forwarding or not, its
  // own channel (socket, FIFOs, markers) is plumbing, not the outer task's
  // input or output, which an outer trace would otherwise take it for.
  const underRunner = isConnected();
  if (underRunner) {
    ignoreInput(privateDir);
    ignoreOutput(privateDir);
  }
  const nested = options.forward !== false && underRunner ? openNestedMarker() : undefined;
  return {
    env,
    socketPath,
    transports: Object.freeze(native.transports),
    trace: tracing?.mode,
    command: (argv: readonly string[]) => {
      checkStringArray(argv, 'argv', 'server.command');
      return tracing ? tracing.command(argv) : [...argv];
    },
    snapshot: (closeOptions: CloseOptions = {}) => {
      const encoding = checkCloseOptions(closeOptions, 'snapshot');
      const reports = withNullRecords(JSON.parse(native.snapshot()) as Reports);
      if (encoding === 'sha256') digestValues(Object.values(reports.envs), reports.envQueries);
      reports.envValues = encoding;
      return reports;
    },
    close: async (closeOptions: CloseOptions = {}) => {
      const encoding = checkCloseOptions(closeOptions, 'close');
      try {
        // The trace file lives in the private directory the native close removes.
        const trace = await tracing?.finish();
        const reports = await readChunks(await native.close(), encoding);
        if (trace) {
          reports.trace = trace;
          const reasons = traceReasons(reports, trace);
          if (reasons.length > 0) {
            reports.notCacheable = [...reports.notCacheable, ...reasons].sort((a, b) => a.kind.localeCompare(b.kind) || a.message.localeCompare(b.message));
            reports.cacheable = false;
          }
        }
        if (nested) {
          forwardUpstream(reports);
          nested();
        }
        return reports;
      } finally {
        untrack();
      }
    },
  };
}
