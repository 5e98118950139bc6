// The runner's rules, one suite for two implementations: every case of
// test/fixtures/rules.json runs here through `runner-aware/runner` (Node) and
// in src-rs/core/tests/rules_fixtures.rs through the crate (Rust), against the
// same expected results. The expected results were those of the TypeScript
// implementation the rules replaced, so both say what it said; cases added
// since (a directory made only to hold ignored files) were written by hand.
// `<root>` in a case stands for a scratch directory holding its files.

import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  changedSince,
  describeReason,
  envFingerprint,
  fingerprintInput,
  inferAccesses,
  parseFingerprint,
  serializeFingerprint,
  StatCache,
  validateFingerprint,
  verdict,
} from '../src-ts/runner.js';
import { traceReasons } from '../src-ts/trace.js';
import type { Reports, Trace, UncacheableReason } from '../src-ts/types.js';
import { root as checkout } from './helpers.js';

interface Fixtures {
  verdict: { name: string; notCacheable: UncacheableReason[]; outcome: object; options: object; expected: unknown }[];
  describeReason: { reason: UncacheableReason; expected: string }[];
  inferAccesses: { name: string; files: Record<string, string>; links?: Record<string, string>; reports: Reports; expected: unknown }[];
  fingerprintInput: {
    name: string;
    files: Record<string, string>;
    links?: Record<string, string>;
    input: { path: string; kind: 'content' | 'listing' | 'existence' };
    expected: string;
  }[];
  envFingerprint: { name: string; reports: Reports; expected: unknown }[];
  validateFingerprint: { name: string; reports: Reports; env: Record<string, string>; values?: Record<string, string>; expected: unknown }[];
  traceReasons: { ignoredInputs: string[]; trace: Trace; expected: unknown }[];
}

const fixtures = JSON.parse(readFileSync(join(checkout, 'test/fixtures/rules.json'), 'utf8')) as Fixtures;

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** A scratch directory holding `files` and `links`. */
function materialize(files: Record<string, string>, links: Record<string, string> = {}): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-rules-')));
  scratch.push(dir);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  for (const [rel, target] of Object.entries(links)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    symlinkSync(target, join(dir, rel));
  }
  return dir;
}

const withRoot = <T>(value: T, dir: string): T => JSON.parse(JSON.stringify(value).replaceAll('<root>', dir)) as T;
const withoutRoot = <T>(value: T, dir: string): T => JSON.parse(JSON.stringify(value).replaceAll(dir, '<root>')) as T;

describe('the runner rules agree with the shared fixtures', () => {
  it.each(fixtures.verdict.map((c) => [c.name, c] as const))('verdict: %s', (_, c) => {
    expect(verdict({ notCacheable: c.notCacheable }, c.outcome, c.options)).toEqual(c.expected);
  });

  it.each(fixtures.describeReason.map((c) => [c.expected.slice(0, 40), c] as const))('describeReason: %s', (_, c) => {
    expect(describeReason(c.reason)).toBe(c.expected);
  });

  it.each(fixtures.inferAccesses.map((c) => [c.name, c] as const))('inferAccesses: %s', (_, c) => {
    const dir = materialize(c.files, c.links);
    expect(withoutRoot(inferAccesses(withRoot(c.reports, dir)), dir)).toEqual(c.expected);
  });

  it.each(fixtures.fingerprintInput.map((c) => [c.name, c] as const))('fingerprintInput: %s', (_, c) => {
    const dir = materialize(c.files, c.links);
    const cache = new StatCache();
    expect(withoutRoot(fingerprintInput(withRoot(c.input, dir), cache), dir)).toBe(c.expected);
    // A second look answers from the stat cache, with the same result.
    const hashed = cache.hashed;
    expect(withoutRoot(fingerprintInput(withRoot(c.input, dir), cache), dir)).toBe(c.expected);
    expect(cache.hashed).toBe(hashed);
  });

  it.each(fixtures.envFingerprint.map((c) => [c.name, c] as const))('envFingerprint: %s', (_, c) => {
    const fingerprint = envFingerprint(c.reports);
    expect(fingerprint).toEqual(c.expected);
    expect(parseFingerprint(serializeFingerprint(fingerprint))).toEqual(c.expected);
  });

  it.each(fixtures.validateFingerprint.map((c) => [c.name, c] as const))('validateFingerprint: %s', (_, c) => {
    const options = c.values === undefined ? {} : { values: c.values };
    expect(validateFingerprint(envFingerprint(c.reports), c.env, options)).toEqual(c.expected);
  });

  it.each(fixtures.traceReasons.map((c, i) => [i, c] as const))('traceReasons: case %i', (_, c) => {
    expect(traceReasons({ ignoredInputs: c.ignoredInputs }, c.trace)).toEqual(c.expected);
  });
});

describe('the rules around the fixtures', () => {
  it('persists a stat cache: a cache read back from toJSON() hashes nothing it knew', () => {
    const dir = materialize({ 'a.txt': 'a', 'b.txt': 'b' });
    const first = new StatCache();
    const inputs = ['a.txt', 'b.txt'].map((name) => ({ path: join(dir, name), kind: 'content' as const }));
    const digests = inputs.map((input) => fingerprintInput(input, first));
    expect(first.hashed).toBe(2);
    const again = StatCache.from(JSON.parse(JSON.stringify(first)));
    expect(inputs.map((input) => fingerprintInput(input, again))).toEqual(digests);
    expect(again.hashed).toBe(0);
    writeFileSync(join(dir, 'b.txt'), 'changed');
    expect(fingerprintInput(inputs[1]!, again)).not.toBe(digests[1]);
    expect(again.hashed).toBe(1);
    // What is not a stat cache reads as an empty one.
    expect(StatCache.from({ not: 'a cache' }).toJSON()).toEqual([]);
  });

  it('names the files changed since a time, and never a directory', () => {
    const dir = materialize({ 'a.txt': 'a', 'd/x': 'x' });
    const inputs = [
      { path: join(dir, 'a.txt'), kind: 'content' as const },
      { path: join(dir, 'd'), kind: 'listing' as const },
      { path: join(dir, 'gone'), kind: 'existence' as const },
    ];
    expect(changedSince(inputs, 0)).toEqual([join(dir, 'a.txt')]);
    expect(changedSince(inputs, Date.now() + 60_000)).toEqual([]);
  });

  it('refuses a pseudo-filesystem input rather than hashing it', () => {
    expect(() => fingerprintInput({ path: '/proc/self/environ', kind: 'content' })).toThrow(/pseudo-filesystem/);
  });

  it('refuses a fingerprint whose digest does not match its content', () => {
    const fingerprint = envFingerprint(fixtures.envFingerprint[1]!.reports);
    const forged = { ...fingerprint, envs: { ...fingerprint.envs, NODE_ENV: null } };
    expect(() => parseFingerprint(JSON.stringify(forged))).toThrow(/digest does not match its content/);
    expect(() => validateFingerprint(forged, {})).toThrow(/digest does not match its content/);
  });
});
