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
export {
  absolutizeReports,
  declaredInputs,
  declaredOutputs,
  describeQuery,
  envFingerprint,
  envMatcher,
  filterInputs,
  filterOutputs,
  InvalidEnvGlobError,
  isIgnoredInput,
  isIgnoredOutput,
  isWithin,
  normalizePath,
  parseFingerprint,
  parseReports,
  relativizeReports,
  serializeFingerprint,
  serializeReports,
  validateFingerprint,
} from './cache.js';
export type {
  AnyEnvQuery,
  EnvFingerprint,
  FingerprintQuery,
  FingerprintValidation,
  PathOptions,
  ValidateOptions,
} from './cache.js';
