// Zero configuration as a project runs its tasks: through `npm run`, and by a
// package's binary name from node_modules/.bin. npm writes its own logs and
// lists their directory on every run, outside the checkout: neither inputs
// nor outputs, so `npm run build` caches as the command it runs does, and
// `inspect` and the reference runner judge both alike.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { nodeModulesBinPath, packageManagerPaths } from '../dist/runner.mjs';
import { root, run, type Run } from './helpers.js';

const cli = join(root, 'dist', 'cli.cjs');
const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
const traced = process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch);

let work = '';
let app = '';
let home = '';

/** A clean env as a shell gives one: npm's cache and logs under a HOME of the test's own. */
function env(): Record<string, string> {
  const transport = process.env['RUNNER_AWARE_TRANSPORT'];
  return {
    PATH: process.env['PATH'] ?? '',
    HOME: home,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }),
  };
}

const inspect = (...command: string[]): Promise<Run> => run(process.execPath, [cli, 'inspect', '--', ...command], { cwd: app, env: env() });
const cached = (...command: string[]): Promise<Run> => run(process.execPath, [runner, '--', ...command], { cwd: app, env: env() });

function verdictLine(result: Run): string {
  return result.stderr.split('\n').find((line) => line.startsWith('runner-aware: exit ')) ?? result.stderr;
}

beforeAll(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-package-managers-')));
  home = join(work, 'home');
  app = join(work, 'app');
  mkdirSync(home);
  mkdirSync(join(app, 'node_modules', '.bin'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, scripts: { build: 'node build.mjs' } }));
  writeFileSync(join(app, 'src.txt'), 'hello');
  writeFileSync(
    join(app, 'build.mjs'),
    `import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
mkdirSync('dist', { recursive: true });
writeFileSync('dist/out.txt', readFileSync('src.txt', 'utf8').toUpperCase());
console.log('built');`,
  );
  // A package's binary, as npm links one.
  writeFileSync(join(app, 'node_modules', '.bin', 'greet'), '#!/bin/sh\necho "greetings from the project"\n');
  chmodSync(join(app, 'node_modules', '.bin', 'greet'), 0o755);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the package managers and Node keep files of their own', () => {
  it('names them from the env, and no package store', () => {
    const paths = packageManagerPaths({ HOME: '/home/u', XDG_CACHE_HOME: '/xdg' });
    expect(paths).toEqual(expect.arrayContaining(['/home/u/.npm/_logs', '/home/u/.npm/_cacache', '/xdg/pnpm', '/home/u/.local/state/pnpm']));
    expect(paths.some((path) => path.includes('_npx') || path.endsWith('/store'))).toBe(false);
    expect(packageManagerPaths({ HOME: '/home/u', npm_config_cache: '/c' })).toContain('/c/_logs');
  });

  it('puts node_modules/.bin of the directory and its parents first on PATH', () => {
    expect(nodeModulesBinPath('/w/app', '/usr/bin')).toBe('/w/app/node_modules/.bin:/w/node_modules/.bin:/node_modules/.bin:/usr/bin');
  });
});

describe.runIf(traced)('npm run and node_modules/.bin, traced with no configuration', () => {
  it('judges `npm run build` as it judges the command it runs: cacheable', async () => {
    const direct = await inspect('node', 'build.mjs');
    expect(direct.code, direct.stderr).toBe(0);
    expect(verdictLine(direct)).toMatch(/, cacheable$/);
    const script = await inspect('npm', 'run', 'build');
    expect(script.code, script.stderr).toBe(0);
    expect(script.stdout).toContain('built');
    expect(verdictLine(script), script.stderr).toMatch(/, cacheable$/);
    // npm did write its log under HOME, which is no output of the task.
    expect(script.stderr).not.toContain(join(home, '.npm'));
  });

  it('caches `npm run build` in the reference runner: the second run hits, an edit misses', async () => {
    rmSync(join(app, 'node_modules', '.cache'), { recursive: true, force: true });
    const first = await cached('npm', 'run', 'build');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/^cache miss: no entry$/m);
    expect(first.stderr, first.stderr).not.toMatch(/^cache skipped/m);
    const second = await cached('npm', 'run', 'build');
    expect(second.stderr, second.stderr).toMatch(/^cache hit/m);
    writeFileSync(join(app, 'src.txt'), 'edited');
    const third = await cached('npm', 'run', 'build');
    expect(third.stderr).toMatch(/^cache miss: .*src\.txt/m);
  }, 60_000);

  it('hits in a clean checkout a build that lists its directory, and misses when a name appears there', async () => {
    // What esbuild, tsc and tailwind do: list the project's directory, then write an output there.
    writeFileSync(
      join(app, 'list-build.mjs'),
      `import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
const names = readdirSync('.').filter((name) => name.endsWith('.txt'));
mkdirSync('out', { recursive: true });
writeFileSync('out/list.txt', names.join(','));`,
    );
    const first = await cached('node', 'list-build.mjs');
    expect(first.stderr, first.stderr).toMatch(/^cache miss: no entry$/m);
    expect(first.stderr).not.toMatch(/^cache skipped/m);
    // A clean checkout, as on CI: no out/ (and the runner's own cache in node_modules now).
    rmSync(join(app, 'out'), { recursive: true });
    const clean = await cached('node', 'list-build.mjs');
    expect(clean.stderr, clean.stderr).toMatch(/^cache hit/m);
    expect(readFileSync(join(app, 'out', 'list.txt'), 'utf8')).toBe('src.txt');
    writeFileSync(join(app, 'new.txt'), '');
    const added = await cached('node', 'list-build.mjs');
    expect(added.stderr).toMatch(/^cache miss: input \. changed/m);
    expect(readFileSync(join(app, 'out', 'list.txt'), 'utf8')).toBe('new.txt,src.txt');
  }, 60_000);

  it.each([['auto'], ['off']])("runs a package's binary by name, and says when a name is found nowhere (--trace %s)", async (mode) => {
    const found = await run(process.execPath, [cli, 'inspect', '--trace', mode, '--', 'greet'], { cwd: app, env: env() });
    expect(found.code, found.stderr).toBe(0);
    expect(found.stdout).toContain('greetings from the project');
    const missing = await run(process.execPath, [cli, 'inspect', '--trace', mode, '--', 'no-such-tool-anywhere'], { cwd: app, env: env() });
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/cannot run no-such-tool-anywhere: not found on PATH/);
  });
});
