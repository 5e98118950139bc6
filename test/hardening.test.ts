// Reliability under load, hostile input, dead peers, access control, encoding
// edges and nesting, at sizes that keep `npm test` fast. `npm run stress`
// runs the same scenarios at full size.

import { describe, expect, it } from 'vitest';

import { sha256 } from './helpers.js';
import * as scenario from './scenarios/reliability.mjs';

// Unix only past zero loss: the scenarios use the socket directory (mode 0700,
// left behind by a killed runner), /bin/sh, signals, and POSIX absolute paths.
const unix = process.platform !== 'win32';

describe('zero loss', () => {
  it('keeps every report of short-lived tools that exit right after sending', async () => {
    const result = await scenario.zeroLoss({ processes: 48, concurrency: 16, reports: 25 });
    expect(result, JSON.stringify(result.firstFailure)).toMatchObject({ sent: 1200, received: 1200, failedProcesses: 0, clients: 48, errors: 0 });
  });

  it('keeps reports of grandchildren that exit before their parent', async () => {
    const result = await scenario.grandchildren({ children: 4, reports: 10 });
    expect(result).toEqual({ exit: 0, sent: 40, received: 40, clients: 5, parentValue: 'yes' });
  });

  it('keeps reports a worker thread sent just before the process exits', async () => {
    const result = await scenario.workerBeforeExit({ workers: 4, reports: 50 });
    expect(result.exit, result.stderr).toBe(0);
    expect(result.received).toBe(result.sent);
  });
});

describe.runIf(unix)('hostile input', () => {
  it('records every violation, serves a real tool, and closes within the grace period', async () => {
    const result = await scenario.hostile({ idle: 300, closeTimeoutMs: 500 });
    expect(result.toolServed).toBe(true);
    expect(result.leakedSecret).toBe(false);
    expect(result.realClients).toBeGreaterThanOrEqual(1);
    expect(result.closeMs).toBeLessThan(500 + 1500);
    expect(result.rssGrowthMiB).toBeLessThan(64);
    const errors = result.errors;
    expect(errors).toContain('frame of 4294967295 bytes exceeds the 4 KiB limit');
    expect(errors).toContain('frame of 4294967295 bytes exceeds the 1 MiB limit');
    expect(errors.filter((m: string) => m.startsWith('frame does not decode')).length).toBeGreaterThanOrEqual(2);
    expect(errors.some((m: string) => /^connection closed mid-frame after 10 of \d+ bytes$/.test(m))).toBe(true);
    expect(errors).toContain('handshake refused: wrong token');
    expect(errors).toContain('handshake refused: protocol version 99 is not supported (this runner speaks 1-2)');
    expect(errors).toContain('path "/a\\0b" contains a NUL byte');
    expect(errors.filter((m: string) => m === 'frame of 1048576 bytes exceeds the 4 KiB limit').length).toBe(100);
    const idleCut = errors.filter((m: string) => m === 'connection closed by the runner before it completed the handshake').length;
    const unlisted = Number(/^(\d+) more errors not listed$/.exec(errors.at(-1) ?? '')?.[1] ?? 0);
    expect(idleCut + unlisted).toBeGreaterThanOrEqual(300);
  });
});

describe.runIf(unix)('dead peers', () => {
  it('makes 100,000 calls after the runner was SIGKILLed quick no-ops', async () => {
    const result = await scenario.deadRunner({ calls: 100_000 });
    expect(result).toMatchObject({ calls: 100_000, threw: 0, connected: false });
    expect(result.ms).toBeLessThan(2000);
  });

  it('keeps what a tool sent before it was killed mid-frame and notes the partial frame', async () => {
    const result = await scenario.killedMidFrame();
    expect(result.signal).toBe('SIGKILL');
    expect(result.kept).toEqual(['/kept/1', '/kept/2', '/kept/3']);
    expect(result.errors.some((m: string) => /^connection closed mid-frame after 10 of \d+ bytes$/.test(m))).toBe(true);
  });
});

describe.runIf(unix)('access control', () => {
  it('uses a private directory, refuses other users and token-less peers, and cleans up', async () => {
    const result = await scenario.accessControl();
    expect(result.mode).toBe('700');
    expect(result.ownerIsRunner).toBe(true);
    expect(result.noTokenGotSecret).toBe(false);
    expect(result.noTokenAnswer).toContain('refused');
    expect(result.dirRemoved).toBe(true);
    // Under RUNNER_AWARE_TRANSPORT=fifo only the rendezvous is served: it is
    // 0600 in the 0700 directory, and another user cannot open it either.
    const fifo = process.env['RUNNER_AWARE_TRANSPORT'] === 'fifo';
    expect(result.transports).toContain(fifo ? 'fifo' : 'socket');
    if (result.transports.includes('fifo')) expect(result.rendezvous).toEqual({ isFifo: true, mode: '600', ownerIsRunner: true });
    if (result.otherUser.ran) {
      expect(result.otherUser.result).toBe('EACCES');
      if (result.transports.includes('socket')) expect(result.otherUser.socket).toBe('EACCES');
      if (result.transports.includes('fifo')) expect(result.otherUser.rendezvous).toBe('EACCES');
    } else {
      console.log(`other-user check not run: ${result.otherUser.result}`);
    }
  });

  it('starts a new server after a runner was killed and left its directory', async () => {
    expect(await scenario.leftoversAfterKill()).toEqual({ leftoverExists: true, nextServerWorks: true });
  });
});

describe.runIf(unix)('encoding edges', () => {
  it('serves non-UTF-8 env bytes as U+FFFD and handles values near and over the frame limit', async () => {
    const result = await scenario.encodingEdges();
    expect(result.nonUtf8).toEqual({ tool: JSON.stringify('a\ufffdb'), recorded: { value: sha256('a\ufffdb'), tracked: true } });
    expect(result).toMatchObject({
      toolExit: 0,
      nearValueKept: true,
      nearPathKept: true,
      overValueKept: false,
      overPathKept: false,
      afterKept: true,
      cacheable: false,
      errors: 0,
    });
    expect(result.reasons.length).toBe(2);
    expect(result.reasons.every((r: string) => r.endsWith('exceeds the 1 MiB frame limit'))).toBe(true);
  });
});

describe.runIf(unix)('nesting', () => {
  it('sends every report to the nearest runner, which forwards it upstream', async () => {
    const result = await scenario.nesting();
    expect(result.exit, result.stderr).toBe(0);
    // Plus the inner runner's private directory, which it has the outer run ignore (plumbing).
    const plumbing = (path: string) => /\/runner-aware-[^/]+$/.test(path);
    expect(result.outerInputs.filter(plumbing)).toHaveLength(1);
    expect(result.outerInputs.filter((path: string) => !plumbing(path))).toEqual(['/inner-runner/own-cache', '/tool/cache', '/tool/grandchild']);
    expect(result.innerInputs).toEqual(['/tool/cache', '/tool/grandchild']);
    expect(result.outerClients).toBe(1);
    expect(result.innerClients).toBe(2);
  });
});
