import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ModbusRTU from 'modbus-serial';
import should from 'should';
import { encodeValue, setpointToRegisterValue } from '../../src/adapters/modbus/codec';
import { SUNSPEC_124, SUNSPEC_704 } from '../../src/adapters/modbus/maps';
import type { RegisterMap, RevertSpec } from '../../src/adapters/modbus/register-map';
import { ManualClock } from '../../src/clock';
import {
  BatterySimulator,
  type BatterySimulatorOptions,
  type SetpointChange,
} from '../../src/sim/battery';
import { revertDeadline, revertTimeMs, touchesRevert } from '../../src/sim/battery-revert';
import { CliProcess } from '../helpers/cli-process';

// The simulated battery's own revert timer (SunSpec WSetRvrtTms with WSetEnaRvrt, model 124's
// InOutWRte_RvrtTms), over real Modbus TCP sockets on 127.0.0.1 with a raw modbus-serial
// client. Simulated time moves with tick(); no sleeps decide.

const T0 = Date.parse('2025-06-02T08:00:00.000Z');
const HOST = '127.0.0.1';
const BASE = 40_070;
const M704 = SUNSPEC_704(BASE);
const RATED = { charge: 50, discharge: 50 };
const wset = (kw: number): number[] =>
  encodeValue(setpointToRegisterValue(kw, M704.setpoint, RATED), M704.setpoint);

const sims: BatterySimulator[] = [];
const clients: ModbusRTU[] = [];

async function simulator(options: BatterySimulatorOptions = {}): Promise<BatterySimulator> {
  const sim = new BatterySimulator({ clock: new ManualClock(T0), tickMs: 0, ...options });
  sims.push(sim);
  await sim.start();
  return sim;
}

async function connect(port: number): Promise<ModbusRTU> {
  const client = new ModbusRTU();
  client.setTimeout(1000);
  clients.push(client);
  await client.connectTCP(HOST, { port });
  client.setID(1);
  return client;
}

afterEach(async () => {
  await Promise.all(
    clients.splice(0).map((c) => new Promise<void>((resolve) => c.destroy(() => resolve()))),
  );
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

const brief = (h: SetpointChange[]) => h.map((c) => [c.cause, c.requestedKw, c.at - T0]);

describe('BatterySimulator revert timer (SunSpec reversion)', () => {
  it('704: reverts to 0 W when no setpoint comes for WSetRvrtTms, once WSetEnaRvrt is on; each setpoint starts it again', async () => {
    const sim = await simulator({ map: M704 });
    const client = await connect(sim.port);
    await client.writeRegisters(BASE + 28, [1, 0, 30]); // enable, then 30 s as uint32
    should(sim.state(1).revertMs).equal(30_000);
    await client.writeRegisters(BASE + 22, wset(8)); // charge 8 kW: WSet -8000 W
    sim.tick(20_000);
    await client.writeRegisters(BASE + 22, wset(8)); // a re-write: the countdown starts again
    sim.tick(29_999);
    should(sim.state(1).requestedKw).equal(8);
    sim.tick(1);
    should(brief(sim.setpointHistory(1))).eql([
      ['write', 8, 0],
      ['write', 8, 20_000],
      ['revert', 0, 50_000],
    ]);
    should(sim.readRegisters(1, BASE + 22, 2)).eql([0, 0]);
    // Idle now: nothing more to revert.
    sim.tick(60_000);
    should(sim.setpointHistory(1)).have.length(3);
  });

  it('704: no reversion while WSetEnaRvrt is off, nor with a time of 0', async () => {
    const sim = await simulator({ map: M704 });
    const client = await connect(sim.port);
    await client.writeRegisters(BASE + 29, [0, 5]); // 5 s, not enabled
    await client.writeRegisters(BASE + 22, wset(3));
    sim.tick(60_000);
    should(sim.state(1)).containEql({ requestedKw: 3, revertMs: 0 });
    await client.writeRegisters(BASE + 28, [1]); // enabled: 5 s from this write
    should(sim.state(1).revertMs).equal(5000);
    await client.writeRegisters(BASE + 29, [0, 0]); // a time of 0 turns it off
    sim.tick(60_000);
    should(sim.state(1).requestedKw).equal(3);
    await client.writeRegisters(BASE + 29, [0, 5]);
    sim.tick(5000);
    should(brief(sim.setpointHistory(1))).eql([
      ['write', 3, 0],
      ['revert', 0, 125_000],
    ]);
  });

  it('a restart powers the timer on at 0: no reversion until it is written again', async () => {
    const sim = await simulator({ map: M704 });
    const client = await connect(sim.port);
    await client.writeRegisters(BASE + 28, [1, 0, 10]);
    await sim.restart();
    should(sim.readRegisters(1, BASE + 28, 3)).eql([0, 0, 0]);
    should(sim.state(1).revertMs).equal(0);
  });

  it('124: InOutWRte_RvrtTms (uint16, no enable), written with FC6', async () => {
    const map = SUNSPEC_124(BASE);
    const sim = await simulator({ map });
    const client = await connect(sim.port);
    await client.writeRegister(BASE + 13, 15);
    await client.writeRegisters(BASE + 11, [20]); // InWRte 20 %
    sim.tick(15_000);
    should(brief(sim.setpointHistory(1))).eql([
      ['write', 10, 0],
      ['revert', 0, 15_000],
    ]);
  });

  it('the earlier of the watchdog (watchdogTimeoutMs) and the revert timer reverts', async () => {
    const sim = await simulator({ map: M704, watchdogTimeoutMs: 8000 });
    const client = await connect(sim.port);
    await client.writeRegisters(BASE + 28, [1, 0, 30]);
    await client.writeRegisters(BASE + 22, wset(2));
    sim.tick(8000);
    should(brief(sim.setpointHistory(1))).eql([
      ['write', 2, 0],
      ['revert', 0, 8000],
    ]);
  });

  it('the pure parts: time in force, deadline, which writes touch the timer', () => {
    const spec = M704.revert as RevertSpec;
    const regs = new Map([
      [BASE + 28, 1],
      [BASE + 29, 1],
      [BASE + 30, 2],
    ]);
    should(revertTimeMs(spec, regs)).equal(65_538_000); // 0x00010002 s, high word first
    should(revertDeadline(spec, regs, 5)).equal(65_538_005);
    regs.set(BASE + 28, 0);
    should(revertTimeMs(spec, regs)).equal(0);
    should(revertDeadline(spec, regs, 5)).be.null();
    should(revertTimeMs(undefined, regs)).equal(0);
    const low: RevertSpec = { address: 10, type: 'uint32', wordOrder: 'low-first', unit: 's' };
    should(revertTimeMs(low, new Map([[10, 7]]))).equal(7000);
    should(touchesRevert(spec, BASE + 22, 6)).be.false(); // WSet 22-23 .. WSetPctRvrt 27
    should(touchesRevert(spec, BASE + 22, 7)).be.true(); // up to WSetEnaRvrt 28
    should(touchesRevert(spec, BASE + 30, 1)).be.true();
    should(touchesRevert(spec, BASE + 31, 1)).be.false();
  });

  it('refuses a map whose revert registers overlap the others', () => {
    const bad: RegisterMap = {
      ...M704,
      revert: { address: BASE + 22, type: 'uint16', unit: 's' },
    };
    should(() => new BatterySimulator({ map: bad })).throw(
      /holding register 40092 is both setpoint and revert-time/,
    );
  });

  it('the command line takes a SunSpec profile as --map and honours its revert timer', async function () {
    this.timeout(20_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'qe-sim-revert-'));
    const file = path.join(dir, 'map.json');
    writeFileSync(file, JSON.stringify({ profile: 'sunspec-704', baseAddress: BASE }));
    const cli = new CliProcess('src/sim/battery-cli.ts', ['--port', '0', '--map', file]);
    try {
      const port = (await cli.waitFor((l) => l.event === 'listening')).port as number;
      const client = await connect(port);
      await client.writeRegisters(BASE + 28, [1, 0, 1]); // revert after 1 s
      await client.writeRegisters(BASE + 22, wset(5));
      should(await cli.waitFor((l) => l.event === 'revert')).containEql({ unit: 1 });
      should((await client.readHoldingRegisters(BASE + 22, 2)).data).eql([0, 0]);
      should(await cli.command('quit')).containEql({ event: 'ok' });
      should(await cli.exit()).equal(0);
    } finally {
      await cli.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
