import { describe, expect, it } from 'vitest';

import {
  absolutizeReports,
  declaredInputs,
  declaredOutputs,
  envFingerprint,
  envMatcher,
  filterInputs,
  filterOutputs,
  InvalidEnvGlobError,
  isIgnoredInput,
  isIgnoredOutput,
  isWithin,
  parseFingerprint,
  parseReports,
  relativizeReports,
  serializeFingerprint,
  serializeReports,
  validateFingerprint,
  type Reports,
} from '../dist/runner.mjs';
import { lastJson, underRunner } from './helpers.js';

function reports(partial: Partial<Reports> = {}): Reports {
  return {
    ignoredInputs: [],
    ignoredOutputs: [],
    inputs: [],
    outputs: [],
    values: {},
    envs: {},
    envQueries: [],
    untrackedEnv: [],
    cacheable: true,
    notCacheable: [],
    errors: [],
    clients: 1,
    clientsStillConnected: 0,
    envRequests: 0,
    ...partial,
  };
}

describe('path rules', () => {
  it('matches component-wise after normalisation', () => {
    expect(isWithin('/p/dist', '/p/dist')).toBe(true);
    expect(isWithin('/p/dist/a/b.js', '/p/dist')).toBe(true);
    expect(isWithin('/p/dist/', '/p/dist')).toBe(true);
    expect(isWithin('/p/dist/a', '/p/dist/')).toBe(true);
    expect(isWithin('/p/dist//a', '/p/./dist')).toBe(true);
    expect(isWithin('/p/x/../dist/a', '/p/dist')).toBe(true);
    expect(isWithin('/p/dist/../src/a', '/p/dist')).toBe(false);
    expect(isWithin('/p/dist2/a', '/p/dist')).toBe(false);
    expect(isWithin('/p/distribution.txt', '/p/dist')).toBe(false);
    expect(isWithin('/p', '/p/dist')).toBe(false);
    expect(isWithin('/anything/at/all', '/')).toBe(true);
    expect(isWithin('/../p/dist/a', '/p/dist'), '`..` at the root stays at the root').toBe(true);
  });

  it('resolves relative paths against the given cwd', () => {
    expect(isWithin('dist/a', '/p/dist', '/p')).toBe(true);
    expect(isWithin('./dist/a', 'dist', '/p')).toBe(true);
    expect(isWithin('../p/dist/a', 'dist', '/p')).toBe(true);
    expect(isWithin('dist2/a', 'dist', '/p')).toBe(false);
  });

  it('tells ignored inputs and outputs apart', () => {
    const r = reports({ ignoredInputs: ['/p/dist', '/p/node_modules/.vite'], ignoredOutputs: ['/p/node_modules/.vite'] });
    expect(isIgnoredInput(r, '/p/dist/index.html')).toBe(true);
    expect(isIgnoredInput(r, '/p/dist2/index.html')).toBe(false);
    expect(isIgnoredInput(r, '/p/node_modules/.vite/deps/x.js')).toBe(true);
    expect(isIgnoredInput(r, '/p/node_modules/.vitest/x')).toBe(false);
    expect(isIgnoredInput(r, 'dist/', '/p')).toBe(true);
    expect(isIgnoredOutput(r, '/p/dist/index.html'), 'dist is only an ignored input').toBe(false);
    expect(isIgnoredOutput(r, '/p/node_modules/.vite/deps/x.js')).toBe(true);
  });

  it('filters observed reads and writes: normalised, sorted, deduped', () => {
    const r = reports({ ignoredInputs: ['/p/dist'], ignoredOutputs: ['/p/.cache'] });
    const reads = ['/p/src/b.ts', 'src/a.ts', '/p/src/./a.ts', '/p/dist/x.js', '/p/dist2/x.js', '/p/distribution.txt'];
    expect(filterInputs(r, reads, '/p')).toEqual(['/p/dist2/x.js', '/p/distribution.txt', '/p/src/a.ts', '/p/src/b.ts']);
    const writes = new Set(['/p/dist/a.js', '/p/.cache/tmp', '/p/.cache', '/p/.cache2/x', 'dist/a.js']);
    expect(filterOutputs(r, writes, '/p')).toEqual(['/p/.cache2/x', '/p/dist/a.js']);
  });

  it('lists declared inputs and outputs minus ignored ones', () => {
    const r = reports({
      inputs: ['/p/a.json', '/p/gen/x.json'],
      outputs: ['/p/dist', '/p/dist/.tmp/a'],
      ignoredInputs: ['/p/gen'],
      ignoredOutputs: ['/p/dist/.tmp'],
    });
    expect(declaredInputs(r)).toEqual(['/p/a.json']);
    expect(declaredOutputs(r)).toEqual(['/p/dist']);
  });
});

describe('env globs', () => {
  it('follow the documented syntax', () => {
    const m = (glob: string, name: string) => envMatcher(glob)(name);
    expect(m('VITE_*', 'VITE_API')).toBe(true);
    expect(m('VITE_*', 'VITE_')).toBe(true);
    expect(m('VITE_*', 'VITE_A/B'), '`*` crosses `/`').toBe(true);
    expect(m('VITE_*', 'XVITE_API')).toBe(false);
    expect(m('VITE_*', 'vite_api'), 'case-sensitive').toBe(false);
    expect(m('A?C', 'ABC')).toBe(true);
    expect(m('A?C', 'AC')).toBe(false);
    expect(m('[AB]_X', 'B_X')).toBe(true);
    expect(m('[!A]_X', 'A_X')).toBe(false);
    expect(m('[^A]_X', 'C_X')).toBe(true);
    expect(m('A[a-c]', 'Ab')).toBe(true);
    expect(m('A[a-c]', 'Ad')).toBe(false);
    expect(m('*_{KEY,TOKEN}', 'API_TOKEN')).toBe(true);
    expect(m('A\\*', 'A*')).toBe(true);
    expect(m('A\\*', 'AB')).toBe(false);
    expect(m('A.B', 'AxB'), 'regex characters are literal').toBe(false);
    expect(m('(A)|B', '(A)|B')).toBe(true);
    expect(envMatcher({ prefix: 'A*' })('A*B')).toBe(true);
    expect(envMatcher({ prefix: 'A*' })('AB'), 'a prefix is literal').toBe(false);
    expect(envMatcher({ glob: 'A*' })('AB')).toBe(true);
  });

  it('reject what the Rust core rejects, with the glob in the message', () => {
    for (const glob of ['[', '[]', '[!]', '[z-a]', '{a,b', 'a}', 'A\\']) {
      expect(() => envMatcher(glob), glob).toThrow(InvalidEnvGlobError);
    }
    expect(() => envMatcher('[z-a]')).toThrow(`invalid env glob "[z-a]": invalid range; 'z' > 'a'`);
  });

  it('match exactly what a real server matches', async () => {
    const names = [
      'VITE_A', 'VITE_A/B', 'XVITE_A', 'vite_a', 'ABC', 'AC', 'A_X', 'B_X', 'C_X', ']X', '-X', 'API_KEY', 'API_TOKEN',
      'A*', 'AB', 'Ab', 'A/B', 'A/x/B', 'A/x/y/B', 'A', 'B', '1X', 'X,Y', 'É_1', 'AéC', 'A\nB', '[X', 'AxB', 'A.B',
    ];
    const globs = [
      'VITE_*', 'A?C', '[AB]_X', '[!A]_X', '[^A]_X', 'A[a-c]', '[]]X', '[-]X', '[A-]X', '*_{KEY,TOKEN}', 'A\\*', '**', 'A/**',
      '**/B', 'A/**/B', 'A**', '[[:digit:]]*', '[[:upper:]]_X', '[[:nope:]]X', 'X,Y', '{}', '{,A}', 'A*B', '?_1', 'A?C',
      '{A,B}/**', '*', 'A.B', '[[]X', 'A{x,/x}/B',
    ];
    const invalid = ['[', '[z-a]', '{a', 'a}', 'A\\'];
    const env = Object.fromEntries(names.map((name, i) => [name, String(i)]));
    const { reports: got, tool } = await underRunner(
      `import { getEnvs } from 'runner-aware';
       for (const glob of ${JSON.stringify(globs)}) getEnvs(glob);
       const refused = [];
       for (const glob of ${JSON.stringify(invalid)}) {
         try { getEnvs(glob); refused.push(null); } catch (e) { refused.push(e.message); }
       }
       console.log(JSON.stringify(refused));`,
      { server: { env, untrackedEnv: [] } },
    );
    for (const glob of globs) {
      const served = got.envQueries.find((q) => 'glob' in q && q.glob === glob);
      expect(served, glob).toBeDefined();
      const matches = envMatcher(glob);
      expect(names.filter(matches).sort(), glob).toEqual(Object.keys(served?.matches ?? {}).sort());
    }
    // A tool is refused the same globs, for the same reasons, and nothing reaches the runner.
    expect(got.errors).toEqual([]);
    const refused = lastJson<string[]>(tool);
    invalid.forEach((glob, i) => {
      let reason = '';
      try {
        envMatcher(glob);
      } catch (err) {
        expect(err, glob).toBeInstanceOf(InvalidEnvGlobError);
        reason = (err as Error).message;
      }
      expect(refused[i], glob).toBe(`runner-aware getEnvs: ${reason}`);
    });
  });
});

describe('env fingerprint', () => {
  const base = reports({
    envs: {
      NODE_ENV: { value: 'production', tracked: true },
      FOO: { value: null, tracked: true },
      BAR: { value: 'bar-secret-value', tracked: true },
      HOME: { value: '/home/u', tracked: false },
      PWD: { value: '/work', tracked: true },
    },
    envQueries: [
      { glob: 'VITE_*', tracked: true, matches: { VITE_API: 'https://staging.example', VITE_KEY: 'key-secret-value' } },
      { prefix: 'APP_', tracked: true, matches: { APP_MODE: 'a' } },
      { glob: '*', tracked: false, matches: { ANY: 'x' } },
      { glob: 'P*', tracked: true, matches: { PWD: '/work', PORT: '80' } },
    ],
    values: { 'config-hash': 'abc123' },
    untrackedEnv: ['PWD', 'OLD*'],
  });
  const env = {
    NODE_ENV: 'production',
    BAR: 'bar-secret-value',
    HOME: '/home/u',
    PWD: '/work',
    VITE_API: 'https://staging.example',
    VITE_KEY: 'key-secret-value',
    APP_MODE: 'a',
    PORT: '80',
  };

  it('holds everything tracked and nothing else, with no plaintext value', () => {
    const fp = envFingerprint(base);
    expect(Object.keys(fp.envs)).toEqual(['BAR', 'FOO', 'NODE_ENV']);
    expect(fp.envs['FOO']).toBeNull();
    expect(fp.envQueries.map((q) => ('glob' in q ? q.glob : `prefix ${q.prefix}`))).toEqual(['P*', 'VITE_*', 'prefix APP_']);
    expect(Object.keys(fp.envQueries[0]?.matches ?? {}), 'untracked PWD left out of a match set').toEqual(['PORT']);
    expect(Object.keys(fp.values)).toEqual(['config-hash']);
    expect(fp.digest).toMatch(/^[0-9a-f]{64}$/);
    const text = serializeFingerprint(fp);
    for (const value of ['production', 'bar-secret-value', 'staging', 'key-secret-value', 'abc123', '/work', '/home/u']) {
      expect(text).not.toContain(value);
    }
  });

  it('is stable and independent of order', () => {
    const shuffled = reports({
      envs: Object.fromEntries(Object.entries(base.envs).reverse()),
      envQueries: [...base.envQueries].reverse().map((q) => ({ ...q, matches: Object.fromEntries(Object.entries(q.matches).reverse()) })),
      values: base.values,
      untrackedEnv: [...base.untrackedEnv].reverse(),
    });
    expect(envFingerprint(shuffled).digest).toBe(envFingerprint(base).digest);
    expect(envFingerprint(shuffled)).toEqual(envFingerprint(base));
    expect(envFingerprint(base).digest).toBe(envFingerprint(structuredClone(base)).digest);
  });

  it('changes digest with a tracked value, not with an untracked one', () => {
    const digest = envFingerprint(base).digest;
    const tracked = structuredClone(base);
    tracked.envs['NODE_ENV'] = { value: 'development', tracked: true };
    expect(envFingerprint(tracked).digest).not.toBe(digest);
    const absent = structuredClone(base);
    absent.envs['FOO'] = { value: '', tracked: true };
    expect(envFingerprint(absent).digest, 'empty is not absent').not.toBe(digest);
    const untracked = structuredClone(base);
    untracked.envs['HOME'] = { value: '/elsewhere', tracked: false };
    untracked.envs['PWD'] = { value: '/elsewhere', tracked: true };
    untracked.envQueries[2] = { glob: '*', tracked: false, matches: { OTHER: 'y' } };
    expect(envFingerprint(untracked).digest).toBe(digest);
  });

  it('holds against the same env and an unrelated change', () => {
    const fp = envFingerprint(base);
    expect(validateFingerprint(fp, env)).toEqual({ valid: true, reasons: [] });
    expect(validateFingerprint(fp, { ...env, UNRELATED: '1', HOME: '/x', PWD: '/y', OLDPWD: '/z', PX: undefined }).valid).toBe(true);
  });

  it('names what changed, added and was removed', () => {
    const fp = envFingerprint(base);
    const now = { ...env, NODE_ENV: 'development', FOO: 'now-set', BAR: undefined };
    expect(validateFingerprint(fp, now).reasons).toEqual(['env BAR removed', 'env FOO added', 'env NODE_ENV changed']);
  });

  it('names a query whose match set changed, by any route', () => {
    const fp = envFingerprint(base);
    const reasonsFor = (patch: Record<string, string | undefined>) => validateFingerprint(fp, { ...env, ...patch }).reasons;
    expect(reasonsFor({ VITE_API: 'https://prod.example' })).toEqual(['env query VITE_* changed']);
    expect(reasonsFor({ VITE_NEW: '1' })).toEqual(['env query VITE_* changed']);
    expect(reasonsFor({ VITE_KEY: undefined })).toEqual(['env query VITE_* changed']);
    expect(reasonsFor({ APP_MODE: 'b' })).toEqual(['env query APP_ (prefix) changed']);
    expect(reasonsFor({ PATH_X: '1' })).toEqual(['env query P* changed']);
    expect(reasonsFor({ ANYTHING: 'x' }), 'an untracked query is not checked').toEqual([]);
    expect(reasonsFor({ vite_api: 'x' }), 'case-sensitive').toEqual([]);
  });

  it('compares values only when given, by name', () => {
    const fp = envFingerprint(base);
    expect(validateFingerprint(fp, env, { values: { 'config-hash': 'abc123' } }).valid).toBe(true);
    expect(validateFingerprint(fp, env, { values: { 'config-hash': 'def456', version: '2' } }).reasons).toEqual([
      'value config-hash changed',
      'value version added',
    ]);
    expect(validateFingerprint(fp, env, { values: {} }).reasons).toEqual(['value config-hash removed']);
  });

  it('never prints a value in a reason', () => {
    const fp = envFingerprint(base);
    const { reasons } = validateFingerprint(
      fp,
      { NODE_ENV: 'new-secret-1', FOO: 'new-secret-2', VITE_API: 'new-secret-3' },
      { values: { 'config-hash': 'new-secret-4' } },
    );
    expect(reasons.length).toBeGreaterThan(0);
    for (const value of ['secret', 'production', 'staging', 'abc123']) expect(reasons.join('\n')).not.toContain(value);
  });
});

describe('serialisation', () => {
  const sample = reports({
    ignoredInputs: ['/w/app/dist', '/w/app/node_modules/.vite'],
    ignoredOutputs: ['/w/app/node_modules/.vite'],
    inputs: ['/w/app', '/w/lib/x.json'],
    outputs: ['/w/app/dist'],
    values: { v: '1' },
    envs: { A: { value: null, tracked: true } },
    envQueries: [{ prefix: 'VITE_', tracked: true, matches: { VITE_A: '1' } }],
    untrackedEnv: ['PWD'],
    cacheable: false,
    notCacheable: [{ kind: 'disable-cache', message: 'dev server', pid: 7 }],
    errors: [{ message: 'bad frame', pid: 7 }, { message: 'no pid' }],
  });

  it('round-trips Reports through JSON', () => {
    expect(parseReports(serializeReports(sample))).toEqual(sample);
    expect(parseReports(JSON.stringify(sample, null, 2))).toEqual(sample);
  });

  it('writes paths relative to a root and restores them under another', () => {
    const text = serializeReports(sample, { root: '/w/app' });
    expect(text).not.toContain('/w/');
    const portable = JSON.parse(text) as Reports;
    expect(portable.ignoredInputs).toEqual(['dist', 'node_modules/.vite']);
    expect(portable.inputs).toEqual(['.', '../lib/x.json']);
    const moved = parseReports(text, { root: '/other/checkout/app' });
    expect(moved.ignoredInputs).toEqual(['/other/checkout/app/dist', '/other/checkout/app/node_modules/.vite']);
    expect(moved.inputs).toEqual(['/other/checkout/app', '/other/checkout/lib/x.json']);
    expect(moved.outputs).toEqual(['/other/checkout/app/dist']);
    expect(absolutizeReports(relativizeReports(sample, '/w/app'), '/w/app')).toEqual(sample);
    expect(parseReports(text, { root: '/w/app/' })).toEqual(sample);
  });

  it('round-trips real reports from a real server', async () => {
    const { reports: real } = await underRunner(
      `import * as ra from 'runner-aware';
       ra.ignoreInput('dist'); ra.addOutput('dist'); ra.addValue('k', 'v');
       ra.getEnv('NODE_ENV'); ra.getEnv('MISSING'); ra.getEnvs('VITE_*');`,
      { server: { env: { NODE_ENV: 'production', VITE_X: '1' } } },
    );
    expect(parseReports(serializeReports(real))).toEqual(real);
    const fp = envFingerprint(real);
    expect(parseFingerprint(serializeFingerprint(fp))).toEqual(fp);
    expect(validateFingerprint(fp, { NODE_ENV: 'production', VITE_X: '1' }).valid).toBe(true);
    expect(validateFingerprint(fp, { NODE_ENV: 'production', VITE_X: '1', MISSING: '' }).reasons).toEqual(['env MISSING added']);
  });

  it('rejects malformed input with the field named', () => {
    expect(() => parseReports('[]')).toThrow(/not a valid Reports: expected an object/);
    const bad = { ...sample, envs: { A: { value: 1, tracked: true } } };
    expect(() => parseReports(JSON.stringify(bad))).toThrow(/envs\.A must be/);
    expect(() => parseReports(JSON.stringify({ ...sample, inputs: 'x' }))).toThrow(/inputs must be an array of strings/);
    const fp = envFingerprint(sample);
    expect(() => parseFingerprint(JSON.stringify({ ...fp, version: 2 }))).toThrow(/unsupported version 2/);
    expect(() => parseFingerprint(JSON.stringify({ ...fp, envs: { A: 'forged' } }))).toThrow(/digest does not match/);
    expect(() => parseFingerprint(JSON.stringify({ ...fp, envQueries: [{ matches: {} }] }))).toThrow(/envQueries\[0\]/);
  });
});
