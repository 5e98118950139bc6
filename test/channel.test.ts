import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { createServer } from '../dist/runner.mjs';
import { fixtures, lastJson, root, run, sha256, underRunner } from './helpers.js';
import { connect } from './scenarios/raw-peer.mjs';

function frame(payload: Buffer | string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length);
  return Buffer.concat([header, body]);
}

/**
 * Connects to the runner as a raw peer (over the socket, or over FIFOs under
 * RUNNER_AWARE_TRANSPORT=fifo), writes `bytes`, and resolves with what came
 * back once the server hangs up.
 */
function rawPeer(socketPath: string, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(socketPath, () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('no runner', () => {
  // /proc/self/maps lists the shared objects a process loaded; Linux only.
  it.runIf(process.platform === 'linux')('answers undefined / {} and loads no native module', async () => {
    const env = { ...process.env };
    delete env['VP_RUN_NODE_CLIENT_PATH'];
    delete env['RUNNER_AWARE_SOCKET'];
    delete env['RUNNER_AWARE_TOKEN'];
    const tool = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as ra from 'runner-aware';
         import { readFileSync } from 'node:fs';
         ra.ignoreInput('x'); ra.ignoreOutput('x'); ra.addInput('x'); ra.addOutput('x'); ra.addValue('a', 'b'); ra.disableCache();
         const result = { env: typeof ra.getEnv('HOME'), envs: ra.getEnvs('*'), fetched: ra.fetchEnvs('*'), connected: ra.isConnected() };
         const natives = readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith('.node'));
         console.log(JSON.stringify({ ...result, natives }));`,
      ],
      { env },
    );
    expect(tool.code, tool.stderr).toBe(0);
    expect(lastJson(tool)).toEqual({ env: 'undefined', envs: {}, fetched: {}, connected: false, natives: [] });
  });

  it('is a no-op when the socket in the env is gone', async () => {
    const server = await createServer();
    const env = { ...process.env, ...server.env };
    await server.close();
    const started = Date.now();
    const tool = await run(
      process.execPath,
      ['-e', `const ra = require('runner-aware'); ra.ignoreInput('/x'); console.log(JSON.stringify([ra.isConnected(), ra.getEnv('HOME') ?? null]))`],
      { env },
    );
    expect(tool.code, tool.stderr).toBe(0);
    expect(lastJson(tool)).toEqual([false, null]);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(tool.stderr).toBe('');
  });

  it('says why it is offline when RUNNER_AWARE_DEBUG is set', async () => {
    const server = await createServer();
    const env = { ...process.env, ...server.env, RUNNER_AWARE_DEBUG: '1' };
    await server.close();
    const code = "require('runner-aware').getEnv('HOME')";
    const gone = await run(process.execPath, ['-e', code], { env });
    expect(gone.stderr).toMatch(/^runner-aware: client offline: cannot connect to \S+: .+/);
    const badAddon = await run(process.execPath, ['-e', code], { env: { ...env, VP_RUN_NODE_CLIENT_PATH: '/nonexistent/addon.node' } });
    expect(badAddon.stderr).toContain("runner-aware: cannot load the runner's addon /nonexistent/addon.node");
    expect([gone.code, badAddon.code]).toEqual([0, 0]);
  });
});

describe('close', () => {
  it('keeps every report of tools that exit right after sending', async () => {
    const server = await createServer();
    const tools = Array.from({ length: 24 }, (_, i) =>
      run(process.execPath, ['-e', `const ra = require('runner-aware'); for (let j = 0; j < 25; j++) ra.addInput('/p/${i}/' + j); process.exit(0)`], {
        env: { ...process.env, ...server.env },
      }),
    );
    const exits = await Promise.all(tools);
    expect(exits.map((t) => t.code)).toEqual(Array(24).fill(0));
    const reports = await server.close();
    expect(reports.inputs).toHaveLength(24 * 25);
    expect(reports.clients).toBe(24);
    expect(reports.errors).toEqual([]);
  });

  it('waits at most closeTimeoutMs for a daemon that keeps its connection', async () => {
    const server = await createServer({ closeTimeoutMs: 300 });
    const daemon = spawn(process.execPath, ['-e', `require('runner-aware').ignoreInput('/daemon'); setInterval(() => {}, 1000)`], {
      cwd: root,
      env: { ...process.env, ...server.env },
      stdio: 'ignore',
    });
    try {
      await expect.poll(() => server.snapshot().ignoredInputs.length, { timeout: 10_000 }).toBe(1);
      const started = Date.now();
      const reports = await server.close();
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(2000);
      expect(reports.ignoredInputs).toEqual([resolve('/daemon')]);
      expect(reports.clientsStillConnected).toBe(1);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  // Windows uses a named pipe: no directory, no mode, no socket file.
  it.runIf(process.platform !== 'win32')('uses a private 0700 directory and removes it', async () => {
    const server = await createServer();
    const dir = dirname(server.socketPath);
    expect(server.socketPath.length).toBeLessThan(108);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(dir).uid).toBe(process.getuid?.());
    // The socket, unless RUNNER_AWARE_TRANSPORT=fifo (then only the FIFO
    // rendezvous, and socketPath names a file that does not exist); the
    // rendezvous, unless RUNNER_AWARE_TRANSPORT=socket.
    const mode = process.env['RUNNER_AWARE_TRANSPORT'] ?? 'auto';
    expect(server.transports).toEqual(mode === 'fifo' ? ['fifo'] : mode === 'socket' ? ['socket'] : ['socket', 'fifo']);
    if (mode === 'fifo') expect(existsSync(server.socketPath)).toBe(false);
    else expect(statSync(server.socketPath).isSocket()).toBe(true);
    if (mode !== 'socket') {
      const rendezvous = statSync(join(dir, 'r'));
      expect(rendezvous.isFIFO()).toBe(true);
      expect(rendezvous.mode & 0o777).toBe(0o600);
      expect(rendezvous.uid).toBe(process.getuid?.());
    }
    await server.close();
    expect(existsSync(dir)).toBe(false);
  });

  it('rejects a second close', async () => {
    const server = await createServer();
    await server.close();
    await expect(server.close()).rejects.toThrow('server is already closed');
  });
});

describe('bad peers', () => {
  it('records violations, answers a wrong token with nothing, and keeps serving real tools', async () => {
    const server = await createServer({ env: { SECRET: 's3cret' } });
    const socketPath = server.socketPath;
    const wrongToken = await rawPeer(
      socketPath,
      Buffer.concat([
        frame(JSON.stringify({ op: 'hello', version: 1, token: 'guess', pid: 1 })),
        frame(JSON.stringify({ op: 'getEnv', names: ['SECRET'], tracked: true })),
      ]),
    );
    expect(wrongToken.toString()).not.toContain('s3cret');
    expect(wrongToken.toString()).toContain('refused');
    await rawPeer(socketPath, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await rawPeer(socketPath, frame('{"op":"nonsense"}'));
    await rawPeer(socketPath, frame('{"op":"ignoreInput"}'));
    await rawPeer(socketPath, frame(JSON.stringify({ op: 'hello', version: 99, token: server.env['RUNNER_AWARE_TOKEN'], pid: 2 })));
    const { tool } = await (async () => {
      const t = await run(process.execPath, ['-e', `console.log(JSON.stringify(require('runner-aware').getEnv('SECRET')))`], {
        env: { ...process.env, ...server.env },
      });
      return { tool: t };
    })();
    expect(lastJson(tool)).toBe('s3cret');
    const reports = await server.close();
    const messages = reports.errors.map((e) => e.message);
    expect(messages).toContain('handshake refused: wrong token');
    expect(messages).toContain('frame of 4294967295 bytes exceeds the 4 KiB limit');
    expect(messages.some((m) => m.startsWith('frame does not decode'))).toBe(true);
    expect(messages).toContain('handshake refused: protocol version 99 is not supported (this runner speaks 1-2)');
    expect(messages).toContain('unknown op "nonsense"');
    // The refused version came with the token: what that tool said is lost.
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable.map((r) => [r.kind, r.pid])).toEqual([['version', 2]]);
    // The reports hold the value's digest, never the secret itself.
    expect(reports.envs['SECRET']).toEqual({ value: sha256('s3cret'), tracked: true });
    expect(JSON.stringify(reports)).not.toContain('s3cret');
    expect(reports.clients).toBe(1);
  });
});

describe('inspect CLI', () => {
  const cli = join(root, 'dist', 'cli.cjs');

  it('shows HOME as a tracked env and passes the exit code through', async () => {
    const result = await run(process.execPath, [cli, 'inspect', '--', process.execPath, '-e', "require('runner-aware').getEnv('HOME'); process.exit(7)"]);
    expect(result.code).toBe(7);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('runner-aware: exit 7, 1 client, not cacheable\n  not cacheable because:\n    exit: the command exited with code 7\n');
    expect(result.stderr).toMatch(/^ {4}HOME {2}tracked {2}set$/m);
  });

  it('writes the Reports JSON with --json --out and keeps stdout for the command', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ra-cli-'));
    const out = join(dir, 'reports.json');
    const result = await run(process.execPath, [
      cli,
      'inspect',
      '--json',
      '--out',
      out,
      '--',
      process.execPath,
      '-e',
      "const ra = require('runner-aware'); ra.disableCache('dev server'); ra.getEnvs('PATH'); console.log('hello')",
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('hello\n');
    const reports = JSON.parse(readFileSync(out, 'utf8'));
    rmSync(dir, { recursive: true, force: true });
    expect(reports.notCacheable.map((r: { message: string }) => r.message)).toEqual(["dev server"]);
    expect(reports.envQueries[0].glob).toBe('PATH');
  });

  it('explains a missing command', async () => {
    const result = await run(process.execPath, [cli, 'inspect']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('inspect needs a command after --');
    const missing = await run(process.execPath, [cli, 'inspect', '--', 'no-such-command-runner-aware']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('cannot run no-such-command-runner-aware');
  });

  it('runs through npx as the README says', () => {
    const text = execFileSync('npx', ['runner-aware', 'inspect', '--', 'node', '-e', "require('runner-aware').getEnv('HOME')"], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // The checkout's own bin: npm needs no registry for it, and a test asks none
      // (a registry that answers slowly made this test time out).
      env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
      // npx is a .cmd script on Windows.
      shell: process.platform === 'win32',
    });
    expect(text).toBe('');
  }, 60_000);
});
