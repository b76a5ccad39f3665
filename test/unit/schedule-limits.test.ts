// The schedule's own site import limit: `limitColumn` reads a column (the peak-shaving
// sample's `peak_target_kw`) as kW per slot onto `Conversion.limits`, merged into runs,
// without commands, across formats; a bad cell names its row and column.

import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import { ManualClock } from '../../src/clock';
import { convertSchedule } from '../../src/convert';
import { DispatchEngine } from '../../src/engine';
import { EventBus, EventType, type ScheduleSummary } from '../../src/event-bus';
import { parseSchedule, ScheduleError } from '../../src/schedule';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const DAY = Date.parse('2025-06-02T00:00:00Z');
const Q = 15 * 60_000;
const opts = { assetMap: { battery: 'bat' }, limitColumn: 'peak_target_kw' };

/** The peak-shaving CSV with the peak target of rows `rows` (0-based) set to `value`. */
function csvWith(changes: Record<number, string>): string {
  const lines = fixture('peak-shaving.csv').trimEnd().split('\n');
  const header = (lines[0] as string).split(',');
  const col = header.indexOf('peak_target_kw');
  for (const [r, v] of Object.entries(changes)) {
    const cells = (lines[Number(r) + 1] as string).split(',');
    cells[col] = v;
    lines[Number(r) + 1] = cells.join(',');
  }
  return `${lines.join('\n')}\n`;
}

function errorOf(fn: () => unknown): ScheduleError {
  try {
    fn();
  } catch (err) {
    should(err).be.instanceOf(ScheduleError);
    return err as ScheduleError;
  }
  throw new Error('expected a ScheduleError');
}

describe('schedule limit column (limitColumn)', () => {
  it('CSV: the 96 equal slots of peak_target_kw are one limit over the day, and no command', () => {
    const c = convertSchedule(fixture('peak-shaving.csv'), { ...opts, scheduleId: 'ps' });
    should(c.limits).eql([{ from: DAY, until: DAY + 96 * Q, importKw: 120 }]);
    should(c.summary.ignoredColumns).not.containEql('peak_target_kw');
    should(c.summary.unmappedColumns).not.containEql('peak_target_kw');
    should(c.summary.limitColumn).equal('peak_target_kw');
    should(c.commands.every((cmd) => cmd.assetId === 'bat')).be.true();
    // The same commands as without the option: the limit makes none.
    const plain = convertSchedule(fixture('peak-shaving.csv'), {
      assetMap: { battery: 'bat' },
      scheduleId: 'ps',
    });
    should(c.commands.map((x) => [x.id, x.valueKw])).eql(
      plain.commands.map((x) => [x.id, x.valueKw]),
    );
  });

  it('split JSON gives the same limits as CSV', () => {
    const a = convertSchedule(fixture('peak-shaving.split.json'), opts);
    const b = convertSchedule(fixture('peak-shaving.csv'), opts);
    should(a.limits).eql(b.limits);
    should(a.summary.ignoredColumns).eql(b.summary.ignoredColumns);
  });

  it('records with numeric strings and nulls: runs of equal values, a gap where there is no limit', () => {
    const t = (i: number) => new Date(DAY + i * Q).toISOString();
    const rows = [
      { timestamp: t(0), battery_charge_kw: 0, cap: '100' },
      { timestamp: t(1), battery_charge_kw: 0, cap: 100 },
      { timestamp: t(2), battery_charge_kw: 0, cap: 80 },
      { timestamp: t(3), battery_charge_kw: 0, cap: null },
      { timestamp: t(4), battery_charge_kw: 0, cap: 80 },
      { timestamp: t(5), battery_charge_kw: 0, cap: 0 },
    ];
    const c = convertSchedule(rows, { assetMap: { battery: 'bat' }, limitColumn: 'cap' });
    should(c.limits).eql([
      { from: DAY, until: DAY + 2 * Q, importKw: 100 },
      { from: DAY + 2 * Q, until: DAY + 3 * Q, importKw: 80 },
      { from: DAY + 4 * Q, until: DAY + 5 * Q, importKw: 80 },
      { from: DAY + 5 * Q, until: DAY + 6 * Q, importKw: 0 },
    ]);
  });

  it('CSV: an empty cell is no limit in that slot', () => {
    const c = convertSchedule(csvWith({ 10: '', 11: '', 40: '90.5' }), opts);
    should(c.limits).eql([
      { from: DAY, until: DAY + 10 * Q, importKw: 120 },
      { from: DAY + 12 * Q, until: DAY + 40 * Q, importKw: 120 },
      { from: DAY + 40 * Q, until: DAY + 41 * Q, importKw: 90.5 },
      { from: DAY + 41 * Q, until: DAY + 96 * Q, importKw: 120 },
    ]);
  });

  it('a bad cell rejects the schedule naming its row (and CSV line) and the column', () => {
    const e = errorOf(() => convertSchedule(csvWith({ 7: 'lots' }), opts));
    should(e.problems).have.length(1);
    should(e.problems[0]).containEql({ row: 7, column: 'peak_target_kw', value: 'lots' });
    should(e.message).match(
      /row 7 \(2025-06-02 01:45:00\+00:00, line 9\), column peak_target_kw: the string "lots" is not a number \(kW\)/,
    );
    const neg = errorOf(() => convertSchedule(csvWith({ 3: '-5' }), opts));
    should(neg.message).match(/row 3 .*column peak_target_kw: -5 kW is negative: an import limit/);
    const inf = errorOf(() => convertSchedule(csvWith({ 4: 'inf' }), opts));
    should(inf.message).match(/row 4 .*column peak_target_kw: inf is not a finite power/);
    const watts = errorOf(() => convertSchedule(csvWith({ 5: '120000000' }), opts));
    should(watts.message).match(/row 5 .*column peak_target_kw: 120000000 kW is above .* in W\?/);
  });

  it('split JSON: a bad cell names its row, timestamp and column', () => {
    const doc = JSON.parse(fixture('peak-shaving.split.json'));
    const col = doc.columns.indexOf('peak_target_kw');
    doc.data[20][col] = 'n/a';
    const e = errorOf(() => convertSchedule(doc, opts));
    should(e.message).match(
      /row 20 \(2025-06-02T05:00:00.000Z\), column peak_target_kw: the string "n\/a" is not a number/,
    );
  });

  it('a limitColumn the schedule lacks, or that names a setpoint column, is an error', () => {
    const missing = errorOf(() =>
      convertSchedule(fixture('peak-shaving.csv'), { ...opts, limitColumn: 'grid_cap_kw' }),
    );
    should(missing.message).match(/column grid_cap_kw: no such column for limitColumn/);
    const setpoint = errorOf(() =>
      convertSchedule(fixture('peak-shaving.csv'), {
        ...opts,
        limitColumn: 'battery_charge_kw',
      }),
    );
    should(setpoint.message).match(/column battery_charge_kw: limitColumn names a setpoint column/);
    should(() => parseSchedule(fixture('peak-shaving.csv'), { limitColumn: '' })).throw(
      /limitColumn must be a column name/,
    );
  });

  it('without limitColumn the column is ignored as before and there are no limits', () => {
    const c = convertSchedule(fixture('peak-shaving.csv'), { assetMap: { battery: 'bat' } });
    should(c.limits).eql([]);
    should(c.summary.ignoredColumns).containEql('peak_target_kw');
    should(c.summary).not.have.property('limitColumn');
  });

  it('receiveSchedule takes the option and SCHEDULE_RECEIVED names the limit column', () => {
    const clock = new ManualClock(DAY);
    const eventBus = new EventBus({ clock });
    const seen: ScheduleSummary[] = [];
    eventBus.subscribe(EventType.SCHEDULE_RECEIVED, (e) => seen.push(e.payload));
    const engine = new DispatchEngine({ clock, eventBus });
    const c = engine.receiveSchedule(fixture('peak-shaving.split.json'), opts);
    should(c.limits).eql([{ from: DAY, until: DAY + 96 * Q, importKw: 120 }]);
    should(seen).have.length(1);
    should(seen[0]?.limitColumn).equal('peak_target_kw');
  });
});
