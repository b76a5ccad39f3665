/**
 * An empty array whose elements are already of the kind that holds objects (V8's
 * PACKED_ELEMENTS; `[]` is not until its first object is stored). Code optimised on another
 * instance's array (the warm-up's scratch site, src/warm.ts) then meets the same kind at this
 * one's first push, not a deoptimisation in the middle of a site's first burst ("wrong map").
 */
export function objectArray<T>(): T[] {
  const a: unknown[] = [null];
  a.pop();
  return a as T[];
}

/** A binary min-heap ordered by a comparison function. */
export class Heap<T> {
  private readonly items: T[] = objectArray();

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    // Sifted up with a hole, not swaps: nothing allocated, in any tier of V8 (a
    // destructuring swap makes an array when the code is not optimised, as after idle).
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as T;
      if (!this.less(item, parent)) break;
      a[i] = parent;
      i = p;
    }
    a[i] = item;
  }

  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop() as T;
    if (a.length > 0) {
      // Sifted down with a hole (see push).
      const n = a.length;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let m = l;
        if (r < n && this.less(a[r] as T, a[l] as T)) m = r;
        if (!this.less(a[m] as T, last)) break;
        a[i] = a[m] as T;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }

  /** Keeps only the items for which `keep` is true, then restores heap order. O(n). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.items.filter(keep);
    this.items.length = 0;
    for (const x of kept) this.push(x);
  }

  clear(): void {
    this.items.length = 0;
  }
}
