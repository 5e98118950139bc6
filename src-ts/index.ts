// `runner-aware`: the tool API, and nothing else. Every tool process imports
// this bundle, so the runner side and the cache helpers live in
// `runner-aware/runner` and cost a tool nothing.

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
export type { EnvOptions, EnvQuery } from './types.js';
