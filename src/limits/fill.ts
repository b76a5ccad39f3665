/**
 * The solver under the allocator: weighted max-min fair sharing of linear capacities
 * (progressive filling, "water-filling") with priorities, upper bounds and minimums.
 * Abstract: items and constraints are numbers; `allocator.ts` and `plan.ts` build them.
 *
 * Items i get x_i in [0, upper_i], and either 0 or at least min_i. Constraint k:
 * sum_i coef_ki x_i <= cap_k (coefs > 0; cap may be negative, then its items get 0).
 * Higher priority classes are filled first; within a class every item grows as weight x t
 * until it reaches its upper bound or one of its constraints is full (then it freezes there).
 * Minimums: a first fill ignores them; the items it leaves below their minimum are dropped,
 * then re-admitted one by one (largest share first) while their minimum still fits beside
 * the minimums of the admitted ones; a second fill starts every admitted item at its minimum
 * (x_i = max(min_i, weight x t)). Cost: O((n + k) log(n + k)) per fill, by keeping each
 * constraint's slope (sum of coef x weight of its growing items) up to date incrementally.
 */

/**
 * A min-heap of constraint indexes keyed by `key[k]` (the t at which constraint k is full),
 * updated in place: no garbage per update, O(log k).
 */
class KeyedHeap {
  private readonly heap: Int32Array;
  private readonly pos: Int32Array;
  private size = 0;

  constructor(
    n: number,
    readonly key: Float64Array,
  ) {
    this.heap = new Int32Array(n);
    this.pos = new Int32Array(n).fill(-1);
  }

  /** The index with the smallest key, or -1. */
  top(): number {
    return this.size > 0 ? (this.heap[0] as number) : -1;
  }

  /** Sets the key of k (adding it if absent). */
  set(k: number, value: number): void {
    const { heap, pos, key } = this;
    let i = pos[k] as number;
    const old = i < 0 ? Number.POSITIVE_INFINITY : (key[k] as number);
    key[k] = value;
    if (i < 0) {
      i = this.size++;
      heap[i] = k;
      pos[k] = i;
      this.up(i);
    } else if (value < old) this.up(i);
    else this.down(i);
  }

  remove(k: number): void {
    const { heap, pos } = this;
    const i = pos[k] as number;
    if (i < 0) return;
    const last = heap[--this.size] as number;
    pos[k] = -1;
    if (i === this.size) return;
    heap[i] = last;
    pos[last] = i;
    this.up(i);
    this.down(pos[last] as number);
  }

  private up(i: number): void {
    const { heap, pos, key } = this;
    const k = heap[i] as number;
    const v = key[k] as number;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pk = heap[p] as number;
      if ((key[pk] as number) <= v) break;
      heap[i] = pk;
      pos[pk] = i;
      i = p;
    }
    heap[i] = k;
    pos[k] = i;
  }

  private down(i: number): void {
    const { heap, pos, key } = this;
    const k = heap[i] as number;
    const v = key[k] as number;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.size) break;
      const r = l + 1;
      let c = l;
      if (r < this.size && (key[heap[r] as number] as number) < (key[heap[l] as number] as number))
        c = r;
      const ck = heap[c] as number;
      if ((key[ck] as number) >= v) break;
      heap[i] = ck;
      pos[ck] = i;
      i = c;
    }
    heap[i] = k;
    pos[k] = i;
  }
}

export interface FillItem {
  upper: number;
  min: number;
  weight: number;
  priority: number;
  /** Constraint indexes, and the coefficient on each (same length). */
  cons: number[];
  coefs: number[];
}

/** `bound` values besides a constraint index. */
export const BOUND_UPPER = -1;
export const BOUND_MIN = -2;

const NONE = 0;
const WAITING = 1;
const ACTIVE = 2;
const FROZEN = 3;
const RELEASE = 0;
const EPS = 1e-9;

export interface FillResult {
  x: Float64Array;
  /** Per item: the constraint index that stopped it, BOUND_UPPER, or BOUND_MIN (dropped). */
  bound: Int32Array;
}

class Filler {
  readonly x: Float64Array;
  readonly bound: Int32Array;
  readonly status: Uint8Array;
  /** The items of constraint k: memberList[memberStart[k] .. memberStart[k + 1]). */
  readonly memberStart: Int32Array;
  readonly memberList: Int32Array;

  constructor(
    readonly items: FillItem[],
    readonly left: Float64Array,
  ) {
    const K = left.length;
    this.x = new Float64Array(items.length);
    this.bound = new Int32Array(items.length).fill(BOUND_UPPER);
    this.status = new Uint8Array(items.length).fill(NONE);
    const start = new Int32Array(K + 1);
    for (const it of items) for (const k of it.cons) start[k + 1] = (start[k + 1] as number) + 1;
    for (let k = 0; k < K; k++) start[k + 1] = (start[k + 1] as number) + (start[k] as number);
    const list = new Int32Array(start[K] as number);
    const cursor = start.slice(0, K);
    items.forEach((it, i) => {
      for (const k of it.cons) {
        list[cursor[k] as number] = i;
        cursor[k] = (cursor[k] as number) + 1;
      }
    });
    this.memberStart = start;
    this.memberList = list;
  }

  /** Progressive filling of `list` against `left`; with `floors`, items start at their minimum. */
  fill(list: number[], floors: boolean): void {
    const { items, left, x, bound, status, memberStart, memberList } = this;
    const K = left.length;
    const n = list.length;
    const fixed = new Float64Array(K);
    const slope = new Float64Array(K);
    const active = new Int32Array(K);
    const done = new Uint8Array(K);
    const heap = new KeyedHeap(K, new Float64Array(K));
    // Item events, keyed by the t they happen at: 2j releases list[j] from its floor, 2j + 1
    // caps it at its upper bound.
    const events = new KeyedHeap(2 * n, new Float64Array(2 * n));
    const touch = (k: number) => {
      if (done[k] || (active[k] as number) <= 0) heap.remove(k);
      else heap.set(k, ((left[k] as number) - (fixed[k] as number)) / (slope[k] as number));
    };
    for (let j = 0; j < n; j++) {
      const i = list[j] as number;
      const it = items[i] as FillItem;
      if (floors && it.min > 0) {
        status[i] = WAITING;
        x[i] = it.min;
        for (let m = 0; m < it.cons.length; m++) {
          const k = it.cons[m] as number;
          fixed[k] = (fixed[k] as number) + (it.coefs[m] as number) * it.min;
        }
        events.set(2 * j, it.min / it.weight);
      } else {
        status[i] = ACTIVE;
        x[i] = 0;
        for (let m = 0; m < it.cons.length; m++) {
          const k = it.cons[m] as number;
          slope[k] = (slope[k] as number) + (it.coefs[m] as number) * it.weight;
          active[k] = (active[k] as number) + 1;
        }
        events.set(2 * j + 1, it.upper / it.weight);
      }
    }
    for (let k = 0; k < K; k++) if ((active[k] as number) > 0) touch(k);
    let t = 0;
    const freeze = (i: number, k: number) => {
      const it = items[i] as FillItem;
      if (status[i] === WAITING) {
        status[i] = FROZEN;
        bound[i] = k;
        return;
      }
      const xi = it.weight * t;
      x[i] = xi;
      status[i] = FROZEN;
      bound[i] = k;
      for (let m = 0; m < it.cons.length; m++) {
        const k2 = it.cons[m] as number;
        const c = it.coefs[m] as number;
        fixed[k2] = (fixed[k2] as number) + c * xi;
        slope[k2] = (slope[k2] as number) - c * it.weight;
        active[k2] = (active[k2] as number) - 1;
        touch(k2);
      }
    };
    for (;;) {
      const top = heap.top();
      // Drop the events of items a full constraint froze.
      let e = events.top();
      while (e >= 0) {
        const i = list[e >> 1] as number;
        if (status[i] === ((e & 1) === RELEASE ? WAITING : ACTIVE)) break;
        events.remove(e);
        e = events.top();
      }
      const tc = top >= 0 ? Math.max(t, heap.key[top] as number) : Number.POSITIVE_INFINITY;
      const te = e >= 0 ? (events.key[e] as number) : Number.POSITIVE_INFINITY;
      if (tc === Number.POSITIVE_INFINITY && te === Number.POSITIVE_INFINITY) break;
      if (te <= tc) {
        events.remove(e);
        const j = e >> 1;
        const i = list[j] as number;
        const it = items[i] as FillItem;
        t = Math.max(t, te);
        if ((e & 1) === RELEASE) {
          status[i] = ACTIVE;
          for (let m = 0; m < it.cons.length; m++) {
            const k = it.cons[m] as number;
            const c = it.coefs[m] as number;
            fixed[k] = (fixed[k] as number) - c * it.min;
            slope[k] = (slope[k] as number) + c * it.weight;
            active[k] = (active[k] as number) + 1;
            touch(k);
          }
          events.set(2 * j + 1, Math.max(t, it.upper / it.weight));
        } else {
          x[i] = it.upper;
          status[i] = FROZEN;
          bound[i] = BOUND_UPPER;
          for (let m = 0; m < it.cons.length; m++) {
            const k = it.cons[m] as number;
            const c = it.coefs[m] as number;
            fixed[k] = (fixed[k] as number) + c * it.upper;
            slope[k] = (slope[k] as number) - c * it.weight;
            active[k] = (active[k] as number) - 1;
            touch(k);
          }
        }
      } else {
        const k = top;
        heap.remove(k);
        t = tc;
        done[k] = 1;
        const end = memberStart[k + 1] as number;
        for (let m = memberStart[k] as number; m < end; m++) {
          const i = memberList[m] as number;
          if (status[i] === ACTIVE || status[i] === WAITING) freeze(i, k);
        }
      }
    }
  }
}

/** Solves one problem; `caps` is not modified. */
export function waterFill(caps: ArrayLike<number>, items: FillItem[]): FillResult {
  const left = Float64Array.from(caps);
  const f = new Filler(items, left);
  const { x, bound } = f;
  const priorities = [...new Set(items.map((it) => it.priority))].sort((a, b) => b - a);
  const byPriority = new Map<number, number[]>(priorities.map((p) => [p, []]));
  items.forEach((it, i) => {
    byPriority.get(it.priority)?.push(i);
  });
  for (const p of priorities) {
    const cls = byPriority.get(p) as number[];
    const candidates: number[] = [];
    for (const i of cls) {
      const it = items[i] as FillItem;
      x[i] = 0;
      if (it.upper <= EPS) bound[i] = BOUND_UPPER;
      else if (it.min > it.upper + EPS) bound[i] = BOUND_MIN;
      else candidates.push(i);
    }
    f.fill(candidates, false);
    const below = candidates.filter((i) => (x[i] as number) < (items[i] as FillItem).min - EPS);
    if (below.length > 0) {
      const admitted = candidates.filter(
        (i) => (x[i] as number) >= (items[i] as FillItem).min - EPS,
      );
      const floorUse = new Float64Array(left.length);
      const addFloor = (i: number) => {
        const it = items[i] as FillItem;
        for (let j = 0; j < it.cons.length; j++) {
          const k = it.cons[j] as number;
          floorUse[k] = (floorUse[k] as number) + (it.coefs[j] as number) * it.min;
        }
      };
      for (const i of admitted) addFloor(i);
      below.sort(
        (a, b) =>
          (x[b] as number) - (x[a] as number) ||
          (items[b] as FillItem).weight - (items[a] as FillItem).weight ||
          a - b,
      );
      for (const i of below) {
        const it = items[i] as FillItem;
        let fits = true;
        for (let j = 0; j < it.cons.length && fits; j++) {
          const k = it.cons[j] as number;
          const lk = left[k] as number;
          if (
            (floorUse[k] as number) + (it.coefs[j] as number) * it.min >
            lk + EPS * Math.max(1, Math.abs(lk))
          )
            fits = false;
        }
        if (fits) {
          admitted.push(i);
          addFloor(i);
        } else {
          x[i] = 0;
          bound[i] = BOUND_MIN;
        }
      }
      f.fill(admitted, true);
    }
    for (const i of cls) {
      const it = items[i] as FillItem;
      const xi = x[i] as number;
      if (xi === 0) continue;
      for (let j = 0; j < it.cons.length; j++) {
        const k = it.cons[j] as number;
        left[k] = (left[k] as number) - (it.coefs[j] as number) * xi;
      }
    }
  }
  return { x, bound };
}
