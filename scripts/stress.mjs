// `npm run stress`: the reliability scenarios at full size, plus a long fuzz
// of the frame decoder, written to docs/reliability.md with the figures this
// run produced. `--no-write` prints the table without touching the doc.

import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as scenario from '../test/scenarios/reliability.mjs';
import { hostTarget } from './host-target.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const write = !process.argv.includes('--no-write');
const fuzzCases = Number(process.env.PROTOCOL_FUZZ_CASES ?? 100_000);
const rows = [];
let failed = 0;

async function row(name, scenarioText, run, judge) {
  process.stdout.write(`stress: ${name} … `);
  const started = performance.now();
  const result = await run();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const { ok, figure } = judge(result);
  if (!ok) failed++;
  process.stdout.write(`${ok ? 'ok' : 'FAILED'} (${figure}; ${seconds} s)\n`);
  if (!ok) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  rows.push(`| ${name} | ${scenarioText} | ${ok ? 'pass' : '**fail**'} | ${figure} |`);
}

await row(
  'Zero loss',
  '400 tool processes, 16 at a time, 25 reports each, `process.exit(0)` right after the last; `close()` as soon as the last exits',
  () => scenario.zeroLoss({ processes: 400, concurrency: 16, reports: 25 }),
  (r) => ({ ok: r.received === r.sent && r.failedProcesses === 0 && r.errors === 0, figure: `${r.received.toLocaleString('en')} / ${r.sent.toLocaleString('en')} reports arrived, ${r.clients} clients, ${r.errors} errors, ${r.ms} ms` }),
);
await row(
  'Grandchildren',
  'a tool spawns 20 grandchildren one after another; each sends 25 reports and exits before the tool does',
  () => scenario.grandchildren({ children: 20, reports: 25 }),
  (r) => ({ ok: r.exit === 0 && r.received === r.sent && r.parentValue === 'yes', figure: `${r.received} / ${r.sent} reports, ${r.clients} clients` }),
);
await row(
  'Worker before exit',
  '8 `worker_threads` workers send 500 reports each; the process exits the moment the last says it is done',
  () => scenario.workerBeforeExit({ workers: 8, reports: 500 }),
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
    ok: r.nearValueKept && r.nearPathKept && !r.overValueKept && !r.overPathKept && r.afterKept && r.cacheDisabled && r.errors === 0 && r.nonUtf8?.recorded.value === 'a\ufffdb',
    figure: `0xFF served as U+FFFD; near-limit value and path kept; over-limit ones refused by the client, run marked not cacheable ("${r.reasons[0]}"); later reports still delivered`,
  }),
);
await row(
  'Nesting',
  'a runner-aware runner runs inside a task of another; its tool and grandchild report',
  () => scenario.nesting(),
  (r) => ({ ok: r.exit === 0 && r.outerInputs.length === 1 && r.innerInputs?.length === 2, figure: `outer got only the inner runner's own report (${r.outerInputs.join(', ')}); inner got ${r.innerInputs?.join(', ')}` }),
);
await row(
  'Frame decoder fuzz',
  `proptest, ${fuzzCases.toLocaleString('en')} cases per property (4 properties: arbitrary bytes in arbitrary pieces, small lengths with garbage payloads, valid messages split anywhere, oversized headers)`,
  () => {
    const started = performance.now();
    execFileSync('cargo', ['test', '--release', '--target', hostTarget(), '--test', 'fuzz_decoder', '--quiet'], {
      cwd: root,
      env: { ...process.env, PROTOCOL_FUZZ_CASES: String(fuzzCases) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    return { seconds: (performance.now() - started) / 1000 };
  },
  (r) => ({ ok: true, figure: `${(fuzzCases * 4).toLocaleString('en')} cases ran clean in ${r.seconds.toFixed(0)} s (including the build)` }),
);

const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform} ${process.arch}`;
const doc = `# Reliability

What runner-aware guarantees when tools exit abruptly, peers misbehave, the
runner dies, or runners nest, and the figures measured for each. Every
scenario runs real processes against a real server. The test suite runs each
scenario at a smaller size on every \`npm test\` (\`test/hardening.test.ts\`);
\`npm run stress\` runs them at the sizes below and rewrites this page.

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
  stops answering is given up on after \`RUNNER_AWARE_TIMEOUT_MS\` (default 5 s);
  the client then tells the runner, if it can still hear, that the run is not
  cacheable.
- **A daemon that keeps its connection** delays \`close()\` by at most
  \`closeTimeoutMs\`; the reports say how many clients were cut off.
- **Access**: the socket lives in a fresh directory of mode 0700 owned by the
  runner's user; other users cannot reach it. A runner killed with SIGKILL
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
