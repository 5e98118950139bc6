// The runner side: one server per task run. Loads the addon on first use.

import { createRequire } from 'node:module';

import { loadBinding } from './native.js';
import type { Reports } from './types.js';

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
}

/** A server for one task run. */
export interface Server {
  /** Merge into the child's environment; every process that inherits it can report. */
  readonly env: Readonly<Record<string, string>>;
  /** The socket the server listens on. */
  readonly socketPath: string;
  /** The reports so far, without closing. */
  snapshot(): Reports;
  /**
   * Stops accepting, reads everything the tools sent, waits at most
   * `closeTimeoutMs` for connections still open, and resolves with the reports.
   */
  close(): Promise<Reports>;
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
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function checkOptions(options: ServerOptions): void {
  const { closeTimeoutMs, untrackedEnv, env } = options;
  if (closeTimeoutMs !== undefined && !(Number.isInteger(closeTimeoutMs) && closeTimeoutMs >= 0 && closeTimeoutMs <= 0xffffffff)) {
    throw new TypeError(`runner-aware createServer: closeTimeoutMs must be a whole number of milliseconds, got ${closeTimeoutMs}`);
  }
  if (untrackedEnv !== undefined && !(Array.isArray(untrackedEnv) && untrackedEnv.every((g) => typeof g === 'string'))) {
    throw new TypeError('runner-aware createServer: untrackedEnv must be an array of strings');
  }
  if (env !== undefined && (env === null || typeof env !== 'object')) {
    throw new TypeError('runner-aware createServer: env must be an object of strings');
  }
}

/** Starts a server for one task run. Put `server.env` in the child's env; call `close()` after it exits. */
export async function createServer(options: ServerOptions = {}): Promise<Server> {
  checkOptions(options);
  const { binding, path } = loadBinding();
  const native = binding.createServer({
    ...(options.env || !isMainThread() ? { env: definedEntries(options.env ?? process.env) } : {}),
    ...(options.untrackedEnv ? { untrackedEnv: options.untrackedEnv } : {}),
    ...(options.closeTimeoutMs !== undefined ? { closeTimeoutMs: options.closeTimeoutMs } : {}),
    clientPath: path,
  });
  const env = Object.freeze(native.env);
  const socketPath = native.socketPath;
  return {
    env,
    socketPath,
    snapshot: () => JSON.parse(native.snapshot()) as Reports,
    close: async () => JSON.parse(await native.close()) as Reports,
  };
}
