// Every fenced code block of the README runs here, in order, so its examples
// cannot rot. A block runs by its language:
//
// - js / mjs: written to a file in a scratch project that has runner-aware
//   installed (a link to this checkout) and run with node;
// - sh: run with `sh -e` from that project's parent directory, which holds
//   the project (`my-app`), a built clone of runner-aware (`runner-aware`, a
//   copy of what `npm install` built here), this checkout's examples/, and
//   Vitest with one test file;
//   npm works offline there and runs no lifecycle scripts (the clone is built);
// - text: output or a listing, shown and not run;
// - `sh shown`: a command that cannot run here. Only the blocks in SHOWN
//   may be marked so.
// A block in any other language fails the test until it learns to run it.

import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { root } from './helpers.js';

/**
 * The blocks shown but not run, by their first line, and why they cannot run.
 */
const SHOWN: Record<string, string> = {
  'git clone https://github.com/runner-aware/runner-aware.git': 'clones from the network and builds a second checkout with Rust',
  'npm install runner-aware': 'runner-aware is not on the npm registry yet',
  'npm install   # installs the dev tools and builds everything, the Rust addon included':
    'reinstalls and rebuilds this checkout, and its `npm test` would run this suite inside itself',
};

interface Block {
  lang: string;
  info: string[];
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** The fenced code blocks of a Markdown text (``` or ~~~, at the start of a line). */
function fencedBlocks(markdown: string): Block[] {
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
    blocks.push({ lang: info[0] ?? '', info: info.slice(1), code: `${body.join('\n')}\n`, line: start + 1 });
  }
  return blocks;
}

const blocks = fencedBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
const addon = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file));

let workspace = '';

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

beforeAll(() => {
  if (!addon) throw new Error('no local addon build at the root: run npm run build');
  workspace = realpathSync(mkdtempSync(join(tmpdir(), 'ra-readme-')));
  // The reader's project, with runner-aware installed as a link to this checkout.
  writeFileSync(join(workspace, 'package.json'), '{ "name": "readme-workspace", "private": true }\n');
  mkdirSync(join(workspace, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(root, join(workspace, 'node_modules', 'runner-aware'), 'dir');
  symlinkSync(join(root, 'dist', 'cli.cjs'), join(workspace, 'node_modules', '.bin', 'runner-aware'));
  symlinkSync(join(root, 'examples'), join(workspace, 'examples'), 'dir');
  // The project's own tests, for the blocks that run Vitest under a runner.
  symlinkSync(join(root, 'node_modules', 'vitest'), join(workspace, 'node_modules', 'vitest'), 'dir');
  symlinkSync(join(root, 'node_modules', 'vitest', 'vitest.mjs'), join(workspace, 'node_modules', '.bin', 'vitest'));
  writeFileSync(join(workspace, 'sum.test.mjs'), "import { expect, test } from 'vitest';\ntest('adds', () => expect(1 + 1).toBe(2));\n");
  mkdirSync(join(workspace, 'my-app'));
  writeFileSync(join(workspace, 'my-app', 'package.json'), '{ "name": "my-app", "private": true, "version": "1.0.0" }\n');
  // A built clone: what pack:all reads, and the linters it runs.
  const clone = join(workspace, 'runner-aware');
  // The file-access tracer ships beside the addon on Linux.
  const tracer = readdirSync(root).filter((file) => /^runner-aware-(preload|trace)\.linux-/.test(file));
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'dist', 'npm', addon, ...tracer, join('scripts', 'pack-all.mjs')]) {
    cpSync(join(root, entry), join(clone, entry), { recursive: true });
  }
  for (const linter of ['publint', join('@arethetypeswrong', 'cli')]) {
    mkdirSync(join(clone, 'node_modules', linter, '..'), { recursive: true });
    symlinkSync(join(root, 'node_modules', linter), join(clone, 'node_modules', linter), 'dir');
  }
});

afterAll(() => {
  if (workspace) rmSync(workspace, { recursive: true, force: true });
});

describe('README.md', () => {
  it('has code blocks, each in a language this test runs or shows', () => {
    expect(blocks.length).toBeGreaterThan(5);
    for (const block of blocks) {
      expect(['js', 'mjs', 'sh', 'text'], `README.md:${block.line}: a block needs a language`).toContain(block.lang);
      if (block.info.includes('shown')) {
        const first = block.code.split('\n')[0] ?? '';
        expect(Object.keys(SHOWN), `README.md:${block.line}: only the blocks listed in SHOWN may be shown without running`).toContain(first);
      }
    }
  });

  for (const [index, block] of blocks.entries()) {
    const where = `README.md:${block.line}`;
    if (block.lang === 'text') continue;
    // Shown blocks are checked against SHOWN above, not run.
    if (block.info.includes('shown')) continue;
    it(`runs ${where} (${block.lang})`, async () => {
      let result;
      if (block.lang === 'sh') {
        result = await execute('sh', ['-e', '-c', block.code], workspace);
      } else {
        const file = join(workspace, `readme-${index}.mjs`);
        writeFileSync(file, block.code);
        result = await execute(process.execPath, [file], workspace);
      }
      expect(result.code, `${where} failed:\n${block.code}\n--- output ---\n${result.output}`).toBe(0);
    }, 180_000);
  }
});
