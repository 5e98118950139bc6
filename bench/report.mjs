// Turns the measurements of bench/run.mjs into the summary, the Markdown
// table of figures against targets, and the latency picture (hand-written
// SVG: a log-scale density ridge per path).

/** The round-trip paths, in the order the table and the picture show them. */
export const PATHS = [
  { key: 'ours', label: 'runner-aware getEnv', note: 'sync, through the addon’s load()', color: '#d9480f' },
  { key: 'fifo', label: 'runner-aware over FIFOs', note: 'the same, where sockets are denied', color: '#e8590c' },
  { key: 'raw', label: 'the limit: raw Rust', note: 'two processes, blocking Unix socket', color: '#495057' },
  { key: 'tokio', label: 'raw Rust, tokio peer', note: 'the limit with an async answering side', color: '#868e96' },
  { key: 'net', label: 'Node net socket', note: 'two Node processes, same framing', color: '#1c7ed6' },
  { key: 'ipc', label: 'Node child_process IPC', note: 'fork + process.send', color: '#2f9e44' },
  { key: 'vp', label: 'upstream: vite-plus 1.5.1', note: 'its addon under vp run --cache', color: '#7048e8' },
];

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function stats(samples) {
  const sorted = Float64Array.from(samples).sort();
  return {
    count: sorted.length,
    min: sorted[0],
    median: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted[sorted.length - 1],
  };
}

/** Counts per log-spaced bin between `lo` and `hi` (µs); values outside land in the end bins. */
function histogram(samples, lo, hi, bins) {
  const counts = new Array(bins).fill(0);
  const span = Math.log(hi / lo);
  for (const x of samples) {
    const i = Math.floor((Math.log(Math.max(x, 1e-9) / lo) / span) * bins);
    counts[Math.min(bins - 1, Math.max(0, i))]++;
  }
  return counts;
}

const HIST = { lo: 1, hi: 1000, bins: 240 };

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const us = (x) => `${fmt(x, x < 1 ? 2 : 1)} µs`;
const ratio = (a, b) => a / b;

/** Everything the report shows, plain JSON. */
export function summarize(results) {
  const paths = {};
  for (const { key, label } of PATHS) {
    const samples = results.paths[key];
    if (!samples) continue;
    paths[key] = { label, ...stats(samples), histogram: histogram(samples, HIST.lo, HIST.hi, HIST.bins) };
  }
  const f = results.figures;
  const rows = [];
  const ours = paths.ours;
  const against = (key, target, name) => {
    const base = paths[key];
    if (!base) {
      rows.push({ figure: `sync getEnv round trip / ${name}`, value: 'not measured', target: `≤ ${target}×`, met: null });
      return;
    }
    const r = ratio(ours.median, base.median);
    rows.push({
      figure: `sync getEnv round trip (a new name each call) / ${name}`,
      value: `${us(ours.median)} / ${us(base.median)} = **${fmt(r, 2)}×** (p99 ${fmt(ratio(ours.p99, base.p99), 2)}×)`,
      target: `≤ ${target}×`,
      met: r <= target,
    });
  };
  against('raw', 1.3, 'the limit (raw Rust)');
  against('ipc', 0.75, 'Node child_process IPC');
  against('vp', 0.5, 'upstream under vp run');

  const fifo = paths.fifo;
  if (fifo && paths.raw) {
    const r = ratio(fifo.median, paths.raw.median);
    rows.push({
      figure: 'sync getEnv round trip over FIFOs / the limit (raw Rust socket)',
      value: `${us(fifo.median)} / ${us(paths.raw.median)} = **${fmt(r, 2)}×** (p99 ${fmt(ratio(fifo.p99, paths.raw.p99), 2)}×)`,
      target: '≤ 1.3×',
      met: r <= 1.3,
    });
  }
  if (f.connect) {
    const socket = stats(f.connect.socket);
    const overFifo = stats(f.connect.fifo);
    rows.push({
      figure: 'connect + first answer in a fresh tool (addon already open)',
      value: `socket **${fmt(socket.median / 1000, 3)} ms** (p99 ${fmt(socket.p99 / 1000, 3)}), FIFOs **${fmt(overFifo.median / 1000, 3)} ms** (p99 ${fmt(overFifo.p99 / 1000, 3)})`,
      target: '≤ 0.3 ms',
      met: socket.median <= 300 && overFifo.median <= 300,
    });
  }
  if (f.closeStall) {
    const c = f.closeStall;
    rows.push({
      figure: `runner: longest event-loop stall while close() hands over ${c.paths.toLocaleString('en-US')} paths`,
      value: `**${fmt(c.maxStallMs, 1)} ms** (close() took ${fmt(c.closeMs, 0)} ms; ${c.received.toLocaleString('en-US')} of ${c.paths.toLocaleString('en-US')} paths received)`,
      target: '≤ 20 ms, every path received',
      met: c.maxStallMs <= 20 && c.received === c.paths,
    });
  }

  const dedupe = stats(f.dedupe);
  const dedupeApi = stats(f.dedupeApi);
  rows.push({
    figure: 'repeated getEnv of a name already answered (dedupe)',
    value: `**${us(dedupe.median)}** per call through load() (p99 ${us(dedupe.p99)}); ${us(dedupeApi.median)} through the tool API`,
    target: '≤ 0.3 µs',
    met: dedupe.median <= 0.3 && dedupeApi.median <= 0.3,
  });

  const report = stats(f.report.samples);
  const perSecond = f.report.calls / (f.report.elapsedUs / 1e6);
  rows.push({
    figure: 'fire-and-forget reports (ignoreInput) from one thread',
    value: `**${Math.round(perSecond).toLocaleString('en-US')} / s**, per call median ${us(report.median)}, p99 ${us(report.p99)}, p99.9 **${us(report.p999)}**, max ${us(report.max)}`,
    target: '≥ 300,000 / s, p99.9 ≤ 20 µs',
    met: perSecond >= 300_000 && report.p999 <= 20,
  });

  if (f.reportFifo) {
    const overFifo = stats(f.reportFifo.samples);
    const fifoPerSecond = f.reportFifo.calls / (f.reportFifo.elapsedUs / 1e6);
    rows.push({
      figure: 'fire-and-forget reports over FIFOs',
      value: `**${Math.round(fifoPerSecond).toLocaleString('en-US')} / s** (sockets: ${Math.round(perSecond).toLocaleString('en-US')} / s), per call median ${us(overFifo.median)}, p99.9 ${us(overFifo.p999)}`,
      target: 'as the socket',
      met: null,
    });
  }

  const { single, many } = f.concurrent;
  const share = many.perSecond / single.perSecond;
  const answered = many.wrong === 0 && many.calls === many.clients * (many.calls / many.clients) && many.errors === 0;
  rows.push({
    figure: '8 worker threads + 8 child processes calling getEnv at once',
    value: `${many.calls.toLocaleString('en-US')} calls, ${many.wrong} wrong or missing; ${Math.round(many.perSecond).toLocaleString('en-US')} / s against ${Math.round(single.perSecond).toLocaleString('en-US')} / s for one client = **${Math.round(share * 100)}%**`,
    target: 'every call answered, ≥ 70%',
    met: answered && share >= 0.7,
  });

  const startup = stats(f.startup.runner.map((r) => r.totalMs));
  const importOnly = stats(f.startup.runner.map((r) => r.importMs));
  const firstCall = stats(f.startup.runner.map((r) => r.firstCallMs));
  const dlopen = stats(f.startup.runner.map((r) => r.dlopenMs));
  const warm = stats(f.startup.warm.map((r) => r.totalMs));
  const allAnswered = [...f.startup.runner, ...f.startup.warm].every((r) => r.answered);
  rows.push({
    figure: 'tool start-up: import + first call through a runner',
    value: `**${fmt(startup.median, 2)} ms** median in a fresh process (import ${fmt(importOnly.median, 2)} ms + first call ${fmt(firstCall.median, 2)} ms, of which opening the addon ${fmt(dlopen.median, 2)} ms; p99 ${fmt(startup.p99, 2)} ms); **${fmt(warm.median, 2)} ms** in a tool that has started (module loader warm, Node's builtins loaded)`,
    target: '≤ 1.2 ms',
    met: allAnswered && startup.median <= 1.2,
  });

  // Each process's import + calls, ours against the empty functions', the two
  // taking turns: the ratio of the medians.
  const outsideTotal = stats(f.startup.outside.map((r) => r.importMs + r.callsMs));
  const outsideImport = stats(f.startup.outside.map((r) => r.importMs));
  const outsideCalls = stats(f.startup.outside.map((r) => r.callsMs));
  const floorTotal = stats(f.startup.floor.map((r) => r.importMs + r.callsMs));
  const floorImport = stats(f.startup.floor.map((r) => r.importMs));
  const floorCalls = stats(f.startup.floor.map((r) => r.callsMs));
  const outsideRatio = ratio(outsideTotal.median, floorTotal.median);
  const natives = Math.max(...f.startup.outside.map((r) => r.nativeLoads));
  rows.push({
    figure: 'tool outside a runner: import + 1,000 calls / the same into empty functions',
    value: `${fmt(outsideTotal.median, 2)} ms / ${fmt(floorTotal.median, 2)} ms = **${fmt(outsideRatio, 2)}×** (import ${fmt(outsideImport.median, 2)} ms against ${fmt(floorImport.median, 2)} ms; the calls ${fmt(outsideCalls.median * 1000, 0)} µs against ${fmt(floorCalls.median * 1000, 0)} µs); native modules loaded: ${natives}`,
    target: '≤ 1.5×, no native module',
    met: outsideRatio <= 1.5 && natives === 0,
  });

  const cycle = stats(f.serverCycle.times);
  const tmpfs = f.serverCycleTmpfs ? stats(f.serverCycleTmpfs.times) : null;
  rows.push({
    figure: 'runner: createServer + close() with no clients',
    value:
      `**${fmt(cycle.median / 1000, 3)} ms** median, p99 ${fmt(cycle.p99 / 1000, 3)} ms, socket directory under ${f.serverCycle.dir}` +
      (tmpfs ? `; **${fmt(tmpfs.median / 1000, 3)} ms** (p99 ${fmt(tmpfs.p99 / 1000, 3)} ms) with TMPDIR on tmpfs (${f.serverCycleTmpfs.dir})` : ''),
    target: '≤ 0.3 ms',
    met: cycle.median <= 300,
  });

  const m = f.memory;
  const growth = (m.after.rss - m.before.rss) / m.before.rss;
  const mib = (bytes) => `${fmt(bytes / (1 << 20), 1)} MiB`;
  rows.push({
    figure: `runner memory: ${m.cycles.toLocaleString('en-US')} createServer/close cycles (after ${m.warmup.toLocaleString('en-US')} to warm up)`,
    value: `RSS ${mib(m.before.rss)} → ${mib(m.after.rss)} (**${growth >= 0 ? '+' : ''}${fmt(growth * 100, 1)}%**), fds ${m.before.fds} → ${m.after.fds}, leftover directories ${m.leftoverDirs}`,
    target: 'RSS within 5%, no leaked fds or directories',
    met: Math.abs(growth) <= 0.05 && m.after.fds <= m.before.fds && m.leftoverDirs === 0,
  });

  const t = f.trace;
  let trace = null;
  if (t) {
    const median = (xs) => stats(xs).median;
    const untraced = median(t.untraced);
    const overhead = (xs) => median(xs) / untraced - 1;
    const pct = (x) => `${x >= 0 ? '+' : ''}${fmt(x * 100, 1)}%`;
    trace = { ...t, untracedCpu: untraced, preloadOverhead: overhead(t.preload), seccompOverhead: overhead(t.seccomp) };
    const cpu = (xs) => `${fmt(median(xs) * 1000, 0)} ms`;
    rows.push({
      figure: `traced \`vite build\` (${t.modules} modules, under a runner-aware server), preload mode: CPU time of the process tree`,
      value: `**${pct(trace.preloadOverhead)}** (${cpu(t.preload)} against ${cpu(t.untraced)} under the same server untraced, medians of ${t.rounds})`,
      target: '≤ 5% overhead',
      met: trace.preloadOverhead <= 0.05,
    });
    rows.push({
      figure: `traced \`vite build\`, whole-tree seccomp mode: CPU time`,
      value: `**${pct(trace.seccompOverhead)}** (${cpu(t.seccomp)})`,
      target: '≤ 20% overhead',
      met: trace.seccompOverhead <= 0.2,
    });
    const c = t.completeness;
    rows.push({
      figure: 'preload-mode trace against `strace -f` (paths under the app and node_modules)',
      value: c ? `**${c.missed.length} missed** of ${c.strace.toLocaleString('en-US')}; trace ${c.complete ? 'complete' : `incomplete (${c.incomplete.join('; ')})`}` : 'strace not available',
      target: 'misses only what it reports as unseen',
      met: c ? c.missed.length === 0 || !c.complete : null,
    });
    const hits = stats(t.runner.hits.map((h) => h.ms));
    const allHits = t.runner.hits.every((h) => h.status === 'cache hit');
    rows.push({
      figure: 'reference runner, zero configuration: a hit on that app (restores dist)',
      value: `**${fmt(hits.median, 0)} ms** median (${allHits ? 'every run a hit' : `not all hits: ${t.runner.hits.map((h) => h.status).join('; ')}`}; the untraced build takes ${fmt(stats(t.runner.buildMs).median, 0)} ms)`,
      target: 'a hit, faster than the build',
      met: allHits && hits.median < stats(t.runner.buildMs).median,
    });
    const s = t.closeStall;
    rows.push({
      figure: `runner: longest event-loop stall while close() reads a traced task's ${s.paths.toLocaleString('en-US')} paths`,
      value: `**${fmt(s.maxStallMs, 1)} ms** (close() took ${fmt(s.closeMs, 0)} ms; ${s.received.toLocaleString('en-US')} of ${s.paths.toLocaleString('en-US')} paths in the trace)`,
      target: '≤ 20 ms, every path in the trace',
      met: s.maxStallMs <= 20 && s.received === s.paths,
    });
  }

  const c = f.cache;
  if (c) {
    const median = (xs) => stats(xs).median;
    const ms = (x) => `${fmt(x, 0)} ms`;
    for (const [name, w] of [[`\`vite build\` (${c.vite.modules} modules, ${c.vite.inputs} inputs)`, c.vite], [`a ${c.tree.files.toLocaleString('en-US')}-file output tree (${c.tree.inputs.toLocaleString('en-US')} inputs)`, c.tree]]) {
      const hit = median(w.hit) / median(w.floor);
      const store = median(w.store) / median(w.plain);
      const throughput = w.archive.tarZstdMs / w.archive.ms;
      rows.push({
        figure: `cache store, ${name}: a hit (a runner process: look up, restore the deleted output) against a Node process that stats every input and copies the output`,
        value: `**${fmt(hit, 2)}×** (${ms(median(w.hit))} against ${ms(median(w.floor))}, medians of ${c.rounds})`,
        target: '≤ 1.3×',
        met: hit <= 1.3,
      });
      rows.push({
        figure: `cache store, ${name}: a run that stores (tracing on, empty cache and stat cache) against the plain build`,
        value: `**${fmt(store, 2)}×** (${ms(median(w.store))} against ${ms(median(w.plain))})`,
        target: '≤ 1.15×',
        met: store <= 1.15,
      });
      rows.push({
        figure: `cache store, ${name}: archiving the output (${fmt(w.archive.bytes / 1e6, 1)} MB, digests and checks included) against \`tar | zstd -3\``,
        value: `**${fmt(throughput * 100, 0)}%** of its throughput (${ms(w.archive.ms)} against ${ms(w.archive.tarZstdMs)})`,
        target: '≥ 70%',
        met: throughput >= 0.7,
      });
    }
  }

  const mutation = f.mutation;
  if (mutation) {
    const sum = (key) => mutation.reduce((total, row) => total + row[key], 0);
    const projects = mutation.length;
    const cleanHits = mutation.filter((row) => row['clean checkout hit']).length;
    const unrelatedHits = mutation.filter((row) => row['unrelated file hit']).length;
    const mutations = sum('mutations');
    const restored = sum('restored hits');
    const stale = sum('stale');
    rows.push({
      figure: `zero-config hit rate, the mutation suite (${mutation.map((row) => row.project).join('; ')}): a clean checkout, an unrelated new file, and each of ${mutations} mutated inputs restored must hit; every mutation must miss`,
      value: `**${restored} / ${mutations}** restored hits, clean checkout **${cleanHits} / ${projects}**, unrelated file **${unrelatedHits} / ${projects}**; misses ${sum('misses')} / ${mutations}, stale ${stale}`,
      target: 'all hits, no stale result',
      met: restored === mutations && cleanHits === projects && unrelatedHits === projects && sum('misses') === mutations && stale === 0,
    });
  }

  const r = f.repo;
  if (r) {
    const ratio = stats(r.lookupMs).median / stats(r.gitStatusMs).median;
    rows.push({
      figure: `repository key (where nothing traces): a look-up on a ${r.files.toLocaleString('en-US')}-file git repository against \`git status\` of the same tree`,
      value: `**${fmt(ratio, 2)}×** (${fmt(stats(r.lookupMs).median, 0)} ms against ${fmt(stats(r.gitStatusMs).median, 0)} ms, medians of ${r.lookupMs.length})`,
      target: '≤ 2×',
      met: ratio <= 2,
    });
  }

  return {
    syscalls: results.syscalls ?? null,
    meta: {
      command: results.smoke ? 'node bench/run.mjs --smoke' : 'npm run bench',
      smoke: results.smoke,
      pinned: results.pinned,
      machine: results.machine,
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      load: [results.loadBefore, results.loadAfter],
      frames: results.frames,
      rounds: results.rounds,
      notes: results.notes,
      files: results.files,
      histogram: HIST,
    },
    paths,
    rows,
    figures: {
      dedupe,
      dedupeApi,
      report: { ...report, perSecond },
      concurrent: f.concurrent,
      startup: {
        total: startup,
        import: importOnly,
        firstCall,
        dlopen,
        warm,
        outsideTotal,
        outsideImport,
        outsideCalls,
        floorTotal,
        floorImport,
        floorCalls,
        outsideRatio,
        nativeLoads: natives,
      },
      serverCycle: cycle,
      serverCycleTmpfs: tmpfs,
      memory: { ...m, growth },
      trace,
      cache: c ?? null,
      repo: r ?? null,
      mutation: mutation ?? null,
    },
  };
}

const MARK = { true: '✅ met', false: '❌ not met', null: '— not measured' };

/** The Markdown page (or only the tables, for the terminal). */
export function renderMarkdown(summary, { tableOnly = false } = {}) {
  const { meta, paths, rows } = summary;
  const lines = [];
  const table = () => {
    lines.push('| figure | measured | target | |', '| --- | --- | --- | --- |');
    for (const row of rows) lines.push(`| ${row.figure} | ${row.value} | ${row.target} | ${MARK[row.met]} |`);
    lines.push('');
    lines.push('| round trip | median | p99 | p99.9 | runner-aware ÷ this |', '| --- | ---: | ---: | ---: | ---: |');
    for (const { key, label } of PATHS) {
      const p = paths[key];
      if (!p) continue;
      lines.push(`| ${label} | ${us(p.median)} | ${us(p.p99)} | ${us(p.p999)} | ${fmt(paths.ours.median / p.median, 2)}× |`);
    }
    lines.push('');
    const sys = summary.syscalls;
    if (sys) {
      const names = [...new Set([...Object.keys(sys.ours), ...Object.keys(sys.raw ?? {})])].sort(
        (a, b) => (sys.ours[b] ?? 0) - (sys.ours[a] ?? 0) || a.localeCompare(b),
      );
      const total = (counts) => Object.values(counts ?? {}).reduce((x, y) => x + y, 0);
      lines.push(
        `Syscalls per round trip, both processes together (\`strace -f -c\`, ${sys.iterations.toLocaleString('en-US')} round trips minus a run of none):`,
        '',
        '| syscall | runner-aware | the limit (raw Rust) |',
        '| --- | ---: | ---: |',
      );
      for (const name of names) lines.push(`| ${name} | ${sys.ours[name] ?? 0} | ${sys.raw ? (sys.raw[name] ?? 0) : 'n/a'} |`);
      lines.push(`| **all** | **${fmt(total(sys.ours), 2)}** | **${sys.raw ? fmt(total(sys.raw), 2) : 'n/a'}** |`, '');
    }
  };
  if (tableOnly) {
    table();
    return lines.join('\n');
  }
  lines.push('# Benchmarks', '');
  lines.push(
    `Measured by \`${meta.command}\` on ${meta.date}: ${meta.machine}. ` +
      (meta.pinned
        ? 'The whole suite ran as one process tree pinned to CPU 0 (`taskset -c 0`), so every process of a round trip shares one CPU and every ratio compares paths measured in the same run. '
        : 'taskset was not available: the suite ran **unpinned**. ') +
      `Load average ${fmt(meta.load[0], 2)} before, ${fmt(meta.load[1], 2)} after. ` +
      'On a shared VM like this one, back-to-back runs move medians by up to about 10%, so a figure within that distance of its target can land on either side of it from one run to the next.',
    '',
  );
  lines.push(
    `Every round trip moves the same bytes: a ${meta.frames.request}-byte getEnv request frame for a name the runner does not have and its ${meta.frames.answer}-byte answer (4-byte length + JSON). ` +
      `Samples: ${paths.ours?.count.toLocaleString('en-US')} round trips per path, each timed on its own, in ${meta.rounds} round(s) per path taking turns, each round a fresh process pair after a warm-up.`,
    '',
  );
  for (const note of meta.notes) lines.push(`> ${note}`, '');
  lines.push('![Round-trip latency per path](benchmarks.svg)', '');
  table();
  lines.push(...analysis(summary));
  lines.push(...METHOD);
  return lines.join('\n');
}

/**
 * Where the time goes for each target this run did not meet, from this run's
 * own figures plus the profiles the text names.
 */
function analysis(summary) {
  const { paths, figures, rows, syscalls } = summary;
  const out = ['## Where the time goes', ''];
  const missed = (start) => rows.find((r) => r.figure.startsWith(start))?.met === false;
  const ours = paths.ours;
  if (ours && paths.raw && missed('sync getEnv round trip (a new name each call) / the limit')) {
    const floor = paths.tokio ? paths.tokio.median / paths.raw.median : NaN;
    const sys = syscalls ? Object.values(syscalls.ours).reduce((a, b) => a + b, 0) : NaN;
    const rawSys = syscalls?.raw ? Object.values(syscalls.raw).reduce((a, b) => a + b, 0) : NaN;
    out.push(
      `**getEnv round trip against the limit.** The blocking ping-pong is two processes each blocked in \`read\`, woken straight into it: ${fmt(rawSys, 0)} syscalls and two context switches per round trip. ` +
        `The design puts the runner's side on a shared background runtime (a server costs a socket, not a thread), so the runner's thread waits in \`epoll_wait\` and then reads: ${fmt(sys, 2)} syscalls per round trip in this run (table above; the extra one is \`epoll_wait\`, one per request: connections are registered for reads only, so the tool's read of an answer no longer wakes the runner for write space). ` +
        `The same ping-pong with only that change, a tokio task answering with the same read-only registration, costs **${fmt(floor, 2)}×** the limit in this run (\`raw Rust, tokio peer\`): that is the floor of this design on this VM, where a syscall and a wake-up are dear. ` +
        `runner-aware's remaining ${fmt(ours.median - (paths.tokio?.median ?? NaN), 1)} µs above that floor is the work a real request needs, with no single hot spot in a perf profile of a build with symbols: JSON encode and decode on both sides, recording the name in the run's sorted env map and in the client's answer cache, and tokio's task wake. Closing the gap to the limit itself would take a runner thread blocked in \`read\` on each connection, which the design rules out (a server costs a socket, not a thread). ` +
        'The Node side costs nothing measurable: a Rust client calling `Client::get_env` in a loop measured the same medians as the Node tool through `load()`.',
      '',
    );
  }
  if (missed('fire-and-forget')) {
    out.push(
      '**Fire-and-forget reports on one CPU.** Each report is one `sendto` by the tool (the design returns once the bytes are in the kernel), so the tool pays a syscall per call; the runner wakes about once per six reports and drains them in one read, and both share the one CPU, so throughput is the sum of the two sides\' work. ' +
        'The p99.9 is the runner\'s turn landing on one call: when the scheduler leaves the runner off the CPU long enough, the kernel\'s default send buffer (208 KiB, about 270 small frames at ~770 bytes of accounting each) fills, the tool blocks, and that call waits while the runner records the whole backlog (a few hundred µs). ' +
        'Measured alongside: with a 4 MiB socket buffer (sysctl `net.core.wmem_default`) the p99.9 fell to 36–110 µs; unpinned, with the runner free to run on the other CPU, the same loop did 520,000–550,000 reports/s with a p99.9 of 16–21 µs. Both parts of the target hold once the runner is not sharing the tool\'s CPU; pinned to one, a p99.9 of 20 µs would need the runner to run in turns shorter than 20 µs without taking more of the CPU, which one CPU cannot give.',
      '',
    );
  }
  if (missed('8 worker threads')) {
    out.push(
      '**Many callers at once.** Worker threads of one process share its one connection (the design: one connection per process, one answer cache); a thread that finds the channel busy leaves its names for the holder, so threads calling at once share a round trip, but every hand-over of the channel lock is still a futex wake and a context switch on one CPU. Child processes each make their own round trips, and with seventeen runnable tasks on one CPU each round trip waits its turn behind the others\' switches. The single client measured here is already at the round-trip figure above, so the ratio is against the fastest case.',
      '',
    );
  }
  const files = summary.meta.files ?? {};
  const kb = (bytes) => (bytes ? `${fmt(bytes / 1024, 1)} KB` : 'n/a');
  const mb = (bytes) => (bytes ? `${fmt(bytes / (1 << 20), 1)} MB` : 'n/a');
  if (missed('tool start-up')) {
    const s = figures.startup;
    out.push(
      `**Tool start-up.** In a fresh process: import ${fmt(s.import.median, 2)} ms, first call ${fmt(s.firstCall.median, 2)} ms. ` +
        `The import: an ES module of six empty functions takes ${fmt(s.floorImport.median, 2)} ms in this run (the loader's cost for any file); the rest is V8 compiling the ${kb(files.toolBundle)} tool bundle, which holds the tool API and the env glob syntax check only (the runner side and the cache helpers are \`runner-aware/runner\`) and imports no Node builtin (\`node:path\` and \`node:module\` load on first use). ` +
        `The first call opens the ${mb(files.addon)} addon (\`process.dlopen\` ${fmt(s.dlopen.median, 2)} ms: mapping, relocations, napi registration), then connects, handshakes and makes one round trip (${fmt(s.firstCall.median - s.dlopen.median, 2)} ms, compiling the call's JavaScript included). ` +
        `A 1.2 ms total leaves the first call ${fmt(1.2 - s.import.median, 2)} ms after this import: the addon's load and the handshake are where the rest must come from. ` +
        'Not in these figures: the import loads neither `node:crypto` (3.5 ms of OpenSSL start-up; loaded at the first hash) nor the `node:fs` ES facade (1.3 ms); the addon is opened with `process.dlopen`, not a first `require` from ESM (0.7 ms more); and the addon starts no thread while it loads. ' +
        `In a tool that has started (its loader warm, Node's builtins loaded) the total is ${fmt(s.warm.median, 2)} ms.`,
      '',
    );
  }
  if (missed('tool outside a runner')) {
    const s = figures.startup;
    out.push(
      `**Outside a runner.** The import costs ${fmt((s.outsideImport.median - s.floorImport.median) * 1000, 0)} µs more than the empty functions' module: V8 compiling the ${kb(files.toolBundle)} bundle. ` +
        `The thousand calls are the process's first calls of these functions, so V8 runs them in its interpreter and compiles each function on its first call; runner-aware's cost ${fmt((s.outsideCalls.median - s.floorCalls.median) * 1000, 0)} µs more than the empty ones (those compiles, the first read of \`process.env\`, and the argument checks; every call returns at its first \`addon === null\` test), and no native module is loaded.`,
      '',
    );
  }
  if (missed('runner: createServer')) {
    const tmpfs = figures.serverCycleTmpfs;
    out.push(
      '**Server start and stop.** A server makes a private directory, binds a socket in it, and at close removes both; on an ext4 temp dir those five filesystem calls alone take ~0.2 ms on this VM (measured with a bare loop of the same calls)' +
        (tmpfs ? `, and the same cycle with TMPDIR on tmpfs takes ${fmt(tmpfs.median / 1000, 3)} ms.` : '.'),
      '',
    );
  }
  if (out.length === 2) out.push('Every target was met in this run.', '');
  return out;
}

/** How each figure is taken; stays with the table so a reader can judge it. */
const METHOD = [
  '## How each figure is taken',
  '',
  '- **Round trips** (`bench/tool-loop.cjs getenv`), every path in the same number of rounds, taking turns, so that a change in the machine\'s load lands on all of them alike: a tool process calls `require(VP_RUN_NODE_CLIENT_PATH).load().getEnv(name)` with a new name each call, the contract stock Vite uses, timing each call with `performance.now()`. Under runner-aware the runner is `createServer()` in the bench process; under vite-plus it is `vp run --cache` (vp on Node 22 from the npm registry, the tool loop on the same Node as ours).',
  '- **The limit** (`bench/raw-pingpong`): a Rust program and a child of it exchange the same frame sizes over a Unix socket with one blocking write and one read per side per round trip. With `--tokio` the child answers from a task on a current-thread tokio runtime on a background thread, registered for reads only, the shape of runner-aware\'s server doing none of its work: what the async design itself costs.',
  '- **Node baselines** (`bench/node-ipc.mjs`, `bench/node-net.mjs`): `fork` + `process.send` with the same JSON objects; a `net` Unix-socket server and client with the same framing.',
  '- **Dedupe** (`tool-loop.cjs dedupe`): the same name again after its first answer, timed over batches of 1,000 calls; once through the addon’s `load()` object and once through the `runner-aware` tool API.',
  '- **Reports** (`tool-loop.cjs report`): `ignoreInput` with a new absolute path each call, each call timed; throughput is calls ÷ the loop’s wall time, server work included (it shares the CPU).',
  '- **Concurrency** (`bench/concurrent.cjs`): 8 worker threads of one process and 8 child processes, each asking for its own names (which the runner holds), released together after each connected; every answer is checked. Throughput is all calls ÷ the time from the first start to the last finish, against one child process alone, the two taking turns for the same number of rounds as the round trips; the median round of each counts, and every call of every round must have been answered.',
  '- **Start-up** (`bench/startup.mjs`): inside a fresh tool process, `await import(\'runner-aware\')` (the tool entry, `dist/index.mjs`) and the first `getEnv` (addon load, timed apart, then connect, handshake, round trip); again in a process that already imported Node\'s common builtins and one module of its own, as a tool has by the time it reaches its config. Outside a runner: the same import, then 1,000 calls across the API (200 rounds of getEnv, getEnvs, ignoreInput, addValue, disableCache) with no runner env and `process.dlopen` counted, in turns with the same import and loop into `bench/noop-api.mjs` (empty functions of the same names); the figure is the ratio of the two medians of import + calls.',
  '- **Runner** (`bench/server-cycles.mjs`): `createServer()` then `await close()` with no clients, its default env a snapshot of `process.env`, in a child whose `TMPDIR` is a fresh directory under the system temp dir (and again under /dev/shm, to show what the temp dir\'s filesystem costs); memory after a warm-up against the end of the cycles (the warm-up covers V8 optimizing the loop, a one-off ~4 MB of RSS around the 500th–1,000th cycle that does not appear with `--no-opt --no-maglev`), fds from `/proc/self/fd`, leftovers in that `TMPDIR`.',
  '',
];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The latency picture: one density ridge per path on a shared log axis. */
export function renderSvg(summary) {
  const { paths, meta } = summary;
  const shown = PATHS.filter(({ key }) => paths[key]);
  const { lo, hi, bins } = meta.histogram;
  // The axis spans the fastest sample to the slowest p99, on 1-2-5 steps;
  // a p99 beyond it is marked at the edge with its value.
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
  const low = Math.min(...shown.map(({ key }) => paths[key].min));
  const high = Math.max(...shown.map(({ key }) => paths[key].p99));
  const x0 = [...steps].reverse().find((s) => s <= low) ?? lo;
  const x1 = steps.find((s) => s >= high) ?? hi;
  const width = 960;
  const left = 250;
  const right = 40;
  const top = 92;
  const rowHeight = 78;
  const plotWidth = width - left - right;
  const height = top + shown.length * rowHeight + 70;
  const x = (v) => left + (Math.log(Math.min(Math.max(v, x0), x1) / x0) / Math.log(x1 / x0)) * plotWidth;
  const binEdge = (i) => lo * Math.exp((i / bins) * Math.log(hi / lo));

  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="32" y="38" font-size="21" font-weight="650" fill="#212529">Round-trip latency of one getEnv-sized request, per path</text>`,
    `<text x="32" y="62" font-size="13" fill="#6c757d">${esc(`${paths.ours.count.toLocaleString('en-US')} round trips each, one CPU (taskset -c 0), log scale · ● median · ▏p99 · ${meta.date.slice(0, 10)}`)}</text>`,
  );
  for (const s of steps.filter((s) => s >= x0 && s <= x1)) {
    out.push(
      `<line x1="${x(s).toFixed(1)}" x2="${x(s).toFixed(1)}" y1="${top - 8}" y2="${top + shown.length * rowHeight}" stroke="#e9ecef" stroke-width="1"/>`,
      `<text x="${x(s).toFixed(1)}" y="${top + shown.length * rowHeight + 22}" font-size="12" fill="#495057" text-anchor="middle">${s} µs</text>`,
    );
  }
  shown.forEach(({ key, label, note, color }, row) => {
    const p = paths[key];
    const base = top + (row + 1) * rowHeight - 14;
    // A light 3-bin smoothing keeps the shape and hides bin noise.
    const h = p.histogram;
    const smooth = h.map((_, i) => ((h[i - 1] ?? 0) + 2 * h[i] + (h[i + 1] ?? 0)) / 4);
    const peak = Math.max(...smooth) || 1;
    const points = [];
    for (let i = 0; i < bins; i++) {
      const mid = Math.sqrt(binEdge(i) * binEdge(i + 1));
      if (mid < x0 || mid > x1) continue;
      points.push([x(mid), base - (smooth[i] / peak) * (rowHeight - 20)]);
    }
    if (points.length > 0) {
      const line = points.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join(' ');
      const area = `${line} L${points[points.length - 1][0].toFixed(1)},${base} L${points[0][0].toFixed(1)},${base} Z`;
      out.push(
        `<path d="${area}" fill="${color}" fill-opacity="${key === 'ours' ? 0.3 : 0.16}"/>`,
        `<path d="${line}" fill="none" stroke="${color}" stroke-width="${key === 'ours' ? 2.2 : 1.6}" stroke-linejoin="round"/>`,
      );
    }
    out.push(`<line x1="${left}" x2="${width - right}" y1="${base}" y2="${base}" stroke="#ced4da" stroke-width="1"/>`);
    out.push(
      `<text x="32" y="${base - 30}" font-size="15" font-weight="${key === 'ours' ? 700 : 600}" fill="${color}">${esc(label)}</text>`,
      `<text x="32" y="${base - 12}" font-size="12" fill="#868e96">${esc(note)}</text>`,
    );
    const mx = x(p.median);
    const px99 = x(p.p99);
    // Near the right edge the label goes left of its tick.
    const p99Label = p.p99 > x1 ? `p99 ${fmt(p.p99, 0)} µs →` : `p99 ${fmt(p.p99)}`;
    const p99Right = px99 > width - right - 90;
    out.push(
      `<line x1="${px99.toFixed(1)}" x2="${px99.toFixed(1)}" y1="${base - 14}" y2="${base + 2}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${(p99Right ? px99 - 5 : px99 + 5).toFixed(1)}" y="${base - 4}" font-size="11" fill="${color}" text-anchor="${p99Right ? 'end' : 'start'}">${esc(p99Label)}</text>`,
      `<circle cx="${mx.toFixed(1)}" cy="${base}" r="4.5" fill="${color}" stroke="#fff" stroke-width="1.5"/>`,
      `<text x="${mx.toFixed(1)}" y="${base + 15}" font-size="12" font-weight="650" fill="#212529" text-anchor="middle">${fmt(p.median)} µs</text>`,
    );
  });
  const foot = top + shown.length * rowHeight + 48;
  out.push(`<text x="32" y="${foot}" font-size="12" fill="#868e96">${esc(meta.machine)}</text>`);
  out.push('</svg>', '');
  return out.join('\n');
}
