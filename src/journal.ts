/**
 * JournalStore: a StateStore that persists a site's changes as they happen, for edge gateways
 * on SD cards. Each change (an `onPersist` entry of the engine or the site) is appended to a
 * log segment as one small record (see journal-codec.ts); all the changes of one turn of the
 * event loop go out as one write when that turn ends (`setImmediate`), so the window of
 * changes a crash can lose is the current turn, and an entry changed many times in a turn is
 * written once. No turn writes for more than `sliceMs` (8 ms) or FLUSH_SLICE entries: the
 * rest of a burst goes out over the next turns, in order. A change that gives its JSON in
 * pieces (`PersistChange.json`: a plan's `p:` record, ~10 MB at 10,000 assets x 96 slots) is
 * captured at its turn and written as one line over as many turns as it takes, the records
 * after it waiting behind it: while it is written, the window a kill can lose spans those
 * turns (a kill leaves a torn last line, ignored on load). Records are written, not fsynced
 * (`syncEveryWrite`): a killed process loses nothing written; a power cut can lose what the
 * OS had not yet put on the card.
 *
 * Snapshots (`compact()`, when the journal has grown): the journal moves to a new segment,
 * then builds the snapshot from its own files (the previous snapshot with the closed segments
 * replayed, in a worker thread or in slices: journal-snapshot.ts), writes it to a temporary
 * file, renames it over and drops the segments it covers. `save(doc)` writes a document the
 * caller built (the site, after a load that left entries out: its files still hold them).
 *
 * Files in `dir`: `snapshot-<n>.json` (the state when segment n began) and `journal-<n>.log`
 * (records, one a line). Load (journal-load.ts) = the newest snapshot + the segments from its
 * number on, in order; a torn last line is dropped and cut off, a bad line in the middle
 * reported. Before any snapshot, `legacyFile` (a FileStore state file) is the base:
 * migration; once the first snapshot is written it is renamed `<file>.migrated`.
 */

import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  truncateSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { BigMap } from './big-map';
import { DEFAULT_SLICE_MS, type SliceOptions } from './chunks';
import type { PersistChange } from './engine';
import { RecordEncoder } from './journal-codec';
import {
  copyJournal,
  type LoadedJournal,
  loadJournal,
  loadJournalAsync,
  numbered,
  SEGMENT,
  SNAPSHOT,
  segmentFile,
  snapshotFile,
  TEMPORARY,
} from './journal-load';
import { compactedDocument, compactInWorker } from './journal-snapshot';
import type { RestoreProblem } from './restore';
import { type StateStore, writeJsonFile } from './store';

export interface JournalOptions {
  /** A FileStore state file loaded as the first snapshot when `dir` holds none (migration). */
  legacyFile?: string;
  /**
   * Journal bytes after which a snapshot is asked for (default COMPACT_AFTER_BYTES); at least
   * twice the last snapshot's size, so snapshots are at most a third of what is written.
   */
  compactAfterBytes?: number;
  /** fsync after every group written (survives power loss, costs a flush per turn). Default false. */
  syncEveryWrite?: boolean;
  /** Where a failed write of records is reported (they are lost). Default console.error. */
  onError?: (error: Error) => void;
  /**
   * How long one turn may write records before the rest waits for the next turn, ms
   * (default 8; 0: one piece or 64 records a turn, for tests).
   */
  sliceMs?: number;
  /**
   * Whether `compact` builds the snapshot in a worker thread (default true); false: on the
   * event loop, in slices.
   */
  snapshotWorker?: boolean;
}

/** Default for `compactAfterBytes`: 16 MiB. */
export const COMPACT_AFTER_BYTES = 16 * 1024 * 1024;

/**
 * Changes written at the end of a turn at most; a larger burst goes out over the next turns,
 * this many a turn (fewer when `sliceMs` runs out), so that journaling it does not stall
 * the event loop.
 */
export const FLUSH_SLICE = 5000;
/** Records encoded between two looks at the clock. */
const CLOCK_EVERY = 64;
/** Characters of a large record gathered before a write. */
const BIG_WRITE_CHARS = 1 << 20;
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/** A large record being written over several turns: the rest of its pieces, where it began. */
interface BigRecord {
  key: string;
  pieces: Iterator<string, void, void>;
  start: number;
}

/** Figures of what the journal wrote, for benchmarks and status. */
export interface JournalStats {
  records: number;
  recordBytes: number;
  writes: number;
  snapshots: number;
  snapshotBytes: number;
  /** Snapshots that `compact` built in a worker thread. */
  workerSnapshots: number;
}

export class JournalStore implements StateStore {
  readonly location: string;
  readonly stats: JournalStats = {
    records: 0,
    recordBytes: 0,
    writes: 0,
    snapshots: 0,
    snapshotBytes: 0,
    workerSnapshots: 0,
  };
  /** What the last `load()` found wrong and left out (a bad record, an unknown key). */
  problems: RestoreProblem[] = [];
  /** What the last `load()` found and dealt with, to report: torn last records. */
  warnings: string[] = [];
  private readonly encoder = new RecordEncoder();
  /** Changes not yet written, by key, in the order they first changed. */
  private pending = new BigMap<string, PersistChange>();
  /**
   * The changes being written (a former `pending`, taken whole when writing began, read
   * through this iterator), and how many are left: a large burst is never deleted from one
   * by one (a Map of 100,000s shrinks by rehashing what is left: tens of ms in one turn).
   */
  private batch: Iterator<[string, PersistChange]> | null = null;
  private batchLeft = 0;
  private flushQueued = false;
  private fd: number | null = null;
  private segment = 0;
  /** Bytes of journal since the last snapshot. */
  private sinceSnapshot = 0;
  private lastSnapshotBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private queuedDoc: { doc: unknown; n: number } | null = null;
  /** A compaction is asked for and has not begun. */
  private compactQueued = false;
  private readonly compactAfter: number;
  private readonly sliceMs: number;
  /** The base of the last load is the legacy state file (no snapshot yet). */
  private legacyBase = false;
  /** The number of the snapshot the journal's segments follow (null: none, or not loaded). */
  private baseSnapshot: number | null = null;
  /** A large record being written, the records after it waiting. */
  private big: BigRecord | null = null;

  constructor(
    readonly dir: string,
    private readonly options: JournalOptions = {},
  ) {
    this.location = dir;
    this.compactAfter = options.compactAfterBytes ?? COMPACT_AFTER_BYTES;
    this.sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  }

  // ------------------------------------------------------------ loading

  /** The snapshot with the segments replayed over it; undefined when there is nothing. */
  load(): unknown {
    return this.loaded(loadJournal(this.dir, this.options.legacyFile));
  }

  /** `load` in slices (journal-load.ts `loadJournalAsync`): the same, the event loop served. */
  async loadAsync(slicing: SliceOptions = {}): Promise<unknown> {
    return this.loaded(await loadJournalAsync(this.dir, this.options.legacyFile, slicing));
  }

  private loaded(loaded: LoadedJournal): unknown {
    this.problems = loaded.problems;
    this.warnings = loaded.warnings;
    this.baseSnapshot = loaded.baseSnapshot;
    this.legacyBase = loaded.legacyBase;
    this.lastSnapshotBytes = loaded.lastSnapshotBytes;
    this.segment = loaded.nextSegment;
    this.sinceSnapshot = loaded.sinceSnapshot;
    return loaded.doc;
  }

  // ------------------------------------------------------------ journaling

  /**
   * Records that an entry changed: written (its `value()` then) when this turn of the event
   * loop ends. Returns true when the journal has grown enough that a snapshot (`save`) is due.
   */
  journal(change: PersistChange): boolean {
    this.pending.set(change.key, change);
    this.queueFlush();
    return this.sinceSnapshot >= Math.max(this.compactAfter, 2 * this.lastSnapshotBytes);
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      try {
        // A large burst or record goes out over several turns, sliceMs a turn.
        this.write(this.sliceMs, false);
      } catch (err) {
        // Never thrown from a timer (it would end the process): reported, and each command's
        // next record is written in full, as its last ones may be missing.
        this.encoder.reset();
        const lost = this.dropBig();
        const e = new Error(
          `cannot write the journal in ${this.dir}: ${(err as Error).message}; the changes of this turn${lost} are not saved`,
        );
        if (this.options.onError) this.options.onError(e);
        else console.error(e.message);
      }
      if (this.backlog > 0) this.queueFlush();
    });
  }

  /** Changes waiting to be written (a large record being written counts as one). */
  get backlog(): number {
    return this.pending.size + this.batchLeft + (this.big === null ? 0 : 1);
  }

  /** Writes every pending change now (a large record being written: its rest first). */
  flush(): void {
    try {
      this.write(Number.POSITIVE_INFINITY, true);
    } catch (err) {
      // As a failed turn: the next records of commands in full, no half record continued.
      this.encoder.reset();
      this.dropBig();
      throw err;
    }
  }

  /**
   * Writes the pending changes, the oldest first: all of them, or for up to `budgetMs` (at
   * least one piece or CLOCK_EVERY records) and FLUSH_SLICE records; a large record is
   * started and continued as far as the budget goes.
   */
  private write(budgetMs: number, all: boolean): void {
    const started = performance.now();
    const over = () => !all && performance.now() - started >= budgetMs;
    let count = 0; // records this turn
    for (;;) {
      if (this.big !== null && !this.continueBig(over)) return;
      if (this.batch === null) {
        if (this.pending.size === 0 || (count > 0 && over())) return;
        this.batch = this.pending.entries();
        this.batchLeft = this.pending.size;
        this.pending = new BigMap();
      }
      const lines: string[] = [];
      for (;;) {
        if (!all && count >= FLUSH_SLICE) break;
        if (count > 0 && count % CLOCK_EVERY === 0 && over()) break;
        const next = this.batch.next();
        if (next.done) {
          this.batch = null;
          break;
        }
        this.batchLeft--;
        const [key, change] = next.value;
        // Changed again since the batch was taken: written from `pending`, later.
        if (this.pending.has(key)) continue;
        count++;
        const pieces = change.json?.();
        if (pieces === undefined || pieces === null) {
          lines.push(this.encoder.encode(key, pieces === null ? undefined : change.value()));
          continue;
        }
        // Captured now, written from the next line on, the later records behind it.
        this.append(lines.join(''), lines.length);
        lines.length = 0;
        const fd = this.openSegment();
        this.big = { key, pieces, start: fstatSync(fd).size };
        this.appendRaw(`["s",${JSON.stringify(key)},`);
        break;
      }
      if (lines.length > 0) this.append(lines.join(''), lines.length);
      // Go on: a large record begun, or the batch ended with time and count left.
      if (this.big === null && (this.batch !== null || (!all && count >= FLUSH_SLICE))) return;
    }
  }

  /** Writes the next pieces of the large record; true when it is whole. */
  private continueBig(over: () => boolean): boolean {
    const big = this.big as BigRecord;
    let buffered: string[] = [];
    let size = 0;
    for (;;) {
      const r = big.pieces.next();
      if (r.done) buffered.push(']\n');
      else {
        buffered.push(r.value);
        size += r.value.length;
      }
      if (r.done || size >= BIG_WRITE_CHARS || over()) {
        this.appendRaw(buffered.join(''));
        buffered = [];
        size = 0;
      }
      if (r.done) {
        this.big = null;
        this.stats.records++;
        return true;
      }
      if (over()) return false;
    }
  }

  /** Forgets a large record cut by a failed write, and cuts its start off the segment. */
  private dropBig(): string {
    const big = this.big;
    if (big === null) return '';
    this.big = null;
    try {
      truncateSync(this.segmentFile(this.segment), big.start);
    } catch {
      // The next load drops the torn line, or reports it in the middle.
    }
    return ` (and the record ${big.key})`;
  }

  /** Appends `count` whole records. */
  private append(text: string, count: number): void {
    if (count === 0) return;
    this.appendRaw(text);
    this.stats.records += count;
  }

  private appendRaw(text: string): void {
    const fd = this.openSegment();
    const bytes = Buffer.byteLength(text, 'utf8');
    writeSync(fd, text, null, 'utf8');
    if (this.options.syncEveryWrite) fsyncSync(fd);
    this.stats.recordBytes += bytes;
    this.stats.writes++;
    this.sinceSnapshot += bytes;
  }

  private openSegment(): number {
    if (this.fd === null) {
      mkdirSync(this.dir, { recursive: true });
      this.fd = openSync(this.segmentFile(this.segment), 'a');
    }
    return this.fd;
  }

  private segmentFile(n: number): string {
    return segmentFile(this.dir, n);
  }

  // ------------------------------------------------------------ snapshots

  /**
   * Writes `doc` (the whole state, as of now: build it in the same turn) as the new snapshot
   * and drops the segments it covers. The pending records go to the current segment first
   * and a new segment begins, so that records arriving meanwhile are never lost. Snapshots
   * are serialised; one asked for while one runs is coalesced into one more of the latest.
   */
  save(doc: unknown): Promise<void> {
    // `doc` is the state of the records written so far: those pending go to this segment,
    // then a new one begins, now, for every later change.
    this.flush();
    const n = this.rotate();
    const scheduled = this.queuedDoc !== null;
    this.queuedDoc = { doc, n };
    if (!scheduled) {
      this.chain = this.chain
        .catch(() => {})
        .then(() => {
          const next = this.queuedDoc as { doc: unknown; n: number };
          this.queuedDoc = null;
          return this.snapshot(next.doc, next.n);
        });
    }
    return this.chain;
  }

  /**
   * Writes a new snapshot built from the journal's own files (see journal-snapshot.ts): a
   * new segment begins now (between two records, never inside a large one); the snapshot is
   * the previous one with the segments before the new one replayed over it, made in slices,
   * then written as `save` writes one; the segments it covers are dropped. A kill at any
   * point leaves files that load to what the journal holds. One asked for before the last
   * one began is the same one.
   */
  compact(): Promise<void> {
    if (this.compactQueued) return this.chain;
    this.compactQueued = true;
    this.chain = this.chain
      .catch(() => {})
      .then(async () => {
        this.compactQueued = false;
        while (this.big !== null) await nextTurn(); // its segment must be whole
        const n = this.rotate();
        const names = readdirSync(this.dir);
        const base =
          this.baseSnapshot ??
          numbered(names, SNAPSHOT)
            .filter((k) => k < n)
            .at(-1);
        const legacy = this.legacyBase ? (this.options.legacyFile ?? null) : null;
        const segments = numbered(names, SEGMENT)
          .filter((k) => k >= (base ?? 0) && k < n)
          .map((k) => this.segmentFile(k));
        const from = base === undefined || base === null ? legacy : this.snapshotFile(base);
        let bytes: number;
        if (this.options.snapshotWorker !== false) {
          bytes = await compactInWorker(from, segments, this.snapshotFile(n));
          this.stats.workerSnapshots++;
        } else {
          const { doc } = await compactedDocument(from, segments);
          bytes = await writeJsonFile(this.snapshotFile(n), doc);
        }
        this.snapshotWritten(n, bytes);
      });
    return this.chain;
  }

  private async snapshot(doc: unknown, n: number): Promise<void> {
    this.snapshotWritten(n, await writeJsonFile(this.snapshotFile(n), doc));
  }

  /** Snapshot n is written: the files it covers are dropped. */
  private snapshotWritten(n: number, bytes: number): void {
    this.stats.snapshots++;
    if (this.legacyBase && this.options.legacyFile) {
      // Migrated: the snapshot holds what the old file held; it is kept, renamed, not used.
      this.legacyBase = false;
      try {
        renameSync(this.options.legacyFile, `${this.options.legacyFile}.migrated`);
      } catch {
        // Gone already: nothing to keep.
      }
    }
    this.stats.snapshotBytes += bytes;
    this.lastSnapshotBytes = bytes;
    if (this.baseSnapshot === null || n > this.baseSnapshot) this.baseSnapshot = n;
    // Everything before segment n is in the snapshot now; a temporary file left by a
    // snapshot that did not finish (a kill) is dropped too.
    for (const name of readdirSync(this.dir)) {
      const s = SNAPSHOT.exec(name) ?? SEGMENT.exec(name);
      const t = TEMPORARY.exec(name);
      if ((s && Number(s[1]) < n) || (t && Number(t[1]) <= n)) {
        try {
          unlinkSync(path.join(this.dir, name));
        } catch {
          // Already gone: nothing to drop.
        }
      }
    }
  }

  private snapshotFile(n: number): string {
    return snapshotFile(this.dir, n);
  }

  /** Closes the current segment and starts the next; returns its number. */
  private rotate(): number {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    this.segment++;
    this.sinceSnapshot = 0;
    this.openSegment();
    return this.segment;
  }

  /** Writes what is pending and closes the segment (a later change opens it again). */
  async close(): Promise<void> {
    this.flush();
    await this.chain.catch(() => {});
    if (this.fd !== null) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
    }
  }

  /**
   * Copies the journal's files (and the legacy state file when it is the base) into a
   * directory beside it, `<dir>.bad-entries-<time>`; returns it, or null.
   */
  keepCopy(): string | null {
    return copyJournal(this.dir, this.legacyBase ? this.options.legacyFile : undefined);
  }
}
