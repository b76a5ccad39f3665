/**
 * Register maps: how a battery inverter's Modbus registers carry a power setpoint and its
 * telemetry. Devices differ in addresses, data types, word order, scale and sign, so a map
 * is data that a user chooses or edits (JSON in the node's dialog), checked by
 * `validateRegisterMap` before anything is read or written.
 */

import { BatteryState } from '../../state-machine';

export type DataType = 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32';
/** `high-first`: the high word at the lower address (big-endian, "ABCD"); `low-first`: "CDAB". */
export type WordOrder = 'high-first' | 'low-first';
export type Sign = 'charge-positive' | 'discharge-positive';

/** One value in one or two registers. Engineering value = raw x scale (x 10^sf). */
export interface RegisterSpec {
  /** 0-based register address (the PDU address: 40001 in "4xxxx" notation is 0). */
  address: number;
  type: DataType;
  wordOrder?: WordOrder;
  /** Multiplier from the raw number to the unit (default 1). */
  scale?: number;
  /** SunSpec style: an int16 register holding a power-of-ten exponent applied on top of `scale`. */
  scaleFactorAddress?: number;
  /** Which table a reading comes from (default holding registers, FC3; input registers: FC4). */
  table?: 'holding' | 'input';
}

export interface SetpointSpec extends RegisterSpec {
  /** FC16 (write multiple registers, default) or FC6 (write single register, 16-bit types only). */
  function?: 'FC16' | 'FC6';
  /** What the number means: W, kW, or percent of the battery's rated power in that direction. */
  unit: 'W' | 'kW' | 'percent';
  /** Which direction a positive number means. */
  sign: Sign;
  /** Read the register back after writing and compare (default true). */
  readBack?: boolean;
}

export interface ModeSpec {
  address: number;
  function?: 'FC16' | 'FC6';
  /** Register values that select charging, discharging and idle. */
  values: { charge: number; discharge: number; idle: number };
}

export interface PowerSpec extends RegisterSpec {
  unit: 'W' | 'kW';
  sign: Sign;
}

export interface StatusSpec extends RegisterSpec {
  /** Status code (as a string key) -> battery state. Codes not listed leave the state alone. */
  states: Record<string, BatteryState>;
}

export interface WatchdogSpec {
  address: number;
  function?: 'FC16' | 'FC6';
  /** 'counter' writes an increasing number each time; a number writes that value. */
  value: 'counter' | number;
}

/**
 * The device's own failsafe: a revert timer. When no setpoint is written for that many
 * seconds, the device drops the setpoint in force and goes back to its safe (reversion)
 * setting by itself, whether or not anyone is still connected. The adapter writes the time
 * (and the enable value) on every connect when a battery has `revertSeconds`.
 */
export interface RevertSpec {
  /** Register(s) of the revert time; 0 usually means "no reversion". */
  address: number;
  type: 'uint16' | 'uint32';
  wordOrder?: WordOrder;
  /** The time is in seconds (the only unit supported). */
  unit: 's';
  /** FC16 (default) or FC6 (16-bit only). */
  function?: 'FC16' | 'FC6';
  /** A register that turns the reversion on, and the value that does (SunSpec: 1). */
  enable?: { address: number; value: number; function?: 'FC16' | 'FC6' };
}

export interface RegisterMap {
  name: string;
  description?: string;
  /** Where the register layout comes from (a public document), for maps shipped here. */
  source?: string;
  setpoint: SetpointSpec;
  mode?: ModeSpec;
  telemetry: {
    /** State of charge, percent. */
    soc?: RegisterSpec;
    power?: PowerSpec;
    status?: StatusSpec;
  };
  watchdog?: WatchdogSpec;
  revert?: RevertSpec;
}

export class RegisterMapError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'RegisterMapError';
  }
}

/** The error for `field` of map `name`: `register map <name>: <field> <problem>`. */
function bad(name: string, field: string, problem: string): RegisterMapError {
  return new RegisterMapError(`register map ${name}: ${field} ${problem}`, field);
}

const TYPES: readonly DataType[] = ['int16', 'uint16', 'int32', 'uint32', 'float32'];
const STATES = new Set<string>(Object.values(BatteryState));

/** Registers a type takes: 1 or 2. */
export function registerCount(type: DataType): 1 | 2 {
  return type === 'int16' || type === 'uint16' ? 1 : 2;
}

function isAddress(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;
}

function checkSpec(spec: unknown, field: string, name: string): void {
  const where = `register map ${name}: ${field}`;
  if (!spec || typeof spec !== 'object') throw bad(name, field, 'must be an object');
  const s = spec as Record<string, unknown>;
  if (!isAddress(s.address))
    throw bad(
      name,
      `${field}.address`,
      `must be an integer from 0 to 65535, got ${JSON.stringify(s.address)}`,
    );
  if (!TYPES.includes(s.type as DataType))
    throw bad(
      name,
      `${field}.type`,
      `must be one of ${TYPES.join(', ')}, got ${JSON.stringify(s.type)}`,
    );
  if (s.wordOrder !== undefined && s.wordOrder !== 'high-first' && s.wordOrder !== 'low-first') {
    throw bad(
      name,
      `${field}.wordOrder`,
      `must be high-first or low-first, got ${JSON.stringify(s.wordOrder)}`,
    );
  }
  if (
    s.scale !== undefined &&
    !(typeof s.scale === 'number' && Number.isFinite(s.scale) && s.scale !== 0)
  ) {
    throw bad(name, `${field}.scale`, `must be a non-zero number, got ${JSON.stringify(s.scale)}`);
  }
  if (s.scaleFactorAddress !== undefined && !isAddress(s.scaleFactorAddress)) {
    throw bad(name, `${field}.scaleFactorAddress`, 'must be a register address');
  }
  if (s.table !== undefined && s.table !== 'holding' && s.table !== 'input') {
    throw bad(name, `${field}.table`, 'must be holding or input');
  }
  if ((s.address as number) + registerCount(s.type as DataType) - 1 > 65535) {
    throw new RegisterMapError(`${where} runs past register 65535`, `${field}.address`);
  }
}

function checkFunction(fn: unknown, type: DataType | 'uint16', field: string, name: string): void {
  if (fn === undefined) return;
  if (fn !== 'FC16' && fn !== 'FC6') throw bad(name, `${field}.function`, 'must be FC16 or FC6');
  if (fn === 'FC6' && registerCount(type) !== 1) {
    throw bad(name, `${field}.function`, `FC6 writes one register; a ${type} needs FC16`);
  }
}

/** Checks a map (from JSON or code); throws a RegisterMapError naming the field. */
export function validateRegisterMap(input: unknown): RegisterMap {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new RegisterMapError('a register map must be an object', '');
  }
  const m = input as Record<string, unknown>;
  const name = typeof m.name === 'string' && m.name !== '' ? m.name : '(unnamed)';
  checkSpec(m.setpoint, 'setpoint', name);
  const sp = m.setpoint as Record<string, unknown>;
  if (sp.unit !== 'W' && sp.unit !== 'kW' && sp.unit !== 'percent') {
    throw bad(name, 'setpoint.unit', `must be W, kW or percent, got ${JSON.stringify(sp.unit)}`);
  }
  if (sp.sign !== 'charge-positive' && sp.sign !== 'discharge-positive') {
    throw bad(
      name,
      'setpoint.sign',
      `must be charge-positive or discharge-positive, got ${JSON.stringify(sp.sign)}`,
    );
  }
  if (sp.table === 'input')
    throw new RegisterMapError(
      `register map ${name}: the setpoint must be a holding register (input registers cannot be written)`,
      'setpoint.table',
    );
  checkFunction(sp.function, sp.type as DataType, 'setpoint', name);
  if (m.mode !== undefined) {
    const mode = m.mode as Record<string, unknown>;
    if (!mode || !isAddress(mode.address))
      throw bad(name, 'mode.address', 'must be a register address');
    checkFunction(mode.function, 'uint16', 'mode', name);
    const v = mode.values as Record<string, unknown> | undefined;
    for (const k of ['charge', 'discharge', 'idle']) {
      const x = v?.[k];
      if (!(typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 65535)) {
        throw bad(name, `mode.values.${k}`, 'must be an integer from 0 to 65535');
      }
    }
  }
  const t = (m.telemetry ?? {}) as Record<string, unknown>;
  if (typeof t !== 'object') throw bad(name, 'telemetry', 'must be an object');
  if (t.soc !== undefined) checkSpec(t.soc, 'telemetry.soc', name);
  if (t.power !== undefined) {
    checkSpec(t.power, 'telemetry.power', name);
    const p = t.power as Record<string, unknown>;
    if (p.unit !== 'W' && p.unit !== 'kW')
      throw bad(name, 'telemetry.power.unit', 'must be W or kW');
    if (p.sign !== 'charge-positive' && p.sign !== 'discharge-positive')
      throw bad(name, 'telemetry.power.sign', 'must be charge-positive or discharge-positive');
  }
  if (t.status !== undefined) {
    checkSpec(t.status, 'telemetry.status', name);
    const states = (t.status as Record<string, unknown>).states;
    if (!states || typeof states !== 'object')
      throw bad(name, 'telemetry.status.states', 'must map codes to states');
    for (const [code, st] of Object.entries(states)) {
      if (!STATES.has(st as string)) {
        throw new RegisterMapError(
          `register map ${name}: telemetry.status.states[${JSON.stringify(code)}] must be one of ${[...STATES].join(', ')}, got ${JSON.stringify(st)}`,
          'telemetry.status.states',
        );
      }
    }
  }
  if (m.watchdog !== undefined) {
    const w = m.watchdog as Record<string, unknown>;
    if (!w || !isAddress(w.address))
      throw bad(name, 'watchdog.address', 'must be a register address');
    checkFunction(w.function, 'uint16', 'watchdog', name);
    if (
      !(
        w.value === 'counter' ||
        (typeof w.value === 'number' &&
          Number.isInteger(w.value) &&
          w.value >= 0 &&
          w.value <= 65535)
      )
    ) {
      throw bad(name, 'watchdog.value', `must be 'counter' or an integer from 0 to 65535`);
    }
  }
  if (m.revert !== undefined) checkRevert(m.revert, name);
  return input as RegisterMap;
}

function checkRevert(input: unknown, name: string): void {
  const where = `register map ${name}: revert`;
  if (!input || typeof input !== 'object' || Array.isArray(input))
    throw bad(name, 'revert', 'must be an object');
  const r = input as Record<string, unknown>;
  if (!isAddress(r.address))
    throw bad(
      name,
      'revert.address',
      `must be an integer from 0 to 65535, got ${JSON.stringify(r.address)}`,
    );
  if (r.type !== 'uint16' && r.type !== 'uint32')
    throw bad(
      name,
      'revert.type',
      `must be uint16 or uint32 (a time in seconds), got ${JSON.stringify(r.type)}`,
    );
  if (r.address + registerCount(r.type) - 1 > 65535)
    throw new RegisterMapError(`${where} runs past register 65535`, 'revert.address');
  if (r.wordOrder !== undefined && r.wordOrder !== 'high-first' && r.wordOrder !== 'low-first')
    throw bad(
      name,
      'revert.wordOrder',
      `must be high-first or low-first, got ${JSON.stringify(r.wordOrder)}`,
    );
  if (r.unit !== 's')
    throw bad(
      name,
      'revert.unit',
      `must be "s" (the revert time in seconds), got ${JSON.stringify(r.unit)}`,
    );
  checkFunction(r.function, r.type, 'revert', name);
  if (r.enable === undefined) return;
  const e = r.enable as Record<string, unknown>;
  if (!e || typeof e !== 'object' || Array.isArray(e))
    throw bad(name, 'revert.enable', 'must be an object');
  if (!isAddress(e.address))
    throw bad(
      name,
      'revert.enable.address',
      `must be an integer from 0 to 65535, got ${JSON.stringify(e.address)}`,
    );
  if (e.address >= r.address && e.address < r.address + registerCount(r.type))
    throw bad(name, 'revert.enable.address', `${e.address} is a register of the revert time`);
  if (
    !(typeof e.value === 'number' && Number.isInteger(e.value) && e.value >= 0 && e.value <= 65535)
  )
    throw bad(
      name,
      'revert.enable.value',
      `must be an integer from 0 to 65535, got ${JSON.stringify(e.value)}`,
    );
  checkFunction(e.function, 'uint16', 'revert.enable', name);
}

/**
 * The generic map, which the battery simulator (src/sim/battery.ts) implements:
 *
 * | register | what |
 * | 100-101 | setpoint, int32, W, high word first, positive = charge (FC16, read back) |
 * | 102 | mode: 0 idle, 1 charge, 2 discharge |
 * | 110 | watchdog: a counter the controller writes; the simulator reverts to idle without it |
 * | 200 | SoC, uint16, 0.1 % |
 * | 201-202 | measured power, int32, W, positive = charge |
 * | 203 | status: 0 idle, 1 charging, 2 discharging, 3 fault, 4 unavailable |
 */
export const GENERIC_MAP: RegisterMap = {
  name: 'generic',
  description: 'The simulator’s map: W setpoint as int32, SoC in 0.1 %, status codes.',
  setpoint: {
    address: 100,
    type: 'int32',
    wordOrder: 'high-first',
    unit: 'W',
    sign: 'charge-positive',
    function: 'FC16',
  },
  mode: { address: 102, values: { idle: 0, charge: 1, discharge: 2 } },
  telemetry: {
    soc: { address: 200, type: 'uint16', scale: 0.1 },
    power: {
      address: 201,
      type: 'int32',
      wordOrder: 'high-first',
      unit: 'W',
      sign: 'charge-positive',
    },
    status: {
      address: 203,
      type: 'uint16',
      states: {
        '0': BatteryState.IDLE,
        '1': BatteryState.CHARGING,
        '2': BatteryState.DISCHARGING,
        '3': BatteryState.FAULTED,
        '4': BatteryState.UNAVAILABLE,
      },
    },
  },
  watchdog: { address: 110, value: 'counter' },
};
