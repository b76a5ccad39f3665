import should from 'should';
import { ModbusBatteries } from '../../src/adapters/modbus/batteries';
import { ModbusConnection } from '../../src/adapters/modbus/connection';
import { GENERIC_MAP, type RegisterMap } from '../../src/adapters/modbus/register-map';
import { type Command, CommandStatus } from '../../src/commands';
import { Site } from '../../src/site';
import { batterySite, closeBatterySites, closeLater, until } from '../helpers/battery-site';

// The battery adapter through a real Modbus TCP connection to the simulated battery, inside a
// Site whose loop dispatches straight through the adapter (autoDispatch). Real time with short
// periods; every wait bounded; nothing asserts on durations.

afterEach(closeBatterySites);

const setup = batterySite;

const settled = (c: Command | undefined) =>
  c !== undefined && ['COMPLETED', 'FAILED', 'TIMED_OUT', 'CANCELLED'].includes(c.status);

describe('ModbusBatteries (loopback, simulated battery)', () => {
  it('writes a charge setpoint, ACKNOWLEDGED then COMPLETED by the read-back; the registers hold it', async () => {
    const { sim, site } = await setup();
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 12.5 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    should(c?.history.map((h) => h.status)).eql([
      'PENDING',
      'DISPATCHED',
      'ACKNOWLEDGED',
      'COMPLETED',
    ]);
    should(sim.readRegisters(1, 100, 2)).eql([0, 12500]); // int32 high word first, W
    should(sim.readRegisters(1, 102, 1)).eql([1]); // mode charge
    should(sim.state(1).requestedKw).equal(12.5);
  });

  it('a discharge is negative in a charge-positive register, with the discharge mode', async () => {
    const { sim, site } = await setup();
    const [c] = site.submit({ assetId: 'b1', type: 'SET_DISCHARGE_RATE', valueKw: 20 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    should(sim.readRegisters(1, 100, 2)).eql([0xffff, 0x10000 - 20000]);
    should(sim.readRegisters(1, 102, 1)).eql([2]);
  });

  it('a read-back that differs fails with both values', async () => {
    // The device stores its 50 kW limit: the battery is rated 60 kW in our configuration.
    const { site } = await setup({ sim: { clampRegister: true } });
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 55 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.FAILED);
    should(c?.lastError).match(/wrote 55 kW but read back 50 kW at register 100/);
    should(c?.attempts).equal(1);
  });

  it('a Modbus exception fails at once; nothing beyond the rating is ever written', async () => {
    const broken: RegisterMap = {
      ...GENERIC_MAP,
      name: 'broken',
      setpoint: { ...GENERIC_MAP.setpoint, address: 5000 },
      mode: undefined,
    };
    const { sim, site } = await setup({ units: [1, 2], batteries: [{}, { map: broken }] });
    const [bad] = site.submit({ assetId: 'b2', type: 'SET_CHARGE_RATE', valueKw: 5 });
    await until(() => settled(bad), 'settled');
    should(bad?.status).equal(CommandStatus.FAILED);
    should(bad?.lastError).match(/Modbus exception 2 \(Illegal data address\)/);
    const before = sim.writes(1).length;
    const [big] = site.submit({ assetId: 'b1', type: 'SET_DISCHARGE_RATE', valueKw: 61 });
    await until(() => settled(big), 'settled');
    should(big?.status).equal(CommandStatus.FAILED);
    should(big?.lastError).match(
      /61 kW discharge is above the rated 60 kW of battery b1; nothing was written/,
    );
    should(sim.writes(1).length).equal(before);
  });

  it('two unit ids on one bus are independent', async () => {
    const { sim, site } = await setup({ units: [1, 2] });
    const cmds = site.submit([
      { assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 3 },
      { assetId: 'b2', type: 'SET_DISCHARGE_RATE', valueKw: 4 },
    ]);
    await until(() => cmds.every(settled), 'both settled');
    should(cmds.map((c) => c.status)).eql(['COMPLETED', 'COMPLETED']);
    should(sim.state(1).requestedKw).equal(3);
    should(sim.state(2).requestedKw).equal(-4);
  });

  it('telemetry drives the state machine; silence makes it UNAVAILABLE and holds commands; answers release them', async () => {
    const { sim, site, telemetry } = await setup();
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 10 });
    await until(() => settled(c), 'settled');
    sim.tick(1000);
    await until(
      () => site.getStateMachine('b1')?.currentState === 'CHARGING',
      'CHARGING from the status register',
    );
    const t = telemetry.at(-1);
    should(t?.powerKw).equal(10);
    should(t?.socPercent).be.a.Number();
    sim.setSilent(true);
    await until(
      () => site.getStateMachine('b1')?.currentState === 'UNAVAILABLE',
      'UNAVAILABLE after staleStateSeconds',
      800,
    );
    const [held] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 7 });
    await new Promise((r) => setTimeout(r, 100));
    should(held?.status).equal(CommandStatus.PENDING);
    should(held?.holdReason).equal('asset b1 is UNAVAILABLE');
    sim.setSilent(false);
    await until(() => held?.status === CommandStatus.COMPLETED, 'released and COMPLETED', 800);
    should(sim.state(1).requestedKw).equal(7);
  });

  it('silence during a write: retried, then TIMED_OUT', async () => {
    const { sim, site } = await setup({ config: { staleStateSeconds: 60 } });
    sim.setSilent(true);
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 5 });
    await until(() => settled(c), 'settled', 1000);
    should(c?.status).equal(CommandStatus.TIMED_OUT);
    should(c?.attempts).equal(2);
    should(c?.lastError).match(/did not answer within 200 ms/);
  });

  it('a write that waits in the queue until its slot has ended is never sent', async () => {
    const { sim, site } = await setup({ config: { staleStateSeconds: 60 } });
    sim.setSilent(true);
    const [slow] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 5 });
    await until(() => slow?.status === CommandStatus.DISPATCHED, 'the slow one on the wire');
    const now = Date.now();
    const [short] = site.submit({
      assetId: 'b1',
      type: 'SET_CHARGE_RATE',
      valueKw: 8,
      scheduledAt: now,
      validUntil: now + 50,
    });
    await until(() => settled(short), 'short settled');
    should(short?.status).equal(CommandStatus.CANCELLED);
    should(short?.lastError).match(/^expired: .*not sent to unit 1/);
  });

  it('after the device restarts, the bus reconnects and the setpoint in force is written again', async () => {
    const { sim, site, connection } = await setup();
    const now = Date.now();
    const [c, later] = site.submit([
      {
        id: 's:b1:0',
        scheduleId: 's',
        assetId: 'b1',
        type: 'SET_CHARGE_RATE',
        valueKw: 9,
        scheduledAt: now,
        validUntil: now + 60_000,
      },
      {
        id: 's:b1:1',
        scheduleId: 's',
        assetId: 'b1',
        type: 'SET_CHARGE_RATE',
        valueKw: 3,
        scheduledAt: now + 60_000,
      },
    ]);
    await until(() => settled(c), 'settled');
    const states: string[] = [];
    connection.on('state', (s: string) => states.push(s));
    await sim.restart(); // a reboot: setpoint back to 0
    should(sim.state(1).requestedKw).equal(0);
    await until(
      () => states.includes('disconnected') && connection.state === 'connected',
      'reconnected',
      800,
    );
    await until(() => sim.state(1).requestedKw === 9, 'the setpoint written again', 800);
    // As a tracked command, with the later slot still pending.
    const again = site.engine.getCommands().find((x) => x.reapplyOf === c?.id);
    should(again).be.ok();
    await until(() => again?.status === CommandStatus.COMPLETED, 're-apply COMPLETED');
    should(later?.status).equal(CommandStatus.PENDING);
  });

  it('a redeploy (a new adapter on an open bus) re-applies the setpoint in force', async () => {
    const { sim, site, connection, fleet } = await setup();
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 4 });
    await until(() => settled(c), 'settled');
    fleet.stop();
    const writes = () => sim.writes(1).filter((w) => w.address === 100).length;
    const before = writes();
    const next = new ModbusBatteries(site, connection, [
      { assetId: 'b1', unitId: 1, map: GENERIC_MAP, ratedChargeKw: 60, ratedDischargeKw: 60 },
    ]);
    next.start();
    closeLater({ close: () => next.stop(true) });
    await until(() => writes() === before + 1, 'written again', 800);
    should(sim.state(1).requestedKw).equal(4);
    const again = site.engine.getCommands().filter((x) => x.reapplyOf === c?.id);
    should(again).have.length(1);
    await until(() => again[0]?.status === CommandStatus.COMPLETED, 're-apply COMPLETED');
  });

  it('reads the scale factors again after the device restarts (it may come back with others)', async () => {
    const map: RegisterMap = {
      name: 'sf-setpoint',
      setpoint: {
        address: 100,
        type: 'int16',
        scaleFactorAddress: 120,
        unit: 'W',
        sign: 'charge-positive',
      },
      telemetry: {},
    };
    const { sim, site, connection } = await setup({ sim: { map }, batteries: [{ map }] });
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 9 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    should(sim.readRegister(1, 100)).equal(9000); // W x 10^0
    const states: string[] = [];
    connection.on('state', (s: string) => states.push(s));
    // It reboots with a scale factor of 1: the same 9 kW is now 900 x 10^1.
    await sim.restart({ registers: [{ address: 120, value: 1 }] });
    await until(
      () => states.includes('disconnected') && connection.state === 'connected',
      'reconnected',
      800,
    );
    await until(() => sim.state(1).requestedKw === 9, 'the setpoint written again', 800);
    should(sim.readRegister(1, 100)).equal(900);
    should(sim.setpointHistory(1).map((h) => [h.cause, h.requestedKw])).eql([
      ['write', 9],
      ['restart', 0],
      ['write', 9],
    ]);
  });

  it('a float32 read-back must hold the value written, not one within half a unit', async () => {
    const map: RegisterMap = {
      name: 'float-kw',
      setpoint: { address: 40, type: 'float32', unit: 'kW', sign: 'charge-positive' },
      telemetry: {},
    };
    // The device stores its 55 kW limit: 55 is within half a (1 kW) unit of 55.3, yet not it.
    const { site } = await setup({
      sim: { map, clampRegister: true, maxChargeKw: 55 },
      batteries: [{ map }],
    });
    const [ok] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 12.34 });
    await until(() => settled(ok), 'settled');
    should(ok?.status).equal(CommandStatus.COMPLETED);
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 55.3 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.FAILED);
    should(c?.lastError).match(/wrote 55.3 kW but read back 55 kW at register 40/);
  });

  it('re-writes the setpoint and the watchdog register before the device reverts', async () => {
    const { sim, site } = await setup({
      sim: { watchdogTimeoutMs: 400 },
      batteries: [{ watchdogSeconds: 0.1 }],
    });
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 6 });
    await until(() => settled(c), 'settled');
    const writes = () => sim.writes(1).filter((w) => w.address === 110).length;
    await until(() => writes() >= 3, 'watchdog written repeatedly');
    should(sim.state(1).requestedKw).equal(6);
    should(sim.writes(1).filter((w) => w.address === 100).length).be.above(1);
  });

  it('holds a charge at 0 kW once the SoC reaches socMaxPercent (discharge likewise at socMinPercent)', async () => {
    const { sim, site, telemetry } = await setup({
      sim: { initialSocPercent: 96 },
      batteries: [{ socMaxPercent: 95, socMinPercent: 10 }],
    });
    await until(() => telemetry.length > 0, 'a SoC reading');
    const [c] = site.submit({ assetId: 'b1', type: 'SET_CHARGE_RATE', valueKw: 10 });
    await until(() => settled(c), 'settled');
    should(c?.status).equal(CommandStatus.COMPLETED);
    should(sim.state(1).requestedKw).equal(0);
    const [d] = site.submit({ assetId: 'b1', type: 'SET_DISCHARGE_RATE', valueKw: 10 });
    await until(() => settled(d), 'settled');
    should(sim.state(1).requestedKw).equal(-10);
  });

  it('checks its configuration', () => {
    const site = new Site({ siteId: 'x' });
    const conn = new ModbusConnection({ transport: 'tcp', host: '127.0.0.1' });
    const base = {
      assetId: 'b',
      unitId: 1,
      map: GENERIC_MAP,
      ratedChargeKw: 10,
      ratedDischargeKw: 10,
    };
    should(() => new ModbusBatteries(site, conn, [{ ...base, unitId: 300 }])).throw(
      /unitId must be an integer from 0 to 255/,
    );
    should(() => new ModbusBatteries(site, conn, [{ ...base, ratedChargeKw: 0 }])).throw(
      /ratedChargeKw and ratedDischargeKw must be > 0/,
    );
    should(() => new ModbusBatteries(site, conn, [base, base])).throw(/asset b is listed twice/);
    should(
      () =>
        new ModbusBatteries(site, conn, [
          {
            ...base,
            map: { ...GENERIC_MAP, setpoint: { ...GENERIC_MAP.setpoint, type: 'int64' as never } },
          },
        ]),
    ).throw(/setpoint.type must be one of/);
  });
});
