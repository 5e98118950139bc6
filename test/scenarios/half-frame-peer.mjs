// A tool that is killed while writing a frame: three whole reports, then half
// of a fourth, then SIGKILL. argv: <socket> <token>
import { connect } from './raw-peer.mjs';

const [socketPath, token] = process.argv.slice(2);

function frame(payload) {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length);
  return Buffer.concat([header, body]);
}

const socket = connect(socketPath, () => {
  const whole = [
    frame(JSON.stringify({ op: 'hello', version: 1, token, pid: process.pid })),
    ...[1, 2, 3].map((i) => frame(JSON.stringify({ op: 'ignoreInput', path: `/kept/${i}` }))),
  ];
  const fourth = frame(JSON.stringify({ op: 'ignoreInput', path: '/lost/4' }));
  socket.write(Buffer.concat([...whole, fourth.subarray(0, 10)]), () => process.kill(process.pid, 'SIGKILL'));
});
