/**
 * Schedule plans: a converted schedule kept as columns of numbers instead of one object per
 * future command. A `SchedulePlan` is what travels (a Node-RED wire, `engine.submitPlan`);
 * a `StoredPlan` is the engine's copy, in typed arrays (16 bytes a row), with one cursor per
 * asset: the rows before `next` have been made into commands, the rows from `next` to `end`
 * are still only numbers. This file owns the format, its validation, and how a row becomes
 * the very command (`id`, times, settings) that `convertSchedule`'s `commands` would give.
 */

import { CHUNK, runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import {
  type Command,
  CommandStatus,
  CommandType,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
} from './commands';
import type { Conversion } from './convert';

/** Assets handled between two checkpoints when a plan is made or read in steps. */
const ASSETS_PER_CHUNK = CHUNK / 4;

/** One asset of a plan: its rows are the next `count` rows of the columns, in time order. */
export interface PlanAssetEntry {
  assetId: string;
  kind: 'ev' | 'battery';
  /** The schedule columns that set it (a command's `source.columns`). */
  columns: string[];
  count: number;
  /**
   * When its last row stops applying (epoch ms), earlier than that row's `until`: a newer
   * schedule cut it short. Absent or null: as `until` says.
   */
  endMs?: number | null;
}

/**
 * A schedule's commands, columnar: row k is one command, for the asset whose range holds k
 * (the assets' `count`s, in order). Arrays may be typed arrays or plain number arrays.
 */
export interface SchedulePlan {
  scheduleId: string;
  /** The commands' creation time, epoch ms. */
  createdAt: number;
  priority: number;
  maxRetries: number;
  timeoutSeconds: number;
  /** Epoch ms of each slot start, and last the end of the schedule. */
  times: ArrayLike<number>;
  assets: PlanAssetEntry[];
  /** Index into `times` at which each row is due; `times.length - 1` is the horizon end. */
  slot: ArrayLike<number>;
  /** Signed kW: negative discharges a battery. */
  valueKw: ArrayLike<number>;
  /** Index into `times` at which each row stops applying, or -1: until replaced. */
  until: ArrayLike<number>;
}

/** A plan as JSON (the rows not yet made into commands): `SchedulePlan` with plain arrays. */
export interface PlanJSON extends SchedulePlan {
  times: number[];
  slot: number[];
  valueKw: number[];
  until: number[];
}

export {
  planOfConversion,
  planOfConversionAsync,
  planOfConversionSteps,
} from './plan-convert';

/** Whether `x` is a Conversion (it has its change plan) rather than a SchedulePlan. */
export function isConversion(x: unknown): x is Conversion {
  return x !== null && typeof x === 'object' && 'changes' in x && 'made' in x;
}

/** One asset's place in a stored plan. */
export interface PlanCursor {
  readonly plan: StoredPlan;
  readonly assetId: string;
  readonly kind: 'ev' | 'battery';
  readonly columns: string[];
  /** Its first row in the plan's columns. */
  readonly first: number;
  /** The first row not yet made into a command. */
  next: number;
  /** One past its last row still planned (lowered when a newer schedule cuts it short). */
  end: number;
  /** When its last row stops applying, if earlier than that row's `until` (NaN: not set). */
  endMs: number;
  /** Of its live entry in the engine's due heap (stale entries are skipped). */
  token: number;
}

/** The engine's copy of a plan. */
export class StoredPlan {
  readonly scheduleId: string;
  readonly createdAt: number;
  readonly priority: number;
  readonly maxRetries: number;
  readonly timeoutSeconds: number;
  readonly times: Float64Array;
  readonly slot: Int32Array;
  readonly valueKw: Float64Array;
  readonly until: Int32Array;
  readonly cursors: PlanCursor[] = [];
  readonly byAsset = new Map<string, PlanCursor>();
  /** The engine's sequence number of row 0 (row k has seqBase + k: the submission order). */
  seqBase = 0;
  /** Cursors with no row left (the plan is used up when all are). */
  closed = 0;
  /** Made ahead by `PlanBook.stage`: one set per cursor (index), until the plan is added. */
  staged: Set<PlanCursor>[] | undefined = undefined;
  private readonly dates: (Date | undefined)[];
  private readonly created: Date;
  private readonly history: Command['history'];

  /**
   * A stored copy of `p`: its arrays copied, one cursor per asset (`later`: none yet, for
   * `build`; `own`: `p`'s arrays are taken as they are, of the right types, used by nobody else).
   */
  constructor(p: SchedulePlan, later = false, own = false) {
    this.scheduleId = p.scheduleId;
    this.createdAt = p.createdAt;
    this.priority = p.priority;
    this.maxRetries = p.maxRetries;
    this.timeoutSeconds = p.timeoutSeconds;
    this.times = own ? (p.times as Float64Array) : new Float64Array(p.times);
    this.slot = own ? (p.slot as Int32Array) : new Int32Array(p.slot);
    this.valueKw = own ? (p.valueKw as Float64Array) : new Float64Array(p.valueKw);
    this.until = own ? (p.until as Int32Array) : new Int32Array(p.until);
    this.dates = new Array(this.times.length);
    this.created = new Date(this.createdAt);
    this.history = Object.freeze([
      Object.freeze({ status: CommandStatus.PENDING, at: this.created }),
    ]) as unknown as Command['history'];
    if (!later) runSync(this.cursorSteps(p.assets));
  }

  /**
   * The same copy made in steps (see chunks.ts): a checkpoint every ASSETS_PER_CHUNK assets,
   * for a plan of 10,000 assets read in slices (`readPlanInChunks`).
   */
  static *build(p: SchedulePlan, own = false): Steps<StoredPlan> {
    const plan = new StoredPlan(p, true, own);
    yield* plan.cursorSteps(p.assets);
    return plan;
  }

  private *cursorSteps(assets: readonly PlanAssetEntry[]): Steps<void> {
    let row = 0;
    for (let i = 0; i < assets.length; i++) {
      const a = assets[i] as PlanAssetEntry;
      if (i % ASSETS_PER_CHUNK === ASSETS_PER_CHUNK - 1) yield;
      const c: PlanCursor = {
        plan: this,
        assetId: a.assetId,
        kind: a.kind,
        columns: Object.freeze([...a.columns]) as string[],
        first: row,
        next: row,
        end: row + a.count,
        endMs: a.endMs ?? Number.NaN,
        token: 0,
      };
      row += a.count;
      this.cursors.push(c);
      this.byAsset.set(a.assetId, c);
    }
  }

  /** Rows not yet made into commands. */
  rowsLeft(): number {
    let n = 0;
    for (const c of this.cursors) n += c.end - c.next;
    return n;
  }

  /** When row `r` is due, epoch ms. */
  timeOf(r: number): number {
    return this.times[this.slot[r] as number] as number;
  }

  /** The first row of `c` due at or after `t` (`c.end` when none). */
  firstAtOrAfter(c: PlanCursor, t: number): number {
    let lo = c.next;
    let hi = c.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timeOf(mid) >= t) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The row of `c` for schedule row `slot` (a command's `source.slot`), or -1. */
  rowOfSlot(c: PlanCursor, slot: number, from = c.next): number {
    for (let r = from; r < c.end; r++) if (this.slot[r] === slot) return r;
    return -1;
  }

  /** The id of row `r`: `<scheduleId>:<assetId>:<slot>` (`:end` for the horizon end). */
  rowId(c: PlanCursor, r: number): string {
    const s = this.slot[r] as number;
    return `${this.scheduleId}:${c.assetId}:${s === this.times.length - 1 ? 'end' : s}`;
  }

  /** Row `r` of `c` as a PENDING command, as `convertSchedule`'s `commands` makes it. */
  command(c: PlanCursor, r: number): Command {
    const s = this.slot[r] as number;
    const value = this.valueKw[r] as number;
    const u = this.until[r] as number;
    const discharge = c.kind === 'battery' && value < 0;
    const validUntil =
      r === c.end - 1 && !Number.isNaN(c.endMs) ? new Date(c.endMs) : u < 0 ? null : this.dateOf(u);
    return {
      id: this.rowId(c, r),
      assetId: c.assetId,
      type: discharge ? CommandType.SET_DISCHARGE_RATE : CommandType.SET_CHARGE_RATE,
      valueKw: discharge ? -value : value,
      scheduledAt: this.dateOf(s),
      validUntil,
      status: CommandStatus.PENDING,
      priority: this.priority,
      attempts: 0,
      maxRetries: this.maxRetries,
      timeoutSeconds: this.timeoutSeconds,
      scheduleId: this.scheduleId,
      source: { columns: c.columns, slot: s },
      lastError: null,
      holdReason: null,
      nextAttemptAt: null,
      deadline: null,
      createdAt: this.created,
      history: this.history,
    };
  }

  private dateOf(slot: number): Date {
    let d = this.dates[slot];
    if (d === undefined) {
      d = new Date(this.times[slot] as number);
      this.dates[slot] = d;
    }
    return d;
  }

  /** Same schedule content as `other` (a re-delivery), comparing the rows still planned. */
  sameRows(other: StoredPlan): boolean {
    if (other.cursors.length !== this.cursors.length) return false;
    for (const o of other.cursors) {
      const c = this.byAsset.get(o.assetId);
      if (!c || c.first !== o.first || c.end > o.end) return false;
      // Rows already made or cut here are compared as far as both still hold them.
      for (let r = c.next; r < c.end; r++) {
        if (this.timeOf(r) !== other.times[other.slot[r] as number]) return false;
        if (this.valueKw[r] !== other.valueKw[r]) return false;
      }
    }
    return true;
  }

  /** The rows still planned, as JSON (persistence; the journal's `p:` records). */
  toJSON(): PlanJSON {
    const assets: PlanAssetEntry[] = [];
    const slot: number[] = [];
    const valueKw: number[] = [];
    const until: number[] = [];
    for (const c of this.cursors) {
      if (c.next >= c.end) continue;
      const a: PlanAssetEntry = {
        assetId: c.assetId,
        kind: c.kind,
        columns: [...c.columns],
        count: c.end - c.next,
      };
      if (!Number.isNaN(c.endMs)) a.endMs = c.endMs;
      assets.push(a);
      for (let r = c.next; r < c.end; r++) {
        slot.push(this.slot[r] as number);
        valueKw.push(this.valueKw[r] as number);
        until.push(this.until[r] as number);
      }
    }
    return {
      scheduleId: this.scheduleId,
      createdAt: this.createdAt,
      priority: this.priority,
      maxRetries: this.maxRetries,
      timeoutSeconds: this.timeoutSeconds,
      times: [...this.times],
      assets,
      slot,
      valueKw,
      until,
    };
  }
}

/**
 * Checks a plan (from a wire, a saved document, a hand) and copies it: a TypeError names the
 * first thing wrong (`<where>.assets[2].count: ...`). O(rows) number checks, no object per row.
 */
export function readPlan(input: unknown, where = 'plan'): StoredPlan {
  const reader = planReader(input, where);
  for (;;) {
    const step = reader.next();
    if (step.done) return step.value;
  }
}

/**
 * `readPlan` in slices of a few ms (`runSliced`), the event loop served between them: a plan
 * of 10,000 assets x 96 slots would otherwise hold it for tens of ms. The same StoredPlan, or
 * the same TypeError as a rejection. Each row is read once, over several turns, into the
 * stored plan's own arrays: a plan changed while it is read may be read part old, part new
 * (don't), and changing it afterwards changes nothing.
 */
export function readPlanInChunks(
  input: unknown,
  where = 'plan',
  slicing: SliceOptions = {},
): Promise<StoredPlan> {
  return runSliced(planReader(input, where), slicing);
}

/** `readPlan` as a loop that yields at checkpoints (see chunks.ts). */
export function readPlanSteps(input: unknown, where = 'plan'): Steps<StoredPlan> {
  return planReader(input, where);
}

function* planReader(input: unknown, where: string): Generator<void, StoredPlan> {
  const fail = (field: string, why: string): never => {
    throw new TypeError(`${where}${field}: ${why}`);
  };
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    fail('', `must be a schedule plan object, got ${shownValue(input)}`);
  const p = input as Record<string, unknown>;
  if (typeof p.scheduleId !== 'string' || p.scheduleId === '')
    fail('.scheduleId', `must be a non-empty string, got ${shownValue(p.scheduleId)}`);
  const num = (k: string, ok: (v: number) => boolean, what: string): number => {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
      fail(`.${k}`, `must be ${what}, got ${shownValue(v)}`);
    return v as number;
  };
  num('createdAt', () => true, 'a time (epoch ms)');
  num('priority', () => true, 'a number');
  num('maxRetries', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  num(
    'timeoutSeconds',
    (v) => v > 0 && v <= MAX_TIMEOUT_SECONDS,
    `a number > 0, <= ${MAX_TIMEOUT_SECONDS}`,
  );
  const arr = (k: string): ArrayLike<number> => {
    const v = p[k] as ArrayLike<number> | undefined;
    if (!Array.isArray(v) && !ArrayBuffer.isView(v))
      fail(`.${k}`, `must be an array of numbers, got ${shownValue(v)}`);
    return v as ArrayLike<number>;
  };
  // `times` is short: copied now. The rows are read once each, in the loop below, straight
  // into the stored plan's arrays (no copy of the input first: a first touch of fresh memory
  // is costly, so each chunk of rows touches its own part).
  const timesIn = arr('times');
  const slotIn = arr('slot');
  const valueIn = arr('valueKw');
  const untilIn = arr('until');
  const list = Array.isArray(p.assets) ? p.assets.slice() : null;
  const n = timesIn.length;
  if (n < 1) fail('.times', 'must hold at least the end of the schedule');
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = timesIn[i];
    if (typeof t !== 'number' || !Number.isFinite(t) || (i > 0 && t <= (times[i - 1] as number)))
      fail(`.times[${i}]`, `must be a time (epoch ms) after the one before, got ${shownValue(t)}`);
    times[i] = t as number;
  }
  if (list === null) fail('.assets', `must be an array, got ${shownValue(p.assets)}`);
  const seen = new Set<string>();
  const assets: PlanAssetEntry[] = [];
  let rows = 0;
  for (let i = 0; i < (list as unknown[]).length; i++) {
    if (i % ASSETS_PER_CHUNK === ASSETS_PER_CHUNK - 1) yield;
    const a = (list as unknown[])[i];
    const at = `.assets[${i}]`;
    if (a === null || typeof a !== 'object') fail(at, `must be an object, got ${shownValue(a)}`);
    const e = a as Record<string, unknown>;
    if (typeof e.assetId !== 'string' || e.assetId === '')
      fail(`${at}.assetId`, `must be a non-empty string, got ${shownValue(e.assetId)}`);
    if (seen.has(e.assetId as string)) fail(`${at}.assetId`, `${e.assetId} appears twice`);
    seen.add(e.assetId as string);
    if (e.kind !== 'ev' && e.kind !== 'battery')
      fail(`${at}.kind`, `must be "ev" or "battery", got ${shownValue(e.kind)}`);
    if (!Array.isArray(e.columns) || !e.columns.every((x) => typeof x === 'string'))
      fail(`${at}.columns`, `must be an array of column names, got ${shownValue(e.columns)}`);
    if (!Number.isInteger(e.count) || (e.count as number) < 0)
      fail(`${at}.count`, `must be an integer >= 0, got ${shownValue(e.count)}`);
    if (e.endMs !== undefined && e.endMs !== null && !Number.isFinite(e.endMs))
      fail(`${at}.endMs`, `must be a time (epoch ms) or null, got ${shownValue(e.endMs)}`);
    rows += e.count as number;
    assets.push({
      assetId: e.assetId as string,
      kind: e.kind as 'ev' | 'battery',
      columns: [...(e.columns as string[])],
      count: e.count as number,
      endMs: (e.endMs as number | null | undefined) ?? null,
    });
  }
  for (const [k, v] of [
    ['slot', slotIn],
    ['valueKw', valueIn],
    ['until', untilIn],
  ] as const) {
    if (v.length !== rows)
      fail(`.${k}`, `has ${v.length} entries, but the assets' counts add up to ${rows}`);
  }
  // Plain arrays (a plan that went through JSON) may hold anything: every entry a number.
  const number = (k: string, v: unknown, r: number): number =>
    typeof v === 'number' ? v : fail(`.${k}[${r}]`, `must be a number, got ${shownValue(v)}`);
  const S = new Int32Array(rows);
  const V = new Float64Array(rows);
  const U = new Int32Array(rows);
  let r = 0;
  for (const e of assets) {
    const ev = e.kind === 'ev';
    const end = r + e.count;
    for (let prev = -1; r < end; r++) {
      const s = number('slot', slotIn[r], r);
      if (!Number.isInteger(s) || s < 0 || s >= n)
        fail(`.slot[${r}]`, `must be an index into times (0 to ${n - 1}), got ${shownValue(s)}`);
      if (s <= prev)
        fail(`.slot[${r}]`, `must come after the asset's row before (${prev}), got ${s}`);
      prev = s;
      if (r % CHUNK === CHUNK - 1) yield;
      const v = number('valueKw', valueIn[r], r);
      if (!(Math.abs(v) <= MAX_POWER_KW) || (ev && v < 0))
        fail(
          `.valueKw[${r}]`,
          `must be a number (kW) within ${ev ? `0 and ${MAX_POWER_KW} for an EV` : `+-${MAX_POWER_KW}`}, got ${shownValue(v)}`,
        );
      const u = number('until', untilIn[r], r);
      if (!Number.isInteger(u) || (u !== -1 && (u <= s || u >= n)))
        fail(
          `.until[${r}]`,
          `must be -1 or an index into times after slot ${s}, got ${shownValue(u)}`,
        );
      S[r] = s;
      V[r] = v;
      U[r] = u;
    }
  }
  return yield* StoredPlan.build(
    {
      scheduleId: p.scheduleId as string,
      createdAt: p.createdAt as number,
      priority: p.priority as number,
      maxRetries: p.maxRetries as number,
      timeoutSeconds: p.timeoutSeconds as number,
      times,
      assets,
      slot: S,
      valueKw: V,
      until: U,
    },
    true,
  );
}

function shownValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return 'a typed array';
  const s = JSON.stringify(v);
  return s === undefined ? typeof v : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
