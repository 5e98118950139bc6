// The Rust host triple. Cargo commands pass it as --target so they share the
// target directory layout `napi build` uses, without naming one platform.

import { execFileSync } from 'node:child_process';

export function hostTarget() {
  const info = execFileSync('rustc', ['-vV'], { encoding: 'utf8' });
  const host = /^host: (\S+)$/m.exec(info)?.[1];
  if (!host) throw new Error(`cannot read the host triple from rustc -vV:\n${info}`);
  return host;
}
