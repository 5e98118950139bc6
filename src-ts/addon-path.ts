// Where this package's own addon is: the local build in a checkout, else the
// platform package npm installed as an optional dependency. The runner side
// loads it from here, and so does the tool side when the runner handed out no
// addon it could load. No static imports: the tool bundle carries this code,
// and a tool that never needs it pays nothing for it.

function fs(): typeof import('node:fs') {
  return process.getBuiltinModule('node:fs');
}

/**
 * The bundle this code runs in (`dist/index.mjs`, `dist/runner.cjs`, …).
 * esbuild empties `import.meta` in the CommonJS bundles, where the module's
 * own `__filename` applies. The ESM bundles must not read `__filename`:
 * `node -e` defines a global one (`'[eval]'`).
 */
export function bundleFile(): string {
  const url = import.meta.url as string | undefined;
  if (!url) return __filename;
  return process.getBuiltinModule('node:url').fileURLToPath(url);
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

/** Where the package's own addon was looked for, and the file when one was found. */
export interface OwnAddon {
  /** The platform triple, e.g. `linux-x64-gnu`. */
  triple: string;
  /** The platform package, `runner-aware-<triple>`. */
  packageName: string;
  /** The package's root: the directory above `dist`. */
  root: string;
  /** The `.node` file: the checkout's build, else the platform package's; `undefined` when neither is there. */
  path: string | undefined;
}

/** Finds the package's own addon without loading it. */
export function findOwnAddon(): OwnAddon {
  const { dirname, join } = process.getBuiltinModule('node:path');
  const triple = platformTriple();
  const packageName = `runner-aware-${triple}`;
  const file = bundleFile();
  const root = dirname(dirname(file));
  const localBuild = join(root, `runner-aware.${triple}.node`);
  if (fs().existsSync(localBuild)) return { triple, packageName, root, path: localBuild };
  try {
    const path = process.getBuiltinModule('node:module').createRequire(file).resolve(packageName);
    return { triple, packageName, root, path };
  } catch {
    return { triple, packageName, root, path: undefined };
  }
}
