// The tool side checks env glob syntax in JavaScript (src-ts/env-glob.ts) so
// that a bad glob throws with no runner too. Here it is held to the Rust
// core's own answer, the addon's EnvNameMatcher: over hand-picked globs and a
// few hundred random ones, both accept or both reject, for the same reason.

import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type * as Binding from '../index.js';
import { root } from './helpers.js';

// No runner: the tool API answers from its own checks alone.
delete process.env['VP_RUN_NODE_CLIENT_PATH'];
const { getEnvs } = await import('../dist/index.mjs');

const addonFile = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file));
if (!addonFile) throw new Error('no local addon build at the root: run npm run build');
const { EnvNameMatcher } = createRequire(import.meta.url)(join(root, addonFile)) as typeof Binding;

/** The core's reason for rejecting `glob`, or `null` when it compiles. */
function coreReason(glob: string): string | null {
  try {
    new EnvNameMatcher(glob);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** What the tool API threw for `glob` with no runner, or `null`. */
function toolError(glob: string): string | null {
  try {
    getEnvs(glob);
    return null;
  } catch (err) {
    return `${(err as Error).constructor.name}: ${(err as Error).message}`;
  }
}

function expectSameAnswer(glob: string): void {
  const reason = coreReason(glob);
  const expected = reason === null ? null : `TypeError: runner-aware getEnvs: invalid env glob ${JSON.stringify(glob)}: ${reason}`;
  expect(toolError(glob), JSON.stringify(glob)).toBe(expected);
}

/** A small seeded generator (mulberry32), so a failure names a glob that can be rerun. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` globs of 1 to `maxLength` pieces, each drawn from `pieces`. */
function randomGlobs(pieces: readonly string[], count: number, maxLength: number, seed: number): string[] {
  const next = random(seed);
  return Array.from({ length: count }, () => {
    const length = 1 + Math.floor(next() * maxLength);
    return Array.from({ length }, () => pieces[Math.floor(next() * pieces.length)]).join('');
  });
}

const handPicked = [
  '', 'VITE_*', '*', '?', '**', 'a/**', '**/a', '{**,a}', '{a,**}', ',', 'a,b',
  // Classes: `]` and `-` first are literal, `-` last too; `\` is not special inside.
  '[', ']', '[]', '[]]', '[!]', '[!]]', '[^]', '[^]]', '[!a]', '[a-]', '[-a]', '[a-c-e]', '[c-a]', '[z-a]',
  '[z--]', '[--z]', '[a--]', '[!-a]', '[\\]', '[\\', '[a-[]', '[[]', '[{]', '[}]', '{[}]}',
  // POSIX classes, known and not, closed and not, and ranges after them.
  '[[:alpha:]]', '[[:alpha:]', '[[:foo:]]', '[[:foo:]', '[[::]]', '[[::]', '[[:alpha:]-z]', '[[:alpha:]-A]',
  '[[:digit:]-/]', '[[:punct:]-z]', '[[:punct:]-~]', '[[:cntrl:]-~]', '[[:space:]- ]', '[[:upper:]-B]',
  '[[:abcdefgh:]]', '[[:abcdefgh:]', '[[:abcdefghi:]]', '[[:abcdefghi:]', '[[:A:]]', '[[:xdigit:]-a]', '[a-[:alpha:]]',
  '[[:alpha]]', '[[:alpha:]x', '[[:foo:]-Z]', '[[:foo:]-[]', '[[:alpha]-Z]', '[[:alpha]-[]',
  // Escapes.
  'a\\', '\\', '\\\\', '\\[', '\\{', '\\}', '\\*', 'A\\*', '\\😀',
  // Alternates.
  '{', '}', '{a', 'a}', '{a,b}', '{a,b}}', '{a,{b,c}}', '{a,{b,c}', '{{a}}', '{}', '{,}', '}{',
  '{'.repeat(100) + '}'.repeat(100), '{'.repeat(101) + '}'.repeat(101), '{'.repeat(100) + '[' + '}'.repeat(100),
  // Code points beyond ASCII, surrogate pairs, a lone surrogate (U+FFFD to the core).
  '[é-a]', '[a-é]', '[😀-😁]', '[😁-😀]', '[😀-a]', '[\uD800-\uFFFD]', '[\uFFFE-\uD800]', '[\uDC00]', 'a\\\uD800',
  // Right at the length limit, in bytes.
  'A'.repeat(4096), 'é'.repeat(2048), '😀'.repeat(1024), `[${'a'.repeat(4093)}]`,
];

describe('env glob syntax: the tool side against the Rust core', () => {
  it('agrees on hand-picked globs', () => {
    for (const glob of handPicked) expectSameAnswer(glob);
  });

  it('agrees on random globs over the glob metacharacters', () => {
    for (const glob of randomGlobs([...'A*?[]{},!-\\^a'], 500, 12, 9)) expectSameAnswer(glob);
  });

  it('agrees on random globs around POSIX classes', () => {
    const pieces = ['[', ']', '[:', ':]', 'alpha', 'digit', 'punct', 'foo', 'abcdefghi', 'a', 'Z', '-', '!', '^', '{', '}', '\\'];
    for (const glob of randomGlobs(pieces, 300, 8, 23)) expectSameAnswer(glob);
  });

  it('rejects a glob over 4096 bytes without quoting it', () => {
    for (const glob of ['A'.repeat(4097), 'é'.repeat(2049), `${'😀'.repeat(1024)}a`]) {
      const bytes = Buffer.byteLength(glob);
      expect(toolError(glob)).toBe(`TypeError: runner-aware getEnvs: glob of ${bytes} bytes exceeds the 4096-byte limit`);
    }
  });
});
