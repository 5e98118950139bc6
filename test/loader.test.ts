// The addon loader, run from copies of dist/ outside the checkout: the error
// when no addon is installed, the fallback to the platform package, and a
// tool side that needs no addon at all.

import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { root, run, underRunner } from './helpers.js';

const addon = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file));
if (!addon) throw new Error('no local addon build at the root: run npm run build');
const triple = addon.slice('runner-aware.'.length, -'.node'.length);
const detected = `${process.platform} ${process.arch}${process.platform === 'linux' ? (triple.endsWith('musl') ? ' musl' : ' glibc') : ''}`;
// The manifest as published: pack:all adds every platform package as an optional dependency.
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
const version = String(manifest['version']);
manifest['optionalDependencies'] = Object.fromEntries(
  readdirSync(join(root, 'npm')).map((dir) => [`runner-aware-${dir}`, String(manifest['version'])]),
);

let scratch: string;

/** A copy of the package as npm would install it (dist/ and package.json), with no addon beside it. */
function copyPackage(dir: string, edit: (pkg: Record<string, unknown>) => Record<string, unknown> = (pkg) => pkg): string {
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify(edit({ ...manifest })));
  return dir;
}

/** Calls createServer from a copied package in a fresh process and returns what it printed. */
async function createServerFrom(dir: string, format: 'esm' | 'cjs'): Promise<string> {
  const code =
    format === 'esm'
      ? `import(${JSON.stringify(pathToFileURL(join(dir, 'dist', 'runner.mjs')).href)})`
      : `Promise.resolve(require(${JSON.stringify(join(dir, 'dist', 'runner.cjs'))}))`;
  const result = await run(process.execPath, [
    '-e',
    `${code}.then((m) => m.createServer()).then(async (s) => { console.log('addon ' + s.env.VP_RUN_NODE_CLIENT_PATH); await s.close(); }, (e) => console.log('error ' + e.message))`,
  ], { cwd: scratch });
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

beforeAll(() => {
  scratch = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-loader-')));
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the addon loader', () => {
  for (const format of ['esm', 'cjs'] as const) {
    it(`names the missing package, the platform and the fix (${format})`, async () => {
      const dir = copyPackage(join(scratch, `bare-${format}`));
      const output = await createServerFrom(dir, format);
      expect(output).toMatch(/^error runner-aware: /);
      expect(output).toContain(`the package runner-aware-${triple} is not installed`);
      expect(output).toContain(`the native addon for ${detected} is missing`);
      expect(output).toContain('--omit=optional');
      expect(output).toContain('rm -rf node_modules package-lock.json && npm install');
      expect(output).toContain('the tool-side API keeps working');
      expect(output).not.toContain('pack:all');
    });
  }

  it('tells a plain npm pack of a checkout (no platform packages) to use pack:all and install both tarballs', async () => {
    // What `npm pack` makes of the repository's own manifest: no optionalDependencies.
    const dir = copyPackage(join(scratch, 'plain-pack'), ({ optionalDependencies: _, ...pkg }) => pkg);
    for (const format of ['esm', 'cjs'] as const) {
      const output = await createServerFrom(dir, format);
      expect(output).toContain(`the native addon for ${detected} is missing: the package runner-aware-${triple} is not installed`);
      expect(output).toContain('packed without its platform packages (a plain `npm pack` of a checkout)');
      expect(output).toContain(
        `run \`npm run pack:all\` and install both tarballs it writes: \`npm install <checkout>/artifacts/runner-aware-${version}.tgz <checkout>/artifacts/runner-aware-${triple}-${version}.tgz\``,
      );
      expect(output).toContain('or install from the checkout itself: `npm install <checkout>`');
      expect(output).not.toContain('--omit=optional');
    }
  });

  it('tells a checkout without its addon build to build it', async () => {
    const dir = copyPackage(join(scratch, 'unbuilt-checkout'), ({ optionalDependencies: _, ...pkg }) => pkg);
    writeFileSync(join(dir, 'Cargo.toml'), '[workspace]\n');
    const output = await createServerFrom(dir, 'esm');
    expect(output).toContain(`This checkout has no addon build (runner-aware.${triple}.node): run \`npm install\` (or \`npm run build\`) in ${dir}`);
    expect(output).toContain('Rust (cargo)');
    expect(output).not.toContain('--omit=optional');
    expect(output).not.toContain('pack:all');
  });

  it('says so when this version publishes no addon for the platform', async () => {
    const dir = copyPackage(join(scratch, 'unsupported'), (pkg) => ({
      ...pkg,
      optionalDependencies: { 'runner-aware-plan9-mips': String(pkg['version']) },
    }));
    const output = await createServerFrom(dir, 'esm');
    expect(output).toContain(`runner-aware-${triple} is not installed`);
    expect(output).toContain('publishes no addon for this platform (it has runner-aware-plan9-mips)');
  });

  it('falls back to the platform package when there is no local build', async () => {
    const modules = join(scratch, 'app', 'node_modules');
    const pkg = copyPackage(join(modules, 'runner-aware'));
    const platform = join(modules, `runner-aware-${triple}`);
    mkdirSync(platform, { recursive: true });
    copyFileSync(join(root, 'npm', triple, 'package.json'), join(platform, 'package.json'));
    copyFileSync(join(root, addon), join(platform, addon));
    for (const format of ['esm', 'cjs'] as const) {
      expect(await createServerFrom(pkg, format)).toBe(`addon ${join(platform, addon)}`);
    }
  });

  it('is not needed on the tool side', async () => {
    const dir = copyPackage(join(scratch, 'tool-only'));
    const entry = JSON.stringify(pathToFileURL(join(dir, 'dist', 'index.mjs')).href);
    const { reports } = await underRunner(
      `const { addValue, getEnv, isConnected } = await import(${entry});
       addValue('from', 'copy'); getEnv('HOME');
       if (!isConnected()) process.exit(3);`,
    );
    expect(reports.values).toEqual({ from: 'copy' });
    const offline = await run(process.execPath, ['--input-type=module', '-e', `const m = await import(${entry}); console.log(String(m.getEnv('HOME')), m.isConnected())`], {
      cwd: scratch,
      env: { PATH: process.env['PATH'] ?? '' },
    });
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stdout.trim()).toBe('undefined false');
  });
});
