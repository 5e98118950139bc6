// A Node runner tracing its task with the npm package's own API, on Windows
// (node.exe under Wine, scripts/ci-cross.sh's windows section): the tracer's
// launcher and DLL beside the addon in a staged install, as a platform
// package would hold them. `createServer({ trace: 'preload' })` must find
// them, and the trace of a node.exe tool tree must be complete and hold what
// each process read, listed, looked up in vain and wrote.
//
//   node.exe trace-runner.mjs <result.json>

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createServer, inferAccesses } from 'runner-aware/runner';

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok: Boolean(ok), ...(ok ? {} : { detail }) });
}

const started = Date.now();
const dir = mkdtempSync(join(tmpdir(), 'runner-aware-trace-'));
try {
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'input.txt'), 'input\n');
  const at = (name) => join(dir, name);
  const child = `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(at('output.txt'))}, fs.readFileSync(${JSON.stringify(at('input.txt'))}))`;
  const parent = [
    "const fs = require('fs');",
    `fs.readdirSync(${JSON.stringify(at('src'))}); fs.existsSync(${JSON.stringify(at('absent.txt'))});`,
    `const r = require('child_process').spawnSync(process.execPath, ['-e', ${JSON.stringify(child)}], { stdio: 'ignore' });`,
    'process.exit(r.status ?? 1)',
  ].join(' ');

  const server = await createServer({ trace: 'preload' });
  const [file, ...args] = server.command([process.execPath, '-e', parent]);
  const code = await new Promise((resolve, reject) => {
    const task = spawn(file, args, { env: { ...process.env, ...server.env }, stdio: 'ignore' });
    task.on('error', reject);
    task.on('exit', (status, signal) => resolve(status ?? signal));
  });
  const reports = await server.close();
  const { trace } = reports;
  check('the task exited 0', code === 0, code);
  check('the command runs under the launcher', file.endsWith('.exe') && file.includes('runner-aware-trace.'), file);
  check('the trace is in preload mode', trace.mode === 'preload', trace.mode);
  check('the trace is complete', trace.complete === true, trace.incomplete);
  check("the child's read", trace.read.includes(at('input.txt')), trace.read.filter((p) => p.startsWith(dir)));
  check("the child's write", trace.written.includes(at('output.txt')), trace.written);
  check("the parent's listing", trace.listed.includes(at('src')), trace.listed);
  check("the parent's look-up in vain", trace.missing.includes(at('absent.txt')), trace.missing.filter((p) => p.startsWith(dir)));
  check('node.exe executed', trace.read.includes(process.execPath), process.execPath);
  check('the private directory is left out', !trace.written.some((p) => p.endsWith('\\trace')), trace.written);
  const inferred = inferAccesses(reports);
  check('inferred: the input', inferred.inputs.some((i) => i.path === at('input.txt') && i.kind === 'content'), inferred.inputs.filter((i) => i.path.startsWith(dir)));
  check('inferred: the listing', inferred.inputs.some((i) => i.path === at('src') && i.kind === 'listing'), inferred.inputs.filter((i) => i.path.startsWith(dir)));
  check('inferred: the output', inferred.outputs.includes(at('output.txt')), inferred.outputs);
  check('the run is cacheable', reports.cacheable === true, reports.notCacheable);
} catch (err) {
  check('the runner ran', false, String(err?.stack ?? err));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const failed = checks.filter((c) => !c.ok);
const result = { node: process.version, platform: `${process.platform} ${process.arch}`, passed: checks.length - failed.length, failed, ms: Date.now() - started };
writeFileSync(process.argv[2], JSON.stringify(result, null, 2));
process.exit(failed.length === 0 ? 0 : 1);
