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
 *
 * This file owns the entry points (`parseSchedule`, its sliced forms) and the decoding of
 * text and Buffers; the readers are schedule-json.ts and schedule-csv.ts, the checks
 * schedule-validate.ts, the types schedule-model.ts, the errors schedule-errors.ts. Code
 * outside them imports from here.
 */

import { runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import { parseJsonSteps } from './json-chunks';
import { CsvRows, csvSteps, csvTable } from './schedule-csv';
import { ScheduleError } from './schedule-errors';
import { jsonTable } from './schedule-json';
import { isPlainObject, type ParseOptions, type RawTable, Schedule } from './schedule-model';
import { buildSchedule } from './schedule-validate';
import { isValidTimeZone } from './time';

export { CsvRows, parseCsv } from './schedule-csv';
export { formatProblem, ScheduleError, type ScheduleProblem } from './schedule-errors';
export {
  classifyColumn,
  type ParseOptions,
  Schedule,
  type SetpointColumn,
  type SetpointKind,
  TIME_COLUMN_NAMES,
} from './schedule-model';
export { NEGATIVE_TOLERANCE_KW } from './schedule-validate';

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

function* toRawTable(value: unknown, options: ParseOptions): Steps<RawTable> {
  if (value instanceof CsvRows) return csvTable(value, options);
  return yield* jsonTable(value, options);
}
