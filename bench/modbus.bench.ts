/**
 * Modbus: setpoint write + read-back for 50 unit ids through one TCP connection to the
 * simulated battery server (BatterySimulator, unit ids 1..50, GENERIC_MAP). Commands per
 * second through the ModbusBatteries adapter (a Site dispatching through the adapter, with
 * the engine's bookkeeping: each command goes PENDING -> DISPATCHED -> ACKNOWLEDGED ->
 * COMPLETED), beside bare modbus-serial doing the same requests on the same registers
 * (the floor): per command, write the mode register (FC16 at 102), write the int32 setpoint
 * (FC16 at 100, 2 words) and read the setpoint back (FC3 at 100, 2 words), one request at a
 * time on the one connection. Telemetry polling and watchdogs are off for the measurement.
 *
 *   node --import tsx bench/modbus.bench.ts        (BENCH_RUNS, BENCH_ROUNDS)
 *
 * Prints figures; passes or fails nothing.
 */
import ModbusRTU from 'modbus-serial';
import { ModbusBatteries } from '../src/adapters/modbus/batteries';
import { ModbusConnection } from '../src/adapters/modbus/connection';
import { GENERIC_MAP } from '../src/adapters/modbus/register-map';
import { CommandType } from '../src/commands';
import { BatterySimulator } from '../src/sim/battery';
import { Site } from '../src/site';
import { deadline, fmt, machine, median, ratio, runBenchmark, runs, until } from './lib';

const UNITS = 50;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20); // commands per unit per run
const RUNS = runs(7);
const unitIds = Array.from({ length: UNITS }, (_, i) => i + 1);

deadline(180);

/** kW for unit u in round r: changes every round, charge and discharge, whole watts. */
const kwOf = (u: number, r: number) => (((u * 7 + r * 13) % 41) - 20) / 2;

async function floorRun(port: number): Promise<number> {
  const client = new ModbusRTU();
  client.setTimeout(1000);
  await client.connectTCP('127.0.0.1', { port });
  const t = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    for (const u of unitIds) {
      const w = Math.round(kwOf(u, r) * 1000);
      client.setID(u);
      await client.writeRegisters(102, [w > 0 ? 1 : w < 0 ? 2 : 0]);
      const v = w < 0 ? w + 0x1_0000_0000 : w;
      await client.writeRegisters(100, [Math.floor(v / 0x10000), v & 0xffff]);
      const back = await client.readHoldingRegisters(100, 2);
      const raw = ((back.data[0] as number) << 16) | (back.data[1] as number);
      if (raw !== w) throw new Error(`unit ${u}: wrote ${w} W, read back ${raw}`);
    }
  }
  const ms = performance.now() - t;
  await new Promise<void>((r) => client.close(() => r()));
  return ((ROUNDS * UNITS) / ms) * 1000;
}

async function oursRun(port: number): Promise<number> {
  const connection = new ModbusConnection({
    transport: 'tcp',
    host: '127.0.0.1',
    port,
    timeoutMs: 1000,
    queueLimit: 1000,
  });
  const site = new Site({
    siteId: 'bench',
    autoDispatch: true,
    config: { commandTimeoutSeconds: 30, maxRetries: 0 },
    onError: (e) => console.error(e.message),
  });
  const fleet = new ModbusBatteries(
    site,
    connection,
    unitIds.map((unitId) => ({
      assetId: `b${unitId}`,
      unitId,
      map: GENERIC_MAP,
      ratedChargeKw: 50,
      ratedDischargeKw: 50,
      pollIntervalMs: 0,
    })),
  );
  connection.start();
  await until(() => connection.state === 'connected', 'connected', 5000);
  fleet.start(); // reads telemetry once per battery
  site.start();
  await until(() => connection.queueDepth === 0, 'first telemetry read', 10_000);
  let completed = 0;
  let target = 0;
  let wake: () => void = () => {};
  site.eventBus.subscribe('COMMAND_COMPLETED' as never, () => {
    if (++completed === target) wake();
  });
  const t = performance.now();
  const now = Date.now();
  for (let r = 0; r < ROUNDS; r++) {
    target = (r + 1) * UNITS;
    const round = new Promise<void>((resolve) => {
      wake = resolve;
    });
    site.submit(
      unitIds.map((u) => {
        const kw = kwOf(u, r);
        return {
          id: `r${r}-${u}`,
          assetId: `b${u}`,
          type: kw >= 0 ? CommandType.SET_CHARGE_RATE : CommandType.SET_DISCHARGE_RATE,
          valueKw: Math.abs(kw),
          scheduledAt: now,
        };
      }),
    );
    // Rounds one after the other, as slots follow each other.
    await round;
  }
  const ms = performance.now() - t;
  const failed = site.engine.stats().byStatus.FAILED;
  if (failed > 0) throw new Error(`${failed} commands failed`);
  fleet.stop();
  await site.stop();
  await connection.close();
  return ((ROUNDS * UNITS) / ms) * 1000;
}

async function main(): Promise<void> {
  const sim = new BatterySimulator({
    unitIds,
    tickMs: 0,
    maxChargeKw: 50,
    maxDischargeKw: 50,
  });
  const port = await sim.start();
  console.log(
    `Modbus: ${UNITS} unit ids on one TCP connection to the simulated battery, ${ROUNDS * UNITS} commands per run (mode write + setpoint write + read-back), ${RUNS} runs; ${machine()}`,
  );
  try {
    await floorRun(port); // warm-up
    await oursRun(port);
    const floor: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      floor.push(await floorRun(port));
      ours.push(await oursRun(port));
    }
    console.log(`  bare modbus-serial (floor)       ${fmt(floor, 'commands/s', 0)}`);
    console.log(`  ModbusBatteries via a Site       ${fmt(ours, 'commands/s', 0)}`);
    console.log(
      `  ratio (floor / ours)             ${ratio(floor, ours)}  (per command: ours ${(1000 / median(ours)).toFixed(3)} ms, floor ${(1000 / median(floor)).toFixed(3)} ms)`,
    );
  } finally {
    await sim.close();
  }
}

runBenchmark(main);
