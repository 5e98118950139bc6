// Baseline: plain Node sockets. A `net` server in this process answers a
// child that times getEnv-shaped frames (4-byte LE length + JSON, the same
// framing as runner-aware) over a Unix socket.
//
//   node node-net.mjs <iterations> <warmup> <out-file>

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

function frame(message) {
  const payload = Buffer.from(JSON.stringify(message));
  const header = Buffer.alloc(4);
  header.writeUInt32LE(payload.length);
  return Buffer.concat([header, payload]);
}

/** Calls `onFrame` with every complete frame's decoded message. */
function frames(socket, onFrame) {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const len = pending.readUInt32LE(0);
      if (pending.length < 4 + len) break;
      onFrame(JSON.parse(pending.subarray(4, 4 + len).toString()));
      pending = pending.subarray(4 + len);
    }
  });
}

const [mode] = process.argv.slice(2);
if (mode === '--client') {
  const [, socketPath, iterationsArg, warmupArg, outFile] = process.argv.slice(2);
  const [iterations, warmup] = [Number(iterationsArg), Number(warmupArg)];
  const socket = createConnection(socketPath);
  const samples = new Float64Array(iterations);
  // Callbacks rather than a promise per round trip: the tightest loop plain
  // Node sockets allow.
  let i = -warmup;
  let t0 = 0;
  const ask = () => {
    t0 = performance.now();
    socket.write(frame({ op: 'getEnv', names: [i < 0 ? `RA_BENCH_WARM_${-i}` : `RA_BENCH_${i}`], tracked: true }));
  };
  frames(socket, () => {
    if (i >= 0) samples[i] = (performance.now() - t0) * 1000;
    if (++i < iterations) ask();
    else {
      socket.end();
      writeFileSync(outFile, Buffer.from(samples.buffer));
    }
  });
  socket.once('connect', ask);
} else {
  const [iterations, warmup, outFile] = process.argv.slice(2);
  const dir = mkdtempSync(join(tmpdir(), 'ra-bench-net-'));
  const socketPath = join(dir, 's');
  const answer = frame({ op: 'env', values: [null] });
  const server = createServer((socket) => frames(socket, () => socket.write(answer)));
  await new Promise((resolve) => server.listen(socketPath, resolve));
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), '--client', socketPath, iterations, warmup, outFile],
    { stdio: 'inherit' },
  );
  const code = await new Promise((resolve) => child.on('exit', resolve));
  server.close();
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = code ?? 1;
}
