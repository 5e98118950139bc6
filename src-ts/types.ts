/** Options of `getEnv`, `getEnvs`, `fetchEnv` and `fetchEnvs`. */
export interface EnvOptions {
  /**
   * Whether the answer belongs in the run's cache key. Default `true`. Once any
   * caller asks for a name (or query) tracked, it stays tracked.
   */
  tracked?: boolean;
}

/** An env query: a glob such as `VITE_*`, or `{ prefix }` for a literal prefix. */
export type EnvQuery = string | { prefix: string };

/**
 * How the reports hold env values (`envs` and query `matches`):
 * - `sha256`: the sha256 (hex, of the UTF-8 value) in place of each value,
 *   the digest `envFingerprint` uses; the default, so that reports a runner
 *   stores or prints hold no secret;
 * - `plain`: the values themselves, as the tools got them; only when a runner
 *   asks (`close({ envValues: 'plain' })`).
 */
export type EnvValueEncoding = 'sha256' | 'plain';

/** One env variable a tool asked for by name. */
export interface EnvRecord {
  /**
   * The value served, as the reports' `envValues` says: its sha256 (hex) by
   * default, the value itself in `plain` reports; `null` when the runner's
   * env does not have it.
   */
  value: string | null;
  /** Whether the value belongs in the cache key. */
  tracked: boolean;
}

/** One env query a tool made, with everything it matched. */
export type EnvQueryRecord = ({ glob: string } | { prefix: string }) & {
  /** Whether the match set belongs in the cache key. */
  tracked: boolean;
  /** Every variable that matched, with its value (its sha256 unless the reports are `plain`). */
  matches: Record<string, string>;
};

/**
 * The kind of cause that makes a run not cacheable:
 * - `disable-cache`: a tool called `disableCache`;
 * - `conflicting-value`: one `addValue` name reported with two values;
 * - `channel-error`: a tool (it had the token) broke the protocol, so what it
 *   sent after that was lost;
 * - `version`: a tool speaks no protocol version this runner speaks;
 * - `unsupported`: a tool said something this runner does not know;
 * - `lost`: a tool could not deliver a report or get an answer;
 * - `cap`: the run's reports exceeded a cap and recording stopped;
 * - `panic`: the runner failed internally while handling a tool;
 * - `still-connected`: a tool was still connected when the close grace period ended;
 * - `late-client`: a process of the task connected after its command exited;
 * - `trace`: the runner asked for a file-access trace and it may miss accesses;
 * - `modified-input`: the trace saw the task read a path and then write or
 *   delete it, and no ignored input covers it: what it read is gone;
 * - `exit`: the command failed or was killed (added by `verdict()`, never by the server).
 */
export type UncacheableKind =
  | 'disable-cache'
  | 'conflicting-value'
  | 'channel-error'
  | 'version'
  | 'unsupported'
  | 'lost'
  | 'cap'
  | 'panic'
  | 'still-connected'
  | 'late-client'
  | 'trace'
  | 'modified-input'
  | 'exit';

/** One reason a run may not be cached. */
export interface UncacheableReason {
  /** The kind of cause. */
  kind: UncacheableKind;
  /** What happened, in words a runner can show. */
  message: string;
  /** The process it concerns, when known. */
  pid?: number;
  /**
   * For `disable-cache`: the code that called it, when the tool said:
   * `"<package> … <function>"` for code under `node_modules`
   * (`"vite … _createServer"`), `"<file> <function>"` for other code.
   */
  caller?: string;
  /** For `disable-cache`: the calling process's command line, when the tool said. */
  command?: string;
}

/** A protocol violation seen on one connection; it ended that connection. */
export interface ReportedError {
  /** What went wrong. */
  message: string;
  /** The peer's process id, when its handshake told it. */
  pid?: number;
}

/**
 * What the tools of one task run reported, merged over every process and
 * thread. Plain data: sorted, deduped and JSON-serialisable.
 */
export interface Reports {
  /** Reads under these absolute paths are not inputs. */
  ignoredInputs: string[];
  /** Writes under these absolute paths are not outputs. */
  ignoredOutputs: string[];
  /** Absolute paths the tools declared as inputs. */
  inputs: string[];
  /** Absolute paths the tools declared as outputs. */
  outputs: string[];
  /** Named values that belong in the cache key. */
  values: Record<string, string>;
  /**
   * How `envs` and query `matches` hold values: `sha256` digests (what
   * `close()` returns by default) or `plain` text. Absent means `plain`
   * (reports stored before this field, or a Rust runner's).
   */
  envValues?: EnvValueEncoding;
  /** Every env variable asked for by name. */
  envs: Record<string, EnvRecord>;
  /** Every env query, sorted by query. */
  envQueries: EnvQueryRecord[];
  /** The runner's never-tracked name globs. */
  untrackedEnv: string[];
  /**
   * The verdict: whether a runner may cache this run. `false` exactly when
   * `notCacheable` has an entry; every way a tool's words can be lost lands
   * there, so a runner checks this one field (or `verdict()`, which also
   * weighs the command's exit).
   */
  cacheable: boolean;
  /** Every reason the run may not be cached, sorted by kind and message. */
  notCacheable: UncacheableReason[];
  /**
   * Protocol violations, each with a message. A peer without the token lands
   * here only: it is not one of the task's processes.
   */
  errors: ReportedError[];
  /** Connections that completed the handshake. */
  clients: number;
  /** Connections still open when the close grace period ran out. */
  clientsStillConnected: number;
  /** Env round trips served (answers from a tool's own cache are not counted). */
  envRequests: number;
  /**
   * What every process of the task did to files, when the runner asked for
   * it (`createServer({ trace: true })`); absent otherwise.
   */
  trace?: Trace;
}

/**
 * How a task was traced: `preload` (a preload library records the calls of
 * dynamically linked programs, and the seccomp supervisor what it cannot
 * see), `seccomp` (the supervisor sees every file system call of the task),
 * or `unsupported` (not on this platform: nothing was traced).
 */
export type TraceMode = 'preload' | 'seccomp' | 'unsupported';

/**
 * What every process of a traced task touched: absolute paths, lexically
 * clean (symlinks not resolved), deduplicated and sorted. The runner's
 * private directory and the pseudo-filesystems (`/proc`, `/sys`, `/dev`) are
 * left out.
 */
export interface Trace {
  /** How the task was traced. */
  mode: TraceMode;
  /**
   * Whether the trace saw every file access of the task. When `false`,
   * `incomplete` says why, and the run is not cacheable (a `trace` reason),
   * except for `unsupported`, where nothing was traced and a runner must
   * fall back to declared inputs.
   */
  complete: boolean;
  /** Why the trace may miss accesses; empty when `complete`. */
  incomplete: string[];
  /** Files opened for reading, and programs executed. */
  read: string[];
  /** Paths looked up (stat, access, readlink) that existed. */
  found: string[];
  /** Paths looked up or opened that did not exist. */
  missing: string[];
  /** Directories opened for listing. */
  listed: string[];
  /** Paths opened for writing, created, truncated, or renamed or linked to. */
  written: string[];
  /** Paths unlinked, removed or renamed away. */
  deleted: string[];
  /**
   * Paths whose contents or listing were read before they were first
   * written or deleted: the task modified something it had read.
   */
  readThenWritten: string[];
}
