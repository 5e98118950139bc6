#!/usr/bin/env node
// A reference caching runner on runner-aware's public API.
//
//   node examples/cache-runner/index.mjs [options] -- <command…>
//   node examples/cache-runner/index.mjs --help
//
// 1. Look up: entries of this task (command + flags) are tried newest first;
//    one whose env fingerprint and input hashes still hold is a hit: restore
//    its outputs, replay its stdout/stderr, exit 0. A miss is explained by
//    the closest entry. `--force` skips the look-up and always runs.
// 2. Otherwise run the command in a strict env (a base set, the `--env`
//    names and the runner-aware server env; a tool asks for anything else
//    through runner-aware, which is what puts it in the key).
// 3. Store the run, unless it failed, a tool disabled caching, the channel
//    saw protocol errors, a client was still connected at close, or its
//    `addValue` values contradict the entry already stored for the same key.
//    `--cacheable-despite CALLER` overrules a tool's `disableCache` for this
//    task when its caller is CALLER (`vite` for `vite … _createServer`, which
//    `vitest run` calls): the run is stored, what was overruled is printed
//    (`cache stored despite: …`) and kept in the entry. It is part of the task
//    key, and it never overrules a reason that means a tool's words were lost.
//    An entry is keyed by the command, the input file hashes (`--input` plus
//    `addInput`, minus ignored inputs) and the env fingerprint; it archives
//    `--output` plus `addOutput`, minus ignored outputs.
//
// With `--remote URL --team TEAM --token TOKEN` (or TURBO_API, TURBO_TEAM,
// TURBO_TOKEN) entries are shared through a Turborepo remote-cache server too:
// a local miss tries the remote, a store uploads; remote.mjs says how.
//
// Exactly one status line goes to stderr: `cache hit`, `cache miss: <reasons>`
// or `cache skipped: <reasons>`.
//
// What `addValue` can and cannot do for a runner that decides before running:
// a value is reported by the tool while it runs, so a look-up cannot compare
// it, and a value that changes while inputs and env stay the same still hits.
// A value is therefore not part of an entry's key here; the entry stores it,
// and every run that happens anyway checks it:
// - a miss names the values that differ from the closest entry
//   (`cache miss: input config.json changed, value config-hash changed`);
// - a run whose inputs and env match a stored entry (a `--force` run, or two
//   runners racing) but whose values differ proves the key misses something
//   the output depends on: that run is not stored, and the stored entry is
//   dropped, since neither can be told apart by a look-up.
// A tool that wants a change to cause a miss must make its source visible
// before the run: `addInput` the file a config hash is computed from, or read
// the env var through `getEnv`.

import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os, { constants } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  changedSince,
  createServer,
  declaredInputs,
  declaredOutputs,
  describeReason,
  envFingerprint,
  envMatcher,
  fingerprintInput,
  inferAccesses,
  isIgnoredInput,
  isIgnoredOutput,
  parseFingerprint,
  parseReports,
  serializeFingerprint,
  serializeReports,
  StatCache,
  validateFingerprint,
  verdict,
} from 'runner-aware/runner';

import { RemoteCache, remoteSettings } from './remote.mjs';

// What every child gets, like Turborepo's strict mode: enough to run programs,
// never enough to change what they build.
const BASE_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR', 'TMP', 'TEMP', 'TERM', 'LANG',
  'SYSTEMROOT', 'COMSPEC', 'PATHEXT', 'WINDIR', 'USERPROFILE', 'APPDATA', 'LOCALAPPDATA'];
// Never walked when expanding globs: dependencies and VCS data are not task files.
const SKIP_DIRS = new Set(['node_modules', '.git']);

const USAGE = 'usage: cache-runner [--cache-dir DIR] [--force] [--dry-run] [--trace MODE] [--ignore PATH]… [--env NAME|GLOB]… [--input GLOB]… [--output GLOB]…\n' +
  '                    [--remote URL --team TEAM --token TOKEN] -- <command…>\n' +
  '       cache-runner --clean [--cache-dir DIR] [-- <command…>]';

const HELP = `${USAGE}

Runs <command> as a cached task: a hit restores its outputs and replays its
output without running it; a miss runs it under a runner-aware server and
stores the run when the verdict says it is cacheable. One status line on
stderr: cache hit, cache miss: <reasons>, or cache skipped: <reasons>.

Options:
  --cache-dir DIR  where entries live (default node_modules/.cache/cache-runner)
  --env NAME       hand NAME to the command and key the task on it; a glob
                   (VITE_*, matched as the server matches tools' globs) hands
                   every matching variable and keys on the whole match set
  --trace MODE     see what the command reads and writes (Linux): auto (the
                   default: preload where supported, else off), preload,
                   seccomp (every system call through the supervisor), off.
                   Traced reads, look-ups and listings are inputs and
                   traced writes outputs, with no --input or --output; a run
                   that modified what it read, or whose trace may be
                   incomplete, is not stored
  --ignore PATH    reads and writes under PATH are neither inputs nor outputs,
                   as when a tool says so itself (ignoreInput, ignoreOutput):
                   for a tool's own cache that it does not report, such as
                   Vitest's results under node_modules/.vite
  --input GLOB     files the command reads (** any directories, * and ? in a
                   name); a glob that matches no file is warned about.
                   Without a trace, a run with no --input is never stored
  --output GLOB    files the command writes, archived with the entry
  --cacheable-despite CALLER
                   store the run even though CALLER disabled caching (a
                   module, as runner-aware names it: vite for vite … _createServer);
                   what it overrules is printed and kept with the entry
  --remote URL     also share entries through a Turborepo remote-cache server
                   (the /v8/artifacts API; default $TURBO_API): a local miss
                   tries it, a stored run is uploaded; when it cannot be
                   reached the run warns once and goes on locally
  --team TEAM      the remote's team: a slug, or a Vercel team id (team_…)
                   (default $TURBO_TEAM, or $TURBO_TEAMID)
  --token TOKEN    the remote's bearer token (default $TURBO_TOKEN)
  --force          run and store even when an entry would hit
  --dry-run        print the task's key, part by part, and what a look-up
                   of the local cache would do; run nothing, store nothing
  --clean          remove the local cache: this task's entries when a command
                   is given, the whole cache dir otherwise
  -h, --help       show this help

Exit status: the command's (0 on a hit); 2 for a usage error.`;

/** A usage error: what is wrong and how to call the runner, no stack trace. */
function usageError(message) {
  process.stderr.write(`cache-runner: ${message}\n${USAGE}\nRun cache-runner --help for the options.\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      'cache-dir': { type: 'string', default: 'node_modules/.cache/cache-runner' },
      force: { type: 'boolean', default: false },
      'cacheable-despite': { type: 'string', multiple: true, default: [] },
      'dry-run': { type: 'boolean', default: false },
      trace: { type: 'string', default: 'auto' },
      clean: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      env: { type: 'string', multiple: true, default: [] },
      input: { type: 'string', multiple: true, default: [] },
      output: { type: 'string', multiple: true, default: [] },
      ignore: { type: 'string', multiple: true, default: [] },
      remote: { type: 'string' },
      team: { type: 'string' },
      token: { type: 'string' },
    },
  });
} catch (err) {
  usageError(err.message);
}
const { values: flags, positionals: command } = parsed;
if (flags.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (command.length === 0 && !flags.clean) usageError('no command: put it after --');
if (!['auto', 'preload', 'seccomp', 'off'].includes(flags.trace)) usageError(`--trace ${flags.trace}: expected auto, preload, seccomp or off`);
if (flags.clean && (flags['dry-run'] || flags.force)) usageError('--clean runs nothing: it takes no --dry-run or --force');
// The remote cache's flags, or TURBO_API, TURBO_TEAM and TURBO_TOKEN: null when no URL is set.
const remoteConfig = remoteSettings(flags, process.env);
if (remoteConfig?.usage) usageError(`--remote ${remoteConfig.off}`);

// `--env` entries with glob characters are env queries, matched with the
// server's own matcher (runner-aware/runner's envMatcher); the rest are names.
const isEnvGlob = (entry) => /[*?[\]{}\\]/.test(entry);
const envNames = flags.env.filter((entry) => !isEnvGlob(entry));
const envGlobs = flags.env.filter(isEnvGlob).map((glob) => {
  try {
    return { glob, matches: envMatcher(glob) };
  } catch (err) {
    return usageError(`--env ${err.message}`);
  }
});

/** The `--env` globs as tracked queries with their match sets in this env. */
function envGlobQueries(env) {
  return envGlobs.map(({ glob, matches }) => ({
    glob,
    tracked: true,
    matches: Object.fromEntries(Object.keys(env).filter(matches).sort().map((name) => [name, env[name]])),
  }));
}

const cwd = process.cwd();
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
// Within the working directory, relative, so an entry holds in another
// checkout; so are look-ups in the directories above it (Node's
// node_modules and package.json search, a tsconfig.json walk), which a
// checkout elsewhere makes in its own. Anything else (the node binary, a
// system library) is absolute.
const ancestors = new Set();
for (let dir = path.dirname(cwd); dir !== path.dirname(dir); dir = path.dirname(dir)) ancestors.add(dir);
const portable = (file) => {
  const rel = path.relative(cwd, file);
  if (rel === '') return '.';
  const inside = !rel.startsWith('..') && !path.isAbsolute(rel);
  return inside || ancestors.has(file) || ancestors.has(path.dirname(file)) ? rel.split(path.sep).join('/') : file;
};

// --- files ------------------------------------------------------------------

/** Every regular file at or under `file` (absolute paths). */
function filesUnder(file) {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (stat?.isFile()) return [file];
  if (!stat?.isDirectory()) return [];
  return fs.readdirSync(file).filter((name) => !SKIP_DIRS.has(name)).flatMap((name) => filesUnder(path.join(file, name)));
}

/** `**` any directories, `*` and `?` within one name; a matching directory covers its files. */
function globRegExp(glob) {
  const special = { '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*', '?': '[^/]' };
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\/|\*\*|\*|\?/g, (m) => special[m]);
  return new RegExp(`^${body}(?:/.*)?$`);
}

function expandGlobs(globs) {
  if (globs.length === 0) return [];
  const patterns = globs.map(globRegExp);
  return filesUnder(cwd).filter((file) => patterns.some((re) => re.test(portable(file))));
}

/** The `--input` globs that match no file: most often a typo, and a key that covers nothing. */
function emptyInputGlobs() {
  if (flags.input.length === 0) return [];
  const files = filesUnder(cwd).map(portable);
  return flags.input.filter((glob) => !files.some((file) => globRegExp(glob).test(file)));
}

/** Relative path → content hash of the `--input` files and the tools' declared inputs, minus ignored inputs. */
function hashInputs(reports, preRunHashes = {}) {
  const hashes = {};
  for (const file of [...expandGlobs(flags.input), ...declaredInputs(reports).flatMap(filesUnder)]) {
    if (isIgnoredInput(reports, file)) continue;
    // A file hashed before the run keeps that hash: it is what the command read.
    hashes[portable(file)] = preRunHashes[portable(file)] ?? sha256(fs.readFileSync(file));
  }
  return hashes;
}

function inputReasons(stored, current) {
  const names = [...new Set([...Object.keys(stored), ...Object.keys(current)])].sort();
  return names.flatMap((name) => {
    if (stored[name] === current[name]) return [];
    if (!(name in stored)) return [`input ${name} added`];
    if (!(name in current)) return [`input ${name} removed`];
    return [`input ${name} changed`];
  });
}

// Traced inputs: path → [kind, fingerprint], kind as `inferAccesses` gives it
// (content, listing, existence). A stat cache keeps a look-up from hashing
// node_modules again: a file is re-hashed only when its inode, size, mtime or
// ctime changed.
const statCacheFile = path.resolve(flags['cache-dir'], 'stat-cache.json');
const statCache = (() => {
  try {
    return StatCache.from(JSON.parse(fs.readFileSync(statCacheFile, 'utf8')));
  } catch {
    return new StatCache();
  }
})();

function saveStatCache() {
  if (statCache.hashed === 0 || !fs.existsSync(path.dirname(statCacheFile))) return;
  const staging = `${statCacheFile}.${randomUUID()}`;
  fs.writeFileSync(staging, JSON.stringify(statCache));
  fs.renameSync(staging, statCacheFile);
}

function fingerprintTraced(inputs) {
  const out = {};
  for (const { path: file, kind } of inputs) out[portable(file)] = [kind, fingerprintInput({ path: file, kind }, statCache)];
  return out;
}

function tracedReasons(stored = {}) {
  // A `missing` fingerprint is no file: inputReasons then says added or removed.
  const then = {};
  const now = {};
  for (const [file, [kind, fingerprint]] of Object.entries(stored)) {
    if (fingerprint !== 'missing') then[file] = fingerprint;
    const current = fingerprintInput({ path: path.resolve(cwd, file), kind }, statCache);
    if (current !== 'missing') now[file] = current;
  }
  const reasons = inputReasons(then, now);
  // The first few name the change; a thousand would not say more.
  return reasons.length > 5 ? [...reasons.slice(0, 5), '…'] : reasons;
}

// --- the cache ----------------------------------------------------------------

// An override is part of the task: entries stored despite a tool are not hit by a run without it.
const cacheableDespite = [...new Set(flags['cacheable-despite'])].sort();
const traceMode = flags.trace === 'auto' ? 'preload' : flags.trace;
const ignored = [...new Set(flags.ignore.map((dir) => path.resolve(cwd, dir)))].sort();
const taskKey = sha256(JSON.stringify({ command, env: [...flags.env].sort(), input: flags.input, output: flags.output,
  ...(cacheableDespite.length > 0 ? { cacheableDespite } : {}), ...(traceMode === 'off' ? {} : { trace: true }),
  ...(ignored.length > 0 ? { ignore: ignored.map(portable) } : {}) }));
const taskDir = path.resolve(flags['cache-dir'], taskKey);

/** An entry from the text of its entry.json, fingerprint.json and reports.json; `dir` holds its files, when it is local. */
function parseEntry(id, { entry, fingerprint, reports }, dir) {
  return { ...JSON.parse(entry), id, dir, fingerprint: parseFingerprint(fingerprint), reports: parseReports(reports, { root: cwd }) };
}

function readEntry(id) {
  const dir = path.join(taskDir, id);
  const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8');
  return parseEntry(id, { entry: read('entry.json'), fingerprint: read('fingerprint.json'), reports: read('reports.json') }, dir);
}

function readEntries() {
  if (!fs.existsSync(taskDir)) return [];
  return fs.readdirSync(taskDir)
    .filter((id) => fs.existsSync(path.join(taskDir, id, 'entry.json')))
    .map(readEntry)
    .sort((a, b) => b.createdAt - a.createdAt);
}

/** The remote's entries of this task that the local cache lacks, newest first, with no files yet. */
async function remoteEntries() {
  if (!remote) return [];
  return (await remote.entries(taskKey))
    .filter(({ id }) => !fs.existsSync(path.join(taskDir, id)))
    .flatMap((line) => {
      try {
        return [parseEntry(line.id, line, null)];
      } catch {
        return [];
      }
    });
}

/** Remote entry `id` downloaded into the local cache (written aside, renamed into place), or null. */
async function download(id) {
  const staging = path.join(taskDir, `.${randomUUID()}`);
  if (!(await remote.fetchEntry(id, staging))) {
    fs.rmSync(staging, { recursive: true, force: true });
    return null;
  }
  fs.rmSync(path.join(taskDir, id), { recursive: true, force: true });
  fs.renameSync(staging, path.join(taskDir, id));
  try {
    return readEntry(id);
  } catch (err) {
    process.stderr.write(`cache-runner: warning: remote entry ${id} ignored: ${err.message}\n`);
    fs.rmSync(path.join(taskDir, id), { recursive: true, force: true });
    return null;
  }
}

/** Why `entry` does not hold now, by name only; empty when it does. */
function staleReasons(entry) {
  // A declared input is often traced too: one reason each.
  return [...new Set([
    ...validateFingerprint(entry.fingerprint, process.env).reasons,
    ...inputReasons(entry.inputs, hashInputs(entry.reports)),
    ...tracedReasons(entry.traced),
  ])];
}

/** The `addValue` values of a finished run that differ from `fingerprint`'s, by name only. */
function valueReasons(fingerprint, values) {
  return validateFingerprint(fingerprint, process.env, { values }).reasons.filter((reason) => reason.startsWith('value '));
}

function restore(entry) {
  // Outputs left by another build (assets with other hashed names) would mix with the restored ones.
  for (const file of collectOutputs(entry.reports)) fs.rmSync(path.resolve(cwd, file), { force: true });
  for (const file of entry.outputs) {
    const target = path.resolve(cwd, file);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(path.join(entry.dir, 'files', file), target);
  }
  process.stdout.write(fs.readFileSync(path.join(entry.dir, 'stdout')));
  process.stderr.write(fs.readFileSync(path.join(entry.dir, 'stderr')));
}

/**
 * The files to archive: `--output` plus the tools' declared outputs, plus the
 * files the trace saw written that still exist (`traced`, from
 * `inferAccesses`), minus ignored outputs.
 */
function collectOutputs(reports, traced = []) {
  const written = traced.filter((file) => fs.statSync(file, { throwIfNoEntry: false })?.isFile());
  const files = [...expandGlobs(flags.output), ...declaredOutputs(reports).flatMap(filesUnder), ...written]
    .filter((file) => !isIgnoredOutput(reports, file));
  return [...new Set(files.map(portable))].sort();
}

/**
 * The run's env fingerprint and its entry id. `--env` names reach the child
 * directly, so they are keyed like tracked env. The id leaves the values out:
 * it is what a look-up can check, so one entry stands for one set of inputs and env.
 */
function entryKey(reports, inputs, traced) {
  // A value the runner adds is encoded as the reports' own: plaintext, or its sha256.
  const encode = (value) => (reports.envValues === 'sha256' ? sha256(value) : value);
  const envs = { ...reports.envs };
  for (const name of envNames) envs[name] = { value: process.env[name] === undefined ? null : encode(process.env[name]), tracked: true };
  const envQueries = [
    ...reports.envQueries,
    ...envGlobQueries(process.env).map((query) => ({ ...query, matches: Object.fromEntries(Object.entries(query.matches).map(([name, value]) => [name, encode(value)])) })),
  ];
  const fingerprint = envFingerprint({ ...reports, envs, envQueries });
  const lookup = envFingerprint({ ...reports, envs, envQueries, values: {} });
  return { fingerprint, id: sha256(JSON.stringify([taskKey, inputs, traced, lookup.digest])) };
}

/**
 * The values that contradict the entry already stored under `id`, if any. A
 * contradiction means something the output depends on is in neither the inputs
 * nor the env, so that entry cannot be trusted either: it is dropped.
 */
async function dropConflictingEntry(id, reports) {
  const file = path.join(taskDir, id, 'fingerprint.json');
  // The local entry, else the remote's; a remote one is dropped from the task's remote index.
  const listed = async () => (await remote?.entries(taskKey))?.find((line) => line.id === id)?.fingerprint;
  const stored = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : await listed();
  if (stored === undefined) return [];
  const reasons = valueReasons(parseFingerprint(stored), reports.values);
  if (reasons.length > 0) {
    fs.rmSync(path.join(taskDir, id), { recursive: true, force: true });
    await remote?.forget(taskKey, id);
  }
  return reasons;
}

function store(id, fingerprint, reports, inputs, traced, files, stdout, stderr, overruled) {
  // Written aside and renamed into place, so a reader never sees half an entry.
  const staging = path.join(taskDir, `.${randomUUID()}`);
  fs.mkdirSync(staging, { recursive: true });
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(staging, 'files', file)), { recursive: true });
    fs.copyFileSync(path.resolve(cwd, file), path.join(staging, 'files', file));
  }
  fs.writeFileSync(path.join(staging, 'stdout'), stdout);
  fs.writeFileSync(path.join(staging, 'stderr'), stderr);
  // Paths relative to the working directory, so the entry holds in another checkout; no
  // `addValue` values: a tool may derive one from a secret, and the fingerprint holds their digests.
  // The trace is not kept: its inputs are in entry.json, fingerprinted.
  fs.writeFileSync(path.join(staging, 'reports.json'), serializeReports({ ...reports, values: {}, trace: undefined }, { root: cwd }));
  fs.writeFileSync(path.join(staging, 'fingerprint.json'), serializeFingerprint(fingerprint));
  fs.writeFileSync(path.join(staging, 'entry.json'), JSON.stringify({ createdAt: Date.now(), inputs, traced, outputs: files, overruled }));
  fs.rmSync(path.join(taskDir, id), { recursive: true, force: true });
  fs.renameSync(staging, path.join(taskDir, id));
}

// --- one run -------------------------------------------------------------------

function strictEnv() {
  const env = {};
  for (const name of [...BASE_ENV, ...envNames]) if (process.env[name] !== undefined) env[name] = process.env[name];
  for (const query of envGlobQueries(process.env)) Object.assign(env, query.matches);
  return env;
}

async function runCommand() {
  // Tools fetch from the runner's whole env; the child itself sees only the
  // strict env. Traced, the command runs under the trace supervisor. The
  // user's --ignore counts as if a tool had said it: user config wins.
  const server = await createServer({ env: process.env, trace: traceMode === 'off' ? false : traceMode, ignore: ignored });
  const [file, ...args] = server.command(command);
  const child = spawn(file, args, { cwd, env: { ...strictEnv(), ...server.env }, stdio: ['inherit', 'pipe', 'pipe'] });
  const stdout = [];
  const stderr = [];
  child.stdout.on('data', (chunk) => { stdout.push(chunk); process.stdout.write(chunk); });
  child.stderr.on('data', (chunk) => { stderr.push(chunk); process.stderr.write(chunk); });
  // Traced, the supervisor passes it on, once: a terminal's Ctrl-C, which
  // reached the command already, not again.
  const forward = (signal) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const outcome = await new Promise((resolve) => {
    child.on('error', (err) => resolve({ exitCode: 127, error: `cannot run ${file}: ${err.message}` }));
    child.on('close', (exitCode, signal) => resolve({ exitCode, signal }));
  });
  const reports = await server.close();
  const code = outcome.signal ? 128 + (constants.signals[outcome.signal] ?? 0) : outcome.exitCode;
  return { reports, outcome, code, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) };
}

// --- the other modes ------------------------------------------------------------

/**
 * `--clean`: removes this task's entries, or without a command the whole cache
 * dir, once it is sure the dir is a cache-runner cache (only task dirs in it):
 * a mistyped --cache-dir must not cost the user a directory.
 */
function clean() {
  const target = command.length > 0 ? taskDir : path.resolve(flags['cache-dir']);
  if (!fs.existsSync(target)) {
    process.stderr.write(`cache-runner: nothing to clean: ${target} does not exist\n`);
    return;
  }
  if (command.length === 0) {
    const foreign = fs.readdirSync(target).filter((name) => !/^[0-9a-f]{64}$/.test(name) && name !== 'stat-cache.json');
    if (foreign.length > 0) {
      process.stderr.write(`cache-runner: not cleaning ${target}: it holds what cache-runner did not write (${foreign.slice(0, 5).join(', ')})\n`);
      process.exit(1);
    }
  }
  const entries = command.length > 0
    ? fs.readdirSync(target).filter((id) => !id.startsWith('.')).length
    : fs.readdirSync(target).filter((name) => name !== 'stat-cache.json')
      .reduce((n, task) => n + fs.readdirSync(path.join(target, task)).filter((id) => !id.startsWith('.')).length, 0);
  fs.rmSync(target, { recursive: true, force: true });
  process.stderr.write(`cache-runner: removed ${target} (${entries} entr${entries === 1 ? 'y' : 'ies'})\n`);
}

/** Traced inputs counted by kind, and where they are: `1487 (1210 content, 3 listing, 274 existence; 640 outside the working directory)`. */
function tracedSummary(traced) {
  const byKind = {};
  let outsideCount = 0;
  for (const [file, [kind]] of Object.entries(traced)) {
    byKind[kind] = (byKind[kind] ?? 0) + 1;
    if (path.isAbsolute(file)) outsideCount++;
  }
  // A fixed order, whatever order the trace met the paths in.
  const kinds = ['content', 'listing', 'existence', ...Object.keys(byKind).sort()]
    .filter((kind, i, all) => byKind[kind] !== undefined && all.indexOf(kind) === i)
    .map((kind) => `${byKind[kind]} ${kind}`)
    .join(', ');
  return `${Object.keys(traced).length} (${kinds}; ${outsideCount} outside the working directory)`;
}

/**
 * `--dry-run`: the task's key part by part, and what a look-up would do. Env
 * values are never printed: a variable is `set` or `absent`, an entry's
 * tracked env is named, not shown.
 */
function dryRun() {
  const lines = [`task ${taskKey}`, `  command: ${JSON.stringify(command)}`];
  for (const name of envNames) lines.push(`  env ${name}: ${process.env[name] === undefined ? 'absent' : 'set'}`);
  for (const query of envGlobQueries(process.env)) {
    const names = Object.keys(query.matches);
    lines.push(`  env ${query.glob}: ${names.length} match${names.length === 1 ? '' : 'es'}${names.length ? ` (${names.join(', ')})` : ''}`);
  }
  const inputs = hashInputs({ ignoredInputs: [], inputs: [] });
  for (const glob of flags.input) {
    const re = globRegExp(glob);
    const files = Object.keys(inputs).filter((file) => re.test(file));
    lines.push(`  input ${glob}: ${files.length} file${files.length === 1 ? '' : 's'}`);
    for (const file of files) lines.push(`    ${file}  sha256 ${inputs[file]}`);
  }
  for (const glob of flags.output) lines.push(`  output ${glob}`);
  for (const caller of cacheableDespite) lines.push(`  cacheable despite: ${caller}`);
  lines.push(`  cache dir: ${taskDir}`);
  const entries = readEntries();
  lines.push(`entries: ${entries.length}`);
  let hit = null;
  for (const entry of entries) {
    const reasons = staleReasons(entry);
    const id = path.basename(entry.dir);
    if (reasons.length === 0 && !hit) hit = id;
    lines.push(`  ${id}: ${reasons.length === 0 ? 'holds' : `stale: ${reasons.join(', ')}`}`);
    const { fingerprint } = entry;
    const parts = [
      ['tracked env', Object.keys(fingerprint.envs)],
      ['env queries', fingerprint.envQueries.map((q) => ('glob' in q ? q.glob : `${q.prefix} (prefix)`))],
      ['values', Object.keys(fingerprint.values)],
      ['input files', Object.keys(entry.inputs)],
      ['traced inputs', entry.traced ? [tracedSummary(entry.traced)] : []],
      ['output files', entry.outputs],
    ];
    for (const [name, items] of parts) if (items.length > 0) lines.push(`    ${name}: ${items.join(', ')}`);
  }
  lines.push(flags.force ? 'would run: forced' : hit ? `would hit: ${hit}` : `would run: ${entries.length === 0 ? 'no entry' : 'every entry is stale'}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (flags.clean) {
  clean();
  process.exit(0);
}
for (const glob of emptyInputGlobs()) process.stderr.write(`cache-runner: warning: --input ${glob} matches no file\n`);
if (flags['dry-run']) {
  dryRun();
  process.exit(0);
}

if (remoteConfig?.off) process.stderr.write(`cache-runner: remote cache off: ${remoteConfig.off}\n`);
const remote = remoteConfig?.url ? new RemoteCache(remoteConfig) : null;

// A miss is explained by the closest entry: the one with the fewest reasons, newest on a tie.
let closest = null;
let missReasons = flags.force ? ['forced'] : null;
function consider(entry, reasons) {
  if (!missReasons || reasons.length < missReasons.length) {
    closest = entry;
    missReasons = reasons;
  }
}
function hit(entry) {
  restore(entry);
  saveStatCache();
  process.stderr.write('cache hit\n');
  process.exit(0);
}
if (!flags.force) {
  for (const entry of readEntries()) {
    const reasons = staleReasons(entry);
    if (reasons.length === 0) hit(entry);
    consider(entry, reasons);
  }
  // On a local miss, the remote's entries are validated from its index, so only
  // one that holds is downloaded; it is validated again from what arrived.
  for (const listed of await remoteEntries()) {
    let entry = listed;
    let reasons = staleReasons(listed);
    if (reasons.length === 0) {
      entry = (await download(listed.id)) ?? listed;
      reasons = entry.dir ? staleReasons(entry) : ['remote entry not downloaded'];
      if (reasons.length === 0) hit(entry);
    }
    consider(entry, reasons);
  }
}

// Hashed before the run, so a file changed while the command ran cannot pass as what it read.
const preRunHashes = hashInputs({ ignoredInputs: [], inputs: [] });
const startedAt = Date.now();
const { reports, outcome, code, stdout, stderr } = await runCommand();
// One verdict, the same `runner-aware inspect` prints: every way a tool's
// words can be lost, a trace that may be incomplete, an input the command
// modified, a tool's disableCache, and the command's exit; minus the
// disableCache calls the user overruled.
const { reasons, overruled } = verdict(reports, outcome, { cacheableDespite });
const skipReasons = reasons.map(describeReason);
if (outcome.error) skipReasons.push(outcome.error);
// What the trace saw: inputs by kind, and outputs that exist.
const traced = reports.trace && reports.trace.mode !== 'unsupported' ? inferAccesses(reports) : null;
if (!traced && flags.input.length === 0) {
  const why = reports.trace ? reports.trace.incomplete.join('; ') : 'tracing is off';
  skipReasons.push(`no inputs known (${why}), and no --input: a key that covers nothing would hit after any change`);
}
const shown = (files) => files.slice(0, 5).map(portable).join(', ') + (files.length > 5 ? `, … (${files.length} in all)` : '');
const changedMeanwhile = traced ? changedSince(traced.inputs, startedAt) : [];
if (changedMeanwhile.length > 0) skipReasons.push(`inputs changed while the command ran: ${shown(changedMeanwhile)}`);
const outputs = collectOutputs(reports, traced?.outputs);
// Writes outside the working directory cannot be restored in another
// checkout; the temp dir's are scratch.
const real = (dir) => {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return dir;
  }
};
const scratchDirs = [...new Set([os.tmpdir(), '/tmp', '/var/tmp'].flatMap((dir) => [dir, real(dir)]))];
const isOutside = (file) => path.isAbsolute(file) || file.startsWith('../');
const outside = outputs.filter((file) => isOutside(file) && !scratchDirs.some((dir) => path.resolve(cwd, file).startsWith(`${dir}/`)));
if (outside.length > 0) skipReasons.push(`outputs outside the working directory: ${outside.join(', ')}`);
const kept = outputs.filter((file) => !isOutside(file));

if (skipReasons.length === 0) {
  const inputs = hashInputs(reports, preRunHashes);
  const tracedInputs = traced ? fingerprintTraced(traced.inputs) : undefined;
  const { fingerprint, id } = entryKey(reports, inputs, tracedInputs);
  const conflicts = await dropConflictingEntry(id, reports);
  if (conflicts.length > 0) {
    skipReasons.push(`${conflicts.join(', ')} with the same inputs and env, so the key misses what it depends on (stored entry dropped)`);
  } else {
    store(id, fingerprint, reports, inputs, tracedInputs, kept, stdout, stderr, overruled);
    await remote?.upload(taskKey, id, path.join(taskDir, id));
    for (const reason of overruled) process.stderr.write(`cache stored despite: ${describeReason(reason)}\n`);
    // Values are known only now: they add to the explanation, never to the decision to run.
    if (closest) missReasons.push(...valueReasons(closest.fingerprint, reports.values));
    process.stderr.write(`cache miss: ${missReasons?.join(', ') ?? 'no entry'}\n`);
  }
}
if (skipReasons.length > 0) process.stderr.write(`cache skipped: ${skipReasons.join('; ')}\n`);
saveStatCache();
process.exit(code ?? 0);
