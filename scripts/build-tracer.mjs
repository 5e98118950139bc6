// Builds the Linux file-access tracer (src-rs/tracer) for one target: the
// preload library `runner-aware-preload.<triple>.so` and the supervisor
// `runner-aware-trace.<triple>`, written beside the addon of that triple.
//
//   node scripts/build-tracer.mjs [--triple linux-arm64-gnu --cc "zig cc -target aarch64-linux-gnu.2.17"]
//                                  [--supervisor-cc "zig cc -target aarch64-linux-musl"] [--out-dir DIR]
//
// Without options it builds for this machine with $CC (default cc). The
// supervisor is linked statically, so any libc may build it: a release
// builds it against musl for every Linux target (zig links glibc statically
// for no target).

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** `linux-<arch>-<libc>` of this machine, as the addon's file names have it. */
function hostTriple() {
  const arch = process.arch === 'x64' ? 'x64' : process.arch;
  const musl = !process.report?.getReport()?.header?.glibcVersionRuntime;
  return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
}

/** Builds both files; returns false (after saying why) when the compiler fails. */
export function buildTracer({ root, triple = hostTriple(), cc = process.env.CC || 'cc', supervisorCc = cc, outDir = root }) {
  const src = join(root, 'src-rs', 'tracer');
  const words = (command) => command.split(' ').filter(Boolean);
  const warnings = ['-Wall', '-Wextra'];
  // The preload library is every C file of src-rs/tracer/preload, one per concern.
  const preloadDir = join(src, 'preload');
  const preloadSources = readdirSync(preloadDir).filter((name) => name.endsWith('.c')).sort().map((name) => join(preloadDir, name));
  const jobs = [
    [...words(cc), '-O2', ...warnings, '-fPIC', '-shared', '-fvisibility=hidden', '-o', join(outDir, `runner-aware-preload.${triple}.so`), ...preloadSources, '-ldl'],
    [...words(supervisorCc), '-O2', ...warnings, '-static', '-o', join(outDir, `runner-aware-trace.${triple}`), join(src, 'supervisor.c')],
  ];
  for (const [compiler, ...args] of jobs) {
    const run = spawnSync(compiler, args, { stdio: 'inherit' });
    if (run.error || run.status !== 0) {
      const why = run.error ? `${compiler} could not be run (${run.error.message})` : `${compiler} failed`;
      process.stderr.write(`runner-aware: building the file-access tracer needs a C compiler with static libc (on Debian: gcc and libc6-dev): ${why}.\n`);
      return false;
    }
  }
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: { triple: { type: 'string' }, cc: { type: 'string' }, 'supervisor-cc': { type: 'string' }, 'out-dir': { type: 'string' } },
  });
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  const ok = buildTracer({
    root,
    ...(values.triple ? { triple: values.triple } : {}),
    ...(values.cc ? { cc: values.cc, supervisorCc: values.cc } : {}),
    ...(values['supervisor-cc'] ? { supervisorCc: values['supervisor-cc'] } : {}),
    ...(values['out-dir'] ? { outDir: values['out-dir'] } : {}),
  });
  process.exit(ok ? 0 : 1);
}
