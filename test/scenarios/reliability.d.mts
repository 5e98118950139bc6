// Types of the reliability scenarios (reliability.mjs), which `npm run stress`
// runs with plain Node.

export declare const root: string;
export declare function frame(payload: string | Buffer): Buffer;

export declare function zeroLoss(options: { processes: number; concurrency: number; reports: number }): Promise<{
  sent: number;
  received: number;
  failedProcesses: number;
  firstFailure: { code: number | null; signal: string | null; stderr: string } | undefined;
  clients: number;
  errors: number;
  ms: number;
}>;

export declare function grandchildren(options: { children: number; reports: number }): Promise<{
  exit: number | null;
  sent: number;
  received: number;
  clients: number;
  parentValue: string | undefined;
}>;

export declare function workerBeforeExit(options: { workers: number; reports: number }): Promise<{
  exit: number | null;
  stderr: string;
  sent: number;
  received: number;
}>;

export declare function hostile(options: { idle: number; closeTimeoutMs: number }): Promise<{
  toolServed: boolean;
  leakedSecret: boolean;
  closeMs: number;
  rssGrowthMiB: number;
  errors: string[];
  realClients: number;
}>;

export declare function deadRunner(options: { calls: number }): Promise<{
  calls: number;
  ms: number;
  threw: number;
  connected: boolean;
}>;

export declare function killedMidFrame(): Promise<{ signal: string | null; kept: string[]; errors: string[] }>;

export declare function accessControl(): Promise<{
  transports: readonly string[];
  mode: string;
  ownerIsRunner: boolean;
  /** The FIFO rendezvous, when FIFOs are served. */
  rendezvous: { isFifo: boolean; mode: string; ownerIsRunner: boolean } | null;
  /** As root, what `nobody` got connecting to the socket and opening the rendezvous (`null`: not served); `result` is the first of them. */
  otherUser: { ran: boolean; result: string; socket?: string | null; rendezvous?: string | null };
  noTokenAnswer: string;
  noTokenGotSecret: boolean;
  dirRemoved: boolean;
}>;

export declare function leftoversAfterKill(): Promise<{ leftoverExists: boolean; nextServerWorks: boolean }>;

export declare function encodingEdges(): Promise<{
  nonUtf8: { tool: string; recorded: { value: string | null; tracked: boolean } } | null;
  toolExit: number | null;
  nearValueKept: boolean;
  nearPathKept: boolean;
  overValueKept: boolean;
  overPathKept: boolean;
  afterKept: boolean;
  cacheable: boolean;
  reasons: string[];
  errors: number;
}>;

export declare function nesting(): Promise<{
  exit: number | null;
  stderr: string;
  outerInputs: string[];
  innerInputs: string[] | undefined;
  outerClients: number;
  innerClients: number | undefined;
}>;
