// The package's two entry points, resolved by name as a user's code resolves
// them: `runner-aware` carries the tool API and nothing of the runner side,
// `runner-aware/runner` the runner side and the cache helpers.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { lastJson, root, run } from './helpers.js';

const toolApi = [
  'addInput',
  'addOutput',
  'addValue',
  'disableCache',
  'fetchEnv',
  'fetchEnvs',
  'getEnv',
  'getEnvs',
  'ignoreInput',
  'ignoreOutput',
  'isConnected',
];

const runnerApi = [
  'CACHE_SECRET_ENV',
  'InvalidEnvGlobError',
  'StatCache',
  'TraceUnavailableError',
  'absolutizeReports',
  'changedSince',
  'createServer',
  'declaredInputs',
  'declaredOutputs',
  'describeQuery',
  'describeReason',
  'digestReports',
  'envFingerprint',
  'envMatcher',
  'envValueDigest',
  'filterInputs',
  'filterOutputs',
  'fingerprintInput',
  'inferAccesses',
  'isIgnoredInput',
  'isIgnoredOutput',
  'isWithin',
  'nodeModulesBinPath',
  'normalizePath',
  'openCache',
  'packageManagerPaths',
  'parseFingerprint',
  'parseReports',
  'redactUrl',
  'relativizeReports',
  'serializeFingerprint',
  'serializeReports',
  'validateFingerprint',
  'verdict',
  'withoutCacheSecrets',
];

/** The sorted export names of `specifier`, imported (ESM) or required (CJS) by a fresh process. */
async function exportsOf(specifier: string, format: 'esm' | 'cjs'): Promise<string[]> {
  const load = format === 'esm' ? `import(${JSON.stringify(specifier)})` : `Promise.resolve(require(${JSON.stringify(specifier)}))`;
  const result = await run(process.execPath, ['-e', `${load}.then((m) => console.log(JSON.stringify(Object.keys(m).filter((k) => k !== 'default' && k !== 'module.exports').sort())))`]);
  expect(result.code, result.stderr).toBe(0);
  return lastJson(result) as string[];
}

describe('entry points', () => {
  for (const format of ['esm', 'cjs'] as const) {
    it(`runner-aware exports the tool API only (${format})`, async () => {
      expect(await exportsOf('runner-aware', format)).toEqual(toolApi);
    });

    it(`runner-aware/runner exports the runner side and the cache helpers (${format})`, async () => {
      expect(await exportsOf('runner-aware/runner', format)).toEqual([...runnerApi].sort());
    });
  }

  it('leaves the runner side and the cache helpers out of the tool bundle', () => {
    for (const file of ['index.mjs', 'index.cjs']) {
      const bundle = readFileSync(join(root, 'dist', file), 'utf8');
      for (const runnerSide of ['createServer', 'loadBinding', 'envFingerprint', 'node:crypto', 'src-ts/cache.ts', 'src-ts/server.ts']) {
        expect(bundle, `${file} carries ${runnerSide}`).not.toContain(runnerSide);
      }
    }
  });
});
