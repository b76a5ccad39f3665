import should from 'should';
import { ModbusBatteries } from '../../src/adapters/modbus/batteries';
import { ModbusConnection } from '../../src/adapters/modbus/connection';
import { SUNSPEC_124, SUNSPEC_704 } from '../../src/adapters/modbus/maps';
import { GENERIC_MAP } from '../../src/adapters/modbus/register-map';
import { type Command, CommandStatus } from '../../src/commands';
import { Site } from '../../src/site';
import { batterySite, closeBatterySites, until } from '../helpers/battery-site';

// The failsafe chain on the Modbus side, through a real Modbus TCP connection to the
// simulated battery: the adapter writes the device's own revert timer on every connect, keeps
// the setpoint alive below it while the gateway runs, and once the gateway is gone the
// battery reverts by itself. Real time with short periods; every wait bounded; the revert's
// moment is checked on the simulator's own record, not on a wall clock.

afterEach(closeBatterySites);

const BASE = 40_070;
const settled = (c: Command | undefined) =>
  c !== undefined && ['COMPLETED', 'FAILED', 'TIMED_OUT', 'CANCELLED'].includes(c.status);

describe('Modbus failsafe: the device’s revert timer (loopback, simulated battery)', () => {
  it('SunSpec 704: writes WSetRvrtTms and WSetEnaRvrt on connect, and again, before the re-apply, after a device restart', async () => {
    const map = SUNSPEC_704(BASE);
    const { sim, site, fleet, events } = await batterySite({
      sim: { map },
      batteries: [{ map, revertSeconds: 2 }],
    });
    await until(() => sim.state(1).revertMs === 2000, 'the revert timer written');
    should(sim.readRegisters(1, BASE + 28, 3)).eql([1, 0, 2]); // enable 1, uint32 2 s
    should(fleet.watchdogPeriod('b1')).equal(2 / 3); // revertSeconds / 3 by default
    // The adapter tells it once the device has answered the write (after the simulator took it).
    await until(() => events.some((e) => e.type === 'revert-timer-set'), 'revert-timer-set');
    should(events.filter((e) => e.type === 'revert-timer-set')).eql([
      { type: 'revert-timer-set', assetId: 'b1', detail: { revertSeconds: 2, address: BASE + 29 } },
    ]);
    const [c] = site.submit({ assetId: 'b1', type: 'SET_DISCHARGE_RATE', valueKw: 7 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);

    const before = sim.writes(1).length;
    await sim.restart(); // powers on with no reversion and setpoint 0
    should(sim.state(1).revertMs).equal(0);
    await until(() => sim.state(1).revertMs === 2000, 'written again after the restart', 800);
    await until(() => sim.state(1).requestedKw === -7, 'the setpoint re-applied', 800);
    // The timer first, then its enable, then the re-apply (mode, setpoint).
    should(
      sim
        .writes(1)
        .slice(before)
        .map((w) => w.address),
    ).eql([BASE + 29, BASE + 28, BASE + 20, BASE + 22]);
    should(events.filter((e) => e.type === 'revert-timer-set')).have.length(2);
    should(fleet.revertProblems()).eql([]);
  });

  it('SunSpec 704: the watchdog keeps the setpoint across several revert periods; with the gateway gone the battery reverts after revertSeconds', async function () {
    this.timeout(30_000);
    const map = SUNSPEC_704(BASE);
    const { sim, site, fleet, connection, events } = await batterySite({
      sim: { map, tickMs: 50 },
      batteries: [{ map, revertSeconds: 2, watchdogSeconds: 0.3 }],
    });
    await until(() => sim.state(1).revertMs === 2000, 'the revert timer written');
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 6 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    const rewrites = () => events.filter((e) => e.type === 'watchdog-rewrite').length;
    await until(() => rewrites() >= 21, 'the watchdog re-writes the setpoint', 1500);
    const history = sim.setpointHistory(1);
    // Gone by on the device's clock: at least 3 revert times, and no revert.
    should((sim.writes(1).at(-1)?.at as number) - (history[0]?.at as number)).be.above(6000);
    should(history.filter((h) => h.cause !== 'write')).eql([]);
    should(sim.state(1).requestedKw).equal(6);

    // The gateway is gone: nobody writes any more.
    fleet.stop();
    await connection.close();
    await until(
      () => sim.setpointHistory(1).at(-1)?.cause === 'revert',
      'the battery reverts by itself',
      500,
    );
    const last = sim.setpointHistory(1).at(-1);
    should(last).containEql({ cause: 'revert', requestedKw: 0, powerKw: 0 });
    // Exactly revertSeconds after the last write that the device got.
    should(last?.at).equal((sim.writes(1).at(-1)?.at as number) + 2000);
    should(sim.state(1).mode).equal('idle');
  });

  it('SunSpec 124: writes InOutWRte_RvrtTms on connect; with the gateway gone the battery reverts', async function () {
    this.timeout(30_000);
    const map = SUNSPEC_124(BASE);
    const { sim, site, fleet, connection } = await batterySite({
      sim: { map, tickMs: 50 },
      batteries: [{ map, revertSeconds: 2, watchdogSeconds: 0.3 }],
    });
    await until(() => sim.state(1).revertMs === 2000, 'the revert timer written');
    should(sim.readRegister(1, BASE + 13)).equal(2);
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 6 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    should(sim.readRegister(1, BASE + 11)).equal(10); // InWRte 10 % of 60 kW
    fleet.stop();
    await connection.close();
    await until(
      () => sim.setpointHistory(1).at(-1)?.cause === 'revert',
      'the battery reverts by itself',
      500,
    );
    should(sim.setpointHistory(1).at(-1)).containEql({ cause: 'revert', requestedKw: 0 });
    should(sim.readRegister(1, BASE + 11)).equal(0);
  });

  it('a revert timer that the device refuses is reported, does not hold setpoints back, and is tried again on the next connect', async () => {
    const map = SUNSPEC_704(BASE);
    // The device does not implement the reversion: its registers are exception 2.
    const device = { ...map, revert: undefined };
    const { sim, site, fleet, events } = await batterySite({
      sim: { map: device },
      batteries: [{ map, revertSeconds: 2 }],
    });
    const failures = () => events.filter((e) => e.type === 'revert-timer-failed');
    await until(() => failures().length === 1, 'the failure reported');
    should(failures()[0]?.detail).match(
      /^revert timer \(2 s at register 40099\) not set: write 2 register\(s\) at 40099: unit 1 answered Modbus exception 2 \(Illegal data address\)/,
    );
    should(fleet.revertProblems()).eql([{ assetId: 'b1', error: failures()[0]?.detail as string }]);
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 5 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    should(sim.state(1).requestedKw).equal(5);
    await sim.restart();
    await until(() => failures().length === 2, 'tried again on the next connect', 800);
    await until(() => sim.state(1).requestedKw === 5, 'the setpoint re-applied all the same', 800);
    should(events.filter((e) => e.type === 'revert-timer-set')).eql([]);
  });

  it('a map without a revert register: revertSeconds sets the watchdog below it; the device’s own watchdog reverts it when the gateway is gone', async function () {
    this.timeout(30_000);
    const { sim, site, fleet, connection } = await batterySite({
      sim: { watchdogTimeoutMs: 2000, tickMs: 50 },
      batteries: [{ revertSeconds: 2 }],
    });
    should(fleet.watchdogPeriod('b1')).equal(2 / 3);
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 4 });
    await until(() => settled(c), 'settled');
    await until(
      () => sim.writes(1).filter((w) => w.address === 110).length >= 5,
      'the watchdog register written',
      1000,
    );
    should(sim.setpointHistory(1).filter((h) => h.cause !== 'write')).eql([]);
    fleet.stop();
    await connection.close();
    await until(
      () => sim.setpointHistory(1).at(-1)?.cause === 'revert',
      'the device’s watchdog reverts it',
      500,
    );
    should(sim.setpointHistory(1).at(-1)).containEql({ cause: 'revert', requestedKw: 0 });
    should(
      sim.writes(1).some((w) => w.address !== 100 && w.address !== 102 && w.address !== 110),
    ).be.false(); // nothing else was written: the map has no revert register
  });

  it('checks revertSeconds and watchdogSeconds, naming them', () => {
    const site = new Site({ siteId: 'x' });
    const conn = new ModbusConnection({ transport: 'tcp', host: '127.0.0.1' });
    const base = {
      assetId: 'b',
      unitId: 1,
      map: SUNSPEC_704(BASE),
      ratedChargeKw: 10,
      ratedDischargeKw: 10,
    };
    const make = (extra: object) => new ModbusBatteries(site, conn, [{ ...base, ...extra }]);
    should(() => make({ revertSeconds: 3, watchdogSeconds: 5 })).throw(
      'battery [0] (b): watchdogSeconds (5) must be below revertSeconds (3): the battery would revert between two re-writes',
    );
    should(() => make({ revertSeconds: 3, watchdogSeconds: 3 })).throw(
      /watchdogSeconds \(3\) must be below revertSeconds \(3\)/,
    );
    should(() => make({ revertSeconds: 3, watchdogSeconds: 0 })).throw(
      /watchdogSeconds 0 \(never re-write\) with revertSeconds 3/,
    );
    should(() => make({ revertSeconds: 0 })).throw(
      /battery \[0\] \(b\): revertSeconds must be a number of seconds > 0, got 0/,
    );
    should(() => make({ revertSeconds: '5' })).throw(/revertSeconds must be a number/);
    should(() => make({ watchdogSeconds: -1 })).throw(/watchdogSeconds must be a number/);
    should(() => make({ revertSeconds: 1.5 })).throw(
      /revertSeconds must be a whole number of seconds from 1 to 4294967295 \(the uint32 revert register of map sunspec-704\), got 1.5/,
    );
    should(() => make({ map: SUNSPEC_124(BASE), revertSeconds: 70_000 })).throw(
      /from 1 to 65535 \(the uint16 revert register of map sunspec-124\)/,
    );
    // Without a revert register the device's own timeout may be any time.
    const generic = new ModbusBatteries(site, conn, [
      { ...base, map: GENERIC_MAP, revertSeconds: 1.5 },
    ]);
    should(generic.watchdogPeriod('b')).equal(0.5);
    should(make({ revertSeconds: 30, watchdogSeconds: 10 }).watchdogPeriod('b')).equal(10);
    should(make({}).watchdogPeriod('b')).equal(0);
  });
});
