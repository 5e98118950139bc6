// The tool side. Pure JavaScript until a call needs the runner: it then talks
// through the addon the runner handed out in `VP_RUN_NODE_CLIENT_PATH`, so
// client and server come from the same binary, or, under a runner-aware
// runner that handed out none it could load, through this package's own.

import { findOwnAddon } from './addon-path.js';
import { globError, MAX_GLOB_BYTES } from './env-glob.js';
import type { EnvOptions, EnvQuery } from './types.js';

/**
 * The methods a runner's addon may have. `@voidzero-dev/vite-task-client`
 * runners (`vp run`) provide the first five; runner-aware's addon all of them.
 */
interface RunnerAddon {
  ignoreInput(path: string): void;
  ignoreOutput(path: string): void;
  disableCache(reason?: string): void;
  getEnv(name: string, options?: EnvOptions): string | undefined;
  getEnvs(query: EnvQuery, options?: EnvOptions): Record<string, string>;
  addInput?(path: string): void;
  addOutput?(path: string): void;
  addValue?(name: string, value: string): void;
  isConnected?(): boolean;
}

let addon: RunnerAddon | null | undefined;

// Node's builtins as ES modules cost a fresh tool ~0.1 ms each to import, and
// a tool outside a runner needs none: they load on first use, from Node's own
// registry (`process.getBuiltinModule`, Node 20.16 and 22.3).
function nodePath(): typeof import('node:path') {
  return process.getBuiltinModule('node:path');
}

/**
 * The runner's addon module. A `.node` file is opened with `process.dlopen`:
 * the first `require` from an ES module costs a fresh tool ~0.7 ms more
 * (`createRequire` and the CommonJS resolver warming up) than the dlopen itself.
 */
function loadAddon(addonPath: string): { load?: () => RunnerAddon } {
  if (!addonPath.endsWith('.node')) {
    return process.getBuiltinModule('node:module').createRequire(addonPath)(addonPath) as { load?: () => RunnerAddon };
  }
  const module = { exports: {} as { load?: () => RunnerAddon } };
  process.dlopen(module, addonPath);
  return module.exports;
}

/** The client of the addon at `addonPath`; throws why there is none. */
function clientOf(addonPath: string): RunnerAddon {
  const loaded = loadAddon(addonPath);
  if (typeof loaded.load !== 'function') throw new Error('it exports no load()');
  const client = loaded.load();
  if (client === null || typeof client !== 'object') throw new Error('its load() returned no client');
  return client;
}

function debugging(): boolean {
  return process.env['RUNNER_AWARE_DEBUG'] !== undefined;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The client this process talks through, loaded on first use: the addon the
 * runner handed out in `VP_RUN_NODE_CLIENT_PATH`, so client and server come
 * from the same binary. A runner-aware runner's endpoint in the env with no
 * such addon that loads (a Rust runner without `client_path`, a path to a
 * file that is not an addon for this platform) means this package's own addon
 * instead; the handshake settles the protocol version between the two. When
 * no client loads at all, a lost marker tells the runner its run is not
 * cacheable: a tool is heard, or the run says it was not.
 */
function runner(): RunnerAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  const env = process.env;
  const addonPath = env['VP_RUN_NODE_CLIENT_PATH'];
  let runnerFailure: string | undefined;
  if (addonPath) {
    try {
      addon = clientOf(addonPath);
      return addon;
    } catch (err) {
      runnerFailure = `cannot load the runner's addon ${addonPath}: ${message(err)}`;
    }
  }
  const socket = env['RUNNER_AWARE_SOCKET'];
  if (!socket || env['RUNNER_AWARE_TOKEN'] === undefined) {
    // No runner-aware runner to hear this process or to tell: every call stays a no-op.
    if (runnerFailure !== undefined && debugging()) process.stderr.write(`runner-aware: ${runnerFailure}\n`);
    return addon;
  }
  const handedOut = runnerFailure ?? 'the runner handed out no addon (VP_RUN_NODE_CLIENT_PATH is unset)';
  let ownFailure: string;
  const own = findOwnAddon();
  if (own.path === undefined) {
    ownFailure =
      `this package has no addon for ${own.triple} ` +
      `(neither ${nodePath().join(own.root, `runner-aware.${own.triple}.node`)} nor the package ${own.packageName} is installed)`;
  } else {
    try {
      addon = clientOf(own.path);
      if (debugging()) process.stderr.write(`runner-aware: ${handedOut}; talking through this package's own addon ${own.path}\n`);
      return addon;
    } catch (err) {
      ownFailure = `cannot load this package's own addon ${own.path}: ${message(err)}`;
    }
  }
  reportUnheard(socket, `${handedOut}; ${ownFailure}`);
  return addon;
}

/** Most characters of the command line and of the cause in a lost marker, which the runner reads up to 4 KiB of. */
const MARKER_COMMAND_CHARS = 200;
const MARKER_CAUSE_CHARS = 3000;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** This process's command line as a person would type it: the script relative to the cwd when beneath it. */
function commandLine(): string {
  const { isAbsolute, relative } = nodePath();
  const [, script, ...args] = process.argv;
  const words = [process.argv0, ...process.execArgv];
  if (script !== undefined) {
    let shown = script;
    try {
      const beneath = relative(process.cwd(), script);
      if (beneath !== '' && !beneath.startsWith('..') && !isAbsolute(beneath)) shown = beneath;
    } catch {
      // A deleted cwd: the script as Node resolved it.
    }
    words.push(shown);
  }
  words.push(...args);
  return words.map((word) => (word === '' || /\s/.test(word) ? `'${word}'` : word)).join(' ');
}

/**
 * No client could be loaded, so the runner would not hear this process: a
 * lost marker in the runner's private directory (`RUNNER_AWARE_DIR`, else
 * the socket's directory; see docs/protocol.md) makes the run not cacheable,
 * with the reason. Best effort, as for the Rust client: with the directory
 * gone, the runner is gone too.
 */
function reportUnheard(socket: string, cause: string): void {
  const { dirname, join } = nodePath();
  const pid = process.pid;
  const reason =
    `a tool (pid ${pid}: ${clip(commandLine(), MARKER_COMMAND_CHARS)}) could not load a runner-aware client: ` +
    clip(cause, MARKER_CAUSE_CHARS);
  const dir = process.env['RUNNER_AWARE_DIR'] || (process.platform === 'win32' ? '' : dirname(socket));
  let outcome: string;
  if (dir === '') {
    outcome = 'and there is no RUNNER_AWARE_DIR to leave a lost marker in';
  } else {
    // Nanoseconds since the epoch, as the protocol names markers; the sub-millisecond
    // part from the monotonic clock keeps two threads' markers apart.
    const nanos = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    const marker = join(dir, `lost-${pid}-${nanos}.json`);
    try {
      process.getBuiltinModule('node:fs').writeFileSync(marker, JSON.stringify({ pid, reason }), { flag: 'wx', mode: 0o600 });
      outcome = `left ${marker}: the run is not cacheable`;
    } catch (err) {
      outcome = `and could not leave a lost marker in ${dir}: ${message(err)}`;
    }
  }
  if (debugging()) process.stderr.write(`runner-aware: the runner does not hear this process: ${reason}; ${outcome}\n`);
}

function checkString(value: unknown, what: string, fn: string): asserts value is string {
  if (typeof value !== 'string') {
    throw new TypeError(`runner-aware ${fn}: ${what} must be a string, got ${typeof value}`);
  }
}

function checkName(value: unknown, fn: string): asserts value is string {
  checkString(value, 'name', fn);
  if (value === '') throw new TypeError(`runner-aware ${fn}: name must not be empty`);
}

/** `value` as a path: a string, or a `file:` URL (`new URL(import.meta.url)`) as its path. */
function checkedPath(value: unknown, fn: string): string {
  if (value instanceof URL) {
    if (value.protocol !== 'file:') throw new TypeError(`runner-aware ${fn}: path must be a string or a file: URL, got a ${value.protocol} URL`);
    value = process.getBuiltinModule('node:url').fileURLToPath(value);
  }
  if (typeof value !== 'string') {
    throw new TypeError(`runner-aware ${fn}: path must be a string or a file: URL, got ${value === null ? 'null' : typeof value}`);
  }
  // An empty path would resolve to the whole cwd; a NUL byte names no file.
  if (value === '') throw new TypeError(`runner-aware ${fn}: path must not be empty`);
  if (value.includes('\0')) throw new TypeError(`runner-aware ${fn}: path must not contain a NUL byte`);
  return value;
}

// The last glob that passed the check: a tool asking the same query again
// skips it. It starts as the empty glob, which is valid, so that no argument
// (`undefined` included) skips the check unseen.
let checkedGlob = '';

/** A `{ prefix }` query, or a glob the runner's addon compiles; the same `TypeError` as the addon's otherwise. */
function checkQuery(query: unknown, fn: string): asserts query is EnvQuery {
  if (typeof query !== 'string') {
    if (query === null || typeof query !== 'object' || typeof (query as { prefix?: unknown }).prefix !== 'string') {
      throw new TypeError(`runner-aware ${fn}: query must be a glob string or { prefix: string }`);
    }
    return;
  }
  const reason = globError(query);
  if (reason === undefined) {
    checkedGlob = query;
    return;
  }
  // The glob itself is left out of a message about its length.
  if (reason.startsWith('glob of ')) throw new TypeError(`runner-aware ${fn}: ${reason}`);
  throw new TypeError(`runner-aware ${fn}: invalid env glob ${JSON.stringify(query)}: ${reason}`);
}

/**
 * `options` checked as the addon checks them (`undefined`, `null`, or an
 * object whose `tracked` is a boolean, `undefined` or `null`), and passed on
 * only when they say something: `undefined` when `tracked` is unset.
 */
function envOptions(options: unknown, fn: string): EnvOptions | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') throw new TypeError(`runner-aware ${fn}: options must be an object`);
  const tracked = (options as { tracked?: unknown }).tracked;
  if (tracked === undefined || tracked === null) return undefined;
  if (typeof tracked !== 'boolean') throw new TypeError(`runner-aware ${fn}: options.tracked must be a boolean`);
  return options as EnvOptions;
}

// The exported calls check their arguments inline and read `addon` directly:
// outside a runner a tool's first thousand calls run in V8's interpreter,
// where every extra call frame costs about as much as the call's own work.

function reportPath(method: 'ignoreInput' | 'ignoreOutput' | 'addInput' | 'addOutput', path: string | URL): void {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) path = checkedPath(path, method);
  const client = addon === undefined ? runner() : addon;
  if (client === null) return;
  const target = client[method];
  if (target) target.call(client, absolute(path));
}

/**
 * `path` made absolute against the cwd. A deleted cwd makes `resolve` throw
 * (ENOENT from `uv_cwd`); the path then resolves against the root, as the Rust
 * client does, rather than throw into the tool. Only that case pays for the catch.
 */
function absolute(path: string): string {
  const { resolve } = nodePath();
  try {
    return resolve(path);
  } catch {
    return resolve('/', path);
  }
}

/** Reads under `path` (a file or directory, relative to the cwd, or a `file:` URL) are not inputs of this run. */
export function ignoreInput(path: string | URL): void {
  reportPath('ignoreInput', path);
}

/** Writes under `path` (a file or directory, relative to the cwd, or a `file:` URL) are not outputs of this run. */
export function ignoreOutput(path: string | URL): void {
  reportPath('ignoreOutput', path);
}

/** `path` (relative to the cwd, or a `file:` URL) is a real input of this run, whether or not the runner saw it read. */
export function addInput(path: string | URL): void {
  reportPath('addInput', path);
}

/** `path` (relative to the cwd, or a `file:` URL) is a real output of this run, to be archived with it. */
export function addOutput(path: string | URL): void {
  reportPath('addOutput', path);
}

/** A named string that belongs in this run's cache key (a config hash, a tool version). */
export function addValue(name: string, value: string): void {
  if (typeof name !== 'string' || name === '') checkName(name, 'addValue');
  if (typeof value !== 'string') checkString(value, 'value', 'addValue');
  const client = addon === undefined ? runner() : addon;
  if (client === null) return;
  client.addValue?.(name, value);
}

/** This run must not be cached (a dev server, a watch mode, a non-deterministic step). */
export function disableCache(reason?: string): void {
  if (reason !== undefined && typeof reason !== 'string') checkString(reason, 'reason', 'disableCache');
  const client = addon === undefined ? runner() : addon;
  if (client === null) return;
  if (reason === undefined) client.disableCache();
  else client.disableCache(reason);
}

/**
 * The runner's value of env variable `name`, or `undefined`. Tracked by default:
 * a change to it invalidates this run's cache entry. Does not touch `process.env`.
 */
export function getEnv(name: string, options?: EnvOptions): string | undefined {
  if (typeof name !== 'string' || name === '') checkName(name, 'getEnv');
  if (options !== undefined) options = envOptions(options, 'getEnv');
  const client = addon === undefined ? runner() : addon;
  if (client === null) return undefined;
  return client.getEnv(name, options) ?? undefined;
}

/**
 * Every runner variable matching a glob (`'VITE_*'`) or a literal `{ prefix }`.
 * Tracked by default: adding, removing or changing a match invalidates the run.
 * Does not touch `process.env`.
 */
export function getEnvs(query: EnvQuery, options?: EnvOptions): Record<string, string> {
  if (query !== checkedGlob) {
    // Only `[`, `{`, `}` and `\` can make a glob invalid, or its length: most
    // globs (`VITE_*`) pass here, without the parser, which a fresh tool
    // would otherwise compile (~40 µs) on its first getEnvs.
    const plain =
      typeof query === 'string' &&
      query.length <= MAX_GLOB_BYTES / 3 &&
      !query.includes('[') &&
      !query.includes('{') &&
      !query.includes('}') &&
      !query.includes('\\');
    if (plain) checkedGlob = query;
    else checkQuery(query, 'getEnvs');
  }
  if (options !== undefined) options = envOptions(options, 'getEnvs');
  const client = addon === undefined ? runner() : addon;
  if (client === null) return {};
  return { ...client.getEnvs(query, options) };
}

/** `getEnv`, then sets `process.env[name]` to the runner's value where it is not already set. */
export function fetchEnv(name: string, options?: EnvOptions): string | undefined {
  if (typeof name !== 'string' || name === '') checkName(name, 'fetchEnv');
  if (options !== undefined) options = envOptions(options, 'fetchEnv');
  const value = getEnv(name, options);
  if (value !== undefined && process.env[name] === undefined) process.env[name] = value;
  return value;
}

/** `getEnvs`, then sets each match in `process.env` where it is not already set. */
export function fetchEnvs(query: EnvQuery, options?: EnvOptions): Record<string, string> {
  if (query !== checkedGlob) checkQuery(query, 'fetchEnvs');
  if (options !== undefined) options = envOptions(options, 'fetchEnvs');
  const matches = getEnvs(query, options);
  for (const [name, value] of Object.entries(matches)) {
    if (process.env[name] === undefined) process.env[name] = value;
  }
  return matches;
}

/** Whether a runner is listening to this process. */
export function isConnected(): boolean {
  const client = runner();
  if (!client) return false;
  return client.isConnected ? client.isConnected() : true;
}
