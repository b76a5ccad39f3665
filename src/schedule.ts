/**
 * Schedules in the shapes an optimiser emits, normalised to one columnar `Schedule`.
 *
 * Accepted (also as JSON text, as a Buffer, and wrapped as `{schedule, ...otherFields}`):
 * - pandas `DataFrame.to_json` orients `split`, `index`, `columns`, `records` (with a time
 *   column) and `table`, index as ISO 8601 strings or epoch numbers;
 * - an array of row objects with a `timestamp` field;
 * - CSV text whose first column is the time (pandas `to_csv`).
 *
 * Only setpoint columns are validated and kept: `ev_<vehicle>_kw`, `battery_charge_kw`,
 * `battery_discharge_kw`, `battery_<id>_charge_kw`, `battery_<id>_discharge_kw`, and the
 * site import limit column when `limitColumn` names one. Every other column is reported in
 * `ignoredColumns`.
 */

import { CHUNK, runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import { describe, MAX_POWER_KW } from './commands';
import { parseJsonSteps } from './json-chunks';
import {
  EARLIEST_PLAUSIBLE_MS,
  type EpochUnit,
  isValidTimeZone,
  LATEST_TIME_MS,
  parseTimestamp,
} from './time';

export interface ScheduleProblem {
  /** Zero-based data row, when the problem is in a row. */
  row?: number;
  /** The row's timestamp as written, when known. */
  time?: string;
  column?: string;
  value?: unknown;
  reason: string;
}

const MAX_PROBLEMS = 50;

/** A schedule rejected whole. `problems` lists what was wrong and where (up to 50). */
export class ScheduleError extends Error {
  readonly problems: ScheduleProblem[];
  constructor(problems: ScheduleProblem[] | string, extra = 0) {
    const list = typeof problems === 'string' ? [{ reason: problems }] : problems;
    const shown = list.slice(0, 5).map(formatProblem);
    const more = list.length - shown.length + extra;
    super(
      `invalid schedule: ${shown.join('; ')}${more > 0 ? `; and ${more} more problem${more > 1 ? 's' : ''}` : ''}`,
    );
    this.name = 'ScheduleError';
    this.problems = list;
  }
}

export function formatProblem(p: ScheduleProblem): string {
  const where: string[] = [];
  if (p.row !== undefined)
    where.push(p.time !== undefined ? `row ${p.row} (${p.time})` : `row ${p.row}`);
  if (p.column !== undefined) where.push(`column ${p.column}`);
  return where.length > 0 ? `${where.join(', ')}: ${p.reason}` : p.reason;
}

/** Collects problems up to a bound, then throws them together. */
class Problems {
  readonly list: ScheduleProblem[] = [];
  overflow = 0;
  add(p: ScheduleProblem): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(p);
    else this.overflow++;
  }
  get size(): number {
    return this.list.length + this.overflow;
  }
  throwIfAny(): void {
    if (this.size > 0) throw new ScheduleError(this.list, this.overflow);
  }
}

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
interface RawTable {
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

/**
 * Parses a schedule in any accepted shape into a validated `Schedule`, or throws a
 * `ScheduleError` that names each row, column and value that was wrong.
 */
export function parseSchedule(input: unknown, options: ParseOptions = {}): Schedule {
  return runSync(parseSteps(input, options));
}

/**
 * `parseSchedule` in slices of a few milliseconds, the event loop served between them (a
 * schedule of 10,000 columns takes hundreds of ms): the same result, or the same
 * ScheduleError as a rejection. JSON text is parsed by `JSON.parse` in one piece.
 */
export function parseScheduleAsync(
  input: unknown,
  options: ParseOptions = {},
  slicing: SliceOptions = {},
): Promise<Schedule> {
  return runSliced(parseSteps(input, options, true), slicing);
}

/**
 * `parseSchedule` as a loop that yields at checkpoints (see chunks.ts); `sliced`: JSON text
 * is parsed in pieces too (parseJsonSteps), for a result the same as JSON.parse's.
 */
export function* parseSteps(
  input: unknown,
  options: ParseOptions = {},
  sliced = false,
): Steps<Schedule> {
  if (input instanceof Schedule) return input;
  const timeZone = options.timeZone ?? 'UTC';
  if (!isValidTimeZone(timeZone)) {
    throw new ScheduleError(
      `unknown time zone ${JSON.stringify(timeZone)} (use an IANA name such as Europe/Berlin)`,
    );
  }
  if (
    options.limitColumn !== undefined &&
    (typeof options.limitColumn !== 'string' || options.limitColumn === '')
  ) {
    throw new ScheduleError(
      `limitColumn must be a column name, got ${JSON.stringify(options.limitColumn)}`,
    );
  }
  if (options.slotSeconds !== undefined && !(options.slotSeconds > 0)) {
    throw new ScheduleError(
      `slotSeconds must be a number > 0, got ${JSON.stringify(options.slotSeconds)}`,
    );
  }
  let value = yield* decode(input, sliced);
  let meta: Record<string, unknown> = {};
  let scheduleId = options.scheduleId ?? null;
  if (isPlainObject(value) && 'schedule' in value) {
    const { schedule, ...rest } = value;
    meta = rest;
    if (
      scheduleId === null &&
      (typeof rest.scheduleId === 'string' || typeof rest.scheduleId === 'number')
    ) {
      scheduleId = String(rest.scheduleId);
    }
    value = yield* decode(schedule, sliced);
  }
  const table = yield* toRawTable(value, options);
  return yield* buildSchedule(table, { ...options, timeZone }, scheduleId, meta);
}

function* decode(input: unknown, sliced: boolean): Steps<unknown> {
  if (Buffer.isBuffer(input)) return yield* decode(input.toString('utf8'), sliced);
  if (typeof input !== 'string') return input;
  const text = input.replace(/^\uFEFF/, '');
  const t = text.trimStart();
  if (t === '') throw new ScheduleError('the schedule is empty');
  if (t[0] === '{' || t[0] === '[') {
    try {
      return sliced ? yield* parseJsonSteps(text) : JSON.parse(text);
    } catch (err) {
      throw new ScheduleError(`the schedule is not valid JSON: ${(err as Error).message}`);
    }
  }
  return yield* csvSteps(text);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v);
}

/** CSV input as rows of strings, with the line number of each row. */
export class CsvRows {
  constructor(
    readonly header: string[],
    readonly rows: string[][],
    readonly lines: number[],
  ) {}
}

function* toRawTable(value: unknown, options: ParseOptions): Steps<RawTable> {
  if (value instanceof CsvRows) return csvTable(value, options);
  if (Array.isArray(value)) return yield* recordsTable(value, options, 'records');
  if (!isPlainObject(value)) {
    throw new ScheduleError(
      `expected a schedule (an object, an array of rows, or CSV or JSON text), got ${describe(value)}`,
    );
  }
  if ('columns' in value && 'data' in value && Array.isArray(value.data)) return splitTable(value);
  if ('schema' in value && 'data' in value && Array.isArray(value.data))
    return yield* tableOrient(value, options);
  if (
    'data' in value &&
    !('columns' in value) &&
    Array.isArray(value.data) &&
    !('index' in value)
  ) {
    return yield* recordsTable(value.data, options, 'data');
  }
  const keys = Object.keys(value);
  if (keys.length === 0) throw new ScheduleError('the schedule is empty');
  // 'index' orient: {time: {column: value}}; 'columns' orient: {column: {time: value}}.
  const first = value[keys[0] as string];
  if (!isPlainObject(first)) {
    throw new ScheduleError(
      `unrecognised schedule object (keys ${keys.slice(0, 5).join(', ')}): expected pandas to_json output (orient split, index, columns, records or table), an array of rows, or {schedule: ...}`,
    );
  }
  const tz = { timeZone: options.timeZone ?? 'UTC', epochUnit: options.epochUnit };
  const topIsTime = typeof parseTimestamp(keys[0], tz) === 'number';
  return topIsTime ? yield* indexOrient(value, keys) : yield* columnsOrient(value, keys);
}

function splitTable(v: Record<string, unknown>): RawTable {
  const { columns, index, data } = v as { columns: unknown; index: unknown; data: unknown[] };
  if (!Array.isArray(columns)) throw new ScheduleError('split orient: "columns" must be an array');
  if (index === undefined) {
    throw new ScheduleError(
      'split orient: no "index": the DataFrame needs a DatetimeIndex (or write it with orient="records" and a time column)',
    );
  }
  if (!Array.isArray(index)) throw new ScheduleError('split orient: "index" must be an array');
  if (index.length !== data.length) {
    throw new ScheduleError(
      `split orient: "index" has ${index.length} entries but "data" has ${data.length} rows`,
    );
  }
  const cols = columns.map(String);
  for (let r = 0; r < data.length; r++) {
    const row = data[r];
    if (!Array.isArray(row) || row.length !== cols.length) {
      throw new ScheduleError([
        {
          row: r,
          reason: `expected an array of ${cols.length} values (one per column), got ${Array.isArray(row) ? `${row.length} values` : describe(row)}`,
        },
      ]);
    }
  }
  return {
    times: index,
    columns: cols,
    cell: (r, c) => (data[r] as unknown[])[c],
    rows: data as unknown[][],
  };
}

function* indexOrient(v: Record<string, unknown>, keys: string[]): Steps<RawTable> {
  const columns: string[] = [];
  const seen = new Set<string>();
  const rows: Record<string, unknown>[] = [];
  let work = 0;
  for (let r = 0; r < keys.length; r++) {
    const row = v[keys[r] as string];
    if (!isPlainObject(row)) {
      throw new ScheduleError([
        {
          row: r,
          time: keys[r],
          reason: `expected an object of column values, got ${describe(row)}`,
        },
      ]);
    }
    rows.push(row);
    const names = Object.keys(row);
    for (const c of names) {
      if (!seen.has(c)) {
        seen.add(c);
        columns.push(c);
      }
    }
    work += names.length + 1;
    if (work >= CHUNK) {
      work = 0;
      yield;
    }
  }
  return {
    times: keys,
    columns,
    cell: (r, c) => (rows[r] as Record<string, unknown>)[columns[c] as string],
  };
}

function* columnsOrient(v: Record<string, unknown>, columns: string[]): Steps<RawTable> {
  // Rows are the union of the time keys, in the order first seen.
  const rowOf = new Map<string, number>();
  const times: string[] = [];
  const colObjs: Record<string, unknown>[] = [];
  let work = 0;
  for (const c of columns) {
    const obj = v[c];
    if (!isPlainObject(obj)) {
      throw new ScheduleError([
        { column: c, reason: `expected an object of {time: value}, got ${describe(obj)}` },
      ]);
    }
    colObjs.push(obj);
    for (const k in obj) {
      if (!rowOf.has(k)) {
        rowOf.set(k, times.length);
        times.push(k);
      }
      work++;
    }
    if (++work >= CHUNK) {
      work = 0;
      yield;
    }
  }
  return {
    times,
    columns,
    cell: (r, c) => (colObjs[c] as Record<string, unknown>)[times[r] as string],
  };
}

function findTimeColumn(columns: string[], options: ParseOptions, what: string): string {
  if (options.timeColumn !== undefined) {
    if (!columns.includes(options.timeColumn)) {
      throw new ScheduleError(
        `${what}: no time column ${JSON.stringify(options.timeColumn)} (columns: ${columns.slice(0, 10).join(', ')})`,
      );
    }
    return options.timeColumn;
  }
  for (const name of TIME_COLUMN_NAMES) {
    const found = columns.find((c) => c.toLowerCase() === name);
    if (found !== undefined) return found;
  }
  throw new ScheduleError(
    `${what}: no time column: name one ${TIME_COLUMN_NAMES.join(', ')}, or set timeColumn (columns: ${columns.slice(0, 10).join(', ')})`,
  );
}

function* recordsTable(rows: unknown[], options: ParseOptions, what: string): Steps<RawTable> {
  if (rows.length === 0) throw new ScheduleError('the schedule has no rows');
  const columns: string[] = [];
  const seen = new Set<string>();
  let work = 0;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    if (!isPlainObject(row)) {
      throw new ScheduleError([{ row: r, reason: `expected a row object, got ${describe(row)}` }]);
    }
    const names = Object.keys(row);
    for (const c of names) {
      if (!seen.has(c)) {
        seen.add(c);
        columns.push(c);
      }
    }
    work += names.length + 1;
    if (work >= CHUNK) {
      work = 0;
      yield;
    }
  }
  const timeCol = findTimeColumn(columns, options, what);
  const dataCols = columns.filter((c) => c !== timeCol);
  const objs = rows as Record<string, unknown>[];
  return {
    times: objs.map((o) => o[timeCol]),
    columns: dataCols,
    cell: (r, c) => (objs[r] as Record<string, unknown>)[dataCols[c] as string],
  };
}

function* tableOrient(v: Record<string, unknown>, options: ParseOptions): Steps<RawTable> {
  const schema = v.schema as { primaryKey?: unknown; fields?: unknown } | undefined;
  let timeColumn = options.timeColumn;
  if (
    timeColumn === undefined &&
    schema &&
    Array.isArray(schema.primaryKey) &&
    schema.primaryKey.length > 0
  ) {
    timeColumn = String(schema.primaryKey[0]);
  }
  if (timeColumn === undefined && schema && Array.isArray(schema.fields)) {
    const f = (schema.fields as { name?: unknown; type?: unknown }[]).find(
      (x) => x?.type === 'datetime',
    );
    if (f && typeof f.name === 'string') timeColumn = f.name;
  }
  const opts = timeColumn === undefined ? options : { ...options, timeColumn };
  return yield* recordsTable(v.data as unknown[], opts, 'table orient');
}

/** RFC 4180 CSV as pandas writes it: comma separated, quotes where needed, "" inside quotes. */
export function parseCsv(text: string): CsvRows {
  return runSync(csvSteps(text));
}

function* csvSteps(text: string): Steps<CsvRows> {
  const records: string[][] = [];
  const lines: number[] = [];
  let field = '';
  let row: string[] = [];
  let line = 1;
  let rowLine = 1;
  let i = 0;
  let quoted = false;
  const n = text.length;
  let mark = 0;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (quoted) {
      if (ch === 34 /* " */) {
        if (text.charCodeAt(i + 1) === 34) {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      if (ch === 10) line++;
      field += text[i];
      i++;
      continue;
    }
    if (ch === 34 && field === '') {
      quoted = true;
      i++;
    } else if (ch === 44 /* , */) {
      row.push(field);
      field = '';
      i++;
    } else if (ch === 10 || ch === 13) {
      row.push(field);
      field = '';
      if (!(row.length === 1 && row[0] === '')) {
        records.push(row);
        lines.push(rowLine);
      }
      row = [];
      if (ch === 13 && text.charCodeAt(i + 1) === 10) i++;
      i++;
      line++;
      rowLine = line;
      if (i - mark >= CHUNK * 16) {
        mark = i;
        yield;
      }
    } else {
      // Take a run of plain characters at once.
      let j = i + 1;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 44 || c === 10 || c === 13 || c === 34) break;
        j++;
      }
      field += text.slice(i, j);
      i = j;
    }
  }
  if (quoted)
    throw new ScheduleError(`CSV: a quoted field opened on line ${rowLine} is never closed`);
  if (field !== '' || row.length > 0) {
    row.push(field);
    records.push(row);
    lines.push(rowLine);
  }
  if (records.length === 0) throw new ScheduleError('the schedule is empty');
  const header = records[0] as string[];
  return new CsvRows(header, records.slice(1), lines.slice(1));
}

function csvTable(csv: CsvRows, options: ParseOptions): RawTable {
  const { header, rows, lines } = csv;
  if (rows.length === 0) throw new ScheduleError('CSV: a header but no rows');
  if (header.length < 2)
    throw new ScheduleError('CSV: expected a time column and at least one data column');
  let timeIdx = 0;
  if (options.timeColumn !== undefined) {
    timeIdx = header.indexOf(options.timeColumn);
    if (timeIdx < 0)
      throw new ScheduleError(
        `CSV: no time column ${JSON.stringify(options.timeColumn)} in the header`,
      );
  }
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as string[];
    if (row.length !== header.length) {
      throw new ScheduleError([
        {
          row: r,
          reason: `line ${lines[r]} has ${row.length} fields, the header has ${header.length}`,
        },
      ]);
    }
  }
  const colIdx = header.map((_, i) => i).filter((i) => i !== timeIdx);
  return {
    times: rows.map((row) => row[timeIdx]),
    columns: colIdx.map((i) => header[i] as string),
    cell: (r, c) => (rows[r] as string[])[colIdx[c] as number],
    rowLabel: (r) => `line ${lines[r]}`,
    emptyIsNull: true,
  };
}

function* buildSchedule(
  table: RawTable,
  options: ParseOptions & { timeZone: string },
  scheduleId: string | null,
  meta: Record<string, unknown>,
): Steps<Schedule> {
  const n = table.times.length;
  if (n === 0) throw new ScheduleError('the schedule has no rows');
  const problems = new Problems();
  const tz = { timeZone: options.timeZone, epochUnit: options.epochUnit };
  const times = new Float64Array(n);
  const labels: string[] = new Array(n);
  for (let r = 0; r < n; r++) {
    const raw = table.times[r];
    labels[r] = typeof raw === 'string' ? raw : String(raw);
    const t = parseTimestamp(raw, tz);
    if (typeof t === 'string') {
      problems.add({ row: r, time: labels[r], value: raw, reason: `timestamp ${t}` });
      times[r] = Number.NaN;
    } else if (t < EARLIEST_PLAUSIBLE_MS) {
      problems.add({
        row: r,
        time: labels[r],
        value: raw,
        reason: `timestamp ${JSON.stringify(raw)} is before 2000: is the index row numbers rather than times? Give the DataFrame a DatetimeIndex`,
      });
      times[r] = Number.NaN;
    } else if (t > LATEST_TIME_MS) {
      problems.add({
        row: r,
        time: labels[r],
        value: raw,
        reason: `timestamp ${JSON.stringify(raw)} is after 9999-12-31: check the epoch unit (set epochUnit)`,
      });
      times[r] = Number.NaN;
    } else {
      times[r] = t;
    }
    if ((r & 255) === 255) yield;
  }
  problems.throwIfAny();
  for (let r = 1; r < n; r++) {
    const a = times[r - 1] as number;
    const b = times[r] as number;
    if (b === a) {
      problems.add({
        row: r,
        time: labels[r],
        reason: `duplicate timestamp: the same time as row ${r - 1} (${labels[r - 1]})`,
      });
    } else if (b < a) {
      problems.add({
        row: r,
        time: labels[r],
        reason: `timestamps are not sorted: earlier than row ${r - 1} (${labels[r - 1]})`,
      });
    }
  }
  problems.throwIfAny();
  let slotSeconds: number;
  if (n === 1) {
    if (options.slotSeconds === undefined) {
      throw new ScheduleError('a one-row schedule has no slot length to infer: set slotSeconds');
    }
    slotSeconds = options.slotSeconds;
  } else {
    slotSeconds =
      options.slotSeconds ?? ((times[n - 1] as number) - (times[n - 2] as number)) / 1000;
  }
  const end = (times[n - 1] as number) + slotSeconds * 1000;
  if (!(end <= LATEST_TIME_MS)) {
    throw new ScheduleError(
      `the last slot (${labels[n - 1]}) lasts ${slotSeconds} s and so ends after 9999-12-31: check slotSeconds`,
    );
  }

  const setpoints: SetpointColumn[] = [];
  const ignoredColumns: string[] = [];
  const values = new Map<string, Float64Array>();
  const seenCols = new Set<string>();
  const rowName = (r: number) =>
    table.rowLabel ? `${labels[r]}, ${table.rowLabel(r)}` : labels[r];
  const spIndex: number[] = [];
  const limitColumn = options.limitColumn ?? null;
  let limitIndex = -1;
  for (let c = 0; c < table.columns.length; c++) {
    const name = table.columns[c] as string;
    if ((c & 1023) === 1023) yield;
    if (seenCols.has(name)) {
      problems.add({ column: name, reason: 'the column appears twice' });
      continue;
    }
    seenCols.add(name);
    if (name === limitColumn) {
      limitIndex = c;
      continue;
    }
    const sp = classifyColumn(name);
    if (!sp) {
      ignoredColumns.push(name);
      continue;
    }
    setpoints.push(sp);
    spIndex.push(c);
  }
  // All setpoint columns in one buffer (column after column), each column a view of it: one
  // allocation instead of one ArrayBuffer per column (10,000 of them for a large depot).
  const m = spIndex.length;
  const all = new Float64Array(m * n);
  const read = (raw: unknown, r: number, j: number): number => {
    const v = readValue(raw, table.emptyIsNull === true);
    if (typeof v === 'number') return v;
    const name = setpoints[j]?.name as string;
    problems.add({ row: r, time: rowName(r), column: name, value: raw, reason: v.reason });
    return Number.NaN;
  };
  const rows = table.rows;
  let work = 0;
  if (rows) {
    // Row after row: each row array is read from start to end. Setpoint columns usually
    // come first and together (the optimiser writes them so): then no index lookup.
    const first = m > 0 ? (spIndex[0] as number) : 0;
    const together = m > 0 && spIndex[m - 1] === first + m - 1;
    for (let r = 0; r < n; r++) {
      const row = rows[r] as unknown[];
      for (let j = 0; j < m; j++) {
        const raw = row[together ? first + j : (spIndex[j] as number)];
        // Fast path: a plain number from 0 to MAX_POWER_KW (NaN fails the comparison).
        all[j * n + r] =
          typeof raw === 'number' && raw >= 0 && raw <= MAX_POWER_KW ? raw : read(raw, r, j);
      }
      work += m + 1;
      if (work >= CHUNK) {
        work = 0;
        yield;
      }
    }
  } else {
    for (let j = 0; j < m; j++) {
      const c = spIndex[j] as number;
      for (let r = 0; r < n; r++) {
        const raw = table.cell(r, c);
        all[j * n + r] =
          typeof raw === 'number' && raw >= 0 && raw <= MAX_POWER_KW ? raw : read(raw, r, j);
      }
      work += n + 1;
      if (work >= CHUNK) {
        work = 0;
        yield;
      }
    }
  }
  for (let j = 0; j < m; j++) {
    values.set((setpoints[j] as SetpointColumn).name, all.subarray(j * n, (j + 1) * n));
    if ((j & 1023) === 1023) yield;
  }
  const limits =
    limitColumn === null ? null : yield* readLimits(table, limitColumn, limitIndex, rowName);
  if (limits !== null && !(limits instanceof Float64Array)) for (const p of limits) problems.add(p);
  problems.throwIfAny();
  return new Schedule({
    times,
    labels,
    slotSeconds,
    setpoints,
    values,
    ignoredColumns,
    scheduleId,
    meta,
    limitColumn,
    limits: limits instanceof Float64Array ? limits : null,
  });
}

/** The limit column's values (kW, NaN: no limit), or the problems of its cells. */
function* readLimits(
  table: RawTable,
  name: string,
  c: number,
  rowName: (r: number) => string | undefined,
): Steps<Float64Array | ScheduleProblem[]> {
  if (c < 0) {
    return [
      {
        column: name,
        reason: `no such column for limitColumn (columns: ${table.columns.slice(0, 10).join(', ')})`,
      },
    ];
  }
  if (classifyColumn(name) !== null) {
    return [{ column: name, reason: 'limitColumn names a setpoint column' }];
  }
  const n = table.times.length;
  const out = new Float64Array(n);
  const problems: ScheduleProblem[] = [];
  for (let r = 0; r < n; r++) {
    const raw = table.cell(r, c);
    const v = readValue(raw, table.emptyIsNull === true, 'limit');
    if (typeof v === 'number') out[r] = v;
    else problems.push({ row: r, time: rowName(r), column: name, value: raw, reason: v.reason });
    if ((r & 1023) === 1023) yield;
  }
  return problems.length > 0 ? problems : out;
}

const NUMBER_RE = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
const NULL_RE = /^\s*(nan|NaN|NULL|null|None)\s*$/;
const INF_RE = /^\s*[+-]?(inf|Inf|INF|infinity|Infinity)\s*$/;

/**
 * A setpoint cell as kW: a number (NaN for "hold the previous value"), or the reason it is
 * not acceptable. Numbers may come as numeric strings (CSV, hand-made rows); null,
 * undefined, NaN and the strings nan/null/None mean hold; so does '' in CSV.
 */
function readValue(
  raw: unknown,
  emptyIsNull: boolean,
  what: 'setpoint' | 'limit' = 'setpoint',
): number | { reason: string } {
  let v: number;
  if (typeof raw === 'number') {
    if (Number.isNaN(raw)) return Number.NaN;
    v = raw;
  } else if (raw === null || raw === undefined || (emptyIsNull && raw === '')) {
    return Number.NaN;
  } else if (typeof raw === 'string' && NUMBER_RE.test(raw)) {
    v = Number(raw);
  } else if (typeof raw === 'string' && NULL_RE.test(raw)) {
    return Number.NaN;
  } else if (typeof raw === 'string' && INF_RE.test(raw)) {
    return { reason: `${raw.trim()} is not a finite power` };
  } else {
    return { reason: `${describe(raw)} is not a number (kW)` };
  }
  if (!Number.isFinite(v)) return { reason: `${v} is not a finite power` };
  if (v > MAX_POWER_KW) {
    if (what === 'limit')
      return { reason: `${v} kW is above ${MAX_POWER_KW} kW (1 GW): is the column in W?` };
    return {
      reason: `${v} kW is above ${MAX_POWER_KW} kW (1 GW), the most accepted for one asset: is the column in W?`,
    };
  }
  if (v < 0) {
    if (v >= -NEGATIVE_TOLERANCE_KW) return 0;
    if (what === 'limit') return { reason: `${v} kW is negative: an import limit is 0 or more` };
    return {
      reason: `${v} kW is negative: setpoint columns carry magnitudes (use battery_discharge_kw for discharging)`,
    };
  }
  return v;
}

/**
 * Solvers leave tiny negative values (-1e-9) where they mean zero: values down to this
 * are read as 0; anything more negative is an error.
 */
export const NEGATIVE_TOLERANCE_KW = 1e-6;
