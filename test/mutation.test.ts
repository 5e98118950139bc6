// The reference runner with no configuration on real toolchains from npm,
// checked path by path: every input the trace saw inside the project is
// mutated in the way that matters for its kind (a file's bytes, a listed
// directory's entries, a probed path's existence); the next run must miss and
// build what a fresh build builds, and once the input is restored the run
// must hit and restore the first build's outputs byte for byte. A clean
// checkout and an unrelated new file must hit too. A stale hit is never
// tolerated; the counts are printed as a table at the end.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, isAbsolute, join, relative, sep } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { nodeModulesBinPath } from '../dist/runner.mjs';
import { entryManifest, fixtures, root, run, type Run } from './helpers.js';

const runner = join(root, 'examples', 'cache-runner', 'index.mjs');
const rootBin = join(root, 'node_modules', '.bin');

/** A real toolchain project: where it comes from, how it is built, what it writes. */
interface Project {
  name: string;
  /** A fixture directory under test/fixtures. */
  fixture: string;
  command: string[];
  /** What the build writes, relative to the project: removed for a clean checkout and a fresh build. */
  outputs: string[];
  /** Links `node_modules/.bin/<name>` → target, as an install makes them. */
  bins?: Record<string, string>;
  /**
   * Whether the build leaves nothing but its own outputs behind (Vite empties
   * its outDir; a single --outfile has nothing else): a restore must then give
   * exactly the first build's tree. tsc keeps stale files of an earlier build,
   * and a hit keeps them as tsc would.
   */
  exactOutputs: boolean;
  /** The trace mode, when not the default (preload, with the supervisor for what it cannot see). */
  trace?: 'seccomp';
}

const projects: Project[] = [
  {
    name: 'vite build',
    fixture: 'vite-app',
    command: ['vite', 'build'],
    outputs: ['dist'],
    bins: { vite: join(root, 'node_modules', 'vite', 'bin', 'vite.js') },
    exactOutputs: true,
  },
  {
    name: 'tsc',
    fixture: join('mutation', 'tsc-app'),
    command: ['tsc'],
    outputs: ['dist'],
    exactOutputs: false,
  },
  {
    name: 'esbuild CLI',
    fixture: join('mutation', 'esbuild-app'),
    command: ['esbuild', 'src/main.ts', '--bundle', '--outfile=dist/out.js'],
    outputs: ['dist'],
    exactOutputs: true,
  },
  {
    name: 'npm run build (node gen.mjs && esbuild)',
    fixture: join('mutation', 'npm-chain'),
    command: ['npm', 'run', 'build'],
    outputs: ['dist', join('src', 'words.js')],
    bins: { esbuild: join(rootBin, 'esbuild') },
    exactOutputs: true,
  },
  {
    // A bundler whose work is done by a native binding (Rust, through napi).
    name: 'rolldown CLI',
    fixture: join('mutation', 'rolldown-app'),
    command: ['rolldown', 'src/main.js', '--file', 'dist/bundle.js'],
    outputs: ['dist'],
    bins: { rolldown: join(rootBin, 'rolldown') },
    exactOutputs: true,
  },
  {
    // The embedded Dart compiler, a native program the Node CLI spawns; it
    // writes its CSS with O_RDWR|O_TRUNC.
    name: 'sass (sass-embedded)',
    fixture: join('mutation', 'sass-app'),
    command: ['sass', 'src/main.scss', 'out/main.css'],
    outputs: ['out'],
    bins: { sass: join(root, 'node_modules', 'sass-embedded', 'dist', 'bin', 'sass.js') },
    exactOutputs: true,
  },
];
// Again with every system call through the supervisor: a static program, a
// Node step and a native compiler, each seen by seccomp alone.
for (const name of ['esbuild CLI', 'npm run build (node gen.mjs && esbuild)', 'sass (sass-embedded)']) {
  const project = projects.find((candidate) => candidate.name === name);
  if (project) projects.push({ ...project, name: `${name}, --trace seccomp`, trace: 'seccomp' });
}

/**
 * Paths that configure a build: always mutated, however many inputs the
 * trace saw. Other paths probed in vain (postcss's dozen config names, Vite's
 * look-ups of odd joins) are sampled.
 */
const CONFIG = /(^|\/)(package\.json|tsconfig\.json|vite\.config\.[a-z]+|\.env(\.[a-z.]+)?|\.npmrc)$/;
/** How many of the remaining probes-in-vain each project mutates. */
const SAMPLED_PROBES = 6;

type Kind = 'append' | 'alter' | 'relink' | 'add entry' | 'create' | 'delete';

interface Mutation {
  input: string;
  kind: Kind;
}

/** What one project's suite saw: the counts of the closing table, and every failure in words. */
interface Tally {
  inputs: number;
  inputsMutated: number;
  mutations: number;
  misses: number;
  missesNamed: number;
  restoredHits: number;
  cleanCheckoutHit: boolean;
  unrelatedFileHit: boolean;
  stale: string[];
  /** Paths probed in vain that no edit can make appear (a file is above them). */
  unmutable: string[];
  /**
   * Files of another build that a restore left in an output directory the
   * tool empties (the restored entry's own files are right).
   */
  leftovers: string[];
  /** Misses whose reasons name neither the input nor a directory above it. */
  notNamed: string[];
  /** Mutated builds that missed but were not stored, and why: never a stale result, noted. */
  notStored: string[];
  /** Not stale, but not the promise either: a restore that did not hit. */
  problems: string[];
}

const tallies = new Map<string, Tally>();

/** Every file under `paths` of `dir`, relative, with its bytes' sha256 (or a link's target). */
function tree(dir: string, paths: string[]): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (rel: string): void => {
    const abs = join(dir, rel);
    let stat;
    try {
      stat = lstatSync(abs);
    } catch {
      return;
    }
    if (stat.isDirectory()) {
      for (const name of readdirSync(abs).sort()) walk(join(rel, name));
    } else if (stat.isSymbolicLink()) {
      files.set(rel, `link ${readlinkSync(abs)}`);
    } else {
      files.set(rel, createHash('sha256').update(readFileSync(abs)).digest('hex'));
    }
  };
  for (const path of paths) walk(path);
  return files;
}

/** How `got` differs from `want` (null: the same); with `exact`, files `want` lacks count too. */
function treeDiff(want: Map<string, string>, got: Map<string, string>, exact: boolean): string | null {
  const wrong: string[] = [];
  for (const [file, hash] of want) {
    if (!got.has(file)) wrong.push(`${file} missing`);
    else if (got.get(file) !== hash) wrong.push(`${file} differs`);
  }
  if (exact) for (const file of got.keys()) if (!want.has(file)) wrong.push(`${file} extra`);
  return wrong.length === 0 ? null : wrong.join(', ');
}

function statusLine(result: Run): string {
  const lines = result.stderr.split('\n').filter((line) => /^cache (hit|miss|skipped)\b/.test(line));
  return lines.length === 1 ? (lines[0] ?? '') : `(${lines.length} status lines) ${lines.join(' | ')}`;
}

/** The bytes a file gains or becomes when a mutation writes it, by what kind of file it is. */
function addedText(file: string): string {
  const base = file.split('/').pop() ?? file;
  if (base.startsWith('.env')) return 'MUTATION=1\n';
  switch (extname(base)) {
    case '.js':
    case '.mjs':
    case '.cjs':
    case '.ts':
    case '.mts':
    case '.cts':
      // A statement with an effect: no bundler drops it, so the output changes.
      return 'Object.assign(globalThis, { mutated: 1 });\n';
    case '.html':
      return '<!-- mutated -->\n';
    case '.css':
    case '.scss':
      return '/* mutated */\n';
    default:
      return '\n';
  }
}

/** A file's contents after an append that keeps it valid (JSON gains a member). */
function appended(file: string, original: Buffer): Buffer {
  if (extname(file) === '.json') {
    const value: unknown = JSON.parse(original.toString('utf8'));
    if (Array.isArray(value)) return Buffer.from(`${JSON.stringify([...value, 'mutated'])}\n`);
    if (value !== null && typeof value === 'object') return Buffer.from(`${JSON.stringify({ ...value, mutated: true })}\n`);
  }
  return Buffer.concat([original, Buffer.from(`${original.length > 0 && original.at(-1) !== 0x0a ? '\n' : ''}${addedText(file)}`)]);
}

/**
 * The same number of bytes with one changed: the first letter of a leading
 * comment changes case, so the build still parses (null: no such comment).
 */
function altered(original: Buffer): Buffer | null {
  const text = original.toString('latin1');
  const match = /^(\/\/|\/\*)\s*([A-Za-z])/.exec(text);
  if (!match) return null;
  const at = match[0].length - 1;
  const letter = text[at] ?? '';
  const flipped = letter === letter.toUpperCase() ? letter.toLowerCase() : letter.toUpperCase();
  const bytes = Buffer.from(original);
  bytes[at] = flipped.charCodeAt(0);
  return bytes;
}

/**
 * Whether a path of the project has a file (not a directory) above it: Vite
 * looks for `src/main.js/tsconfig.json`, which no edit can make appear.
 */
function underFile(dir: string, rel: string): boolean {
  const parts = rel.split('/').slice(0, -1);
  return parts.some((_, i) => {
    try {
      return !lstatSync(join(dir, ...parts.slice(0, i + 1))).isDirectory();
    } catch {
      return false;
    }
  });
}

/** The entries (archives) in a cache dir. */
function cacheEntries(cacheDir: string): string[] {
  return readdirSync(cacheDir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.tar.zst'))
    .map((file) => join(cacheDir, file));
}

/** Whether `rel` names a path inside the project (not the runner's own absolute or `..` inputs). */
const inside = (rel: string): boolean => !isAbsolute(rel) && rel !== '..' && !rel.startsWith('../');

describe.runIf(process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch))('mutation suite: zero-config caching on real toolchains', () => {
  let work = '';

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ra-mutation-'));
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    const rows = [...tallies].map(([name, t]) => ({
      project: name,
      inputs: t.inputs,
      'inputs mutated': t.inputsMutated,
      mutations: t.mutations,
      misses: t.misses,
      'misses naming it': t.missesNamed,
      'restored hits': t.restoredHits,
      'clean checkout hit': t.cleanCheckoutHit,
      'unrelated file hit': t.unrelatedFileHit,
      stale: t.stale.length,
      'restores with leftovers': t.leftovers.length,
      'misses not stored': t.notStored.length,
    }));
    if (rows.length > 0) console.table(rows);
    // `npm run bench` reads the counts from here (its zero-config hit rate).
    const out = process.env.RUNNER_AWARE_MUTATION_JSON;
    if (out && rows.length > 0) writeFileSync(out, `${JSON.stringify(rows)}\n`);
    for (const [name, t] of tallies) {
      if (t.unmutable.length > 0) console.log(`${name}: not mutable (a file above them): ${t.unmutable.join(', ')}`);
      for (const line of [...t.stale, ...t.leftovers, ...t.notNamed, ...t.notStored, ...t.problems]) console.log(`${name}: ${line}`);
    }
  });

  for (const project of projects) {
    describe(project.name, () => {
      let dir = '';
      let cacheDir = '';
      let env: Record<string, string> = {};
      let original = new Map<string, string>();
      let inputs: string[] = [];
      let kinds: Record<string, { kind: string }> = {};
      let firstEntry = '';
      const tally: Tally = {
        inputs: 0,
        inputsMutated: 0,
        mutations: 0,
        misses: 0,
        missesNamed: 0,
        restoredHits: 0,
        cleanCheckoutHit: false,
        unrelatedFileHit: false,
        stale: [],
        unmutable: [],
        leftovers: [],
        notNamed: [],
        notStored: [],
        problems: [],
      };
      tallies.set(project.name, tally);

      /** The project's build under the reference runner, traced, with no configuration. */
      const cached = (): Promise<Run> =>
        run(process.execPath, [runner, '--cache-dir', cacheDir, ...(project.trace ? ['--trace', project.trace] : []), '--', ...project.command], { cwd: dir, env });

      /** The project's build run directly, from a tree without outputs: what a fresh build gives. */
      async function fresh(): Promise<{ code: number | null; outputs: Map<string, string> }> {
        for (const output of project.outputs) rmSync(join(dir, output), { recursive: true, force: true });
        const [file = '', ...args] = project.command;
        const result = await run(file, args, { cwd: dir, env: { ...env, PATH: nodeModulesBinPath(dir, env['PATH'] ?? '') } });
        return { code: result.code, outputs: tree(dir, project.outputs) };
      }

      beforeAll(() => {
        const slug = project.name.replace(/[^a-z0-9]+/gi, '-');
        dir = join(work, slug);
        cacheDir = join(work, `cache-${slug}`);
        cpSync(join(fixtures, project.fixture), dir, { recursive: true });
        // A directory no build step looks into, for the unrelated file.
        mkdirSync(join(dir, 'notes'), { recursive: true });
        writeFileSync(join(dir, 'notes', 'README.md'), 'Notes that no build step reads.\n');
        for (const [name, target] of Object.entries(project.bins ?? {})) {
          mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
          symlinkSync(target, join(dir, 'node_modules', '.bin', name));
        }
        const home = join(work, 'home');
        mkdirSync(home, { recursive: true });
        const transport = process.env['RUNNER_AWARE_TRANSPORT'];
        env = {
          // The toolchain as the repository installed it; the runner adds the
          // project's own node_modules/.bin in front, as npm does.
          PATH: `${rootBin}:${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`,
          // npm writes its logs under HOME: a home of the suite's own.
          HOME: home,
          ...(transport === undefined ? {} : { RUNNER_AWARE_TRANSPORT: transport }),
        };
      });

      it('misses the first time and stores the build it traced', async () => {
        const first = await cached();
        expect(first.code, first.stderr).toBe(0);
        expect(statusLine(first)).toBe('cache miss: no entry');
        original = tree(dir, project.outputs);
        expect(original.size).toBeGreaterThan(0);
        const entries = cacheEntries(cacheDir);
        expect(entries).toHaveLength(1);
        firstEntry = entries[0] ?? '';
        kinds = entryManifest(firstEntry).key.inputs as Record<string, { kind: string }>;
        inputs = Object.keys(kinds).filter(inside).sort();
        tally.inputs = inputs.length;
        expect(inputs.length).toBeGreaterThan(0);
        // The unrelated file goes where the build never looked.
        expect(inputs.filter((input) => input === 'notes' || input.startsWith('notes/'))).toEqual([]);
      });

      it('hits on a clean checkout, restoring the outputs', async () => {
        for (const output of project.outputs) rmSync(join(dir, output), { recursive: true, force: true });
        const clean = await cached();
        expect(clean.code, clean.stderr).toBe(0);
        const status = statusLine(clean);
        const diff = treeDiff(original, tree(dir, project.outputs), true);
        tally.cleanCheckoutHit = status === 'cache hit' && diff === null;
        expect(status).toBe('cache hit');
        expect(diff).toBeNull();
      });

      it('hits with an unrelated file added where the build never looked', async () => {
        writeFileSync(join(dir, 'notes', 'unrelated.md'), 'An unrelated note.\n');
        try {
          const unrelated = await cached();
          const status = statusLine(unrelated);
          tally.unrelatedFileHit = status === 'cache hit';
          expect(status).toBe('cache hit');
          expect(treeDiff(original, tree(dir, project.outputs), true)).toBeNull();
        } finally {
          rmSync(join(dir, 'notes', 'unrelated.md'));
        }
      });

      it('misses on every input mutated, and hits once it is restored', { timeout: 240_000 }, async () => {
        const aside = join(work, 'aside');

        // Which mutations each input gets: its kind on disk decides.
        const mutations: Mutation[] = [];
        const probes: Mutation[] = [];
        for (const input of inputs) {
          const path = join(dir, input);
          const kind = kinds[input]?.kind;
          let stat;
          try {
            stat = lstatSync(path);
          } catch {
            stat = null;
          }
          if (kind === 'listing') mutations.push({ input, kind: 'add entry' });
          else if (stat === null && underFile(dir, input)) tally.unmutable.push(input);
          else if (stat === null) (input.startsWith('src/') || CONFIG.test(input) ? mutations : probes).push({ input, kind: 'create' });
          else if (kind === 'existence') mutations.push({ input, kind: 'delete' });
          else if (stat.isSymbolicLink()) mutations.push({ input, kind: 'relink' });
          else if (stat.isFile()) {
            mutations.push({ input, kind: 'append' });
            if (input.startsWith('src/') && altered(readFileSync(path)) !== null) mutations.push({ input, kind: 'alter' });
          } else tally.problems.push(`${input}: a ${kind} input that is neither file, link nor listing: not mutated`);
        }
        // Probes in vain beyond the config files: an even sample.
        const step = Math.max(1, Math.ceil(probes.length / SAMPLED_PROBES));
        mutations.push(...probes.filter((_, i) => i % step === 0));

        for (const { input, kind } of mutations) {
          const path = join(dir, input);
          const what = `${input} (${kind})`;
          // What to do to put the input back, once the mutated build is checked.
          let restore: () => void;
          if (kind === 'append' || kind === 'alter') {
            const bytes = readFileSync(path);
            writeFileSync(path, kind === 'append' ? appended(input, bytes) : (altered(bytes) ?? bytes));
            restore = () => writeFileSync(path, bytes);
          } else if (kind === 'relink') {
            // The same target by another name: the link is what changed.
            const target = readlinkSync(path);
            rmSync(path);
            symlinkSync(isAbsolute(target) ? `/.${target}` : `./${target}`, path);
            restore = () => {
              rmSync(path);
              symlinkSync(target, path);
            };
          } else if (kind === 'add entry') {
            const files = readdirSync(path).filter((name) => extname(name) !== '');
            const added = join(path, `mutation-added${files.length > 0 ? extname(files[0] ?? '') : '.txt'}`);
            writeFileSync(added, extname(added) === '.json' ? '{}\n' : addedText(added));
            restore = () => rmSync(added);
          } else if (kind === 'delete') {
            mkdirSync(aside, { recursive: true });
            const moved = join(aside, 'moved');
            renameSync(path, moved);
            restore = () => renameSync(moved, path);
          } else {
            // A path probed in vain appears: a file where its name has an
            // extension or a leading dot, a directory where it has neither.
            let top = path;
            while (!existsSync(dirname(top))) top = dirname(top);
            const base = path.split(sep).pop() ?? '';
            mkdirSync(dirname(path), { recursive: true });
            if (extname(base) !== '' || base.startsWith('.')) {
              writeFileSync(path, /\.(c|m)?(j|t)s$/.test(base) ? 'export default {};\n' : extname(base) === '.json' ? '{}\n' : addedText(path));
            } else {
              mkdirSync(path);
            }
            restore = () => rmSync(top, { recursive: true, force: true });
          }
          tally.mutations++;

          try {
            const mutated = await cached();
            const status = statusLine(mutated);
            const outputs = tree(dir, project.outputs);
            const expected = await fresh();
            if (status === 'cache hit') {
              const wrong = treeDiff(expected.outputs, outputs, project.exactOutputs);
              tally.stale.push(`${what}: a stale hit${wrong ? `, with an output unlike a fresh build's (${wrong})` : ''}`);
            } else if (mutated.code === 0) {
              if (status.startsWith('cache miss: ')) {
                tally.misses++;
                // A miss names the input, or the listing of a directory above it.
                const named = status
                  .slice('cache miss: '.length)
                  .split(', ')
                  .some((reason) => {
                    const name = /^input (.+) (changed|added|removed)$/.exec(reason)?.[1];
                    return name !== undefined && (name === input || name === '.' || input.startsWith(`${name}/`));
                  });
                if (named) tally.missesNamed++;
                else tally.notNamed.push(`${what}: ${status}`);
              } else {
                tally.notStored.push(`${what}: ${status}`);
                tally.misses++;
              }
              const wrong = expected.code === 0 ? treeDiff(expected.outputs, outputs, project.exactOutputs) : `a fresh build exits ${expected.code}`;
              if (wrong) tally.stale.push(`${what}: missed (${status}), but the outputs are unlike a fresh build's: ${wrong}`);
            } else {
              // The mutation broke the build: nothing served, and a fresh build fails as well.
              tally.misses++;
              if (expected.code === 0) tally.stale.push(`${what}: the run failed (${status}) where a fresh build succeeds`);
            }
          } finally {
            restore();
          }

          const restored = await cached();
          const status = statusLine(restored);
          const outputs = tree(dir, project.outputs);
          if (status === 'cache hit') {
            tally.restoredHits++;
            const wrong = treeDiff(original, outputs, false);
            if (wrong) tally.stale.push(`${what}: restored, it hits but the outputs are unlike the first build's: ${wrong}`);
            const extra = project.exactOutputs ? [...outputs.keys()].filter((file) => !original.has(file)) : [];
            if (extra.length > 0) tally.leftovers.push(`${what}: restored, the hit leaves ${extra.join(', ')}, which a rebuild removes`);
          } else {
            tally.problems.push(`${what}: restored, it does not hit (${status})`);
          }
          // The mutated build's entry stayed for that restore, as in any
          // cache (it rests on the mutated input, so the hit was on the first
          // build's entry, and it shows the restore what the tool does: Vite
          // empties dist). Only the first build's entry is kept for the next
          // mutation, so any hit there is a hit on it.
          for (const entry of cacheEntries(cacheDir)) if (entry !== firstEntry) rmSync(entry);
        }
        tally.inputsMutated = new Set(mutations.map((mutation) => mutation.input)).size;

        expect(tally.stale).toEqual([]);
        expect(tally.problems).toEqual([]);
        expect(tally.misses).toBe(tally.mutations);
        expect(tally.restoredHits).toBe(tally.mutations);
        expect(tally.leftovers).toEqual([]);
        // Every miss is stored: a generator reading its own previous output included.
        expect(tally.notStored).toEqual([]);
      });
    });
  }
});
