// `runner-aware/runner`: the runner side (`createServer`) and the helpers a
// cache needs (path-aware ignore matching, the tracked-env fingerprint and its
// validation, reports as stored data). Loads the native addon on first use.

export { createServer, describeReason, TraceUnavailableError, verdict } from './server.js';
export type { CloseOptions, CommandOutcome, Server, ServerOptions, Verdict, VerdictOptions } from './server.js';
export type {
  EnvOptions,
  EnvValueEncoding,
  EnvQuery,
  EnvQueryRecord,
  EnvRecord,
  ReportedError,
  Reports,
  Trace,
  TraceMode,
  UncacheableKind,
  UncacheableReason,
} from './types.js';
export {
  absolutizeReports,
  declaredInputs,
  declaredOutputs,
  describeQuery,
  digestReports,
  envFingerprint,
  envValueDigest,
  envMatcher,
  filterInputs,
  filterOutputs,
  InvalidEnvGlobError,
  isIgnoredInput,
  isIgnoredOutput,
  isWithin,
  nodeModulesBinPath,
  normalizePath,
  packageManagerPaths,
  parseFingerprint,
  parseReports,
  relativizeReports,
  serializeFingerprint,
  serializeReports,
  validateFingerprint,
} from './cache.js';
export { changedSince, fingerprintInput, inferAccesses, StatCache } from './infer.js';
export { CACHE_SECRET_ENV, openCache, redactUrl, withoutCacheSecrets } from './store.js';
export type { Cache, CacheEntry, CacheEntryState, CacheOptions, CacheRun, LookupResult, RemoteCacheOptions, RepoSnapshot, StoreResult } from './store.js';
export type { InferredAccesses, InferredInput, InputKind } from './infer.js';
export type { TraceOption } from './trace.js';
export type {
  AnyEnvQuery,
  EnvFingerprint,
  FingerprintQuery,
  FingerprintValidation,
  PathOptions,
  ValidateOptions,
} from './cache.js';
