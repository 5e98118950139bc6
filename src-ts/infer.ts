// Inference from a file-access trace: which paths are a run's inputs and
// outputs, whether it modified what it read, and fingerprints of the inputs
// that a later look-up recomputes to decide whether they still hold.

import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';

import { checkInput, checkInstance, checkReports, refuse, typeName } from './checks.js';
import { declaredInputs, declaredOutputs, underAny } from './cache.js';
import { modifiedInputs as modifiedInputsOf } from './trace.js';
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

/** A path's stat, or undefined where nothing is (a missing name, or a file where a directory was expected). */
function statOf(path: string, follow: boolean): BigIntStats | undefined {
  try {
    return (follow ? statSync : lstatSync)(path, { bigint: true, throwIfNoEntry: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP') return undefined;
    throw err;
  }
}

function exists(path: string): boolean {
  return statOf(path, false) !== undefined;
}

/**
 * Infers a traced run's inputs and outputs. `reports.trace` must be present
 * (`createServer({ trace: true })`); without it only declared inputs and
 * outputs are known.
 */
export function inferAccesses(reports: Reports): InferredAccesses {
  checkReports(reports, ['ignoredInputs', 'ignoredOutputs', 'inputs', 'outputs', 'trace'], 'inferAccesses');
  const trace = reports.trace;
  const kinds = new Map<string, InputKind>();
  const rank: Record<InputKind, number> = { existence: 0, listing: 1, content: 2 };
  const note = (path: string, kind: InputKind): void => {
    const had = kinds.get(path);
    if (had === undefined || rank[kind] > rank[had]) kinds.set(path, kind);
  };
  const modifiedInputs: string[] = [];
  const outputs = new Set<string>();
  const isIgnoredInput = underAny(reports.ignoredInputs);
  const isIgnoredOutput = underAny(reports.ignoredOutputs);
  if (trace) {
    const changed = new Set([...trace.written, ...trace.deleted]);
    const addInputs = (paths: string[], kind: InputKind, skip: Set<string> = changed): void => {
      for (const path of paths) if (!skip.has(path) && !isIgnoredInput(path)) note(path, kind);
    };
    // Looking up a directory the run then writes into (mkdir -p dist) is how
    // it makes room for its outputs, which a restore recreates: not an input.
    const containers = new Set(changed);
    for (const path of trace.written) for (let dir = dirname(path); dir !== dirname(dir) && !containers.has(dir); dir = dirname(dir)) containers.add(dir);
    addInputs(trace.found, 'existence', containers);
    addInputs(trace.missing, 'existence');
    addInputs(trace.listed, 'listing');
    addInputs(trace.read, 'content');
    modifiedInputs.push(...modifiedInputsOf(reports, trace));
    for (const path of trace.written) if (!isIgnoredOutput(path) && exists(path)) outputs.add(path);
  }
  for (const path of declaredInputs(reports)) note(path, 'content');
  for (const path of declaredOutputs(reports)) if (exists(path)) outputs.add(path);
  const inputs = [...kinds].map(([path, kind]) => ({ path, kind })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { inputs, outputs: [...outputs].sort(), modifiedInputs: modifiedInputs.sort() };
}

/**
 * Digests of files keyed by identity (device, inode, size, mtime, ctime), so
 * a look-up re-hashes only what changed. A runner keeps one per cache and
 * persists it with `toJSON()` / `StatCache.from()`.
 */
export class StatCache {
  private readonly entries: Map<string, [string, string]>;
  /** Files hashed (not answered from the cache) since this cache was made. */
  hashed = 0;

  constructor(entries: Iterable<[string, [string, string]]> = []) {
    this.entries = new Map(entries);
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

  /** The sha256 of the file at `path`, whose stat is `stat`. */
  digest(path: string, stat: BigIntStats): string {
    const identity = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    const cached = this.entries.get(path);
    if (cached && cached[0] === identity) return cached[1];
    const digest = createHash('sha256').update(readFileSync(path)).digest('hex');
    this.hashed++;
    this.entries.set(path, [identity, digest]);
    return digest;
  }

  /** The entries, for JSON. */
  toJSON(): [string, [string, string]][] {
    return [...this.entries];
  }
}

function typeOf(stat: BigIntStats): string {
  return stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : 'other';
}

function contentDigest(path: string, stat: BigIntStats, cache: StatCache, above: ReadonlySet<string> = new Set()): string {
  if (!stat.isDirectory()) return stat.isFile() ? cache.digest(path, stat) : typeOf(stat);
  // A directory's content: every name beneath with its own digest. Links are
  // followed, but never back into a directory above (pnpm's node_modules has
  // such cycles), which counts by its link alone.
  const identity = `${stat.dev}:${stat.ino}`;
  if (above.has(identity)) return 'cycle';
  const here = new Set(above).add(identity);
  const hash = createHash('sha256');
  for (const name of readdirSync(path).sort()) {
    const child = join(path, name);
    const childStat = statOf(child, true);
    // A link beneath counts by where it points too, as an input that is one does.
    const target = statOf(child, false)?.isSymbolicLink() ? linkTarget(child) : undefined;
    const link = target === undefined ? '' : `link ${JSON.stringify(target)} `;
    hash.update(`${name}\0${link}${childStat ? contentDigest(child, childStat, cache, here) : 'missing'}\0`);
  }
  return `tree:${hash.digest('hex')}`;
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
 */
export function fingerprintInput(input: InferredInput, cache: StatCache = new StatCache()): string {
  checkInput(input, 'input', 'fingerprintInput');
  checkInstance(cache, StatCache, 'StatCache', 'cache', 'fingerprintInput');
  const link = statOf(input.path, false);
  if (link === undefined) return 'missing';
  const followed = fingerprintFollowed(input, cache);
  const target = link.isSymbolicLink() ? linkTarget(input.path) : undefined;
  return target === undefined ? followed : `link ${JSON.stringify(target)} ${followed}`;
}

/** Where the link at `path` points; undefined when it is no link (any more). */
function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Replaced or removed since it was looked at: what is there now counts.
    if (code === 'EINVAL' || code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** {@link fingerprintInput} of what `input.path` names, links followed. */
function fingerprintFollowed(input: InferredInput, cache: StatCache): string {
  const stat = statOf(input.path, true);
  if (!stat) return 'missing';
  switch (input.kind) {
    case 'existence':
      return typeOf(stat);
    case 'listing':
      if (!stat.isDirectory()) return typeOf(stat);
      return `listing:${createHash('sha256').update(readdirSync(input.path).sort().join('\0')).digest('hex')}`;
    case 'content':
      return contentDigest(input.path, stat, cache);
  }
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
  const sinceNs = BigInt(Math.floor(since)) * 1_000_000n;
  return inputs
    .filter((input) => {
      const stat = statOf(input.path, false);
      return stat !== undefined && !stat.isDirectory() && (stat.ctimeNs >= sinceNs || stat.mtimeNs >= sinceNs);
    })
    .map((input) => input.path);
}
