/**
 * BigMap and BigSet: a Map and a Set that can hold hundreds of thousands of entries without
 * one insert holding the event loop. A JS Map grows by rehashing its whole table in the one
 * `set` that fills it: on the 2-core bench machine ~7 ms at 32,768 entries, ~14 ms at 65,536
 * and ~28 ms at 131,072 (a Set alike), and its `delete` shrinks it the same way. The engine's
 * index of 160,000 restored commands grew past 131,072 inside a load slice of 8 ms and made it
 * a turn of ~50 ms (docs/PERFORMANCE.md). Here the entries live in Maps of at most
 * `segmentSize` each, in insertion order: a new key goes into the last one (a new one when it
 * is full), so the largest rehash is that of a segment. Everything else is a Map's:
 * insertion order (setting an existing key keeps its place; iteration is segment after
 * segment), `size`, `get`/`has`/`set`/`delete`, the iterators. A lookup asks each segment in
 * turn (newest first): at 160,000 entries, five of them. One difference: a delete while an
 * iterator is under way may merge segments and make it skip or repeat entries (the package
 * never changes one of these while iterating it).
 */

/** Entries per segment by default: its last growth rehashes ~16,384 (~3.5 ms there). */
export const SEGMENT_SIZE = 1 << 15;

class Segments<K, V> {
  protected segs: Map<K, V>[] = [new Map()];
  private count = 0;

  constructor(protected readonly segmentSize = SEGMENT_SIZE) {
    if (!Number.isInteger(segmentSize) || segmentSize < 2)
      throw new RangeError(`segmentSize must be an integer >= 2, got ${segmentSize}`);
  }

  get size(): number {
    return this.count;
  }

  /** The segment holding `key`, or undefined. */
  protected find(key: K): Map<K, V> | undefined {
    const segs = this.segs;
    for (let i = segs.length - 1; i >= 0; i--) {
      const s = segs[i] as Map<K, V>;
      if (s.has(key)) return s;
    }
    return undefined;
  }

  has(key: K): boolean {
    return this.find(key) !== undefined;
  }

  protected put(key: K, value: V): void {
    const segs = this.segs;
    const n = segs.length - 1;
    for (let i = 0; i < n; i++) {
      const s = segs[i] as Map<K, V>;
      if (s.has(key)) {
        s.set(key, value);
        return;
      }
    }
    // The last segment: one `set` whether the key is new or there (its size tells which).
    let last = segs[n] as Map<K, V>;
    if (last.size >= this.segmentSize && !last.has(key)) {
      last = new Map();
      segs.push(last);
    }
    const before = last.size;
    last.set(key, value);
    this.count += last.size - before;
  }

  delete(key: K): boolean {
    const segs = this.segs;
    for (let i = segs.length - 1; i >= 0; i--) {
      const s = segs[i] as Map<K, V>;
      if (!s.delete(key)) continue;
      this.count--;
      this.tidy(i);
      return true;
    }
    return false;
  }

  /**
   * After a delete in segment `i`: an empty segment goes (never the only one); else it is
   * merged with a neighbour when the two fit in half a segment. So any two neighbours hold
   * more than half a segment together, and deletes cannot leave many near-empty segments to
   * ask: there are fewer than 2 + 4 * size / segmentSize. A merge copies half a segment.
   */
  private tidy(i: number): void {
    const segs = this.segs;
    if ((segs[i] as Map<K, V>).size === 0) {
      if (segs.length > 1) segs.splice(i, 1);
      return;
    }
    if (!this.merge(i - 1)) this.merge(i);
  }

  /** Merges segments `i` and `i + 1` if both exist and fit in half a segment. */
  private merge(i: number): boolean {
    const a = this.segs[i];
    const b = this.segs[i + 1];
    if (a === undefined || b === undefined || a.size + b.size > this.segmentSize / 2) return false;
    const merged = new Map(a);
    for (const [k, v] of b) merged.set(k, v);
    this.segs.splice(i, 2, merged);
    return true;
  }

  clear(): void {
    this.segs = [new Map()];
    this.count = 0;
  }

  /** How many segments a lookup may ask (for tests and benchmarks). */
  get segmentCount(): number {
    return this.segs.length;
  }

  /** The entries of each segment, oldest first (for tests). */
  segmentSizes(): number[] {
    return this.segs.map((s) => s.size);
  }

  protected *pairs(): IterableIterator<[K, V]> {
    for (const s of this.segs) yield* s;
  }
}

/** A Map in segments (see the file's comment). */
export class BigMap<K, V> extends Segments<K, V> implements Map<K, V> {
  constructor(entries?: Iterable<readonly [K, V]>, segmentSize = SEGMENT_SIZE) {
    super(segmentSize);
    if (entries) for (const [k, v] of entries) this.put(k, v);
  }

  get(key: K): V | undefined {
    const segs = this.segs;
    for (let i = segs.length - 1; i >= 0; i--) {
      const v = (segs[i] as Map<K, V>).get(key);
      if (v !== undefined) return v; // a key is in one segment only
    }
    return undefined;
  }

  set(key: K, value: V): this {
    this.put(key, value);
    return this;
  }

  *keys(): MapIterator<K> {
    for (const s of this.segs) yield* s.keys();
  }

  *values(): MapIterator<V> {
    for (const s of this.segs) yield* s.values();
  }

  entries(): MapIterator<[K, V]> {
    return this.pairs();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.pairs();
  }

  forEach(fn: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.pairs()) fn.call(thisArg, v, k, this);
  }

  get [Symbol.toStringTag](): string {
    return 'BigMap';
  }
}

/** A Set in segments (see the file's comment). */
export class BigSet<T> extends Segments<T, true> {
  constructor(values?: Iterable<T>, segmentSize = SEGMENT_SIZE) {
    super(segmentSize);
    if (values) for (const v of values) this.put(v, true);
  }

  add(value: T): this {
    this.put(value, true);
    return this;
  }

  *values(): IterableIterator<T> {
    for (const s of this.segs) yield* s.keys();
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
}
