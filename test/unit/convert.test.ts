import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import { type Command, CommandStatus, CommandType, transition } from '../../src/commands';
import {
  type ConvertOptions,
  convertSchedule,
  DEFAULT_DEADBAND_KW,
  mapKeysFor,
} from '../../src/convert';
import { classifyColumn, parseSchedule, ScheduleError } from '../../src/schedule';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

const HOUR = 3600_000;
const DAY = Date.UTC(2025, 5, 2);
const NOW = Date.UTC(2025, 5, 1, 23, 30);
const iso = (ms: number): string => new Date(ms).toISOString();
const at = (h: number, m = 0): string => iso(DAY + h * HOUR + m * 60_000);

const EV_MAP = { ev_001: 'ast_ev_001', ev_002: 'ast_ev_002', ev_003: 'ast_ev_003' };
const BATTERY_MAP = { battery: 'ast_batt_001' };

/** A split-orient frame with hourly slots from 08:00Z. */
function frame(columns: string[], data: unknown[][], startHour = 8): Record<string, unknown> {
  return {
    columns,
    index: data.map((_, r) => at(startHour + r)),
    data,
  };
}

/** One EV column (ev_ev_001_kw) over hourly slots from 08:00Z. */
const ev = (values: (number | null)[]) =>
  frame(
    ['ev_ev_001_kw'],
    values.map((v) => [v]),
  );

/** The battery pair over hourly slots from 08:00Z. */
const battery = (rows: [number | null, number | null][]) =>
  frame(['battery_charge_kw', 'battery_discharge_kw'], rows);

function convert(input: unknown, options: Partial<ConvertOptions> = {}) {
  return convertSchedule(input, { assetMap: { ...EV_MAP, ...BATTERY_MAP }, now: NOW, ...options });
}

/** Commands as [asset, type, kW, scheduledAt, validUntil] for compact assertions. */
const brief = (cmds: Command[]) =>
  cmds.map((c) => [
    c.assetId,
    c.type,
    c.valueKw,
    iso(c.scheduledAt.getTime()),
    c.validUntil === null ? null : iso(c.validUntil.getTime()),
  ]);

function scheduleError(fn: () => unknown): ScheduleError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  should.exist(caught, 'expected a ScheduleError, nothing was thrown');
  should(caught).be.instanceOf(ScheduleError);
  return caught as ScheduleError;
}

const C = CommandType.SET_CHARGE_RATE;
const D = CommandType.SET_DISCHARGE_RATE;

describe('convertSchedule', () => {
  describe("the seed's worked example", () => {
    it('22 kW at 08:00, 22 at 09:00 and 10:00, 0 at 11:00 gives exactly two commands', () => {
      const { commands, summary } = convert(ev([22, 22, 22, 0]), { scheduleId: 'sch-seed' });
      should(commands).have.length(2);
      should(brief(commands)).eql([
        ['ast_ev_001', C, 22, at(8), at(11)],
        ['ast_ev_001', C, 0, at(11), null],
      ]);
      should(summary.commandCount).equal(2);
    });

    it('the commands are complete, PENDING, and traceable to their column and slot', () => {
      const { commands } = convert(ev([22, 22, 22, 0]), { scheduleId: 'sch-seed' });
      const [first, second] = commands as [Command, Command];
      should(first).match({
        id: 'sch-seed:ast_ev_001:0',
        assetId: 'ast_ev_001',
        type: C,
        valueKw: 22,
        status: CommandStatus.PENDING,
        priority: 1,
        attempts: 0,
        maxRetries: 3,
        timeoutSeconds: 30,
        scheduleId: 'sch-seed',
        lastError: null,
        holdReason: null,
        nextAttemptAt: null,
        deadline: null,
      });
      should(first.source).eql({ columns: ['ev_ev_001_kw'], slot: 0 });
      should(second.id).equal('sch-seed:ast_ev_001:3');
      should(second.source).eql({ columns: ['ev_ev_001_kw'], slot: 3 });
      should(first.createdAt.getTime()).equal(NOW);
      should(first.history).eql([{ status: CommandStatus.PENDING, at: new Date(NOW) }]);
    });

    it('a status change of one command leaves the history of the others as it was', () => {
      const { commands } = convert(ev([22, 11, 0]));
      const [first, second, third] = commands as [Command, Command, Command];
      transition(first, CommandStatus.DISPATCHED, NOW + 1000, 'attempt 1 of 4');
      transition(second, CommandStatus.CANCELLED, NOW + 2000, 'superseded');
      should(first.history.map((h) => h.status)).eql([
        CommandStatus.PENDING,
        CommandStatus.DISPATCHED,
      ]);
      should(second.history.map((h) => h.reason)).eql([undefined, 'superseded']);
      should(third.history).eql([{ status: CommandStatus.PENDING, at: new Date(NOW) }]);
    });

    it('passes maxRetries, timeoutSeconds and priority through', () => {
      const { commands } = convert(ev([5, 6]), { maxRetries: 0, timeoutSeconds: 12, priority: 7 });
      for (const c of commands) should(c).match({ maxRetries: 0, timeoutSeconds: 12, priority: 7 });
    });
  });

  describe('the sample schedules', () => {
    it('EV split and EV epoch-wrapped result give identical commands', () => {
      const opts = { assetMap: EV_MAP, now: NOW, scheduleId: 'sch-ev' };
      const a = convertSchedule(fixture('ev-schedule.split.json'), opts);
      const b = convertSchedule(fixture('ev-result.epoch.json'), opts);
      should(b.commands).eql(a.commands);
      should(b.summary).eql(a.summary);
      should(a.commands).have.length(10);
      const of = (id: string) => brief(a.commands.filter((c) => c.assetId === id));
      should(of('ast_ev_001')).eql([
        ['ast_ev_001', C, 0, '2025-06-02T00:00:00.000Z', '2025-06-02T01:00:00.000Z'],
        ['ast_ev_001', C, 11, '2025-06-02T01:00:00.000Z', '2025-06-02T05:00:00.000Z'],
        ['ast_ev_001', C, 0, '2025-06-02T05:00:00.000Z', null],
      ]);
      should(of('ast_ev_002')).eql([
        ['ast_ev_002', C, 7.4, '2025-06-02T00:00:00.000Z', '2025-06-02T03:00:00.000Z'],
        ['ast_ev_002', C, 0, '2025-06-02T03:00:00.000Z', '2025-06-02T22:00:00.000Z'],
        ['ast_ev_002', C, 7.4, '2025-06-02T22:00:00.000Z', null],
      ]);
      should(of('ast_ev_003')).eql([
        ['ast_ev_003', C, 0, '2025-06-02T00:00:00.000Z', '2025-06-02T10:00:00.000Z'],
        ['ast_ev_003', C, 22, '2025-06-02T10:00:00.000Z', '2025-06-02T14:00:00.000Z'],
        ['ast_ev_003', C, 11, '2025-06-02T14:00:00.000Z', '2025-06-02T15:00:00.000Z'],
        ['ast_ev_003', C, 0, '2025-06-02T15:00:00.000Z', null],
      ]);
      should(a.summary).eql({
        scheduleId: 'sch-ev',
        start: '2025-06-02T00:00:00.000Z',
        end: '2025-06-03T00:00:00.000Z',
        slotSeconds: 3600,
        slots: 24,
        assets: ['ast_ev_001', 'ast_ev_002', 'ast_ev_003'],
        ignoredColumns: [
          'total_ev_kw',
          'background_load_kw',
          'solar_generation_kw',
          'net_load_kw',
          'price_per_kwh',
          'slot_cost',
        ],
        unmappedColumns: [],
        commandCount: 10,
      });
    });

    it('peak shaving split and CSV give identical commands', () => {
      const opts = { assetMap: BATTERY_MAP, now: NOW, scheduleId: 'sch-ps' };
      const a = convertSchedule(fixture('peak-shaving.split.json'), opts);
      const b = convertSchedule(fixture('peak-shaving.csv'), opts);
      should(b.commands).eql(a.commands);
      should(b.summary).eql(a.summary);
      should(a.summary).match({
        start: '2025-06-02T00:00:00.000Z',
        end: '2025-06-03T00:00:00.000Z',
        slotSeconds: 900,
        slots: 96,
        assets: ['ast_batt_001'],
        commandCount: 17,
      });
      const cmds = brief(a.commands);
      should(cmds[0]).eql([
        'ast_batt_001',
        C,
        0,
        '2025-06-02T00:00:00.000Z',
        '2025-06-02T11:00:00.000Z',
      ]);
      should(cmds).containEql([
        'ast_batt_001',
        C,
        40,
        '2025-06-02T11:00:00.000Z',
        '2025-06-02T13:15:00.000Z',
      ]);
      should(cmds).containEql([
        'ast_batt_001',
        D,
        20,
        '2025-06-02T18:00:00.000Z',
        '2025-06-02T18:15:00.000Z',
      ]);
      should(cmds[cmds.length - 1]).eql(['ast_batt_001', C, 0, '2025-06-02T19:45:00.000Z', null]);
      // one battery setpoint per slot, never negative, both columns named as the source
      const slots = a.commands.map((c) => c.scheduledAt.getTime());
      should(new Set(slots).size).equal(slots.length);
      for (const c of a.commands) {
        should(c.valueKw).be.aboveOrEqual(0);
        should(c.source!.columns).eql(['battery_charge_kw', 'battery_discharge_kw']);
      }
      should(a.commands.filter((c) => c.type === D)).have.length(10);
    });
  });

  describe('EV columns', () => {
    it('mapKeysFor tries the vehicle key with and without the ev_ prefix', () => {
      should(mapKeysFor(classifyColumn('ev_ev_001_kw')!)).eql(['ev_001', '001']);
      should(mapKeysFor(classifyColumn('ev_001_kw')!)).eql(['001', 'ev_001']);
      should(mapKeysFor(classifyColumn('battery_charge_kw')!)).eql(['battery']);
      should(mapKeysFor(classifyColumn('battery_b2_discharge_kw')!)).eql(['b2', 'battery_b2']);
    });

    it('ev_ev_001_kw resolves with the key ev_001', () => {
      const { commands } = convertSchedule(ev([3]), {
        assetMap: { ev_001: 'A' },
        slotSeconds: 3600,
      });
      should(brief(commands)).eql([['A', C, 3, at(8), null]]);
    });

    it('ev_001_kw resolves with the key ev_001 and with the key 001', () => {
      const input = frame(['ev_001_kw'], [[4]]);
      const maps: Record<string, string>[] = [{ ev_001: 'A' }, { '001': 'A' }];
      for (const assetMap of maps) {
        const { commands } = convertSchedule(input, { assetMap, slotSeconds: 3600 });
        should(brief(commands)).eql([['A', C, 4, at(8), null]]);
      }
    });

    it('prefers the exact key when both forms are in the map', () => {
      const { commands } = convertSchedule(frame(['ev_ev_001_kw', 'ev_002_kw'], [[1, 2]]), {
        assetMap: { ev_001: 'exact', '001': 'stripped', '002': 'exact2', ev_002: 'prefixed2' },
        slotSeconds: 3600,
      });
      should(commands.map((c) => c.assetId)).eql(['exact', 'exact2']);
    });

    it('total_ev_kw and ev_total_kw are not vehicles', () => {
      const { commands, summary } = convertSchedule(
        frame(['total_ev_kw', 'ev_total_kw', 'ev_ev_001_kw'], [[9, 9, 1]]),
        { assetMap: { ev_001: 'A', total: 'T', ev_total: 'T2' }, slotSeconds: 3600 },
      );
      should(commands.map((c) => c.assetId)).eql(['A']);
      should(summary.ignoredColumns).eql(['total_ev_kw', 'ev_total_kw']);
      should(summary.assets).eql(['A']);
    });

    it('several vehicles give independent command streams', () => {
      const { commands, summary } = convert(
        frame(
          ['ev_ev_001_kw', 'ev_ev_002_kw'],
          [
            [7, 0],
            [7, 11],
            [0, 11],
          ],
        ),
      );
      should(brief(commands)).eql([
        ['ast_ev_001', C, 7, at(8), at(10)],
        ['ast_ev_001', C, 0, at(10), null],
        ['ast_ev_002', C, 0, at(8), at(9)],
        ['ast_ev_002', C, 11, at(9), null],
      ]);
      should(summary.assets).eql(['ast_ev_001', 'ast_ev_002']);
    });
  });

  describe('battery columns', () => {
    it('nets charge and discharge into one setpoint per slot', () => {
      const { commands } = convert(
        battery([
          [10, 0],
          [0, 5],
          [0, 0],
          [7.4, 0.1],
          [3, 3],
          [0, 2.5],
        ]),
      );
      should(brief(commands)).eql([
        ['ast_batt_001', C, 10, at(8), at(9)],
        ['ast_batt_001', D, 5, at(9), at(10)],
        ['ast_batt_001', C, 0, at(10), at(11)],
        ['ast_batt_001', C, 7.3, at(11), at(12)],
        ['ast_batt_001', C, 0, at(12), at(13)],
        ['ast_batt_001', D, 2.5, at(13), null],
      ]);
      for (const c of commands) {
        should(c.source!.columns).eql(['battery_charge_kw', 'battery_discharge_kw']);
        should(c.valueKw).be.aboveOrEqual(0);
      }
    });

    it('a switch from discharging to charging is one command, not a stop and a start', () => {
      const { commands } = convert(
        battery([
          [0, 20],
          [15, 0],
        ]),
      );
      should(brief(commands)).eql([
        ['ast_batt_001', D, 20, at(8), at(9)],
        ['ast_batt_001', C, 15, at(9), null],
      ]);
    });

    it('works with only one of the two columns', () => {
      const charge = convert(frame(['battery_charge_kw'], [[5], [0]]));
      should(brief(charge.commands)).eql([
        ['ast_batt_001', C, 5, at(8), at(9)],
        ['ast_batt_001', C, 0, at(9), null],
      ]);
      should(charge.commands[0]!.source!.columns).eql(['battery_charge_kw']);
      const discharge = convert(frame(['battery_discharge_kw'], [[5], [0]]));
      should(brief(discharge.commands)).eql([
        ['ast_batt_001', D, 5, at(8), at(9)],
        ['ast_batt_001', C, 0, at(9), null],
      ]);
    });

    it('a null in one column holds that column and still nets with the other', () => {
      const { commands } = convert(
        battery([
          [10, null],
          [null, 4],
          [null, null],
          [null, 12],
        ]),
      );
      should(brief(commands)).eql([
        ['ast_batt_001', C, 10, at(8), at(9)],
        ['ast_batt_001', C, 6, at(9), at(11)],
        ['ast_batt_001', D, 2, at(11), null],
      ]);
    });

    it('several batteries: battery_<id>_charge_kw / _discharge_kw, keyed by id or battery_<id>', () => {
      const { commands, summary } = convertSchedule(
        frame(
          [
            'battery_b1_charge_kw',
            'battery_b1_discharge_kw',
            'battery_b2_charge_kw',
            'battery_b2_discharge_kw',
            'battery_soc_kwh',
          ],
          [
            [5, 0, 0, 3, 50],
            [0, 2, 0, 3, 51],
          ],
        ),
        { assetMap: { b1: 'ast_b1', battery_b2: 'ast_b2' }, now: NOW },
      );
      should(brief(commands)).eql([
        ['ast_b1', C, 5, at(8), at(9)],
        ['ast_b1', D, 2, at(9), null],
        ['ast_b2', D, 3, at(8), null],
      ]);
      should(commands[2]!.source!.columns).eql(['battery_b2_charge_kw', 'battery_b2_discharge_kw']);
      should(summary.assets).eql(['ast_b1', 'ast_b2']);
      should(summary.ignoredColumns).eql(['battery_soc_kwh']);
    });

    it('EVs and a battery in one schedule', () => {
      const { commands, summary } = convert(
        frame(
          ['ev_ev_001_kw', 'battery_charge_kw', 'battery_discharge_kw', 'price_per_kwh'],
          [
            [11, 0, 8, 0.3],
            [11, 6, 0, 0.1],
          ],
        ),
      );
      should(brief(commands)).eql([
        ['ast_ev_001', C, 11, at(8), null],
        ['ast_batt_001', D, 8, at(8), at(9)],
        ['ast_batt_001', C, 6, at(9), null],
      ]);
      should(summary.assets).eql(['ast_ev_001', 'ast_batt_001']);
      should(summary.ignoredColumns).eql(['price_per_kwh']);
    });
  });

  describe('change detection', () => {
    it('the default deadband is 0.001 kW', () => {
      should(DEFAULT_DEADBAND_KW).equal(0.001);
      should(convert(ev([22, 22.0005, 22.001, 22.0021])).commands.map((c) => c.valueKw)).eql([
        22, 22.0021,
      ]);
    });

    it('a plan of more rows than one segment (32,768) is whole: each row runs until the next of its asset', () => {
      const assets = 400;
      const rows = Array.from({ length: 96 }, (_, i) => {
        const row: Record<string, unknown> = {
          timestamp: new Date(Date.UTC(2025, 0, 1) + i * 900_000).toISOString(),
        };
        for (let a = 0; a < assets; a++) row[`ev_${a}_kw`] = (a + i) % 11;
        return row;
      });
      const assetMap = Object.fromEntries(
        Array.from({ length: assets }, (_, a) => [`ev_${a}`, `ev${a}`]),
      );
      const ch = convertSchedule(rows, {
        assetMap,
        now: 0,
        horizonEnd: { fallbackKw: { '*': 0 } },
      }).changes;
      should(ch.count).be.above(32_768);
      for (const col of [ch.asset, ch.slot, ch.valueKw, ch.until])
        should(col.length).equal(ch.count);
      let bad = 0;
      for (let k = 0; k < ch.count; k++) {
        const last = k + 1 === ch.count || ch.asset[k + 1] !== ch.asset[k];
        if ((ch.until[k] as number) !== (last ? -1 : (ch.slot[k + 1] as number))) bad++;
        if (!last && (ch.asset[k] as number) > (ch.asset[k + 1] as number)) bad++;
        const want =
          ch.slot[k] === 96 ? 0 : ((ch.asset[k] as number) + (ch.slot[k] as number)) % 11;
        if (ch.valueKw[k] !== want) bad++;
      }
      should(bad).equal(0);
    });

    it('a change equal to the deadband gives no command, despite float noise', () => {
      // 1.1 - 1 is 0.10000000000000009 in floating point
      should(convert(ev([1, 1.1]), { deadbandKw: 0.1 }).commands).have.length(1);
      should(convert(ev([22, 22.001])).commands).have.length(1);
      should(convert(ev([100, 100.001])).commands).have.length(1);
    });

    it('a change just above the deadband gives a command', () => {
      should(convert(ev([1, 1.1001]), { deadbandKw: 0.1 }).commands).have.length(2);
      should(convert(ev([22, 22.0011])).commands).have.length(2);
      should(convert(ev([10, 9.4]), { deadbandKw: 0.5 }).commands).have.length(2);
    });

    it('compares with the last value sent, so that a slow drift is not lost', () => {
      const { commands } = convert(ev([10, 10.25, 10.5, 10.75, 11]), { deadbandKw: 0.5 });
      should(brief(commands)).eql([
        ['ast_ev_001', C, 10, at(8), at(11)],
        ['ast_ev_001', C, 10.75, at(11), null],
      ]);
    });

    it('a deadband of 0 emits every change and no repeat', () => {
      const { commands } = convert(ev([1, 1, 1.000001, 1.000001, 1]), { deadbandKw: 0 });
      should(commands.map((c) => c.source!.slot)).eql([0, 2, 4]);
    });

    it('applies to the netted battery value', () => {
      const { commands } = convert(
        battery([
          [5, 0],
          [5.2, 0.1],
          [5, 1],
        ]),
        { deadbandKw: 0.5 },
      );
      should(brief(commands)).eql([
        ['ast_batt_001', C, 5, at(8), at(10)],
        ['ast_batt_001', C, 4, at(10), null],
      ]);
    });

    it('refuses a negative deadband', () => {
      should(scheduleError(() => convert(ev([1]), { deadbandKw: -1 })).message).equal(
        'invalid schedule: deadbandKw must be >= 0, got -1',
      );
    });
  });

  describe('null means hold', () => {
    it('null (pandas NaN) gives no command and keeps the previous setpoint in force', () => {
      const { commands } = convert(ev([5, null, null, 5, 0]));
      should(brief(commands)).eql([
        ['ast_ev_001', C, 5, at(8), at(12)],
        ['ast_ev_001', C, 0, at(12), null],
      ]);
    });

    it('leading nulls: the first command is at the first value', () => {
      const { commands } = convert(ev([null, null, 3]));
      should(brief(commands)).eql([['ast_ev_001', C, 3, at(10), null]]);
    });

    it('an all-null column gives no command', () => {
      const { commands } = convert(ev([null, null]));
      should(commands).have.length(0);
    });

    it('an empty CSV cell holds too', () => {
      const csv =
        'timestamp,ev_ev_001_kw,price_per_kwh\n' +
        '2025-06-02 08:00:00+00:00,7,0.1\n' +
        '2025-06-02 09:00:00+00:00,,\n' +
        '2025-06-02 10:00:00+00:00,,0.3\n' +
        '2025-06-02 11:00:00+00:00,0,0.3\n';
      should(brief(convert(csv).commands)).eql([
        ['ast_ev_001', C, 7, at(8), at(11)],
        ['ast_ev_001', C, 0, at(11), null],
      ]);
    });
  });

  describe('validUntil and the horizon end', () => {
    it("each command is valid until the asset's next command; with 'hold' the last never expires", () => {
      const { commands } = convert(ev([1, 2, 2, 3, 0]), { horizonEnd: 'hold' });
      for (let i = 0; i + 1 < commands.length; i++) {
        should(commands[i]!.validUntil!.getTime()).equal(commands[i + 1]!.scheduledAt.getTime());
      }
      should(commands[commands.length - 1]!.validUntil).equal(null);
      should(commands).have.length(4);
    });

    it('fallbackKw sends a setpoint at the schedule end', () => {
      const { commands, summary } = convert(ev([22, 22]), {
        horizonEnd: { fallbackKw: { ast_ev_001: 0 } },
        scheduleId: 'sch-h',
      });
      should(brief(commands)).eql([
        ['ast_ev_001', C, 22, at(8), at(10)],
        ['ast_ev_001', C, 0, at(10), null],
      ]);
      should(commands[1]!.id).equal('sch-h:ast_ev_001:end');
      should(commands[1]!.source).eql({ columns: ['ev_ev_001_kw'], slot: 2 });
      should(summary.end).equal(at(10));
      should(summary.commandCount).equal(2);
    });

    it('the change plan holds the same changes as the commands, which are made once, when read', () => {
      const conversion = convert(
        frame(
          ['ev_ev_001_kw', 'battery_charge_kw', 'battery_discharge_kw'],
          [
            [7, 5, 0],
            [7, 0, 3],
            [0, 0, 3],
          ],
        ),
        { horizonEnd: { fallbackKw: { '*': 0 } }, scheduleId: 'sch-p' },
      );
      const { changes } = conversion;
      should(changes.assets).eql([
        { assetId: 'ast_ev_001', kind: 'ev', columns: ['ev_ev_001_kw'] },
        {
          assetId: 'ast_batt_001',
          kind: 'battery',
          columns: ['battery_charge_kw', 'battery_discharge_kw'],
        },
      ]);
      // ev: 7 at 0, 0 at 2 (equals the fallback: no end change); battery: +5, -3, 0 at the end.
      should(changes.count).equal(5);
      should(changes.asset).eql([0, 0, 1, 1, 1]);
      should(changes.slot).eql([0, 2, 0, 1, 3]);
      should(changes.valueKw).eql([7, 0, 5, -3, 0]);
      should(changes.until).eql([2, -1, 1, 3, -1]);
      should(changes.times).eql([at(8), at(9), at(10), at(11)].map(Date.parse));
      const commands = conversion.commands;
      should(conversion.commands).equal(commands);
      should(commands.map((c) => c.id)).eql([
        'sch-p:ast_ev_001:0',
        'sch-p:ast_ev_001:2',
        'sch-p:ast_batt_001:0',
        'sch-p:ast_batt_001:1',
        'sch-p:ast_batt_001:end',
      ]);
      should(brief(commands)).eql([
        ['ast_ev_001', C, 7, at(8), at(10)],
        ['ast_ev_001', C, 0, at(10), null],
        ['ast_batt_001', C, 5, at(8), at(9)],
        ['ast_batt_001', D, 3, at(9), at(11)],
        ['ast_batt_001', C, 0, at(11), null],
      ]);
      should(conversion.summary.commandCount).equal(5);
    });

    it('no end command when the last setpoint already equals the fallback', () => {
      const { commands } = convert(ev([22, 0]), { horizonEnd: { fallbackKw: { ast_ev_001: 0 } } });
      should(brief(commands)).eql([
        ['ast_ev_001', C, 22, at(8), at(9)],
        ['ast_ev_001', C, 0, at(9), null],
      ]);
    });

    it("'*' applies to every asset not named", () => {
      const { commands } = convert(
        frame(
          ['ev_ev_001_kw', 'ev_ev_002_kw', 'battery_charge_kw'],
          [
            [7, 7, 5],
            [7, 7, 5],
          ],
        ),
        { horizonEnd: { fallbackKw: { ast_ev_002: 3, '*': 0 } } },
      );
      const ends = commands.filter((c) => c.id.endsWith(':end'));
      should(brief(ends)).eql([
        ['ast_ev_001', C, 0, at(10), null],
        ['ast_ev_002', C, 3, at(10), null],
        ['ast_batt_001', C, 0, at(10), null],
      ]);
    });

    it('an asset neither named nor covered by * holds its last setpoint', () => {
      const { commands } = convert(frame(['ev_ev_001_kw', 'ev_ev_002_kw'], [[7, 7]]), {
        slotSeconds: 900,
        horizonEnd: { fallbackKw: { ast_ev_002: 0 } },
      });
      should(brief(commands)).eql([
        ['ast_ev_001', C, 7, at(8), null],
        ['ast_ev_002', C, 7, at(8), at(8, 15)],
        ['ast_ev_002', C, 0, at(8, 15), null],
      ]);
    });

    it('a negative fallback discharges a battery', () => {
      const { commands } = convert(battery([[4, 0]]), {
        slotSeconds: 1800,
        horizonEnd: { fallbackKw: { ast_batt_001: -2.5 } },
      });
      should(brief(commands)).eql([
        ['ast_batt_001', C, 4, at(8), at(8, 30)],
        ['ast_batt_001', D, 2.5, at(8, 30), null],
      ]);
    });

    it('a negative fallback for an EV asset is refused, naming the asset and the value', () => {
      const err = scheduleError(() =>
        convert(ev([7, 7]), { horizonEnd: { fallbackKw: { ast_ev_001: -3 } } }),
      );
      should(err.message).equal(
        'invalid schedule: horizonEnd.fallbackKw["ast_ev_001"] is -3 kW for EV asset ast_ev_001: an EV charger cannot discharge; use 0 or more',
      );
    });

    it("a negative '*' fallback is refused for the EV assets it would apply to", () => {
      const input = frame(
        ['ev_ev_001_kw', 'ev_ev_002_kw', 'battery_charge_kw'],
        [
          [7, 7, 5],
          [7, 7, 5],
        ],
      );
      const err = scheduleError(() =>
        convert(input, { horizonEnd: { fallbackKw: { ast_ev_002: 0, '*': -1 } } }),
      );
      should(err.problems).have.length(1);
      should(err.message).match(/fallbackKw\["\*"\] is -1 kW for EV asset ast_ev_001/);
      should(err.message).not.match(/ast_ev_002/);
      // the same fallback is fine when only a battery gets it
      const ok = convert(battery([[5, 0]]), {
        slotSeconds: 3600,
        horizonEnd: { fallbackKw: { '*': -1 } },
      });
      should(brief(ok.commands)).containEql(['ast_batt_001', D, 1, at(9), null]);
    });

    it('refuses a malformed horizonEnd', () => {
      should(
        scheduleError(() => convert(ev([1]), { horizonEnd: 'stop' as unknown as 'hold' })).message,
      ).match(/horizonEnd must be 'hold' or \{fallbackKw: \{assetId: kW\}\}, got "stop"/);
      should(
        scheduleError(() =>
          convert(ev([1]), {
            horizonEnd: { fallbackKw: { ast_ev_001: '0' as unknown as number } },
          }),
        ).message,
      ).equal(
        'invalid schedule: horizonEnd.fallbackKw["ast_ev_001"] must be a number (kW) from -1000000 to 1000000 (1 GW, the most accepted for one asset), got "0"',
      );
      should(
        scheduleError(() =>
          convert(ev([1]), {
            horizonEnd: { fallbackKw: { ast_ev_001: Number.POSITIVE_INFINITY } },
          }),
        ).message,
      ).match(/must be a number \(kW\) from -1000000 to 1000000 .*, got Infinity/);
    });
  });

  describe('asset mapping problems', () => {
    it('EV columns with no asset in the map are listed by name, and the schedule is refused', () => {
      const input = frame(['ev_ev_001_kw', 'ev_ev_007_kw', 'ev_van_kw'], [[1, 2, 3]]);
      const err = scheduleError(() =>
        convertSchedule(input, { assetMap: { ev_001: 'A' }, slotSeconds: 3600 }),
      );
      should(err.problems).have.length(1);
      should(err.message).equal(
        'invalid schedule: no asset in assetMap for columns ev_ev_007_kw, ev_van_kw (map keys tried: ev_007 or 007; van or ev_van); add them to assetMap or set ignoreUnmapped',
      );
    });

    it('a battery with no asset is refused too, in the singular', () => {
      const err = scheduleError(() =>
        convertSchedule(battery([[1, 0]]), { assetMap: {}, slotSeconds: 3600 }),
      );
      should(err.message).match(/no asset in assetMap for columns battery_charge_kw, /);
      const one = scheduleError(() =>
        convertSchedule(frame(['battery_charge_kw'], [[1]]), { assetMap: {}, slotSeconds: 60 }),
      );
      should(one.message).match(/for column battery_charge_kw \(map keys tried: battery\)/);
    });

    it('ignoreUnmapped downgrades them to a report', () => {
      const input = frame(
        ['ev_ev_001_kw', 'ev_ev_007_kw'],
        [
          [1, 2],
          [1, 3],
        ],
      );
      const { commands, summary } = convertSchedule(input, {
        assetMap: { ev_001: 'A' },
        ignoreUnmapped: true,
        now: NOW,
      });
      should(brief(commands)).eql([['A', C, 1, at(8), null]]);
      should(summary.unmappedColumns).eql(['ev_ev_007_kw']);
      should(summary.assets).eql(['A']);
      should(summary.ignoredColumns).eql([]);
    });

    it('two columns that map to the same asset are refused', () => {
      const both = frame(['ev_ev_001_kw', 'ev_001_kw'], [[1, 2]]);
      const err = scheduleError(() =>
        convertSchedule(both, { assetMap: { ev_001: 'A' }, slotSeconds: 3600 }),
      );
      should(err.problems).eql([
        { column: 'ev_001_kw', reason: 'maps to asset A, which column ev_ev_001_kw already sets' },
      ]);
      should(err.message).equal(
        'invalid schedule: column ev_001_kw: maps to asset A, which column ev_ev_001_kw already sets',
      );
    });

    it('an EV and a battery on the same asset are refused', () => {
      const input = frame(['ev_ev_001_kw', 'battery_charge_kw'], [[1, 2]]);
      const err = scheduleError(() =>
        convertSchedule(input, { assetMap: { ev_001: 'X', battery: 'X' }, slotSeconds: 3600 }),
      );
      should(err.problems[0]).match({ column: 'battery_charge_kw' });
      should(err.message).match(/maps to asset X, which column ev_ev_001_kw already sets/);
    });

    it('two batteries on the same asset are refused', () => {
      const input = frame(['battery_charge_kw', 'battery_main_charge_kw'], [[1, 2]]);
      const err = scheduleError(() =>
        convertSchedule(input, { assetMap: { battery: 'X', main: 'X' }, slotSeconds: 3600 }),
      );
      should(err.problems[0]).match({ column: 'battery_main_charge_kw' });
    });

    it('refuses a malformed assetMap', () => {
      should(
        scheduleError(() => convertSchedule(ev([1]), { assetMap: { ev_001: '' } })).message,
      ).equal('invalid schedule: assetMap["ev_001"] must be a non-empty asset id, got ""');
      should(
        scheduleError(() =>
          convertSchedule(ev([1]), { assetMap: ['a'] as unknown as Record<string, string> }),
        ).message,
      ).match(/assetMap must be an object/);
      should(
        scheduleError(() =>
          convertSchedule(ev([1]), { assetMap: { ev_001: 5 as unknown as string } }),
        ).message,
      ).match(/assetMap\["ev_001"\] must be a non-empty asset id, got 5/);
    });
  });

  describe('rated power', () => {
    it('refuses a value above the rating, naming row, time, column and value', () => {
      const err = scheduleError(() => convert(ev([11, 22, 22]), { ratedKw: { ast_ev_001: 11 } }));
      // every offending slot is reported, also those that would give no new command
      should(err.problems.map((p) => [p.row, p.time, p.column, p.value])).eql([
        [1, at(9), 'ev_ev_001_kw', 22],
        [2, at(10), 'ev_ev_001_kw', 22],
      ]);
      should(err.message).startWith(
        `invalid schedule: row 1 (${at(9)}), column ev_ev_001_kw: 22 kW is above the rated 11 kW of asset ast_ev_001`,
      );
    });

    it('accepts a value equal to the rating, and ignores ratings of other assets', () => {
      const { commands } = convert(ev([11, 0]), { ratedKw: { ast_ev_001: 11, other: 1 } });
      should(commands).have.length(2);
    });

    it('checks the netted battery magnitude, discharging too', () => {
      const err = scheduleError(() =>
        convert(
          battery([
            [30, 0],
            [0, 30],
            [40, 20],
          ]),
          { ratedKw: { ast_batt_001: 25 } },
        ),
      );
      should(err.problems.map((p) => [p.row, p.column, p.value])).eql([
        [0, 'battery_charge_kw - battery_discharge_kw', 30],
        [1, 'battery_charge_kw - battery_discharge_kw', -30],
      ]);
      should(err.message).match(
        /row 1 \([^)]+\), column battery_charge_kw - battery_discharge_kw: 30 kW is above the rated 25 kW of asset ast_batt_001/,
      );
    });
  });

  describe('input handling', () => {
    it('accepts a parsed Schedule and gives the same commands', () => {
      const opts = { assetMap: BATTERY_MAP, now: NOW, scheduleId: 'x' };
      const text = fixture('peak-shaving.csv');
      should(convertSchedule(parseSchedule(text), opts).commands).eql(
        convertSchedule(text, opts).commands,
      );
    });

    it('reads naive times in the configured zone', () => {
      const csv = 'timestamp,ev_ev_001_kw\n2025-06-02 10:00:00,5\n2025-06-02 11:00:00,0\n';
      const { commands, summary } = convert(csv, { timeZone: 'Europe/Berlin' });
      should(brief(commands)).eql([
        ['ast_ev_001', C, 5, at(8), at(9)],
        ['ast_ev_001', C, 0, at(9), null],
      ]);
      should(summary.start).equal(at(8));
    });

    it('a one-row schedule needs slotSeconds and then ends one slot later', () => {
      should(scheduleError(() => convert(ev([5]))).message).equal(
        'invalid schedule: a one-row schedule has no slot length to infer: set slotSeconds',
      );
      const { commands, summary } = convert(ev([5]), {
        slotSeconds: 900,
        horizonEnd: { fallbackKw: { '*': 0 } },
      });
      should(brief(commands)).eql([
        ['ast_ev_001', C, 5, at(8), at(8, 15)],
        ['ast_ev_001', C, 0, at(8, 15), null],
      ]);
      should(summary).match({ slots: 1, slotSeconds: 900, end: at(8, 15) });
    });

    it('a bad value anywhere rejects the whole schedule', () => {
      const input = frame(
        ['ev_ev_001_kw', 'ev_ev_002_kw'],
        [
          [1, 2],
          [1, 'x'],
        ],
      );
      const err = scheduleError(() => convert(input));
      should(err.problems).have.length(1);
      should(err.problems[0]).match({ row: 1, column: 'ev_ev_002_kw', value: 'x' });
    });

    it('a price column with strings in it is fine', () => {
      const { summary } = convert(
        frame(
          ['ev_ev_001_kw', 'price_per_kwh'],
          [
            [1, 'n/a'],
            [2, '?'],
          ],
        ),
      );
      should(summary.ignoredColumns).eql(['price_per_kwh']);
      should(summary.commandCount).equal(2);
    });
  });

  describe('summary and scheduleId', () => {
    it('takes the scheduleId from the options first', () => {
      const wrapped = { schedule: ev([1, 2]), scheduleId: 'from-wrapper', status: 'optimal' };
      const r = convert(wrapped, { scheduleId: 'from-options' });
      should(r.scheduleId).equal('from-options');
      should(r.summary.scheduleId).equal('from-options');
      for (const c of r.commands) {
        should(c.scheduleId).equal('from-options');
        should(c.id).startWith('from-options:ast_ev_001:');
      }
    });

    it("then from the wrapper's scheduleId", () => {
      const wrapped = { schedule: ev([1, 2]), scheduleId: 'from-wrapper', status: 'optimal' };
      for (const input of [wrapped, JSON.stringify(wrapped)]) {
        const r = convert(input);
        should(r.scheduleId).equal('from-wrapper');
        should(r.commands[0]!.id).equal('from-wrapper:ast_ev_001:0');
        should(r.schedule.meta).match({ status: 'optimal' });
      }
    });

    it('else generates sch-<8 hex>, different each time', () => {
      const a = convert(ev([1, 2]));
      const b = convert(ev([1, 2]));
      should(a.scheduleId).match(/^sch-[0-9a-f]{8}$/);
      should(b.scheduleId).not.equal(a.scheduleId);
      should(a.commands[0]!.scheduleId).equal(a.scheduleId);
      should(a.summary.scheduleId).equal(a.scheduleId);
    });

    it('reports start, end, slot length, slots, assets, ignored columns and the command count', () => {
      const r = convert(
        frame(
          ['ev_ev_001_kw', 'net_load_kw', 'battery_charge_kw', 'battery_discharge_kw'],
          [
            [1, 10, 0, 0],
            [1, 11, 4, 0],
            [0, 12, 4, 0],
          ],
          6,
        ),
        { scheduleId: 's' },
      );
      should(r.summary).eql({
        scheduleId: 's',
        start: at(6),
        end: at(9),
        slotSeconds: 3600,
        slots: 3,
        assets: ['ast_ev_001', 'ast_batt_001'],
        ignoredColumns: ['net_load_kw'],
        unmappedColumns: [],
        commandCount: 4,
      });
      should(r.commands).have.length(4);
      should(r.schedule.rows).equal(3);
    });

    it('uses Date.now() for createdAt when no time is given', () => {
      const before = Date.now();
      const { commands } = convertSchedule(ev([1, 2]), { assetMap: EV_MAP });
      const t = commands[0]!.createdAt.getTime();
      should(t).be.within(before, Date.now());
    });
  });
});
