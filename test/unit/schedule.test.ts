import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import { convertSchedule } from '../../src/convert';
import {
  CsvRows,
  classifyColumn,
  NEGATIVE_TOLERANCE_KW,
  parseCsv,
  parseSchedule,
  Schedule,
  ScheduleError,
  TIME_COLUMN_NAMES,
} from '../../src/schedule';
import {
  EARLIEST_PLAUSIBLE_MS,
  epochToMs,
  guessEpochUnit,
  isValidTimeZone,
  parseTimestamp,
  wallTimeToUtc,
  zoneOffsetMs,
} from '../../src/time';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const UTC = { timeZone: 'UTC' };
const BERLIN = { timeZone: 'Europe/Berlin' };
const HOUR = 3600_000;
/** 2025-06-02T00:00:00Z, the first slot of the sample schedules. */
const DAY = Date.UTC(2025, 5, 2);
const iso = (ms: number): string => new Date(ms).toISOString();

/** Runs fn, expects a ScheduleError and returns it. */
function scheduleError(fn: () => unknown): ScheduleError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  should.exist(caught, 'expected a ScheduleError, nothing was thrown');
  should(caught).be.instanceOf(ScheduleError);
  const err = caught as ScheduleError;
  should(err.name).equal('ScheduleError');
  should(err.message).startWith('invalid schedule: ');
  return err;
}

function col(s: Schedule, name: string): number[] {
  const v = s.values.get(name);
  should.exist(v, `no column ${name}`);
  return Array.from(v as Float64Array);
}

/** A small two-vehicle, one-battery frame, 4 hourly slots from 08:00Z, in every orient. */
const COLUMNS = ['ev_ev_001_kw', 'battery_charge_kw', 'battery_discharge_kw', 'price_per_kwh'];
const TIMES = [0, 1, 2, 3].map((h) => DAY + (8 + h) * HOUR);
const ISO_INDEX = TIMES.map(iso);
const DATA = [
  [22, 0, 5, 0.31],
  [22, 10, 0, 0.12],
  [22, 10, 0, 0.11],
  [0, 0, 0, 0.3],
];
const rowObj = (r: number): Record<string, number> =>
  Object.fromEntries(COLUMNS.map((c, i) => [c, DATA[r]![i]!]));

const SHAPES: Record<string, unknown> = {
  'split, ISO index': { columns: COLUMNS, index: ISO_INDEX, data: DATA },
  'split, epoch-ms index': { columns: COLUMNS, index: TIMES, data: DATA },
  'index orient, epoch-ms keys': Object.fromEntries(TIMES.map((t, r) => [String(t), rowObj(r)])),
  'index orient, ISO keys': Object.fromEntries(ISO_INDEX.map((t, r) => [t, rowObj(r)])),
  'columns orient, epoch-ms keys': Object.fromEntries(
    COLUMNS.map((c, i) => [c, Object.fromEntries(TIMES.map((t, r) => [String(t), DATA[r]![i]]))]),
  ),
  'columns orient, ISO keys': Object.fromEntries(
    COLUMNS.map((c, i) => [c, Object.fromEntries(ISO_INDEX.map((t, r) => [t, DATA[r]![i]]))]),
  ),
  'records with an epoch-ms time column': TIMES.map((t, r) => ({ timestamp: t, ...rowObj(r) })),
  'array of rows with timestamp': ISO_INDEX.map((t, r) => ({ timestamp: t, ...rowObj(r) })),
  'table orient': {
    schema: {
      fields: [
        { name: 'timestamp', type: 'datetime', tz: 'UTC' },
        ...COLUMNS.map((name) => ({ name, type: 'number' })),
      ],
      primaryKey: ['timestamp'],
      pandas_version: '1.4.0',
    },
    data: ISO_INDEX.map((t, r) => ({ timestamp: t, ...rowObj(r) })),
  },
  'CSV text (to_csv)': `timestamp,${COLUMNS.join(',')}\n${TIMES.map(
    (t, r) => `${iso(t).replace('T', ' ').replace('.000Z', '+00:00')},${DATA[r]!.join(',')}`,
  ).join('\n')}\n`,
};

function assertSmallFrame(s: Schedule): void {
  should(s).be.instanceOf(Schedule);
  should(Array.from(s.times)).eql(TIMES);
  should(s.rows).equal(4);
  should(s.slotSeconds).equal(3600);
  should(s.setpoints.map((p) => p.name)).eql(COLUMNS.slice(0, 3));
  should(s.ignoredColumns).eql(['price_per_kwh']);
  should(col(s, 'ev_ev_001_kw')).eql([22, 22, 22, 0]);
  should(col(s, 'battery_charge_kw')).eql([0, 10, 10, 0]);
  should(col(s, 'battery_discharge_kw')).eql([5, 0, 0, 0]);
  should(s.values.has('price_per_kwh')).be.false();
  should(s.start.toISOString()).equal('2025-06-02T08:00:00.000Z');
  should(s.end.toISOString()).equal('2025-06-02T12:00:00.000Z');
}

describe('time', () => {
  describe('parseTimestamp', () => {
    it('reads ISO 8601 with Z exactly', () => {
      should(parseTimestamp('2025-06-02T08:00:00Z', UTC)).equal(DAY + 8 * HOUR);
      should(parseTimestamp('2025-06-02T08:00:00.000Z', BERLIN)).equal(DAY + 8 * HOUR);
      should(parseTimestamp('2025-06-02t08:00:00z', UTC)).equal(DAY + 8 * HOUR);
    });

    it('applies an explicit offset and ignores the configured zone', () => {
      should(parseTimestamp('2025-06-02T08:00:00+01:00', UTC)).equal(DAY + 7 * HOUR);
      should(parseTimestamp('2025-06-02T08:00:00+01:00', BERLIN)).equal(DAY + 7 * HOUR);
      should(parseTimestamp('2025-06-02T08:00:00-05:30', UTC)).equal(DAY + 13.5 * HOUR);
      should(parseTimestamp('2025-06-02T08:00:00+0200', UTC)).equal(DAY + 6 * HOUR);
      should(parseTimestamp('2025-06-02T08:00:00+02', UTC)).equal(DAY + 6 * HOUR);
      // pandas to_csv: space separator and +00:00
      should(parseTimestamp('2025-06-02 08:00:00+00:00', BERLIN)).equal(DAY + 8 * HOUR);
    });

    it('reads naive times in UTC by default and in the configured zone otherwise', () => {
      should(parseTimestamp('2025-06-02T08:00:00', UTC)).equal(DAY + 8 * HOUR);
      should(parseTimestamp('2025-06-02 08:00', UTC)).equal(DAY + 8 * HOUR);
      should(parseTimestamp('2025-06-02', UTC)).equal(DAY);
      // Berlin in June is CEST (+02:00), in January CET (+01:00)
      should(parseTimestamp('2025-06-02T08:00:00', BERLIN)).equal(DAY + 6 * HOUR);
      should(parseTimestamp('2025-01-15 08:00:00', BERLIN)).equal(Date.UTC(2025, 0, 15, 7));
      should(parseTimestamp('2025-06-02T08:00:00', { timeZone: 'America/New_York' })).equal(
        DAY + 12 * HOUR,
      );
    });

    it('keeps fractional seconds (milliseconds)', () => {
      should(parseTimestamp('2025-06-02T08:00:00.250Z', UTC)).equal(DAY + 8 * HOUR + 250);
      should(parseTimestamp('2025-06-02T08:00:00.123456789Z', UTC)).equal(DAY + 8 * HOUR + 123);
      should(parseTimestamp('2025-06-02T08:00:00,5Z', UTC)).equal(DAY + 8 * HOUR + 500);
    });

    it('reads epoch numbers by magnitude: s, ms (pandas default), us, ns', () => {
      const ms = DAY + 8 * HOUR;
      should(parseTimestamp(ms, UTC)).equal(ms);
      should(parseTimestamp(ms / 1000, UTC)).equal(ms);
      should(parseTimestamp(ms * 1000, UTC)).equal(ms);
      should(parseTimestamp(ms * 1e6, UTC)).equal(ms);
    });

    it('reads numeric strings (JSON object keys) as epoch numbers, not in the time zone', () => {
      should(parseTimestamp('1748851200000', UTC)).equal(DAY + 8 * HOUR);
      should(parseTimestamp('1748851200000', BERLIN)).equal(DAY + 8 * HOUR);
      should(parseTimestamp(' 1748851200 ', UTC)).equal(DAY + 8 * HOUR);
      should(parseTimestamp('1.7488512e12', UTC)).equal(DAY + 8 * HOUR);
    });

    it('honours an explicit epoch unit over the magnitude guess', () => {
      should(parseTimestamp(1748851200, { timeZone: 'UTC', epochUnit: 'ms' })).equal(1748851200);
      should(parseTimestamp(1748851200000, { timeZone: 'UTC', epochUnit: 's' })).equal(
        1748851200000 * 1000,
      );
    });

    it('returns a reason (a string) for what is not a time', () => {
      should(parseTimestamp('tomorrow', UTC)).equal('"tomorrow" is not an ISO 8601 time');
      should(parseTimestamp('', UTC)).equal('"" is not an ISO 8601 time');
      should(parseTimestamp('2025-13-01T00:00:00Z', UTC)).equal(
        '"2025-13-01T00:00:00Z" has a field out of range',
      );
      should(parseTimestamp('2025-06-02T24:00:00Z', UTC)).match(/field out of range/);
      should(parseTimestamp('2025-06-02T08:60:00Z', UTC)).match(/field out of range/);
      should(parseTimestamp('2025-06-00', UTC)).match(/field out of range/);
      should(parseTimestamp('2025-02-30', UTC)).equal('"2025-02-30" is not a calendar date');
      should(parseTimestamp('2025-06-02T08:00:00+25:00', UTC)).equal(
        '"2025-06-02T08:00:00+25:00" has an invalid offset',
      );
      should(parseTimestamp(null, UTC)).match(/^null is not a time/);
      should(parseTimestamp(true, UTC)).match(/^boolean is not a time/);
      should(parseTimestamp({}, UTC)).match(/^object is not a time/);
      should(parseTimestamp(Number.NaN, UTC)).equal('NaN is not a time');
      should(parseTimestamp(Number.POSITIVE_INFINITY, UTC)).equal('Infinity is not a time');
    });

    it('accepts 29 February in a leap year only', () => {
      should(parseTimestamp('2024-02-29', UTC)).equal(Date.UTC(2024, 1, 29));
      should(parseTimestamp('2025-02-29', UTC)).match(/not a calendar date/);
    });
  });

  describe('epoch units', () => {
    it('guesses the unit by magnitude', () => {
      should(guessEpochUnit(1748851200)).equal('s');
      should(guessEpochUnit(1748851200000)).equal('ms');
      should(guessEpochUnit(1748851200000000)).equal('us');
      should(guessEpochUnit(1748851200000000000)).equal('ns');
      should(guessEpochUnit(-1748851200000)).equal('ms');
      should(guessEpochUnit(99_999_999_999)).equal('s');
      should(guessEpochUnit(100_000_000_000)).equal('ms');
    });

    it('converts every unit to milliseconds', () => {
      should(epochToMs(2, 's')).equal(2000);
      should(epochToMs(2000, 'ms')).equal(2000);
      should(epochToMs(2_000_000, 'us')).equal(2000);
      should(epochToMs(2_000_000_000, 'ns')).equal(2000);
      should(epochToMs(1748851200)).equal(1748851200000);
    });
  });

  describe('time zones', () => {
    it('knows IANA zones and refuses others', () => {
      should(isValidTimeZone('UTC')).be.true();
      should(isValidTimeZone('Europe/Berlin')).be.true();
      should(isValidTimeZone('Mars/Olympus_Mons')).be.false();
    });

    it('gives the zone offset at an instant', () => {
      should(zoneOffsetMs('UTC', DAY)).equal(0);
      should(zoneOffsetMs('Europe/Berlin', DAY)).equal(2 * HOUR);
      should(zoneOffsetMs('Europe/Berlin', Date.UTC(2025, 0, 15))).equal(HOUR);
      should(zoneOffsetMs('Asia/Kolkata', DAY + 123)).equal(5.5 * HOUR);
    });

    it('wallTimeToUtc: ordinary times', () => {
      should(wallTimeToUtc(Date.UTC(2025, 5, 2, 8), 'UTC')).equal(Date.UTC(2025, 5, 2, 8));
      should(wallTimeToUtc(Date.UTC(2025, 5, 2, 8), 'Europe/Berlin')).equal(
        Date.UTC(2025, 5, 2, 6),
      );
      should(wallTimeToUtc(Date.UTC(2025, 0, 15, 8), 'Europe/Berlin')).equal(
        Date.UTC(2025, 0, 15, 7),
      );
    });

    it('wallTimeToUtc: around the spring-forward change (Berlin, 30 March 2025)', () => {
      // 01:59 CET (+1) and 03:00 CEST (+2) are one minute apart.
      should(wallTimeToUtc(Date.UTC(2025, 2, 30, 1, 59), 'Europe/Berlin')).equal(
        Date.UTC(2025, 2, 30, 0, 59),
      );
      should(wallTimeToUtc(Date.UTC(2025, 2, 30, 3), 'Europe/Berlin')).equal(
        Date.UTC(2025, 2, 30, 1),
      );
      // 02:30 does not exist: read with the offset from before the gap (= 03:30 CEST).
      should(wallTimeToUtc(Date.UTC(2025, 2, 30, 2, 30), 'Europe/Berlin')).equal(
        Date.UTC(2025, 2, 30, 1, 30),
      );
    });

    it('wallTimeToUtc: the repeated hour of the fall-back change takes the first occurrence', () => {
      // 26 October 2025: 03:00 CEST -> 02:00 CET. 02:30 happens at 00:30Z and at 01:30Z.
      should(wallTimeToUtc(Date.UTC(2025, 9, 26, 2, 30), 'Europe/Berlin')).equal(
        Date.UTC(2025, 9, 26, 0, 30),
      );
      should(wallTimeToUtc(Date.UTC(2025, 9, 26, 3, 30), 'Europe/Berlin')).equal(
        Date.UTC(2025, 9, 26, 2, 30),
      );
      should(wallTimeToUtc(Date.UTC(2025, 9, 26, 1, 30), 'Europe/Berlin')).equal(
        Date.UTC(2025, 9, 25, 23, 30),
      );
    });
  });
});

describe('classifyColumn', () => {
  it('classifies EV columns with the vehicle key', () => {
    should(classifyColumn('ev_001_kw')).eql({ name: 'ev_001_kw', kind: 'ev', key: '001' });
    should(classifyColumn('ev_ev_001_kw')).eql({
      name: 'ev_ev_001_kw',
      kind: 'ev',
      key: 'ev_001',
    });
    should(classifyColumn('ev_van7_kw')).eql({ name: 'ev_van7_kw', kind: 'ev', key: 'van7' });
  });

  it('classifies battery columns, single and keyed', () => {
    should(classifyColumn('battery_charge_kw')).eql({
      name: 'battery_charge_kw',
      kind: 'battery_charge',
      key: '',
    });
    should(classifyColumn('battery_discharge_kw')).eql({
      name: 'battery_discharge_kw',
      kind: 'battery_discharge',
      key: '',
    });
    should(classifyColumn('battery_b2_charge_kw')).eql({
      name: 'battery_b2_charge_kw',
      kind: 'battery_charge',
      key: 'b2',
    });
    should(classifyColumn('battery_b2_discharge_kw')).eql({
      name: 'battery_b2_discharge_kw',
      kind: 'battery_discharge',
      key: 'b2',
    });
  });

  it('does not take totals, forecasts, prices or SoC for setpoints', () => {
    for (const name of [
      'total_ev_kw',
      'ev_total_kw',
      'ev_kw',
      'ev_001_kwh',
      'EV_001_KW',
      'battery_soc_kwh',
      'battery_soc_percent',
      'battery_kw',
      'net_load_kw',
      'price_per_kwh',
      'solar_generation_kw',
      'timestamp',
      '',
    ]) {
      should(classifyColumn(name)).equal(null, name);
    }
  });
});

describe('parseCsv', () => {
  it('splits a pandas to_csv text into header, rows and line numbers', () => {
    const csv = parseCsv(
      'timestamp,a,b\n2025-06-02 00:00:00+00:00,1,2\n2025-06-02 01:00:00+00:00,3,\n',
    );
    should(csv).be.instanceOf(CsvRows);
    should(csv.header).eql(['timestamp', 'a', 'b']);
    should(csv.rows).eql([
      ['2025-06-02 00:00:00+00:00', '1', '2'],
      ['2025-06-02 01:00:00+00:00', '3', ''],
    ]);
    should(csv.lines).eql([2, 3]);
  });

  it('handles CRLF, a missing final newline, blank lines and a leading empty header', () => {
    const csv = parseCsv(',a\r\n\r\nx,1\r\ny,2');
    should(csv.header).eql(['', 'a']);
    should(csv.rows).eql([
      ['x', '1'],
      ['y', '2'],
    ]);
    should(csv.lines).eql([3, 4]);
  });

  it('unquotes fields, with commas, doubled quotes and newlines inside', () => {
    const csv = parseCsv('t,"note, with comma",q\nx,"say ""hi""","two\nlines"\ny,"",3\n');
    should(csv.header).eql(['t', 'note, with comma', 'q']);
    should(csv.rows).eql([
      ['x', 'say "hi"', 'two\nlines'],
      ['y', '', '3'],
    ]);
    // the row after a quoted newline starts on line 4
    should(csv.lines).eql([2, 4]);
  });

  it('rejects an unclosed quote, naming the line', () => {
    const err = scheduleError(() => parseCsv('t,a\nx,"open\ny,2\n'));
    should(err.message).equal(
      'invalid schedule: CSV: a quoted field opened on line 2 is never closed',
    );
  });

  it('rejects a text with no records', () => {
    should(scheduleError(() => parseCsv('\n\n')).message).match(/the schedule is empty/);
  });
});

describe('parseSchedule', () => {
  describe('input shapes', () => {
    for (const [name, input] of Object.entries(SHAPES)) {
      it(`reads ${name}`, () => {
        assertSmallFrame(parseSchedule(input));
      });
      it(`reads ${name} as JSON text and as a Buffer`, () => {
        const text = typeof input === 'string' ? input : JSON.stringify(input);
        assertSmallFrame(parseSchedule(text));
        assertSmallFrame(parseSchedule(Buffer.from(text, 'utf8')));
      });
      it(`reads ${name} wrapped as an optimisation result`, () => {
        const wrapped = { schedule: input, total_cost: 12.5, status: 'optimal' };
        for (const w of [wrapped, JSON.stringify(wrapped), Buffer.from(JSON.stringify(wrapped))]) {
          const s = parseSchedule(w);
          assertSmallFrame(s);
          should(s.meta).eql({ total_cost: 12.5, status: 'optimal' });
        }
      });
    }

    it('reads records under a "data" key and a "time" column, case-insensitively', () => {
      const rows = ISO_INDEX.map((t, r) => ({ Time: t, ...rowObj(r) }));
      assertSmallFrame(parseSchedule({ data: rows }));
    });

    it('finds the time column of a table orient from a datetime field without a primaryKey', () => {
      const table = SHAPES['table orient'] as { schema: Record<string, unknown>; data: unknown[] };
      const { primaryKey: _pk, ...schema } = table.schema;
      assertSmallFrame(parseSchedule({ schema, data: table.data }));
    });

    it('reads a table orient whose unnamed index pandas calls "index"', () => {
      const doc = {
        schema: {
          fields: [
            { name: 'index', type: 'datetime', tz: 'UTC' },
            { name: 'ev_ev_001_kw', type: 'number' },
          ],
          primaryKey: ['index'],
          pandas_version: '1.4.0',
        },
        data: [
          { index: '2025-06-02T08:00:00.000Z', ev_ev_001_kw: 22 },
          { index: '2025-06-02T09:00:00.000Z', ev_ev_001_kw: 11 },
        ],
      };
      const s = parseSchedule(doc);
      should(Array.from(s.times)).eql([DAY + 8 * HOUR, DAY + 9 * HOUR]);
      should(col(s, 'ev_ev_001_kw')).eql([22, 11]);
      should(s.ignoredColumns).eql([]);
    });

    it('uses the timeColumn option for records and CSV', () => {
      const rows = ISO_INDEX.map((t, r) => ({ slot: t, ...rowObj(r) }));
      assertSmallFrame(parseSchedule(rows, { timeColumn: 'slot' }));
      const csv = `${COLUMNS[0]},when\n22,2025-06-02T08:00:00Z\n0,2025-06-02T09:00:00Z\n`;
      const s = parseSchedule(csv, { timeColumn: 'when' });
      should(Array.from(s.times)).eql([DAY + 8 * HOUR, DAY + 9 * HOUR]);
      should(col(s, 'ev_ev_001_kw')).eql([22, 0]);
    });

    it('names the missing time column', () => {
      const err = scheduleError(() => parseSchedule([{ when: ISO_INDEX[0], ev_a_kw: 1 }]));
      should(err.message).match(/records: no time column: name one timestamp, time, /);
      should(err.message).match(/columns: when, ev_a_kw/);
      should(
        scheduleError(() => parseSchedule([{ when: ISO_INDEX[0] }], { timeColumn: 'at' })).message,
      ).match(/no time column "at"/);
      should(scheduleError(() => parseSchedule('a,b\nx,1\n', { timeColumn: 'at' })).message).match(
        /CSV: no time column "at" in the header/,
      );
      should(TIME_COLUMN_NAMES[0]).equal('timestamp');
    });

    it('strips a byte-order mark from text', () => {
      const s = parseSchedule(`\uFEFF${SHAPES['CSV text (to_csv)'] as string}`);
      assertSmallFrame(s);
      const j = parseSchedule(`\uFEFF${JSON.stringify(SHAPES['split, ISO index'])}`);
      assertSmallFrame(j);
    });

    it('decodes a wrapped schedule given as CSV text inside JSON', () => {
      const wrapped = JSON.stringify({ schedule: SHAPES['CSV text (to_csv)'], status: 'optimal' });
      assertSmallFrame(parseSchedule(wrapped));
    });

    it('returns a Schedule given a Schedule', () => {
      const s = parseSchedule(SHAPES['split, ISO index']);
      should(parseSchedule(s)).equal(s);
    });
  });

  describe('the sample schedules', () => {
    it('EV split and EV epoch-wrapped result give the same schedule', () => {
      const a = parseSchedule(fixture('ev-schedule.split.json'));
      const b = parseSchedule(fixture('ev-result.epoch.json'));
      should(a.rows).equal(24);
      should(a.slotSeconds).equal(3600);
      should(Array.from(a.times)).eql(Array.from(b.times));
      should(a.start.toISOString()).equal('2025-06-02T00:00:00.000Z');
      should(a.end.toISOString()).equal('2025-06-03T00:00:00.000Z');
      should(a.setpoints.map((p) => p.name)).eql(['ev_ev_001_kw', 'ev_ev_002_kw', 'ev_ev_003_kw']);
      should(a.ignoredColumns).eql([
        'total_ev_kw',
        'background_load_kw',
        'solar_generation_kw',
        'net_load_kw',
        'price_per_kwh',
        'slot_cost',
      ]);
      for (const p of a.setpoints) should(col(b, p.name)).eql(col(a, p.name));
      should(b.meta).eql({ total_cost: 118.3295, status: 'optimal' });
      should(a.meta).eql({});
    });

    it('peak shaving split and CSV give the same schedule', () => {
      const a = parseSchedule(fixture('peak-shaving.split.json'));
      const b = parseSchedule(fixture('peak-shaving.csv'));
      should(a.rows).equal(96);
      should(a.slotSeconds).equal(900);
      should(Array.from(b.times)).eql(Array.from(a.times));
      should(a.setpoints.map((p) => p.name)).eql(['battery_charge_kw', 'battery_discharge_kw']);
      should(b.setpoints).eql(a.setpoints);
      should(b.ignoredColumns).eql(a.ignoredColumns);
      should(a.ignoredColumns).containEql('battery_soc_kwh');
      for (const p of a.setpoints) should(col(b, p.name)).eql(col(a, p.name));
      should(b.labels[0]).equal('2025-06-02 00:00:00+00:00');
      should(a.labels[0]).equal('2025-06-02T00:00:00.000Z');
    });
  });

  describe('timestamps in schedules', () => {
    it('reads naive CSV times in the configured zone, across a spring-forward day', () => {
      // Berlin, 30 March 2025: local 00:00, 01:00, 03:00, 04:00 are consecutive hours.
      const csv =
        'timestamp,ev_a_kw\n2025-03-30 00:00:00,1\n2025-03-30 01:00:00,2\n2025-03-30 03:00:00,3\n2025-03-30 04:00:00,4\n';
      const s = parseSchedule(csv, { timeZone: 'Europe/Berlin' });
      should(Array.from(s.times).map(iso)).eql([
        '2025-03-29T23:00:00.000Z',
        '2025-03-30T00:00:00.000Z',
        '2025-03-30T01:00:00.000Z',
        '2025-03-30T02:00:00.000Z',
      ]);
      should(s.slotSeconds).equal(3600);
      // the same text read in the default UTC is 1 to 2 hours later
      const u = parseSchedule(csv);
      should(u.start.toISOString()).equal('2025-03-30T00:00:00.000Z');
      should(u.slotSeconds).equal(3600);
    });

    it('reads naive times on a fall-back day as the first occurrence', () => {
      const rows = ['00:00', '01:00', '02:00', '03:00'].map((h, i) => ({
        timestamp: `2025-10-26T${h}:00`,
        ev_a_kw: i,
      }));
      const s = parseSchedule(rows, { timeZone: 'Europe/Berlin' });
      should(Array.from(s.times).map(iso)).eql([
        '2025-10-25T22:00:00.000Z',
        '2025-10-25T23:00:00.000Z',
        '2025-10-26T00:00:00.000Z',
        '2025-10-26T02:00:00.000Z',
      ]);
    });

    it('leaves offset timestamps alone whatever the configured zone', () => {
      const rows = [
        { timestamp: '2025-06-02T08:00:00+01:00', ev_a_kw: 1 },
        { timestamp: '2025-06-02T09:00:00+01:00', ev_a_kw: 2 },
      ];
      const s = parseSchedule(rows, { timeZone: 'Asia/Tokyo' });
      should(s.start.toISOString()).equal('2025-06-02T07:00:00.000Z');
    });

    it('reads epoch seconds in a split index', () => {
      const s = parseSchedule({
        columns: ['ev_a_kw'],
        index: TIMES.map((t) => t / 1000),
        data: [[1], [2], [3], [4]],
      });
      should(Array.from(s.times)).eql(TIMES);
      should(s.labels[0]).equal(String(TIMES[0]! / 1000));
    });

    it('refuses an unknown time zone', () => {
      const err = scheduleError(() =>
        parseSchedule(SHAPES['split, ISO index'], { timeZone: 'Europe/Atlantis' }),
      );
      should(err.message).equal(
        'invalid schedule: unknown time zone "Europe/Atlantis" (use an IANA name such as Europe/Berlin)',
      );
    });
  });

  describe('slot length', () => {
    it('is inferred from the index', () => {
      const s = parseSchedule(fixture('peak-shaving.csv'));
      should(s.slotSeconds).equal(900);
      should(s.slotEnd(0)).equal(s.times[1]);
      should(s.slotEnd(95)).equal(DAY + 24 * HOUR);
    });

    it('each slot ends where the next starts, also when slots differ', () => {
      const rows = [0, 1, 3].map((h) => ({ timestamp: iso(DAY + h * HOUR), ev_a_kw: h }));
      const s = parseSchedule(rows);
      should(s.slotEnd(0)).equal(DAY + HOUR);
      should(s.slotEnd(1)).equal(DAY + 3 * HOUR);
      // the last slot is as long as the one before it
      should(s.slotSeconds).equal(7200);
      should(s.end.toISOString()).equal(iso(DAY + 5 * HOUR));
    });

    it('a one-row schedule needs slotSeconds', () => {
      const one = [{ timestamp: '2025-06-02T08:00:00Z', ev_a_kw: 7 }];
      const err = scheduleError(() => parseSchedule(one));
      should(err.message).equal(
        'invalid schedule: a one-row schedule has no slot length to infer: set slotSeconds',
      );
      const s = parseSchedule(one, { slotSeconds: 900 });
      should(s.rows).equal(1);
      should(s.slotSeconds).equal(900);
      should(s.end.toISOString()).equal('2025-06-02T08:15:00.000Z');
      should(col(s, 'ev_a_kw')).eql([7]);
    });

    it('a configured slotSeconds sets the length of the last slot', () => {
      const s = parseSchedule(SHAPES['split, ISO index'], { slotSeconds: 900 });
      should(s.slotSeconds).equal(900);
      should(s.end.toISOString()).equal('2025-06-02T11:15:00.000Z');
    });

    it('refuses a slotSeconds that is not > 0', () => {
      for (const bad of [0, -60, Number.NaN]) {
        should(
          scheduleError(() => parseSchedule(SHAPES['split, ISO index'], { slotSeconds: bad }))
            .message,
        ).match(/slotSeconds must be a number > 0/);
      }
    });
  });

  describe('values', () => {
    it('reads null (pandas NaN) as "hold" (NaN) and keeps the other values', () => {
      const s = parseSchedule({
        columns: ['ev_a_kw', 'battery_charge_kw'],
        index: ISO_INDEX.slice(0, 3),
        data: [
          [5, null],
          [null, 3],
          [6, null],
        ],
      });
      const a = col(s, 'ev_a_kw');
      should(a[0]).equal(5);
      should(a[1]).be.NaN();
      should(a[2]).equal(6);
      should(col(s, 'battery_charge_kw')[0]).be.NaN();
    });

    it('reads an empty CSV cell, and nan / None / null strings, as hold', () => {
      const csv =
        'timestamp,ev_a_kw,ev_b_kw\n2025-06-02T08:00:00Z,1,nan\n2025-06-02T09:00:00Z,,None\n2025-06-02T10:00:00Z,3,NULL\n';
      const s = parseSchedule(csv);
      const a = col(s, 'ev_a_kw');
      should(a[0]).equal(1);
      should(a[1]).be.NaN();
      should(a[2]).equal(3);
      for (const v of col(s, 'ev_b_kw')) should(v).be.NaN();
    });

    it('reads a JavaScript NaN (pandas NaN built in JS) as hold, like null', () => {
      const s = parseSchedule([
        { timestamp: ISO_INDEX[0], ev_a_kw: 4 },
        { timestamp: ISO_INDEX[1], ev_a_kw: Number.NaN },
      ]);
      should(col(s, 'ev_a_kw')[1]).be.NaN();
      should(convertSchedule(s, { assetMap: { a: 'A' } }).commands).have.length(1);
    });

    it('reads a missing key in a row object as hold', () => {
      const s = parseSchedule([
        { timestamp: ISO_INDEX[0], ev_a_kw: 1 },
        { timestamp: ISO_INDEX[1] },
        { timestamp: ISO_INDEX[2], ev_a_kw: 2 },
      ]);
      const a = col(s, 'ev_a_kw');
      should(a[1]).be.NaN();
      should(a[2]).equal(2);
    });

    it('reads numeric strings, with spaces and exponents', () => {
      const s = parseSchedule([
        { timestamp: ISO_INDEX[0], ev_a_kw: ' 7.4 ' },
        { timestamp: ISO_INDEX[1], ev_a_kw: '1.1e1' },
        { timestamp: ISO_INDEX[2], ev_a_kw: '.5' },
      ]);
      should(col(s, 'ev_a_kw')).eql([7.4, 11, 0.5]);
    });

    it('reads tiny solver negatives as 0', () => {
      const s = parseSchedule({
        columns: ['battery_charge_kw', 'battery_discharge_kw'],
        index: ISO_INDEX.slice(0, 2),
        data: [
          [-1e-9, 4],
          [2, -NEGATIVE_TOLERANCE_KW],
        ],
      });
      should(col(s, 'battery_charge_kw')).eql([0, 2]);
      should(col(s, 'battery_discharge_kw')).eql([4, 0]);
    });

    it('never validates ignored columns', () => {
      const s = parseSchedule({
        columns: ['ev_a_kw', 'price_per_kwh', 'status', 'net_load_kw'],
        index: ISO_INDEX.slice(0, 2),
        data: [
          [1, 'n/a', { nested: true }, -50],
          [2, null, 'ok', Number.POSITIVE_INFINITY],
        ],
      });
      should(s.ignoredColumns).eql(['price_per_kwh', 'status', 'net_load_kw']);
      should(col(s, 'ev_a_kw')).eql([1, 2]);
    });

    it('keeps the labels as written', () => {
      const s = parseSchedule(SHAPES['split, epoch-ms index']);
      should(s.labels).eql(TIMES.map(String));
    });
  });

  describe('scheduleId and meta', () => {
    it('is null by default, taken from options, or from the wrapper', () => {
      should(parseSchedule(SHAPES['split, ISO index']).scheduleId).equal(null);
      should(parseSchedule(SHAPES['split, ISO index'], { scheduleId: 'opt-1' }).scheduleId).equal(
        'opt-1',
      );
      const wrapped = { schedule: SHAPES['split, ISO index'], scheduleId: 'run-42', cost: 1 };
      const s = parseSchedule(wrapped);
      should(s.scheduleId).equal('run-42');
      should(s.meta).eql({ scheduleId: 'run-42', cost: 1 });
      should(parseSchedule({ ...wrapped, scheduleId: 7 }).scheduleId).equal('7');
      should(parseSchedule(wrapped, { scheduleId: 'opt-1' }).scheduleId).equal('opt-1');
      should(parseSchedule({ ...wrapped, scheduleId: { x: 1 } }).scheduleId).equal(null);
    });
  });

  describe('bad schedules', () => {
    it('empty input', () => {
      for (const input of ['', '   \n', Buffer.alloc(0), {}]) {
        should(scheduleError(() => parseSchedule(input)).message).equal(
          'invalid schedule: the schedule is empty',
        );
      }
      should(scheduleError(() => parseSchedule([])).message).equal(
        'invalid schedule: the schedule has no rows',
      );
      should(
        scheduleError(() => parseSchedule({ columns: ['ev_a_kw'], index: [], data: [] })).message,
      ).equal('invalid schedule: the schedule has no rows');
      should(scheduleError(() => parseSchedule('timestamp,ev_a_kw\n')).message).equal(
        'invalid schedule: CSV: a header but no rows',
      );
      should(scheduleError(() => parseSchedule({ schedule: '' })).message).equal(
        'invalid schedule: the schedule is empty',
      );
    });

    it('input that is no schedule at all', () => {
      should(scheduleError(() => parseSchedule(null)).message).equal(
        'invalid schedule: expected a schedule (an object, an array of rows, or CSV or JSON text), got null',
      );
      should(scheduleError(() => parseSchedule(42)).message).match(/got number 42$/);
      should(scheduleError(() => parseSchedule({ foo: 1, bar: 2 })).message).match(
        /unrecognised schedule object \(keys foo, bar\)/,
      );
      should(scheduleError(() => parseSchedule('timestamp\nx\n')).message).match(
        /CSV: expected a time column and at least one data column/,
      );
    });

    it('invalid JSON', () => {
      const err = scheduleError(() => parseSchedule('{"columns": ["ev_a_kw"], "index": ['));
      should(err.message).startWith('invalid schedule: the schedule is not valid JSON: ');
      should(scheduleError(() => parseSchedule(Buffer.from('[{'))).message).match(/not valid JSON/);
    });

    it('an unparseable timestamp, naming the row and the value', () => {
      const err = scheduleError(() =>
        parseSchedule({
          columns: ['ev_a_kw'],
          index: ['2025-06-02T08:00:00Z', 'soon', '2025-06-02T10:00:00Z'],
          data: [[1], [2], [3]],
        }),
      );
      should(err.problems).have.length(1);
      should(err.problems[0]).eql({
        row: 1,
        time: 'soon',
        value: 'soon',
        reason: 'timestamp "soon" is not an ISO 8601 time',
      });
      should(err.message).equal(
        'invalid schedule: row 1 (soon): timestamp "soon" is not an ISO 8601 time',
      );
    });

    it('a null timestamp', () => {
      const err = scheduleError(() =>
        parseSchedule([
          { timestamp: ISO_INDEX[0], ev_a_kw: 1 },
          { timestamp: null, ev_a_kw: 1 },
        ]),
      );
      should(err.problems[0]!.row).equal(1);
      should(err.message).match(/row 1 \(null\): timestamp null is not a time/);
    });

    it('a duplicate timestamp', () => {
      const err = scheduleError(() =>
        parseSchedule({
          columns: ['ev_a_kw'],
          index: [ISO_INDEX[0], ISO_INDEX[1], '2025-06-02T10:00:00+01:00'],
          data: [[1], [2], [3]],
        }),
      );
      should(err.problems).have.length(1);
      should(err.problems[0]!.row).equal(2);
      should(err.message).equal(
        'invalid schedule: row 2 (2025-06-02T10:00:00+01:00): duplicate timestamp: the same time as row 1 (2025-06-02T09:00:00.000Z)',
      );
    });

    it('unsorted timestamps', () => {
      const err = scheduleError(() =>
        parseSchedule({
          columns: ['ev_a_kw'],
          index: [ISO_INDEX[0], ISO_INDEX[2], ISO_INDEX[1]],
          data: [[1], [2], [3]],
        }),
      );
      should(err.problems.map((p) => p.row)).eql([2]);
      should(err.message).equal(
        'invalid schedule: row 2 (2025-06-02T09:00:00.000Z): timestamps are not sorted: earlier than row 1 (2025-06-02T10:00:00.000Z)',
      );
    });

    it('a RangeIndex (0, 1, 2) instead of times', () => {
      const err = scheduleError(() =>
        parseSchedule({ columns: ['ev_a_kw'], index: [0, 1, 2], data: [[1], [2], [3]] }),
      );
      should(err.problems.map((p) => p.row)).eql([0, 1, 2]);
      should(err.message).startWith(
        'invalid schedule: row 0 (0): timestamp 0 is before 2000: is the index row numbers rather than times? Give the DataFrame a DatetimeIndex',
      );
      should(EARLIEST_PLAUSIBLE_MS).equal(Date.UTC(2000, 0, 1));
    });

    it('split with no index, or index and data of different lengths', () => {
      should(
        scheduleError(() => parseSchedule({ columns: ['ev_a_kw'], data: [[1]] })).message,
      ).match(/split orient: no "index": the DataFrame needs a DatetimeIndex/);
      should(
        scheduleError(() =>
          parseSchedule({ columns: ['ev_a_kw'], index: ISO_INDEX.slice(0, 3), data: [[1], [2]] }),
        ).message,
      ).equal('invalid schedule: split orient: "index" has 3 entries but "data" has 2 rows');
      const err = scheduleError(() =>
        parseSchedule({
          columns: ['ev_a_kw', 'ev_b_kw'],
          index: ISO_INDEX.slice(0, 2),
          data: [[1, 2], [3]],
        }),
      );
      should(err.problems[0]!.row).equal(1);
      should(err.message).equal(
        'invalid schedule: row 1: expected an array of 2 values (one per column), got 1 values',
      );
      should(
        scheduleError(() =>
          parseSchedule({ columns: 'ev_a_kw', index: ISO_INDEX.slice(0, 1), data: [[1]] }),
        ).message,
      ).match(/"columns" must be an array/);
    });

    it('index and columns orients with rows or columns that are not objects', () => {
      const idx = scheduleError(() =>
        parseSchedule({ [ISO_INDEX[0]!]: { ev_a_kw: 1 }, [ISO_INDEX[1]!]: 5 }),
      );
      should(idx.problems[0]).match({ row: 1, time: ISO_INDEX[1] });
      should(idx.message).match(/expected an object of column values, got number 5/);
      const cols = scheduleError(() =>
        parseSchedule({ ev_a_kw: { [ISO_INDEX[0]!]: 1 }, ev_b_kw: [1] }),
      );
      should(cols.problems[0]).match({ column: 'ev_b_kw' });
      should(cols.message).match(/column ev_b_kw: expected an object of \{time: value\}/);
    });

    it('a records row that is not an object', () => {
      const err = scheduleError(() => parseSchedule([{ timestamp: ISO_INDEX[0] }, 'x']));
      should(err.message).equal(
        'invalid schedule: row 1: expected a row object, got the string "x"',
      );
    });

    it('a CSV row with the wrong number of fields, naming the line', () => {
      const err = scheduleError(() =>
        parseSchedule(
          'timestamp,ev_a_kw,price\n2025-06-02T08:00:00Z,1,0.2\n2025-06-02T09:00:00Z,2\n',
        ),
      );
      should(err.problems).eql([{ row: 1, reason: 'line 3 has 2 fields, the header has 3' }]);
      should(err.message).equal('invalid schedule: row 1: line 3 has 2 fields, the header has 3');
    });

    it('a non-numeric value, naming row, time, CSV line, column and value', () => {
      const err = scheduleError(() =>
        parseSchedule('timestamp,ev_a_kw\n2025-06-02T08:00:00Z,1\n2025-06-02T09:00:00Z,fast\n'),
      );
      should(err.problems).eql([
        {
          row: 1,
          time: '2025-06-02T09:00:00Z, line 3',
          column: 'ev_a_kw',
          value: 'fast',
          reason: 'the string "fast" is not a number (kW)',
        },
      ]);
      should(err.message).equal(
        'invalid schedule: row 1 (2025-06-02T09:00:00Z, line 3), column ev_a_kw: the string "fast" is not a number (kW)',
      );
    });

    it('non-numeric JSON values: booleans, objects, arrays, blank strings', () => {
      const err = scheduleError(() =>
        parseSchedule({
          columns: ['ev_a_kw'],
          index: ISO_INDEX,
          data: [[true], [{ kw: 1 }], [[1]], ['  ']],
        }),
      );
      should(err.problems.map((p) => [p.row, p.column, p.reason])).eql([
        [0, 'ev_a_kw', 'boolean true is not a number (kW)'],
        [1, 'ev_a_kw', 'an object is not a number (kW)'],
        [2, 'ev_a_kw', 'an array is not a number (kW)'],
        [3, 'ev_a_kw', 'the string "  " is not a number (kW)'],
      ]);
    });

    it('infinite power: pandas "inf" in CSV, an overflowing number, Infinity in JS rows', () => {
      const csv = scheduleError(() =>
        parseSchedule(
          'timestamp,ev_a_kw\n2025-06-02T08:00:00Z,inf\n2025-06-02T09:00:00Z,1e999\n2025-06-02T10:00:00Z,-inf\n',
        ),
      );
      should(csv.problems.map((p) => [p.row, p.column, p.value, p.reason])).eql([
        [0, 'ev_a_kw', 'inf', 'inf is not a finite power'],
        [1, 'ev_a_kw', '1e999', 'Infinity is not a finite power'],
        [2, 'ev_a_kw', '-inf', '-inf is not a finite power'],
      ]);
      const js = scheduleError(() =>
        parseSchedule([
          { timestamp: ISO_INDEX[0], battery_discharge_kw: Number.POSITIVE_INFINITY },
          { timestamp: ISO_INDEX[1], battery_discharge_kw: 1 },
        ]),
      );
      should(js.message).equal(
        'invalid schedule: row 0 (2025-06-02T08:00:00.000Z), column battery_discharge_kw: Infinity is not a finite power',
      );
    });

    it('negative power beyond solver noise', () => {
      const err = scheduleError(() =>
        parseSchedule({
          columns: ['ev_a_kw', 'battery_discharge_kw'],
          index: ISO_INDEX.slice(0, 2),
          data: [
            [1, 0],
            [-0.5, -1e-5],
          ],
        }),
      );
      should(err.problems.map((p) => [p.row, p.column, p.value])).eql([
        [1, 'ev_a_kw', -0.5],
        [1, 'battery_discharge_kw', -1e-5],
      ]);
      should(err.message).match(
        /row 1 \(2025-06-02T09:00:00\.000Z\), column ev_a_kw: -0\.5 kW is negative: setpoint columns carry magnitudes/,
      );
      should(err.message).match(/column battery_discharge_kw: -0\.00001 kW is negative/);
    });

    it('a setpoint column that appears twice', () => {
      const err = scheduleError(() =>
        parseSchedule('timestamp,ev_a_kw,ev_a_kw\n2025-06-02T08:00:00Z,1,2\n', {
          slotSeconds: 3600,
        }),
      );
      should(err.problems).eql([{ column: 'ev_a_kw', reason: 'the column appears twice' }]);
    });

    it('collects every problem, shows five and counts the rest', () => {
      const data = Array.from({ length: 7 }, () => ['x']);
      const index = Array.from({ length: 7 }, (_, i) => iso(DAY + i * HOUR));
      const err = scheduleError(() => parseSchedule({ columns: ['ev_a_kw'], index, data }));
      should(err.problems).have.length(7);
      should(err.message.match(/is not a number/g)).have.length(5);
      should(err.message).endWith('; and 2 more problems');
    });

    it('keeps at most 50 problems and counts the overflow in the message', () => {
      const n = 60;
      const data = Array.from({ length: n }, () => [-1]);
      const index = Array.from({ length: n }, (_, i) => iso(DAY + i * HOUR));
      const err = scheduleError(() => parseSchedule({ columns: ['ev_a_kw'], index, data }));
      should(err.problems).have.length(50);
      should(err.message).endWith('; and 55 more problems');
    });

    it('says "1 more problem" in the singular', () => {
      const data = Array.from({ length: 6 }, () => ['x']);
      const index = Array.from({ length: 6 }, (_, i) => iso(DAY + i * HOUR));
      const err = scheduleError(() => parseSchedule({ columns: ['ev_a_kw'], index, data }));
      should(err.message).endWith('; and 1 more problem');
    });
  });
});

describe('ScheduleError', () => {
  it('formats problems with row, time and column', () => {
    const err = new ScheduleError([
      { row: 3, time: '08:00', column: 'ev_a_kw', reason: 'bad' },
      { row: 4, reason: 'worse' },
      { column: 'c', reason: 'odd' },
      { reason: 'plain' },
    ]);
    should(err).be.instanceOf(Error);
    should(err.message).equal(
      'invalid schedule: row 3 (08:00), column ev_a_kw: bad; row 4: worse; column c: odd; plain',
    );
    should(err.problems).have.length(4);
  });

  it('takes a plain message', () => {
    const err = new ScheduleError('nothing to do');
    should(err.message).equal('invalid schedule: nothing to do');
    should(err.problems).eql([{ reason: 'nothing to do' }]);
  });
});
