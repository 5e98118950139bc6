// A runner that ends with its server still open. argv: <how>:
//   exit     process.exit(3) when a line arrives on stdin
//   throw    an uncaught exception when a line arrives on stdin
//   signal   waits to be signalled, with no handler of its own
//   handler  its own SIGTERM handler, which prints `handled` and keeps running;
//            a line on stdin then makes it exit(0)
// Prints the socket path, then `ready` once it is waiting.
import { createServer } from 'runner-aware/runner';

const how = process.argv[2];
const server = await createServer();
process.stdout.write(`${server.socketPath}\n`);
if (how === 'handler') process.on('SIGTERM', () => process.stdout.write('handled\n'));
if (how !== 'signal') {
  process.stdin.on('data', () => {
    if (how === 'throw') throw new Error('the runner failed');
    process.exit(how === 'exit' ? 3 : 0);
  });
}
setInterval(() => {}, 1000);
process.stdout.write('ready\n');
