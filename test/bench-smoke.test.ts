// The benchmark suite in smoke mode: a few thousand iterations, no vp peer.
// It checks that every figure was produced and is sane, never how fast it
// is, so `npm run bench` cannot rot between full runs.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { root, run } from './helpers.js';

interface Stats {
  count: number;
  median: number;
  p99: number;
}

interface Summary {
  meta: { smoke: boolean; machine: string };
  paths: Record<string, Stats>;
  rows: { figure: string; value: string; target: string; met: boolean | null }[];
  figures: {
    dedupe: Stats;
    report: Stats & { perSecond: number };
    concurrent: { many: { calls: number; wrong: number; clients: number; envRequests: number } };
    startup: { total: Stats; nativeLoads: number };
    serverCycle: Stats;
    memory: { leftoverDirs: number; before: { fds: number }; after: { fds: number } };
  };
}

const out = mkdtempSync(join(tmpdir(), 'ra-bench-smoke-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

// The benchmarks count fds in /proc/self/fd and use /dev/shm: Linux only.
describe.runIf(process.platform === 'linux')('npm run bench (smoke)', () => {
  it('measures every figure and writes the table and the picture', { timeout: 180_000 }, async () => {
    const bench = await run(process.execPath, [join(root, 'bench', 'run.mjs'), '--smoke', '--out', out]);
    expect(bench.code, bench.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'benchmarks.json'), 'utf8')) as Summary;
    expect(summary.meta.smoke).toBe(true);

    for (const key of ['ours', 'ipc', 'net']) {
      const path = summary.paths[key];
      expect(path, key).toBeDefined();
      expect(path!.count).toBe(2000);
      expect(path!.median).toBeGreaterThan(0);
      expect(path!.p99).toBeGreaterThanOrEqual(path!.median);
    }
    // One row per figure of the issue, each with a verdict unless its peer is absent.
    // The tracing rows exist where the tracer does (Linux x64 and arm64).
    const traced = process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch);
    expect(summary.rows).toHaveLength(traced ? 26 : 15);
    if (traced) {
      const trace = summary.rows.filter((r) => r.figure.includes('traced') || r.figure.includes('strace') || r.figure.includes('zero configuration'));
      expect(trace.map((r) => r.target)).toEqual([
        '≤ 5% overhead',
        '≤ 20% overhead',
        'misses only what it reports as unseen',
        'a hit, faster than the build',
        '≤ 20 ms, every path in the trace',
      ]);
      expect(trace[4]?.value).toMatch(/ms\*\* \(close\(\) took \d+ ms; 20,000 of 20,000 paths in the trace\)$/);
      expect(trace[2]?.value).toMatch(/^\*\*\d+ missed\*\* of [\d,]+|strace not available/);
      expect(trace[3]?.value).toContain('every run a hit');
      // The cache store's rows, for the Vite app and the output tree: a hit,
      // a store and archiving, each against a floor measured in the same run.
      const cache = summary.rows.filter((r) => r.figure.startsWith('cache store, '));
      expect(cache.map((r) => r.target)).toEqual(['≤ 1.3×', '≤ 1.15×', '≥ 70%', '≤ 1.3×', '≤ 1.15×', '≥ 70%']);
      for (const row of cache) expect(row.value, row.figure).toMatch(/^\*\*[\d.]+(×|%)\*\*/);
    }
    const repo = summary.rows.find((r) => r.figure.startsWith('repository key'));
    expect(repo?.target).toBe('≤ 2×');
    expect(repo?.value).toMatch(/^\*\*[\d.]+×\*\* \(\d+ ms against \d+ ms/);
    for (const row of summary.rows) {
      if (!row.figure.includes('upstream') && !row.figure.includes('reports over FIFOs')) expect(typeof row.met, row.figure).toBe('boolean');
    }
    const { figures } = summary;
    expect(figures.dedupe.median).toBeGreaterThan(0);
    expect(figures.report.perSecond).toBeGreaterThan(0);
    expect(figures.concurrent.many.clients).toBe(16);
    expect(figures.concurrent.many.wrong).toBe(0);
    // Threads of one process may share a round trip, so requests can be fewer than calls.
    expect(figures.concurrent.many.envRequests).toBeGreaterThan(0);
    expect(figures.startup.total.median).toBeGreaterThan(0);
    expect(figures.startup.nativeLoads).toBe(0);
    expect(figures.serverCycle.median).toBeGreaterThan(0);
    expect(figures.memory.leftoverDirs).toBe(0);
    // Over FIFOs too, and the close() of many paths hands every one over.
    expect(summary.rows.find((r) => r.figure.startsWith('sync getEnv round trip over FIFOs'))).toBeDefined();
    expect(summary.rows.find((r) => r.figure.startsWith('connect + first answer'))?.value).toMatch(/FIFOs \*\*\d/);
    expect(summary.rows.find((r) => r.figure.includes('event-loop stall'))?.value).toMatch(/20,000 of 20,000 paths received/);
    expect(figures.memory.after.fds).toBeLessThanOrEqual(figures.memory.before.fds);

    const markdown = readFileSync(join(out, 'benchmarks.md'), 'utf8');
    expect(markdown).toContain('| figure | measured | target |');
    expect(markdown).toContain(summary.meta.machine);
    const svg = readFileSync(join(out, 'benchmarks.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).not.toContain('NaN');
    expect(existsSync(join(out, 'benchmarks.svg'))).toBe(true);
  });
});
