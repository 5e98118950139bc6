// The floor a cache hit is measured against: a fresh Node process that stats
// every input of the entry once and copies the outputs into place, with no
// digest, no archive and no check.
//
//   node bench/cache-floor.mjs <inputs.json> <saved outputs dir> <destination dir>

import { cpSync, readFileSync, statSync } from 'node:fs';

const [inputsFile, saved, destination] = process.argv.slice(2);
for (const path of JSON.parse(readFileSync(inputsFile, 'utf8'))) {
  try {
    statSync(path, { throwIfNoEntry: false });
  } catch {
    // A look-up through a file (index.html/tsconfig.json): absent, as for a hit.
  }
}
cpSync(saved, destination, { recursive: true });
