// Loads the runner-side addon (found by addon-path.ts: the local build in a
// checkout, else the platform package), or says which package is missing.

import { createRequire } from 'node:module';
import { join } from 'node:path';

import { bundleFile, findOwnAddon } from './addon-path.js';

import type * as Binding from '../index.js';

export { platformTriple } from './addon-path.js';

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
  const { triple, packageName, root, path } = findOwnAddon();
  if (path === undefined) throw missingAddonError(triple, packageName, root);
  try {
    loaded = { binding: createRequire(bundleFile())(path) as typeof Binding, path };
  } catch (cause) {
    throw new Error(`runner-aware: could not load the native addon ${path}: ${(cause as Error).message}`, { cause });
  }
  return loaded;
}
