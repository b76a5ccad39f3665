/**
 * Values that are finite but not physical (1e308 kW, a timeout of 1e306 s, a time in the year
 * 1e22) are refused where they come in, saying the bound and where; and whatever the engine
 * accepts survives a save and a restart unchanged.
 */
import should from 'should';
import { ManualClock } from '../../src/clock';
import {
  type Command,
  CommandValidationError,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
} from '../../src/commands';
import { convertSchedule } from '../../src/convert';
import { DispatchEngine } from '../../src/engine';
import type { RestoreProblem } from '../../src/restore';
import { parseSchedule, Schedule, ScheduleError } from '../../src/schedule';
import { LATEST_TIME_MS } from '../../src/time';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const H = 3600_000;
const idx = (n: number, start = T0) =>
  Array.from({ length: n }, (_, i) => new Date(start + i * H).toISOString());

function scheduleError(f: () => unknown): ScheduleError {
  try {
    f();
  } catch (err) {
    should(err).be.instanceOf(ScheduleError);
    return err as ScheduleError;
  }
  throw new Error('expected a ScheduleError');
}

function validationError(f: () => unknown): CommandValidationError {
  try {
    f();
  } catch (err) {
    should(err).be.instanceOf(CommandValidationError);
    return err as CommandValidationError;
  }
  throw new Error('expected a CommandValidationError');
}

describe('bounds: values that are not physical', () => {
  describe('schedules', () => {
    it('refuses 1e308 kW naming the row, the column and the bound (split orient)', () => {
      const engine = new DispatchEngine({ clock: new ManualClock(T0) });
      const input = {
        columns: ['battery_charge_kw', 'battery_discharge_kw', 'price'],
        index: idx(3),
        data: [
          [5, 0, 1e308], // an ignored column is not a setpoint: never validated
          [1e308, 0, 0.3],
          [0, 2, 0.3],
        ],
      };
      const err = scheduleError(() =>
        engine.scheduleToCommands(input, { assetMap: { battery: 'bat' } }),
      );
      should(err.problems).eql([
        {
          row: 1,
          time: '2025-06-02T09:00:00.000Z',
          column: 'battery_charge_kw',
          value: 1e308,
          reason:
            '1e+308 kW is above 1000000 kW (1 GW), the most accepted for one asset: is the column in W?',
        },
      ]);
      should(err.message).equal(
        'invalid schedule: row 1 (2025-06-02T09:00:00.000Z), column battery_charge_kw: 1e+308 kW is above 1000000 kW (1 GW), the most accepted for one asset: is the column in W?',
      );
      should(engine.stats().total).equal(0);
      should(engine.uniqueScheduleId('x')).equal('x');
    });

    it('refuses it in CSV text and in row objects too; the bound itself is accepted', () => {
      const csv = `timestamp,ev_a_kw\n${idx(2).join(',1000000\n')},1e308\n`;
      const err = scheduleError(() => parseSchedule(csv));
      should(err.message).match(
        /row 1 \(2025-06-02T09:00:00.000Z, line 3\), column ev_a_kw: 1e\+308 kW is above 1000000 kW/,
      );
      const rows = [
        { timestamp: idx(1)[0], ev_a_kw: MAX_POWER_KW },
        { timestamp: idx(2)[1], ev_a_kw: MAX_POWER_KW + 0.001 },
      ];
      should(scheduleError(() => parseSchedule(rows)).problems[0]).have.properties({
        row: 1,
        column: 'ev_a_kw',
        value: MAX_POWER_KW + 0.001,
      });
      const ok = parseSchedule(rows.slice(0, 1), { slotSeconds: 900 });
      should(ok.values.get('ev_a_kw')?.[0]).equal(MAX_POWER_KW);
    });

    it('a netted battery setpoint stays finite: a Schedule made by hand is checked in the conversion', () => {
      // parseSchedule bounds the cells; a Schedule constructed directly skips it.
      const times = new Float64Array([T0, T0 + H]);
      const schedule = new Schedule({
        times,
        labels: idx(2),
        slotSeconds: 3600,
        setpoints: [
          { name: 'battery_charge_kw', kind: 'battery_charge', key: '' },
          { name: 'battery_discharge_kw', kind: 'battery_discharge', key: '' },
        ],
        values: new Map([
          ['battery_charge_kw', new Float64Array([5, 0])],
          ['battery_discharge_kw', new Float64Array([0, 1e308])],
        ]),
        ignoredColumns: [],
        scheduleId: null,
        meta: {},
      });
      const err = scheduleError(() => convertSchedule(schedule, { assetMap: { battery: 'bat' } }));
      should(err.problems).eql([
        {
          row: 1,
          time: idx(2)[1],
          column: 'battery_charge_kw - battery_discharge_kw',
          value: -1e308,
          reason: '-1e+308 kW is beyond 1000000 kW (1 GW), the most accepted for one asset',
        },
      ]);
    });

    it('refuses a fallback, a time, a slot length and command settings out of bounds', () => {
      const ev = { columns: ['ev_a_kw'], index: idx(2), data: [[1], [2]] };
      const map = { assetMap: { a: 'a' } };
      should(
        scheduleError(() =>
          convertSchedule(ev, { ...map, horizonEnd: { fallbackKw: { a: 2 * MAX_POWER_KW } } }),
        ).message,
      ).match(/fallbackKw\["a"\] must be a number \(kW\) from -1000000 to 1000000 .* got 2000000/);
      // Epoch nanoseconds read as a time in the year 1e13: no Date holds that.
      should(
        scheduleError(() => parseSchedule({ ...ev, index: [1e30, 2e30] })).problems[0],
      ).have.properties({
        row: 0,
        reason: 'timestamp 1e+30 is after 9999-12-31: check the epoch unit (set epochUnit)',
      });
      should(
        scheduleError(() =>
          parseSchedule({ ...ev, index: idx(1), data: [[1]] }, { slotSeconds: 1e300 }),
        ).message,
      ).match(/the last slot \(2025-06-02T08:00:00.000Z\) lasts 1e\+300 s and so ends after 9999/);
      should(
        scheduleError(() => convertSchedule(ev, { ...map, timeoutSeconds: 1e306 })).message,
      ).equal(
        `invalid schedule: timeoutSeconds must be a number >= 0.001 and <= ${MAX_TIMEOUT_SECONDS}, got 1e+306`,
      );
      should(scheduleError(() => convertSchedule(ev, { ...map, maxRetries: 2.5 })).message).match(
        /maxRetries must be an integer >= 0, got 2.5/,
      );
      should(
        scheduleError(() => convertSchedule(ev, { ...map, priority: Number.NaN })).message,
      ).match(/priority must be a number, got null/);
    });
  });

  describe('commands made by hand', () => {
    it('refuses 1e308 kW naming the index, the field and the bound; nothing is registered', () => {
      const engine = new DispatchEngine({ clock: new ManualClock(T0) });
      const good = { assetId: 'a', type: 'SET_CHARGE_RATE' as const, valueKw: 5 };
      const err = validationError(() =>
        engine.submit([good, { ...good, assetId: 'b', valueKw: 1e308 }]),
      );
      should(err.message).equal(
        'command [1]: valueKw must be at most 1000000 kW (1 GW, the most accepted for one asset; is it in W?) for SET_CHARGE_RATE, got 1e+308',
      );
      should(err.field).equal('valueKw');
      should(err.index).equal(1);
      should(engine.stats().total).equal(0);
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ timeoutSeconds: 1e306 }, /command: timeoutSeconds must be a number >= 0.001 and <= /],
        [{ scheduledAt: 1e300 }, /scheduledAt must be a time from 1970-01-01 to 9999-12-31/],
        [{ validUntil: LATEST_TIME_MS + 1 }, /validUntil must be a time from 1970-01-01 to 9999/],
        [{ scheduledAt: -1 }, /scheduledAt must be a time from 1970-01-01/],
      ];
      for (const [extra, message] of cases) {
        should(() => engine.submit({ ...good, ...extra })).throw(message);
      }
      should(engine.stats().total).equal(0);
    });
  });

  describe('a state file round-trips whatever the engine accepted', () => {
    it('every accepted extreme value survives toJSON -> JSON text -> restore unchanged', async () => {
      const clock = new ManualClock(T0);
      const engine = new DispatchEngine({ clock });
      const base = { assetId: 'a', type: 'SET_CHARGE_RATE' as const };
      engine.submit([
        { ...base, id: 'max', valueKw: MAX_POWER_KW, scheduledAt: T0 + H },
        { ...base, id: 'tiny', valueKw: Number.MIN_VALUE, scheduledAt: T0 + 2 * H },
        { ...base, id: 'minus-zero', valueKw: -0, priority: -0, scheduledAt: T0 + 3 * H },
        {
          ...base,
          id: 'far',
          valueKw: 1,
          priority: Number.MAX_VALUE,
          maxRetries: Number.MAX_SAFE_INTEGER,
          timeoutSeconds: MAX_TIMEOUT_SECONDS,
          scheduledAt: LATEST_TIME_MS - 1,
          validUntil: LATEST_TIME_MS,
        },
        {
          ...base,
          id: 'early',
          valueKw: 2,
          priority: -Number.MAX_VALUE,
          timeoutSeconds: 0.001,
          scheduledAt: 0,
          validUntil: null,
        },
        { assetId: 'b', type: 'START_CHARGING', id: 'no-value', scheduledAt: T0 + H },
      ]);
      // A schedule at both ends of the power range, netted, with fallbacks at the bound,
      // and one that ends on the last day a time may name.
      const fallback = new DispatchEngine({
        clock,
        config: { horizonEnd: { fallbackKw: { bat: -MAX_POWER_KW, ev: MAX_POWER_KW, '*': 0 } } },
      });
      const cols = ['battery_charge_kw', 'battery_discharge_kw', 'ev_x_kw'];
      fallback.scheduleToCommands(
        {
          columns: cols,
          index: idx(3),
          data: [
            [MAX_POWER_KW, 0, 0.001],
            [0, MAX_POWER_KW, MAX_POWER_KW],
            [MAX_POWER_KW, MAX_POWER_KW, 0],
          ],
        },
        { assetMap: { battery: 'bat', x: 'ev' }, scheduleId: 'range' },
      );
      const lastDay = Date.parse('9999-12-31T21:00:00Z');
      fallback.scheduleToCommands(
        { columns: ['ev_y_kw'], index: idx(2, lastDay), data: [[0], [MAX_POWER_KW]] },
        { assetMap: { y: 'ev2' }, scheduleId: 'last-day' },
      );
      clock.set(T0 + H);
      for (const e of [engine, fallback]) {
        // Finished commands carry their full history and errors through the file as well.
        const [due] = e.getPendingCommands();
        await e.dispatchCommand(due as Command, { protocol: 't', dispatch: () => undefined });
        e.handleResponse(due as Command, true);
        if (e === engine) {
          // A re-apply of the setpoint in force: a command of its own, with reapplyOf.
          should(e.reapply('a', 'reconnected').map((c) => c.reapplyOf)).eql(['max']);
        }
        const text = JSON.stringify(e.toJSON());
        should(text).not.match(/"valueKw":null/);
        const problems: RestoreProblem[] = [];
        const restored = DispatchEngine.restore(JSON.parse(text), { clock }, (p) =>
          problems.push(p),
        );
        should(problems).eql([]);
        should(JSON.stringify(restored.toJSON())).equal(text);
      }
      should(engine.getCommand('minus-zero')?.valueKw).equal(0);
      should(Object.is(engine.getCommand('minus-zero')?.priority, 0)).be.true();
      should(fallback.getCommands({ assetId: 'bat' }).map((c) => [c.type, c.valueKw])).eql([
        ['SET_CHARGE_RATE', MAX_POWER_KW],
        ['SET_DISCHARGE_RATE', MAX_POWER_KW],
        ['SET_CHARGE_RATE', 0],
        ['SET_DISCHARGE_RATE', MAX_POWER_KW],
      ]);
      should(fallback.getCommand('last-day:ev2:end')?.scheduledAt.toISOString()).equal(
        '9999-12-31T23:00:00.000Z',
      );
    });
  });
});
