// Runs the fenced code blocks of a Markdown page, in order, so the examples in
// the docs cannot rot. test/readme.test.ts and test/docs.test.ts call
// `describeDoc` once per page. A block runs by its language:
//
// - js / mjs: written to a file in a scratch project that has runner-aware
//   installed (a link to this checkout) and run with node. With a file name
//   after the language (```js build.mjs), it is only written, to that path
//   (relative to the workspace), and a later sh block of the page runs it (a
//   program that takes arguments, a Vite config);
// - sh: run with `sh -e` from that project's parent directory, which holds
//   the project (`my-app`), a built clone of runner-aware (`runner-aware`, a
//   copy of what `npm install` built here), this checkout's examples/, a copy
//   of the Vite app of test/fixtures (`vite-app`, with vite and runner-aware
//   installed), and Vitest with one test file. npm works offline there and
//   runs no lifecycle scripts (the clone is built);
// - json: parsed; in docs/protocol.md a `frame` block (hex bytes) must be the
//   4-byte little-endian length and the json block just before it (the Rust
//   test src-rs/core/tests/protocol_doc.rs also checks the bytes against the
//   encoder);
// - rust: only in the pages of RUST_DOCTEST_FILES, which the core crate
//   includes as a doctest (`cargo test --doc` compiles and runs them);
// - text, mermaid: output, a listing or a diagram, shown and not run;
// - `shown` in the info string: a block that cannot run here. Only the blocks
//   in SHOWN may be marked so.
// A block in any other language fails the test until it learns to run it.

import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtures, root } from './helpers.js';

/**
 * The blocks shown but not run, by page and first line, and why they cannot run.
 */
export const SHOWN: Record<string, Record<string, string>> = {
  'README.md': {
    'git clone https://github.com/runner-aware/runner-aware.git': 'clones from the network and builds a second checkout with Rust',
    'npm install   # installs the dev tools and builds everything, the Rust addon included':
      'reinstalls and rebuilds this checkout, and its `npm test` would run this suite inside itself',
  },
  'CONTRIBUTING.md': {
    'git clone https://github.com/runner-aware/runner-aware.git': 'clones from the network, and its `npm install` and `npm test` rebuild and test a second checkout',
    'npm version 0.2.0              # also brings npm/<triple>/ to that version': 'changes the version of this checkout and of its platform packages, and pushes',
  },
  'docs/install.md': {
    'npm install runner-aware': 'runner-aware is not on the npm registry yet',
  },
  'docs/vite.md': {
    'npx runner-aware inspect -- vite --port 5399 --strictPort': 'a dev server runs until Ctrl-C',
  },
  'examples/cache-runner/README.md': {
    'TURBO_TOKEN=<a long random token> STORAGE_PROVIDER=local STORAGE_PATH=/var/cache/turbo \\':
      'starts a long-running server; test/remote-cache.test.ts runs the same server from npm',
  },
};

/** The pages whose `rust` blocks the core crate compiles as doctests (`#[cfg(doctest)]` in src-rs/core/src/lib.rs). */
export const RUST_DOCTEST_FILES = ['docs/runners.md'];

/** The languages a block may have on any page. */
const LANGUAGES = ['js', 'mjs', 'sh', 'json', 'text', 'mermaid'];

export interface Block {
  lang: string;
  info: string[];
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** The fenced code blocks of a Markdown text (``` or ~~~, at the start of a line). */
export function fencedBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(```+|~~~+)\s*(.*)$/.exec(lines[i] ?? '');
    if (!open) continue;
    const fence = open[1] ?? '```';
    const info = (open[2] ?? '').trim().split(/\s+/).filter(Boolean);
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] ?? '').startsWith(fence); i++) body.push(lines[i] ?? '');
    // `rust,no_run`: the language, then rustdoc's attributes.
    const [lang = '', ...attributes] = (info[0] ?? '').split(',');
    blocks.push({ lang, info: [...attributes, ...info.slice(1)], code: `${body.join('\n')}\n`, line: start + 1 });
  }
  return blocks;
}

/** The env a reader's shell would have: no runner listening, npm offline and quiet. */
function readerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    // Not the runner's channel, npm's own variables or what vitest sets for this suite.
    if (value === undefined || /^(RUNNER_AWARE_|VP_RUN_NODE_CLIENT_PATH$|npm_|VITEST|TEST$|NODE_ENV$)/.test(name)) continue;
    env[name] = value;
  }
  return {
    ...env,
    npm_config_offline: 'true',
    npm_config_ignore_scripts: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
}

function execute(command: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: readerEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Links `target` at `path`, creating the parent directories. */
function link(target: string, path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  symlinkSync(target, path);
}

/**
 * The `runner-aware` command at `path`, as npm's bin link would give it: a
 * script that runs this checkout's CLI (whose file a rebuild may leave
 * without its executable bit, which npm sets on install).
 */
function binShim(path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'dist', 'cli.cjs')}" "$@"\n`, { mode: 0o755 });
}

/** A reader's scratch directory, as the header of this file describes it. */
function createWorkspace(addon: string): string {
  const workspace = realpathSync(mkdtempSync(join(tmpdir(), 'ra-docs-')));
  // The reader's project, with runner-aware installed as a link to this checkout.
  writeFileSync(join(workspace, 'package.json'), '{ "name": "docs-workspace", "private": true }\n');
  link(root, join(workspace, 'node_modules', 'runner-aware'));
  binShim(join(workspace, 'node_modules', '.bin', 'runner-aware'));
  link(join(root, 'examples'), join(workspace, 'examples'));
  // The project's own tests, for the blocks that run Vitest under a runner.
  link(join(root, 'node_modules', 'vitest'), join(workspace, 'node_modules', 'vitest'));
  link(join(root, 'node_modules', 'vitest', 'vitest.mjs'), join(workspace, 'node_modules', '.bin', 'vitest'));
  writeFileSync(join(workspace, 'sum.test.mjs'), "import { expect, test } from 'vitest';\ntest('adds', () => expect(1 + 1).toBe(2));\n");
  mkdirSync(join(workspace, 'my-app'));
  writeFileSync(join(workspace, 'my-app', 'package.json'), '{ "name": "my-app", "private": true, "version": "1.0.0" }\n');
  // A stock Vite app, for the pages that run Vite.
  const app = join(workspace, 'vite-app');
  cpSync(join(fixtures, 'vite-app'), app, { recursive: true });
  link(join(root, 'node_modules', 'vite'), join(app, 'node_modules', 'vite'));
  link(root, join(app, 'node_modules', 'runner-aware'));
  link(join(root, 'node_modules', 'vite', 'bin', 'vite.js'), join(app, 'node_modules', '.bin', 'vite'));
  binShim(join(app, 'node_modules', '.bin', 'runner-aware'));
  // A built clone: what pack:all reads, and the linters it runs.
  const clone = join(workspace, 'runner-aware');
  // The file-access tracer ships beside the addon on Linux.
  const tracer = readdirSync(root).filter((file) => /^runner-aware-(preload|trace)\.linux-/.test(file));
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'dist', 'npm', addon, ...tracer, join('scripts', 'pack-all.mjs')]) {
    cpSync(join(root, entry), join(clone, entry), { recursive: true });
  }
  for (const linter of ['publint', join('@arethetypeswrong', 'cli')]) {
    link(join(root, 'node_modules', linter), join(clone, 'node_modules', linter));
  }
  return workspace;
}

/** The file a js block is written to, when its info string names one (```js build.mjs). */
function fileName(block: Block): string | undefined {
  return ['js', 'mjs'].includes(block.lang) ? block.info.find((word) => /\.(c|m)?js$/.test(word)) : undefined;
}

/** The bytes of a `frame` block: hex bytes separated by spaces and newlines. */
function frameBytes(code: string): Buffer {
  return Buffer.from(code.trim().split(/\s+/).join(''), 'hex');
}

/**
 * Registers a suite that checks every block of `page` (relative to the
 * repository root) has a language this file knows, and runs the blocks in
 * order in a fresh workspace.
 */
export function describeDoc(page: string): void {
  const blocks = fencedBlocks(readFileSync(join(root, page), 'utf8'));
  const shown = SHOWN[page] ?? {};

  describe(page, () => {
    let workspace = '';

    beforeAll(() => {
      const addon = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file));
      if (!addon) throw new Error('no local addon build at the root: run npm run build');
      workspace = createWorkspace(addon);
    });

    afterAll(() => {
      if (workspace) rmSync(workspace, { recursive: true, force: true });
    });

    it('has code blocks, each in a language this test runs or shows', () => {
      for (const block of blocks) {
        const where = `${page}:${block.line}`;
        const languages = [...LANGUAGES];
        if (RUST_DOCTEST_FILES.includes(page)) languages.push('rust');
        if (page === 'docs/protocol.md') languages.push('frame');
        expect(languages, `${where}: a block needs a language this test knows`).toContain(block.lang);
        if (block.info.includes('shown')) {
          const first = block.code.split('\n')[0] ?? '';
          expect(Object.keys(shown), `${where}: only the blocks listed in SHOWN may be shown without running`).toContain(first);
        }
      }
      for (const [index, block] of blocks.entries()) {
        if (fileName(block) === undefined) continue;
        const run = blocks.slice(index + 1).some((later) => later.lang === 'sh' && !later.info.includes('shown'));
        expect(run, `${page}:${block.line}: a block written to a file is run by a later sh block, and none follows`).toBe(true);
      }
      for (const first of Object.keys(shown)) {
        const listed = blocks.some((block) => block.info.includes('shown') && block.code.split('\n')[0] === first);
        expect(listed, `${page}: SHOWN lists ${JSON.stringify(first)}, which is no shown block of the page`).toBe(true);
      }
    });

    for (const [index, block] of blocks.entries()) {
      const where = `${page}:${block.line}`;
      if (['text', 'mermaid', 'rust'].includes(block.lang)) continue;
      // Shown blocks are checked against SHOWN above, not run.
      if (block.info.includes('shown')) continue;
      if (block.lang === 'json') {
        it(`parses ${where} (json)`, () => {
          expect(() => JSON.parse(block.code), `${where} is not JSON`).not.toThrow();
        });
        continue;
      }
      if (block.lang === 'frame') {
        it(`decodes ${where} (frame)`, () => {
          const bytes = frameBytes(block.code);
          const payload = bytes.subarray(4);
          expect(bytes.readUInt32LE(0), `${where}: the length prefix is not the payload's length`).toBe(payload.length);
          const json = blocks[index - 1];
          expect(json?.lang, `${where}: a frame follows the json block it encodes`).toBe('json');
          expect(payload.toString('utf8'), `${where} does not encode the JSON above it`).toBe(json?.code.trimEnd());
        });
        continue;
      }
      const named = fileName(block);
      if (named !== undefined) {
        it(`writes ${where} (${block.lang}) to ${named}`, () => {
          writeFileSync(join(workspace, named), block.code);
        });
        continue;
      }
      it(`runs ${where} (${block.lang})`, async () => {
        let result;
        if (block.lang === 'sh') {
          result = await execute('sh', ['-e', '-c', block.code], workspace);
        } else {
          const file = join(workspace, `doc-block-${index}.mjs`);
          writeFileSync(file, block.code);
          result = await execute(process.execPath, [file], workspace);
        }
        expect(result.code, `${where} failed:\n${block.code}\n--- output ---\n${result.output}`).toBe(0);
      }, 180_000);
    }
  });
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown page's headings, with GitHub's `-1`, `-2` suffixes for repeats. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  const text = markdown.replace(/^(```+|~~~+)[^\n]*\n[\s\S]*?^\1\s*$/gm, '');
  for (const match of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(match[1] ?? '');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** The relative link targets of a Markdown page, outside code: `[text](target)` and `![alt](target)`. */
export function relativeLinks(markdown: string): string[] {
  const text = markdown
    .replace(/^(```+|~~~+)[^\n]*\n[\s\S]*?^\1\s*$/gm, '')
    .replace(/`[^`\n]*`/g, '');
  const targets: string[] = [];
  for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = match[1] ?? '';
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
    targets.push(target);
  }
  return targets;
}
