// Finds the runner-side addon: the local build in a checkout, else the
// platform package npm installed as an optional dependency.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type * as Binding from '../index.js';

/** The addon's exports plus the path it was loaded from. */
export interface LoadedBinding {
  binding: typeof Binding;
  path: string;
}

function thisFile(): string {
  return typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
}

function isMusl(): boolean {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return !report?.header?.glibcVersionRuntime;
  }
}

/** The napi-rs platform triple of this machine, e.g. `linux-x64-gnu`. */
export function platformTriple(): string {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

let loaded: LoadedBinding | undefined;

/** Loads the addon once, or throws an error that names the missing package and the fix. */
export function loadBinding(): LoadedBinding {
  if (loaded) return loaded;
  const triple = platformTriple();
  const packageName = `runner-aware-${triple}`;
  const root = dirname(dirname(thisFile()));
  const localBuild = join(root, `runner-aware.${triple}.node`);
  const require = createRequire(thisFile());
  let path: string | undefined;
  if (existsSync(localBuild)) {
    path = localBuild;
  } else {
    try {
      path = require.resolve(packageName);
    } catch {
      throw new Error(
        `runner-aware: no native addon for ${process.platform} ${process.arch} (${triple}). ` +
          `The package ${packageName} is missing: npm skips optional dependencies when installed ` +
          `with --no-optional or --omit=optional, and a lockfile written on another platform can ` +
          `leave it out (npm/cli#4828). Reinstall without those flags (rm -rf node_modules ` +
          `package-lock.json && npm install). The tool-side API needs no addon and keeps working.`,
      );
    }
  }
  loaded = { binding: require(path) as typeof Binding, path };
  return loaded;
}
