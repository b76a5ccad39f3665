/**
 * Loading a journal's directory (journal.ts): its file names, and `loadJournal`: the newest
 * snapshot that can be read (or the legacy state file, migration), with the segments from
 * its number on replayed over it in order (`applyEntriesSteps`); at once, or in slices
 * (`loadJournalAsync`: the files read as asynchronous I/O, parsed from their bytes in pieces). A torn last line (a kill
 * mid-write) is dropped, reported (`warnings`) and cut off the file; a bad line in the
 * middle is reported (`problems`) with its file, line and offset, and the lines around it
 * are kept.
 */

import {
  closeSync,
  copyFileSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DEFAULT_SLICE_MS, type SliceOptions, type Steps } from './chunks';
import { type DecodedRecord, decodeRecord, readRecord } from './journal-codec';
import {
  applyEntriesSteps,
  emptySiteDocument,
  type ReplayValue,
  replayEntry,
  type SiteDocument,
} from './journal-replay';
import { parseJsonBytesSteps } from './json-chunks';
import type { RestoreProblem } from './restore';
import { FileStore, StoreCorruptError } from './store';

export const SNAPSHOT = /^snapshot-(\d+)\.json$/;
export const SEGMENT = /^journal-(\d+)\.log$/;
/** A snapshot being written (or left by a kill while it was). */
export const TEMPORARY = /^snapshot-(\d+)\.json\.tmp-\d+$/;
const pad = (n: number) => String(n).padStart(8, '0');
export const snapshotFile = (dir: string, n: number) => path.join(dir, `snapshot-${pad(n)}.json`);
export const segmentFile = (dir: string, n: number) => path.join(dir, `journal-${pad(n)}.log`);

/** What a load found, and where the journal goes on from. */
export interface LoadedJournal {
  /** The state; undefined when there is nothing. */
  doc: unknown;
  problems: RestoreProblem[];
  warnings: string[];
  /** The snapshot used as the base, or null. */
  baseSnapshot: number | null;
  /** The legacy state file is the base. */
  legacyBase: boolean;
  lastSnapshotBytes: number;
  /** The segment to write next. */
  nextSegment: number;
  /** Bytes of the segments after the base. */
  sinceSnapshot: number;
}

/** Reads a file whole: at once, or as asynchronous I/O. */
type Read = (file: string) => Buffer | Promise<Buffer>;

/**
 * Loads the journal in `dir` (see the file's comment), at once. Throws StoreCorruptError.
 * Reads the same as `loadJournalAsync`, in one turn.
 */
export function loadJournal(dir: string, legacyFile?: string): LoadedJournal {
  const steps = loadSteps(dir, legacyFile);
  let r = steps.next();
  while (!r.done) {
    // A file to read (readFileSync), or a checkpoint.
    r = steps.next(r.value === undefined ? undefined : readFileSync(r.value));
  }
  return r.value;
}

/**
 * `loadJournal` in slices of about `sliceMs` (src/chunks.ts), the event loop served between
 * them: the files are read as asynchronous I/O and never decoded whole (a snapshot of
 * 160,000 commands is 70 MB: decoding and parsing it at once holds the loop for seconds).
 * The same result and the same errors.
 */
export async function loadJournalAsync(
  dir: string,
  legacyFile: string | undefined,
  options: SliceOptions = {},
): Promise<LoadedJournal> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  const steps = loadSteps(dir, legacyFile);
  let start = performance.now();
  let r = steps.next();
  while (!r.done) {
    let input: Buffer | undefined;
    if (r.value !== undefined) {
      input = await readFile(r.value);
      start = performance.now();
    } else if (performance.now() - start >= sliceMs) {
      await nextTurn();
      start = performance.now();
    }
    r = steps.next(input);
  }
  return r.value;
}

/**
 * The load as steps: yields a file name to be given its bytes (`next(buffer)`), or
 * undefined at a checkpoint.
 */
function* loadSteps(
  dir: string,
  legacyFile: string | undefined,
): Generator<string | undefined, LoadedJournal, Buffer | undefined> {
  const out: LoadedJournal = {
    doc: undefined,
    problems: [],
    warnings: [],
    baseSnapshot: null,
    legacyBase: false,
    lastSnapshotBytes: 0,
    nextSegment: 0,
    sinceSnapshot: 0,
  };
  mkdirSync(dir, { recursive: true });
  const names = readdirSync(dir);
  const snapshots = numbered(names, SNAPSHOT).reverse();
  let base: unknown;
  let from = 0;
  for (const n of snapshots) {
    const file = snapshotFile(dir, n);
    try {
      const bytes = (yield file) as Buffer;
      base = yield* checkpoints(parseJsonBytesSteps(bytes, { float64: true }));
      from = n;
      out.baseSnapshot = n;
      out.lastSnapshotBytes = bytes.length;
      break;
    } catch (err) {
      // An older snapshot with its segments (kept until a newer one is whole) is the base.
      out.problems.push({
        entry: path.basename(file),
        reason: `cannot be read (${(err as Error).message}); an older snapshot is used`,
      });
    }
  }
  if (base === undefined && snapshots.length > 0) {
    throw new StoreCorruptError(
      `no snapshot in ${dir} can be read: ${out.problems.map((p) => p.reason).join('; ')}`,
      dir,
      null,
    );
  }
  if (base === undefined && legacyFile && existsSync(legacyFile)) {
    // Migration: today's state file is the base until the first snapshot is written.
    base = new FileStore(legacyFile).load(); // not JSON: moved aside (StoreCorruptError)
    out.legacyBase = base !== undefined;
    out.lastSnapshotBytes = fileSize(legacyFile);
  }
  const segments = numbered(names, SEGMENT).filter((n) => n >= from);
  const entries: [string, ReplayValue][] = [];
  let replayed = 0;
  for (const n of segments) {
    const file = segmentFile(dir, n);
    const bytes = (yield file) as Buffer;
    replayed += yield* checkpoints(segmentSteps(file, bytes, entries, out));
    out.sinceSnapshot += bytes.length;
  }
  out.nextSegment = (segments.at(-1) ?? from) + 1;
  if (base === undefined && replayed === 0) return out;
  const doc = (base ?? emptySiteDocument()) as SiteDocument;
  for (const p of yield* checkpoints(applyEntriesSteps(doc, entries))) out.problems.push(p);
  out.doc = doc;
  return out;
}

/** `steps`' checkpoints as the load's (which are also given files' bytes). */
function* checkpoints<T>(steps: Steps<T>): Generator<undefined, T, unknown> {
  let r = steps.next();
  while (!r.done) {
    yield undefined;
    r = steps.next();
  }
  return r.value;
}

/** Record lines decoded between two checkpoints. */
const LINES = 256;
/** A record line longer than this (bytes) is parsed in pieces. */
const LONG_LINE = 1 << 16;

/**
 * Reads a segment's records (its bytes) into `entries`; returns how many. Cuts a torn last
 * line off the file. Offsets are in bytes.
 */
function* segmentSteps(
  file: string,
  bytes: Buffer,
  entries: [string, ReplayValue][],
  out: { problems: RestoreProblem[]; warnings: string[] },
): Steps<number> {
  const name = path.basename(file);
  let count = 0;
  let offset = 0;
  let line = 0;
  while (offset < bytes.length) {
    line++;
    if (line % LINES === 0) yield;
    const nl = bytes.indexOf(10, offset);
    if (nl < 0) {
      // Torn: the process died in the middle of writing it. Never applied; cut off so that
      // nothing is appended after half a line.
      out.warnings.push(
        `${name} line ${line} (offset ${offset}): a torn last record of ${bytes.length - offset} bytes (the process stopped while writing it), ignored and cut off`,
      );
      const fd = openSync(file, 'r+');
      try {
        ftruncateSync(fd, offset);
      } finally {
        closeSync(fd);
      }
      break;
    }
    try {
      let record: DecodedRecord;
      if (nl - offset > LONG_LINE) {
        // A large record (a plan's rows): parsed in pieces, never decoded whole.
        let parsed: unknown;
        try {
          parsed = yield* parseJsonBytesSteps(bytes.subarray(offset, nl), { float64: true });
        } catch (err) {
          throw new TypeError(`not valid JSON (${(err as Error).message})`);
        }
        record = readRecord(parsed);
      } else record = decodeRecord(bytes.toString('utf8', offset, nl));
      entries.push(replayEntry(record));
      count++;
    } catch (err) {
      out.problems.push({
        entry: `${name} line ${line} (offset ${offset})`,
        reason: `${(err as Error).message}; left out, the records around it are kept`,
      });
    }
    offset = nl + 1;
  }
  return count;
}

/** The numbers of the names that `re` matches, in order. */
export function numbered(names: readonly string[], re: RegExp): number[] {
  const out: number[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Copies the journal's files (and `legacyFile`, when given: it is the base) into a directory
 * beside `dir`, `<dir>.bad-entries-<time>`; returns it, or null.
 */
export function copyJournal(dir: string, legacyFile?: string): string | null {
  const copy = `${dir}.bad-entries-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  try {
    mkdirSync(copy, { recursive: true });
    for (const name of readdirSync(dir)) {
      if (SNAPSHOT.test(name) || SEGMENT.test(name))
        copyFileSync(path.join(dir, name), path.join(copy, name));
    }
    if (legacyFile) copyFileSync(legacyFile, path.join(copy, path.basename(legacyFile)));
    return copy;
  } catch {
    return null;
  }
}
