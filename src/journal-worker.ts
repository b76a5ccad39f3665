/**
 * The journal's snapshot worker (a worker_thread started by `compactInWorker` in
 * journal-snapshot.ts): builds a snapshot from the journal's files and writes it, so that
 * the parsing, the replay and the garbage of a large state never hold the event loop of the
 * process that runs Node-RED. In: `workerData` { base, segments, file }; out: one message,
 * { bytes } or { error }.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { compactedDocument } from './journal-snapshot';
import { writeJsonFile } from './store';

const job = workerData as { base: string | null; segments: string[]; file: string };

compactedDocument(job.base, job.segments, false)
  .then(({ doc }) => writeJsonFile(job.file, doc))
  .then(
    (bytes) => parentPort?.postMessage({ bytes }),
    (err: Error) => parentPort?.postMessage({ error: err.message }),
  );
