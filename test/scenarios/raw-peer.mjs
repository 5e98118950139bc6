// A raw connection to a runner, opened the way a tool's client opens one over
// the transport in use, for the tests and scenarios that speak the wire
// protocol by hand (hostile peers, half frames, broken handshakes).
//
// `connect(socketPath, onConnect)` stands in for `net.connect`: over the Unix
// socket it is `net.connect` itself; over named FIFOs (docs/protocol.md §3) it
// creates the client's pair `c-<id>.up` / `c-<id>.down` (mode 0600) in the
// runner's directory, opens `down` for reading, announces `<id>\n` on the
// rendezvous `r` (ENXIO: no runner reads it), opens `up` for writing (retrying
// ENXIO until the runner has opened its read end), and unlinks both names.
// The object it returns has the part of a socket's API the tests use:
// write, end, pause, resume, destroy, and the events connect, data, end,
// error and close (once the runner hung up, as a socket's is).
//
// The transport: RUNNER_AWARE_TRANSPORT=fifo or socket forces one; otherwise
// (auto) the socket when its file exists, else FIFOs when the rendezvous
// does, as the client does. Node has no mkfifo: the `mkfifo` command makes
// the pair.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, constants, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { connect as netConnect, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The transport a raw peer uses for the runner at `socketPath`: `socket` or `fifo`. */
export function rawTransport(socketPath) {
  const forced = process.env.RUNNER_AWARE_TRANSPORT;
  if (process.platform === 'win32' || forced === 'socket') return 'socket';
  if (forced === 'fifo') return 'fifo';
  return !existsSync(socketPath) && existsSync(join(dirname(socketPath), 'r')) ? 'fifo' : 'socket';
}

/** Connects to the runner at `socketPath` like `net.connect(socketPath, onConnect)`, over the transport in use. */
export function connect(socketPath, onConnect) {
  const peer = rawTransport(socketPath) === 'fifo' ? new FifoPeer(dirname(socketPath)) : netConnect(socketPath);
  if (onConnect) peer.once('connect', onConnect);
  return peer;
}

/** How long a FIFO peer waits for the runner to open its pair: the client's timeout. */
function timeoutMs() {
  const ms = Number(process.env.RUNNER_AWARE_TIMEOUT_MS?.trim() || NaN);
  return Number.isInteger(ms) && ms >= 0 ? (ms === 0 ? Infinity : ms) : 5000;
}

/** A client's pair of FIFOs, behaving like the socket a tool would hold. */
class FifoPeer extends EventEmitter {
  /** @type {Socket | null} */ up = null;
  /** @type {Socket | null} */ down = null;
  /** What was written before the pair was open. */
  pending = [];
  ended = false;
  closed = false;
  paused = false;

  constructor(dir) {
    super();
    this.open(dir).then(
      () => {
        if (this.closed) return;
        this.emit('connect');
      },
      (err) => this.fail(err),
    );
  }

  async open(dir) {
    const id = randomBytes(16).toString('hex');
    const upPath = join(dir, `c-${id}.up`);
    const downPath = join(dir, `c-${id}.down`);
    let downFd = null;
    try {
      await run('mkfifo', ['-m', '600', upPath, downPath]);
      // Non-blocking: opening for reading succeeds with no writer yet.
      downFd = openSync(downPath, constants.O_RDONLY | constants.O_NONBLOCK);
      let rendezvous;
      try {
        rendezvous = openSync(join(dir, 'r'), constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (err) {
        if (err.code === 'ENXIO') err.message = `no runner reads ${join(dir, 'r')} (ENXIO)`;
        throw err;
      }
      const deadline = Date.now() + timeoutMs();
      try {
        // One write under PIPE_BUF: announcements never interleave. EAGAIN:
        // the rendezvous is full, waited out as the client does.
        const announcement = Buffer.from(`${id}\n`);
        for (;;) {
          try {
            if (writeSync(rendezvous, announcement) !== announcement.length) throw new Error('the announcement was cut short');
            break;
          } catch (err) {
            if (err.code !== 'EAGAIN') throw err;
            if (Date.now() >= deadline) throw Object.assign(new Error("the runner's rendezvous stayed full until the timeout"), { code: 'ETIMEDOUT' });
            await sleep(1);
          }
        }
      } finally {
        closeSync(rendezvous);
      }
      let backoff = 1;
      let upFd;
      for (;;) {
        try {
          upFd = openSync(upPath, constants.O_WRONLY | constants.O_NONBLOCK);
          break;
        } catch (err) {
          if (err.code !== 'ENXIO') throw err;
        }
        if (Date.now() >= deadline) throw Object.assign(new Error("the runner did not open this client's FIFOs in time"), { code: 'ETIMEDOUT' });
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 20);
      }
      this.attach(upFd, downFd);
      downFd = null;
    } finally {
      if (downFd !== null) closeSync(downFd);
      rmSync(upPath, { force: true });
      rmSync(downPath, { force: true });
    }
  }

  attach(upFd, downFd) {
    this.down = new Socket({ fd: downFd, readable: true, writable: false });
    this.up = new Socket({ fd: upFd, readable: false, writable: true });
    if (this.closed) {
      this.down.destroy();
      this.up.destroy();
      return;
    }
    if (this.paused) this.down.pause();
    this.down.on('data', (chunk) => this.emit('data', chunk));
    this.down.on('end', () => this.emit('end'));
    // The runner's error on `down` ends the connection; on `up` (EPIPE: it
    // stopped reading) what it answered is still read to the end.
    this.down.on('error', (err) => this.fail(err));
    this.up.on('error', (err) => this.emit('error', err));
    // The runner hung up: closed, as a socket is once its peer has.
    this.down.on('close', () => this.finish());
    for (const [data, callback] of this.pending.splice(0)) this.up.write(data, callback);
    if (this.ended) this.up.end();
  }

  write(data, callback) {
    if (this.up) return this.up.write(data, callback);
    this.pending.push([data, callback]);
    return true;
  }

  end(data, callback) {
    if (typeof data === 'function') [data, callback] = [undefined, data];
    if (data !== undefined) this.write(data);
    this.ended = true;
    this.up?.end(callback);
    return this;
  }

  pause() {
    this.paused = true;
    this.down?.pause();
    return this;
  }

  resume() {
    this.paused = false;
    this.down?.resume();
    return this;
  }

  destroy() {
    this.finish();
    return this;
  }

  fail(err) {
    if (this.closed) return;
    this.emit('error', err);
    this.finish();
  }

  finish() {
    if (this.closed) return;
    this.closed = true;
    this.up?.destroy();
    this.down?.destroy();
    this.emit('close', false);
  }
}
