// The runner side of file-access tracing (Linux): where the tracer lives, what
// the child's env and command need, and reading the trace back at close().

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { isIgnoredInput, TRACE_FIELDS } from './cache.js';
import { openChunks } from './chunks.js';
import { loadBinding, platformTriple } from './native.js';
import type { Reports, Trace, TraceMode, UncacheableReason } from './types.js';

/** The path lists of a trace. */
type TraceList = (typeof TRACE_FIELDS)[number];

/** What `createServer({ trace })` accepts: `true` is `'preload'` where a trace can be made and no trace elsewhere; a mode by name must be honoured. */
export type TraceOption = boolean | 'preload' | 'seccomp';

/** A trace being recorded for one run, or the reason none is. */
export interface TraceSession {
  mode: TraceMode;
  /** Variables the child needs (empty when unsupported). */
  env: Record<string, string>;
  /** The command, wrapped in the supervisor when tracing. */
  command(argv: readonly string[]): string[];
  /** Reads the trace once the task has exited, off the main thread; never rejects. */
  finish(): Promise<Trace>;
}

/** The trace files this process's servers made: never taken for an outer runner's. */
const ownTraceFiles = new Set<string>();

function fs(): typeof import('node:fs') {
  return createRequire(process.execPath)('node:fs') as typeof import('node:fs');
}

function emptyTrace(mode: TraceMode, incomplete: string[]): Trace {
  return { mode, complete: false, incomplete, read: [], found: [], missing: [], listed: [], written: [], deleted: [], readThenWritten: [] };
}

function unsupported(why: string): TraceSession {
  return {
    mode: 'unsupported',
    env: {},
    command: (argv) => [...argv],
    finish: () => Promise.resolve(emptyTrace('unsupported', [`trace: unsupported: ${why}`])),
  };
}

/**
 * No trace can be made here: for `true`, an `unsupported` session with the
 * reason; for a mode asked for by name, an error saying why.
 */
function unavailable(option: TraceOption, why: string): TraceSession {
  if (option === true) return unsupported(why);
  throw new Error(`file-access tracing (${option === 'seccomp' ? 'seccomp' : 'preload'}) was asked for and cannot be done: ${why}`);
}

/** The tracer's two files beside the addon, or why they are not usable here. */
function tracerFiles(addonPath: string): { preload: string; supervisor: string } | string {
  if (process.platform !== 'linux') return `file-access tracing is Linux only (this is ${process.platform})`;
  if (process.arch !== 'x64' && process.arch !== 'arm64') return `the tracer is built for x64 and arm64 (this is ${process.arch})`;
  const triple = platformTriple();
  const dir = dirname(addonPath);
  const preload = join(dir, `runner-aware-preload.${triple}.so`);
  const supervisor = join(dir, `runner-aware-trace.${triple}`);
  for (const file of [preload, supervisor]) {
    if (!fs().existsSync(file)) return `${file} is missing (the platform package or the build lacks the tracer)`;
  }
  return { preload, supervisor };
}

/**
 * Starts a trace for one run in `privateDir`: the trace file, the env the
 * supervisor needs (the trace file, the preload library, which it puts in
 * the command's LD_PRELOAD, and `UV_USE_IO_URING=0`), and the supervisor
 * around the command. Where no tracer runs, `true` gives an `unsupported`
 * session with the reason, and a mode asked for by name throws. A runner
 * traced by an outer runner traces nothing either way.
 */
export function startTrace(option: TraceOption, privateDir: string): TraceSession {
  // A runner that is a task of a traced runner is itself traced: what its
  // tasks do already reaches the outer trace (the preload library keeps the
  // outer trace file in every child's env, and the outer supervisor's filter
  // covers every descendant). A second supervisor could not listen (the
  // kernel allows one seccomp listener in a process's filter chain), and
  // would only mark the outer trace incomplete.
  // Not a trace file of this process's own servers (a runner may put
  // server.env into process.env), nor one that is gone (a daemon that
  // outlived the traced task that started it). Not an error even where a
  // mode was asked for by name: the task is traced, by the outer runner.
  const outer = process.env['RUNNER_AWARE_TRACE'];
  if (outer && !ownTraceFiles.has(outer) && fs().existsSync(outer)) {
    return unsupported(`this runner is itself traced by an outer runner (${outer}), whose trace records what this task does`);
  }
  const { path } = loadBinding();
  const files = tracerFiles(path);
  if (typeof files === 'string') return unavailable(option, files);
  const mode: TraceMode = option === 'seccomp' ? 'seccomp' : 'preload';
  const file = join(privateDir, 'trace');
  fs().writeFileSync(file, '', { mode: 0o600, flag: 'wx' });
  ownTraceFiles.add(file);
  const env: Record<string, string> = { RUNNER_AWARE_TRACE: file, UV_USE_IO_URING: '0' };
  if (mode === 'preload') env['RUNNER_AWARE_TRACE_PRELOAD'] = files.preload;
  return {
    mode,
    env,
    command: (argv) => {
      if (argv.length === 0) throw new TypeError('runner-aware server.command: the command is empty');
      return [files.supervisor, '--mode', mode, '--', ...argv];
    },
    finish: async () => {
      try {
        const chunks = await loadBinding().binding.readTrace(file, [privateDir]);
        const { head, rest } = openChunks<Omit<Trace, 'mode'>, TraceList>(chunks, 'no trace came back');
        const trace = { mode, ...head };
        for await (const part of rest) {
          if (!('items' in part)) throw new Error(`the trace came back with entries for ${part.field}`);
          const list = trace[part.field];
          for (const item of part.items) list.push(item as string);
        }
        return trace;
      } catch (err) {
        // Whatever the task did is unknown: an incomplete trace, never a lost close().
        return emptyTrace(mode, [`the trace file could not be read: ${(err as Error).message}`]);
      }
    },
  };
}

/** How many modified paths a `modified-input` reason names; the trace has them all. */
const SHOWN_MODIFIED = 5;

/**
 * The paths the trace saw read (or listed) and then written or deleted that
 * no ignored input covers: the run modified its own input. An ignored output
 * does not excuse one: it says the writes there are not outputs, not that
 * what the run read there did not matter.
 */
export function modifiedInputs(reports: Pick<Reports, 'ignoredInputs'>, trace: Trace): string[] {
  return trace.readThenWritten.filter((path) => !isIgnoredInput(reports, path));
}

/**
 * What a trace adds to a run's reasons: a `trace` reason for each cause of a
 * trace that may miss accesses (none for a complete or unsupported one), and
 * one `modified-input` reason naming what the run read and then changed.
 */
export function traceReasons(reports: Pick<Reports, 'ignoredInputs'>, trace: Trace): UncacheableReason[] {
  const reasons: UncacheableReason[] =
    trace.complete || trace.mode === 'unsupported'
      ? []
      : trace.incomplete.map((message) => ({ kind: 'trace' as const, message: `the file-access trace may be incomplete: ${message}` }));
  const modified = modifiedInputs(reports, trace);
  if (modified.length > 0) {
    const more = modified.length > SHOWN_MODIFIED ? `, … (${modified.length} in all)` : '';
    reasons.push({ kind: 'modified-input', message: `the command modified its input: ${modified.slice(0, SHOWN_MODIFIED).join(', ')}${more}` });
  }
  return reasons;
}
