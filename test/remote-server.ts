// The open-source Turborepo remote-cache server from npm
// (`turborepo-remote-cache`), run as a real process on loopback with local
// storage, for the suites that share a cache through it.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { root } from './helpers.js';

const serverPackage = join(root, 'node_modules', 'turborepo-remote-cache');
const serverCli = join(serverPackage, (JSON.parse(readFileSync(join(serverPackage, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['turborepo-remote-cache'] ?? '');

/** A running server. */
export interface RemoteServer {
  /** Its base URL, `http://127.0.0.1:<port>`. */
  url: string;
  child: ChildProcess;
  /** Ends it: SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/**
 * Starts a server on a free loopback port that keeps artifacts in `storage`
 * and takes `token`, with `env` added to its environment
 * (`TURBO_REMOTE_CACHE_SIGNATURE_KEY` for signing mode), and resolves once it
 * answers.
 */
export async function startRemoteServer(options: { storage: string; tmp: string; token: string; env?: Record<string, string> }): Promise<RemoteServer> {
  mkdirSync(options.tmp, { recursive: true });
  const child = spawn(process.execPath, [serverCli], {
    env: {
      PATH: process.env['PATH'] ?? '',
      TMPDIR: options.tmp,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      STORAGE_PROVIDER: 'local',
      STORAGE_PATH: options.storage,
      STORAGE_PATH_USE_TMP_FOLDER: 'false',
      TURBO_TOKEN: options.token,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`turborepo-remote-cache did not start:\n${log}`)), 20_000);
    const read = (chunk: Buffer): void => {
      log += chunk.toString();
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`turborepo-remote-cache exited with ${code}:\n${log}`)));
  });
  const status = await fetch(`${url}/v8/artifacts/status`, { headers: { authorization: `Bearer ${options.token}` } });
  if (status.status !== 200) {
    await stop();
    throw new Error(`turborepo-remote-cache answered its status with ${status.status}:\n${log}`);
  }
  return { url, child, stop };
}
