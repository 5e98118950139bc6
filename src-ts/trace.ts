// The runner side of file-access tracing (Linux): where the tracer lives, what
// the child's env and command need, and reading the trace back at close().

import { dirname } from 'node:path';

import { TRACE_FIELDS } from './cache.js';
import { openChunks } from './chunks.js';
import { loadBinding } from './native.js';
import type { Reports, Trace, TraceMode, UncacheableReason } from './types.js';

/** The path lists of a trace. */
type TraceList = (typeof TRACE_FIELDS)[number];

/** What `createServer({ trace })` accepts: `true` is `'preload'`. */
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

function emptyTrace(mode: TraceMode, incomplete: string[]): Trace {
  return { mode, complete: false, incomplete, read: [], found: [], missing: [], listed: [], written: [], deleted: [], readThenWritten: [] };
}

/**
 * Starts a trace for one run in `privateDir` (the core's `TraceSession`):
 * the trace file, the env the supervisor needs (the trace file, the preload
 * library, which it puts in the command's LD_PRELOAD, and
 * `UV_USE_IO_URING=0`), and the supervisor around the command. `true` traces
 * in preload mode where the tracer runs and is `unsupported` (with the
 * reason) elsewhere; `'preload'` or `'seccomp'` must be honoured, or this
 * throws. A runner that is itself traced by an outer runner traces nothing:
 * the outer trace already records what its tasks do.
 */
export function startTrace(option: TraceOption, privateDir: string): TraceSession {
  const { binding, path } = loadBinding();
  const required = option === 'preload' || option === 'seccomp';
  const mode = option === 'seccomp' ? 'seccomp' : 'preload';
  const session = new binding.NativeTraceSession(mode, dirname(path), privateDir, required);
  const traced = session.mode as TraceMode;
  return {
    mode: traced,
    env: session.env,
    command: (argv) => {
      if (argv.length === 0) throw new TypeError('runner-aware server.command: the command is empty');
      return session.command([...argv]);
    },
    finish: async () => {
      try {
        const chunks = await session.finish();
        const { head, rest } = openChunks<Omit<Trace, 'mode'>, TraceList>(chunks, 'no trace came back');
        const trace: Trace = { ...head, mode: traced };
        for await (const part of rest) {
          if (!('items' in part)) throw new Error(`the trace came back with entries for ${part.field}`);
          const list = trace[part.field];
          for (const item of part.items) list.push(item as string);
        }
        return trace;
      } catch (err) {
        // Whatever the task did is unknown: an incomplete trace, never a lost close().
        return emptyTrace(traced, [`the trace file could not be read: ${(err as Error).message}`]);
      }
    },
  };
}

/**
 * What a trace adds to a run's reasons (the core's `rules::trace_reasons`):
 * a `trace` reason for each cause of a trace that may miss accesses (none
 * for a complete or unsupported one), and one `modified-input` reason naming
 * what the run read and then changed.
 */
export function traceReasons(reports: Pick<Reports, 'ignoredInputs'>, trace: Trace): UncacheableReason[] {
  const { mode, complete, incomplete, readThenWritten } = trace;
  return loadBinding().binding.traceReasons([...reports.ignoredInputs], { mode, complete, incomplete, readThenWritten }) as UncacheableReason[];
}
