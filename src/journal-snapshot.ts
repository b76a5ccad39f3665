/**
 * The journal's snapshots (journal.ts; a snapshot file is written by store.ts `writeJsonFile`:
 * in pieces, to a temporary file, fsynced, renamed over): compaction, the document a snapshot holds,
 * made from the journal's own files instead of the live site: the previous snapshot (or
 * the legacy state file, or nothing) with the closed segments after it replayed over it
 * (`applyEntriesSteps`, the same replay as a load), all of it in slices (src/chunks.ts), so
 * that the site never builds its whole document in one turn of the event loop. Reading is
 * asynchronous I/O; a large text (a snapshot, a plan's record) is parsed in pieces
 * (`parseJsonSteps`). Records that cannot be read are left out, as a load leaves them out
 * (and reported them when it read them).
 *
 * `compactInWorker` does all of it in a worker_thread (journal-worker.ts): slices do not
 * split garbage collection, and the collections of a 160,000-command document held the loop
 * for 70–140 ms each on the loaded test machine; a worker's heap is its own.
 */

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { runSliced, runSync, type Steps } from './chunks';
import { readRecord } from './journal-codec';
import {
  applyEntriesSteps,
  emptySiteDocument,
  type ReplayValue,
  replayEntry,
  type SiteDocument,
} from './journal-replay';
import { parseJsonSteps } from './json-chunks';
import type { RestoreProblem } from './restore';

/** A record line longer than this is parsed in slices. */
const LONG_LINE = 1 << 16;
/** Record lines decoded between two checkpoints. */
const LINES = 256;

/**
 * The state that `base` (a snapshot or legacy state file; null: none) and `segments` (closed
 * journal files, in order) hold together, as a load would give it: made in slices, or at
 * once (`sliced` false: in the worker, where nothing else waits).
 */
export async function compactedDocument(
  base: string | null,
  segments: readonly string[],
  sliced = true,
): Promise<{ doc: SiteDocument; problems: RestoreProblem[] }> {
  const run = <T>(steps: Steps<T>): Promise<T> =>
    sliced ? runSliced(steps) : Promise.resolve(runSync(steps));
  let doc = emptySiteDocument();
  if (base !== null) {
    const text = await readFile(base, 'utf8');
    doc = (sliced ? await runSliced(parseJsonSteps(text)) : JSON.parse(text)) as SiteDocument;
  }
  const entries: [string, ReplayValue][] = [];
  for (const file of segments) await run(decodeSegment(await readFile(file, 'utf8'), entries));
  const problems = await run(applyEntriesSteps(doc, entries));
  return { doc, problems };
}

/** The records of a segment's text, appended to `out`; a torn last line is left out. */
function* decodeSegment(text: string, out: [string, ReplayValue][]): Steps<void> {
  let offset = 0;
  let lines = 0;
  while (offset < text.length) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) break; // torn (a load cuts it off): never applied
    const raw = text.slice(offset, nl);
    offset = nl + 1;
    try {
      const parsed = raw.length > LONG_LINE ? yield* parseJsonSteps(raw) : JSON.parse(raw);
      out.push(replayEntry(readRecord(parsed)));
    } catch {
      // Left out, as a load leaves it out (and reports it).
    }
    if (++lines % LINES === 0) yield;
  }
}

/**
 * `compactedDocument` then `writeJsonFile(file, ...)` (store.ts), in a worker thread; returns the bytes
 * written. From the TypeScript sources (tests, benches) the worker loads them through tsx.
 */
export function compactInWorker(
  base: string | null,
  segments: readonly string[],
  file: string,
): Promise<number> {
  const entry = path.join(__dirname, `journal-worker${path.extname(__filename)}`);
  const workerData = { base, segments: [...segments], file };
  const worker = entry.endsWith('.ts')
    ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(entry)});`, {
        eval: true,
        workerData,
      })
    : new Worker(entry, { workerData });
  return new Promise<number>((resolve, reject) => {
    worker.once('message', (m: { bytes?: number; error?: string }) => {
      if (m.error !== undefined) reject(new Error(m.error));
      else resolve(m.bytes as number);
    });
    worker.once('error', reject);
    worker.once('exit', (code) =>
      reject(new Error(`the snapshot worker stopped before it finished (exit code ${code})`)),
    );
  });
}
