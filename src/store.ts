import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** Where a site keeps its state between restarts. */
export interface StateStore {
  /** The saved document, or undefined when there is none. Throws StoreCorruptError. */
  load(): unknown;
  save(doc: unknown): Promise<void>;
  /** Human-readable location, for messages. */
  readonly location: string;
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
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreCorruptError(
        `cannot read state file ${this.file}: ${(err as Error).message}`,
        this.file,
        null,
      );
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      throw this.setAside(`state file ${this.file} is not valid JSON (${(err as Error).message})`);
    }
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
    const tmp = `${this.file}.tmp-${process.pid}`;
    const text = JSON.stringify(doc);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }
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
