// Types of raw-peer.mjs: a raw connection to a runner over the transport in use.

import type { EventEmitter } from 'node:events';

/** The part of a socket's API the raw peers use. */
export interface RawPeer extends EventEmitter {
  write(data: Uint8Array | string, callback?: (err?: Error | null) => void): boolean;
  end(data?: Uint8Array | string, callback?: () => void): this;
  pause(): this;
  resume(): this;
  destroy(): this;
}

/** The transport a raw peer uses for the runner at `socketPath`. */
export declare function rawTransport(socketPath: string): 'socket' | 'fifo';

/** Connects like `net.connect(socketPath, onConnect)`, over the transport in use. */
export declare function connect(socketPath: string, onConnect?: () => void): RawPeer;
