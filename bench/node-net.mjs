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
  socket.setNoDelay?.(true);
  let answered;
  frames(socket, () => answered());
  const roundTrip = (name) =>
    new Promise((resolve) => {
      answered = resolve;
      socket.write(frame({ op: 'getEnv', names: [name], tracked: true }));
    });
  await new Promise((resolve) => socket.once('connect', resolve));
  for (let i = 0; i < warmup; i++) await roundTrip(`RA_BENCH_WARM_${i}`);
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await roundTrip(`RA_BENCH_${i}`);
    samples[i] = (performance.now() - t0) * 1000;
  }
  socket.end();
  writeFileSync(outFile, Buffer.from(samples.buffer));
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
