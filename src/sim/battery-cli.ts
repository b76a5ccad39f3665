#!/usr/bin/env node
/**
 * qe-sim-battery: simulated batteries behind a Modbus TCP server, on the command line.
 *
 *   qe-sim-battery --port 5020 [--host 127.0.0.1] [--units 1,2] [--capacity-kwh 100] \
 *     [--soc 50] [--max-kw 50] [--watchdog-ms 0] [--map map.json] [--report-s 10] [--json] \
 *     [--follow-rate 0] [--wrong-way]
 *
 * Prints one line per change (setpoint, mode, watchdog revert, restart) and the state of
 * charge of every unit every --report-s seconds (with --json, one JSON object a line: time,
 * event, unit, ...). Reads commands on stdin, one a line, to play faults from a test in
 * another process: `mute 2` (unit 2 stops answering), `restart 3000` (the device reboots and
 * is back after 3 s with setpoint 0), and the others in USAGE; each is answered `ok ...` or
 * `error ...`. SIGINT / SIGTERM (or the `quit` command) close the server cleanly.
 */

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { resolveMap } from '../adapters/modbus/maps';
import { GENERIC_MAP } from '../adapters/modbus/register-map';
import { BatterySimulator, type PowerOnRegister, type SimMode } from './battery';
import {
  COMMON_OPTIONS,
  controlled,
  helpAsked,
  nonNegative,
  numberOption as number,
  type Print,
  printer,
  runCli,
} from './cli';

const USAGE = `Usage: qe-sim-battery [options]

Options:
  --port <port>            TCP port (default 5020; 0: a free port, printed)
  --host <address>         interface to listen on (default 127.0.0.1; 0.0.0.0: all)
  --units <ids>            unit ids served, one battery each, e.g. 1,2 (default 1)
  --capacity-kwh <kWh>     capacity of each battery (default 100)
  --soc <percent>          initial state of charge (default 50)
  --max-kw <kW>            most charge and discharge power (default 50)
  --watchdog-ms <ms>       revert to idle without a watchdog write for this long (default 0: never)
  --map <file.json>        register map (default: the generic map), or a SunSpec profile such as
                           {"profile": "sunspec-704", "baseAddress": 40070}, whose revert
                           timer (WSetRvrtTms) it then honours as a device does
  --reject-out-of-range    answer a setpoint beyond --max-kw with exception 3 (default: clamp)
  --follow-rate <kW/s>     quirk: the power ramps toward the setpoint this fast (default 0: at once)
  --wrong-way              quirk: run the opposite direction of the setpoint
  --report-s <s>           print the state of charge every s seconds (default 10; 0: never)
  --json                   print one JSON object a line: {time, event, unit, ...}
  -h, --help               this text

Commands on stdin, one a line (<unit>: a unit id, or all), each answered "ok <command>" or
"error <command>: <why>":
  mute [unit] | unmute [unit]      stop / start answering (all units, or one); the
                                   connection stays open, requests time out
  restart [ms] [keep] [<address>=<value> ...]
                                   the device reboots: connections close, nothing listens
                                   for ms (default 1000), then setpoint 0 and mode idle
                                   (keep: as they were) and the given holding registers
                                   (e.g. a scale factor)
  fault <unit> | clear-fault <unit> | unavailable <unit> | available <unit>
  soc <unit> <percent>             set the state of charge
  set <unit> <address> <value>     set a raw holding register
  state [unit]                     print the state ("state" lines)
  setpoints <unit>                 print the setpoints it ran at ("setpoints" line)
  wrong-way on|off                 switch the wrong-way quirk (all units)
  follow-rate <kW/s>               set the follow rate quirk (0: at once; all units)
  quit                             close the server and exit

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

const kw = (x: number): string => `${Math.round(x * 1000) / 1000} kW`;

/** A unit id, or every unit for `all` (or nothing, when `optional`). */
function units(sim: BatterySimulator, word: string | undefined, optional = false): number[] {
  if (word === undefined && optional) return [...sim.unitIds];
  if (word === 'all') return [...sim.unitIds];
  const id = Number(word);
  if (word === undefined || !sim.unitIds.includes(id)) {
    throw new Error(`name a unit (${sim.unitIds.join(', ')} or all), got ${word ?? 'nothing'}`);
  }
  return [id];
}

/** Runs one command of the control channel. */
export async function command(
  sim: BatterySimulator,
  words: string[],
  report: (unitId: number, event: string, what: string) => void,
  print: Print,
  quit: () => void,
): Promise<void> {
  const [verb, a, b, c] = words;
  const value = (label: string, word: string | undefined) => {
    if (word === undefined) throw new Error(`${verb}: ${label} is missing`);
    return nonNegative(`${verb}: ${label}`, word, 0);
  };
  switch (verb) {
    case 'mute':
    case 'unmute':
      if (a === undefined || a === 'all') sim.setSilent(verb === 'mute');
      else for (const id of units(sim, a)) sim.setSilent(verb === 'mute', id);
      return;
    case 'restart': {
      const rest = words.slice(1);
      const registers: PowerOnRegister[] = [];
      let downMs = 1000;
      let keep = false;
      for (const w of rest) {
        const m = /^(\d+)=(-?\d+)$/.exec(w);
        if (m) registers.push({ address: Number(m[1]), value: Number(m[2]) });
        else if (w === 'keep') keep = true;
        else downMs = nonNegative('restart: ms', w, 1000);
      }
      print('restarting', { downMs, keep, registers }, `restarting: down for ${downMs} ms`);
      // Answered once it is going down; a 'restarted' line says when it listens again.
      sim.restart({ downMs, resetControl: !keep, registers }).catch((err: Error) => {
        print('warning', { error: err.message }, `warning: restart: ${err.message}`);
      });
      return;
    }
    case 'fault':
    case 'clear-fault':
      for (const id of units(sim, a)) sim.setFault(verb === 'fault', id);
      return;
    case 'unavailable':
    case 'available':
      for (const id of units(sim, a)) sim.setUnavailable(verb === 'unavailable', id);
      return;
    case 'soc':
      for (const id of units(sim, a)) sim.setSoc(id, value('percent', b));
      return;
    case 'set':
      if (!/^-?\d+$/.test(c ?? '')) throw new Error(`set: value must be an integer, got ${c}`);
      for (const id of units(sim, a)) sim.setRegister(id, value('address', b), Number(c));
      return;
    case 'state':
      for (const id of units(sim, a, true)) report(id, 'state', 'state');
      return;
    case 'setpoints':
      for (const id of units(sim, a)) {
        const history = sim
          .setpointHistory(id)
          .map((h) => ({ ...h, at: new Date(h.at).toISOString() }));
        print(
          'setpoints',
          { unit: id, history },
          `unit ${id} setpoints ${JSON.stringify(history)}`,
        );
      }
      return;
    case 'wrong-way':
      if (a !== 'on' && a !== 'off')
        throw new Error(`wrong-way: say on or off, got ${a ?? 'nothing'}`);
      sim.setQuirks({ wrongWay: a === 'on' });
      return;
    case 'follow-rate':
      sim.setQuirks({ followRateKwPerS: value('kW/s', a) });
      return;
    case 'quit':
      return quit();
    default:
      throw new Error(`unknown command ${verb} (see --help)`);
  }
}

/** The command line options (see USAGE). */
const OPTIONS = {
  port: { type: 'string', default: '5020' },
  host: { type: 'string', default: '127.0.0.1' },
  units: { type: 'string', default: '1' },
  'capacity-kwh': { type: 'string' },
  soc: { type: 'string' },
  'max-kw': { type: 'string' },
  'watchdog-ms': { type: 'string' },
  map: { type: 'string' },
  'reject-out-of-range': { type: 'boolean', default: false },
  'follow-rate': { type: 'string' },
  'wrong-way': { type: 'boolean', default: false },
  'report-s': { type: 'string' },
  ...COMMON_OPTIONS,
} as const;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
  if (helpAsked(values, USAGE)) return;
  const port = number('port', values.port, 5020);
  if (!Number.isInteger(port) || port > 65535)
    throw new Error(`--port must be 0 to 65535, got ${values.port}`);
  const soc = number('soc', values.soc, 50);
  if (soc > 100) throw new Error(`--soc must be 0 to 100, got ${values.soc}`);
  const maxKw = number('max-kw', values['max-kw'], 50);
  const capacityKwh = number('capacity-kwh', values['capacity-kwh'], 100);
  if (maxKw === 0 || capacityKwh === 0) throw new Error('--max-kw and --capacity-kwh must be > 0');
  const map = values.map ? resolveMap(JSON.parse(readFileSync(values.map, 'utf8'))) : GENERIC_MAP;
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
    followRateKwPerS: number('follow-rate', values['follow-rate'], 0),
    wrongWay: values['wrong-way'],
  });
  const print = printer(values.json ?? false);
  /** A unit's line: what happened, then its state. */
  const report = (unitId: number, event: string, what: string, fields = {}) => {
    const s = sim.state(unitId);
    print(
      event,
      { unit: unitId, ...fields, state: s },
      `unit ${unitId} ${what}: soc ${s.socPercent.toFixed(2)} %, power ${kw(s.powerKw)} ` +
        `(asked ${kw(s.requestedKw)}), mode ${s.mode}, status ${s.status}`,
    );
  };
  sim.on('setpoint', (unitId: number, requestedKw: number, words: number[]) =>
    report(unitId, 'setpoint', `setpoint ${kw(requestedKw)} [${words.join(', ')}]`, {
      requestedKw,
      words,
    }),
  );
  sim.on('mode', (unitId: number, mode: SimMode, raw: number) =>
    report(unitId, 'mode', `mode ${mode} (${raw})`, { mode, raw }),
  );
  sim.on('revert', (unitId: number) =>
    report(unitId, 'revert', 'no write in time (watchdog or revert timer), back to idle'),
  );
  sim.on('restarted', (port: number) =>
    print('restarted', { port }, `restarted: listening again on port ${port}`),
  );
  sim.on('warning', (err: Error) =>
    print('warning', { error: err.message }, `warning: ${err.message}`),
  );

  const bound = await sim.start();
  print(
    'listening',
    { host: values.host, port: bound, units: sim.unitIds, map: map.name },
    `listening on ${values.host}:${bound}, units ${sim.unitIds.join(', ')}, map ${map.name}, ` +
      `${capacityKwh} kWh, ±${maxKw} kW`,
  );
  const timer =
    reportS > 0
      ? setInterval(() => {
          for (const id of sim.unitIds) report(id, 'state', 'state');
        }, reportS * 1000)
      : null;

  controlled(
    (signal) => {
      if (timer) clearInterval(timer);
      print('closing', { reason: signal }, `${signal}: closing`);
      return sim.close();
    },
    (words, quit) => command(sim, words, report, print, quit),
    print,
  );
}

if (require.main === module) runCli('qe-sim-battery', USAGE, main);
