// No tool is ever silently unheard: under a runner-aware runner that hands out
// no addon a tool can load (a Rust runner without `client_path`, a path to a
// file that is not an addon), the tool talks through its own package's addon;
// when no client loads at all, the run is not cacheable and says which tool
// and why. Real processes throughout: a runner, and tools that inherit its env.

import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createServer, type Reports } from '../dist/runner.mjs';
import { lastJson, root, run, type Run } from './helpers.js';

let scratch: string;
let garbage: string;

beforeAll(() => {
  scratch = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-unheard-')));
  // Random bytes named like an addon: what a runner hands out for the wrong platform, or a truncated download.
  garbage = join(scratch, 'x.node');
  writeFileSync(garbage, randomBytes(4096));
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** What a tool printed and the run's reports. */
interface Outcome {
  tool: Run;
  reports: Reports;
}

/**
 * Runs `node -e code` (ESM) under a fresh server whose env is `{ A: 'a' }`,
 * with the child's `VP_RUN_NODE_CLIENT_PATH` replaced by `clientPath`
 * (`undefined`: left out, as a runner that hands out none).
 */
async function underRunnerHandingOut(code: string, clientPath: string | undefined, extraEnv: Record<string, string> = {}): Promise<Outcome> {
  const server = await createServer({ env: { A: 'a' } });
  const env: Record<string, string | undefined> = { ...process.env, ...extraEnv, ...server.env };
  delete env['VP_RUN_NODE_CLIENT_PATH'];
  if (clientPath !== undefined) env['VP_RUN_NODE_CLIENT_PATH'] = clientPath;
  const tool = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: root, env });
  const reports = await server.close({ envValues: 'plain' });
  expect(tool.code, tool.stderr).toBe(0);
  return { tool, reports };
}

/** A tool that asks for `A`, reports a value and prints what it got, its pid last. */
function toolCode(entry: string): string {
  return `const ra = await import(${JSON.stringify(entry)});
    const a = ra.getEnv('A');
    ra.addValue('tool', 'said');
    console.log(JSON.stringify({ a: a ?? null, connected: ra.isConnected(), pid: process.pid }));`;
}

describe('a tool whose runner hands out no addon it can load', () => {
  it('is heard through its own addon when the runner hands out none (a Rust runner without client_path)', async () => {
    const { tool, reports } = await underRunnerHandingOut(toolCode('runner-aware'), undefined, { RUNNER_AWARE_DEBUG: '1' });
    expect(lastJson(tool)).toMatchObject({ a: 'a', connected: true });
    expect(reports.clients).toBe(1);
    expect(reports.values).toEqual({ tool: 'said' });
    expect(reports.envs['A']).toEqual({ value: 'a', tracked: true });
    expect(reports.cacheable, JSON.stringify(reports.notCacheable)).toBe(true);
    expect(tool.stderr).toContain("the runner handed out no addon (VP_RUN_NODE_CLIENT_PATH is unset); talking through this package's own addon");
  });

  it('is heard through its own addon when the runner hands out a file that is not an addon', async () => {
    for (const entry of ['runner-aware', join(root, 'dist', 'index.cjs')]) {
      const { tool, reports } = await underRunnerHandingOut(toolCode(entry), garbage, { RUNNER_AWARE_DEBUG: '1' });
      expect(lastJson(tool)).toMatchObject({ a: 'a', connected: true });
      expect(reports.clients).toBe(1);
      expect(reports.values).toEqual({ tool: 'said' });
      expect(reports.cacheable, JSON.stringify(reports.notCacheable)).toBe(true);
      expect(tool.stderr).toContain(`cannot load the runner's addon ${garbage}: `);
      expect(tool.stderr).toContain("talking through this package's own addon");
    }
  });

  it('says nothing without RUNNER_AWARE_DEBUG', async () => {
    const { tool, reports } = await underRunnerHandingOut(toolCode('runner-aware'), garbage);
    expect(reports.cacheable).toBe(true);
    expect(tool.stderr).toBe('');
  });
});

describe('a tool that can load no client at all', () => {
  // A copy of the tool bundle alone, as a tool might vendor it: no addon beside it, no platform package to resolve.
  let copy: string;
  beforeAll(() => {
    copy = join(scratch, 'vendored');
    mkdirSync(copy);
    cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
  });

  for (const [handedOut, clientPath, why] of [
    ['a file that is not an addon', () => garbage, () => `cannot load the runner's addon ${garbage}: `],
    ['no addon', () => undefined, () => 'the runner handed out no addon (VP_RUN_NODE_CLIENT_PATH is unset)'],
  ] as const) {
    it(`leaves the run not cacheable, naming its pid and why (the runner handed out ${handedOut})`, async () => {
      for (const entry of [pathToFileURL(join(copy, 'dist', 'index.mjs')).href, join(copy, 'dist', 'index.cjs')]) {
        const { tool, reports } = await underRunnerHandingOut(toolCode(entry), clientPath(), { RUNNER_AWARE_DEBUG: '1' });
        const said = lastJson<{ a: string | null; connected: boolean; pid: number }>(tool);
        // Unheard, the calls are no-ops for the tool: the run carries the loss.
        expect(said).toMatchObject({ a: null, connected: false });
        expect(reports.clients).toBe(0);
        expect(reports.cacheable).toBe(false);
        expect(reports.notCacheable).toHaveLength(1);
        const [reason] = reports.notCacheable;
        expect(reason?.kind).toBe('lost');
        expect(reason?.pid).toBe(said.pid);
        expect(reason?.message).toContain(`a tool (pid ${said.pid}: `);
        expect(reason?.message).toContain('could not load a runner-aware client: ');
        expect(reason?.message).toContain(why());
        expect(reason?.message).toContain(`(neither ${join(copy, 'runner-aware.')}`);
        expect(tool.stderr).toContain('runner-aware: the runner does not hear this process: ');
        expect(tool.stderr).toContain('the run is not cacheable');
      }
    });
  }

  it('stays a silent no-op with no runner-aware runner to tell', async () => {
    const env: Record<string, string | undefined> = { ...process.env, VP_RUN_NODE_CLIENT_PATH: garbage };
    for (const name of ['RUNNER_AWARE_SOCKET', 'RUNNER_AWARE_TOKEN', 'RUNNER_AWARE_DIR']) delete env[name];
    const tool = await run(process.execPath, ['--input-type=module', '-e', toolCode('runner-aware')], { cwd: root, env });
    expect(tool.code, tool.stderr).toBe(0);
    expect(lastJson(tool)).toMatchObject({ a: null, connected: false });
    expect(tool.stderr).toBe('');
  });
});

describe.runIf(process.platform !== 'win32')('a tool whose protocol range the runner refuses', () => {
  it('leaves the run not cacheable (version), naming its pid', async () => {
    const server = await createServer();
    // A client that speaks only protocol versions newer than the runner's, with the token: one of the task's processes.
    // Over the transport the runner serves (FIFOs only under test:fifo).
    const rawPeer = pathToFileURL(join(root, 'test', 'scenarios', 'raw-peer.mjs')).href;
    const peer = `const { connect } = await import(${JSON.stringify(rawPeer)});
      const hello = Buffer.from(JSON.stringify({ op: 'hello', minVersion: 90, maxVersion: 99, token: process.env.RUNNER_AWARE_TOKEN, pid: process.pid }));
      const header = Buffer.alloc(4); header.writeUInt32LE(hello.length);
      const socket = connect(process.env.RUNNER_AWARE_SOCKET, () => socket.write(Buffer.concat([header, hello])));
      let answer = Buffer.alloc(0);
      socket.on('data', (chunk) => { answer = Buffer.concat([answer, chunk]); });
      socket.on('close', () => console.log(JSON.stringify({ pid: process.pid, answer: answer.subarray(4).toString() })));`;
    const tool = await run(process.execPath, ['--input-type=module', '-e', peer], { env: { ...process.env, ...server.env } });
    const reports = await server.close();
    expect(tool.code, tool.stderr).toBe(0);
    const said = lastJson<{ pid: number; answer: string }>(tool);
    expect(JSON.parse(said.answer)).toMatchObject({ op: 'refused' });
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable.map((r) => [r.kind, r.pid])).toEqual([['version', said.pid]]);
    expect(reports.notCacheable[0]?.message).toMatch(/protocol version 90-99 is not supported/);
  });
});
