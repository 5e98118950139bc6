import { spawn, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createServer, type Reports, type ServerOptions } from '../dist/runner.mjs';

/** The repository root: `runner-aware` resolves to this package from here. */
export const root = dirname(dirname(fileURLToPath(import.meta.url)));
export const fixtures = join(root, 'test', 'fixtures');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a process to completion, collecting its output. */
export function run(command: string, args: string[], options: SpawnOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The sha256 (hex) of `text`: how reports hold an env value unless asked for plaintext. */
export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Runs `node -e code` (ESM unless `cjs`) under a fresh server and returns its
 * reports, with plaintext env values (`close({ envValues: 'plain' })`), so a
 * test can check what the tool got.
 */
export async function underRunner(
  code: string,
  options: { server?: ServerOptions; env?: Record<string, string>; cjs?: boolean; cwd?: string } = {},
): Promise<{ reports: Reports; tool: Run }> {
  const server = await createServer(options.server);
  const args = options.cjs ? ['-e', code] : ['--input-type=module', '-e', code];
  const tool = await run(process.execPath, args, {
    cwd: options.cwd ?? root,
    env: { ...process.env, ...options.env, ...server.env },
  });
  const reports = await server.close({ envValues: 'plain' });
  if (tool.code !== 0) throw new Error(`tool exited ${tool.code}: ${tool.stderr}`);
  return { reports, tool };
}

/** The last line of a tool's stdout, parsed as JSON. */
export function lastJson<T>(tool: Run): T {
  const lines = tool.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as T;
}
