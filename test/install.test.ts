// Installs the packed tarballs into a fresh project the way a user would
// (a real npm install, offline, no links or workspaces) and runs a runner and
// a tool from the installed package, as ESM and as CommonJS.

import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Reports } from '../dist/runner.mjs';
import { root, run, sha256 } from './helpers.js';

const windows = process.platform === 'win32';
// Node refuses to spawn .cmd shims without a shell.
const npm = windows ? 'npm.cmd' : 'npm';

const tool = {
  mjs: `import { addValue, getEnv, ignoreInput, isConnected } from 'runner-aware';
if (!isConnected()) process.exit(3);
ignoreInput('node_modules/.cache/tool');
addValue('format', 'esm');
getEnv('FROM_RUNNER');
`,
  cjs: `const { addValue, getEnv, ignoreInput, isConnected } = require('runner-aware');
if (!isConnected()) process.exit(3);
ignoreInput('node_modules/.cache/tool');
addValue('format', 'cjs');
getEnv('FROM_RUNNER');
`,
};

const runner = {
  mjs: `import { spawn } from 'node:child_process';
import { createServer } from 'runner-aware/runner';
// Traced: on Linux the tracer comes from the platform package too.
const server = await createServer({ env: { ...process.env, FROM_RUNNER: 'yes' }, trace: true });
const [file, ...args] = server.command([process.execPath, 'tool.mjs']);
const child = spawn(file, args, { stdio: 'inherit', env: { ...process.env, ...server.env } });
const code = await new Promise((resolve) => child.on('exit', resolve));
const reports = await server.close();
console.log(JSON.stringify({ code, addon: server.env.VP_RUN_NODE_CLIENT_PATH, reports }));
`,
  cjs: `const { spawn } = require('node:child_process');
const { createServer } = require('runner-aware/runner');
(async () => {
  const server = await createServer({ env: { ...process.env, FROM_RUNNER: 'yes' } });
  const child = spawn(process.execPath, ['tool.cjs'], { stdio: 'inherit', env: { ...process.env, ...server.env } });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  const reports = await server.close();
  console.log(JSON.stringify({ code, addon: server.env.VP_RUN_NODE_CLIENT_PATH, reports }));
})();
`,
};

let project: string;
let triple: string;

beforeAll(async () => {
  project = realpathSync(mkdtempSync(join(tmpdir(), 'runner-aware-install-')));
  const tarballs = join(project, 'tarballs');
  const packed = await run(process.execPath, [join(root, 'scripts', 'pack-all.mjs'), '--out', tarballs, '--skip-lint']);
  expect(packed.code, packed.stderr).toBe(0);
  const files = readdirSync(tarballs);
  const rootTarball = files.find((file) => /^runner-aware-\d/.test(file));
  const platformTarball = files.find((file) => file !== rootTarball);
  expect(rootTarball && platformTarball, files.join(', ')).toBeTruthy();
  triple = platformTarball!.replace(/^runner-aware-/, '').replace(/-\d+\.\d+\.\d+.*\.tgz$/, '');

  const app = join(project, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, version: '0.0.0' }));
  for (const ext of ['mjs', 'cjs'] as const) {
    writeFileSync(join(app, `tool.${ext}`), tool[ext]);
    writeFileSync(join(app, `runner.${ext}`), runner[ext]);
  }
  const installed = await run(
    npm,
    ['install', '--offline', '--no-audit', '--no-fund', join(tarballs, rootTarball!), join(tarballs, platformTarball!)],
    { cwd: app, shell: windows },
  );
  expect(installed.code, installed.stderr).toBe(0);
}, 180_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('installed from the packed tarballs', () => {
  it('is a real copy with only what users need', () => {
    const pkg = join(project, 'app', 'node_modules', 'runner-aware');
    expect(lstatSync(pkg).isSymbolicLink()).toBe(false);
    expect(readdirSync(pkg).sort()).toEqual(['LICENSE', 'README.md', 'dist', 'package.json']);
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['scripts']).toBeUndefined();
    expect(manifest['devDependencies']).toBeUndefined();
    const optional = manifest['optionalDependencies'] as Record<string, string>;
    expect(Object.keys(optional).length).toBeGreaterThanOrEqual(8);
    expect(optional[`runner-aware-${triple}`]).toBe(manifest['version']);
    expect(new Set(Object.values(optional))).toEqual(new Set([manifest['version']]));
    const tracer = triple.startsWith('linux-') ? [`runner-aware-preload.${triple}.so`, `runner-aware-trace.${triple}`] : [];
    expect(readdirSync(join(project, 'app', 'node_modules', `runner-aware-${triple}`)).sort()).toEqual(
      ['README.md', 'package.json', `runner-aware.${triple}.node`, ...tracer].sort(),
    );
  });

  for (const ext of ['mjs', 'cjs'] as const) {
    it(`runs a runner and a tool as ${ext === 'mjs' ? 'ESM' : 'CommonJS'}`, async () => {
      const app = join(project, 'app');
      const result = await run(process.execPath, [`runner.${ext}`], { cwd: app });
      expect(result.code, result.stderr).toBe(0);
      const { code, addon, reports } = JSON.parse(result.stdout.trim().split('\n').pop()!) as {
        code: number;
        addon: string;
        reports: Reports;
      };
      expect(code).toBe(0);
      // The runner side loaded the addon from the platform package.
      expect(addon).toBe(join(app, 'node_modules', `runner-aware-${triple}`, `runner-aware.${triple}.node`));
      expect(reports.ignoredInputs).toEqual([join(app, 'node_modules', '.cache', 'tool')]);
      expect(reports.values).toEqual({ format: ext === 'mjs' ? 'esm' : 'cjs' });
      expect(reports.envs['FROM_RUNNER']).toMatchObject({ value: sha256('yes'), tracked: true });
      expect(reports.clients).toBe(1);
      if (ext === 'mjs' && triple.startsWith('linux-')) {
        // Traced through the installed preload library and supervisor.
        expect(reports.trace?.mode).toBe('preload');
        expect(reports.trace?.incomplete).toEqual([]);
        expect(reports.trace?.read).toContain(join(app, 'tool.mjs'));
      }
    });
  }

  it('runs the installed CLI', async () => {
    const app = join(project, 'app');
    const out = join(project, 'cli-reports.json');
    const bin = join(app, 'node_modules', '.bin', windows ? 'runner-aware.cmd' : 'runner-aware');
    const result = await run(bin, ['inspect', '--json', '--out', out, '--', process.execPath, 'tool.cjs'], {
      cwd: app,
      shell: windows,
      env: { ...process.env, FROM_RUNNER: 'cli' },
    });
    expect(result.code, result.stderr).toBe(0);
    const reports = JSON.parse(readFileSync(out, 'utf8')) as Reports;
    expect(reports.values).toEqual({ format: 'cjs' });
    expect(reports.envs['FROM_RUNNER']).toMatchObject({ value: sha256('cli'), tracked: true });
  });
});
