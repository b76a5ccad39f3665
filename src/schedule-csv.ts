/**
 * The CSV schedule reader: RFC 4180 text as pandas `to_csv` writes it, tokenised in slices
 * (`parseCsv`, `csvSteps`), then read into a `RawTable` (`csvTable`) with line numbers for
 * messages.
 */

import { CHUNK, runSync, type Steps } from './chunks';
import { ScheduleError } from './schedule-errors';
import type { ParseOptions, RawTable } from './schedule-model';

/** CSV input as rows of strings, with the line number of each row. */
export class CsvRows {
  constructor(
    readonly header: string[],
    readonly rows: string[][],
    readonly lines: number[],
  ) {}
}

/** RFC 4180 CSV as pandas writes it: comma separated, quotes where needed, "" inside quotes. */
export function parseCsv(text: string): CsvRows {
  return runSync(csvSteps(text));
}

export function* csvSteps(text: string): Steps<CsvRows> {
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

export function csvTable(csv: CsvRows, options: ParseOptions): RawTable {
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
