#!/usr/bin/env node
// A reference caching runner on runner-aware's public API.
//
//   node examples/cache-runner/index.mjs [--cache-dir DIR] [--force] [--env NAME]… [--input GLOB]… [--output GLOB]… -- <command…>
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
//    An entry is keyed by the command, the input file hashes (`--input` plus
//    `addInput`, minus ignored inputs) and the env fingerprint; it archives
//    `--output` plus `addOutput`, minus ignored outputs.
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
import { constants } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  createServer,
  declaredInputs,
  declaredOutputs,
  envFingerprint,
  isIgnoredInput,
  isIgnoredOutput,
  parseFingerprint,
  parseReports,
  serializeFingerprint,
  serializeReports,
  validateFingerprint,
  verdict,
} from 'runner-aware/runner';

// What every child gets, like Turborepo's strict mode: enough to run programs,
// never enough to change what they build.
const BASE_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR', 'TMP', 'TEMP', 'TERM', 'LANG',
  'SYSTEMROOT', 'COMSPEC', 'PATHEXT', 'WINDIR', 'USERPROFILE', 'APPDATA', 'LOCALAPPDATA'];
// Never walked when expanding globs: dependencies and VCS data are not task files.
const SKIP_DIRS = new Set(['node_modules', '.git']);

const { values: flags, positionals: command } = parseArgs({
  allowPositionals: true,
  options: {
    'cache-dir': { type: 'string', default: 'node_modules/.cache/cache-runner' },
    force: { type: 'boolean', default: false },
    env: { type: 'string', multiple: true, default: [] },
    input: { type: 'string', multiple: true, default: [] },
    output: { type: 'string', multiple: true, default: [] },
  },
});
if (command.length === 0) {
  process.stderr.write('usage: cache-runner [--cache-dir DIR] [--force] [--env NAME]… [--input GLOB]… [--output GLOB]… -- <command…>\n');
  process.exit(2);
}

const cwd = process.cwd();
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const portable = (file) => path.relative(cwd, file).split(path.sep).join('/');

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

// --- the cache ----------------------------------------------------------------

const taskKey = sha256(JSON.stringify({ command, env: [...flags.env].sort(), input: flags.input, output: flags.output }));
const taskDir = path.resolve(flags['cache-dir'], taskKey);

function readEntries() {
  if (!fs.existsSync(taskDir)) return [];
  return fs.readdirSync(taskDir)
    .filter((id) => fs.existsSync(path.join(taskDir, id, 'entry.json')))
    .map((id) => {
      const dir = path.join(taskDir, id);
      const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8');
      return { ...JSON.parse(read('entry.json')), dir,
        fingerprint: parseFingerprint(read('fingerprint.json')),
        reports: parseReports(read('reports.json'), { root: cwd }) };
    })
    .sort((a, b) => b.createdAt - a.createdAt);
}

/** Why `entry` does not hold now, by name only; empty when it does. */
function staleReasons(entry) {
  return [
    ...validateFingerprint(entry.fingerprint, process.env).reasons,
    ...inputReasons(entry.inputs, hashInputs(entry.reports)),
  ];
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

/** The files to archive, relative: `--output` plus the tools' declared outputs, minus ignored outputs. */
function collectOutputs(reports) {
  const files = [...expandGlobs(flags.output), ...declaredOutputs(reports).flatMap(filesUnder)]
    .filter((file) => !isIgnoredOutput(reports, file));
  return [...new Set(files.map(portable))].sort();
}

/**
 * The run's env fingerprint and its entry id. `--env` names reach the child
 * directly, so they are keyed like tracked env. The id leaves the values out:
 * it is what a look-up can check, so one entry stands for one set of inputs and env.
 */
function entryKey(reports, inputs) {
  const envs = { ...reports.envs };
  for (const name of flags.env) envs[name] = { value: process.env[name] ?? null, tracked: true };
  const fingerprint = envFingerprint({ ...reports, envs });
  const lookup = envFingerprint({ ...reports, envs, values: {} });
  return { fingerprint, id: sha256(JSON.stringify([taskKey, inputs, lookup.digest])) };
}

/**
 * The values that contradict the entry already stored under `id`, if any. A
 * contradiction means something the output depends on is in neither the inputs
 * nor the env, so that entry cannot be trusted either: it is dropped.
 */
function dropConflictingEntry(id, reports) {
  const file = path.join(taskDir, id, 'fingerprint.json');
  if (!fs.existsSync(file)) return [];
  const reasons = valueReasons(parseFingerprint(fs.readFileSync(file, 'utf8')), reports.values);
  if (reasons.length > 0) fs.rmSync(path.join(taskDir, id), { recursive: true, force: true });
  return reasons;
}

function store(id, fingerprint, reports, inputs, files, stdout, stderr) {
  // Written aside and renamed into place, so a reader never sees half an entry.
  const staging = path.join(taskDir, `.${randomUUID()}`);
  fs.mkdirSync(staging, { recursive: true });
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(staging, 'files', file)), { recursive: true });
    fs.copyFileSync(path.resolve(cwd, file), path.join(staging, 'files', file));
  }
  fs.writeFileSync(path.join(staging, 'stdout'), stdout);
  fs.writeFileSync(path.join(staging, 'stderr'), stderr);
  fs.writeFileSync(path.join(staging, 'reports.json'), serializeReports(reports, { root: cwd }));
  fs.writeFileSync(path.join(staging, 'fingerprint.json'), serializeFingerprint(fingerprint));
  fs.writeFileSync(path.join(staging, 'entry.json'), JSON.stringify({ createdAt: Date.now(), inputs, outputs: files }));
  fs.rmSync(path.join(taskDir, id), { recursive: true, force: true });
  fs.renameSync(staging, path.join(taskDir, id));
}

// --- one run -------------------------------------------------------------------

function strictEnv() {
  const env = {};
  for (const name of [...BASE_ENV, ...flags.env]) if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

async function runCommand() {
  // Tools fetch from the runner's whole env; the child itself sees only the strict env.
  const server = await createServer({ env: process.env });
  const [file, ...args] = command;
  const child = spawn(file, args, { cwd, env: { ...strictEnv(), ...server.env }, stdio: ['inherit', 'pipe', 'pipe'] });
  const stdout = [];
  const stderr = [];
  child.stdout.on('data', (chunk) => { stdout.push(chunk); process.stdout.write(chunk); });
  child.stderr.on('data', (chunk) => { stderr.push(chunk); process.stderr.write(chunk); });
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

// A miss is explained by the closest entry: the one with the fewest reasons, newest on a tie.
let closest = null;
let missReasons = flags.force ? ['forced'] : null;
if (!flags.force) {
  for (const entry of readEntries()) {
    const reasons = staleReasons(entry);
    if (reasons.length === 0) {
      restore(entry);
      process.stderr.write('cache hit\n');
      process.exit(0);
    }
    if (!missReasons || reasons.length < missReasons.length) {
      closest = entry;
      missReasons = reasons;
    }
  }
}

// Hashed before the run, so a file changed while the command ran cannot pass as what it read.
const preRunHashes = hashInputs({ ignoredInputs: [], inputs: [] });
const { reports, outcome, code, stdout, stderr } = await runCommand();
// One verdict, the same `runner-aware inspect` prints: every way a tool's
// words can be lost, a tool's disableCache, and the command's exit.
const skipReasons = verdict(reports, outcome).reasons.map((r) => `${r.kind}: ${r.message}${r.pid ? ` (pid ${r.pid})` : ''}`);
if (outcome.error) skipReasons.push(outcome.error);
const outputs = collectOutputs(reports);
const outside = outputs.filter((file) => file.startsWith('../'));
if (outside.length > 0) skipReasons.push(`outputs outside the working directory: ${outside.join(', ')}`);

if (skipReasons.length === 0) {
  const inputs = hashInputs(reports, preRunHashes);
  const { fingerprint, id } = entryKey(reports, inputs);
  const conflicts = dropConflictingEntry(id, reports);
  if (conflicts.length > 0) {
    skipReasons.push(`${conflicts.join(', ')} with the same inputs and env, so the key misses what it depends on (stored entry dropped)`);
  } else {
    store(id, fingerprint, reports, inputs, outputs, stdout, stderr);
    // Values are known only now: they add to the explanation, never to the decision to run.
    if (closest) missReasons.push(...valueReasons(closest.fingerprint, reports.values));
    process.stderr.write(`cache miss: ${missReasons?.join(', ') ?? 'no entry'}\n`);
  }
}
if (skipReasons.length > 0) process.stderr.write(`cache skipped: ${skipReasons.join('; ')}\n`);
process.exit(code ?? 0);
