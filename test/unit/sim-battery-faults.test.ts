import ModbusRTU from 'modbus-serial';
import should from 'should';
import { encodeValue, setpointToRegisterValue } from '../../src/adapters/modbus/codec';
import { GENERIC_MAP, type RegisterMap } from '../../src/adapters/modbus/register-map';
import { ManualClock } from '../../src/clock';
import {
  BatterySimulator,
  type BatterySimulatorOptions,
  type SetpointChange,
} from '../../src/sim/battery';
import { CliProcess } from '../helpers/cli-process';

// The faults that the battery simulator plays for fault tests, over real Modbus TCP sockets on
// 127.0.0.1: a unit or a device that never answers, a device restart, the watchdog revert, and
// the history of the setpoints it ran at. Simulated time moves with tick(); no sleeps decide.

const T0 = Date.parse('2025-06-02T08:00:00.000Z');
const HOST = '127.0.0.1';
const RATED = { charge: 50, discharge: 50 };
const words = (kw: number): number[] =>
  encodeValue(setpointToRegisterValue(kw, GENERIC_MAP.setpoint, RATED), GENERIC_MAP.setpoint);

const sims: BatterySimulator[] = [];
const clients: ModbusRTU[] = [];

async function simulator(options: BatterySimulatorOptions = {}): Promise<BatterySimulator> {
  const sim = new BatterySimulator({ clock: new ManualClock(T0), tickMs: 0, ...options });
  sims.push(sim);
  await sim.start();
  return sim;
}

async function connect(port: number, unitId = 1, timeoutMs = 1000): Promise<ModbusRTU> {
  const client = new ModbusRTU();
  client.setTimeout(timeoutMs);
  clients.push(client);
  await client.connectTCP(HOST, { port });
  client.setID(unitId);
  return client;
}

/** What a request rejected with (modbus-serial's timeout is a plain object, not an Error). */
async function failure(p: Promise<unknown>): Promise<{ errno?: string; code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { errno?: string; code?: string };
  }
  throw new Error('expected the request to fail');
}

afterEach(async () => {
  await Promise.all(
    clients.splice(0).map((c) => new Promise<void>((resolve) => c.destroy(() => resolve()))),
  );
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

const brief = (h: SetpointChange[]) => h.map((c) => [c.cause, c.requestedKw, c.at - T0]);

describe('BatterySimulator faults', () => {
  it('mutes one unit: it never answers, the other unit answers on the same open connection', async () => {
    const sim = await simulator({ unitIds: [1, 2] });
    const client = await connect(sim.port, 2, 150);
    const unanswered: unknown[] = [];
    sim.on('unanswered', (e) => unanswered.push(e));
    sim.setSilent(true, 2);
    should((await failure(client.readHoldingRegisters(200, 1))).errno).equal('ETIMEDOUT');
    should((await failure(client.writeRegisters(100, [...words(5), 1]))).errno).equal('ETIMEDOUT');
    should(sim.state(2).requestedKw).equal(0); // the write was not applied
    should(client.isOpen).be.true();
    client.setID(1);
    should((await client.readHoldingRegisters(200, 1)).data).eql([500]);
    sim.setSilent(false, 2);
    client.setID(2);
    await client.writeRegisters(100, [...words(5), 1]);
    should(sim.state(2).requestedKw).equal(5);
    should(unanswered).eql([
      { unitId: 2, reason: 'silent' },
      { unitId: 2, reason: 'silent' },
    ]);
    should(() => sim.setSilent(true, 9)).throw(/does not serve unit 9/);
  });

  it('restarts: refuses connections while down, then listens on the same port with power-on registers', async () => {
    const sfMap: RegisterMap = {
      ...GENERIC_MAP,
      name: 'with-sf',
      setpoint: { ...GENERIC_MAP.setpoint, type: 'int16', scaleFactorAddress: 120 },
      mode: undefined,
      telemetry: {},
    };
    const sim = await simulator({ map: sfMap });
    const port = sim.port;
    const client = await connect(port);
    await client.writeRegister(100, 9000);
    should(sim.state(1).requestedKw).equal(9);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    const restarted: number[] = [];
    sim.on('restarted', (p: number) => restarted.push(p));
    const back = sim.restart({ downMs: 300, registers: [{ address: 120, value: 1 }] });
    await closed;
    should(sim.listening).be.false();
    const refused = new ModbusRTU();
    refused.setTimeout(200);
    should((await failure(refused.connectTCP(HOST, { port }))).code).equal('ECONNREFUSED');
    await new Promise<void>((resolve) => refused.destroy(() => resolve()));
    should(await back).equal(port);
    should(restarted).eql([port]);
    const fresh = await connect(port);
    // Setpoint 0, and the scale factor it came back with.
    should((await fresh.readHoldingRegisters(100, 1)).data).eql([0]);
    should((await fresh.readHoldingRegisters(120, 1)).data).eql([1]);
    await fresh.writeRegister(100, 900); // 900 x 10^1 W
    should(sim.state(1).requestedKw).equal(9);
    should(brief(sim.setpointHistory(1))).eql([
      ['write', 9, 0],
      ['restart', 0, 0],
      ['write', 9, 0],
    ]);
  });

  it('stays down when closed during the down time of a restart', async () => {
    const sim = await simulator();
    const restarting = sim.restart({ downMs: 5000 });
    await sim.close();
    should(await restarting).equal(sim.port);
    should(sim.listening).be.false();
    const refused = new ModbusRTU();
    refused.setTimeout(200);
    should((await failure(refused.connectTCP(HOST, { port: sim.port }))).code).equal(
      'ECONNREFUSED',
    );
    await new Promise<void>((resolve) => refused.destroy(() => resolve()));
  });

  it('keeps a history of the setpoints it ran at: writes, a watchdog revert at its deadline, a restart', async () => {
    const sim = await simulator({ watchdogTimeoutMs: 30_000 });
    const client = await connect(sim.port);
    const applied: SetpointChange[] = [];
    sim.on('applied', (c: SetpointChange) => applied.push(c));
    await client.writeRegisters(100, [...words(10), 1]);
    sim.tick(10_000);
    await client.writeRegisters(100, [...words(-4), 2]);
    sim.tick(10_000);
    await client.writeRegister(110, 1); // the watchdog alone is not a setpoint
    sim.tick(45_000); // the watchdog expires 30 s after its write, 15 s before the end
    await client.writeRegisters(100, [...words(60), 1]); // beyond the limits: clamped
    const history = sim.setpointHistory(1);
    should(brief(history)).eql([
      ['write', 10, 0],
      ['write', -4, 10_000],
      ['revert', 0, 50_000],
      ['write', 60, 65_000],
    ]);
    should(history.map((h) => h.powerKw)).eql([10, -4, 0, 50]);
    should(applied).eql(history);
    await sim.restart({ resetControl: false });
    should(sim.setpointHistory(1)).have.length(4); // nothing reset: nothing recorded
  });

  it('plays the faults on commands from stdin of the command line (qe-sim-battery --json)', async function () {
    this.timeout(30_000);
    const cli = new CliProcess('src/sim/battery-cli.ts', [
      '--port',
      '0',
      '--units',
      '1,2',
      '--report-s',
      '0',
    ]);
    try {
      const port = (await cli.waitFor((l) => l.event === 'listening')).port as number;
      const client = await connect(port, 2, 150);
      await client.writeRegisters(100, [...words(15), 1]);
      should(await cli.waitFor((l) => l.event === 'setpoint')).containEql({
        unit: 2,
        requestedKw: 15,
      });

      should(await cli.command('mute 2')).containEql({ event: 'ok' });
      should((await failure(client.readHoldingRegisters(200, 1))).errno).equal('ETIMEDOUT');
      client.setID(1);
      should((await client.readHoldingRegisters(200, 1)).data).eql([500]);
      await cli.command('unmute 2');
      client.setID(2);
      should((await client.readHoldingRegisters(100, 2)).data).eql(words(15));

      const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
      should(await cli.command('restart 100')).containEql({ event: 'ok' });
      await closed;
      should(await cli.waitFor((l) => l.event === 'restarted')).containEql({ port });
      const fresh = await connect(port, 2);
      should((await fresh.readHoldingRegisters(100, 3)).data).eql([0, 0, 0]);
      await cli.command('setpoints 2');
      const history = cli.lines.find((l) => l.event === 'setpoints')?.history as SetpointChange[];
      should(history.map((h) => [h.cause, h.requestedKw])).eql([
        ['write', 15],
        ['restart', 0],
      ]);

      should(await cli.command('soc 1 150')).containEql({ event: 'error' });
      should(await cli.command('fault 7')).containEql({ event: 'error' });
      should(await cli.command('jump')).containEql({ event: 'error' });
      should(await cli.command('quit')).containEql({ event: 'ok' });
      should(await cli.exit()).equal(0);
      should(cli.notJson).eql([]);
    } finally {
      await cli.kill();
    }
  });
});
