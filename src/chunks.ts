/**
 * Cooperative work for long loops (a schedule of 10,000 assets x 96 slots): the loop is a
 * generator that yields at checkpoints, about every `CHUNK` units of work (cells, rows,
 * columns). `runSync` runs it to the end at once and reads no clock; `runSliced` runs it in
 * slices of a few milliseconds and lets the event loop serve timers and sockets between
 * them. Both run the same code, so the async forms give the same results and the same errors.
 */

import { setImmediate as nextTurn } from 'node:timers/promises';

/** A loop that yields at checkpoints and returns `T`. */
export type Steps<T> = Generator<void, T, void>;

/** Units of work (cells, etc.) between checkpoints: a few tens of microseconds. */
export const CHUNK = 4096;

/** How long a slice of `runSliced` runs before it gives the event loop a turn, ms. */
export const DEFAULT_SLICE_MS = 8;

export interface SliceOptions {
  /** How long one slice runs before the event loop gets a turn, ms. Default 8. */
  sliceMs?: number;
}

/** Runs `steps` to the end now. */
export function runSync<T>(steps: Steps<T>): T {
  let r = steps.next();
  while (!r.done) r = steps.next();
  return r.value;
}

/**
 * Runs `steps` in slices of about `sliceMs` (a slice ends at the first checkpoint past it),
 * with a turn of the event loop (`setImmediate`) between slices. Work that fits in one
 * slice finishes without giving the turn.
 */
export async function runSliced<T>(steps: Steps<T>, options: SliceOptions = {}): Promise<T> {
  const sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
  if (!(sliceMs >= 0)) throw new RangeError(`sliceMs must be >= 0, got ${String(sliceMs)}`);
  let start = performance.now();
  let r = steps.next();
  while (!r.done) {
    if (performance.now() - start >= sliceMs) {
      await nextTurn();
      start = performance.now();
    }
    r = steps.next();
  }
  return r.value;
}

/** Runs `steps` while `live()` holds; abandons them (null) at the first step where it does not. */
export function* whileLive<T>(steps: Steps<T>, live: () => boolean): Steps<T | null> {
  let r = steps.next();
  while (!r.done) {
    yield;
    if (!live()) {
      steps.return(undefined as T);
      return null;
    }
    r = steps.next();
  }
  return r.value;
}

/** Calls `fn` on each of `items`, with a checkpoint every `every` of them. */
export function* eachInSteps<T>(
  items: Iterable<T>,
  fn: (item: T) => void,
  every = 512,
): Steps<void> {
  let n = 0;
  for (const item of items) {
    if (++n % every === 0) yield;
    fn(item);
  }
}
