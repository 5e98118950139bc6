// Inference from a file-access trace: which paths are a run's inputs and
// outputs, whether it modified what it read, and fingerprints of the inputs
// that a later look-up recomputes to decide whether they still hold.

// The rules themselves are the core's (`runner_aware::rules`,
// `runner_aware::fingerprint`), which Rust runners call directly: these are
// the same functions with JavaScript's shapes.

import { checkInput, checkInstance, checkReports, refuse, typeName } from './checks.js';
import { loadBinding } from './native.js';
import type { Reports } from './types.js';

/**
 * What a look-up must check of an input:
 * - `content`: the bytes of a file (every file beneath, for a directory);
 * - `listing`: the names in a directory;
 * - `existence`: whether the path exists, and as what (file, directory, other).
 */
export type InputKind = 'content' | 'listing' | 'existence';

/** An input of a run and what of it matters. */
export interface InferredInput {
  /** Absolute path. */
  path: string;
  /** What a look-up checks. */
  kind: InputKind;
}

/** A run's inputs and outputs, inferred from its trace and its tools' reports. */
export interface InferredAccesses {
  /**
   * Paths first read, looked up or listed (and never written), minus ignored
   * inputs, plus declared inputs (`content`); sorted by path. The strongest
   * kind wins: a path read and listed is `content`. A directory only looked
   * up that the run then wrote beneath (`mkdir -p dist`) is not one.
   */
  inputs: InferredInput[];
  /** Paths written that exist now, minus ignored outputs, plus declared outputs; sorted. */
  outputs: string[];
  /**
   * Paths the run read (or listed) and then wrote or deleted, which no
   * ignored input covers (an ignored output does not: what the run read there
   * still mattered): a run that modifies its own input is not
   * cacheable (its inputs after the run are not what it read), and `close()`
   * already says so with a `modified-input` reason.
   */
  modifiedInputs: string[];
}

/**
 * Infers a traced run's inputs and outputs. `reports.trace` must be present
 * (`createServer({ trace: true })`); without it only declared inputs and
 * outputs are known.
 */
export function inferAccesses(reports: Reports): InferredAccesses {
  checkReports(reports, ['ignoredInputs', 'ignoredOutputs', 'inputs', 'outputs', 'trace'], 'inferAccesses');
  const { trace, ignoredInputs, ignoredOutputs, inputs, outputs } = reports;
  return loadBinding().binding.inferAccesses({ trace, ignoredInputs, ignoredOutputs, inputs, outputs }) as InferredAccesses;
}

type NativeStatCache = InstanceType<ReturnType<typeof loadBinding>['binding']['NativeStatCache']>;

/**
 * Digests of files keyed by identity (device, inode, size, mtime, ctime), so
 * a look-up re-hashes only what changed. A runner keeps one per cache and
 * persists it with `toJSON()` / `StatCache.from()`.
 */
export class StatCache {
  /** The core's cache this one is. */
  readonly native: NativeStatCache;

  constructor(entries: Iterable<[string, [string, string]]> = []) {
    const list = [...entries];
    this.native = new (loadBinding().binding.NativeStatCache)(list.length > 0 ? JSON.stringify(list) : undefined);
  }

  /** A cache from `toJSON()`'s output; an unreadable value gives an empty cache. */
  static from(json: unknown): StatCache {
    if (!Array.isArray(json)) return new StatCache();
    const valid = json.filter(
      (e): e is [string, [string, string]] =>
        Array.isArray(e) && typeof e[0] === 'string' && Array.isArray(e[1]) && typeof e[1][0] === 'string' && typeof e[1][1] === 'string',
    );
    return new StatCache(valid);
  }

  /** Files hashed (not answered from the cache) since this cache was made. */
  get hashed(): number {
    return this.native.hashed;
  }

  /** The entries, for JSON: `[path, [identity, sha256]][]`. */
  toJSON(): [string, [string, string]][] {
    return JSON.parse(this.native.toJsonText()) as [string, [string, string]][];
  }
}

/**
 * What a look-up compares for `input`, as one string: `missing`, or for a
 * path that exists, by kind: `content` the file's sha256 (`tree:…` for a
 * directory), `listing` a digest of the sorted names (`file` when it is no
 * directory), `existence` its type (`file`, `directory`, `other`). A
 * symbolic link also counts by where it points (`link "<target>" …`): a
 * program that resolves it, as Node's module loader does, reads what is
 * there, so a link switched to another copy of a package (pnpm's store)
 * is a change even where the two copies' files at the link look the same.
 * Throws for a path that cannot be an input a cache checks (in `/proc`,
 * `/sys` or `/dev`, or a tree too large to walk) or cannot be read.
 */
export function fingerprintInput(input: InferredInput, cache: StatCache = new StatCache()): string {
  checkInput(input, 'input', 'fingerprintInput');
  checkInstance(cache, StatCache, 'StatCache', 'cache', 'fingerprintInput');
  return loadBinding().binding.fingerprintInput(input.path, input.kind, cache.native);
}

/**
 * The inputs whose files changed while the run was going on (a change time
 * at or after `since`, in ms since the epoch): what the run read may not be
 * what a fingerprint taken now sees, so such a run must not be stored.
 */
export function changedSince(inputs: readonly InferredInput[], since: number): string[] {
  if (!Array.isArray(inputs)) refuse('changedSince', `inputs must be an array of InferredInput ({ path, kind }), got ${typeName(inputs)}`);
  inputs.forEach((input, i) => checkInput(input, `inputs[${i}]`, 'changedSince'));
  if (!Number.isFinite(since)) refuse('changedSince', `since must be a time in ms since the epoch (Date.now()), got ${String(since)}`);
  return loadBinding().binding.changedSince(
    inputs.map((input) => input.path),
    since,
  );
}
