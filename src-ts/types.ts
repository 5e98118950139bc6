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

/** One env variable a tool asked for by name. */
export interface EnvRecord {
  /** The value served; `null` when the runner's env does not have it. */
  value: string | null;
  /** Whether the value belongs in the cache key. */
  tracked: boolean;
}

/** One env query a tool made, with everything it matched. */
export type EnvQueryRecord = ({ glob: string } | { prefix: string }) & {
  /** Whether the match set belongs in the cache key. */
  tracked: boolean;
  /** Every variable that matched, with its value. */
  matches: Record<string, string>;
};

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
  /** Every env variable asked for by name. */
  envs: Record<string, EnvRecord>;
  /** Every env query, sorted by query. */
  envQueries: EnvQueryRecord[];
  /** The runner's never-tracked name globs. */
  untrackedEnv: string[];
  /** Whether any tool asked not to cache this run. */
  cacheDisabled: boolean;
  /** The reasons given, sorted and deduped. */
  cacheDisabledReasons: string[];
  /** Protocol violations, each with a message. */
  errors: ReportedError[];
  /** Connections that completed the handshake. */
  clients: number;
  /** Connections still open when the close grace period ran out. */
  clientsStillConnected: number;
  /** Env round trips served (answers from a tool's own cache are not counted). */
  envRequests: number;
}
