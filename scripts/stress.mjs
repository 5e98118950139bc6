// `npm run stress`: the reliability and fail-closed scenarios at full size,
// plus a long fuzz of the frame decoder, written to docs/reliability.md with
// the figures this run produced. `--no-write` prints the table without
// touching the doc; `--small` runs every scenario at the test suite's sizes
// (and the Rust rows not at all), to check the script itself, and never writes.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpus, freemem, totalmem } from 'node:os';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as failClosed from '../test/scenarios/fail-closed.mjs';
import * as scenario from '../test/scenarios/reliability.mjs';
import { hostTarget } from './host-target.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const small = process.argv.includes('--small');
const write = !small && !process.argv.includes('--no-write');
const fuzzCases = Number(process.env.PROTOCOL_FUZZ_CASES ?? 100_000);
const rows = [];
let failed = 0;

/** The full size, or the test suite's with `--small`. */
const size = (full, test) => (small ? test : full);
const n = (value) => value.toLocaleString('en');
const kindsOf = (r) => r.notCacheable.map((reason) => reason.kind);
/** Fail closed: nothing lost, or not cacheable with a reason of `kind`. */
const failsClosed = (complete, r, kind) => (complete ? r.cacheable : !r.cacheable && kindsOf(r).includes(kind));

/** A row that cannot run here; it is listed, not counted as a failure. */
class Skip {
  constructor(reason) {
    this.reason = reason;
  }
}

async function row(name, scenarioText, run, judge) {
  process.stdout.write(`stress: ${name} … `);
  const started = performance.now();
  const result = await run();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (result instanceof Skip) {
    process.stdout.write(`skipped (${result.reason})\n`);
    rows.push(`| ${name} | ${scenarioText} | skipped | ${result.reason} |`);
    return;
  }
  const { ok, figure } = judge(result);
  if (!ok) failed++;
  process.stdout.write(`${ok ? 'ok' : 'FAILED'} (${figure}; ${seconds} s)\n`);
  if (!ok) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  rows.push(`| ${name} | ${scenarioText} | ${ok ? 'pass' : '**fail**'} | ${figure} |`);
}

/** Runs a Rust integration test of the core crate in release mode; throws when it fails. */
function cargoTest(test, names, env = {}) {
  if (small) return new Skip('not run with --small');
  const started = performance.now();
  execFileSync('cargo', ['test', '--release', '--target', hostTarget(), '--test', test, '--quiet', '--', '--exact', ...names], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { seconds: (performance.now() - started) / 1000 };
}

// A Node tool waiting at the barrier and then connected holds about this much
// memory of its own; a backlog row needs all of its tools alive at once.
const TOOL_BYTES = 9 * 2 ** 20;
function backlogRow(tools, somaxconn) {
  const needed = tools * TOOL_BYTES;
  if (needed > freemem() * 0.8) {
    return new Skip(`${n(tools)} Node tools at once need about ${Math.ceil(needed / 2 ** 30)} GiB; ${Math.floor(freemem() / 2 ** 30)} GiB free here`);
  }
  return failClosed.fullBacklog({ tools, somaxconn, stopMs: 0 });
}
const backlogFigure = (r) => ({
  ok: r.failedTools.length === 0 && failsClosed(r.answered === r.tools && r.clients === r.tools && r.inputs === r.tools, r, 'lost'),
  figure: `backlog ${r.somaxconn}: ${n(r.answered)} / ${n(r.tools)} tools answered, ${n(r.clients)} clients, ${n(r.inputs)} reports; ${r.cacheable ? 'cacheable' : `not cacheable (${kindsOf(r).join(', ')})`}`,
});

await row(
  'Zero loss',
  `${size(400, 48)} tool processes, 16 at a time, 25 reports each, \`process.exit(0)\` right after the last; \`close()\` as soon as the last exits`,
  () => scenario.zeroLoss({ processes: size(400, 48), concurrency: 16, reports: 25 }),
  (r) => ({ ok: r.received === r.sent && r.failedProcesses === 0 && r.errors === 0, figure: `${r.received.toLocaleString('en')} / ${r.sent.toLocaleString('en')} reports arrived, ${r.clients} clients, ${r.errors} errors, ${r.ms} ms` }),
);
await row(
  'Grandchildren',
  `a tool spawns ${size(20, 4)} grandchildren one after another; each sends 25 reports and exits before the tool does`,
  () => scenario.grandchildren({ children: size(20, 4), reports: 25 }),
  (r) => ({ ok: r.exit === 0 && r.received === r.sent && r.parentValue === 'yes', figure: `${r.received} / ${r.sent} reports, ${r.clients} clients` }),
);
await row(
  'Worker before exit',
  `${size(8, 4)} \`worker_threads\` workers send ${size(500, 50)} reports each; the process exits the moment the last says it is done`,
  () => scenario.workerBeforeExit({ workers: size(8, 4), reports: size(500, 50) }),
  (r) => ({ ok: r.exit === 0 && r.received === r.sent, figure: `${r.received.toLocaleString('en')} / ${r.sent.toLocaleString('en')} reports` }),
);
await row(
  'Hostile input',
  'a 0xFFFFFFFF length before and after the handshake, random bytes, a frame cut off then EOF, valid JSON of the wrong shape, a wrong token, a wrong version, a NUL in a path, 100 token-less peers stalled in a 1 MiB hello, a peer that sends 200 requests and never reads the answers, 300 connections that never send a byte; a real tool at the same time; `closeTimeoutMs` 1000',
  () => scenario.hostile({ idle: 300, closeTimeoutMs: 1000 }),
  (r) => ({
    ok: r.toolServed && !r.leakedSecret && r.closeMs < 2500 && r.rssGrowthMiB < 64,
    figure: `real tool served; no env value leaked; ${r.errors.length} error entries recorded; close() took ${r.closeMs} ms with the peers still connected; runner RSS grew ${r.rssGrowthMiB.toFixed(1)} MiB`,
  }),
);
await row(
  'Runner SIGKILLed',
  'the runner is killed mid-task; the tool then makes 100,000 calls (50,000 `ignoreInput` + 50,000 `getEnv`)',
  () => scenario.deadRunner({ calls: 100_000 }),
  (r) => ({ ok: r.threw === 0 && r.ms < 2000 && !r.connected, figure: `${r.calls.toLocaleString('en')} calls in ${r.ms.toFixed(1)} ms, ${r.threw} threw` }),
);
await row(
  'Tool killed mid-frame',
  'a tool sends 3 reports and 10 bytes of a 4th, then SIGKILLs itself',
  () => scenario.killedMidFrame(),
  (r) => ({ ok: r.kept.length === 3 && r.errors.some((m) => m.startsWith('connection closed mid-frame')), figure: `${r.kept.length} reports kept; recorded: "${r.errors[0]}"` }),
);
await row(
  'Daemon holds its connection',
  'a tool that stays alive and keeps its connection open, like a daemon that inherited the env; `closeTimeoutMs` 1000',
  async () => {
    const { createServer } = await import('../dist/runner.mjs');
    const { spawn } = await import('node:child_process');
    const server = await createServer({ closeTimeoutMs: 1000 });
    const daemon = spawn(process.execPath, ['-e', "require('runner-aware').ignoreInput('/daemon'); setInterval(() => {}, 1000)"], { cwd: root, env: { ...process.env, ...server.env }, stdio: 'ignore' });
    while (server.snapshot().ignoredInputs.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const started = performance.now();
    const reports = await server.close();
    const ms = performance.now() - started;
    daemon.kill('SIGKILL');
    return { ms, stillConnected: reports.clientsStillConnected, kept: reports.ignoredInputs.length };
  },
  (r) => ({ ok: r.ms < 1500 && r.stillConnected === 1 && r.kept === 1, figure: `close() returned after ${r.ms.toFixed(0)} ms (limit 1000 ms + slack); clientsStillConnected ${r.stillConnected}` }),
);
await row(
  'Access control',
  'socket directory mode and owner; a process of user `nobody` connects; a same-user peer without the token asks for an env value; directory after `close()`',
  () => scenario.accessControl(),
  (r) => ({
    ok: r.mode === '700' && r.ownerIsRunner && !r.noTokenGotSecret && r.dirRemoved && (!r.otherUser.ran || r.otherUser.result === 'EACCES'),
    figure: `mode ${r.mode}, owned by the runner; other user: ${r.otherUser.ran ? r.otherUser.result : `not run (${r.otherUser.result})`}; token-less peer got no value; directory removed`,
  }),
);
await row(
  'Leftovers after a killed runner',
  'a runner is SIGKILLed with its server open; a new server starts and serves a tool',
  () => scenario.leftoversAfterKill(),
  (r) => ({ ok: r.nextServerWorks, figure: `stale directory ${r.leftoverExists ? 'left behind' : 'gone'}; next server works: ${r.nextServerWorks}` }),
);
await row(
  'Encoding edges',
  'a runner env value with a 0xFF byte; a value and a path 200 bytes under the 1 MiB frame limit; a value and a path over it',
  () => scenario.encodingEdges(),
  (r) => ({
    ok: r.nearValueKept && r.nearPathKept && !r.overValueKept && !r.overPathKept && r.afterKept && !r.cacheable && r.errors === 0 && r.nonUtf8?.recorded.value === createHash('sha256').update('a\ufffdb').digest('hex'),
    figure: `0xFF served as U+FFFD (recorded as its digest); near-limit value and path kept; over-limit ones refused by the client, run marked not cacheable ("${r.reasons[0]}"); later reports still delivered`,
  }),
);
await row(
  'Nesting',
  'a runner-aware runner runs inside a task of another; its tool and grandchild report to it, and it forwards upstream at close',
  () => scenario.nesting(),
  (r) => ({
    // The outer run also ignores the inner runner's private directory (plumbing).
    ok:
      r.exit === 0 &&
      r.innerInputs?.length === 2 &&
      r.outerClients === 1 &&
      r.outerInputs.filter((p) => !/\/runner-aware-[^/]+$/.test(p)).join() === ['/inner-runner/own-cache', ...r.innerInputs].join(),
    figure: `inner got ${r.innerInputs?.join(', ')} over ${r.innerClients} clients; outer got the inner runner's own report and those, forwarded, and the inner runner's private directory to ignore, over 1 client`,
  }),
);
await row(
  'Frame decoder fuzz',
  `proptest, ${n(fuzzCases)} cases per property (4 properties: arbitrary bytes in arbitrary pieces, small lengths with garbage payloads, valid messages split anywhere, oversized headers)`,
  () => cargoTest('fuzz_decoder', [], { PROTOCOL_FUZZ_CASES: String(fuzzCases) }),
  (r) => ({ ok: true, figure: `${n(fuzzCases * 4)} cases ran clean in ${r.seconds.toFixed(0)} s (including the build)` }),
);
// Fail closed (issue 10): every way a tool's words can be lost loses nothing
// or leaves the run not cacheable, with the reason (test/fail-closed.test.ts).

const backlogTools = size(1000, 32);
const backlogMax = size(128, 4);
await row(
  'Full listen backlog',
  `${n(backlogTools)} Node tools connect at once (each \`addInput\` + \`getEnv\`) to a runner whose listen backlog is ${backlogMax} (\`unshare --net\`, \`net.core.somaxconn\`)`,
  () => backlogRow(backlogTools, backlogMax),
  backlogFigure,
);
const stampede = size(6000, 64);
await row(
  'Full listen backlog, kernel default',
  `${n(stampede)} Node tools connect at once to a runner with this kernel's default backlog (\`net.core.somaxconn\`, 4096 here)`,
  () => backlogRow(stampede, undefined),
  backlogFigure,
);
const stallReports = size(100_000, 20_000);
const stallMs = size(7000, 1500);
await row(
  'Runner stopped mid-stream',
  `the runner is SIGSTOPped for ${stallMs / 1000} s while a tool sends ${n(stallReports)} reports (tool timeout: ${small ? '300 ms' : 'the default 5 s'}); then SIGCONT and \`close()\``,
  () => failClosed.stalledRunner({ stallMs, timeoutMs: small ? 300 : undefined, reports: stallReports }),
  (r) => ({
    ok: r.toolExit === 0 && failsClosed(r.received === r.sent, r, 'lost'),
    figure: `${n(r.received)} / ${n(r.sent)} reports arrived; ${r.cacheable ? 'cacheable' : `not cacheable (${kindsOf(r).join(', ')}): "${r.notCacheable[0]?.message}"`}`,
  }),
);
await row(
  'Runner stopped across the handshake',
  `the runner is SIGSTOPped before a tool's first call (\`getEnv('NODE_ENV')\`; the runner has \`production\`) and resumed after the tool gave up (tool timeout: ${small ? '300 ms' : 'the default 5 s'})`,
  () => failClosed.stalledHandshake({ timeoutMs: small ? 300 : undefined }),
  (r) => ({
    ok: r.toolExit === 0 && r.tool?.nodeEnv === null && !r.cacheable && kindsOf(r).includes('lost'),
    figure: `the tool got \`undefined\`; not cacheable (${kindsOf(r).join(', ')}): "${r.notCacheable[0]?.message}"`,
  }),
);
await row(
  'Runner at its descriptor limit',
  'the runner (`prlimit --nofile=256`) opens files until EMFILE, so `accept` fails; a tool connects (timeout 300 ms); the runner closes with its descriptors freed, and again still exhausted',
  async () => ({ freed: await failClosed.fdLimit({ timeoutMs: 300, release: true }), exhausted: await failClosed.fdLimit({ timeoutMs: 300, release: false }) }),
  ({ freed, exhausted }) => {
    const served = (r) => r.tool?.nodeEnv === 'production' && r.inputs === 1;
    const ok = [freed, exhausted].every((r) => r.toolExit === 0 && failsClosed(served(r), r, 'lost'));
    const say = (r) => (served(r) ? 'served, cacheable' : r.cacheable ? 'lost, yet cacheable' : `not cacheable (${kindsOf(r).join(', ')})`);
    return { ok, figure: `freed: ${say(freed)}; still exhausted: ${say(exhausted)}` };
  },
);
await row(
  'Forked tool',
  'a Rust tool on the crate\'s `Client` forks without exec after connecting; parent and child each make 2,000 `get_env` calls (`a_forked_child_uses_its_own_connection`); and 200 clients at once against a backlog of 8 (`a_full_listen_backlog_loses_no_tool`)',
  () => cargoTest('channel', ['a_forked_child_uses_its_own_connection', 'a_full_listen_backlog_loses_no_tool']),
  (r) => ({ ok: true, figure: `every answer reached the process that asked, on its own connection; 200 / 200 clients answered, cacheable (${r.seconds.toFixed(0)} s including the build)` }),
);
await row(
  'Peers that had the token break the protocol',
  'raw peers with the token: a frame that is not JSON, a hello for version 99 only, a frame cut off then EOF, a `getEnvs` with a 200,000-byte glob; and a peer without the token; a real tool after each',
  async () => {
    const out = {};
    for (const mode of ['protocol-error', 'version', 'cut-off', 'long-glob', 'no-token']) out[mode] = await failClosed.brokenPeer(mode);
    return out;
  },
  (r) => {
    const expected = { 'protocol-error': 'channel-error', version: 'version', 'cut-off': 'channel-error', 'long-glob': 'channel-error' };
    const ok =
      Object.entries(expected).every(([mode, kind]) => !r[mode].cacheable && kindsOf(r[mode]).join() === kind && r[mode].toolServed) &&
      r['no-token'].cacheable && r['no-token'].errors.length === 1;
    return { ok, figure: `${Object.entries(expected).map(([mode, kind]) => `${mode} → ${kind}`).join(', ')}; without the token: listed in \`errors\` only, cacheable; the runner served a tool after each` };
  },
);
await row(
  'Globs too long to compile',
  '`getEnvs(\'*a\'.repeat(100000))` and a 50,000-name `{…}` set, from the tool API (with and without a runner) and the addon\'s own `load()` client; `envMatcher`, `envFingerprint`, `validateFingerprint` and `createServer({ untrackedEnv })` given the same globs',
  async () => ({ alone: await failClosed.longGlobTool({ withRunner: false }), under: await failClosed.longGlobTool({ withRunner: true }), runner: await failClosed.longGlobRunner() }),
  ({ alone, under, runner }) => {
    const clean = [alone, under, runner].every((r) => r.code === 0 && r.signal === null);
    const typeErrors = [alone, under].every((r) => r.out['api.star'].startsWith('TypeError') && r.out['api.set'].startsWith('TypeError'));
    const helpers = Object.entries(runner.out).filter(([name]) => !name.startsWith('createServer'));
    const ok = clean && typeErrors && under.out.after === 'answer' && helpers.every(([, outcome]) => outcome.startsWith('InvalidEnvGlobError'));
    return { ok, figure: `no process aborted; the tool API threw \`TypeError\`, the cache helpers \`InvalidEnvGlobError\` (${helpers.length} calls), \`createServer\` an \`Error\`; the tool's channel kept working` };
  },
);
const values = size(560, 300);
await row(
  'Values over the byte cap',
  `a tool sends ${values} \`addValue\`s of 1 MiB − 100 bytes each (${Math.round((values * (2 ** 20 - 100)) / 2 ** 20)} MiB; the cap is 256 MiB)`,
  () => failClosed.valueCap({ values }),
  (r) => ({
    ok: r.toolExit === 0 && !r.cacheable && kindsOf(r).join() === 'cap' && r.keptBytes <= 256 * 2 ** 20,
    figure: `\`close()\` resolved in ${n(r.closeMs)} ms; ${r.keptValues} values (${Math.round(r.keptBytes / 2 ** 20)} MiB) kept; not cacheable (cap): "${r.notCacheable[0]?.message}"`,
  }),
);
const capPaths = size(10_000_000, 2_100_000);
await row(
  'Paths over the entry cap',
  `10 tools send ${n(capPaths)} distinct paths between them (the cap is 2,000,000 entries)`,
  () => failClosed.pathCap({ paths: capPaths, tools: 10 }),
  (r) => ({
    ok: r.failedTools === 0 && !r.cacheable && kindsOf(r).join() === 'cap' && r.kept <= 2_000_000,
    figure: `\`close()\` resolved in ${n(r.closeMs)} ms; ${n(r.kept)} paths kept; not cacheable (cap)`,
  }),
);
const closePaths = size(1_000_000, 300_000);
await row(
  'Large close()',
  `a tool reports ${n(closePaths)} distinct paths; \`close()\` in the runner's process while a 1 ms timer measures the event loop`,
  () => failClosed.manyPaths({ paths: closePaths }),
  (r) => ({
    ok: r.toolExit === 0 && r.received === r.sent && r.missing === 0 && r.cacheable,
    figure: `${n(r.received)} / ${n(r.sent)} paths; \`close()\` took ${n(r.closeMs)} ms, the longest event-loop stall during it ${r.longestStallMs} ms`,
  }),
);
await row(
  'Runner ends with a server open',
  'a runner process ends by `process.exit(3)`, an uncaught exception, SIGTERM, SIGINT, SIGHUP (no handler of its own); another has its own SIGTERM handler',
  async () => {
    const out = {};
    for (const [name, how] of [
      ['exit', { how: 'exit' }],
      ['throw', { how: 'throw' }],
      ['SIGTERM', { how: 'signal', signal: 'SIGTERM' }],
      ['SIGINT', { how: 'signal', signal: 'SIGINT' }],
      ['SIGHUP', { how: 'signal', signal: 'SIGHUP' }],
      ['handler', { how: 'handler', signal: 'SIGTERM' }],
    ]) {
      out[name] = await failClosed.runnerEnds(how);
    }
    return out;
  },
  (r) => {
    const ended = { exit: [3, null], throw: [1, null], SIGTERM: [null, 'SIGTERM'], SIGINT: [null, 'SIGINT'], SIGHUP: [null, 'SIGHUP'], handler: [0, null] };
    const ok =
      Object.entries(ended).every(([name, [code, signal]]) => r[name].dirBefore && r[name].dirGone && r[name].code === code && r[name].signal === signal) &&
      r.handler.handled && r.handler.aliveAfterSignal;
    return { ok, figure: 'every directory removed; each process ended as it would have (exit 3, exit 1, killed by SIGTERM / SIGINT / SIGHUP); the own handler ran and the process lived on' };
  },
);
await row(
  'TMPDIR not valid UTF-8',
  'a runner started through `/bin/sh` with `TMPDIR` naming a directory with a 0xFF byte; a tool connects and reports',
  () => failClosed.nonUtf8Tmpdir(),
  (r) => ({ ok: r.code === 0 && r.tool === '[true,"answer"]' && r.cacheable === true, figure: `fell back to ${dirname(dirname(r.socketPath ?? '/?/?'))}; the tool connected, was answered and its report arrived` }),
);
await row(
  'Timeout 0',
  'a tool with `RUNNER_AWARE_TIMEOUT_MS=0`',
  () => failClosed.zeroTimeout(),
  (r) => ({ ok: r.toolExit === 0 && r.tool?.[0] === true && r.tool?.[1] === 'production' && r.cacheable, figure: 'no limit: the tool connected, `getEnv` answered, its report arrived' }),
);
await row(
  '`__proto__` names',
  'an env variable and an `addValue` named `__proto__` (own properties): `getEnv`, `getEnvs(\'*\')`, the reports, the fingerprint and its validation',
  () => failClosed.protoNames(),
  (r) => ({
    ok: r.tool?.one === 'x' && r.tool?.own && r.reportedEnv?.value === createHash('sha256').update('x').digest('hex') && r.reportedValue === 'value' && r.sameEnv.valid && r.changedEnv.reasons.includes('env __proto__ changed') && r.changedValue.reasons.includes('value __proto__ changed'),
    figure: `served, in every record, and a change is caught: "${r.changedEnv.reasons.join('", "')}", "${r.changedValue.reasons.join('", "')}"`,
  }),
);
await row(
  'Deleted cwd',
  'a tool deletes its cwd, then `ignoreInput(\'dist\')` and `addOutput(\'out/x\')`, with and without a runner',
  () => failClosed.deletedCwd(),
  (r) => ({
    ok: r.withoutRunner.code === 0 && r.underRunner.code === 0 && r.underRunner.out?.every((o) => o === 'ok') && r.ignoredInputs.join() === '/dist',
    figure: `no call threw; recorded as ${r.ignoredInputs.join(', ')} and ${r.outputs.join(', ')}`,
  }),
);
await row(
  'Late client',
  'the command exits at once; a detached grandchild reports 200 ms later (`closeTimeoutMs` 1000): while a daemon still holds `close()` open, and with nothing connected',
  async () => ({
    waiting: await failClosed.lateClient({ delayMs: 200, closeTimeoutMs: 1000, daemonMs: 3000 }),
    after: await failClosed.lateClient({ delayMs: 200, closeTimeoutMs: 1000 }),
  }),
  ({ waiting, after }) => ({
    ok: waiting.ignoredInputs.includes('/late') && !waiting.cacheable && kindsOf(waiting).join() === 'late-client' && after.lateConnected === false,
    figure: `while \`close()\` waited: served, not cacheable (late-client); after it resolved (in ${after.closeMs} ms): not seen, the documented limit (docs/runners.md, "Processes that outlive the command")`,
  }),
);
await row(
  'inspect of a killed or crashed command',
  '`runner-aware inspect` of a command killed by SIGKILL, one that throws, one that aborts',
  async () => {
    const out = {};
    for (const [name, script] of [
      ['SIGKILL', 'kill -KILL $$'],
      ['throw', `exec "${process.execPath}" -e "throw new Error('crash')"`],
      ['abort', `exec "${process.execPath}" -e "process.abort()"`],
    ]) {
      out[name] = await failClosed.inspectExit(script);
    }
    return out;
  },
  (r) => {
    const expected = { SIGKILL: 'the command was killed by SIGKILL', throw: 'the command exited with code 1', abort: 'the command was killed by SIGABRT' };
    const ok = Object.entries(expected).every(([name, message]) => r[name].summary.includes(`exit: ${message}`) && !r[name].jsonVerdict.cacheable);
    return { ok, figure: `"not cacheable" with ${Object.values(expected).map((m) => `"exit: ${m}"`).join(', ')}, as \`verdict()\` gives` };
  },
);

const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform} ${process.arch}`;
const doc = `# Reliability

What runner-aware guarantees when tools exit abruptly, peers misbehave, the
runner dies, stalls or runs out of resources, or runners nest, and the figures
measured for each. Every scenario runs real processes against a real server.
The promise behind all of them: whatever can lose what a tool said either
loses nothing or leaves the run not cacheable, with the reason
(\`reports.cacheable\`, \`reports.notCacheable\`); no failure looks like a
clean, cacheable run. The test suite runs each scenario at a smaller size on
every \`npm test\` (\`test/hardening.test.ts\`, \`test/fail-closed.test.ts\`);
\`npm run stress\` runs them at the sizes below and rewrites this page
(\`npm run stress -- --small\` runs them at the test sizes without writing).

Machine: ${machine}. Command: \`npm run stress\`.

| scenario | what runs | result | measured |
| --- | --- | --- | --- |
${rows.join('\n')}

## Documented behaviour at the edges

- **A frame over 1 MiB, or one that does not decode**, ends that connection
  only; everything the peer sent before it is kept, and the violation is listed
  in \`reports.errors\`. At most 256 errors are listed, then a count. Before
  its handshake a connection may send at most 4 KiB in a frame, so a peer
  without the token cannot make the runner buffer more than that.
- **A peer that stops reading its answers** cannot hold \`close()\` past
  \`closeTimeoutMs\`, and the runner writes answers out once 1 MiB of them
  piles up rather than buffering every answer to a long pipeline.
- **A peer without the token** gets a \`refused\` answer and nothing else; env
  values are only served after a valid handshake. A connection that sends no
  handshake within 10 s is closed and noted.
- **A tool killed mid-frame** keeps every whole frame it sent; the partial
  frame is dropped and noted (\`connection closed mid-frame after N of M bytes\`).
- **A runner that dies** turns each tool's client offline at its next call:
  every later call returns at once (\`getEnv\` → \`undefined\`). A runner that
  stops answering (stopped, swapped out, at its descriptor limit) is given up
  on after \`RUNNER_AWARE_TIMEOUT_MS\` (default 5 s; \`0\` means no limit); the
  client then leaves a marker file in the runner's private directory, which
  the runner reads at \`close()\`: the run is not cacheable (\`lost\`), even
  though the socket itself was what failed.
- **A full listen backlog** is not a dead runner: a connect that finds it full
  is retried with backoff within the client's timeout.
- **Caps**: a run records at most 2,000,000 entries and 256 MiB of reports;
  past either, recording stops and the run is not cacheable (\`cap\`);
  \`close()\` still resolves, and hands huge reports over in pieces, one per
  event-loop turn.
- **Globs** are at most 4096 bytes: a longer one is a \`TypeError\` for a tool
  (with or without a runner), an \`InvalidEnvGlobError\` for the cache helpers,
  and, from a raw peer, an empty answer and a not-cacheable run
  (\`channel-error\`); no process aborts.
- **A peer that had the token and breaks the protocol** (a frame that does not
  decode, a frame cut off, a refused version) makes the run not cacheable
  (\`channel-error\`, \`version\`): what it sent after that is lost.
- **A process of the task that connects after its command exited** is served
  while \`close()\` still waits on an open connection, and makes the run not
  cacheable (\`late-client\`). One that first connects after \`close()\`
  resolved is not seen at all; docs/runners.md (the server) says so.
- **A runner process that ends** by \`process.exit()\`, an uncaught exception,
  or SIGINT, SIGTERM or SIGHUP with no handler of its own removes every open
  server's directory and still ends the way it would have (the signal is
  re-raised). A handler of its own keeps the signal: the runner decides.
- **A TMPDIR that is not valid UTF-8** (or too long for a socket path) falls
  back to \`/tmp\`.
- **A variable or value named \`__proto__\`** is a name like any other, end to
  end: served, reported, fingerprinted.
- **A tool whose cwd was deleted** resolves relative paths against \`/\`.
- **A daemon that keeps its connection** delays \`close()\` by at most
  \`closeTimeoutMs\`; the reports say how many clients were cut off.
- **Access**: the socket lives in a fresh directory owned by the runner's
  user, created with mode 0700 atomically whatever the umask (never made
  wider and narrowed afterwards) and checked before use; other users cannot
  reach it, and the runner refuses FIFOs in it that are not its user's or
  are open to group or others. A runner killed with SIGKILL
  leaves its directory behind (nothing runs at SIGKILL); it holds only a dead
  socket, and every server uses a fresh random directory, so leftovers never
  collide.
- **Non-UTF-8 env bytes** in the runner's environment are served with U+FFFD
  in their place, as Node's \`process.env\` shows them. Names and values that
  are valid UTF-8 pass through unchanged.
- **Too-large reports** (a value or path that makes a frame over 1 MiB) cannot
  be delivered: the client sends \`disableCache\` with the reason instead, so the
  runner never caches on an incomplete picture.
- **Empty names and NUL bytes**: the TypeScript API throws a \`TypeError\` for
  an empty env or value name, an empty path, or a path with a NUL byte; the
  Rust client ignores them; a raw peer sending them to the server is recorded
  as a protocol violation.
- **Nesting**: a runner inside a task of another reports its own calls to the
  outer runner; its children get its own \`server.env\` and report only to it.
`;
if (write) writeFileSync(join(root, 'docs', 'reliability.md'), doc);
process.stdout.write(`stress: ${rows.length - failed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
