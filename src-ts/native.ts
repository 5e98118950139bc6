// Finds the runner-side addon: the local build in a checkout, else the
// platform package npm installed as an optional dependency.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import type * as Binding from '../index.js';

// node:fs as an ES module takes a fresh process ~1.3 ms to import (its facade
// loads fs/promises); only the runner side needs it, so it loads on first use.
function fs(): typeof import('node:fs') {
  return createRequire(process.execPath)('node:fs') as typeof import('node:fs');
}

/** The addon's exports plus the path it was loaded from. */
export interface LoadedBinding {
  binding: typeof Binding;
  path: string;
}

// esbuild empties `import.meta` in the CommonJS bundle, where the module's own
// `__filename` applies. The ESM bundle must not read `__filename`: `node -e`
// defines a global one ('[eval]').
// `node:url` is required here, on first use, rather than imported: a static
// import of it costs every tool ~0.2 ms of start-up for an ES facade.
function thisFile(): string {
  const url = import.meta.url as string | undefined;
  if (!url) return __filename;
  const { fileURLToPath } = createRequire(url)('node:url') as typeof import('node:url');
  return fileURLToPath(url);
}

function isMusl(): boolean {
  try {
    return fs().readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
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

/** The platform packages this version publishes, from its own package.json. */
function publishedPlatformPackages(root: string): string[] {
  try {
    const manifest = JSON.parse(fs().readFileSync(join(root, 'package.json'), 'utf8')) as {
      optionalDependencies?: Record<string, string>;
    };
    return Object.keys(manifest.optionalDependencies ?? {});
  } catch {
    return [];
  }
}

function missingAddonError(triple: string, packageName: string, root: string): Error {
  const detected = `${process.platform} ${process.arch}${process.platform === 'linux' ? (triple.endsWith('musl') ? ' musl' : ' glibc') : ''}`;
  const published = publishedPlatformPackages(root);
  const fix =
    published.length > 0 && !published.includes(packageName)
      ? `runner-aware publishes no addon for this platform (it has ${published.join(', ')}); ` +
        'build it from a checkout with `npm install`, which runs `napi build`.'
      : `npm skips optional dependencies when installed with --no-optional or --omit=optional, and a ` +
        `lockfile written on another platform can leave this one's package out (npm/cli#4828). ` +
        'Reinstall without those flags: rm -rf node_modules package-lock.json && npm install.';
  return new Error(
    `runner-aware: the native addon for ${detected} is missing: the package ${packageName} is not installed. ` +
      `${fix} Only the runner side (createServer) needs the addon; the tool-side API keeps working without it.`,
  );
}

/** Loads the addon once, or throws an error that names the missing package and the fix. */
export function loadBinding(): LoadedBinding {
  if (loaded) return loaded;
  const triple = platformTriple();
  const packageName = `runner-aware-${triple}`;
  const file = thisFile();
  const root = dirname(dirname(file));
  const localBuild = join(root, `runner-aware.${triple}.node`);
  const require = createRequire(file);
  let path: string;
  if (fs().existsSync(localBuild)) {
    path = localBuild;
  } else {
    try {
      path = require.resolve(packageName);
    } catch {
      throw missingAddonError(triple, packageName, root);
    }
  }
  try {
    loaded = { binding: require(path) as typeof Binding, path };
  } catch (cause) {
    throw new Error(`runner-aware: could not load the native addon ${path}: ${(cause as Error).message}`, { cause });
  }
  return loaded;
}
