// Argument checks of the runner side's exported calls. Each throws a
// TypeError that names the call and what is wrong, in the tool API's words
// (`runner-aware fingerprintInput: input must be …, got string`), where
// JavaScript would otherwise fail deep inside the call with a message about
// something the caller never passed.

import type { Reports } from './types.js';

/** What `value` is, as a message shows it: `null`, `array`, `URL`, or its `typeof`. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof URL) return 'URL';
  return typeof value;
}

/** Throws `TypeError: runner-aware <call>: <message>`. */
export function refuse(call: string, message: string): never {
  throw new TypeError(`runner-aware ${call}: ${message}`);
}

/** A plain object (not `null`, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function checkObject(value: unknown, what: string, call: string): asserts value is Record<string, unknown> {
  if (!isRecord(value)) refuse(call, `${what} must be an object, got ${typeName(value)}`);
}

export function checkString(value: unknown, what: string, call: string): asserts value is string {
  if (typeof value !== 'string') refuse(call, `${what} must be a string, got ${typeName(value)}`);
}

export function checkStringArray(value: unknown, what: string, call: string): asserts value is readonly string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    refuse(call, `${what} must be an array of strings, got ${typeName(value)}`);
  }
}

/** An env map: `process.env`, or what a runner gives `createServer`. */
export function checkEnv(value: unknown, what: string, call: string): asserts value is Record<string, string | undefined> {
  if (!isRecord(value)) refuse(call, `${what} must be an object of strings (an env such as process.env), got ${typeName(value)}`);
}

/**
 * A path the API takes: a string, or a `file:` URL (`new URL(import.meta.url)`),
 * as a string. Neither empty (it would name the whole working directory) nor
 * holding a NUL byte (it names no file).
 */
export function toPath(value: unknown, what: string, call: string): string {
  if (typeof value !== 'string') {
    if (!(value instanceof URL)) refuse(call, `${what} must be a string or a file: URL, got ${typeName(value)}`);
    if (value.protocol !== 'file:') refuse(call, `${what} must be a string or a file: URL, got a ${value.protocol} URL`);
    return process.getBuiltinModule('node:url').fileURLToPath(value);
  }
  if (value === '') refuse(call, `${what} must not be empty`);
  if (value.includes('\0')) refuse(call, `${what} must not contain a NUL byte`);
  return value;
}

/** Every path of `values` (strings or `file:` URLs) as a string, checked as {@link toPath} checks one. */
export function toPaths(values: unknown, what: string, call: string): string[] {
  if (values === null || typeof values !== 'object' || typeof (values as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    refuse(call, `${what} must be an iterable of paths, got ${typeName(values)}`);
  }
  return Array.from(values as Iterable<unknown>, (value, i) => toPath(value, `${what}[${i}]`, call));
}

/** The edit distance between `a` and `b` (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next.push(Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * The name of `known` closest to `name`, when one is close enough to be what
 * was meant: a few edits away (`tracing` → `trace`), or containing it
 * (`code` → `exitCode`).
 */
export function nearest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(lower, candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  if (bestDistance <= Math.max(2, Math.floor(name.length / 2))) return best;
  return lower.length >= 3 ? known.find((candidate) => candidate.toLowerCase().includes(lower)) : undefined;
}

/** ` (did you mean 'trace'?)`, or nothing when no known name is close. */
export function didYouMean(name: string, known: readonly string[]): string {
  const guess = nearest(name, known);
  return guess === undefined ? '' : ` (did you mean '${guess}'?)`;
}

/**
 * An options object: `undefined` (as `{}`), or an object with no key outside
 * `known`. A typo (`tracing` for `trace`) is refused with the nearest valid
 * name, not ignored: an option that silently does nothing is a cache bug.
 */
export function checkOptions<T extends object>(value: T | undefined, known: readonly (keyof T & string)[], call: string, what = 'options'): T {
  if (value === undefined) return {} as T;
  if (!isRecord(value)) refuse(call, `${what} must be an object, got ${typeName(value)}`);
  for (const key of Object.keys(value)) {
    if (!(known as readonly string[]).includes(key)) refuse(call, `unknown ${what === 'options' ? 'option' : `${what} field`} '${key}'${didYouMean(key, known)}`);
  }
  return value;
}

/** Options whose one field is a path (`{ root }`), with that path as a string. */
export function pathOptions<K extends string>(options: Partial<Record<K, unknown>> | undefined, key: K, call: string): Partial<Record<K, string>> {
  const checked = checkOptions(options, [key], call);
  const path = checked[key];
  return path === undefined ? {} : ({ [key]: toPath(path, `options.${key}`, call) } as Partial<Record<K, string>>);
}

/** An instance of `type`, whose name is `typeName` (a bundler may rename the class), as argument `what`. */
export function checkInstance(value: unknown, type: abstract new (...args: never[]) => unknown, name: string, what: string, call: string): void {
  if (!(value instanceof type)) refuse(call, `${what} must be a ${name}, got ${typeName(value)}`);
}

/** An env query as a tool passes it (`'VITE_*'`, `{ prefix }`) or as reports record it (`{ glob }`). */
export function checkEnvQuery(value: unknown, what: string, call: string): void {
  if (typeof value === 'string') return;
  if (!isRecord(value) || !(typeof value['glob'] === 'string' || typeof value['prefix'] === 'string')) {
    refuse(call, `${what} must be a glob string, { glob: string } or { prefix: string }, got ${typeName(value)}`);
  }
}

const INPUT_KINDS = ['content', 'listing', 'existence'];

/** An `InferredInput` (`{ path, kind }`, as `inferAccesses` gives them). */
export function checkInput(value: unknown, what: string, call: string): void {
  if (typeof value === 'string' || value instanceof URL) {
    refuse(call, `${what} must be an InferredInput ({ path, kind }, as inferAccesses gives them), got ${typeName(value)}: for a file, pass { path, kind: 'content' }`);
  }
  if (!isRecord(value)) refuse(call, `${what} must be an InferredInput ({ path, kind }), got ${typeName(value)}`);
  if (typeof value['path'] !== 'string' || value['path'] === '') refuse(call, `${what}.path must be a non-empty string, got ${typeName(value['path'])}`);
  if (!INPUT_KINDS.includes(value['kind'] as string)) {
    refuse(call, `${what}.kind must be 'content', 'listing' or 'existence', got ${typeof value['kind'] === 'string' ? `'${value['kind']}'` : typeName(value['kind'])}`);
  }
}

/**
 * An `EnvFingerprint` object. The JSON a runner stored is not one: it is read
 * back with `parseFingerprint`, which the message says.
 */
export function checkFingerprint(value: unknown, what: string, call: string): void {
  if (typeof value === 'string') refuse(call, `${what} must be an EnvFingerprint, got string: read a stored one back with parseFingerprint(json)`);
  if (!isRecord(value)) refuse(call, `${what} must be an EnvFingerprint (from envFingerprint or parseFingerprint), got ${typeName(value)}`);
  for (const [field, shape] of [['envs', 'object'], ['values', 'object'], ['envQueries', 'array'], ['untrackedEnv', 'array']] as const) {
    const ok = shape === 'array' ? Array.isArray(value[field]) : isRecord(value[field]);
    if (!ok) refuse(call, `${what}.${field} must be an ${shape}, got ${typeName(value[field])} (pass an EnvFingerprint from envFingerprint or parseFingerprint)`);
  }
}

/** An `UncacheableReason` (`{ kind, message, … }`, from `reports.notCacheable` or `verdict()`). */
export function checkReason(value: unknown, what: string, call: string): void {
  if (!isRecord(value) || typeof value['kind'] !== 'string' || typeof value['message'] !== 'string') {
    refuse(call, `${what} must be an UncacheableReason ({ kind, message }, from reports.notCacheable or verdict()), got ${typeName(value)}`);
  }
}

/**
 * How a command ended (`{ exitCode, signal }`, both optional). Other fields
 * are let be (a spawn result has many), but an outcome with neither and
 * something else (`{ code: 1 }`) would pass a failed command as a success.
 */
export function checkOutcome(value: unknown, what: string, call: string): void {
  if (value === undefined) return;
  checkObject(value, what, call);
  const { exitCode, signal } = value;
  const other = Object.keys(value).find((key) => key !== 'exitCode' && key !== 'signal');
  if (exitCode === undefined && signal === undefined && other !== undefined) {
    refuse(call, `${what} has neither exitCode nor signal, but has '${other}'${didYouMean(other, ['exitCode', 'signal'])}`);
  }
  if (exitCode !== undefined && exitCode !== null && !Number.isInteger(exitCode)) refuse(call, `${what}.exitCode must be an integer or null, got ${typeName(exitCode)}`);
  if (signal !== undefined && signal !== null && typeof signal !== 'string') refuse(call, `${what}.signal must be a signal name or null, got ${typeName(signal)}`);
}

/** The fields of `Reports` a helper reads, by what each must be. */
const REPORT_FIELDS = {
  ignoredInputs: 'array',
  ignoredOutputs: 'array',
  inputs: 'array',
  outputs: 'array',
  untrackedEnv: 'array',
  envQueries: 'array',
  notCacheable: 'array',
  envs: 'object',
  values: 'object',
} as const;

/** A field of `Reports` a helper reads; `trace` is checked only when present. */
type ReportField = keyof typeof REPORT_FIELDS | 'trace';

/** The path lists of a `Trace`, each of which must be an array. */
const TRACE_LISTS = ['read', 'found', 'missing', 'listed', 'written', 'deleted', 'readThenWritten'] as const;

/**
 * `value` holds the `fields` of `Reports` (what `server.close()` returns, or
 * `parseReports` read back) with the right shapes; `trace`, when asked for and
 * present, with its path lists. Shapes only: a helper that walks thousands of
 * paths does not pay for checking each.
 */
export function checkReports(value: unknown, fields: readonly ReportField[], call: string, what = 'reports'): asserts value is Reports {
  const hint = 'the Reports server.close() returned';
  if (!isRecord(value)) refuse(call, `${what} must be ${hint}, got ${typeName(value)}`);
  for (const field of fields) {
    if (field === 'trace') continue;
    const shape = REPORT_FIELDS[field];
    const ok = shape === 'array' ? Array.isArray(value[field]) : isRecord(value[field]);
    if (!ok) refuse(call, `${what}.${field} must be an ${shape}, got ${typeName(value[field])} (pass ${hint})`);
  }
  const trace = value['trace'];
  if (trace === undefined || !fields.includes('trace')) return;
  if (!isRecord(trace)) refuse(call, `${what}.trace must be an object, got ${typeName(trace)} (pass ${hint})`);
  for (const list of TRACE_LISTS) {
    if (!Array.isArray(trace[list])) refuse(call, `${what}.trace.${list} must be an array, got ${typeName(trace[list])} (pass ${hint})`);
  }
}
