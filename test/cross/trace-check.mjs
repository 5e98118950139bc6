// Checks a trace file written around test/cross/trace-smoke.c by a tracer
// built for another target (scripts/ci-cross.sh):
//
//   node test/cross/trace-check.mjs <label> <trace file> <input> <absent> <output> [complete|preload-only]
//
// `complete`: the supervisor saw the run to its end and nothing is missing. `preload-only`:
// the preload library ran without the supervisor (qemu-user), so the trace says
// it is incomplete and still holds what the program did through libc.

import { readFileSync } from 'node:fs';

const [label, file, input, absent, output, expect = 'complete'] = process.argv.slice(2);
const records = readFileSync(file, 'latin1').split('\0').slice(0, -1);
const has = (kind, text) => records.includes(`${kind}${text}`);
const problems = [];
if (!has('r', input)) problems.push(`no read of ${input}`);
if (!has('m', absent)) problems.push(`no missing look-up of ${absent}`);
if (!has('w', output)) problems.push(`no write of ${output}`);
const incomplete = records.filter((r) => r.startsWith('!')).map((r) => r.slice(1));
if (expect === 'complete') {
  if (!records.includes('bpreload')) problems.push('no begin record from the supervisor');
  if (!records.includes('e')) problems.push('no end record from the supervisor');
  if (incomplete.length > 0) problems.push(`incomplete: ${incomplete.join('; ')}`);
} else if (incomplete.length === 0) {
  problems.push('the trace does not say it is incomplete');
}
console.log(`${label}: ${records.length} records${incomplete.length ? ` (incomplete: ${incomplete.join('; ')})` : ''}${problems.length ? `; FAILED: ${problems.join('; ')}` : '; as expected'}`);
process.exit(problems.length ? 1 : 0);
