// A runner in a process of its own, so a scenario can stop it (SIGSTOP),
// starve it of file descriptors or run it in another network namespace.
// argv: <options JSON> with `server` (createServer options) and `hoardFds`
// (open files until EMFILE once the server is up).
// Prints one JSON line when the server is up ({ env, socketPath, pid,
// hoarded, somaxconn }), then obeys commands on stdin, one per line:
//   release  close the hoarded files          → { released }
//   close    close the server                 → { closeMs, reports } (the
//            reports summarised: counts of the big fields, everything else whole)
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { createServer } from 'runner-aware/runner';

const options = JSON.parse(process.argv[2] ?? '{}');
// Both streams are opened before any file is hoarded.
const { stdin, stdout } = process;
const server = await createServer(options.server ?? {});

/** The listen backlog limit of this process's network namespace (Linux). */
function readSomaxconn() {
  try {
    return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  } catch {
    return null;
  }
}
const somaxconn = readSomaxconn();

const hoarded = [];
if (options.hoardFds) {
  for (;;) {
    try {
      hoarded.push(openSync('/dev/null', 'r'));
    } catch (err) {
      if (err.code !== 'EMFILE' && err.code !== 'ENFILE') throw err;
      break;
    }
  }
}

const say = (value) => stdout.write(`${JSON.stringify(value)}\n`);
say({ env: server.env, socketPath: server.socketPath, pid: process.pid, hoarded: hoarded.length, somaxconn });

/** The reports with each big field replaced by its size: a run of a million paths stays a short line. */
function summary(reports) {
  const counts = {};
  for (const field of ['ignoredInputs', 'ignoredOutputs', 'inputs', 'outputs']) counts[field] = reports[field].length;
  counts.values = Object.keys(reports.values).length;
  counts.valueBytes = Object.values(reports.values).reduce((sum, value) => sum + value.length, 0);
  const { ignoredInputs, ignoredOutputs, inputs, outputs, values, ...rest } = reports;
  return { ...rest, counts, ...(options.full ? { ignoredInputs, ignoredOutputs, inputs, outputs, values } : {}) };
}

for await (const line of createInterface({ input: stdin })) {
  if (line === 'release') {
    for (const fd of hoarded.splice(0)) closeSync(fd);
    say({ released: true });
  } else if (line === 'close') {
    const started = performance.now();
    const reports = await server.close();
    say({ closeMs: Math.round(performance.now() - started), reports: summary(reports) });
    process.exit(0);
  }
}
