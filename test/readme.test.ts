// The front door and the contributor's page: every code block of README.md and
// CONTRIBUTING.md runs (test/doc-blocks.ts says how each language runs), and
// every relative link of every page of the docs points at a file that exists,
// and at a heading that exists there.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

import { describe, expect, it } from 'vitest';

import { anchors, describeDoc, fencedBlocks, relativeLinks, RUST_DOCTEST_FILES } from './doc-blocks.js';
import { root } from './helpers.js';

describeDoc('README.md');
describeDoc('CONTRIBUTING.md');

/** Every page of the docs: the README, CONTRIBUTING.md, docs/*.md and each example's README. */
function pages(): string[] {
  const docs = readdirSync(join(root, 'docs')).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`);
  const examples = readdirSync(join(root, 'examples'))
    .map((dir) => `examples/${dir}/README.md`)
    .filter((file) => existsSync(join(root, file)));
  return ['README.md', 'CONTRIBUTING.md', ...docs, ...examples];
}

describe('links between the pages', () => {
  for (const page of pages()) {
    it(`${page}: every relative link resolves`, () => {
      for (const target of relativeLinks(readFileSync(join(root, page), 'utf8'))) {
        const [path = '', anchor] = target.split('#');
        const file = path === '' ? join(root, page) : join(root, dirname(page), path);
        const shown = relative(root, file) || '.';
        expect(existsSync(file), `${page}: the link ${target} names ${shown}, which does not exist`).toBe(true);
        if (anchor !== undefined && file.endsWith('.md') && statSync(file).isFile()) {
          expect([...anchors(readFileSync(file, 'utf8'))], `${page}: the link ${target} names no heading of ${shown}`).toContain(anchor);
        }
      }
    });
  }

  it('the docs index links every page of docs/', () => {
    const index = readFileSync(join(root, 'docs', 'README.md'), 'utf8');
    for (const page of pages().filter((file) => file.startsWith('docs/') && file !== 'docs/README.md')) {
      expect(index, `docs/README.md does not link ${page}`).toContain(`](${page.slice('docs/'.length)}`);
    }
  });
});

describe('Rust blocks in the docs', () => {
  it('appear only in the pages the core crate compiles as doctests', () => {
    for (const page of pages()) {
      const rust = fencedBlocks(readFileSync(join(root, page), 'utf8')).filter((block) => block.lang === 'rust');
      if (rust.length === 0) continue;
      expect(RUST_DOCTEST_FILES, `${page} has rust blocks but is not a doctest of the crate`).toContain(page);
    }
  });

  it('each doctest page is included by the crate under cfg(doctest)', () => {
    const lib = readFileSync(join(root, 'src-rs', 'core', 'src', 'lib.rs'), 'utf8').split('\n');
    for (const page of RUST_DOCTEST_FILES) {
      const include = `#[doc = include_str!("../../../${page}")]`;
      const at = lib.findIndex((line) => line.trim() === include);
      expect(at, `src-rs/core/src/lib.rs does not include ${page} as a doc`).toBeGreaterThan(0);
      expect(lib[at - 1] ?? '', `${page} is included outside #[cfg(doctest)]`).toMatch(/^#\[cfg\((all\()?doctest\b/);
    }
  });
});
