#!/usr/bin/env node
/**
 * qe-sim-battery: simulated batteries behind a Modbus TCP server, on the command line.
 *
 *   qe-sim-battery --port 5020 [--host 127.0.0.1] [--units 1,2] [--capacity-kwh 100] \
 *     [--soc 50] [--max-kw 50] [--watchdog-ms 0] [--map map.json] [--report-s 10]
 *
 * Prints one line per change (setpoint, mode, watchdog revert) and the state of charge of
 * every unit every --report-s seconds; SIGINT / SIGTERM close the server cleanly.
 */

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GENERIC_MAP, validateRegisterMap } from '../adapters/modbus/register-map';
import { BatterySimulator, type SimMode } from './battery';
import { closeOnSignals, numberOption as number, runCli } from './cli';

const USAGE = `Usage: qe-sim-battery [options]

Options:
  --port <port>            TCP port (default 5020; 0: a free port, printed)
  --host <address>         interface to listen on (default 127.0.0.1; 0.0.0.0: all)
  --units <ids>            unit ids served, one battery each, e.g. 1,2 (default 1)
  --capacity-kwh <kWh>     capacity of each battery (default 100)
  --soc <percent>          initial state of charge (default 50)
  --max-kw <kW>            most charge and discharge power (default 50)
  --watchdog-ms <ms>       revert to idle without a watchdog write for this long (default 0: never)
  --map <file.json>        register map (default: the generic map)
  --reject-out-of-range    answer a setpoint beyond --max-kw with exception 3 (default: clamp)
  --report-s <s>           print the state of charge every s seconds (default 10; 0: never)
  -h, --help               this text

Generic map (holding registers, 0-based): 100-101 setpoint W int32 (+ = charge),
102 mode (0 idle, 1 charge, 2 discharge), 110 watchdog, 200 SoC 0.1 %,
201-202 power W int32 (+ = charge), 203 status (0 idle, 1 charging, 2 discharging, 3 fault).
`;

/** "1,2, 5" -> [1, 2, 5]; throws on anything that is not a list of unit ids. */
export function parseUnits(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim());
  const out = ids.map((s) => {
    const n = Number(s);
    if (s === '' || !Number.isInteger(n) || n < 0 || n > 255) {
      throw new Error(`--units must be unit ids from 0 to 255 separated by commas, got ${text}`);
    }
    return n;
  });
  if (new Set(out).size !== out.length) throw new Error(`--units has a duplicate: ${text}`);
  return out;
}

function line(text: string): void {
  process.stdout.write(`${new Date().toISOString()} ${text}\n`);
}

const kw = (x: number): string => `${Math.round(x * 1000) / 1000} kW`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '5020' },
      host: { type: 'string', default: '127.0.0.1' },
      units: { type: 'string', default: '1' },
      'capacity-kwh': { type: 'string' },
      soc: { type: 'string' },
      'max-kw': { type: 'string' },
      'watchdog-ms': { type: 'string' },
      map: { type: 'string' },
      'reject-out-of-range': { type: 'boolean', default: false },
      'report-s': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const port = number('port', values.port, 5020);
  if (!Number.isInteger(port) || port > 65535)
    throw new Error(`--port must be 0 to 65535, got ${values.port}`);
  const soc = number('soc', values.soc, 50);
  if (soc > 100) throw new Error(`--soc must be 0 to 100, got ${values.soc}`);
  const maxKw = number('max-kw', values['max-kw'], 50);
  const capacityKwh = number('capacity-kwh', values['capacity-kwh'], 100);
  if (maxKw === 0 || capacityKwh === 0) throw new Error('--max-kw and --capacity-kwh must be > 0');
  const map = values.map
    ? validateRegisterMap(JSON.parse(readFileSync(values.map, 'utf8')))
    : GENERIC_MAP;
  const reportS = number('report-s', values['report-s'], 10);

  const sim = new BatterySimulator({
    host: values.host,
    port,
    unitIds: parseUnits(values.units ?? '1'),
    map,
    capacityKwh,
    initialSocPercent: soc,
    maxChargeKw: maxKw,
    maxDischargeKw: maxKw,
    watchdogTimeoutMs: number('watchdog-ms', values['watchdog-ms'], 0),
    rejectOutOfRange: values['reject-out-of-range'],
  });
  const report = (unitId: number, what: string) => {
    const s = sim.state(unitId);
    line(
      `unit ${unitId} ${what}: soc ${s.socPercent.toFixed(2)} %, power ${kw(s.powerKw)} ` +
        `(asked ${kw(s.requestedKw)}), mode ${s.mode}, status ${s.status}`,
    );
  };
  sim.on('setpoint', (unitId: number, requestedKw: number, words: number[]) =>
    report(unitId, `setpoint ${kw(requestedKw)} [${words.join(', ')}]`),
  );
  sim.on('mode', (unitId: number, mode: SimMode, raw: number) =>
    report(unitId, `mode ${mode} (${raw})`),
  );
  sim.on('revert', (unitId: number) => report(unitId, 'watchdog expired, back to idle'));
  sim.on('warning', (err: Error) => line(`warning: ${err.message}`));

  const bound = await sim.start();
  line(
    `listening on ${values.host}:${bound}, units ${sim.unitIds.join(', ')}, map ${map.name}, ` +
      `${capacityKwh} kWh, ±${maxKw} kW`,
  );
  const timer =
    reportS > 0
      ? setInterval(() => {
          for (const id of sim.unitIds) report(id, 'state');
        }, reportS * 1000)
      : null;

  closeOnSignals((signal) => {
    if (timer) clearInterval(timer);
    line(`${signal}: closing`);
    return sim.close();
  });
}

if (require.main === module) runCli('qe-sim-battery', USAGE, main);
