// The cache store: look up → run → verdict → store; a hit restores. What
// keeps a cache safe (self-verifying entries, the archive, a restore that
// never leaves the root nor follows a link) is the Rust core's
// (`runner_aware::cache`); this module wraps it off the event loop and adds
// a Turborepo remote cache over HTTP.

import { resolve } from 'node:path';

import { checkEnv as checkEnvMap, checkOptions, checkString, refuse, toPath, toPaths, typeName } from './checks.js';
import { loadBinding } from './native.js';
import { RemoteCache, type RemoteCacheOptions } from './remote.js';
import type { CommandOutcome } from './server.js';
import type { Reports, UncacheableReason } from './types.js';

export type { RemoteCacheOptions } from './remote.js';

/** How a cache is set up. */
export interface CacheOptions {
  /** Where entries live. Created when the first entry is stored. */
  dir: string | URL;
  /** The checkout entries restore into. Default `process.cwd()`. */
  root?: string | URL;
  /** Also share entries through a Turborepo remote cache. */
  remote?: RemoteCacheOptions | null;
  /**
   * Where warnings go (a remote that is down, an entry refused, a cache
   * directory that cannot be written). Default: stderr.
   */
  onWarning?: (message: string) => void;
}

/** A stored entry, as a look-up found it. */
export interface CacheEntry {
  /** The entry id: the digest of everything it rests on. */
  readonly id: string;
  /** When it was stored (ms since the epoch). */
  readonly createdAt: number;
  /** Its inputs, relative to the root where inside it. */
  readonly inputs: readonly string[];
  /** Its outputs, relative to the root. */
  readonly outputs: readonly string[];
  /** Tracked env names and queries it rests on (`VITE_*`, `VITE_ (prefix)`). */
  readonly env: readonly string[];
  /** `addValue` names it rests on. */
  readonly values: readonly string[];
  /** What the runner's user overruled to store it. */
  readonly overruled: readonly string[];
  /** Where the look-up found it. */
  readonly source: 'local' | 'remote';
  /** What it is keyed on: its inputs (traced or declared), or the repository's content. */
  readonly keyedOn: 'inputs' | 'repository';
  /** Its manifest, as the core checks it. */
  readonly manifest: string;
}

/** What a look-up found. */
export type LookupResult = { hit: true; entry: CacheEntry } | { hit: false; reasons: string[] };

/** A finished run, for {@link Cache.store}. */
export interface CacheRun {
  /** What `server.close()` returned. */
  reports: Reports;
  /** How the command ended: a failed or killed command is never stored. */
  outcome: CommandOutcome;
  /** When the command started (`Date.now()` before spawning): an input changed since is not stored. */
  startedAt: number;
  /** What the command printed, replayed on a hit. */
  stdout?: Uint8Array | string;
  /** What the command printed on stderr, replayed on a hit. */
  stderr?: Uint8Array | string;
  /**
   * The repository's content before the run (`Cache.snapshot()`): where the
   * trace is off, unsupported or incomplete and `inputs` names nothing, the
   * run is keyed on it, and what the run created becomes its output.
   */
  before?: RepoSnapshot;
  /** Files the runner's user named as inputs (absolute, or relative to the root), hashed as content. */
  inputs?: readonly (string | URL)[];
  /** Files or directories the runner's user named as outputs. */
  outputs?: readonly (string | URL)[];
  /** `verdict()`'s option: callers whose `disableCache` the user overrules. */
  cacheableDespite?: readonly string[];
}

/** What storing a run did. */
export type StoreResult =
  | {
      stored: true;
      entry: CacheEntry;
      overruled: UncacheableReason[];
      /** What keys the entry: the trace's inputs, the declared ones, or the repository's content. */
      key: 'trace' | 'declared' | 'repository';
    }
  | { stored: false; reasons: string[] };

/**
 * The repository's content at one moment (`Cache.snapshot()`), for a run
 * that may have no complete trace: where none exists, `store` keys the run on
 * it instead of refusing. `available` is false outside a git repository.
 */
export type RepoSnapshot = { available: true; files: number; readonly json: string } | { available: false; reason: string };

/** One stored entry and whether it holds now. */
export interface CacheEntryState {
  /** The entry. */
  entry: CacheEntry;
  /** Why it does not hold (empty: it does). */
  reasons: string[];
}

/** A task cache for one checkout. */
export interface Cache {
  /** The entries' directory. */
  readonly dir: string;
  /** The checkout. */
  readonly root: string;
  /**
   * The newest entry of `task` whose inputs and env still hold, locally,
   * then in the remote cache (an entry found there is downloaded, checked
   * whole and kept locally). `env` is what the runner would give
   * `createServer` (default `process.env`).
   */
  lookup(task: string, options?: { env?: Record<string, string | undefined> }): Promise<LookupResult>;
  /** Restores a hit's outputs; resolves with what the command printed, to replay. */
  restore(entry: CacheEntry): Promise<{ stdout: Buffer; stderr: Buffer }>;
  /**
   * Stores a run when its verdict is cacheable and something keys it (a
   * traced input, a declared one, or `run.inputs`), then uploads it to the
   * remote cache. Never throws for the run's or the cache's sake: what
   * kept it from being stored is in `reasons`, and a cache that could not
   * be written (a full disk, a directory without write permission) is also
   * a warning (`onWarning`), so a runner keeps the command's exit code.
   */
  store(task: string, run: CacheRun): Promise<StoreResult>;
  /**
   * The repository's content now (git: tracked files by their object ids,
   * untracked and ignored files hashed; not `.git`, `node_modules` nor the
   * cache's own directory): take it before a run and give it to `store`.
   */
  snapshot(): Promise<RepoSnapshot>;
  /** The task's local entries, newest first, with why each does not hold now. */
  entries(task: string, options?: { env?: Record<string, string | undefined> }): Promise<CacheEntryState[]>;
  /** Removes the task's local entries; returns how many there were. */
  clean(task: string): number;
  /** Files hashed so far by look-ups and stores (the rest came from the stat cache). */
  readonly hashed: number;
  /** Saves the stat cache, so the next process re-hashes only what changed. */
  close(): void;
}

interface Manifest {
  id: string;
  createdAt: number;
  key: {
    inputs: Record<string, unknown>;
    env: { envs: Record<string, unknown>; envQueries: ({ glob: string } | { prefix: string })[]; values: Record<string, unknown> };
    repo?: { files: Record<string, string> };
  };
  outputs: { path: string }[];
  overruled?: string[];
}

/** What the core's look-up says of an entry besides its manifest (`CacheLookup.summary`). */
interface EntrySummary {
  id: string;
  createdAt: number;
  inputs: string[];
  outputs: string[];
  envs: string[];
  envQueries: Manifest['key']['env']['envQueries'];
  values: string[];
  overruled?: string[];
  repo: boolean;
}

/** The entry of a manifest (JSON), from the core's summary of it where there is one: a repository key's manifest is large. */
function entryOf(json: string, source: 'local' | 'remote', summaryJson?: string | null): CacheEntry {
  let summary: EntrySummary;
  if (summaryJson) {
    summary = JSON.parse(summaryJson) as EntrySummary;
  } else {
    const manifest = JSON.parse(json) as Manifest;
    summary = {
      id: manifest.id,
      createdAt: manifest.createdAt,
      inputs: Object.keys(manifest.key.inputs),
      outputs: manifest.outputs.map((output) => output.path),
      envs: Object.keys(manifest.key.env.envs),
      envQueries: manifest.key.env.envQueries,
      values: Object.keys(manifest.key.env.values),
      ...(manifest.overruled ? { overruled: manifest.overruled } : {}),
      repo: Boolean(manifest.key.repo),
    };
  }
  return Object.freeze({
    id: summary.id,
    createdAt: summary.createdAt,
    inputs: summary.inputs,
    outputs: summary.outputs,
    env: [...summary.envs, ...summary.envQueries.map((q) => ('glob' in q ? q.glob : `${q.prefix} (prefix)`))],
    values: summary.values,
    overruled: summary.overruled ?? [],
    source,
    keyedOn: summary.repo ? 'repository' : 'inputs',
    manifest: json,
  });
}

function checkEnv(options: { env?: Record<string, string | undefined> } | undefined, call: string): Record<string, string | undefined> {
  const { env } = checkOptions(options, ['env'], call);
  if (env === undefined) return process.env;
  checkEnvMap(env, 'options.env', call);
  return env;
}

/** Every option of `openCache`, and of its `remote`. */
const CACHE_OPTIONS = ['dir', 'root', 'remote', 'onWarning'] as const;
const REMOTE_OPTIONS = ['url', 'team', 'token', 'signatureKey', 'timeoutMs', 'maxArtifactBytes'] as const;

/** Every field of a {@link CacheRun}. */
const CACHE_RUN_FIELDS = ['reports', 'outcome', 'startedAt', 'stdout', 'stderr', 'before', 'inputs', 'outputs', 'cacheableDespite'] as const;

/** A run as the store's body takes it: `inputs` and `outputs` as paths. */
type CheckedRun = Omit<CacheRun, 'inputs' | 'outputs'> & { inputs?: readonly string[]; outputs?: readonly string[] };

/** A cache whose `store` takes checked runs; {@link checkedStore} makes it a {@link Cache}. */
type UncheckedCache = Omit<Cache, 'store'> & { store(task: string, run: CheckedRun): Promise<StoreResult> };

/** `run` with no field it does not know, and its `inputs` and `outputs` as paths (`file:` URLs made paths). */
function checkedRun(run: CacheRun): CheckedRun {
  // Not a run at all: the store's own check says what one is.
  if (run === null || typeof run !== 'object') return run as CheckedRun;
  const { inputs, outputs, ...rest } = checkOptions(run, CACHE_RUN_FIELDS, 'Cache.store', 'run');
  return {
    ...rest,
    ...(inputs === undefined ? {} : { inputs: toPaths(inputs, 'run.inputs', 'Cache.store') }),
    ...(outputs === undefined ? {} : { outputs: toPaths(outputs, 'run.outputs', 'Cache.store') }),
  };
}

/**
 * `cache` with a `store` that checks the run, and that resolves when the
 * cache cannot take it (a cache directory that cannot be written, a full
 * disk): not stored, with the reason, and a warning. The run was fine; a
 * runner keeps its exit code. A bad argument still throws.
 */
function checkedStore(cache: UncheckedCache, warn: (message: string) => void): Cache {
  const store = cache.store.bind(cache);
  return Object.assign(cache, {
    async store(task: string, run: CacheRun): Promise<StoreResult> {
      const checked = checkedRun(run);
      try {
        return await store(task, checked);
      } catch (err) {
        if (err instanceof TypeError) throw err;
        const reason = `the cache could not store the run: ${(err as Error).message}`;
        warn(reason);
        return { stored: false, reasons: [reason] };
      }
    },
  });
}

function checkTask(task: unknown, call: string): asserts task is string {
  if (typeof task !== 'string' || task === '') throw new TypeError(`runner-aware ${call}: the task key must be a non-empty string`);
}

/**
 * The most bytes an entry's archive can take: its members as the manifest
 * sizes them, each with a tar header and padding, even if zstd saved
 * nothing. A download past it is refused before it is held.
 */
function archiveBound(json: string): number {
  const manifest = JSON.parse(json) as { stdout: { size: number }; stderr: { size: number }; outputs: { size?: number }[] };
  const members = manifest.outputs.length + 3;
  const bytes = manifest.outputs.reduce((sum, output) => sum + (output.size ?? 0), 0) + manifest.stdout.size + manifest.stderr.size + json.length;
  return bytes + members * 1024 + (64 << 10);
}

/** Opens a task cache in `options.dir` for the checkout at `options.root`. */
export function openCache(options: CacheOptions): Cache {
  if (checkOptions(options, CACHE_OPTIONS, 'openCache').dir === undefined) refuse('openCache', 'options.dir must name the cache directory');
  if (options.remote) checkOptions(options.remote, REMOTE_OPTIONS, 'openCache', 'remote');
  if (options.onWarning !== undefined && typeof options.onWarning !== 'function') refuse('openCache', `onWarning must be a function, got ${typeName(options.onWarning)}`);
  const root = resolve(options.root === undefined ? process.cwd() : toPath(options.root, 'options.root', 'openCache'));
  const dir = resolve(toPath(options.dir, 'options.dir', 'openCache'));
  const warn = options.onWarning ?? ((message: string) => process.stderr.write(`runner-aware: warning: ${message}\n`));
  const native = new (loadBinding().binding.NativeCacheStore)(dir, root);
  const remote = options.remote ? new RemoteCache(options.remote, warn) : null;

  async function lookupRemote(task: string, env: Record<string, string | undefined>, reasons: string[]): Promise<LookupResult> {
    if (!remote) return { hit: false, reasons };
    // A miss is explained by the closest entry, local or remote.
    let closest: string[] | null = reasons.length === 1 && reasons[0] === 'no entry' ? null : reasons;
    for (const manifest of await remote.index(task)) {
      const stale = await native.staleReasons(manifest, env).catch((err: Error) => [`remote entry refused: ${err.message}`]);
      if (stale.length > 0) {
        if (!closest || stale.length < closest.length) closest = stale;
        continue;
      }
      const entry = entryOf(manifest, 'remote');
      const bytes = await remote.download(entry.id, archiveBound(manifest));
      if (!bytes) continue;
      try {
        await native.import(manifest, bytes);
        return { hit: true, entry };
      } catch (err) {
        warn(`remote entry ${entry.id} refused: ${(err as Error).message}`);
      }
    }
    return { hit: false, reasons: closest ?? reasons };
  }

  const cache: UncheckedCache = {
    dir,
    root,
    async lookup(task, lookupOptions = {}) {
      checkTask(task, 'Cache.lookup');
      const env = checkEnv(lookupOptions, 'Cache.lookup');
      const found = await native.lookup(task, env);
      if (found.hit !== undefined && found.hit !== null) return { hit: true, entry: entryOf(found.hit, 'local', found.summary) };
      return lookupRemote(task, env, found.reasons);
    },
    async restore(entry) {
      if (!entry || typeof entry.manifest !== 'string') throw new TypeError('runner-aware Cache.restore: expected an entry from Cache.lookup');
      const replay = await native.restore(entry.manifest);
      return { stdout: replay.stdout, stderr: replay.stderr };
    },
    async store(task, run) {
      checkTask(task, 'Cache.store');
      if (!run || typeof run !== 'object' || !run.reports || typeof run.startedAt !== 'number') {
        throw new TypeError('runner-aware Cache.store: expected { reports, outcome, startedAt, stdout?, stderr? }');
      }
      const { reports } = run;
      // The rules are the core's (`Store::store_run`): the verdict, the key
      // (a complete trace, declared inputs, or the repository), outputs
      // inside the root, and entries whose values contradict dropped.
      const { exitCode, signal } = run.outcome ?? {};
      const answer = await native.store(task, reports, {
        ...(typeof exitCode === 'number' ? { exitCode } : {}),
        ...(signal ? { signal } : {}),
        startedAtMs: run.startedAt,
        stdout: Buffer.from(run.stdout ?? ''),
        stderr: Buffer.from(run.stderr ?? ''),
        ...(run.before?.available ? { before: run.before.json } : {}),
        inputs: [...(run.inputs ?? [])],
        outputs: [...(run.outputs ?? [])],
        ...(run.cacheableDespite ? { cacheableDespite: [...run.cacheableDespite] } : {}),
      });
      if (!answer.stored || answer.manifest == null) return { stored: false, reasons: answer.reasons };
      const manifest = answer.manifest;
      const entry = entryOf(manifest, 'local');
      if (remote) await remote.upload(task, manifest, await native.readEntry(task, entry.id));
      const overruled = JSON.parse(answer.overruled ?? '[]') as UncacheableReason[];
      return { stored: true, entry, overruled, key: answer.key as 'trace' | 'declared' | 'repository' };
    },
    async entries(task, entriesOptions = {}) {
      checkTask(task, 'Cache.entries');
      const states = await native.entries(task, checkEnv(entriesOptions, 'Cache.entries'));
      return states.map((state) => ({ entry: entryOf(state.manifest, 'local'), reasons: state.reasons }));
    },
    async snapshot() {
      try {
        const json = await native.repoSnapshot();
        return { available: true, files: Object.keys((JSON.parse(json) as { files: object }).files).length, json };
      } catch (err) {
        return { available: false, reason: (err as Error).message };
      }
    },
    clean(task) {
      checkTask(task, 'Cache.clean');
      return native.cleanTask(task);
    },
    get hashed() {
      return native.hashed;
    },
    close() {
      native.saveStatCache();
    },
  };
  return checkedStore(cache, warn);
}

/**
 * The variables that configure a remote cache (its token, its signing key):
 * the runner's secrets, never the task's. {@link withoutCacheSecrets} drops them.
 */
export const CACHE_SECRET_ENV: readonly string[] = Object.freeze([
  'TURBO_TOKEN',
  'TURBO_REMOTE_CACHE_SIGNATURE_KEY',
  'TURBO_API',
  'TURBO_TEAM',
  'TURBO_TEAMID',
  'RUNNER_AWARE_CACHE_TOKEN',
  'RUNNER_AWARE_CACHE_SIGNATURE_KEY',
]);

/** `env` without the remote cache's configuration: what a runner may hand its task and `createServer`. */
export function withoutCacheSecrets(env: Record<string, string | undefined>): Record<string, string | undefined> {
  checkEnvMap(env, 'env', 'withoutCacheSecrets');
  const secret = new Set(CACHE_SECRET_ENV.map((name) => name.toUpperCase()));
  return Object.fromEntries(Object.entries(env).filter(([name]) => !secret.has(name.toUpperCase())));
}

/** `url` as it may be printed: no user name or password. */
export function redactUrl(url: string): string {
  checkString(url, 'url', 'redactUrl');
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    // Not a URL: whatever stands between `//` and the last `@` may be credentials.
    return url.replace(/\/\/.*@/, '//');
  }
}
