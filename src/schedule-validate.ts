/**
 * Schedule validation: a `RawTable` from any reader checked and built into a `Schedule`
 * (timestamps parsed, sorted and unique, slot length, setpoint and limit cells read as kW
 * within bounds), every problem named by row, column and value.
 */

import { CHUNK, type Steps } from './chunks';
import { describe, MAX_POWER_KW } from './commands';
import { Problems, ScheduleError, type ScheduleProblem } from './schedule-errors';
import {
  classifyColumn,
  type ParseOptions,
  type RawTable,
  Schedule,
  type SetpointColumn,
} from './schedule-model';
import { EARLIEST_PLAUSIBLE_MS, LATEST_TIME_MS, parseTimestamp } from './time';

export function* buildSchedule(
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
  // Its memory touched a part at a time first: the loop below writes column-major, so its
  // first row alone would touch every page of it (7.7 MB for 10,000 x 96: tens of ms of
  // page faults in one step).
  for (let i = 0; i < all.length; i += CHUNK * 16) {
    all.fill(0, i, i + CHUNK * 16);
    yield;
  }
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
