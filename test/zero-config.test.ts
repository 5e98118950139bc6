// The reference runner with no configuration at all on a stock Vite app:
// `cache-runner -- vite build`, no --input, no --output, no --env. The trace
// tells it what the build read and wrote; Vite tells it which env it used.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtures, root, run, type Run } from './helpers.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');

let work = '';
let app = '';

/** `cache-runner [flags] -- vite build`, with vite on PATH as a project has it, and `env` on top of a clean base. */
function viteBuild(env: Record<string, string> = {}, flags: string[] = []): Promise<Run> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return run(process.execPath, [runner, ...flags, '--', 'vite', 'build'], {
    cwd: app,
    env: {
      PATH: `${join(app, 'node_modules', '.bin')}:${process.env['PATH'] ?? ''}`,
      HOME: process.env['HOME'] ?? '',
      ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }),
      ...env,
    },
  });
}

function status(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0] ?? '';
}

function bundle(): string {
  const html = readFileSync(join(app, 'dist', 'index.html'), 'utf8');
  const script = /src="\/(assets\/[^"]+\.js)"/.exec(html)?.[1] ?? '';
  return readFileSync(join(app, 'dist', script), 'utf8');
}

const statCache = (): string => join(app, 'node_modules', '.cache', 'cache-runner', 'stat-cache.json');

describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('zero configuration: cache-runner -- vite build', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'runner-aware-zero-config-'));
    app = join(work, 'app');
    cpSync(join(fixtures, 'vite-app'), app, { recursive: true });
    // Vite as a project installs it: node_modules/.bin/vite.
    mkdirSync(join(app, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(join(root, 'node_modules', 'vite', 'bin', 'vite.js'), join(app, 'node_modules', '.bin', 'vite'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('misses the first time, and stores the build it traced', async () => {
    const first = await viteBuild();
    expect(first.code, first.stderr).toBe(0);
    expect(status(first)).toBe('cache miss: no entry');
    expect(existsSync(join(app, 'dist', 'index.html'))).toBe(true);
  });

  it('hits once dist is deleted, restoring it, without hashing node_modules again', async () => {
    const before = bundle();
    const cacheWritten = statSync(statCache()).mtimeMs;
    rmSync(join(app, 'dist'), { recursive: true });
    const hit = await viteBuild();
    expect(hit.code, hit.stderr).toBe(0);
    expect(status(hit)).toBe('cache hit');
    expect(hit.stdout).toContain('built in');
    expect(bundle()).toBe(before);
    // Every input answered from the stat cache: nothing re-hashed, nothing rewritten.
    expect(statSync(statCache()).mtimeMs).toBe(cacheWritten);
  });

  it('still hits after an unrelated env change', async () => {
    expect(status(await viteBuild({ UNRELATED: 'x' }))).toBe('cache hit');
  });

  it('misses naming main.js when it is edited', async () => {
    const main = join(app, 'src', 'main.js');
    const source = readFileSync(main, 'utf8');
    writeFileSync(main, `${source}\nconsole.log('edited');\n`);
    try {
      const edited = await viteBuild();
      expect(status(edited)).toBe('cache miss: input src/main.js changed');
      expect(bundle()).toContain('edited');
    } finally {
      writeFileSync(main, source);
    }
    expect(status(await viteBuild())).toBe('cache hit');
  });

  it('misses naming NODE_ENV and the VITE_ query when they change', async () => {
    expect(status(await viteBuild({ NODE_ENV: 'development' }))).toMatch(/^cache miss: env NODE_ENV (added|changed)$/);
    const vite = await viteBuild({ VITE_TITLE: 'zero-config' });
    expect(status(vite)).toMatch(/^cache miss: env query VITE_ \(prefix\) changed/);
    expect(status(await viteBuild())).toBe('cache hit');
  });

  it("rebuilds over its own dist, which Vite's ignoreInput(outDir) keeps out of the key", async () => {
    // dist exists: Vite lists it, empties it and writes it again. The listing
    // would make dist an input, and a deleted dist a miss, but for Vite's
    // ignoreInput(outDir).
    const forced = await viteBuild({}, ['--force']);
    expect(status(forced)).toBe('cache miss: forced');
    rmSync(join(app, 'dist'), { recursive: true });
    expect(status(await viteBuild())).toBe('cache hit');
    expect(existsSync(join(app, 'dist', 'index.html'))).toBe(true);
  });

  it('misses when a file it looked for appears (.env.production)', async () => {
    writeFileSync(join(app, '.env.production'), 'VITE_FROM_FILE=yes\n');
    try {
      expect(status(await viteBuild())).toBe('cache miss: input .env.production added');
    } finally {
      rmSync(join(app, '.env.production'));
    }
  });

  it('without a trace, outside a git repository and without --input, refuses to store', async () => {
    const untraced = await viteBuild({}, ['--trace', 'off']);
    expect(untraced.code, untraced.stderr).toBe(0);
    expect(status(untraced)).toMatch(
      /^cache skipped: no inputs known \(tracing is off; .* is not in a git repository: no key covers what the task read\), and no --input: a key that covers nothing would hit after any change$/,
    );
  });
});

// pnpm's layout: node_modules/<name> is a symlink into a store that keeps
// every installed copy side by side. Switching copies changes only the link;
// the old copy's files stay where they were, unchanged. Here the two copies
// are one version, with and without a patch (pnpm patch), so even their
// package.json files are the same.
describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('zero configuration: a package linked from a store', () => {
  let project = '';

  function build(): Promise<Run> {
    return run(process.execPath, [runner, '--', process.execPath, 'build.cjs'], {
      cwd: project,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '' },
    });
  }

  function link(copy: string): void {
    rmSync(join(project, 'node_modules', 'pkg'), { force: true });
    symlinkSync(join('..', 'store', copy), join(project, 'node_modules', 'pkg'));
  }

  beforeAll(() => {
    project = mkdtempSync(join(tmpdir(), 'runner-aware-linked-'));
    for (const [copy, says] of [['pkg@1.0.0', 'plain'], ['pkg@1.0.0_patch_abc', 'patched']] as const) {
      const dir = join(project, 'store', copy);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'pkg', version: '1.0.0', main: 'lib/index.js' }));
      mkdirSync(join(dir, 'lib'));
      writeFileSync(join(dir, 'lib', 'index.js'), `module.exports = ${JSON.stringify(says)};\n`);
    }
    mkdirSync(join(project, 'node_modules'));
    writeFileSync(join(project, 'build.cjs'), "require('node:fs').writeFileSync('out.txt', 'built with pkg ' + require('pkg') + '\\n');\n");
    link('pkg@1.0.0');
  });
  afterAll(() => rmSync(project, { recursive: true, force: true }));

  it('misses naming the link when it points at another copy, and hits each copy after', async () => {
    expect(status(await build())).toBe('cache miss: no entry');
    expect(status(await build())).toBe('cache hit');

    link('pkg@1.0.0_patch_abc');
    const switched = await build();
    expect(status(switched)).toMatch(/^cache miss: input node_modules\/pkg changed/);
    expect(readFileSync(join(project, 'out.txt'), 'utf8')).toBe('built with pkg patched\n');

    link('pkg@1.0.0');
    rmSync(join(project, 'out.txt'));
    expect(status(await build())).toBe('cache hit');
    expect(readFileSync(join(project, 'out.txt'), 'utf8')).toBe('built with pkg plain\n');
  });
});
