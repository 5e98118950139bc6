// The Windows tracer (src-rs/tracer-windows) under Wine, from this Linux host
// (scripts/ci-cross.sh, its windows section). Strace cannot see inside Wine,
// so the oracle is each probe's own known list: every case runs one Win32
// operation of test/cross/windows-probe.c under the launcher and names the
// records the trace must hold for the paths it used; the trace must be
// complete (begin and end records, no incomplete record); where the tracer
// cannot see (an open by file ID, a DLL that does not load, a child leaving
// the job or outliving the command) it must say so. Then a Node tool
// tree (node.exe spawning node.exe, with its env and with an env of its own)
// whose accesses must be recorded, and, through the Rust example runner
// built for Windows, cached builds by esbuild.exe and by tsc under node.exe:
// miss, hit, restore, and a miss for each kind of mutation.
//
//   node test/cross/trace-windows.mjs --tracer-dir DIR --triple T --probe EXE [--node EXE]
//                                     [--runner EXE [--esbuild EXE]] --scratch DIR
//
// Runs programs with `wine` in the caller's WINEPREFIX. Prints one line per
// case and `N passed, N failed`; exits 1 if any failed.

import { spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    'tracer-dir': { type: 'string' },
    triple: { type: 'string' },
    probe: { type: 'string' },
    node: { type: 'string' },
    runner: { type: 'string' },
    esbuild: { type: 'string' },
    scratch: { type: 'string' },
  },
});
mkdirSync(opts.scratch, { recursive: true });
const launcher = join(opts['tracer-dir'], `runner-aware-trace.${opts.triple}.exe`);
const dll = join(opts['tracer-dir'], `runner-aware-preload.${opts.triple}.dll`);

/** A Linux path as Wine's Z: drive names it. */
const win = (path) => `Z:${path.replaceAll('/', '\\')}`;

let passed = 0;
const failed = [];
function check(name, problems, detail = '') {
  if (problems.length === 0) {
    passed++;
    console.log(`  ok   ${name}${detail ? ` (${detail})` : ''}`);
  } else {
    failed.push(name);
    console.log(`  FAIL ${name}: ${problems.join('; ')}`);
  }
}

/** Runs a Windows program under Wine, its output in files (node.exe dies writing to a Unix pipe). */
function wine(args, { cwd, env = {}, timeout = 120_000 } = {}) {
  const out = join(opts.scratch, 'last-stdout.txt');
  const err = join(opts.scratch, 'last-stderr.txt');
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  const run = spawnSync('wine', args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', ...fds], timeout });
  fds.forEach(closeSync);
  return { status: run.status, error: run.error, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
}

/** Runs `command` under the launcher; returns the trace's records and the run. */
function traced(dir, command, { env = {} } = {}) {
  const trace = join(dir, 'trace');
  writeFileSync(trace, '');
  const run = wine([launcher, '--mode', 'preload', '--', ...command], {
    cwd: dir,
    env: { RUNNER_AWARE_TRACE: win(trace), RUNNER_AWARE_TRACE_PRELOAD: win(dll), ...env },
  });
  const records = readFileSync(trace, 'utf8').split('\0').slice(0, -1);
  return { run, records };
}

/** The launcher's failure, if it failed: how it exited and what it said. */
function exitProblems(run) {
  return run.error || run.status !== 0 ? [`exit ${run.status ?? run.error}: ${run.stderr.trim().slice(0, 300)}`] : [];
}

/** What a run's trace lacks: a begin and end record, no incomplete record, the expected records. */
function traceProblems({ run, records }, expected) {
  const problems = exitProblems(run);
  if (!records.includes('bpreload')) problems.push('no begin record');
  if (!records.includes('e')) problems.push('no end record');
  for (const record of records.filter((r) => r.startsWith('!'))) problems.push(`incomplete: ${record.slice(1)}`);
  for (const [kind, path] of expected) {
    if (!records.includes(kind + path)) {
      const seen = records.filter((r) => r.slice(1) === path).map((r) => r[0]);
      problems.push(`no '${kind}' record of ${path}${seen.length ? ` (seen as ${seen.join(', ')})` : ''}`);
    }
  }
  return problems;
}

function scratch(name) {
  const dir = join(opts.scratch, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'dir', 'sub'), { recursive: true });
  mkdirSync(join(dir, 'empty'));
  writeFileSync(join(dir, 'in.txt'), 'input\n');
  writeFileSync(join(dir, 'dir', 'a.txt'), 'a\n');
  return dir;
}

// The probe oracle: operation, its arguments (in the scratch directory) and
// the records the trace must hold.
const cases = [
  ['read', ['read', 'in.txt'], [['r', 'in.txt']]],
  ['read a missing file', ['read-missing', 'nope.txt'], [['m', 'nope.txt']]],
  ['create', ['create', 'new.txt'], [['w', 'new.txt']]],
  ['append', ['append', 'in.txt'], [['w', 'in.txt']]],
  ['truncate', ['truncate', 'in.txt'], [['w', 'in.txt']]],
  ['attributes of a file', ['attributes', 'in.txt'], [['f', 'in.txt']]],
  ['attributes of a missing file', ['attributes', 'nope.txt'], [['m', 'nope.txt']]],
  ['attributes of a missing directory', ['attributes', 'nodir\\x.txt'], [['m', 'nodir\\x.txt']]],
  ['attributes-ex', ['attributes-ex', 'dir'], [['f', 'dir']]],
  ['list', ['list', 'dir'], [['l', 'dir']]],
  ['list an empty directory', ['list', 'empty'], [['l', 'empty']]],
  ['FindFirstFile of one name', ['find-one', 'dir\\a.txt'], [['f', 'dir\\a.txt']]],
  ['FindFirstFile of a missing name', ['find-one', 'dir\\nope.txt'], [['m', 'dir\\nope.txt']]],
  ['delete', ['delete', 'in.txt'], [['d', 'in.txt']]],
  ['move', ['move', 'in.txt', 'moved.txt'], [['d', 'in.txt'], ['w', 'moved.txt']]],
  ['move over a file', ['move', 'in.txt', 'dir\\a.txt'], [['d', 'in.txt'], ['w', 'dir\\a.txt']]],
  ['copy', ['copy', 'in.txt', 'copy.txt'], [['r', 'in.txt'], ['w', 'copy.txt']]],
  ['hard link', ['hardlink', 'in.txt', 'link.txt'], [['w', 'link.txt']]],
  ['mkdir', ['mkdir', 'made'], [['w', 'made']]],
  ['rmdir', ['rmdir', 'empty'], [['d', 'empty']]],
  ['delete on close', ['delete-on-close', 'in.txt'], [['d', 'in.txt']]],
  ['delete by disposition', ['disposition', 'in.txt'], [['d', 'in.txt']]],
  ['a name relative to the current directory', ['relative-read', 'dir', 'a.txt'], [['r', 'dir\\a.txt']]],
];

console.log('Windows tracer under Wine: the probe oracle');
for (const [name, [op, ...args], expected] of cases) {
  const dir = scratch('probe');
  const absolute = (arg) => `${win(dir)}\\${arg}`;
  // relative-read's second argument stays relative: it is the point.
  const argv = op === 'relative-read' ? [absolute(args[0]), args[1]] : args.map(absolute);
  const result = traced(dir, [win(opts.probe), op, ...argv]);
  check(name, traceProblems(result, expected.map(([kind, path]) => [kind, absolute(path)])));
}
{
  const dir = scratch('probe');
  const result = traced(dir, [win(opts.probe), 'spawn', win(opts.probe), 'read', `${win(dir)}\\in.txt`]);
  check('a child process (CreateProcessW) reading', traceProblems(result, [['x', win(opts.probe)], ['r', `${win(dir)}\\in.txt`]]));
}

/** What a run's trace lacks to say it is incomplete for the reason `why` matches. */
function incompleteProblems({ run, records }, why) {
  const problems = exitProblems(run);
  if (!records.includes('bpreload') || !records.includes('e')) problems.push('no begin or end record');
  const incomplete = records.filter((r) => r.startsWith('!')).map((r) => r.slice(1));
  if (!incomplete.some((text) => why.test(text))) problems.push(`no incomplete record matching ${why} (${incomplete.join('; ') || 'none'})`);
  return problems;
}

{
  // A directory whose path is longer than MAX_PATH, listed through `\\?\`.
  const dir = scratch('probe');
  const long = ['a', 'b', 'c', 'd', 'e', 'f'].map((c) => c.repeat(100)).join('/');
  mkdirSync(join(dir, long), { recursive: true });
  writeFileSync(join(dir, long, 'x.txt'), 'x\n');
  const longPath = `${win(dir)}\\${long.replaceAll('/', '\\')}`;
  const result = traced(dir, [win(opts.probe), 'list', `\\\\?\\${longPath}`]);
  // Wine 8's GetFinalPathNameByHandleW fails past MAX_PATH at any buffer
  // size (ERROR_MORE_DATA): there the trace must say it cannot name the
  // directory; on Windows it must list it.
  const cannotName = /listed through a handle the trace cannot name/;
  const underWine = result.records.some((r) => r.startsWith('!') && cannotName.test(r));
  check('a listing of a directory with a path over MAX_PATH',
    underWine ? incompleteProblems(result, cannotName) : traceProblems(result, [['l', longPath]]),
    underWine ? 'Wine: incomplete, the handle unnamed' : 'listed');
}
{
  const dir = scratch('probe');
  const lower = `z${win(dir).slice(1)}\\in.txt`;
  const result = traced(dir, [win(opts.probe), 'read', lower]);
  check('a lower-case drive letter is recorded upper case', traceProblems(result, [['r', `${win(dir)}\\in.txt`]]));
}

console.log('Where the trace may miss, it says so');
{
  const dir = scratch('probe');
  const result = traced(dir, [win(opts.probe), 'open-by-id', `${win(dir)}\\in.txt`, win(dir)]);
  check('a file opened by its ID (OpenFileById)', incompleteProblems(result, /opened by its file ID/));
}
{
  const dir = scratch('probe');
  const result = traced(dir, [win(opts.probe), 'read', `${win(dir)}\\in.txt`], { env: { RUNNER_AWARE_TRACE_PRELOAD: `${win(dir)}\\in.txt` } });
  check('a DLL that does not load', incompleteProblems(result, /the command ran untraced .*did not load/));
}
{
  const dir = scratch('probe');
  const result = traced(dir, [win(opts.probe), 'spawn-breakaway', win(opts.probe), 'read', `${win(dir)}\\in.txt`]);
  check('a child leaving the job (CREATE_BREAKAWAY_FROM_JOB)', incompleteProblems(result, /left the task's job/));
}

if (opts.node) {
  console.log('A Node tool tree: node.exe spawning node.exe');
  for (const [name, childEnv] of [
    ['with its env', 'process.env'],
    ['with an env of its own (no RUNNER_AWARE_TRACE)', '{ SystemRoot: process.env.SystemRoot }'],
  ]) {
    const dir = scratch('node');
    writeFileSync(join(dir, 'child-input.txt'), 'only the child reads this\n');
    const at = (name) => `${win(dir)}\\${name}`;
    // The child reads and writes; the parent lists, stats and looks in vain, through libuv.
    const child = `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(at('child-output.txt'))}, fs.readFileSync(${JSON.stringify(at('child-input.txt'))}))`;
    const parent = [
      "const fs = require('fs');",
      `fs.readdirSync(${JSON.stringify(at('dir'))}); fs.statSync(${JSON.stringify(at('in.txt'))}); fs.existsSync(${JSON.stringify(at('absent.txt'))});`,
      `const r = require('child_process').spawnSync(process.execPath, ['-e', ${JSON.stringify(child)}], { env: ${childEnv}, stdio: 'ignore' });`,
      'process.exit(r.status ?? 1)',
    ].join(' ');
    const result = traced(dir, [win(opts.node), '-e', parent]);
    check(`node.exe spawning node.exe ${name}`, traceProblems(result, [
      ['x', win(opts.node)], ['l', at('dir')], ['f', at('in.txt')], ['m', at('absent.txt')],
      ['r', at('child-input.txt')], ['w', at('child-output.txt')],
    ]), `${result.records.length} records`);
  }
  {
    const dir = scratch('node');
    const parent = "require('child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 4000)'], { detached: true, stdio: 'ignore' }).unref()";
    const result = traced(dir, [win(opts.node), '-e', parent], { env: { RUNNER_AWARE_TRACE_GRACE_MS: '300' } });
    check('a child outliving the command past the grace period', incompleteProblems(result, /outlived/));
  }
}

/**
 * A project in `name` with `files`, built by `command` (Windows argv) under the
 * Rust example runner with a cache and the trace; returns `step(title,
 * expected, after)`, which builds once and checks what the runner said, and
 * `firstBuilds(out)`, the three builds every project starts with (a miss, a
 * hit, a hit that restores the deleted `dist`), which returns `out` as the
 * first build wrote it.
 */
function cachedBuild(name, files, command) {
  const dir = join(opts.scratch, name);
  const cache = join(opts.scratch, `${name}-cache`);
  for (const path of [dir, cache]) rmSync(path, { recursive: true, force: true });
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    if (text !== null) writeFileSync(join(dir, file), text);
  }
  const step = (title, expect, after = () => []) => {
    const run = wine([win(opts.runner), '--cache-dir', win(cache), '--trace', '--', ...command], {
      cwd: dir,
      env: { RUNNER_AWARE_TRACER_DIR: win(opts['tracer-dir']) },
    });
    const said = run.stderr.split('\n').filter((line) => line.startsWith('cache ')).join(' | ');
    const problems = [];
    if (run.status !== 0) problems.push(`exit ${run.status}: ${run.stderr.trim().slice(0, 400)}`);
    if (!expect.test(said)) problems.push(`expected ${expect}, the runner said: ${said || run.stderr.trim().slice(0, 400)}`);
    problems.push(...after());
    check(title, problems, said);
  };
  const read = (file) => (existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8') : null);
  const has = (file, text) => () => (read(file)?.includes(text) ? [] : [`${file} lacks ${JSON.stringify(text)}`]);
  const is = (file, text) => () => (read(file) === text ? [] : [`${file} is not as the first build left it`]);
  const firstBuilds = (out) => {
    step('first build: a miss, stored keyed on the trace', /cache miss.*cache stored .*keyed on the trace/, has(out, 'hello '));
    const first = read(out);
    step('same sources: a hit', /cache hit/);
    rmSync(join(dir, 'dist'), { recursive: true });
    step('output deleted: a hit that restores it', /cache hit/, is(out, first));
    return first;
  };
  return { dir, step, read, has, is, firstBuilds };
}

if (opts.runner && opts.esbuild) {
  console.log('A cached build: esbuild.exe under the Rust example runner, traced');
  const lib = "export function greet(name) { return 'hello ' + name; }\n";
  const { dir, step, has, is, firstBuilds } = cachedBuild('build', {
    'src/index.js': "import { greet } from './lib.js';\nconsole.log(greet('Wine'));\n",
    'src/lib.js': lib,
    'notes/.keep': '',
  }, [win(opts.esbuild), 'src/index.js', '--bundle', '--outfile=dist/out.js', '--log-level=warning']);
  const out = 'dist/out.js';
  const first = firstBuilds(out);
  writeFileSync(join(dir, 'notes', 'todo.txt'), 'unrelated\n');
  step('a file added where the build never looked: a hit', /cache hit/);
  writeFileSync(join(dir, 'src', 'lib.js'), lib.replace('hello ', 'goodbye '));
  step('a source changed: a miss that builds it', /cache miss.*cache stored/, has(out, 'goodbye '));
  writeFileSync(join(dir, 'src', 'lib.js'), lib);
  step('the source changed back: a hit on the first entry', /cache hit/, is(out, first));
  writeFileSync(join(dir, 'src', 'extra.js'), 'export {};\n');
  step('a name added to a directory the build listed: a miss', /cache miss: input src changed/);
  rmSync(join(dir, 'src', 'extra.js'));
  appendFileSync(join(dir, 'src', 'index.js'), "console.log('more');\n");
  step('the entry point changed: a miss that builds it', /cache miss.*cache stored/, has(out, 'more'));
}

if (opts.runner && opts.node) {
  console.log('A cached build: tsc under node.exe under the Rust example runner, traced');
  const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  const lib = 'export const greet = (name: string): string => `hello ${name}`;\n';
  const { dir, step, read, has, is, firstBuilds } = cachedBuild('tsc', {
    'tsconfig.json': JSON.stringify({ compilerOptions: { outDir: 'dist', target: 'es2020', module: 'commonjs', strict: true }, include: ['src'] }),
    'src/index.ts': "import { greet } from './lib';\nconsole.log(greet('Wine'));\n",
    'src/lib.ts': lib,
  }, [win(opts.node), win(tsc), '-p', '.']);
  const out = 'dist/lib.js';
  const first = firstBuilds(out);
  writeFileSync(join(dir, 'src', 'lib.ts'), lib.replace('hello ', 'goodbye '));
  step('a source changed: a miss that builds it', /cache miss: input src\/lib\.ts changed.*cache stored/, has(out, 'goodbye '));
  writeFileSync(join(dir, 'src', 'lib.ts'), lib);
  step('the source changed back: a hit on the first entry', /cache hit/, is(out, first));
  writeFileSync(join(dir, 'src', 'extra.ts'), 'export const extra = 1;\n');
  step('a file added to src: a miss that builds it', /cache miss.*cache stored/, () => (read('dist/extra.js') ? [] : ['dist/extra.js was not built']));
  rmSync(join(dir, 'src', 'extra.ts'));
  const config = JSON.parse(read('tsconfig.json'));
  config.compilerOptions.target = 'es5';
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(config));
  step('tsconfig.json changed: a miss that builds it', /cache miss: .*tsconfig\.json.*cache stored/, has(out, 'function'));
}

console.log(`windows tracer: ${passed} passed, ${failed.length} failed`);
process.exit(failed.length === 0 && passed > 0 ? 0 : 1);
