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
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  createServer,
  describeReason,
  envFingerprint,
  envMatcher,
  envValueDigest,
  nodeModulesBinPath,
  openCache,
  packageManagerPaths,
  redactUrl,
  TraceUnavailableError,
  verdict,
  withoutCacheSecrets,
} from 'runner-aware/runner';
import { globSync } from 'tinyglobby';

import { remoteSettings } from './remote.mjs';

// What every child gets, like Turborepo's strict mode: enough to run programs,
// never enough to change what they build.
const BASE_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR', 'TMP', 'TEMP', 'TERM', 'LANG',
  'SYSTEMROOT', 'COMSPEC', 'PATHEXT', 'WINDIR', 'USERPROFILE', 'APPDATA', 'LOCALAPPDATA'];
// Never matched by --input and --output globs: dependencies and VCS data are not task files.
const SKIP_DIRS = ['**/node_modules/**', '**/.git/**'];

const USAGE = 'usage: cache-runner [--cache-dir DIR] [--force] [--dry-run] [--trace MODE] [--ignore PATH]… [--env NAME|GLOB]… [--input GLOB]… [--output GLOB]…\n' +
  '                    [--remote URL --team TEAM [--token-file FILE]] -- <command…>\n' +
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
                   preload and seccomp must be had: where no tracer runs
                   (not Linux x64 or arm64, a build without it), the runner
                   says why and exits 2.
                   Traced reads, look-ups and listings are inputs and
                   traced writes outputs, with no --input or --output; a run
                   that modified what it read, or whose trace may be
                   incomplete, is not stored
  --ignore PATH    reads and writes under PATH are neither inputs nor outputs,
                   as when a tool says so itself (ignoreInput, ignoreOutput):
                   for a tool's own cache that it does not report, such as
                   Vitest's results under node_modules/.vite
  --input GLOB     files the command reads: ** any directories, * and ? in a
                   name, [abc] classes, {src,lib} alternatives; a matching
                   directory covers its files; !GLOB leaves out what it
                   matches ('src/**' '!**/*.test.ts'). Dot files count;
                   node_modules and .git never do. A glob that matches no
                   file is warned about.
                   Without a trace, a run with no --input is never stored
  --output GLOB    files the command writes, archived with the entry (globs
                   as for --input)
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
  --token-file FILE
                   read the remote's bearer token from FILE (default
                   $TURBO_TOKEN); --token TOKEN works too, but puts the token
                   where any local user can read it (ps), and warns so.
                   With $TURBO_REMOTE_CACHE_SIGNATURE_KEY, uploads are signed
                   and unsigned or mis-signed artifacts are refused
  --force          run and store even when an entry would hit
  --dry-run        print the task's key, part by part, and what a look-up
                   of the local cache would do; run nothing, store nothing
  --clean          remove the local cache: this task's entries when a command
                   is given, the whole cache dir otherwise
  -h, --help       show this help

Exit status: the command's (0 on a hit); 2 for a usage error.`;

/**
 * What to say about an argument parseArgs refused: an option of the command
 * given without `--` before the command (`cache-runner node -e 1`) gets the
 * line that works.
 */
function usageHint(argv, err) {
  if (err.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return err.message;
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
  const unknown = tokens.find((token) => token.kind === 'option' && err.message.includes(`'${token.rawName}'`));
  const command = tokens.find((token) => token.kind === 'positional');
  if (!unknown || !command || command.index > unknown.index) return `unknown option ${unknown?.rawName ?? err.message}`;
  const quoted = (word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);
  const fixed = [...argv.slice(0, command.index), '--', ...argv.slice(command.index)].map(quoted).join(' ');
  return `unknown option ${unknown.rawName}: options of the command go after --, as in: cache-runner ${fixed}`;
}

/** A usage error: what is wrong and how to call the runner, no stack trace. */
function usageError(message) {
  process.stderr.write(`cache-runner: ${message}\n${USAGE}\nRun cache-runner --help for the options.\n`);
  process.exit(2);
}

// The runner's own options; everything after -- is the command.
const OPTIONS = {
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
  'token-file': { type: 'string' },
};

let parsed;
try {
  parsed = parseArgs({ allowPositionals: true, options: OPTIONS });
} catch (err) {
  usageError(usageHint(process.argv.slice(2), err));
}
const { values: flags, positionals: command } = parsed;
if (flags.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (command.length === 0 && !flags.clean) usageError('no command: put it after --');
if (!['auto', 'preload', 'seccomp', 'off'].includes(flags.trace)) usageError(`--trace ${flags.trace}: expected auto, preload, seccomp or off`);
if (flags.clean && (flags['dry-run'] || flags.force)) usageError('--clean runs nothing: it takes no --dry-run or --force');
if (flags['token-file'] !== undefined) {
  try {
    flags.token = fs.readFileSync(flags['token-file'], 'utf8').trim();
  } catch (err) {
    usageError(`--token-file ${flags['token-file']}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}
// The remote cache's flags, or TURBO_API, TURBO_TEAM and TURBO_TOKEN: null when no URL is set.
const remoteConfig = remoteSettings(flags, process.env);
if (remoteConfig?.usage) usageError(`--remote ${remoteConfig.off}`);
if (flags.token !== undefined) {
  process.stderr.write('cache-runner: warning: --token puts the token in the process list, where any local user can read it: use TURBO_TOKEN or --token-file\n');
}

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

// The runner's secrets (the remote's token and signing key) never reach the
// task: not in its env, not through a tool's getEnv.
const runnerEnv = withoutCacheSecrets(process.env);

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
const portable = (file) => {
  const rel = path.relative(cwd, file);
  return !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : file;
};

// --- files ------------------------------------------------------------------

/**
 * The files `globs` match under the working directory (absolute, sorted),
 * by tinyglobby: `**`, `*`, `?`, `[…]` classes and `{a,b}` alternatives; a
 * glob that starts with `!` leaves out what it matches. A matching directory
 * covers its files. Only the directories a glob can reach are walked.
 */
function expandGlobs(globs) {
  const patterns = globs.flatMap((glob) => {
    const trimmed = glob.replace(/\/+$/, '');
    return trimmed.endsWith('**') ? [trimmed] : [trimmed, `${trimmed}/**`];
  });
  if (!patterns.some((pattern) => !pattern.startsWith('!'))) return [];
  return globSync(patterns, { cwd, absolute: true, dot: true, ignore: SKIP_DIRS, expandDirectories: false }).map(path.normalize).sort();
}

/** The --input globs that add files (not `!…`), each with the files it adds once every `!…` glob has left out its own. */
function inputGlobs() {
  const negated = flags.input.filter((glob) => glob.startsWith('!'));
  return flags.input.filter((glob) => !glob.startsWith('!')).map((glob) => ({ glob, files: expandGlobs([glob, ...negated]) }));
}

// --- the cache ----------------------------------------------------------------

// An override is part of the task: entries stored despite a tool are not hit by a run without it.
const cacheableDespite = [...new Set(flags['cacheable-despite'])].sort();
// auto and preload make the same task: a trace where one can be made, preload mode.
const traceMode = flags.trace === 'auto' ? 'preload' : flags.trace;
const ignored = [...new Set(flags.ignore.map((dir) => path.resolve(cwd, dir)))].sort();
const taskKey = sha256(JSON.stringify({ command, env: [...flags.env].sort(), input: flags.input, output: flags.output,
  cacheableDespite, trace: traceMode, ignore: ignored.map(portable) }));
const warn = (message) => process.stderr.write(`cache-runner: ${message}\n`);

/**
 * The reports as the entry keys them: `--env` names reach the child
 * directly, so they are tracked like a tool's getEnv, and `--env` globs like
 * a tool's tracked query, with their match sets.
 */
function keyedReports(reports) {
  const encode = (value) => (reports.envValues === 'sha256' ? envValueDigest(value) : value);
  const envs = { ...reports.envs };
  for (const name of envNames) envs[name] = { value: runnerEnv[name] === undefined ? null : encode(runnerEnv[name]), tracked: true };
  const envQueries = [
    ...reports.envQueries,
    ...envGlobQueries(runnerEnv).map((query) => ({ ...query, matches: Object.fromEntries(Object.entries(query.matches).map(([name, value]) => [name, encode(value)])) })),
  ];
  return { ...reports, envs, envQueries };
}

// --- one run -------------------------------------------------------------------

function strictEnv() {
  const env = {};
  for (const name of [...BASE_ENV, ...envNames]) if (runnerEnv[name] !== undefined) env[name] = runnerEnv[name];
  for (const query of envGlobQueries(runnerEnv)) Object.assign(env, query.matches);
  return env;
}

async function runCommand() {
  // Tools fetch from the runner's env less its secrets; the child itself
  // sees only the strict env. Traced, the command runs under the trace
  // supervisor. The user's --ignore counts as if a tool had said it.
  // auto traces where it can; a mode by name must be had.
  const trace = flags.trace === 'off' ? false : flags.trace === 'auto' ? true : flags.trace;
  let server;
  try {
    // The package managers' own files (npm's logs, caches) are no task's
    // inputs or outputs: `npm run build` caches as its command does.
    server = await createServer({ env: runnerEnv, trace, ignore: [...ignored, ...packageManagerPaths(runnerEnv)] });
  } catch (err) {
    if (!(err instanceof TraceUnavailableError)) throw err;
    process.stderr.write(`cache-runner: --trace ${err.mode} cannot be done here: ${err.reason} (--trace auto traces where it can)\n`);
    process.exit(2);
  }
  const [file, ...args] = server.command(command);
  // node_modules/.bin on PATH, as npm puts it for a script.
  const env = strictEnv();
  const child = spawn(file, args, { cwd, env: { ...env, PATH: nodeModulesBinPath(cwd, env.PATH ?? ''), ...server.env }, stdio: ['inherit', 'pipe', 'pipe'] });
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
    child.on('error', (err) => resolve({ exitCode: 127, error: `cannot run ${file}: ${err.code === 'ENOENT' && !file.includes('/') ? 'not found on PATH' : err.message}` }));
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
function clean(cache) {
  const target = path.resolve(flags['cache-dir']);
  if (!fs.existsSync(target)) {
    process.stderr.write(`cache-runner: nothing to clean: ${target} does not exist\n`);
    return;
  }
  if (command.length > 0) {
    const removed = cache.clean(taskKey);
    process.stderr.write(`cache-runner: removed ${path.join(target, sha256(taskKey))} (${removed} entr${removed === 1 ? 'y' : 'ies'})\n`);
    return;
  }
  const names = fs.readdirSync(target);
  const foreign = names.filter((name) => !/^[0-9a-f]{64}$/.test(name) && name !== 'stat-cache.json');
  if (foreign.length > 0) {
    process.stderr.write(`cache-runner: not cleaning ${target}: it holds what cache-runner did not write (${foreign.slice(0, 5).join(', ')})\n`);
    process.exit(1);
  }
  const entries = names.filter((name) => name !== 'stat-cache.json')
    .reduce((n, task) => n + fs.readdirSync(path.join(target, task)).filter((id) => id.endsWith('.tar.zst')).length, 0);
  fs.rmSync(target, { recursive: true, force: true });
  process.stderr.write(`cache-runner: removed ${target} (${entries} entr${entries === 1 ? 'y' : 'ies'})\n`);
}

/** An entry's inputs counted by kind, and where they are: `1487 (1210 content, 3 listing, 274 existence; 640 outside the working directory)`. */
function inputSummary(entry) {
  const inputs = Object.entries(JSON.parse(entry.manifest).key.inputs);
  const byKind = {};
  for (const [, { kind }] of inputs) byKind[kind] = (byKind[kind] ?? 0) + 1;
  // A fixed order, whatever order the trace met the paths in.
  const kinds = ['content', 'listing', 'existence'].filter((kind) => byKind[kind] !== undefined).map((kind) => `${byKind[kind]} ${kind}`).join(', ');
  const outside = inputs.filter(([file]) => path.isAbsolute(file) || file.startsWith('../') || file === '..').length;
  return `${inputs.length} (${kinds}; ${outside} outside the working directory)`;
}

/**
 * `--dry-run`: the task's key part by part, and what a look-up would do. Env
 * values are never printed: a variable is `set` or `absent`, an entry's
 * tracked env is named, not shown.
 */
async function dryRun(cache) {
  const lines = [`task ${taskKey}`, `  command: ${JSON.stringify(command)}`];
  for (const name of envNames) lines.push(`  env ${name}: ${runnerEnv[name] === undefined ? 'absent' : 'set'}`);
  for (const query of envGlobQueries(runnerEnv)) {
    const names = Object.keys(query.matches);
    lines.push(`  env ${query.glob}: ${names.length} match${names.length === 1 ? '' : 'es'}${names.length ? ` (${names.join(', ')})` : ''}`);
  }
  for (const glob of flags.input.filter((g) => g.startsWith('!'))) lines.push(`  input ${glob}: left out`);
  for (const { glob, files } of inputGlobs()) {
    lines.push(`  input ${glob}: ${files.length} file${files.length === 1 ? '' : 's'}`);
    for (const file of files) lines.push(`    ${portable(file)}  sha256 ${sha256(fs.readFileSync(file))}`);
  }
  for (const glob of flags.output) lines.push(`  output ${glob}`);
  for (const caller of cacheableDespite) lines.push(`  cacheable despite: ${caller}`);
  lines.push(`  cache dir: ${path.join(path.resolve(flags['cache-dir']), sha256(taskKey))}`);
  const states = await cache.entries(taskKey, { env: runnerEnv });
  lines.push(`entries: ${states.length}`);
  let hit = null;
  for (const { entry, reasons } of states) {
    if (reasons.length === 0 && !hit) hit = entry.id;
    lines.push(`  ${entry.id}: ${reasons.length === 0 ? 'holds' : `stale: ${reasons.join(', ')}`}`);
    const parts = [
      ['tracked env and queries', entry.env],
      ['values', entry.values],
      ['inputs', entry.inputs.length > 0 ? [inputSummary(entry)] : []],
      ['keyed on the repository', entry.keyedOn === 'repository' ? [`${Object.keys(JSON.parse(entry.manifest).key.repo.files).length} files`] : []],
      ['output files', entry.outputs],
    ];
    for (const [name, items] of parts) if (items.length > 0) lines.push(`    ${name}: ${items.join(', ')}`);
  }
  lines.push(flags.force ? 'would run: forced' : hit ? `would hit: ${hit}` : `would run: ${states.length === 0 ? 'no entry' : 'every entry is stale'}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

// --- the task ---------------------------------------------------------------------

if (remoteConfig?.off) warn(`remote cache off: ${remoteConfig.off}`);
const remote = remoteConfig?.url
  ? { url: remoteConfig.url.toString(), team: remoteConfig.team.teamId ?? remoteConfig.team.slug ?? '', token: remoteConfig.token,
      signatureKey: process.env.TURBO_REMOTE_CACHE_SIGNATURE_KEY || undefined }
  : null;
const cache = openCache({ dir: flags['cache-dir'], root: cwd, remote, onWarning: (message) => warn(redactUrl(message)) });

if (flags.clean) {
  clean(cache);
  process.exit(0);
}
for (const { glob, files } of inputGlobs()) if (files.length === 0) warn(`warning: --input ${glob} matches no file`);
if (flags['dry-run']) {
  await dryRun(cache);
  process.exit(0);
}

// A miss is explained by the closest entry: the one with the fewest reasons, newest first.
let missReasons = ['forced'];
let closest = null;
// A cache that cannot be read is a miss, with a warning: the task still runs.
const unreadable = (err) => {
  warn(`warning: the cache could not be read: ${err.message}`);
  return { hit: false, reasons: [`the cache could not be read (${err.message})`] };
};
if (!flags.force) {
  const found = await cache.lookup(taskKey, { env: runnerEnv }).catch(unreadable);
  if (found.hit) {
    try {
      const { stdout, stderr } = await cache.restore(found.entry);
      process.stdout.write(stdout);
      process.stderr.write(stderr);
      cache.close();
      process.stderr.write(found.entry.keyedOn === 'repository' ? 'cache hit (keyed on the repository\'s content)\n' : 'cache hit\n');
      process.exit(0);
    } catch (err) {
      missReasons = [`the entry could not be restored (${err.message})`];
    }
  } else {
    missReasons = found.reasons;
    const states = await cache.entries(taskKey, { env: runnerEnv }).catch(() => []);
    closest = states.find((state) => state.reasons.join(', ') === missReasons.join(', '))?.entry ?? null;
  }
}

// Where no complete trace may exist, the repository's content before the
// run is what keys it (without --input).
const before = flags.input.length === 0 ? await cache.snapshot() : undefined;
const startedAt = Date.now();
const { reports, outcome, code, stdout, stderr } = await runCommand();
// Without a trace and outside a git repository, only --input files key the
// run (a tool's addInput alone would hold after any change to what it did
// not declare).
const traced = reports.trace && reports.trace.mode !== 'unsupported';
const unkeyed = !traced && flags.input.length === 0 && !before?.available
  ? `no inputs known (${reports.trace ? reports.trace.incomplete.join('; ') : 'tracing is off'}; ${before?.reason ?? 'no repository snapshot'}), and no --input: a key that covers nothing would hit after any change`
  : null;
const result = unkeyed
  ? { stored: false, reasons: [...verdict(reports, outcome, { cacheableDespite }).reasons.map(describeReason), unkeyed] }
  : await cache.store(taskKey, {
  reports: keyedReports(reports),
  before,
  outcome,
  startedAt,
  stdout,
  stderr,
  inputs: expandGlobs(flags.input),
  outputs: expandGlobs(flags.output),
  cacheableDespite,
}).catch((err) => {
  // openCache's store warns about a cache it cannot write and resolves; this is for anything else.
  warn(`warning: the cache could not store the run: ${err.message}`);
  return { stored: false, reasons: [`the cache could not store the run: ${err.message}`] };
});
if (result.stored) {
  for (const reason of result.overruled) process.stderr.write(`cache stored despite: ${describeReason(reason)}\n`);
  // Values are known only now: they add to the explanation, never to the decision to run.
  if (closest) {
    const ours = envFingerprint(keyedReports(reports)).values;
    const theirs = JSON.parse(closest.manifest).key.env.values;
    for (const name of [...new Set([...Object.keys(ours), ...Object.keys(theirs)])].sort()) {
      if (ours[name] !== theirs[name]) missReasons.push(`value ${name} changed`);
    }
  }
  const keyedOn = result.key === 'repository' ? ' (keyed on the repository\'s content)' : '';
  process.stderr.write(`cache miss: ${missReasons.join(', ')}${keyedOn}\n`);
} else {
  const reasons = outcome.error ? [...result.reasons, outcome.error] : result.reasons;
  process.stderr.write(`cache skipped: ${reasons.join('; ')}\n`);
}
cache.close();
process.exit(code ?? 0);
