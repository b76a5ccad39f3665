/**
 * Schedule readers for JSON values: the pandas `DataFrame.to_json` orients (split, index,
 * columns, records, table) and arrays of row objects, each read into a `RawTable`.
 */

import { CHUNK, type Steps } from './chunks';
import { describe } from './commands';
import { ScheduleError } from './schedule-errors';
import {
  isPlainObject,
  type ParseOptions,
  type RawTable,
  TIME_COLUMN_NAMES,
} from './schedule-model';
import { parseTimestamp } from './time';

/** A decoded JSON value (anything but CSV) as a RawTable, its orient found by its shape. */
export function* jsonTable(value: unknown, options: ParseOptions): Steps<RawTable> {
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
    work += addColumns(row, seen, columns) + 1;
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

/** Adds the row's column names not seen before to `columns`, in order; returns its count. */
function addColumns(row: Record<string, unknown>, seen: Set<string>, columns: string[]): number {
  const names = Object.keys(row);
  for (const c of names) {
    if (!seen.has(c)) {
      seen.add(c);
      columns.push(c);
    }
  }
  return names.length;
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
    work += addColumns(row, seen, columns) + 1;
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
