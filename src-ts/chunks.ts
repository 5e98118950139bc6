// Taking in what the addon hands over as chunks of JSON (a run's reports at
// close(), a traced task's trace): a piece per event-loop turn, so even a
// huge one never stalls the runner long.

import type { ReportChunks } from '../index.js';

/** A chunk after the first: items to append to a list field, or entries to add to a record field. */
export type Chunk<F extends string = string> = { field: F; items: unknown[] } | { field: F; entries: [string, unknown][] };

/**
 * The first chunk of `chunks` parsed (the object with its big fields empty),
 * and the others, each parsed on a later event-loop turn. `empty` is the
 * error when there is no first chunk.
 */
export function openChunks<Head, F extends string = string>(chunks: ReportChunks, empty: string): { head: Head; rest: AsyncGenerator<Chunk<F>> } {
  const first = chunks.takeNext();
  if (first === null) throw new Error(empty);
  return { head: JSON.parse(first) as Head, rest: laterChunks<F>(chunks) };
}

async function* laterChunks<F extends string>(chunks: ReportChunks): AsyncGenerator<Chunk<F>> {
  for (let chunk = chunks.takeNext(); chunk !== null; chunk = chunks.takeNext()) {
    await new Promise((resolve) => setImmediate(resolve));
    yield JSON.parse(chunk) as Chunk<F>;
  }
}
