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

/** What the package's own package.json says: its version and the platform packages it depends on. */
function ownManifest(root: string): { version: string; platformPackages: string[] | undefined } {
  try {
    const manifest = JSON.parse(fs().readFileSync(join(root, 'package.json'), 'utf8')) as {
      version?: string;
      optionalDependencies?: Record<string, string>;
    };
    return {
      version: manifest.version ?? '',
      platformPackages: manifest.optionalDependencies ? Object.keys(manifest.optionalDependencies) : undefined,
    };
  } catch {
    return { version: '', platformPackages: undefined };
  }
}

/**
 * Why the addon is missing, and the command that fixes it. Three cases look
 * alike from here but have different fixes:
 * - the manifest lists platform packages (a release, or `npm run pack:all`)
 *   and this platform's was skipped: npm left out an optional dependency;
 * - it lists none: a build without them, either a checkout that was never
 *   built (it has the Rust sources) or a plain `npm pack` of one;
 * - it lists others only: no addon is published for this platform.
 */
function missingAddonError(triple: string, packageName: string, root: string): Error {
  const detected = `${process.platform} ${process.arch}${process.platform === 'linux' ? (triple.endsWith('musl') ? ' musl' : ' glibc') : ''}`;
  const { version, platformPackages } = ownManifest(root);
  let fix: string;
  if (platformPackages === undefined && fs().existsSync(join(root, 'Cargo.toml'))) {
    fix =
      `This checkout has no addon build (runner-aware.${triple}.node): run \`npm install\` (or \`npm run build\`) in ${root}, ` +
      'which builds it with Rust (cargo).';
  } else if (platformPackages === undefined) {
    fix =
      `This copy of runner-aware was packed without its platform packages (a plain \`npm pack\` of a checkout). ` +
      'In the checkout, run `npm run pack:all` and install both tarballs it writes: ' +
      `\`npm install <checkout>/artifacts/runner-aware-${version}.tgz <checkout>/artifacts/${packageName}-${version}.tgz\`; ` +
      'or install from the checkout itself: `npm install <checkout>`.';
  } else if (!platformPackages.includes(packageName)) {
    fix =
      `runner-aware publishes no addon for this platform (it has ${platformPackages.join(', ')}); ` +
      'build it from a checkout with `npm install`, which runs `napi build`.';
  } else {
    fix =
      `npm skips optional dependencies when installed with --no-optional or --omit=optional, and a ` +
      `lockfile written on another platform can leave this one's package out (npm/cli#4828). ` +
      'Reinstall without those flags: rm -rf node_modules package-lock.json && npm install.';
  }
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
