// The floor for the outside-a-runner figure: the tool API's call names as
// empty functions, imported and called exactly like runner-aware.
export function getEnv() {}
export function getEnvs() {}
export function ignoreInput() {}
export function addValue() {}
export function disableCache() {}
export function isConnected() {
  return false;
}
