/**
 * Where a site keeps its state between restarts: the `StateStore` contract, `FileStore` (one
 * JSON file written atomically) and `MemoryStore`, their errors, and the one way a large
 * document is written to a file in pieces (`writeJson`, `writeJsonFile`).
 */

import { copyFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { runSliced, runSync, type SliceOptions } from './chunks';
import type { PersistChange } from './engine';
import { jsonPieces, parseJsonBytesSteps } from './json-chunks';
import { formatRestoreProblem, type RestoreProblem } from './restore';

/** Where a site keeps its state between restarts. */
export interface StateStore {
  /** The saved document, or undefined when there is none. Throws StoreCorruptError. */
  load(): unknown;
  /**
   * Optional: `load` in slices of about `sliceMs` (asynchronous reads, the text parsed in
   * pieces), the event loop served between them: the same document, the same errors (as
   * rejections). A Site that loads in slices (`load: 'in-slices'`) uses it when there is one.
   */
  loadAsync?(slicing?: SliceOptions): Promise<unknown>;
  save(doc: unknown): Promise<void>;
  /** Human-readable location, for messages. */
  readonly location: string;
  /**
   * Keeps a copy of the saved document as it is (some of its entries could not be restored,
   * and the next save leaves them out); returns where, or null. Optional.
   */
  keepCopy?(): string | null;
  /**
   * Optional: moves the saved state out of the way (never overwriting it) when it cannot be
   * restored, and returns the error that says why and where it went (FileStore: a
   * StoreCorruptError with `movedTo`). The site calls it when the saved state cannot be
   * restored (any failure but a StoreCorruptError from `load`); without it the site reports
   * a plain Error and leaves the state where it is.
   */
  setAside?(reason: string): Error;
  /**
   * Optional: a store that journals (JournalStore) persists changes as they happen. The site
   * hands it every change (`DispatchEngine.onPersist` entries and its own: `o:<id>` owners,
   * `limits`) instead of saving after every change burst, and calls `save` only when this
   * returns true (the journal has grown enough to be compacted into a snapshot) and after a
   * restore. Without it the site saves the whole document after every burst.
   */
  journal?(change: PersistChange): boolean;
  /**
   * Optional: a journal's snapshot built from its own files (JournalStore): the site calls it
   * instead of `save(toJSON())` when the journal asks for a snapshot.
   */
  compact?(): Promise<void>;
  /** Optional: writes what is pending and lets go of open files (a journal), on `Site.stop()`. */
  close?(): Promise<void>;
  /** Optional: what loading found wrong but left out (a journal's torn or bad records). */
  readonly problems?: readonly RestoreProblem[];
  /** Optional: what loading found and dealt with, to report (a journal's torn last record). */
  readonly warnings?: readonly string[];
}

/** A state file that could not be read; it has been moved aside to `movedTo`. */
export class StoreCorruptError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly movedTo: string | null,
  ) {
    super(message);
    this.name = 'StoreCorruptError';
  }
}

/**
 * A saved state restored but for some entries, which were left out: `problems` says which and
 * why; `copy` is where the file as it was is kept (null: none could be made).
 */
export class PartialRestoreError extends Error {
  constructor(
    readonly location: string,
    readonly problems: readonly RestoreProblem[],
    readonly copy: string | null,
  ) {
    const n = problems.length;
    const shown = problems.slice(0, 5).map(formatRestoreProblem);
    super(
      `saved state in ${location}: ${n} entr${n === 1 ? 'y' : 'ies'} could not be restored and ${n === 1 ? 'was' : 'were'} left out, everything else was restored (${
        copy === null
          ? 'no copy of the file could be kept'
          : `the file as it was is kept as ${copy}`
      }): ${shown.join('; ')}${n > shown.length ? `; and ${n - shown.length} more` : ''}`,
    );
    this.name = 'PartialRestoreError';
  }
}

/**
 * A JSON file written atomically: the document goes to a temporary file in the same
 * directory, is flushed to disk, then renamed over the old one, so that a crash leaves either
 * the old file or the new one, never a torn one. Writes are serialised; a write asked for
 * while one is running is coalesced into one more write of the latest document.
 */
export class FileStore implements StateStore {
  readonly location: string;
  private pending: { doc: unknown } | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {
    this.location = file;
  }

  load(): unknown {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.file);
    } catch (err) {
      return this.unreadable(err);
    }
    try {
      return runSync(parseJsonBytesSteps(bytes, { float64: true }));
    } catch (err) {
      throw this.notJson(err);
    }
  }

  /** `load` in slices: the file read as asynchronous I/O, parsed in pieces from its bytes. */
  async loadAsync(slicing: SliceOptions = {}): Promise<unknown> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file);
    } catch (err) {
      return this.unreadable(err);
    }
    try {
      return await runSliced(parseJsonBytesSteps(bytes, { float64: true }), slicing);
    } catch (err) {
      throw this.notJson(err);
    }
  }

  /** No file: no state (undefined); one that cannot be read: a StoreCorruptError, thrown. */
  private unreadable(err: unknown): undefined {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreCorruptError(
      `cannot read state file ${this.file}: ${(err as Error).message}`,
      this.file,
      null,
    );
  }

  /** A file that is not JSON: moved aside (`setAside`), and the error that says so. */
  private notJson(err: unknown): StoreCorruptError {
    return this.setAside(`state file ${this.file} is not valid JSON (${(err as Error).message})`);
  }

  /** Moves an unusable file out of the way (never overwrites it) and describes it. */
  setAside(reason: string): StoreCorruptError {
    const movedTo = `${this.file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(this.file, movedTo);
      return new StoreCorruptError(
        `${reason}; moved it to ${movedTo} and started with no saved state`,
        this.file,
        movedTo,
      );
    } catch (err) {
      return new StoreCorruptError(
        `${reason}; could not move it aside (${(err as Error).message})`,
        this.file,
        null,
      );
    }
  }

  /** Copies the file beside itself as `<file>.bad-entries-<time>`; returns the copy, or null. */
  keepCopy(): string | null {
    const copy = `${this.file}.bad-entries-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      copyFileSync(this.file, copy);
      return copy;
    } catch {
      return null;
    }
  }

  save(doc: unknown): Promise<void> {
    const scheduled = this.pending !== null;
    this.pending = { doc };
    if (!scheduled) {
      this.chain = this.chain
        .catch(() => {})
        .then(() => {
          const next = this.pending as { doc: unknown };
          this.pending = null;
          return this.write(next.doc);
        });
    }
    return this.chain;
  }

  private async write(doc: unknown): Promise<void> {
    mkdirSync(path.dirname(this.file), { recursive: true });
    await writeJsonFile(this.file, doc);
  }
}

/** Characters gathered before they are written to the file. */
const WRITE_BUFFER_CHARS = 1 << 20;

/**
 * Writes `value` as the text `JSON.stringify(value)` gives, through `write`, in the pieces
 * of `jsonPieces` (json-chunks.ts), so that `write` can let the event loop turn between
 * pieces.
 */
export async function writeJson(
  value: unknown,
  write: (piece: string) => Promise<void>,
): Promise<void> {
  for (const piece of jsonPieces(value)) await write(piece);
}

/**
 * Writes `doc` as JSON to `file` atomically: to `<file>.tmp-<pid>` in the same directory, a
 * megabyte at a time (a large site's state, 80 MB for 160,000 pending commands, neither
 * blocks the event loop while it is turned into text nor sits in memory as one string),
 * flushed to disk, then renamed over `file`; the temporary file is removed if the rename
 * fails. Returns the bytes written.
 */
export async function writeJsonFile(file: string, doc: unknown): Promise<number> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  let bytes = 0;
  try {
    let buffered: string[] = [];
    let size = 0;
    const flush = async () => {
      const text = buffered.join('');
      buffered = [];
      size = 0;
      bytes += Buffer.byteLength(text, 'utf8');
      await fh.write(text, null, 'utf8');
    };
    await writeJson(doc, async (piece) => {
      buffered.push(piece);
      size += piece.length;
      if (size >= WRITE_BUFFER_CHARS) await flush();
    });
    if (size > 0) await flush();
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return bytes;
}

/** A store in memory, for tests and hosts that persist elsewhere. */
export class MemoryStore implements StateStore {
  readonly location = 'memory';
  doc: unknown;
  saves = 0;
  load(): unknown {
    return this.doc === undefined ? undefined : JSON.parse(JSON.stringify(this.doc));
  }
  async save(doc: unknown): Promise<void> {
    this.doc = JSON.parse(JSON.stringify(doc));
    this.saves++;
  }
}
