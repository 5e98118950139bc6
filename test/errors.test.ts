// The runner side's errors: a bad argument to an exported helper is a
// TypeError that names the call and what is wrong (`runner-aware <call>: …`),
// as the tool side's are; a typo in an option is refused with the nearest
// valid name; a trace mode asked for by name that no tracer can give is an error;
// paths may be `file:` URLs; a cache that cannot be written is a warning.

import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  changedSince,
  createServer,
  declaredInputs,
  describeQuery,
  describeReason,
  envFingerprint,
  envMatcher,
  filterInputs,
  fingerprintInput,
  inferAccesses,
  isIgnoredInput,
  isWithin,
  normalizePath,
  openCache,
  parseFingerprint,
  parseReports,
  relativizeReports,
  serializeReports,
  StatCache,
  TraceUnavailableError,
  validateFingerprint,
  verdict,
  withoutCacheSecrets,
  type Reports,
} from '../dist/runner.mjs';
import { fetchEnv, fetchEnvs } from '../dist/index.mjs';
import { lastJson, root, run, underRunner } from './helpers.js';

const cliPath = join(root, 'dist', 'cli.cjs');
const api = pathToFileURL(join(root, 'dist', 'index.mjs')).href;

/** Reports as `close()` returns them for a run where nothing was said. */
function emptyReports(): Reports {
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
    clients: 0,
    clientsStillConnected: 0,
    envRequests: 0,
  };
}

/** The message a call throws, or `undefined` when it does not. */
function thrown(call: () => unknown): string | undefined {
  try {
    call();
  } catch (err) {
    return String(err);
  }
  return undefined;
}

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ra-errors-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('runner helpers check their arguments', () => {
  const fingerprint = envFingerprint({ ...emptyReports(), envs: { NODE_ENV: { value: 'production', tracked: true } } });

  it('name the call and what is wrong, where JavaScript would fail deep inside', () => {
    const cases: [() => unknown, string][] = [
      [
        () => validateFingerprint(JSON.stringify(fingerprint) as never, process.env),
        'TypeError: runner-aware validateFingerprint: stored must be an EnvFingerprint, got string: read a stored one back with parseFingerprint(json)',
      ],
      [() => validateFingerprint(fingerprint, undefined as never), 'TypeError: runner-aware validateFingerprint: env must be an object of strings (an env such as process.env), got undefined'],
      [
        () => fingerprintInput('src/main.js' as never),
        "TypeError: runner-aware fingerprintInput: input must be an InferredInput ({ path, kind }, as inferAccesses gives them), got string: for a file, pass { path, kind: 'content' }",
      ],
      [() => fingerprintInput({ path: 'a', kind: 'bytes' as never }), "TypeError: runner-aware fingerprintInput: input.kind must be 'content', 'listing' or 'existence', got 'bytes'"],
      [() => fingerprintInput({ path: 'a', kind: 'content' }, {} as never), 'TypeError: runner-aware fingerprintInput: cache must be a StatCache, got object'],
      [
        () => inferAccesses({} as never),
        'TypeError: runner-aware inferAccesses: reports.ignoredInputs must be an array, got undefined (pass the Reports server.close() returned)',
      ],
      [
        () => inferAccesses({ ...emptyReports(), trace: { mode: 'preload' } } as never),
        'TypeError: runner-aware inferAccesses: reports.trace.read must be an array, got undefined (pass the Reports server.close() returned)',
      ],
      [() => changedSince('src' as never, Date.now()), 'TypeError: runner-aware changedSince: inputs must be an array of InferredInput ({ path, kind }), got string'],
      [() => changedSince([], '1' as never), 'TypeError: runner-aware changedSince: since must be a time in ms since the epoch (Date.now()), got 1'],
      [() => envFingerprint(null as never), 'TypeError: runner-aware envFingerprint: reports must be the Reports server.close() returned, got null'],
      [() => filterInputs(emptyReports(), 'src/a.ts' as never), 'TypeError: runner-aware filterInputs: reads must be an iterable of paths, got string'],
      [() => filterInputs(emptyReports(), [42] as never), 'TypeError: runner-aware filterInputs: reads[0] must be a string or a file: URL, got number'],
      [() => isIgnoredInput(emptyReports(), undefined as never), 'TypeError: runner-aware isIgnoredInput: path must be a string or a file: URL, got undefined'],
      [() => isWithin('a', new URL('https://example.com/') as never), 'TypeError: runner-aware isWithin: dir must be a string or a file: URL, got a https: URL'],
      [() => declaredInputs({ inputs: [] } as never), 'TypeError: runner-aware declaredInputs: reports.ignoredInputs must be an array, got undefined (pass the Reports server.close() returned)'],
      [() => verdict({} as never), 'TypeError: runner-aware verdict: reports.notCacheable must be an array, got undefined (pass the Reports server.close() returned)'],
      [() => verdict(emptyReports(), { code: 1 } as never), "TypeError: runner-aware verdict: outcome has neither exitCode nor signal, but has 'code' (did you mean 'exitCode'?)"],
      [() => verdict(emptyReports(), { exitCode: '1' } as never), 'TypeError: runner-aware verdict: outcome.exitCode must be an integer or null, got string'],
      [() => verdict(emptyReports(), {}, { cacheableDespit: ['vite'] } as never), "TypeError: runner-aware verdict: unknown option 'cacheableDespit' (did you mean 'cacheableDespite'?)"],
      [() => describeReason('exit' as never), 'TypeError: runner-aware describeReason: reason must be an UncacheableReason ({ kind, message }, from reports.notCacheable or verdict()), got string'],
      [() => envMatcher({ name: 'X' } as never), 'TypeError: runner-aware envMatcher: query must be a glob string, { glob: string } or { prefix: string }, got object'],
      [() => describeQuery(undefined as never), 'TypeError: runner-aware describeQuery: query must be a glob string, { glob: string } or { prefix: string }, got undefined'],
      [() => parseFingerprint(fingerprint as never), 'TypeError: runner-aware parseFingerprint: json must be a string, got object'],
      [() => parseReports(emptyReports() as never), 'TypeError: runner-aware parseReports: json must be a string, got object'],
      [() => serializeReports(emptyReports(), { rooot: '.' } as never), "TypeError: runner-aware serializeReports: unknown option 'rooot' (did you mean 'root'?)"],
      [() => relativizeReports(emptyReports(), 42 as never), 'TypeError: runner-aware relativizeReports: root must be a string or a file: URL, got number'],
      [() => normalizePath(''), 'TypeError: runner-aware normalizePath: path must not be empty'],
      [() => withoutCacheSecrets(undefined as never), 'TypeError: runner-aware withoutCacheSecrets: env must be an object of strings (an env such as process.env), got undefined'],
    ];
    for (const [call, message] of cases) expect(thrown(call), message).toBe(message);
  });

  it('take the arguments they document as before', () => {
    expect(validateFingerprint(fingerprint, { NODE_ENV: 'production' })).toEqual({ valid: true, reasons: [] });
    expect(validateFingerprint(parseFingerprint(JSON.stringify(fingerprint)), { NODE_ENV: 'test' }).reasons).toEqual(['env NODE_ENV changed']);
    expect(verdict(emptyReports(), { exitCode: 1, signal: null, stdout: 'x' } as never).cacheable).toBe(false);
    expect(inferAccesses(emptyReports())).toEqual({ inputs: [], outputs: [], modifiedInputs: [] });
    expect(fingerprintInput({ path: join(dir, 'absent'), kind: 'existence' }, new StatCache())).toBe('missing');
  });

  it('take file: URLs wherever they take a path', () => {
    const file = join(dir, 'src', 'main.js');
    const url = pathToFileURL(file);
    expect(normalizePath(url)).toBe(file);
    expect(isWithin(url, pathToFileURL(dir))).toBe(true);
    expect(isIgnoredInput({ ignoredInputs: [join(dir, 'src')] }, url)).toBe(true);
    expect(filterInputs({ ignoredInputs: [] }, [url, file])).toEqual([file]);
    const reports = { ...emptyReports(), inputs: [file] };
    expect(relativizeReports(reports, pathToFileURL(dir)).inputs).toEqual(['src/main.js']);
    expect(parseReports(serializeReports(reports, { root: pathToFileURL(dir) }), { root: pathToFileURL(dir) }).inputs).toEqual([file]);
  });
});

describe('options', () => {
  it('createServer refuses an unknown option with the nearest valid name', async () => {
    await expect(createServer({ tracing: true } as never)).rejects.toThrow("runner-aware createServer: unknown option 'tracing' (did you mean 'trace'?)");
    await expect(createServer({ closeTimeout: 5 } as never)).rejects.toThrow("runner-aware createServer: unknown option 'closeTimeout' (did you mean 'closeTimeoutMs'?)");
    await expect(createServer({ verbose: true } as never)).rejects.toThrow(/^runner-aware createServer: unknown option 'verbose'$/);
    await expect(createServer('trace' as never)).rejects.toThrow('runner-aware createServer: options must be an object, got string');
  });

  it('close, snapshot and server.command refuse what they do not take', async () => {
    const server = await createServer();
    expect(() => server.snapshot({ envValue: 'plain' } as never)).toThrow("runner-aware snapshot: unknown option 'envValue' (did you mean 'envValues'?)");
    expect(() => server.command('node build.js' as never)).toThrow('runner-aware server.command: argv must be an array of strings, got string');
    await expect(server.close({ envvalues: 'plain' } as never)).rejects.toThrow("runner-aware close: unknown option 'envvalues' (did you mean 'envValues'?)");
    await server.close();
  });

  it('createServer takes ignored paths as file: URLs', async () => {
    const server = await createServer({ ignore: [pathToFileURL(join(dir, 'cache'))] });
    const reports = await server.close();
    expect(reports.ignoredInputs).toEqual([join(dir, 'cache')]);
    await expect(createServer({ ignore: ['dist', ''] })).rejects.toThrow('runner-aware createServer: ignore[1] must not be empty');
  });

  it('openCache refuses an unknown option, its remote too, and takes file: URLs', async () => {
    expect(() => openCache({ dir: join(dir, 'c'), remot: {} } as never)).toThrow("runner-aware openCache: unknown option 'remot' (did you mean 'remote'?)");
    expect(() => openCache({ dir: join(dir, 'c'), remote: { url: 'http://x', team: 't', tokn: 'x' } } as never)).toThrow(
      "runner-aware openCache: unknown remote field 'tokn' (did you mean 'token'?)",
    );
    expect(() => openCache({} as never)).toThrow('runner-aware openCache: options.dir must name the cache directory');
    expect(() => openCache({ dir: 42 } as never)).toThrow('runner-aware openCache: options.dir must be a string or a file: URL, got number');
    const cache = openCache({ dir: pathToFileURL(join(dir, 'c')), root: pathToFileURL(dir) });
    expect([cache.dir, cache.root]).toEqual([join(dir, 'c'), dir]);
    await expect(cache.lookup('task', { envs: {} } as never)).rejects.toThrow("runner-aware Cache.lookup: unknown option 'envs' (did you mean 'env'?)");
    await expect(cache.store('task', { reports: emptyReports(), startedAt: 0, outcom: {} } as never)).rejects.toThrow(
      "runner-aware Cache.store: unknown run field 'outcom' (did you mean 'outcome'?)",
    );
  });
});

describe('a cache that cannot be written', () => {
  it("is a warning from the store, which resolves: the run's exit code is the runner's to keep", async () => {
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, '');
    const warnings: string[] = [];
    const cache = openCache({ dir: join(blocker, 'cache'), root: dir, onWarning: (message) => warnings.push(message) });
    writeFileSync(join(dir, 'input.txt'), 'x');
    const result = await cache.store('task', { reports: emptyReports(), outcome: { exitCode: 0 }, startedAt: Date.now() + 1000, inputs: [pathToFileURL(join(dir, 'input.txt'))] });
    expect(result.stored).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^the cache could not store the run: cache i\/o: .*not-a-dir.*: Not a directory/);
    expect(result.stored === false && result.reasons).toEqual(warnings);
  });

  it('makes the reference runner warn and exit with the command\'s code', async () => {
    const app = join(dir, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'input.txt'), 'x');
    const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
    const blocked = ['--cache-dir', join(dir, 'not-a-dir'), '--trace', 'off', '--input', 'input.txt', '--'];
    const ok = await run(process.execPath, [runner, ...blocked, process.execPath, '-e', 'console.log("built")'], { cwd: app });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('built\n');
    expect(ok.stderr).toMatch(/^cache-runner: the cache could not store the run: cache i\/o: .*Not a directory.*$/m);
    expect(ok.stderr).toMatch(/^cache skipped: the cache could not store the run: cache i\/o: /m);
    expect(ok.stderr).not.toMatch(/^\s+at /m);
    const failed = await run(process.execPath, [runner, ...blocked, process.execPath, '-e', 'process.exit(3)'], { cwd: app });
    expect(failed.code, failed.stderr).toBe(3);
  });
});

describe('trace modes', () => {
  /** A copy of the package with the addon but without the tracer's files. */
  function packageWithoutTracer(): string {
    const pkg = join(dir, 'no-tracer');
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'runner-aware', version: '0.0.0', type: 'module' }));
    const addon = readdirSync(root).find((file) => /^runner-aware\.[\w-]+\.node$/.test(file)) ?? '';
    copyFileSync(join(root, addon), join(pkg, addon));
    return pkg;
  }

  it('a mode asked for by name must be had; true traces where it can', async () => {
    const pkg = packageWithoutTracer();
    const code = `import { createServer, TraceUnavailableError } from ${JSON.stringify(pathToFileURL(join(pkg, 'dist', 'runner.mjs')).href)};
const out = {};
for (const trace of [true, 'preload', 'seccomp']) {
  try {
    const server = await createServer({ trace });
    out[trace] = server.trace;
    await server.close();
  } catch (err) {
    out[trace] = { error: err instanceof TraceUnavailableError, mode: err.mode, message: err.message };
  }
}
console.log(JSON.stringify(out));`;
    const result = await run(process.execPath, ['--input-type=module', '-e', code]);
    expect(result.code, result.stderr).toBe(0);
    const out = lastJson<Record<string, unknown>>(result);
    expect(out['true']).toBe('unsupported');
    for (const mode of ['preload', 'seccomp']) {
      expect(out[mode]).toMatchObject({ error: true, mode });
      expect((out[mode] as { message: string }).message).toMatch(
        new RegExp(`^runner-aware createServer: trace '${mode}' was asked for and cannot be done: .*runner-aware-(preload|trace)\\..* is missing .*\\(trace: true traces where it can and runs untraced elsewhere\\)$`),
      );
    }

    const cli = await run(process.execPath, [join(pkg, 'dist', 'cli.cjs'), 'inspect', '--trace', 'seccomp', '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(join(dir, 'ran'))}, '')`]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/^runner-aware: --trace seccomp cannot be done here: .* is missing .*\(--trace auto traces where it can\)\n$/);
    expect(readdirSync(dir)).not.toContain('ran');
  });

  it.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))(
    'a runner traced by an outer runner leaves tracing to it, even asked for a mode by name',
    async () => {
      const outer = join(dir, 'outer-trace');
      writeFileSync(outer, '');
      const env = { ...process.env, RUNNER_AWARE_TRACE: outer };
      for (const mode of ['auto', 'seccomp']) {
        const result = await run(process.execPath, [cliPath, 'inspect', '--trace', mode, '--', process.execPath, '-e', '1'], { env });
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain('trace: unsupported: this runner is itself traced by an outer runner');
      }
    },
  );
});

describe('the CLI', () => {
  it('hints at a missing -- before the command, and at a mistyped option', async () => {
    const missing = await run(process.execPath, [cliPath, 'inspect', '--json', 'node', '-e', '1']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^runner-aware: unknown option -e: options of the command go after --, as in: runner-aware inspect --json -- node -e 1\n/);
    const typo = await run(process.execPath, [cliPath, 'inspect', '--tracing', 'off', '--', 'true']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^runner-aware: unknown option --tracing \(did you mean '--trace'\?\)\n/);
  });

  it('says runner-aware once per line', async () => {
    const empty = await run(process.execPath, [cliPath, 'inspect', '--ignore', '', '--', 'true']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^runner-aware: --ignore needs a path, not an empty string\n/);
    const missing = await run(process.execPath, [cliPath, 'inspect', '--', join(dir, 'no-such-command')]);
    expect(missing.code).toBe(127);
    for (const result of [empty, missing]) expect(result.stderr).not.toContain('runner-aware: runner-aware');
  });
});

describe('the tool side', () => {
  it('takes file: URLs as paths, and refuses other URLs', async () => {
    const file = join(dir, 'tool', 'config.js');
    const code = `const ra = await import(${JSON.stringify(api)});
ra.addInput(new URL(${JSON.stringify(pathToFileURL(file).href)}));
ra.ignoreOutput(new URL('./out/', ${JSON.stringify(pathToFileURL(file).href)}));
let refused;
try { ra.addOutput(new URL('https://example.com/x')); } catch (err) { refused = String(err); }
console.log(JSON.stringify(refused));`;
    const { reports, tool } = await underRunner(code);
    expect(reports.inputs).toEqual([file]);
    expect(reports.ignoredOutputs).toEqual([join(dir, 'tool', 'out')]);
    expect(lastJson(tool)).toBe('TypeError: runner-aware addOutput: path must be a string or a file: URL, got a https: URL');
  });

  it('fetchEnv and fetchEnvs name themselves in their errors', () => {
    expect(thrown(() => fetchEnv({} as never))).toBe('TypeError: runner-aware fetchEnv: name must be a string, got object');
    expect(thrown(() => fetchEnv('NODE_ENV', { tracked: 'yes' } as never))).toBe('TypeError: runner-aware fetchEnv: options.tracked must be a boolean');
    expect(thrown(() => fetchEnvs(42 as never))).toBe('TypeError: runner-aware fetchEnvs: query must be a glob string or { prefix: string }');
    expect(thrown(() => fetchEnvs('VITE_['))).toMatch(/^TypeError: runner-aware fetchEnvs: invalid env glob "VITE_\[": /);
  });
});
