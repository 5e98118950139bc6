import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
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

/** A cache entry's archive (`<id>.tar.zst`) unpacked: each member's name and bytes, in order. */
export function entryMembers(file: string): { name: string; data: Buffer }[] {
  const tar = execFileSync('zstd', ['-dc', file], { maxBuffer: 1 << 30 });
  const members: { name: string; data: Buffer }[] = [];
  let longName: string | null = null;
  for (let at = 0; at + 512 <= tar.length; ) {
    const header = tar.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) break;
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const data = tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    const name = longName ?? header.subarray(0, 100).toString('utf8').replace(/\0.*$/, '');
    longName = null;
    members.push({ name, data: Buffer.from(data) });
  }
  return members;
}

/** The manifest of a cache entry's archive. */
export function entryManifest(file: string): { id: string; overruled?: string[]; key: { inputs: Record<string, unknown> } } {
  const manifest = entryMembers(file).find((member) => member.name === 'manifest.json');
  if (!manifest) throw new Error(`${file} has no manifest`);
  return JSON.parse(manifest.data.toString('utf8'));
}
