// Runner-side cache helpers: what a runner needs to turn `Reports` into a
// correct cache entry, so no runner re-derives the rules.

import { isAbsolute, relative, resolve, sep } from 'node:path';

import { checkEnv, checkEnvQuery, checkFingerprint, checkObject, checkOptions, checkReports, checkString, pathOptions, toPath, toPaths } from './checks.js';
import { digestedMatches, nullRecord, sha256 } from './digest.js';
import { loadBinding } from './native.js';
import type { EnvQuery, EnvQueryRecord, Reports, Trace } from './types.js';

// ---------------------------------------------------------------------------
// Path rules

/**
 * `path` made absolute against `cwd` (default `process.cwd()`), with `.` and
 * `..` removed and no trailing separator. Lexical: symlinks are not resolved,
 * the same way the tool side reports paths.
 */
export function normalizePath(path: string | URL, cwd: string | URL = process.cwd()): string {
  path = toPath(path, 'path', 'normalizePath');
  cwd = toPath(cwd, 'cwd', 'normalizePath');
  return resolve(cwd, path);
}

/**
 * Whether `path` is `dir` or lies beneath it, compared component by component
 * after normalisation: `dist` covers `dist/a` but not `dist2/a` or
 * `distribution.txt`. Relative paths resolve against `cwd`.
 */
export function isWithin(path: string | URL, dir: string | URL, cwd: string | URL = process.cwd()): boolean {
  path = toPath(path, 'path', 'isWithin');
  dir = toPath(dir, 'dir', 'isWithin');
  cwd = toPath(cwd, 'cwd', 'isWithin');
  const p = normalizePath(path, cwd);
  const d = normalizePath(dir, cwd);
  if (p === d) return true;
  return p.startsWith(d.endsWith(sep) ? d : d + sep);
}

function isUnderAny(path: string, dirs: readonly string[], cwd: string): boolean {
  return underAny(dirs, cwd)(path);
}

/** An absolute path with no `.` or `..` component, no doubled or trailing separator: what `resolve` would return unchanged. */
const CLEAN_ABSOLUTE = sep === '/' ? /^\/(?!.*(?:\/\/|\/\.\.?(?:\/|$)|\/$))/ : null;

/**
 * A predicate for "`path` is one of `dirs` or beneath one", with `dirs`
 * normalised once: a runner matching a trace's thousands of paths against
 * the ignores pays for `resolve` only where a path is not already clean.
 */
export function underAny(dirs: readonly string[], cwd: string = process.cwd()): (path: string) => boolean {
  const prefixes = dirs.map((dir) => normalizePath(dir, cwd)).map((dir) => [dir, dir.endsWith(sep) ? dir : dir + sep] as const);
  if (prefixes.length === 0) return () => false;
  return (path) => {
    const p = CLEAN_ABSOLUTE?.test(path) ? path : normalizePath(path, cwd);
    return prefixes.some(([dir, under]) => p === dir || p.startsWith(under));
  };
}

function sortedUnique(paths: Iterable<string>): string[] {
  return [...new Set(paths)].sort();
}

/** Whether a read of `path` is not an input because a tool ignored it (or a directory above it). */
export function isIgnoredInput(reports: Pick<Reports, 'ignoredInputs'>, path: string | URL, cwd: string | URL = process.cwd()): boolean {
  checkReports(reports, ['ignoredInputs'], 'isIgnoredInput');
  path = toPath(path, 'path', 'isIgnoredInput');
  cwd = toPath(cwd, 'cwd', 'isIgnoredInput');
  return isUnderAny(path, reports.ignoredInputs, cwd);
}

/** Whether a write of `path` is not an output because a tool ignored it (or a directory above it). */
export function isIgnoredOutput(reports: Pick<Reports, 'ignoredOutputs'>, path: string | URL, cwd: string | URL = process.cwd()): boolean {
  checkReports(reports, ['ignoredOutputs'], 'isIgnoredOutput');
  path = toPath(path, 'path', 'isIgnoredOutput');
  cwd = toPath(cwd, 'cwd', 'isIgnoredOutput');
  return isUnderAny(path, reports.ignoredOutputs, cwd);
}

/**
 * The observed reads that are inputs: every path normalised, minus those under
 * an ignored input; sorted and deduped.
 */
export function filterInputs(reports: Pick<Reports, 'ignoredInputs'>, reads: Iterable<string | URL>, cwd: string | URL = process.cwd()): string[] {
  checkReports(reports, ['ignoredInputs'], 'filterInputs');
  reads = toPaths(reads, 'reads', 'filterInputs');
  cwd = toPath(cwd, 'cwd', 'filterInputs');
  const kept = [...reads].map((p) => normalizePath(p, cwd)).filter((p) => !isUnderAny(p, reports.ignoredInputs, cwd));
  return sortedUnique(kept);
}

/**
 * The observed writes that are outputs: every path normalised, minus those
 * under an ignored output; sorted and deduped.
 */
export function filterOutputs(reports: Pick<Reports, 'ignoredOutputs'>, writes: Iterable<string | URL>, cwd: string | URL = process.cwd()): string[] {
  checkReports(reports, ['ignoredOutputs'], 'filterOutputs');
  writes = toPaths(writes, 'writes', 'filterOutputs');
  cwd = toPath(cwd, 'cwd', 'filterOutputs');
  const kept = [...writes].map((p) => normalizePath(p, cwd)).filter((p) => !isUnderAny(p, reports.ignoredOutputs, cwd));
  return sortedUnique(kept);
}

/** The inputs the tools declared with `addInput`, minus any under an ignored input. */
export function declaredInputs(reports: Pick<Reports, 'inputs' | 'ignoredInputs'>): string[] {
  checkReports(reports, ['inputs', 'ignoredInputs'], 'declaredInputs');
  return filterInputs(reports, reports.inputs);
}

/**
 * The outputs the tools declared with `addOutput`, minus any under an ignored
 * output. A declared directory may still contain ignored paths: check each
 * file with `isIgnoredOutput` when archiving it.
 */
export function declaredOutputs(reports: Pick<Reports, 'outputs' | 'ignoredOutputs'>): string[] {
  checkReports(reports, ['outputs', 'ignoredOutputs'], 'declaredOutputs');
  return filterOutputs(reports, reports.outputs);
}

/**
 * The package managers' and Node's own private files outside the checkout,
 * for `env` (default `process.env`: `HOME`, `npm_config_cache`,
 * `XDG_CACHE_HOME`, `XDG_STATE_HOME`, `NODE_COMPILE_CACHE`, `TMPDIR`): npm's
 * `_logs`, `_cacache` and update stamp, pnpm's metadata cache and state,
 * yarn's cache and telemetry, corepack's last resolved version, Node's
 * compiled-code cache. They are neither a task's inputs nor its outputs:
 * pass them as `createServer({ ignore })` so `npm run build` caches as the
 * command it runs does (`runner-aware inspect` and the reference runner
 * do). Package contents are not on the list: a store `node_modules` links
 * into, and npx's installed packages, hold code a task runs.
 */
export function packageManagerPaths(env: Record<string, string | undefined> = process.env): string[] {
  checkEnv(env, 'env', 'packageManagerPaths');
  const defined = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  return loadBinding().binding.packageManagerPaths(defined);
}

/**
 * `path` (a `PATH` value, default `process.env.PATH`) with the
 * `node_modules/.bin` directories of `cwd` and its ancestors in front,
 * nearest first, as npm sets it for a script: a command named by a
 * package's binary (`vite build`) then runs as it does under `npm run`.
 */
export function nodeModulesBinPath(cwd: string | URL = process.cwd(), path: string = process.env['PATH'] ?? ''): string {
  const dir = toPath(cwd, 'cwd', 'nodeModulesBinPath');
  checkString(path, 'path', 'nodeModulesBinPath');
  return loadBinding().binding.nodeModulesBinPath(resolve(dir), path);
}

// ---------------------------------------------------------------------------
// Env name globs: compiled by the Rust core, so a runner matches names exactly
// as its server does.

/**
 * The glob as an error message shows it: whole, unless it was refused for its
 * length, which can be any size; then cut short as the core's errors do.
 */
function shownGlob(glob: string, reason: string): string {
  if (!reason.startsWith('glob of ') || glob.length <= 64) return JSON.stringify(glob);
  const cut = /[\uD800-\uDBFF]/.test(glob.charAt(63)) ? 63 : 64;
  return `${JSON.stringify(glob.slice(0, cut))}…`;
}

/** An env glob that does not parse. */
export class InvalidEnvGlobError extends Error {
  /** The glob as given. */
  readonly glob: string;
  constructor(glob: string, reason: string) {
    super(`invalid env glob ${shownGlob(glob, reason)}: ${reason}`);
    this.name = 'InvalidEnvGlobError';
    this.glob = glob;
  }
}

/** An env query as a tool passes it (`'VITE_*'`, `{ prefix }`) or as `Reports` records it (`{ glob }`). */
export type AnyEnvQuery = EnvQuery | { glob: string };

/**
 * A predicate for env names matching `query`, with the server's semantics
 * (the core's own matcher): a glob (`*` any characters including `/`, `?` one,
 * `[...]` a class, `{a,b}`, `\` escapes; case-sensitive) or a literal
 * `{ prefix }`. Throws `InvalidEnvGlobError` for a glob the core rejects.
 * Loads the native addon, like `createServer`.
 */
export function envMatcher(query: AnyEnvQuery): (name: string) => boolean {
  checkEnvQuery(query, 'query', 'envMatcher');
  if (typeof query === 'object' && 'prefix' in query) {
    const prefix = query.prefix;
    return (name) => name.startsWith(prefix);
  }
  const glob = typeof query === 'string' ? query : query.glob;
  let matcher: InstanceType<ReturnType<typeof loadBinding>['binding']['EnvNameMatcher']>;
  try {
    matcher = new (loadBinding().binding.EnvNameMatcher)(glob);
  } catch (err) {
    if ((err as { code?: string }).code === 'InvalidArg') throw new InvalidEnvGlobError(glob, (err as Error).message);
    throw err;
  }
  return (name) => matcher.isMatch(name);
}

function untrackedMatcher(globs: readonly string[]): (name: string) => boolean {
  const matchers = globs.map((glob) => envMatcher(glob));
  return (name) => matchers.some((matches) => matches(name));
}

// ---------------------------------------------------------------------------
// Env fingerprint and validation

/** One tracked env query in a fingerprint: its match set, each value hashed. */
export type FingerprintQuery = ({ glob: string } | { prefix: string }) & {
  /** Every tracked name that matched → the sha256 (hex) of its value. */
  matches: Record<string, string>;
};

/**
 * Everything a run's cache entry depends on besides files: tracked env names
 * (absent ones included), tracked query match sets and `addValue` values.
 * Holds no plaintext value: each is a sha256 hash. A hash of a guessable value
 * can be confirmed by guessing, so keep a shared cache private all the same.
 */
export interface EnvFingerprint {
  /** Format version; `parseFingerprint` rejects others. */
  version: 1;
  /** sha256 (hex) over `envs`, `envQueries` and `values`; order-independent. */
  digest: string;
  /** Tracked names → sha256 (hex) of the value, `null` when it was absent. */
  envs: Record<string, string | null>;
  /** Tracked queries, sorted globs first, then prefixes. */
  envQueries: FingerprintQuery[];
  /** `addValue` names → sha256 (hex) of the value. */
  values: Record<string, string>;
  /** The runner's never-tracked globs: their names stay out of query match sets on validation too. */
  untrackedEnv: string[];
}

/**
 * The digest of an env value: its sha256 (hex, of the UTF-8 text), as
 * reports hold it by default and the fingerprint compares it. For a runner
 * that adds a value it knows itself (a variable it hands the child directly)
 * to reports whose `envValues` is `sha256`.
 */
export function envValueDigest(value: string): string {
  checkString(value, 'value', 'envValueDigest');
  return sha256(value);
}

/**
 * `reports` holding no env value in plaintext: each value of `envs` and of
 * query `matches` replaced by its digest (`envValueDigest`), `envValues` set
 * to `sha256`. Reports that already hold digests are returned as they are.
 * `close()` returns such reports unless asked for `plain` ones.
 */
export function digestReports(reports: Reports): Reports {
  checkReports(reports, ['envs', 'envQueries'], 'digestReports');
  if (reports.envValues === 'sha256') return reports;
  return {
    ...reports,
    envValues: 'sha256',
    envs: nullRecord(
      Object.entries(reports.envs).map(([name, record]) => [name, { ...record, value: record.value === null ? null : sha256(record.value) }] as const),
    ),
    envQueries: reports.envQueries.map((query) => ({ ...query, matches: digestedMatches(query.matches) })),
  };
}

/** A key-sorted record with no prototype, so a name such as `__proto__` is a plain key. */
function sortedRecord<T>(entries: Iterable<[string, T]>): Record<string, T> {
  return nullRecord([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** `record[name]` when `record` has it as its own key, never an inherited one (`__proto__`). */
function own<T>(record: Record<string, T>, name: string): T | undefined {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

/**
 * The env value of `name`. Windows env names ignore case, as the runner's
 * server does there: a name recorded as `PATH` finds `Path` in a plain-object
 * env too (`process.env` already ignores case on Windows).
 */
function envValue(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = own(env, name);
  if (value !== undefined || process.platform !== 'win32') return value;
  const folded = name.toUpperCase();
  const key = Object.keys(env).find((candidate) => candidate.toUpperCase() === folded);
  return key === undefined ? undefined : env[key];
}

function queryKind(query: { glob: string } | { prefix: string }): ['glob' | 'prefix', string] {
  return 'glob' in query ? ['glob', query.glob] : ['prefix', query.prefix];
}

/** How a query is named in reasons and summaries: `VITE_*`, or `VITE_ (prefix)`. */
export function describeQuery(query: AnyEnvQuery): string {
  checkEnvQuery(query, 'query', 'describeQuery');
  if (typeof query === 'string') return query;
  return 'glob' in query ? query.glob : `${query.prefix} (prefix)`;
}

function compareQueries(a: FingerprintQuery, b: FingerprintQuery): number {
  const [ka, pa] = queryKind(a);
  const [kb, pb] = queryKind(b);
  if (ka !== kb) return ka === 'glob' ? -1 : 1;
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

function hashedMatches(
  matches: Record<string, string>,
  isUntracked: (name: string) => boolean,
  digest: (value: string) => string = sha256,
): Record<string, string> {
  return sortedRecord(
    Object.entries(matches)
      .filter(([name]) => !isUntracked(name))
      .map(([name, value]): [string, string] => [name, digest(value)]),
  );
}

const asDigest = (value: string): string => value;

function digestOf(parts: Pick<EnvFingerprint, 'envs' | 'envQueries' | 'values'>): string {
  // Records are key-sorted and queries sorted, so equal content gives equal JSON.
  const canonical = JSON.stringify([
    Object.entries(sortedRecord(Object.entries(parts.envs))),
    [...parts.envQueries].sort(compareQueries).map((q) => [...queryKind(q), Object.entries(sortedRecord(Object.entries(q.matches)))]),
    Object.entries(sortedRecord(Object.entries(parts.values))),
  ]);
  return sha256(canonical);
}

/**
 * The fingerprint of a run's tracked env and values. Untracked names, untracked
 * queries and names matching `reports.untrackedEnv` never enter it. Reports
 * whose `envValues` is `sha256` (what `close()` returns by default) give the
 * same fingerprint as the same reports in `plain`: their digests are the
 * fingerprint's.
 */
export function envFingerprint(reports: Pick<Reports, 'envs' | 'envQueries' | 'values' | 'untrackedEnv' | 'envValues'>): EnvFingerprint {
  checkReports(reports, ['envs', 'envQueries', 'values', 'untrackedEnv'], 'envFingerprint');
  const { envs, envQueries, values, untrackedEnv, envValues } = reports;
  // A glob the core cannot compile is an error here, as for the server.
  for (const glob of untrackedEnv) envMatcher(glob);
  return JSON.parse(loadBinding().binding.envFingerprint({ envs, envQueries, values, untrackedEnv, envValues })) as EnvFingerprint;
}

/** Whether a stored fingerprint still holds, and if not, why. */
export interface FingerprintValidation {
  /** `true` when nothing tracked changed. */
  valid: boolean;
  /**
   * Why not, by name only, never a value: `env NODE_ENV changed`,
   * `env FOO added`, `env BAR removed`, `env query VITE_* changed`,
   * `value config-hash changed`. Sorted within each kind.
   */
  reasons: string[];
}

/** Options of `validateFingerprint`. */
export interface ValidateOptions {
  /**
   * The `addValue` values of a later run (its `reports.values`). Values are
   * only known once a tool ran, so they are compared only when given.
   */
  values?: Record<string, string>;
}

function changes(stored: Record<string, string | null>, current: Record<string, string | null>, label: string): string[] {
  const reasons: string[] = [];
  for (const name of Object.keys(sortedRecord([...Object.entries(stored), ...Object.entries(current)]))) {
    const before = own(stored, name) ?? null;
    const after = own(current, name) ?? null;
    if (before === after) continue;
    if (before === null) reasons.push(`${label} ${name} added`);
    else if (after === null) reasons.push(`${label} ${name} removed`);
    else reasons.push(`${label} ${name} changed`);
  }
  return reasons;
}

/**
 * Checks `stored` against the runner's current environment (the env map it
 * would give `createServer`), as the tools would see it: every tracked name
 * and every tracked query's whole match set. Reasons name what changed and
 * never print a value.
 */
export function validateFingerprint(
  stored: EnvFingerprint,
  env: Record<string, string | undefined>,
  options: ValidateOptions = {},
): FingerprintValidation {
  checkFingerprint(stored, 'stored', 'validateFingerprint');
  checkEnv(env, 'env', 'validateFingerprint');
  if (checkOptions(options, ['values'], 'validateFingerprint').values !== undefined) checkObject(options.values, 'options.values', 'validateFingerprint');
  // A glob the core cannot compile is an InvalidEnvGlobError, as for envMatcher.
  for (const query of (stored.envQueries ?? []) as unknown[]) if (isRecord(query) && typeof query['glob'] === 'string') envMatcher(query['glob']);
  for (const glob of stored.untrackedEnv ?? []) if (typeof glob === 'string') envMatcher(glob);
  const defined = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  let reasons: string[];
  try {
    reasons = loadBinding().binding.validateFingerprint(stored, defined, options.values);
  } catch (err) {
    if ((err as { code?: string }).code === 'InvalidArg') throw new TypeError(`runner-aware validateFingerprint: ${(err as Error).message}`);
    throw err;
  }
  return { valid: reasons.length === 0, reasons };
}

// ---------------------------------------------------------------------------
// Serialisation

function fail(what: string, detail: string): never {
  throw new TypeError(`runner-aware: not a valid ${what}: ${detail}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkStrings(value: unknown, what: string, field: string): asserts value is string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) fail(what, `${field} must be an array of strings`);
}

function checkStringRecord(value: unknown, what: string, field: string, nullable = false): void {
  if (!isRecord(value)) fail(what, `${field} must be an object`);
  for (const [key, item] of Object.entries(value)) {
    if (!(typeof item === 'string' || (nullable && item === null))) fail(what, `${field}.${key} must be a string${nullable ? ' or null' : ''}`);
  }
}

function checkQuery(value: unknown, what: string, field: string): void {
  if (!isRecord(value) || !(typeof value['glob'] === 'string' || typeof value['prefix'] === 'string')) {
    fail(what, `${field} must have a string glob or prefix`);
  }
  checkStringRecord(value['matches'], what, `${field}.matches`);
}

const PATH_FIELDS = ['ignoredInputs', 'ignoredOutputs', 'inputs', 'outputs'] as const;

/** Options of `serializeReports` and `parseReports`. */
export interface PathOptions {
  /**
   * Write paths relative to this directory (with `/` separators), and resolve
   * them against it when parsing, so an entry moves between checkouts and
   * machines. Paths outside it are written as `../…`.
   */
  root?: string | URL;
}

function toPortable(path: string, root: string): string {
  const rel = relative(resolve(root), path);
  return rel === '' ? '.' : rel.split(sep).join('/');
}

function fromPortable(path: string, root: string): string {
  return isAbsolute(path) ? normalizePath(path) : resolve(root, ...path.split('/'));
}

/** The path lists of a `Trace`. */
export const TRACE_FIELDS = ['read', 'found', 'missing', 'listed', 'written', 'deleted', 'readThenWritten'] as const;

function mapTrace(trace: Trace, map: (path: string) => string): Trace {
  const out: Trace = { ...trace };
  for (const field of TRACE_FIELDS) out[field] = trace[field].map(map);
  return out;
}

/** `reports` with every path (the trace's too) rewritten relative to `root` (`/`-separated). */
export function relativizeReports(reports: Reports, root: string | URL): Reports {
  checkReports(reports, ['ignoredInputs', 'ignoredOutputs', 'inputs', 'outputs', 'trace'], 'relativizeReports');
  root = toPath(root, 'root', 'relativizeReports');
  const out: Reports = { ...reports };
  for (const field of PATH_FIELDS) out[field] = reports[field].map((path) => toPortable(path, root));
  if (reports.trace) out.trace = mapTrace(reports.trace, (path) => toPortable(path, root));
  return out;
}

/** `reports` with every relative path resolved against `root`; the inverse of `relativizeReports`. */
export function absolutizeReports(reports: Reports, root: string | URL): Reports {
  checkReports(reports, ['ignoredInputs', 'ignoredOutputs', 'inputs', 'outputs', 'trace'], 'absolutizeReports');
  root = toPath(root, 'root', 'absolutizeReports');
  const out: Reports = { ...reports };
  for (const field of PATH_FIELDS) out[field] = sortedUnique(reports[field].map((path) => fromPortable(path, root)));
  if (reports.trace) out.trace = mapTrace(reports.trace, (path) => fromPortable(path, root));
  return out;
}

/** `reports` as JSON, paths relative to `options.root` when given. */
export function serializeReports(reports: Reports, options: PathOptions = {}): string {
  checkObject(reports, 'reports', 'serializeReports');
  options = pathOptions(options, 'root', 'serializeReports');
  return JSON.stringify(options.root === undefined ? reports : relativizeReports(reports, options.root));
}

/**
 * Reports from `serializeReports` (or the CLI's `--json`), checked field by
 * field; relative paths resolve against `options.root`. Throws a `TypeError`
 * naming the first bad field.
 */
export function parseReports(json: string, options: PathOptions = {}): Reports {
  checkString(json, 'json', 'parseReports');
  options = pathOptions(options, 'root', 'parseReports');
  const what = 'Reports';
  const value: unknown = JSON.parse(json);
  if (!isRecord(value)) fail(what, 'expected an object');
  for (const field of [...PATH_FIELDS, 'untrackedEnv'] as const) checkStrings(value[field], what, field);
  checkStringRecord(value['values'], what, 'values');
  if (value['envValues'] !== undefined && value['envValues'] !== 'sha256' && value['envValues'] !== 'plain') {
    fail(what, "envValues must be 'sha256' or 'plain'");
  }
  const envs = value['envs'];
  if (!isRecord(envs)) fail(what, 'envs must be an object');
  for (const [name, record] of Object.entries(envs)) {
    if (!isRecord(record) || !(typeof record['value'] === 'string' || record['value'] === null) || typeof record['tracked'] !== 'boolean') {
      fail(what, `envs.${name} must be { value: string | null, tracked: boolean }`);
    }
  }
  const queries = value['envQueries'];
  if (!Array.isArray(queries)) fail(what, 'envQueries must be an array');
  queries.forEach((query: unknown, i) => {
    checkQuery(query, what, `envQueries[${i}]`);
    if (typeof (query as Record<string, unknown>)['tracked'] !== 'boolean') fail(what, `envQueries[${i}].tracked must be a boolean`);
  });
  if (typeof value['cacheable'] !== 'boolean') fail(what, 'cacheable must be a boolean');
  const reasons = value['notCacheable'];
  if (!Array.isArray(reasons) || !reasons.every((r: unknown) => isRecord(r) && typeof r['kind'] === 'string' && typeof r['message'] === 'string')) {
    fail(what, 'notCacheable must be an array of { kind, message }');
  }
  if (value['cacheable'] !== (reasons.length === 0)) fail(what, 'cacheable must be true exactly when notCacheable is empty');
  const errors = value['errors'];
  if (!Array.isArray(errors) || !errors.every((e: unknown) => isRecord(e) && typeof e['message'] === 'string')) {
    fail(what, 'errors must be an array of { message }');
  }
  for (const field of ['clients', 'clientsStillConnected', 'envRequests'] as const) {
    if (typeof value[field] !== 'number') fail(what, `${field} must be a number`);
  }
  const reports = value as unknown as Reports;
  return options.root === undefined ? reports : absolutizeReports(reports, options.root);
}

/** `fingerprint` as JSON. It holds no paths and no plaintext values. */
export function serializeFingerprint(fingerprint: EnvFingerprint): string {
  checkFingerprint(fingerprint, 'fingerprint', 'serializeFingerprint');
  return JSON.stringify(fingerprint);
}

/**
 * A fingerprint from `serializeFingerprint`, checked field by field, its digest
 * included. Throws a `TypeError` naming what is wrong.
 */
export function parseFingerprint(json: string): EnvFingerprint {
  checkString(json, 'json', 'parseFingerprint');
  const what = 'EnvFingerprint';
  const value: unknown = JSON.parse(json);
  if (!isRecord(value)) fail(what, 'expected an object');
  if (value['version'] !== 1) fail(what, `unsupported version ${JSON.stringify(value['version'])}`);
  if (typeof value['digest'] !== 'string') fail(what, 'digest must be a string');
  checkStringRecord(value['envs'], what, 'envs', true);
  checkStringRecord(value['values'], what, 'values');
  checkStrings(value['untrackedEnv'], what, 'untrackedEnv');
  const queries = value['envQueries'];
  if (!Array.isArray(queries)) fail(what, 'envQueries must be an array');
  queries.forEach((query: unknown, i) => checkQuery(query, what, `envQueries[${i}]`));
  // A glob the core cannot compile is an InvalidEnvGlobError, as for envMatcher;
  // the core checks the digest and every query, as a look-up does.
  for (const query of queries as Record<string, unknown>[]) if (typeof query['glob'] === 'string') envMatcher(query['glob']);
  try {
    loadBinding().binding.checkFingerprint(json);
  } catch (err) {
    fail(what, (err as Error).message.replace(/^not a valid env fingerprint: /, ''));
  }
  return value as unknown as EnvFingerprint;
}
