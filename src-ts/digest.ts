// The one digest of an env value: reports hold it in place of the value (so a
// runner stores no secret) and the fingerprint compares it; and the
// prototype-free records reports are made of.

import { createRequire } from 'node:module';

// node:crypto takes a fresh process ~3.5 ms to load (OpenSSL start-up) and
// every tool imports this package, so it loads on the first hash instead.
let crypto: typeof import('node:crypto') | undefined;

/** The sha256 (hex) of `text` as UTF-8. */
export function sha256(text: string): string {
  crypto ??= createRequire(process.execPath)('node:crypto') as typeof import('node:crypto');
  return crypto.createHash('sha256').update(text, 'utf8').digest('hex');
}

/** A record with no prototype: a key such as `__proto__` is a plain key. */
export function nullRecord<T>(entries?: Iterable<readonly [string, T]>): Record<string, T> {
  const record = Object.create(null) as Record<string, T>;
  if (entries) for (const [name, value] of entries) record[name] = value;
  return record;
}

/** `matches` with each value replaced by its digest, in a record with no prototype. */
export function digestedMatches(matches: Record<string, string>): Record<string, string> {
  return nullRecord(Object.entries(matches).map(([name, value]) => [name, sha256(value)] as const));
}
