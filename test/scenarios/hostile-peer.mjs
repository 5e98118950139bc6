// Misbehaves on a runner's channel (its socket, or a FIFO pair under
// RUNNER_AWARE_TRANSPORT=fifo: see raw-peer.mjs) without going through the
// client: every kind of bad frame on its own connection; then 100 token-less
// peers that stall in a 1 MiB hello, a peer that never reads its answers, and
// `idle` connections that never send a byte, all open until this process is
// killed.
// argv: <socket> <token> <idle>
import { randomBytes } from 'node:crypto';
import { connect } from './raw-peer.mjs';

const [socketPath, token, idleArg] = process.argv.slice(2);
const idle = Number(idleArg);

function frame(payload) {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length);
  return Buffer.concat([header, body]);
}

const hello = (overrides = {}) => frame(JSON.stringify({ op: 'hello', version: 1, token, pid: process.pid, ...overrides }));

/** Sends `bytes`, half-closes, and resolves with whatever the server answered. */
function once(bytes) {
  return new Promise((resolve) => {
    const chunks = [];
    const socket = connect(socketPath, () => socket.end(bytes));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

const answers = await Promise.all([
  once(Buffer.from([0xff, 0xff, 0xff, 0xff])),
  once(Buffer.concat([hello(), Buffer.from([0xff, 0xff, 0xff, 0xff])])),
  once(Buffer.concat([hello(), Buffer.from([0x10, 0, 0, 0]), randomBytes(16)])),
  once(Buffer.concat([hello(), frame(JSON.stringify({ op: 'ignoreInput', path: '/cut' })).subarray(0, 10)])),
  once(Buffer.concat([hello(), frame(JSON.stringify({ op: 'getEnv', names: 'SECRET', tracked: true }))])),
  once(Buffer.concat([hello({ token: 'f'.repeat(32) }), frame(JSON.stringify({ op: 'getEnv', names: ['SECRET'], tracked: true }))])),
  once(Buffer.concat([hello({ version: 99 }), frame(JSON.stringify({ op: 'getEnv', names: ['SECRET'], tracked: true }))])),
  once(Buffer.concat([hello(), frame(JSON.stringify({ op: 'addInput', path: '/a\u0000b' }))])),
]);
const sockets = [];
// Peers without the token that start a 1 MiB hello and stall.
for (let i = 0; i < 100; i++) {
  await new Promise((resolve) => {
    const socket = connect(socketPath, () => {
      const header = Buffer.alloc(4);
      header.writeUInt32LE(1 << 20);
      socket.write(Buffer.concat([header, Buffer.alloc(64 * 1024, 0x7b)]), resolve);
    });
    socket.on('error', resolve);
    sockets.push(socket);
  });
}
// A peer with the token that sends requests and never reads the answers.
await new Promise((resolve) => {
  const socket = connect(socketPath, () => {
    const requests = Array.from({ length: 200 }, () => frame(JSON.stringify({ op: 'getEnvs', query: { glob: '*' }, tracked: false })));
    socket.write(Buffer.concat([hello(), ...requests]), resolve);
  });
  socket.on('error', resolve);
  socket.pause();
  sockets.push(socket);
});
for (let i = 0; i < idle; i++) {
  await new Promise((resolve) => {
    const socket = connect(socketPath, resolve);
    socket.on('error', () => {});
    sockets.push(socket);
  });
}
// Print whatever came back: the test checks no env value is in it.
console.log(JSON.stringify(answers));
console.log('ready');
setInterval(() => {}, 1000);
