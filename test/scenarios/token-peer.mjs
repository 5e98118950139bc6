// A raw peer that has the token (unless `mode` is `no-token`) and then breaks
// the protocol in one way, without going through the client.
// argv: <socket> <token> <mode>; modes:
//   protocol-error  a welcome, then a frame that is not JSON
//   version         a hello asking for protocol version 99 only
//   cut-off         a welcome, one report, then 10 bytes of a 100-byte frame and EOF
//   long-glob       a welcome, then getEnvs with a 200,000-byte glob, waiting for the answer
//   no-token        a hello with a wrong token, then a report
// Prints the server's answers as JSON lines, then exits.
import { connect } from './raw-peer.mjs';

const [socketPath, token, mode] = process.argv.slice(2);

function frame(message) {
  const body = Buffer.from(typeof message === 'string' ? message : JSON.stringify(message));
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length);
  return Buffer.concat([header, body]);
}

const hello = (fields = {}) => frame({ op: 'hello', minVersion: 1, maxVersion: 2, token, pid: process.pid, ...fields });

const socket = connect(socketPath);
let buffered = Buffer.alloc(0);
const waiting = [];
socket.on('data', (chunk) => {
  buffered = Buffer.concat([buffered, chunk]);
  while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32LE(0)) {
    const length = buffered.readUInt32LE(0);
    const answer = JSON.parse(buffered.subarray(4, 4 + length).toString());
    buffered = buffered.subarray(4 + length);
    process.stdout.write(`${JSON.stringify(answer)}\n`);
    waiting.shift()?.(answer);
  }
});
socket.on('error', () => {});
const closed = new Promise((resolve) => socket.on('close', resolve));
/** The next answer, or `null` once the server hung up. */
const answer = () => Promise.race([new Promise((resolve) => waiting.push(resolve)), closed.then(() => null)]);

await new Promise((resolve) => socket.on('connect', resolve));
if (mode === 'no-token') {
  socket.write(hello({ token: '0'.repeat(32) }));
  await answer();
  socket.end(frame({ op: 'ignoreInput', path: '/no-token' }));
} else if (mode === 'version') {
  socket.write(hello({ minVersion: 99, maxVersion: 99 }));
  await answer();
  socket.end();
} else {
  socket.write(hello());
  const welcome = await answer();
  if (welcome?.op !== 'welcome') throw new Error(`no welcome: ${JSON.stringify(welcome)}`);
  if (mode === 'protocol-error') {
    socket.end(Buffer.concat([frame({ op: 'ignoreInput', path: '/before' }), frame('this is not JSON')]));
  } else if (mode === 'cut-off') {
    const header = Buffer.alloc(4);
    header.writeUInt32LE(100);
    socket.end(Buffer.concat([frame({ op: 'ignoreInput', path: '/before' }), header, Buffer.alloc(10, 0x20)]));
  } else if (mode === 'long-glob') {
    socket.write(frame({ op: 'getEnvs', query: { glob: '*a'.repeat(100_000) }, tracked: true }));
    await answer();
    socket.end(frame({ op: 'ignoreInput', path: '/after' }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}
await closed;
