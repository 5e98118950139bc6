// `npm install` in a fresh clone: it leaves the committed lockfile as it is,
// no dependency's engines reject a Node version the build supports, and
// without Rust it stops with one sentence saying so.

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import semver from 'semver';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { root, run } from './helpers.js';

const windows = process.platform === 'win32';
const npm = windows ? 'npm.cmd' : 'npm';
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  devEngines: { runtime: { name: string; version: string } };
};

let dir = '';
beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'ra-dev-install-')));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('npm install in a checkout', () => {
  it('leaves package-lock.json unchanged', async () => {
    copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
    copyFileSync(join(root, 'package-lock.json'), join(dir, 'package-lock.json'));
    // What `npm install` writes to the lockfile, without the download and the build.
    const result = await run(npm, ['install', '--package-lock-only', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], {
      cwd: dir,
      shell: windows,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(readFileSync(join(dir, 'package-lock.json'), 'utf8')).toBe(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  });

  it('installs nothing whose engines reject a Node version the build supports', () => {
    const supported = manifest.devEngines.runtime.version;
    expect(manifest.devEngines.runtime.name).toBe('node');
    // Building needs at least what using the package needs.
    expect(semver.subset(supported, manifest.engines.node), `${supported} within ${manifest.engines.node}`).toBe(true);
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; engines?: { node?: string } }>;
    };
    const rejecting = Object.entries(lock.packages)
      .filter(([path]) => path !== '')
      .filter(([, pkg]) => pkg.engines?.node !== undefined && !semver.subset(supported, pkg.engines.node))
      .map(([path, pkg]) => `${path.replace(/^.*node_modules\//, '')}@${pkg.version} wants node ${pkg.engines?.node}`);
    expect(rejecting, `npm would print EBADENGINE on some Node in ${supported}`).toEqual([]);
  });
});

describe.skipIf(windows)('building without Rust', () => {
  const sentence =
    'runner-aware: building the native addon needs Rust (cargo), and cargo was not found on PATH: ' +
    'install Rust with rustup (https://rustup.rs), then run npm install again.\n';

  /** A PATH with node and nothing else, and a HOME with no ~/.cargo. */
  function withoutCargo(): Record<string, string> {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    mkdirSync(join(dir, 'home'));
    return { PATH: bin, HOME: join(dir, 'home') };
  }

  it('says in one sentence that Rust is needed and how to get it', async () => {
    const result = await run(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { env: withoutCargo() });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(sentence);
  });

  it('says so through npm run build, as npm install runs it', async () => {
    const env = withoutCargo();
    // npm itself, run by node, with node and the shell npm runs scripts in alone on PATH.
    symlinkSync('/bin/sh', join(dir, 'bin', 'sh'));
    const npmCli = realpathSync(
      (process.env['PATH'] ?? '').split(delimiter).map((entry) => join(entry, 'npm')).find((file) => {
        try {
          return realpathSync(file) !== '';
        } catch {
          return false;
        }
      }) ?? 'npm',
    );
    const result = await run(process.execPath, [npmCli, 'run', 'build:native'], { env: { ...env, npm_config_update_notifier: 'false' } });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(sentence);
    expect(result.stderr).not.toContain('cargo metadata');
  });

  it('points at ~/.cargo/bin when rustup installed cargo there but PATH lacks it', async () => {
    const env = withoutCargo();
    mkdirSync(join(env['HOME']!, '.cargo', 'bin'), { recursive: true });
    writeFileSync(join(env['HOME']!, '.cargo', 'bin', 'cargo'), '');
    const result = await run(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `runner-aware: building the native addon needs Rust (cargo), and cargo is installed in ${join(env['HOME']!, '.cargo', 'bin')} ` +
        `but that directory is not on PATH (open a new shell, or run \`source "${join(env['HOME']!, '.cargo', 'env')}"\`), then run npm install again.\n`,
    );
  });
});
