// Builds the Linux file-access tracer for one target: the preload library
// `runner-aware-preload.<triple>.so` (C, src-rs/tracer) and the supervisor
// `runner-aware-trace.<triple>` (Rust, src-rs/tracer-supervisor), written
// beside the addon of that triple.
//
//   node scripts/build-tracer.mjs [--triple linux-arm64-gnu --cc "zig cc -target aarch64-linux-gnu.2.17"]
//                                  [--supervisor-cc "zig cc -target aarch64-linux-musl"] [--out-dir DIR]
//
// Without options it builds for this machine with $CC (default cc). The
// supervisor is linked statically, so any libc may build it: cargo builds it
// for the triple's architecture with `--cc` (or `--supervisor-cc`) as the
// linker, against glibc with crt-static, or against musl where the triple or
// that compiler names musl (a release builds it against musl for every
// Linux target: zig links glibc statically for no target). The Rust target
// must be installed (`rustup target add`).

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** `linux-<arch>-<libc>` of this machine, as the addon's file names have it. */
function hostTriple() {
  const arch = process.arch === 'x64' ? 'x64' : process.arch;
  const musl = !process.report?.getReport()?.header?.glibcVersionRuntime;
  return `linux-${arch}-${musl ? 'musl' : 'gnu'}`;
}

/** Builds both files; returns false (after saying why) when a build fails. */
export function buildTracer({ root, triple = hostTriple(), cc = process.env.CC || 'cc', supervisorCc = cc, outDir = root }) {
  const src = join(root, 'src-rs', 'tracer');
  const words = (command) => command.split(' ').filter(Boolean);
  const warnings = ['-Wall', '-Wextra'];
  // The preload library is every C file of src-rs/tracer/preload, one per concern.
  const preloadDir = join(src, 'preload');
  const preloadSources = readdirSync(preloadDir).filter((name) => name.endsWith('.c')).sort().map((name) => join(preloadDir, name));
  const jobs = [
    [...words(cc), '-O2', ...warnings, '-fPIC', '-shared', '-fvisibility=hidden', '-o', join(outDir, `runner-aware-preload.${triple}.so`), ...preloadSources, '-ldl'],
  ];
  for (const [compiler, ...args] of jobs) {
    const run = spawnSync(compiler, args, { stdio: 'inherit' });
    if (run.error || run.status !== 0) {
      const why = run.error ? `${compiler} could not be run (${run.error.message})` : `${compiler} failed`;
      process.stderr.write(`runner-aware: building the file-access tracer needs a C compiler (on Debian: gcc and libc6-dev): ${why}.\n`);
      return false;
    }
  }
  return buildSupervisor({ root, triple, linker: supervisorCc, outDir });
}

/** Rust's name for the supervisor's target: the triple's architecture, against musl where the triple or the linker names it. */
function supervisorTarget(triple, linker) {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[triple.split('-')[1]];
  if (!arch) return undefined;
  const musl = triple.endsWith('-musl') || /musl/.test(linker);
  return `${arch}-unknown-linux-${musl ? 'musl' : 'gnu'}`;
}

/**
 * Builds the supervisor with cargo for `triple`, `linker` (a C compiler
 * command, of several words for zig) linking it statically; returns false
 * (after saying why) when the build fails.
 */
function buildSupervisor({ root, triple, linker, outDir }) {
  const fail = (why) => {
    process.stderr.write(`runner-aware: building the file-access tracer's supervisor (Rust, src-rs/tracer-supervisor): ${why}.\n`);
    return false;
  };
  const target = supervisorTarget(triple, linker);
  if (!target) return fail(`no Rust target for ${triple}: the tracer is for Linux on x64 and arm64`);
  const libdir = spawnSync('rustc', ['--print', 'target-libdir', '--target', target], { encoding: 'utf8' });
  if (libdir.error || libdir.status !== 0 || !existsSync(libdir.stdout.trim())) {
    return fail(`the Rust target ${target} is not installed (rustup target add ${target})`);
  }
  // Its own target directory: the static flags would otherwise rebuild the
  // addon's dependencies each time one build follows the other.
  const targetDir = join(root, 'target', 'tracer');
  mkdirSync(targetDir, { recursive: true });
  // cargo runs a linker by path: a command of several words becomes a script.
  const words = linker.split(' ').filter(Boolean);
  let linkerPath = linker;
  if (words.length > 1) {
    linkerPath = join(targetDir, `linker-${target}.sh`);
    const quoted = words.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ');
    writeFileSync(linkerPath, `#!/bin/sh\nexec ${quoted} "$@"\n`, { mode: 0o755 });
  }
  // A C compiler for musl (zig cc -target ...-musl, musl-gcc) brings musl's
  // start files and libc itself: Rust's own copies would be linked twice.
  const bringsMusl = target.endsWith('-musl') && /musl|zig/.test(linker);
  const rustflags = ['-C', 'target-feature=+crt-static', ...(bringsMusl ? ['-C', 'link-self-contained=no'] : [])];
  const env = {
    ...process.env,
    CARGO_TARGET_DIR: targetDir,
    RUSTFLAGS: rustflags.join(' '),
    [`CARGO_TARGET_${target.toUpperCase().replaceAll('-', '_')}_LINKER`]: linkerPath,
  };
  const build = spawnSync('cargo', ['build', '--release', '-p', 'runner-aware-trace', '--target', target], { cwd: root, stdio: 'inherit', env });
  if (build.error || build.status !== 0) {
    return fail(build.error ? `cargo could not be run (${build.error.message})` : `cargo build --target ${target} failed`);
  }
  copyFileSync(join(targetDir, target, 'release', 'runner-aware-trace'), join(outDir, `runner-aware-trace.${triple}`));
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
