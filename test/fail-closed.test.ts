// Fail closed (issue 10): one test per way a tool's words can be lost. Each
// asserts, through real processes, that nothing was lost (every report
// present, the right answers) or that the run is not cacheable with a reason
// of the right kind; never a clean, cacheable run with data missing.
// `npm run stress` runs the big ones at full size (test/scenarios/fail-closed.mjs).
//
// The fifth case, a Rust tool that forks without exec after connecting, is
// covered by the crate's own test: src-rs/core/tests/channel.rs,
// `a_forked_child_uses_its_own_connection` (Node has no fork without exec).

import { describe, expect, it } from 'vitest';

import { sha256 } from './helpers.js';
import * as scenario from './scenarios/fail-closed.mjs';

// Stalls are kept short: tools give up on a stopped runner after 300 ms.
const TIMEOUT_MS = 300;
const linux = process.platform === 'linux';
const unix = process.platform !== 'win32';
// `npm run test:fifo` reruns the suite with the runners serving FIFOs only.
const fifo = process.env['RUNNER_AWARE_TRANSPORT'] === 'fifo';

describe.runIf(linux)('1. a full listen backlog', () => {
  // Needs unshare and root (CI has both): a failure to start the namespaced
  // runner fails the test rather than skipping it.
  it('loses no tool when 32 connect at once to a backlog of 4', async () => {
    const result = await scenario.fullBacklog({ tools: 32, somaxconn: 4, stopMs: 400 });
    expect(result.somaxconn).toBe(4);
    // The runner was stopped while they connected: its queue was full (ss
    // shows the queue length and the backlog), so most connects found it full.
    // Over FIFOs there is no listen queue: the 32 announcements wait in the
    // rendezvous and the tools retry opening their pairs until it resumes.
    if (fifo) expect(result.queueWhileStopped).toBeNull();
    if (result.queueWhileStopped) expect(result.queueWhileStopped[0]).toBeGreaterThanOrEqual(result.queueWhileStopped[1]);
    expect(result.failedTools).toEqual([]);
    expect(result).toMatchObject({ answered: 32, clients: 32, inputs: 32, cacheable: true, notCacheable: [] });
  });
});

describe.runIf(unix)('2. the runner stopped while a tool streams', () => {
  it('keeps every report, or the run is not cacheable (lost)', async () => {
    const result = await scenario.stalledRunner({ stallMs: 1500, timeoutMs: TIMEOUT_MS, reports: 20_000 });
    expect(result.toolExit).toBe(0);
    if (result.received === result.sent) {
      expect(result.cacheable).toBe(true);
    } else {
      expect(result.cacheable).toBe(false);
      expect(result.kinds).toContain('lost');
      // The tool gave up, so it stopped talking to the runner.
      expect(result.tool?.connected).toBe(false);
    }
  });
});

describe.runIf(unix)('3. the runner stopped across the handshake', () => {
  it('gives the tool no value and leaves the run not cacheable (lost)', async () => {
    const result = await scenario.stalledHandshake({ timeoutMs: TIMEOUT_MS });
    expect(result.toolExit).toBe(0);
    expect(result.tool).toEqual({ nodeEnv: null, connected: false });
    expect(result.cacheable).toBe(false);
    expect(result.kinds).toContain('lost');
    // Over the socket the kernel completes the connect and the tool waits for
    // the welcome; over FIFOs the stopped runner cannot open the tool's pair,
    // so the tool gives up connecting. Either way after its timeout.
    const gaveUp = fifo ? /cannot connect to .*: the runner did not open this client's FIFOs in time/ : /no handshake answer/;
    expect(result.notCacheable.find((r) => r.kind === 'lost')?.message).toMatch(gaveUp);
  });
});

// The runner runs under util-linux's prlimit, with a low limit to exhaust.
describe.runIf(linux)('4. the runner at its file descriptor limit', () => {
  for (const release of [true, false]) {
    it(`serves the tool or leaves the run not cacheable (lost), descriptors ${release ? 'freed' : 'still exhausted'} at close`, async () => {
      const result = await scenario.fdLimit({ timeoutMs: TIMEOUT_MS, release });
      expect(result.hoarded).toBeGreaterThan(0);
      expect(result.toolExit).toBe(0);
      if (result.tool?.nodeEnv === 'production' && result.inputs === 1) {
        expect(result.cacheable).toBe(true);
      } else {
        expect(result.cacheable).toBe(false);
        expect(result.kinds).toContain('lost');
      }
    });
  }
});

describe.runIf(unix)('6. a peer that had the token breaks the protocol', () => {
  const cases = [
    ['protocol-error', 'channel-error', /^frame does not decode/],
    ['cut-off', 'channel-error', /^connection closed mid-frame after 14 of 104 bytes$/],
    ['version', 'version', /^handshake refused: protocol version 99 is not supported/],
    ['long-glob', 'channel-error', /glob of 200000 bytes exceeds the 4096-byte limit$/],
  ] as const;
  for (const [mode, kind, error] of cases) {
    it(`${mode}: the run is not cacheable (${kind})`, async () => {
      const result = await scenario.brokenPeer(mode);
      expect(result.peerExit, result.peerStderr).toBe(0);
      expect(result.toolServed).toBe(true);
      expect(result.cacheable).toBe(false);
      expect(result.kinds).toEqual([kind]);
      expect(result.errors.some((m) => error.test(m)), result.errors.join('\n')).toBe(true);
      if (mode !== 'version') expect(result.ignoredInputs).toContain(mode === 'long-glob' ? '/after' : '/before');
    });
  }

  it('a peer without the token lands in errors only: the run stays cacheable', async () => {
    const result = await scenario.brokenPeer('no-token');
    expect(result.answers).toEqual([{ op: 'refused', reason: 'wrong token' }]);
    expect(result.errors).toEqual(['handshake refused: wrong token']);
    expect(result.ignoredInputs).toEqual([]);
    expect(result).toMatchObject({ toolServed: true, cacheable: true, kinds: [] });
  });
});

describe('7. a glob too long to compile', () => {
  for (const withRunner of [false, true]) {
    it(`is a TypeError for the tool ${withRunner ? 'under a runner' : 'with no runner'}, which exits normally`, async () => {
      const result = await scenario.longGlobTool({ withRunner });
      expect(result.signal, result.stderr).toBeNull();
      expect(result.code, result.stderr).toBe(0);
      expect(result.out?.['api.star']).toBe('TypeError: runner-aware getEnvs: glob of 200000 bytes exceeds the 4096-byte limit');
      expect(result.out?.['api.set']).toMatch(/^TypeError: runner-aware getEnvs: glob of \d+ bytes exceeds the 4096-byte limit$/);
      if (withRunner) {
        // The addon's own client (the vite-task-client contract) throws too, and the channel still works.
        expect(result.out?.['addon.star']).toMatch(/^Error: invalid env glob .*glob of 200000 bytes exceeds the 4/);
        expect(result.out?.['addon.set']).toMatch(/^Error: invalid env glob /);
        expect(result.out?.['after']).toBe('answer');
        expect(result.cacheable).toBe(true);
      } else {
        expect(result.out?.['after']).toBeNull();
      }
    });
  }

  it('is an InvalidEnvGlobError for the cache helpers, and createServer throws: the runner never aborts', async () => {
    const result = await scenario.longGlobRunner();
    expect(result.signal, result.stderr).toBeNull();
    expect(result.code, result.stderr).toBe(0);
    const out = result.out ?? {};
    for (const name of ['star', 'set']) {
      for (const helper of ['envMatcher', 'envMatcher.stored', 'envFingerprint.untrackedEnv', 'validateFingerprint', 'validateFingerprint.parsed']) {
        expect(out[`${helper}.${name}`], `${helper}.${name}`).toMatch(/^InvalidEnvGlobError: invalid env glob "[^"]{1,64}"…: glob of \d+ bytes exceeds the 4096-byte limit$/);
      }
      expect(out[`createServer.untrackedEnv.${name}`]).toMatch(/^Error: invalid env glob .*exceeds the 4/);
    }
  });
});

describe.runIf(unix)('8. reports over the per-run cap', () => {
  it('300 values of almost 1 MiB: close() resolves, the run is not cacheable (cap)', async () => {
    const result = await scenario.valueCap({ values: 300 });
    expect(result.toolExit, result.toolStderr).toBe(0);
    expect(result.sentBytes).toBeGreaterThan(256 * 2 ** 20);
    expect(result.keptBytes).toBeLessThanOrEqual(256 * 2 ** 20);
    expect(result.cacheable).toBe(false);
    expect(result.kinds).toEqual(['cap']);
    expect(result.notCacheable[0]?.message).toMatch(/2000000 entries or 256 MiB/);
  });
});

describe('9. a large close()', () => {
  it('resolves with all of 300,000 reported paths', async () => {
    const result = await scenario.manyPaths({ paths: 300_000 });
    expect(result.toolExit).toBe(0);
    expect(result).toMatchObject({ sent: 300_000, received: 300_000, missing: 0, cacheable: true });
  });
});

describe.runIf(unix)('10. a runner process that ends with a server open', () => {
  const endings = [
    [{ how: 'exit' }, { code: 3, signal: null }],
    [{ how: 'throw' }, { code: 1, signal: null }],
    [{ how: 'signal', signal: 'SIGTERM' }, { code: null, signal: 'SIGTERM' }],
    [{ how: 'signal', signal: 'SIGINT' }, { code: null, signal: 'SIGINT' }],
    [{ how: 'signal', signal: 'SIGHUP' }, { code: null, signal: 'SIGHUP' }],
  ] as const;
  for (const [how, end] of endings) {
    it(`removes its directory and still ends by ${how.how === 'signal' ? how.signal : how.how}`, async () => {
      const result = await scenario.runnerEnds(how);
      expect(result.dirBefore).toBe(true);
      expect(result.dirGone).toBe(true);
      expect({ code: result.code, signal: result.signal }, result.stderr).toEqual(end);
      if (how.how === 'throw') expect(result.stderr).toContain('the runner failed');
    });
  }

  it('leaves a SIGTERM to the runner’s own handler; its later exit removes the directory', async () => {
    const result = await scenario.runnerEnds({ how: 'handler', signal: 'SIGTERM' });
    expect(result.handled).toBe(true);
    expect(result.aliveAfterSignal).toBe(true);
    expect(result.dirBeforeExit).toBe(true);
    expect({ code: result.code, signal: result.signal }).toEqual({ code: 0, signal: null });
    expect(result.dirGone).toBe(true);
  });
});

// Linux file systems take any bytes in a name; APFS, for one, refuses 0xFF.
describe.runIf(linux)('11. a TMPDIR that is not valid UTF-8', () => {
  it('falls back to a usable directory: a tool connects and reports', async () => {
    const result = await scenario.nonUtf8Tmpdir();
    expect(result.code, result.stderr).toBe(0);
    expect(result.tool, result.toolStderr).toBe('[true,"answer"]');
    expect(result.ignoredInputs).toEqual(['/from-tool']);
    expect(result.cacheable).toBe(true);
    expect(result.socketPath).not.toContain('\ufffd');
  });
});

describe('12. RUNNER_AWARE_TIMEOUT_MS=0', () => {
  it('means no limit: the tool connects and its getEnv answers', async () => {
    const result = await scenario.zeroTimeout();
    expect(result).toMatchObject({ toolExit: 0, tool: [true, 'production'], inputs: ['/zero-timeout'], clients: 1, cacheable: true });
  });
});

describe('13. a variable and a value named __proto__', () => {
  it('is served, reported and fingerprinted like any other name', async () => {
    const result = await scenario.protoNames();
    expect(result.toolExit, result.toolStderr).toBe(0);
    expect(result.tool).toEqual({ one: 'x', own: true, all: [['OTHER', 'y'], ['__proto__', 'x']] });
    // Reports hold digests by default; the fingerprint is built from them.
    expect(result.reportedEnv).toEqual({ value: sha256('x'), tracked: true });
    expect(result.reportedMatch).toBe(sha256('x'));
    expect(result.reportedValue).toBe('value');
    expect(result.fingerprintEnv).toMatch(/^[0-9a-f]{64}$/);
    expect(result.fingerprintValue).toMatch(/^[0-9a-f]{64}$/);
    expect(result.sameEnv).toEqual({ valid: true, reasons: [] });
    expect(result.changedEnv).toEqual({ valid: false, reasons: ['env __proto__ changed', 'env query * changed'] });
    expect(result.changedValue).toEqual({ valid: false, reasons: ['value __proto__ changed'] });
    expect(result.removedEnv).toEqual({ valid: false, reasons: ['env __proto__ removed', 'env query * changed'] });
  });
});

describe.runIf(unix)('14. a tool whose cwd was deleted', () => {
  it('reports a relative path against / and never throws, with or without a runner', async () => {
    const result = await scenario.deletedCwd();
    expect(result.withoutRunner).toEqual({ code: 0, out: ['ok', 'ok'], stderr: '' });
    expect(result.underRunner).toEqual({ code: 0, out: ['ok', 'ok'], stderr: '' });
    expect(result.ignoredInputs).toEqual(['/dist']);
    expect(result.outputs).toEqual(['/out/x']);
  });
});

describe.runIf(unix)('15. a process of the task that connects after its command exited', () => {
  it('while close() waits on a daemon: served, and the run is not cacheable (late-client)', async () => {
    const result = await scenario.lateClient({ delayMs: 200, closeTimeoutMs: 1000, daemonMs: 3000 });
    expect(result.commandExit, result.commandStderr).toBe(0);
    expect(result.lateConnected).toBe(true);
    expect(result.ignoredInputs).toEqual(['/daemon', '/late']);
    expect(result.cacheable).toBe(false);
    expect(result.kinds).toEqual(['late-client']);
    expect(result.closeMs).toBeLessThan(1000 + 500);
  });

  it('after close() resolved: not seen at all (the limit docs/runners.md documents)', async () => {
    // Nothing was connected, so close() resolved at once; the late process
    // found no socket and no directory to leave a marker in.
    const result = await scenario.lateClient({ delayMs: 200, closeTimeoutMs: 1000 });
    expect(result.closeMs).toBeLessThan(200);
    expect(result.lateConnected).toBe(false);
    expect(result.ignoredInputs).toEqual([]);
  });
});

describe.runIf(unix)('16. inspect of a command that was killed or crashed', () => {
  const cases = [
    ['kill -KILL $$', { exitCode: null, signal: 'SIGKILL' }, 'the command was killed by SIGKILL'],
    [`exec "${process.execPath}" -e "throw new Error('crash')"`, { exitCode: 1, signal: null }, 'the command exited with code 1'],
    [`exec "${process.execPath}" -e "process.abort()"`, { exitCode: null, signal: 'SIGABRT' }, 'the command was killed by SIGABRT'],
    [`exec "${process.execPath}" -e "require('runner-aware').disableCache('demo'); process.kill(process.pid, 'SIGKILL')"`, { exitCode: null, signal: 'SIGKILL' }, 'the command was killed by SIGKILL'],
  ] as const;
  for (const [script, outcome, message] of cases) {
    it(`prints not cacheable with "${message}" for ${script.replace(process.execPath, 'node')}`, async () => {
      const result = await scenario.inspectExit(script);
      // inspect exits as the command did: with its code, or by its signal.
      expect([result.code, result.signal]).toEqual([outcome.exitCode, outcome.signal]);
      expect(result.summary).toMatch(/^runner-aware: exit \d+, \d clients?, not cacheable$/m);
      expect(result.summary).toContain(`    exit: ${message}\n`);
      // The same reasons verdict() gives for the reports and the command's end.
      expect(result.jsonVerdict).toEqual(result.verdictOf(outcome));
      expect(result.jsonVerdict.reasons.at(-1)).toEqual({ kind: 'exit', message });
      if (script.includes('disableCache')) expect(result.summary).toContain('    disable-cache: demo');
    });
  }
});
