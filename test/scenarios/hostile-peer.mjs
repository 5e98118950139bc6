// Misbehaves on a runner's socket without going through the client: every
// kind of bad frame on its own connection, then `idle` connections that never
// send a byte and stay open until this process is killed.
// argv: <socket> <token> <idle>
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

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
  once(Buffer.concat([hello(), Buffer.from([0x10, 0, 0, 0]), randomBytes(16)])),
  once(Buffer.concat([hello(), frame(JSON.stringify({ op: 'ignoreInput', path: '/cut' })).subarray(0, 10)])),
  once(Buffer.concat([hello(), frame(JSON.stringify({ op: 'getEnv', names: 'SECRET', tracked: true }))])),
  once(Buffer.concat([hello({ token: 'f'.repeat(32) }), frame(JSON.stringify({ op: 'getEnv', names: ['SECRET'], tracked: true }))])),
  once(Buffer.concat([hello({ version: 2 }), frame(JSON.stringify({ op: 'getEnv', names: ['SECRET'], tracked: true }))])),
  once(Buffer.concat([hello(), frame(JSON.stringify({ op: 'addInput', path: '/a\u0000b' }))])),
]);
const sockets = [];
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
