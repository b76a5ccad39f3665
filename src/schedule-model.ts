/**
 * The schedule model: the parse options, setpoint columns (`classifyColumn`), the time
 * column names, the validated columnar `Schedule`, and `RawTable`, the shape every reader
 * (schedule-json.ts, schedule-csv.ts) hands to the validation (schedule-validate.ts).
 */

import type { EpochUnit } from './time';

export interface ParseOptions {
  /** IANA time zone for timestamps without an offset. Default 'UTC'. */
  timeZone?: string;
  /** Slot length for a one-row schedule (otherwise inferred from the index). */
  slotSeconds?: number;
  /** Name of the time column for records, table and CSV input. Default: found by name. */
  timeColumn?: string;
  /** Unit of epoch-number timestamps. Default: by magnitude (s, ms, us or ns). */
  epochUnit?: EpochUnit;
  /** Identifier of the schedule. Default: the input's `scheduleId`, if any. */
  scheduleId?: string;
  /**
   * A column of site import limits, kW per slot (e.g. `peak_target_kw`); an empty cell is no
   * limit in that slot. Default none: such a column is ignored like any other.
   */
  limitColumn?: string;
}

/** Kinds of setpoint columns. */
export type SetpointKind = 'ev' | 'battery_charge' | 'battery_discharge';

export interface SetpointColumn {
  name: string;
  kind: SetpointKind;
  /** The vehicle or battery id in the column name ('' for the single `battery_*_kw` pair). */
  key: string;
}

/** Names tried, in order, for the time column of records, table and CSV input. */
export const TIME_COLUMN_NAMES = [
  'timestamp',
  'time',
  'datetime',
  'date_time',
  'start',
  'slot_start',
  'index',
  'date',
];

const EV_RE = /^ev_(.+)_kw$/;
const BATTERY_RE = /^battery(?:_(.+))?_(charge|discharge)_kw$/;

/** Classifies a column name; null for a column that is not a setpoint. */
export function classifyColumn(name: string): SetpointColumn | null {
  const b = BATTERY_RE.exec(name);
  if (b) {
    return {
      name,
      kind: b[2] === 'charge' ? 'battery_charge' : 'battery_discharge',
      key: b[1] ?? '',
    };
  }
  const e = EV_RE.exec(name);
  if (e && e[1] !== 'total') return { name, kind: 'ev', key: e[1] as string };
  return null;
}

/** A validated schedule: slot start times and, per setpoint column, one value per slot. */
export class Schedule {
  /** Slot start times, epoch ms, strictly increasing. */
  readonly times: Float64Array;
  /** Timestamps as written in the input, for messages. */
  readonly labels: string[];
  /** Slot length in seconds: of the last slot (each other slot ends where the next starts). */
  readonly slotSeconds: number;
  readonly setpoints: SetpointColumn[];
  /** Setpoint values per column, kW; NaN where the input had null ("hold the previous"). */
  readonly values: Map<string, Float64Array>;
  readonly ignoredColumns: string[];
  readonly scheduleId: string | null;
  /** Fields of an optimisation result beside its schedule (total_cost, status, ...). */
  readonly meta: Record<string, unknown>;
  /** The column of site import limits (`limitColumn`), or null. */
  readonly limitColumn: string | null;
  /** Its values per slot, kW; NaN where the slot has no limit. Null without the column. */
  readonly limits: Float64Array | null;

  constructor(init: {
    times: Float64Array;
    labels: string[];
    slotSeconds: number;
    setpoints: SetpointColumn[];
    values: Map<string, Float64Array>;
    ignoredColumns: string[];
    scheduleId: string | null;
    meta: Record<string, unknown>;
    limitColumn?: string | null;
    limits?: Float64Array | null;
  }) {
    this.times = init.times;
    this.labels = init.labels;
    this.slotSeconds = init.slotSeconds;
    this.setpoints = init.setpoints;
    this.values = init.values;
    this.ignoredColumns = init.ignoredColumns;
    this.scheduleId = init.scheduleId;
    this.meta = init.meta;
    this.limitColumn = init.limitColumn ?? null;
    this.limits = init.limits ?? null;
  }

  get rows(): number {
    return this.times.length;
  }

  get start(): Date {
    return new Date(this.times[0] as number);
  }

  /** End of the last slot. */
  get end(): Date {
    return new Date(this.slotEnd(this.times.length - 1));
  }

  /** End of slot `i` (epoch ms): the start of the next, or start + slotSeconds for the last. */
  slotEnd(i: number): number {
    return i + 1 < this.times.length
      ? (this.times[i + 1] as number)
      : (this.times[i] as number) + this.slotSeconds * 1000;
  }
}

/** A table before validation: times as written, columns, and a value getter. */
export interface RawTable {
  times: unknown[];
  columns: string[];
  /** Value of column `c` (index into columns) at row `r`. */
  cell(r: number, c: number): unknown;
  /** Row arrays, when the input has them (split orient): read directly, for speed. */
  rows?: unknown[][];
  /** How the rows are numbered in messages (CSV: line numbers). */
  rowLabel?: (r: number) => string;
  /** CSV: empty cells mean null. */
  emptyIsNull?: boolean;
}

/** A JSON object (not null, an array or a Buffer). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);
}
