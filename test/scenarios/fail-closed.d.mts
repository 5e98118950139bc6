// Types of the fail-closed scenarios (fail-closed.mjs), which `npm run stress`
// runs with plain Node.

import type { EnvRecord, FingerprintValidation, UncacheableKind, UncacheableReason, Verdict, CommandOutcome } from '../../dist/runner.mjs';

/** Reports as runner-process.mjs prints them: the big fields as counts. */
export interface ReportsSummary {
  cacheable: boolean;
  notCacheable: UncacheableReason[];
  errors: { message: string; pid?: number }[];
  clients: number;
  clientsStillConnected: number;
  envs: Record<string, EnvRecord>;
  counts: { ignoredInputs: number; ignoredOutputs: number; inputs: number; outputs: number; values: number; valueBytes: number };
}

export interface RunnerProcess {
  env: Record<string, string>;
  socketPath: string;
  pid: number;
  hoarded: number;
  somaxconn: number | null;
  stop(): void;
  cont(): void;
  release(): Promise<{ released: true }>;
  close(): Promise<{ closeMs: number; reports: ReportsSummary }>;
  kill(): void;
}

export declare function startRunner(options?: { server?: object; hoardFds?: boolean; full?: boolean; wrap?: string[] }): Promise<RunnerProcess>;

interface Outcome {
  cacheable: boolean;
  kinds: UncacheableKind[];
  notCacheable: UncacheableReason[];
}

export declare function fullBacklog(options: { tools: number; somaxconn?: number; stopMs: number }): Promise<{
  somaxconn: number | null;
  tools: number;
  spawnMs: number;
  queueWhileStopped: [number, number] | null;
  answered: number;
  failedTools: string[];
  clients: number;
  inputs: number;
  cacheable: boolean;
  notCacheable: UncacheableReason[];
}>;

export declare function stalledRunner(options: { stallMs: number; timeoutMs?: number; reports: number }): Promise<
  Outcome & { toolExit: number | null; tool: { ms: number; connected: boolean } | null; sent: number; received: number }
>;

export declare function stalledHandshake(options: { timeoutMs?: number }): Promise<
  Outcome & { toolExit: number | null; tool: { nodeEnv: string | null; connected: boolean } | null; envs: Record<string, EnvRecord>; clients: number }
>;

export declare function fdLimit(options: { timeoutMs: number; release: boolean }): Promise<
  Outcome & {
    hoarded: number;
    toolExit: number | null;
    toolMs: number;
    tool: { nodeEnv: string | null; connected: boolean } | null;
    inputs: number;
    clients: number;
    errors: { message: string }[];
  }
>;

export type BrokenPeerMode = 'protocol-error' | 'version' | 'cut-off' | 'long-glob' | 'no-token';

export declare function brokenPeer(mode: BrokenPeerMode): Promise<
  Outcome & {
    peerExit: number | null;
    peerStderr: string;
    answers: { op: string; [field: string]: unknown }[];
    toolServed: boolean;
    ignoredInputs: string[];
    errors: string[];
  }
>;

interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export declare function longGlobTool(options: { withRunner: boolean }): Promise<
  ProcessEnd & { out: Record<string, string | null> | null; cacheable?: boolean; notCacheable?: UncacheableReason[] }
>;

export declare function longGlobRunner(): Promise<ProcessEnd & { out: Record<string, string> | null }>;

export declare function valueCap(options: { values: number; valueBytes?: number }): Promise<
  Outcome & { toolExit: number | null; toolStderr: string; sentBytes: number; closeMs: number; keptValues: number; keptBytes: number }
>;

export declare function pathCap(options: { paths: number; tools: number }): Promise<
  Outcome & { failedTools: number; sent: number; closeMs: number; kept: number }
>;

export declare function manyPaths(options: { paths: number }): Promise<{
  toolExit: number | null;
  sent: number;
  received: number;
  missing: number;
  closeMs: number;
  longestStallMs: number;
  cacheable: boolean;
  notCacheable: UncacheableReason[];
}>;

export declare function runnerEnds(options: { how: 'exit' | 'throw' | 'signal' | 'handler'; signal?: NodeJS.Signals }): Promise<
  ProcessEnd & { handled: boolean; aliveAfterSignal: boolean | null; dirBefore: boolean; dirBeforeExit: boolean; dirGone: boolean }
>;

export declare function nonUtf8Tmpdir(): Promise<{
  code: number | null;
  stderr: string;
  socketPath?: string;
  tool?: string;
  toolStderr?: string;
  ignoredInputs?: string[];
  cacheable?: boolean;
  notCacheable?: UncacheableReason[];
}>;

export declare function zeroTimeout(): Promise<{
  toolExit: number | null;
  tool: [boolean, string | null] | null;
  inputs: string[];
  clients: number;
  cacheable: boolean;
  notCacheable: UncacheableReason[];
}>;

export declare function protoNames(): Promise<{
  toolExit: number | null;
  toolStderr: string;
  tool: { one: string | null; own: boolean; all: [string, string][] } | null;
  reportedEnv: EnvRecord | null;
  reportedMatch: string | null;
  reportedValue: string | null;
  fingerprintEnv: string | null;
  fingerprintValue: string | null;
  sameEnv: FingerprintValidation;
  changedEnv: FingerprintValidation;
  changedValue: FingerprintValidation;
  removedEnv: FingerprintValidation;
}>;

export declare function deletedCwd(): Promise<{
  withoutRunner: { code: number | null; out: string[] | null; stderr: string };
  underRunner: { code: number | null; out: string[] | null; stderr: string };
  ignoredInputs: string[];
  outputs: string[];
  cacheable: boolean;
}>;

export declare function lateClient(options: { delayMs: number; closeTimeoutMs: number; daemonMs?: number }): Promise<
  Outcome & {
    commandExit: number | null;
    commandStderr: string;
    closeMs: number;
    lateConnected: boolean | null;
    ignoredInputs: string[];
    clients: number;
  }
>;

export declare function inspectExit(script: string): Promise<{
  code: number | null;
  signal: NodeJS.Signals | null;
  summary: string;
  jsonVerdict: Verdict;
  reportsVerdict: { cacheable: boolean; notCacheable: UncacheableReason[] };
  verdictOf(outcome: CommandOutcome): Verdict;
}>;
