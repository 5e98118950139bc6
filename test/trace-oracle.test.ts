// The file-access trace proven against an oracle: each probe of
// test/trace/oracle-*.{c,s} makes one file operation one way; it runs under
// `strace -f` and traced in preload and in seccomp mode, and every path
// strace saw it touch in its scratch directory must be in the trace (in
// `written` or `deleted` for an effect), or the trace must say it is
// incomplete, and why. The failure message is the table of probe × mode.
// RUNNER_AWARE_ORACLE_TABLE=1 prints the table of a passing run too.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServer, type Trace } from '../dist/runner.mjs';
import { root, run } from './helpers.js';

/**
 * The operations: the letter the 32-bit probe knows each by; `flagged`, a
 * call the tracer cannot map to a path, so the trace must say it is
 * incomplete (made only the ways named in `ways`).
 */
const OPS: ReadonlyArray<{ op: string; letter?: string; flagged?: true; ways?: readonly string[] }> = [
  { op: 'read', letter: 'r' },
  { op: 'write', letter: 'w' },
  { op: 'stat', letter: 's' },
  { op: 'lstat', letter: 'l' },
  { op: 'statx', letter: 'x' },
  { op: 'access', letter: 'a' },
  { op: 'list', letter: 'd' },
  { op: 'unlink', letter: 'u' },
  { op: 'rename', letter: 'n' },
  { op: 'renameat2', letter: '2' },
  { op: 'mkdir', letter: 'm' },
  { op: 'readlink', letter: 'k' },
  { op: 'openat2', letter: 'o' },
  { op: 'openat2-in-root', letter: 'i' },
  { op: 'by-handle', flagged: true, ways: ['libc', 'syscall', 'static'] },
  { op: 'chroot', flagged: true, ways: ['libc', 'syscall', 'static'] },
];

type Binary = 'dynamic' | 'static' | 'i386';

/** The ways of calling, and the probe binary each runs in. */
const WAYS: ReadonlyArray<{ way: string; binary: Binary; what: string }> = [
  { way: 'libc', binary: 'dynamic', what: 'the libc wrapper' },
  { way: 'syscall', binary: 'dynamic', what: 'syscall(SYS_…)' },
  { way: 'raw', binary: 'dynamic', what: 'a raw `syscall` instruction in the main thread' },
  { way: 'thread', binary: 'dynamic', what: "a raw `syscall` instruction in a thread of the program's" },
  { way: 'addon-thread', binary: 'dynamic', what: 'a raw `syscall` instruction in a thread a shared library started' },
  { way: 'addon-int80', binary: 'dynamic', what: 'int $0x80 in a thread a shared library started' },
  { way: 'static', binary: 'static', what: 'the libc wrapper of a static program' },
  { way: 'i386', binary: 'i386', what: 'int $0x80 in a static 32-bit program' },
  { way: 'int80', binary: 'dynamic', what: 'int $0x80 in a 64-bit program' },
  { way: 'vfork', binary: 'dynamic', what: 'the libc wrapper in a vfork child' },
  { way: 'spawn', binary: 'dynamic', what: 'the libc wrapper in a posix_spawn child' },
  { way: 'dirfd', binary: 'dynamic', what: 'the libc *at wrapper relative to a directory descriptor' },
  { way: 'proc-fd', binary: 'dynamic', what: 'the libc wrapper through /proc/self/fd/N/…' },
  { way: 'proc-cwd', binary: 'dynamic', what: 'the libc wrapper through /proc/self/cwd/…' },
  { way: 'proc-root', binary: 'dynamic', what: 'the libc wrapper through /proc/<pid>/root/…' },
  { way: 'symlink', binary: 'dynamic', what: 'the libc wrapper through a symlink the probe made' },
];

type Mode = 'preload' | 'seccomp';
const MODES: readonly Mode[] = ['preload', 'seccomp'];

/** What the trace must call a path: an effect must be one, anything else may be any record. */
type Expect = 'any' | 'written' | 'deleted' | 'open';

/**
 * For each system call strace names: its path arguments, each as [the
 * index of its directory descriptor argument (null: relative to the cwd),
 * the index of the path, what the trace must call it]. `open` is a write
 * when the flags say so.
 */
const PATH_ARGS: Record<string, ReadonlyArray<readonly [number | null, number, Expect]>> = {
  open: [[null, 0, 'open']],
  creat: [[null, 0, 'written']],
  openat: [[0, 1, 'open']],
  openat2: [[0, 1, 'open']],
  stat: [[null, 0, 'any']],
  lstat: [[null, 0, 'any']],
  stat64: [[null, 0, 'any']],
  lstat64: [[null, 0, 'any']],
  newfstatat: [[0, 1, 'any']],
  fstatat64: [[0, 1, 'any']],
  statx: [[0, 1, 'any']],
  access: [[null, 0, 'any']],
  faccessat: [[0, 1, 'any']],
  faccessat2: [[0, 1, 'any']],
  readlink: [[null, 0, 'any']],
  readlinkat: [[0, 1, 'any']],
  execve: [[null, 0, 'any']],
  mkdir: [[null, 0, 'written']],
  mkdirat: [[0, 1, 'written']],
  unlink: [[null, 0, 'deleted']],
  rmdir: [[null, 0, 'deleted']],
  unlinkat: [[0, 1, 'deleted']],
  rename: [
    [null, 0, 'deleted'],
    [null, 1, 'written'],
  ],
  renameat: [
    [0, 1, 'deleted'],
    [2, 3, 'written'],
  ],
  renameat2: [
    [0, 1, 'deleted'],
    [2, 3, 'written'],
  ],
  symlink: [[null, 1, 'written']],
  symlinkat: [[1, 2, 'written']],
  link: [
    [null, 0, 'any'],
    [null, 1, 'written'],
  ],
  linkat: [
    [0, 1, 'any'],
    [2, 3, 'written'],
  ],
  truncate: [[null, 0, 'written']],
  name_to_handle_at: [[0, 1, 'any']],
};

/** The arguments of a strace line, split at top-level commas. */
function splitArgs(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '{' || ch === '[' || ch === '(' || ch === '<') depth++;
    else if (ch === '}' || ch === ']' || ch === ')' || ch === '>') depth--;
    else if (ch === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  args.push(text.slice(start).trim());
  return args;
}

function unquote(arg: string): string | null {
  const m = /^"((?:[^"\\]|\\.)*)"/.exec(arg);
  return m ? (m[1] ?? '').replace(/\\(.)/g, '$1') : null;
}

/** A path strace saw, absolute and lexically clean, and what the trace must call it. */
interface Seen {
  path: string;
  expect: 'any' | 'written' | 'deleted';
}

/**
 * The paths a `strace -f -y` log says the probe named, with their
 * directories resolved as the kernel did: a descriptor from its `-y`
 * annotation, /proc/<pid>/{cwd,root,fd/N} from the probe's cwd and
 * descriptors, RESOLVE_IN_ROOT against its root.
 */
function stracePaths(log: string, cwd: string): Seen[] {
  const fds = new Map<string, string>();
  // The name a descriptor was opened by: a listing is of that name, as the trace records it.
  const named = new Map<string, string>();
  const pending = new Map<string, string>();
  const seen: Seen[] = [];
  for (const raw of log.split('\n')) {
    let line = raw;
    const pid = /^(\d+) /.exec(line)?.[1] ?? '';
    const unfinished = / <unfinished \.\.\.>$/.exec(line);
    if (unfinished) {
      pending.set(pid, line.slice(0, unfinished.index));
      continue;
    }
    const resumed = /^\d+ +<\.\.\. \w+ resumed>(.*)$/.exec(line);
    if (resumed) line = (pending.get(pid) ?? '') + (resumed[1] ?? '');
    const call = /^\d+ +(\w+)\((.*)\) += (.*)$/.exec(line);
    if (!call) continue;
    const [, name = '', argText = '', result = ''] = call;
    const args = splitArgs(argText);
    for (const arg of [...args, result]) {
      const fd = /^(\d+)<(.*)>/.exec(arg);
      if (fd) fds.set(fd[1] ?? '', fd[2] ?? '');
    }
    const dirOf = (arg: string | undefined): string => {
      const annotated = /^(?:AT_FDCWD|-?\d+)<(.*)>$/.exec(arg ?? '');
      return annotated ? (annotated[1] ?? cwd) : cwd;
    };
    const absolute = (path: string, dir: string, inRoot: boolean): string => {
      const proc = /^\/proc\/(?:self|thread-self|\d+)\/(cwd|root|fd\/(\d+))(\/.*)?$/.exec(path);
      let full = path.startsWith('/') ? path : `${dir}/${path}`;
      if (proc) full = (proc[1] === 'cwd' ? cwd : proc[1] === 'root' ? '/' : (fds.get(proc[2] ?? '') ?? path)) + (proc[3] ?? '');
      else if (inRoot) full = `${dir}/${posix.normalize(`/${path}`)}`;
      return posix.normalize(full).replace(/(.)\/+$/, '$1');
    };
    if (name === 'getdents64' || name === 'getdents') {
      const fd = /^(\d+)<(.*)>$/.exec(args[0] ?? '');
      const dir = fd ? (named.get(fd[1] ?? '') ?? fd[2]) : undefined;
      if (dir) seen.push({ path: dir, expect: 'any' });
      continue;
    }
    for (const [dirArg, pathArg, expected] of PATH_ARGS[name] ?? []) {
      const path = unquote(args[pathArg] ?? '');
      // An empty path (AT_EMPTY_PATH) names the descriptor, recorded when it was opened.
      if (path === null || path === '') continue;
      const flags = name === 'openat2' ? (/flags=([\w|]+)/.exec(args[2] ?? '')?.[1] ?? '') : (args[pathArg + 1] ?? '');
      const inRoot = name === 'openat2' && /RESOLVE_IN_ROOT/.test(args[2] ?? '');
      const dir = dirArg === null ? cwd : dirOf(args[dirArg]);
      const kind = expected === 'open' ? (/O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(flags) ? 'written' : 'any') : expected;
      seen.push({ path: absolute(path, dir, inRoot), expect: kind });
      const opened = /^(\d+)</.exec(result)?.[1];
      if (opened && name.startsWith('open')) named.set(opened, absolute(path, dir, inRoot));
    }
  }
  return seen;
}

type Outcome = 'seen' | 'incomplete' | 'MISSED' | 'FAILED' | 'NO ORACLE';

interface Cell {
  outcome: Outcome;
  detail: string;
}

/** Whether the trace has `seen` as what it must be. */
function hasPath(trace: Trace, seen: Seen): boolean {
  if (seen.expect === 'written') return trace.written.includes(seen.path);
  if (seen.expect === 'deleted') return trace.deleted.includes(seen.path);
  return [trace.read, trace.found, trace.missing, trace.listed, trace.written, trace.deleted].some((list) => list.includes(seen.path));
}

let dir = '';
const binaries: Record<Binary, string> = { dynamic: '', static: '', i386: '' };
let addon = '';
let scratchCount = 0;
/** probe → mode → cell, for the table. */
const table = new Map<string, Map<Mode, Cell>>();

/** A fresh scratch directory with the files the probes act on under `d/`. */
function scratch(): string {
  const path = join(dir, `scratch-${scratchCount++}`);
  mkdirSync(join(path, 'd', 'listed'), { recursive: true });
  mkdirSync(join(path, 'd', 'sub'));
  writeFileSync(join(path, 'd', 'input.txt'), 'input\n');
  writeFileSync(join(path, 'd', 'looked-up.txt'), 'exists\n');
  writeFileSync(join(path, 'd', 'listed', 'one'), '1');
  writeFileSync(join(path, 'd', 'doomed.txt'), 'to be deleted\n');
  writeFileSync(join(path, 'd', 'from.txt'), 'to be renamed\n');
  writeFileSync(join(path, 'd', 'sub', 'inner.txt'), 'inner\n');
  symlinkSync('input.txt', join(path, 'd', 'a-link'));
  return path;
}

function probeArgv(op: string, letter: string | undefined, way: string, binary: Binary): string[] {
  return binary === 'i386' ? [binaries.i386, letter ?? ''] : [binaries[binary], op, way, addon];
}

/** What strace saw the probe touch beneath its scratch directory. */
async function oracle(argv: string[]): Promise<{ seen: Seen[]; failed: string }> {
  const cwd = scratch();
  const log = join(dir, `strace-${scratchCount}.log`);
  const args = ['-f', '-y', '-qq', '-s', '4096', '-e', 'signal=none', '-e', 'trace=%file,getdents64,getdents,openat2', '-o', log, '--', ...argv];
  const result = await run('strace', args, { cwd });
  if (result.code !== 0) return { seen: [], failed: `under strace: exit ${result.code}: ${result.stderr.trim()}` };
  const within = new Map<string, Seen>();
  for (const seen of stracePaths(readFileSync(log, 'utf8'), cwd)) {
    if (seen.path.startsWith(`${cwd}/`)) within.set(`${seen.expect} ${seen.path}`, { ...seen, path: seen.path.slice(cwd.length) });
  }
  return { seen: [...within.values()], failed: '' };
}

async function traced(argv: string[], mode: Mode, seen: Seen[], flagged: boolean): Promise<Cell> {
  const cwd = scratch();
  const server = await createServer({ trace: mode });
  const command = server.command(argv);
  const result = await run(command[0] ?? '', command.slice(1), { cwd, env: { ...process.env, ...server.env } });
  const trace = (await server.close()).trace;
  if (!trace) return { outcome: 'FAILED', detail: 'close() returned no trace' };
  if (result.code !== 0) return { outcome: 'FAILED', detail: `exit ${result.code}: ${result.stderr.trim()}` };
  const missed = seen.filter((s) => !hasPath(trace, { ...s, path: cwd + s.path }));
  if (!trace.complete) return { outcome: 'incomplete', detail: trace.incomplete.join('; ') };
  if (flagged) return { outcome: 'MISSED', detail: 'the trace is complete, yet the call names no path it could record' };
  if (missed.length > 0) return { outcome: 'MISSED', detail: missed.map((s) => `${s.path} (${s.expect})`).join(', ') };
  return { outcome: 'seen', detail: '' };
}

function renderTable(rows: Iterable<[string, Map<Mode, Cell>]>): string {
  const lines = [`${'probe'.padEnd(32)} ${MODES.map((m) => m.padEnd(11)).join(' ')}`];
  const details: string[] = [];
  for (const [probe, cells] of rows) {
    lines.push(`${probe.padEnd(32)} ${MODES.map((m) => (cells.get(m)?.outcome ?? '-').padEnd(11)).join(' ')}`);
    for (const m of MODES) {
      const cell = cells.get(m);
      if (cell && cell.outcome !== 'seen') details.push(`${probe} ${m}: ${cell.outcome}: ${cell.detail}`);
    }
  }
  return [...lines, '', ...details].join('\n');
}

/** Runs `jobs` two at a time: the machine is shared with other suites. */
async function inPairs<T>(jobs: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < jobs.length; i += 2) results.push(...(await Promise.all(jobs.slice(i, i + 2).map((job) => job()))));
  return results;
}

describe.runIf(process.platform === 'linux' && process.arch === 'x64')('the trace against strace', () => {
  beforeAll(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'ra-trace-oracle-')));
    const tools = [
      ['cc', ['--version']],
      ['as', ['--version']],
      ['ld', ['--version']],
      ['strace', ['-V']],
    ] as const;
    for (const [tool, args] of tools) {
      try {
        execFileSync(tool, args, { stdio: 'pipe' });
      } catch (err) {
        throw new Error(`the trace oracle needs ${tool} (on Debian: apt-get install gcc binutils strace): ${(err as Error).message}`);
      }
    }
    const src = join(root, 'test', 'trace');
    const cc = (...args: string[]) => execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', ...args], { stdio: 'pipe' });
    binaries.dynamic = join(dir, 'oracle-probe');
    cc('-o', binaries.dynamic, join(src, 'oracle-probe.c'), '-ldl', '-lpthread');
    binaries.static = join(dir, 'oracle-probe-static');
    cc('-static', '-DPROBE_STATIC', '-o', binaries.static, join(src, 'oracle-probe.c'), '-lpthread');
    addon = join(dir, 'oracle-addon.so');
    cc('-shared', '-fPIC', '-o', addon, join(src, 'oracle-addon.c'), '-lpthread');
    binaries.i386 = join(dir, 'oracle-i386');
    execFileSync('as', ['--32', '-o', `${binaries.i386}.o`, join(src, 'oracle-i386.s')], { stdio: 'pipe' });
    execFileSync('ld', ['-m', 'elf_i386', '-o', binaries.i386, `${binaries.i386}.o`], { stdio: 'pipe' });
  });
  afterAll(() => {
    if (process.env['RUNNER_AWARE_ORACLE_TABLE'] === '1' && table.size > 0) process.stdout.write(`${renderTable(table)}\n`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(WAYS)('every path strace sees $what make is in the trace, or the trace says it is incomplete ($way)', async ({ way, binary }) => {
    const rows = new Map<string, Map<Mode, Cell>>();
    const ops = OPS.filter(({ letter, ways }) => (ways ? ways.includes(way) : binary !== 'i386' || letter));
    await inPairs(
      ops.map(({ op, letter, flagged = false }) => async () => {
        const argv = probeArgv(op, letter, way, binary);
        const cells = new Map<Mode, Cell>();
        rows.set(`${op} × ${way}`, cells);
        const { seen, failed } = await oracle(argv);
        for (const mode of MODES) {
          if (failed) cells.set(mode, { outcome: 'FAILED', detail: failed });
          else if (seen.length === 0 && !flagged) cells.set(mode, { outcome: 'NO ORACLE', detail: 'strace saw no path in the scratch directory' });
          else cells.set(mode, await traced(argv, mode, seen, flagged));
        }
      }),
    );
    const order = (probe: string) => OPS.findIndex(({ op }) => probe.startsWith(`${op} ×`));
    const ordered = [...rows].sort(([a], [b]) => order(a) - order(b));
    for (const [probe, cells] of ordered) table.set(probe, cells);
    const bad = ordered.filter(([, cells]) => [...cells.values()].some((cell) => !['seen', 'incomplete'].includes(cell.outcome)));
    expect(bad.length, `probe × mode → seen / incomplete / MISSED:\n${renderTable(ordered)}`).toBe(0);
  }, 120_000);
});
