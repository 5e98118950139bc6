import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

import { fixtures, lastJson, root, run, underRunner } from './helpers.js';

describe('tool API through a spawned process', () => {
  it('reports every verb', async () => {
    const { reports, tool } = await underRunner(
      `import * as ra from 'runner-aware';
       ra.ignoreInput('/abs/cache');
       ra.ignoreOutput('/abs/out/tmp');
       ra.addInput('/abs/config.json');
       ra.addOutput('/abs/dist');
       ra.addValue('config-hash', 'abc123');
       ra.disableCache('watch mode');
       const got = {
         connected: ra.isConnected(),
         home: ra.getEnv('HOME'),
         mode: ra.getEnv('MODE', { tracked: false }),
         vite: ra.getEnvs('VITE_*'),
         prefix: ra.getEnvs({ prefix: 'VITE_A' }),
       };
       console.log(JSON.stringify(got));`,
      { server: { env: { HOME: '/home/u', MODE: 'dev', VITE_A: '1', VITE_AB: '2', VITE_B: '3', OTHER: 'x' } } },
    );
    expect(lastJson(tool)).toEqual({
      connected: true,
      home: '/home/u',
      mode: 'dev',
      vite: { VITE_A: '1', VITE_AB: '2', VITE_B: '3' },
      prefix: { VITE_A: '1', VITE_AB: '2' },
    });
    expect(reports.ignoredInputs).toEqual([resolve('/abs/cache')]);
    expect(reports.ignoredOutputs).toEqual([resolve('/abs/out/tmp')]);
    expect(reports.inputs).toEqual([resolve('/abs/config.json')]);
    expect(reports.outputs).toEqual([resolve('/abs/dist')]);
    expect(reports.values).toEqual({ 'config-hash': 'abc123' });
    expect(reports.cacheable).toBe(false);
    expect(reports.notCacheable.map((r) => [r.kind, r.message])).toEqual([['disable-cache', 'watch mode']]);
    expect(reports.envs).toEqual({
      HOME: { value: '/home/u', tracked: true },
      MODE: { value: 'dev', tracked: false },
    });
    expect(reports.envQueries).toEqual([
      { glob: 'VITE_*', tracked: true, matches: { VITE_A: '1', VITE_AB: '2', VITE_B: '3' } },
      { prefix: 'VITE_A', tracked: true, matches: { VITE_A: '1', VITE_AB: '2' } },
    ]);
    expect(reports.errors).toEqual([]);
    expect(reports.clients).toBe(1);
  });

  it('works the same from CommonJS', async () => {
    const { reports, tool } = await underRunner(
      `const ra = require('runner-aware');
       ra.ignoreInput('/c/j/s');
       console.log(JSON.stringify(ra.getEnv('X')));`,
      { cjs: true, server: { env: { X: 'from-runner' } } },
    );
    expect(lastJson(tool)).toBe('from-runner');
    expect(reports.ignoredInputs).toEqual([resolve('/c/j/s')]);
  });

  it('resolves relative paths against the cwd at call time', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ra-cwd-')));
    const { reports } = await underRunner(
      `import * as ra from 'runner-aware';
       ra.ignoreInput('node_modules/.cache/tool');
       process.chdir(${JSON.stringify(dir)});
       ra.ignoreOutput('./dist/../build/');
       ra.addInput('src/main.ts');`,
    ).finally(() => rmSync(dir, { recursive: true, force: true }));
    expect(reports.ignoredInputs).toEqual([join(root, 'node_modules/.cache/tool')]);
    expect(reports.ignoredOutputs).toEqual([join(dir, 'build')]);
    expect(reports.inputs).toEqual([join(dir, 'src/main.ts')]);
  });

  it('keeps tracked sticky and records absent variables', async () => {
    const { reports, tool } = await underRunner(
      `import * as ra from 'runner-aware';
       ra.getEnv('A', { tracked: false });
       ra.getEnv('A');
       ra.getEnv('A', { tracked: false });
       ra.getEnvs('B*', { tracked: false });
       ra.getEnvs('B*', { tracked: true });
       console.log(JSON.stringify([ra.getEnv('MISSING'), ra.getEnvs('NOPE_*')]));`,
      { server: { env: { A: '1', B1: '2' } } },
    );
    expect(lastJson(tool)).toEqual([null, {}]); // undefined serialises as null in an array
    expect(reports.envs['A']).toEqual({ value: '1', tracked: true });
    expect(reports.envs['MISSING']).toEqual({ value: null, tracked: true });
    expect(reports.envQueries).toEqual([
      { glob: 'B*', tracked: true, matches: { B1: '2' } },
      { glob: 'NOPE_*', tracked: true, matches: {} },
    ]);
  });

  it('returns undefined, not null, for an absent variable', async () => {
    const { tool } = await underRunner(
      `import { getEnv } from 'runner-aware';
       console.log(JSON.stringify({ type: typeof getEnv('MISSING') }));`,
      { server: { env: {} } },
    );
    expect(lastJson(tool)).toEqual({ type: 'undefined' });
  });

  it('treats a prefix literally and a glob as a pattern', async () => {
    const { tool } = await underRunner(
      `import { getEnvs } from 'runner-aware';
       console.log(JSON.stringify([getEnvs({ prefix: 'A*' }), getEnvs('A*'), getEnvs('A?'), getEnvs('[AB]*')]));`,
      { server: { env: { 'A*B': 'lit', AB: 'glob', BC: 'b', C: 'c' } } },
    );
    expect(lastJson(tool)).toEqual([
      { 'A*B': 'lit' },
      { 'A*B': 'lit', AB: 'glob' },
      { AB: 'glob' },
      { 'A*B': 'lit', AB: 'glob', BC: 'b' },
    ]);
  });

  it('serves untracked names without tracking them', async () => {
    const { reports } = await underRunner(
      `import { getEnv, getEnvs } from 'runner-aware';
       getEnv('PWD'); getEnv('NOISE_LEVEL'); getEnv('REAL'); getEnv('RUNNER_AWARE_TOKEN'); getEnvs('*');`,
      { server: { env: { PWD: '/x', NOISE_LEVEL: '3', REAL: 'r', RUNNER_AWARE_TOKEN: 'outer' }, untrackedEnv: ['PWD', 'NOISE_*'] } },
    );
    expect(reports.envs).toEqual({
      NOISE_LEVEL: { value: '3', tracked: false },
      PWD: { value: '/x', tracked: false },
      REAL: { value: 'r', tracked: true },
      RUNNER_AWARE_TOKEN: { value: 'outer', tracked: false },
    });
    // The channel's own variables (an outer runner's, here) stay untracked with any list.
    expect(reports.untrackedEnv).toEqual(['PWD', 'NOISE_*', 'RUNNER_AWARE_*', 'VP_RUN_NODE_CLIENT_PATH']);
  });

  it('fetchEnv fills only unset process.env entries; getEnv never touches it', async () => {
    const { tool } = await underRunner(
      `import { fetchEnv, fetchEnvs, getEnv, getEnvs } from 'runner-aware';
       getEnv('G'); getEnvs('GG_*');
       const untouched = [process.env.G, process.env.GG_1];
       fetchEnv('F');
       fetchEnv('LOCAL');
       fetchEnvs('V_*');
       console.log(JSON.stringify({ untouched, F: process.env.F, LOCAL: process.env.LOCAL, V_1: process.env.V_1, V_2: process.env.V_2 }));`,
      {
        server: { env: { G: 'g', GG_1: 'gg', F: 'runner-f', LOCAL: 'runner-local', V_1: 'runner-v1', V_2: 'runner-v2' } },
        env: { LOCAL: 'mine', V_2: 'mine-v2' },
      },
    );
    expect(lastJson(tool)).toEqual({
      untouched: [null, null],
      F: 'runner-f',
      LOCAL: 'mine',
      V_1: 'runner-v1',
      V_2: 'mine-v2',
    });
  });

  it('answers a repeated getEnv without a second round trip, across threads', async () => {
    const { reports, tool } = await underRunner(
      `import { getEnv, getEnvs } from 'runner-aware';
       import { Worker } from 'node:worker_threads';
       for (let i = 0; i < 100; i++) getEnv('A');
       getEnv('A', { tracked: false }); // weaker: answered locally
       for (let i = 0; i < 10; i++) getEnvs({ prefix: 'A' });
       const fromWorker = await new Promise((resolve, reject) => {
         const w = new Worker("import('runner-aware').then(async (ra) => (await import('node:worker_threads')).parentPort.postMessage(ra.getEnv('A')))", { eval: true });
         w.on('message', resolve); w.on('error', reject);
       });
       console.log(JSON.stringify(fromWorker));`,
      { server: { env: { A: 'a' } } },
    );
    expect(lastJson(tool)).toBe('a');
    // One getEnv and one getEnvs: everything else came from the process's answer cache.
    expect(reports.envRequests).toBe(2);
    expect(reports.clients).toBe(1);
  });

  it('asks once per name even when threads race for it', async () => {
    const env = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`N${i}`, String(i)]));
    const { reports, tool } = await underRunner(
      `import { Worker } from 'node:worker_threads';
       const code = "import('runner-aware').then(async (ra) => { const got = []; for (let i = 0; i < 50; i++) got.push(ra.getEnv('N' + i)); for (let i = 0; i < 5; i++) ra.getEnvs('N1*'); (await import('node:worker_threads')).parentPort.postMessage(got.join(',')); })";
       const answers = await Promise.all(Array.from({ length: 4 }, () => new Promise((resolve, reject) => {
         const w = new Worker(code, { eval: true });
         w.on('message', resolve); w.on('error', reject);
       })));
       console.log(JSON.stringify(answers));`,
      { server: { env } },
    );
    const expected = Array.from({ length: 50 }, (_, i) => String(i)).join(',');
    expect(lastJson(tool)).toEqual([expected, expected, expected, expected]);
    expect(reports.envRequests).toBe(51);
  });

  it('asks again when a stronger tracked is needed', async () => {
    const { reports } = await underRunner(
      `import { getEnv } from 'runner-aware';
       getEnv('A', { tracked: false }); getEnv('A', { tracked: false }); getEnv('A'); getEnv('A');`,
      { server: { env: { A: 'a' } } },
    );
    expect(reports.envRequests).toBe(2);
    expect(reports.envs['A']?.tracked).toBe(true);
  });

  it('merges reports from the main thread, a worker and a child process', async () => {
    const { reports } = await underRunner(
      `import { ignoreInput, getEnv } from 'runner-aware';
       import { Worker } from 'node:worker_threads';
       import { spawnSync } from 'node:child_process';
       ignoreInput('/from/main');
       await new Promise((resolve, reject) => {
         const w = new Worker("import('runner-aware').then((ra) => { ra.ignoreInput('/from/worker'); ra.getEnv('W'); })", { eval: true });
         w.on('exit', resolve); w.on('error', reject);
       });
       const child = spawnSync(process.execPath, ['-e', "require('runner-aware').ignoreInput('/from/child'); require('runner-aware').addValue('child', 'yes')"], { stdio: 'inherit' });
       if (child.status !== 0) process.exit(1);`,
      { server: { env: { W: 'w' } } },
    );
    expect(reports.ignoredInputs).toEqual([resolve('/from/child'), resolve('/from/main'), resolve('/from/worker')]);
    expect(reports.values).toEqual({ child: 'yes' });
    expect(reports.envs['W']).toEqual({ value: 'w', tracked: true });
    // One connection for the main process (shared with its worker), one for the child.
    expect(reports.clients).toBe(2);
  });

  it('rejects arguments of the wrong type with a clear error', async () => {
    const { tool } = await underRunner(
      `import * as ra from 'runner-aware';
       const errors = [];
       for (const call of [() => ra.ignoreInput(undefined), () => ra.getEnv(3), () => ra.getEnvs({ glob: 1 }), () => ra.addValue('x'),
                           () => ra.getEnv(''), () => ra.addInput(''), () => ra.ignoreOutput('dist\\0x')]) {
         try { call(); errors.push(null); } catch (e) { errors.push(e.constructor.name + ': ' + e.message); }
       }
       console.log(JSON.stringify(errors));`,
    );
    expect(lastJson<string[]>(tool)).toEqual([
      'TypeError: runner-aware ignoreInput: path must be a string or a file: URL, got undefined',
      'TypeError: runner-aware getEnv: name must be a string, got number',
      'TypeError: runner-aware getEnvs: query must be a glob string or { prefix: string }',
      'TypeError: runner-aware addValue: value must be a string, got undefined',
      'TypeError: runner-aware getEnv: name must not be empty',
      'TypeError: runner-aware addInput: path must not be empty',
      'TypeError: runner-aware ignoreOutput: path must not contain a NUL byte',
    ]);
  });

  it('rejects the same env options and globs with and without a runner', async () => {
    const code = `import * as ra from 'runner-aware';
       const fn = () => {};
       const rejected = [
         () => ra.getEnv('X', true), () => ra.getEnv('X', 'yes'), () => ra.getEnv('X', fn), () => ra.getEnv('X', { tracked: 'yes' }),
         () => ra.fetchEnv('X', 0), () => ra.getEnvs('X*', true), () => ra.getEnvs({ prefix: 'X' }, { tracked: 1 }),
         () => ra.fetchEnvs('X*', { tracked: 'no' }), () => ra.getEnvs('['), () => ra.getEnvs('VITE_[z-a]'), () => ra.getEnvs('{a'),
         () => ra.getEnvs('a}'), () => ra.getEnvs('a\\\\'), () => ra.fetchEnvs('[[:alpha:]'), () => ra.getEnvs('X'.repeat(4097)),
       ];
       const accepted = [
         () => ra.getEnv('X', null), () => ra.getEnv('X', {}), () => ra.getEnv('X', { tracked: null }), () => ra.getEnvs('X*', null),
         () => ra.getEnvs('X*', { tracked: undefined }), () => ra.getEnvs({ prefix: 'X' }, { tracked: null }), () => ra.getEnvs('X'.repeat(4096)),
         () => ra.fetchEnvs('{X,Y}[0-9]', { tracked: false }),
       ];
       const outcome = (call) => { try { call(); return 'ok'; } catch (e) { return e.constructor.name + ': ' + e.message; } };
       console.log(JSON.stringify({ rejected: rejected.map(outcome), accepted: accepted.map(outcome) }));`;
    const bare = { ...process.env };
    for (const name of ['RUNNER_AWARE_SOCKET', 'RUNNER_AWARE_TOKEN', 'VP_RUN_NODE_CLIENT_PATH']) delete bare[name];
    const outside = await run(process.execPath, ['--input-type=module', '-e', code], { env: bare });
    expect(outside.code, outside.stderr).toBe(0);
    const { reports, tool } = await underRunner(code, { server: { env: { X: '1', X1: '2' } } });

    const expected = {
      rejected: [
        'TypeError: runner-aware getEnv: options must be an object',
        'TypeError: runner-aware getEnv: options must be an object',
        'TypeError: runner-aware getEnv: options must be an object',
        'TypeError: runner-aware getEnv: options.tracked must be a boolean',
        'TypeError: runner-aware fetchEnv: options must be an object',
        'TypeError: runner-aware getEnvs: options must be an object',
        'TypeError: runner-aware getEnvs: options.tracked must be a boolean',
        'TypeError: runner-aware fetchEnvs: options.tracked must be a boolean',
        `TypeError: runner-aware getEnvs: invalid env glob "[": unclosed character class; missing ']'`,
        `TypeError: runner-aware getEnvs: invalid env glob "VITE_[z-a]": invalid range; 'z' > 'a'`,
        `TypeError: runner-aware getEnvs: invalid env glob "{a": unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)`,
        `TypeError: runner-aware getEnvs: invalid env glob "a}": unopened alternate group; missing '{' (maybe escape '}' with '[}]'?)`,
        `TypeError: runner-aware getEnvs: invalid env glob "a\\\\": dangling '\\'`,
        `TypeError: runner-aware fetchEnvs: invalid env glob "[[:alpha:]": unclosed character class; missing ']'`,
        'TypeError: runner-aware getEnvs: glob of 4097 bytes exceeds the 4096-byte limit',
      ],
      accepted: Array(8).fill('ok'),
    };
    expect(lastJson(outside)).toEqual(expected);
    expect(lastJson(tool)).toEqual(expected);
    // A rejected call never reached the runner; the accepted ones did.
    expect(reports.errors).toEqual([]);
    expect(Object.keys(reports.envs)).toEqual(['X']);
    expect(reports.envQueries.map((q) => ('glob' in q ? q.glob : `prefix ${q.prefix}`)).sort()).toEqual(['X'.repeat(4096), 'X*', '{X,Y}[0-9]', 'prefix X'].sort());
  });

  it('throws for an env glob that does not parse, and records nothing', async () => {
    const { reports, tool } = await underRunner(
      `import { getEnvs } from 'runner-aware';
       try { getEnvs('VITE_[', { tracked: true }); console.log(JSON.stringify('no error')); }
       catch (e) { console.log(JSON.stringify(e.constructor.name + ': ' + e.message)); }`,
    );
    expect(lastJson(tool)).toMatch(/^TypeError: runner-aware getEnvs: invalid env glob "VITE_\[": /);
    expect(reports.errors).toEqual([]);
    expect(reports.envRequests).toBe(0);
  });

  it('reports through the published @voidzero-dev/vite-task-client unchanged', async () => {
    const { reports, tool } = await underRunner(
      `import { ignoreInput, ignoreOutput, disableCache, getEnv, getEnvs } from '@voidzero-dev/vite-task-client';
       ignoreInput('/vite/deps-cache');
       ignoreOutput('/vite/tmp');
       disableCache();
       console.log(JSON.stringify({ nodeEnv: getEnv('NODE_ENV'), missing: typeof getEnv('NOPE'), vite: getEnvs({ prefix: 'VITE_' }) }));`,
      { server: { env: { NODE_ENV: 'production', VITE_API: 'https://api' } } },
    );
    expect(lastJson(tool)).toEqual({ nodeEnv: 'production', missing: 'undefined', vite: { VITE_API: 'https://api' } });
    expect(reports.ignoredInputs).toEqual([resolve('/vite/deps-cache')]);
    expect(reports.ignoredOutputs).toEqual([resolve('/vite/tmp')]);
    expect(reports.cacheable).toBe(false);
    expect(reports.envs['NODE_ENV']).toEqual({ value: 'production', tracked: true });
    expect(reports.envQueries).toEqual([{ prefix: 'VITE_', tracked: true, matches: { VITE_API: 'https://api' } }]);
  });

  it('shares one connection with @voidzero-dev/vite-task-client in the same process, in either load order', async () => {
    for (const [first, second] of [
      ['runner-aware', '@voidzero-dev/vite-task-client'],
      ['@voidzero-dev/vite-task-client', 'runner-aware'],
    ]) {
      const { reports, tool } = await underRunner(
        `const a = await import('${first}'); a.ignoreInput('/first'); const x = a.getEnv('A');
         const b = await import('${second}'); b.ignoreInput('/second'); const y = b.getEnv('A');
         console.log(JSON.stringify([x, y]));`,
        { server: { env: { A: 'a' } } },
      );
      expect(lastJson(tool)).toEqual(['a', 'a']);
      expect(reports.ignoredInputs).toEqual([resolve('/first'), resolve('/second')]);
      // One process, one connection, and the second getEnv answered from the shared cache.
      expect(reports.clients).toBe(1);
      expect(reports.envRequests).toBe(1);
    }
  });

  it('uses a foreign runner addon for the methods it has and no-ops the rest', async () => {
    const tool = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as ra from 'runner-aware';
         ra.ignoreInput('rel'); ra.addInput('/x'); ra.addValue('a', 'b'); ra.disableCache('why');
         const env = ra.getEnv('E'); const envs = ra.getEnvs('V*');
         console.log(JSON.stringify({ env, envs, connected: ra.isConnected() }));`,
      ],
      { env: { ...process.env, VP_RUN_NODE_CLIENT_PATH: join(fixtures, 'foreign-addon.cjs'), FOREIGN_LOG: '1' } },
    );
    expect(tool.code, tool.stderr).toBe(0);
    const lines = tool.stdout.trim().split('\n');
    expect(lines.slice(0, -1)).toEqual([`ignoreInput ${join(root, 'rel')}`, 'disableCache why', 'getEnv E', 'getEnvs V*']);
    expect(JSON.parse(lines.at(-1) ?? '')).toEqual({ env: 'foreign-E', envs: { V1: 'v' }, connected: true });
  });
});
