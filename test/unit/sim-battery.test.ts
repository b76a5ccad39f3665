import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';
import ModbusRTU from 'modbus-serial';
import should from 'should';
import {
  decodeValue,
  encodeValue,
  registerValueToSetpoint,
  setpointToRegisterValue,
} from '../../src/adapters/modbus/codec';
import {
  type DataType,
  GENERIC_MAP,
  type RegisterMap,
  type RegisterSpec,
  type SetpointSpec,
  type WordOrder,
} from '../../src/adapters/modbus/register-map';
import { ManualClock } from '../../src/clock';
import { BatterySimulator, type BatterySimulatorOptions } from '../../src/sim/battery';
import { parseUnits } from '../../src/sim/battery-cli';
import { BatteryState } from '../../src/state-machine';

const T0 = '2025-06-02T08:00:00.000Z';
const HOST = '127.0.0.1';
const root = path.join(__dirname, '../..');
const RATED = { charge: 50, discharge: 50 };
const SP = GENERIC_MAP.setpoint;
const POWER = GENERIC_MAP.telemetry.power as NonNullable<RegisterMap['telemetry']['power']>;

/** What a modbus-serial request rejected with (timeouts are not Error instances). */
interface Failure {
  name?: string;
  message?: string;
  errno?: string;
  modbusCode?: number;
}

async function failure(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (err) {
    return err as Failure;
  }
  throw new Error('expected the request to fail');
}

const sims: BatterySimulator[] = [];
const clients: ModbusRTU[] = [];

async function simulator(options: BatterySimulatorOptions = {}): Promise<BatterySimulator> {
  const sim = new BatterySimulator({ clock: new ManualClock(T0), tickMs: 0, ...options });
  sims.push(sim);
  await sim.start();
  return sim;
}

/** A modbus-serial client; always with a timeout (modbus-serial has none by default). */
async function connect(port: number, unitId = 1, timeoutMs = 1000): Promise<ModbusRTU> {
  const client = new ModbusRTU();
  client.setTimeout(timeoutMs);
  clients.push(client);
  await client.connectTCP(HOST, { port });
  client.setID(unitId);
  return client;
}

/** close() never calls back when the socket is already closed; destroy() always does. */
function destroy(client: ModbusRTU): Promise<void> {
  return new Promise((resolve) => client.destroy(() => resolve()));
}

async function cleanup(): Promise<void> {
  await Promise.all(clients.splice(0).map(destroy));
  await Promise.all(sims.splice(0).map((s) => s.close()));
}

/** Generic map: setpoint kW (+ = charge) as the words of the setpoint register. */
const setpointWords = (kw: number, spec: SetpointSpec = SP, rated = RATED): number[] =>
  encodeValue(setpointToRegisterValue(kw, spec, rated), spec);

async function telemetry(client: ModbusRTU) {
  const { data } = await client.readHoldingRegisters(200, 4);
  return {
    socPercent: decodeValue(data.slice(0, 1), { address: 200, type: 'uint16', scale: 0.1 }),
    powerKw: registerValueToSetpoint(decodeValue(data.slice(1, 3), POWER), SP, RATED),
    status: data[3],
  };
}

describe('BatterySimulator (a battery behind a Modbus TCP server)', () => {
  afterEach(cleanup);

  it('listens on a free port for port 0 and starts idle with the generic registers', async () => {
    const sim = await simulator();
    should(sim.port).be.above(0);
    const client = await connect(sim.port);
    should((await client.readHoldingRegisters(100, 3)).data).eql([0, 0, 0]);
    should((await client.readHoldingRegisters(200, 4)).data).eql([500, 0, 0, 0]);
    should(sim.unitsRegisters(1).holding).eql({
      100: 0,
      101: 0,
      102: 0,
      110: 0,
      200: 500,
      201: 0,
      202: 0,
      203: 0,
    });
    should(sim.state(1)).containEql({ socPercent: 50, powerKw: 0, status: BatteryState.IDLE });
  });

  it('takes a setpoint into its registers, runs at it and integrates the state of charge', async () => {
    const sim = await simulator();
    const client = await connect(sim.port);
    await client.writeRegister(102, 1); // mode charge, FC6
    await client.writeRegisters(100, setpointWords(20)); // FC16
    should(sim.readRegisters(1, 100, 3)).eql([0x0000, 0x4e20, 1]);
    should(sim.state(1)).containEql({ requestedKw: 20, powerKw: 20, mode: 'charge' });
    should(await telemetry(client)).eql({ socPercent: 50, powerKw: 20, status: 1 });

    sim.tick(90_000); // 20 kW for 90 s = 0.5 kWh = 0.5 % of 100 kWh
    should(await telemetry(client)).eql({ socPercent: 50.5, powerKw: 20, status: 1 });

    await client.writeRegisters(100, [...setpointWords(-10), 2]); // setpoint and mode at once
    should(sim.readRegisters(1, 100, 3)).eql([0xffff, 0xd8f0, 2]); // -10000 W
    sim.tick(3_600_000);
    should(sim.readRegisters(1, 200, 4)).eql([405, 0xffff, 0xd8f0, 2]);
    should(await telemetry(client)).eql({ socPercent: 40.5, powerKw: -10, status: 2 });
    should(sim.writes(1).map((w) => [w.address, w.fc])).eql([
      [102, 'FC6'],
      [100, 'FC16'],
      [100, 'FC16'],
    ]);
  });

  it('clamps a setpoint beyond its limits, or refuses it with exception 3 when told to', async () => {
    const clamp = await simulator({ maxChargeKw: 30, maxDischargeKw: 20 });
    const c1 = await connect(clamp.port);
    await c1.writeRegisters(100, [...setpointWords(45), 1]);
    should(clamp.readRegisters(1, 100, 2)).eql(setpointWords(45)); // as written
    should(clamp.state(1)).containEql({ requestedKw: 45, powerKw: 30 });
    await c1.writeRegisters(100, [...setpointWords(-45), 2]);
    should(clamp.state(1)).containEql({ requestedKw: -45, powerKw: -20 });

    const strict = await simulator({ maxChargeKw: 30, maxDischargeKw: 20, rejectOutOfRange: true });
    const c2 = await connect(strict.port);
    await c2.writeRegisters(100, setpointWords(30));
    const err = await failure(c2.writeRegisters(100, setpointWords(30.001)));
    should(err.modbusCode).equal(3);
    should(err.message).match(/Illegal data value/);
    should(strict.readRegisters(1, 100, 2)).eql(setpointWords(30)); // unchanged
    should((await failure(c2.writeRegisters(100, setpointWords(-21)))).modbusCode).equal(3);
    await c2.writeRegisters(100, setpointWords(-20));
    should(strict.state(1).requestedKw).equal(-20);
  });

  it('stops charging at the upper SoC limit and discharging at the lower one', async () => {
    const sim = await simulator({ capacityKwh: 10, initialSocPercent: 94.5 });
    const client = await connect(sim.port);
    await client.writeRegisters(100, [...setpointWords(50), 1]);
    sim.tick(60_000); // 0.05 kWh to the limit: 3.6 s at 50 kW
    should(sim.readRegisters(1, 200, 4)).eql([950, 0, 0, 0]);
    should(sim.state(1)).containEql({ requestedKw: 50, powerKw: 0, status: BatteryState.IDLE });
    // Discharging is still allowed at the upper limit.
    await client.writeRegisters(100, [...setpointWords(-50), 2]);
    should(sim.state(1).powerKw).equal(-50);

    sim.setSoc(1, 5.5);
    sim.tick(60_000);
    should(sim.readRegisters(1, 200, 4)).eql([50, 0, 0, 0]);
    should(sim.state(1).powerKw).equal(0);
    await client.writeRegisters(100, [...setpointWords(50), 1]);
    should(sim.state(1).powerKw).equal(50);
  });

  it('runs only when the mode register agrees with the setpoint', async () => {
    const sim = await simulator();
    const client = await connect(sim.port);
    await client.writeRegisters(100, setpointWords(20)); // mode still idle
    should(sim.state(1)).containEql({ requestedKw: 20, powerKw: 0, mode: 'idle' });
    await client.writeRegister(102, 2); // discharge, but the setpoint says charge
    should(sim.state(1).powerKw).equal(0);
    await client.writeRegister(102, 1);
    should(sim.state(1).powerKw).equal(20);
    await client.writeRegister(102, 0);
    should(await telemetry(client)).eql({ socPercent: 50, powerKw: 0, status: 0 });
    const err = await failure(client.writeRegister(102, 7));
    should(err.modbusCode).equal(3);
    should(sim.readRegister(1, 102)).equal(0);
  });

  it('reverts to idle when the watchdog is not written for watchdogTimeoutMs', async () => {
    const sim = await simulator({ watchdogTimeoutMs: 30_000 });
    const client = await connect(sim.port);
    const reverts: number[] = [];
    sim.on('revert', (unitId: number) => reverts.push(unitId));
    await client.writeRegister(110, 1);
    await client.writeRegisters(100, [...setpointWords(10), 1]);
    sim.tick(20_000);
    await client.writeRegister(110, 2);
    sim.tick(20_000); // 40 s since the start, 20 s since the last watchdog write
    should(sim.state(1)).containEql({ powerKw: 10, mode: 'charge' });
    sim.tick(15_000); // expires 10 s into this step
    should(reverts).eql([1]);
    should(sim.readRegisters(1, 100, 3)).eql([0, 0, 0]);
    should(sim.readRegister(1, 110)).equal(2);
    // 10 kW for exactly 50 s, not 55 s
    should(sim.state(1).socKwh).be.approximately(50 + (10 * 50) / 3600, 1e-9);
    should(await telemetry(client)).eql({ socPercent: 50.1, powerKw: 0, status: 0 });

    // Asked to run again, the countdown starts from that moment.
    await client.writeRegisters(100, [...setpointWords(-5), 2]);
    sim.tick(29_000);
    should(sim.state(1).powerKw).equal(-5);
    sim.tick(1_000);
    should(sim.state(1).powerKw).equal(0);
    should(reverts).eql([1, 1]);
  });

  it('answers an unknown or read-only address with exception 2 (illegal data address)', async () => {
    const sim = await simulator({ extraRegisters: { address: 1000, count: 4 } });
    const client = await connect(sim.port);
    const cases: [string, () => Promise<unknown>][] = [
      ['read of an unknown register', () => client.readHoldingRegisters(150, 1)],
      ['read of a block with a gap', () => client.readHoldingRegisters(100, 4)],
      ['read past the extra registers', () => client.readHoldingRegisters(1002, 3)],
      ['input register of a holding-only map', () => client.readInputRegisters(200, 1)],
      ['write to telemetry', () => client.writeRegister(200, 1)],
      ['FC16 write to telemetry', () => client.writeRegisters(201, [0, 1])],
      ['FC6 write of half an int32 setpoint', () => client.writeRegister(101, 5)],
      ['FC16 write of half an int32 setpoint', () => client.writeRegisters(101, [5, 1])],
      ['write to an unknown register', () => client.writeRegister(9, 1)],
    ];
    for (const [what, request] of cases) {
      const err = await failure(request());
      should(err.modbusCode).equal(2, what);
      should(err.message).match(/Illegal data address/, what);
    }
    should(sim.readRegisters(1, 100, 3)).eql([0, 0, 0]);
    should(sim.writes(1)).be.empty();
    await client.writeRegisters(1000, [1, 2, 3, 4]);
    should((await client.readHoldingRegisters(1000, 4)).data).eql([1, 2, 3, 4]);
  });

  it('gives no answer at all to a unit id it does not serve (the client times out)', async () => {
    const sim = await simulator({ unitIds: [1] });
    const client = await connect(sim.port, 7, 150);
    const unanswered: unknown[] = [];
    sim.on('unanswered', (e) => unanswered.push(e));
    const started = Date.now();
    const err = await failure(client.readHoldingRegisters(200, 1));
    should(Date.now() - started).be.aboveOrEqual(140);
    should(err).containEql({
      name: 'TransactionTimedOutError',
      message: 'Timed out',
      errno: 'ETIMEDOUT',
    });
    should(err.modbusCode).be.undefined();
    should(err instanceof Error).be.false(); // modbus-serial's timeout is a plain object
    should((await failure(client.writeRegister(102, 1))).errno).equal('ETIMEDOUT');
    should(unanswered).eql([
      { unitId: 7, reason: 'unit' },
      { unitId: 7, reason: 'unit' },
    ]);
    // The same connection still works for a unit that is served.
    client.setID(1);
    should((await client.readHoldingRegisters(200, 1)).data).eql([500]);
    should(sim.readRegister(1, 102)).equal(0);
  });

  it('stops answering while silent, and answers again afterwards', async () => {
    const sim = await simulator();
    const client = await connect(sim.port, 1, 150);
    sim.setSilent(true);
    should((await failure(client.readHoldingRegisters(200, 1))).errno).equal('ETIMEDOUT');
    should((await failure(client.writeRegister(102, 1))).errno).equal('ETIMEDOUT');
    should(sim.readRegister(1, 102)).equal(0); // the write was not applied either
    sim.setSilent(false);
    should((await client.readHoldingRegisters(200, 1)).data).eql([500]);
  });

  it('reports a fault (status 3, no power) and an unavailable battery (status 4)', async () => {
    const sim = await simulator();
    const client = await connect(sim.port);
    await client.writeRegisters(100, [...setpointWords(20), 1]);
    sim.setFault(true);
    should(await telemetry(client)).eql({ socPercent: 50, powerKw: 0, status: 3 });
    sim.tick(3_600_000);
    should(sim.state(1)).containEql({ socPercent: 50, status: BatteryState.FAULTED });
    sim.setFault(false);
    should(await telemetry(client)).eql({ socPercent: 50, powerKw: 20, status: 1 });
    sim.setUnavailable(true);
    should((await telemetry(client)).status).equal(4);
  });

  it('keeps several unit ids on one server independent', async () => {
    const sim = await simulator({ unitIds: [1, 2], initialSocPercent: 60 });
    const one = await connect(sim.port, 1);
    const two = await connect(sim.port, 2);
    await one.writeRegisters(100, [...setpointWords(36), 1]);
    await two.writeRegisters(100, [...setpointWords(-18), 2]);
    sim.tick(600_000); // 10 minutes
    should(sim.readRegisters(1, 200, 4)).eql([660, 0, 36000 & 0xffff, 1]);
    should(sim.readRegisters(2, 200, 4)).eql([570, 0xffff, -18000 & 0xffff, 2]);
    should(await telemetry(one)).eql({ socPercent: 66, powerKw: 36, status: 1 });
    should(await telemetry(two)).eql({ socPercent: 57, powerKw: -18, status: 2 });
    // One client, both units, in turn.
    two.setID(1);
    should((await two.readHoldingRegisters(100, 2)).data).eql(setpointWords(36));
    sim.setFault(true, 2);
    should(sim.state(1).status).equal(BatteryState.CHARGING);
    should(sim.state(2).status).equal(BatteryState.FAULTED);
    should(() => sim.readRegister(3, 100)).throw(/does not serve unit 3/);
  });

  it('restarts on the same port: old clients are closed, new ones connect', async () => {
    const sim = await simulator({ port: 0 });
    const port = sim.port;
    const old = await connect(port, 1, 300);
    await old.writeRegisters(100, [...setpointWords(20), 1]);
    sim.tick(180_000);
    const closed = new Promise<void>((resolve) => old.on('close', () => resolve()));
    should(await sim.restart()).equal(port);
    await closed;
    should(old.isOpen).be.false();
    const err = await failure(old.readHoldingRegisters(200, 1));
    should(err).containEql({ name: 'PortNotOpenError', message: 'Port Not Open' });

    const fresh = await connect(port);
    // A reboot: the control registers are back at their power-on values, the SoC is kept.
    should((await fresh.readHoldingRegisters(100, 3)).data).eql([0, 0, 0]);
    should(await telemetry(fresh)).eql({ socPercent: 51, powerKw: 0, status: 0 });
    await fresh.writeRegisters(100, [...setpointWords(20), 1]);
    should(sim.state(1).powerKw).equal(20);

    // connectTCP again on the old object makes a new socket: that works too.
    await old.connectTCP(HOST, { port });
    should((await old.readHoldingRegisters(100, 2)).data).eql(setpointWords(20));
  });

  it('lets a request that is under way when the server closes time out (no early error)', async () => {
    const sim = await simulator();
    const client = await connect(sim.port, 1, 200);
    sim.setSilent(true);
    const pending = failure(client.readHoldingRegisters(200, 1));
    await new Promise((r) => setTimeout(r, 20));
    await sim.close();
    should((await pending).errno).equal('ETIMEDOUT');
    should(client.isOpen).be.false();
    const refused = new ModbusRTU();
    refused.setTimeout(200);
    const err = (await failure(refused.connectTCP(HOST, { port: sim.port }))) as Failure & {
      code?: string;
    };
    should(err.code).equal('ECONNREFUSED');
    await destroy(refused);
  });

  it('checks its options', () => {
    should(() => new BatterySimulator({ unitIds: [] })).throw(/at least one/);
    should(() => new BatterySimulator({ unitIds: [1, 1] })).throw(/duplicate/);
    should(() => new BatterySimulator({ socMinPercent: 90, socMaxPercent: 10 })).throw(/SoC/);
    should(
      () => new BatterySimulator({ map: { ...GENERIC_MAP, setpoint: { ...SP, address: 200 } } }),
    ).throw(/both/);
  });
});

describe('register codec against the simulator (data types x word order)', () => {
  afterEach(cleanup);

  // Expected words, high word first, written by hand (IEEE 754 / two's complement).
  const cases: { type: DataType; value: number; words: number[] }[] = [
    { type: 'int16', value: 1234, words: [0x04d2] },
    { type: 'int16', value: -2, words: [0xfffe] },
    { type: 'int16', value: -32768, words: [0x8000] },
    { type: 'uint16', value: 65535, words: [0xffff] },
    { type: 'uint16', value: 0x1234, words: [0x1234] },
    { type: 'int32', value: -123456, words: [0xfffe, 0x1dc0] },
    { type: 'int32', value: 305419896, words: [0x1234, 0x5678] },
    { type: 'int32', value: -1, words: [0xffff, 0xffff] },
    { type: 'int32', value: -2147483648, words: [0x8000, 0x0000] },
    { type: 'uint32', value: 4294967295, words: [0xffff, 0xffff] },
    { type: 'uint32', value: 65536, words: [0x0001, 0x0000] },
    { type: 'uint32', value: 3000000000, words: [0xb2d0, 0x5e00] },
    { type: 'float32', value: 1.5, words: [0x3fc0, 0x0000] },
    { type: 'float32', value: -2.5, words: [0xc020, 0x0000] },
    { type: 'float32', value: 123.456, words: [0x42f6, 0xe979] },
    { type: 'float32', value: -1000.25, words: [0xc47a, 0x1000] },
  ];
  const orders: WordOrder[] = ['high-first', 'low-first'];

  let sim: BatterySimulator;
  let client: ModbusRTU;
  beforeEach(async () => {
    sim = await simulator({ extraRegisters: { address: 1000, count: 2 } });
    client = await connect(sim.port);
  });

  for (const c of cases) {
    for (const wordOrder of orders) {
      it(`${c.type} ${c.value} ${wordOrder}`, async () => {
        const spec: RegisterSpec = { address: 1000, type: c.type, wordOrder };
        const expected =
          c.words.length === 2 && wordOrder === 'low-first' ? [c.words[1], c.words[0]] : c.words;
        const words = encodeValue(c.value, spec);
        should(words).eql(expected);
        await client.writeRegisters(1000, words); // FC16
        should(sim.readRegisters(1, 1000, words.length)).eql(expected);
        const { data } = await client.readHoldingRegisters(1000, words.length);
        const back = decodeValue(data, spec);
        if (c.type === 'float32') should(back).be.approximately(c.value, 1e-4);
        else should(back).equal(c.value);
        if (words.length === 1) {
          await client.writeRegister(1000, 0);
          await client.writeRegister(1000, words[0] as number); // FC6
          should(sim.readRegister(1, 1000)).equal(expected[0]);
        }
      });
    }
  }

  it('writes the hand-made examples in both word orders', async () => {
    const int32 = (wordOrder: WordOrder): RegisterSpec => ({
      address: 1000,
      type: 'int32',
      wordOrder,
    });
    await client.writeRegisters(1000, encodeValue(-123456, int32('high-first')));
    should(sim.readRegisters(1, 1000, 2)).eql([0xfffe, 0x1dc0]);
    await client.writeRegisters(1000, encodeValue(-123456, int32('low-first')));
    should(sim.readRegisters(1, 1000, 2)).eql([0x1dc0, 0xfffe]);
    await client.writeRegisters(1000, encodeValue(1.5, { address: 1000, type: 'float32' }));
    should(sim.readRegisters(1, 1000, 2)).eql([0x3fc0, 0x0000]);
  });

  it('applies a scale', async () => {
    const spec: RegisterSpec = { address: 1000, type: 'int16', scale: 0.1 };
    await client.writeRegister(1000, encodeValue(12.3, spec)[0] as number);
    should(sim.readRegister(1, 1000)).equal(123);
    await client.writeRegister(1000, encodeValue(-0.5, spec)[0] as number);
    should(sim.readRegister(1, 1000)).equal(0xfffb);
    should(decodeValue([123], spec)).equal(12.3);
    should(decodeValue((await client.readHoldingRegisters(1000, 1)).data, spec)).equal(-0.5);
    const kw: RegisterSpec = { address: 1000, type: 'uint32', scale: 0.001 };
    await client.writeRegisters(1000, encodeValue(70.5, kw));
    should(sim.readRegisters(1, 1000, 2)).eql([0x0001, 0x1364]); // 70500
  });

  it('applies a SunSpec scale factor that it reads from the device', async () => {
    const setpoint: SetpointSpec = {
      address: 100,
      type: 'int16',
      scaleFactorAddress: 120,
      unit: 'W',
      sign: 'charge-positive',
      function: 'FC6',
    };
    const map: RegisterMap = { name: 'sunspec-like', setpoint, telemetry: {} };
    const s = await simulator({ map });
    const c = await connect(s.port);
    for (const [sf, kw, raw] of [
      [2, 20, 200], // 20,000 W = 200 x 10^2
      [-1, 1.2345, 12345], // 1,234.5 W = 12,345 x 10^-1
      [0, -3, 0xf448], // -3,000 W
    ] as const) {
      s.setRegister(1, 120, sf & 0xffff);
      const [sfRaw] = (await c.readHoldingRegisters(120, 1)).data;
      const sfRead = (sfRaw as number) > 0x7fff ? (sfRaw as number) - 0x10000 : (sfRaw as number);
      should(sfRead).equal(sf);
      const words = encodeValue(setpointToRegisterValue(kw, setpoint, RATED), setpoint, sfRead);
      await c.writeRegister(100, words[0] as number);
      should(s.readRegister(1, 100)).equal(raw);
      should(s.state(1).requestedKw).be.approximately(kw, 1e-9);
      should(
        registerValueToSetpoint(decodeValue([raw], setpoint, sf), setpoint, RATED),
      ).be.approximately(kw, 1e-9);
    }
    should((await failure(c.writeRegister(120, 1))).modbusCode).equal(2); // read-only
  });

  it('orients signs: positive = discharge on the device', async () => {
    const setpoint: SetpointSpec = { ...SP, sign: 'discharge-positive' };
    const map: RegisterMap = {
      ...GENERIC_MAP,
      name: 'discharge-positive',
      setpoint,
      telemetry: { ...GENERIC_MAP.telemetry, power: { ...POWER, sign: 'discharge-positive' } },
    };
    const s = await simulator({ map });
    const c = await connect(s.port);
    should(setpointToRegisterValue(-10, setpoint, RATED)).equal(10_000);
    await c.writeRegisters(100, [
      ...encodeValue(setpointToRegisterValue(-10, setpoint, RATED), setpoint),
      2,
    ]);
    should(s.readRegisters(1, 100, 2)).eql([0, 10_000]);
    should(s.state(1)).containEql({
      requestedKw: -10,
      powerKw: -10,
      status: BatteryState.DISCHARGING,
    });
    should(s.readRegisters(1, 201, 2)).eql([0, 10_000]); // measured: +10,000 W = discharging
    const measured = decodeValue((await c.readHoldingRegisters(201, 2)).data, POWER);
    should(registerValueToSetpoint(measured, setpoint, RATED)).equal(-10);
    await c.writeRegisters(100, [
      ...encodeValue(setpointToRegisterValue(4, setpoint, RATED), setpoint),
      1,
    ]);
    should(s.readRegisters(1, 100, 2)).eql([0xffff, 0xf060]); // -4,000 W = charging
    should(s.state(1).powerKw).equal(4);
  });

  it('converts a percent setpoint with the rated power of each direction', async () => {
    const setpoint: SetpointSpec = {
      address: 100,
      type: 'int16',
      scale: 0.1,
      unit: 'percent',
      sign: 'charge-positive',
    };
    const rated = { charge: 50, discharge: 40 };
    const map: RegisterMap = { name: 'percent', setpoint, telemetry: {} };
    const s = await simulator({ map, maxChargeKw: 50, maxDischargeKw: 40 });
    const c = await connect(s.port);
    should(setpointToRegisterValue(25, setpoint, rated)).equal(50);
    should(setpointToRegisterValue(-20, setpoint, rated)).equal(-50);
    await c.writeRegister(
      100,
      encodeValue(setpointToRegisterValue(25, setpoint, rated), setpoint)[0] as number,
    );
    should(s.readRegister(1, 100)).equal(500);
    should(s.state(1)).containEql({ requestedKw: 25, powerKw: 25, mode: 'none' });
    await c.writeRegister(
      100,
      encodeValue(setpointToRegisterValue(-20, setpoint, rated), setpoint)[0] as number,
    );
    should(s.readRegister(1, 100)).equal(0xfe0c); // -500
    should(s.state(1).requestedKw).equal(-20);
    should(registerValueToSetpoint(-50, setpoint, rated)).equal(-20);
    should(registerValueToSetpoint(50, { ...setpoint, sign: 'discharge-positive' }, rated)).equal(
      -20,
    );
  });

  it('runs a map in kW with float32 low word first', async () => {
    const setpoint: SetpointSpec = {
      address: 40,
      type: 'float32',
      wordOrder: 'low-first',
      unit: 'kW',
      sign: 'charge-positive',
    };
    const map: RegisterMap = {
      name: 'kw-float',
      setpoint,
      telemetry: {
        power: {
          address: 50,
          type: 'float32',
          wordOrder: 'low-first',
          unit: 'kW',
          sign: 'charge-positive',
        },
        soc: { address: 52, type: 'float32', wordOrder: 'low-first' },
      },
    };
    const s = await simulator({ map });
    const c = await connect(s.port);
    await c.writeRegisters(
      40,
      encodeValue(setpointToRegisterValue(12.5, setpoint, RATED), setpoint),
    );
    should(s.readRegisters(1, 40, 2)).eql([0x0000, 0x4148]); // 12.5 = 0x41480000
    should(s.readRegisters(1, 50, 2)).eql([0x0000, 0x4148]);
    s.tick(3_600_000);
    const { data } = await c.readHoldingRegisters(50, 4);
    should(decodeValue(data.slice(0, 2), map.telemetry.power as RegisterSpec)).equal(12.5);
    should(decodeValue(data.slice(2), map.telemetry.soc as RegisterSpec)).be.approximately(
      62.5,
      1e-4,
    );
  });
});

describe('qe-sim-battery (the command line)', () => {
  it('parses unit lists', () => {
    should(parseUnits('1, 2,5')).eql([1, 2, 5]);
    should(() => parseUnits('1,x')).throw(/--units/);
    should(() => parseUnits('1,1')).throw(/duplicate/);
  });

  it('serves batteries, prints changes and closes cleanly on SIGTERM', async () => {
    const p: ChildProcessWithoutNullStreams = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/sim/battery-cli.ts',
        '--port',
        '0',
        '--units',
        '1,2',
        '--report-s',
        '0',
      ],
      { cwd: root },
    );
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    try {
      for (let i = 0; i < 800 && !/listening on/.test(out); i++)
        await new Promise((r) => setTimeout(r, 10));
      const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
      should(port).be.above(0);
      const client = await connect(port, 2);
      await client.writeRegisters(100, [...setpointWords(15), 1]);
      for (let i = 0; i < 200 && !/mode charge/.test(out); i++)
        await new Promise((r) => setTimeout(r, 10));
      should(out).match(/unit 2 setpoint 15 kW/);
      should(out).match(/unit 2 mode charge \(1\)/);
      const code = await new Promise<number | null>((resolve) => {
        p.once('exit', resolve);
        p.kill('SIGTERM');
      });
      should(code).equal(0);
      should(out).match(/SIGTERM: closing/);
    } finally {
      p.kill('SIGKILL');
      await cleanup();
    }
  });
});
