export {
  addInput,
  addOutput,
  addValue,
  disableCache,
  fetchEnv,
  fetchEnvs,
  getEnv,
  getEnvs,
  ignoreInput,
  ignoreOutput,
  isConnected,
} from './tool.js';
export { createServer } from './runner.js';
export type { Server, ServerOptions } from './runner.js';
export type {
  EnvOptions,
  EnvQuery,
  EnvQueryRecord,
  EnvRecord,
  ReportedError,
  Reports,
} from './types.js';
