/**
 * The simulated battery's types: its options and what it reports (state, writes, setpoint
 * changes, power-on registers), the Modbus exception it answers with, `freePort`, the
 * options checked and resolved with their defaults (`resolveOptions`), and the internal
 * shape of one unit and of the register layout that device.ts and registers.ts share.
 */

import net, { type AddressInfo } from 'node:net';
import {
  GENERIC_MAP,
  type RegisterMap,
  validateRegisterMap,
} from '../../adapters/modbus/register-map';
import { type Clock, systemClock } from '../../clock';
import type { BatteryState } from '../../state-machine';

export interface BatterySimulatorOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port (default 0: a free port, see `port` after `start()`). */
  port?: number;
  /** Unit ids served, one independent battery each (default [1]). */
  unitIds?: number[];
  /** Register map (default `GENERIC_MAP`); its setpoint may be in W, kW or percent. */
  map?: RegisterMap;
  capacityKwh?: number;
  initialSocPercent?: number;
  maxChargeKw?: number;
  maxDischargeKw?: number;
  socMinPercent?: number;
  socMaxPercent?: number;
  /** Revert to idle after this long without a watchdog write (default 0: never). */
  watchdogTimeoutMs?: number;
  /** Answer a setpoint beyond the limits with exception 3 instead of clamping it. */
  rejectOutOfRange?: boolean;
  /** Store a setpoint beyond the limits as the clamped value, as some devices do (a read-back then differs). */
  clampRegister?: boolean;
  /** Plain read/write holding registers that mean nothing to the battery (default none). */
  extraRegisters?: { address: number; count: number };
  clock?: Clock;
  /** Integration step of the built-in timer, ms (default 1000; 0: no timer, only `tick()`). */
  tickMs?: number;
  /**
   * Quirk: the power moves toward what is asked at most this fast, kW per second of simulated
   * time (default 0: at once). A fault or an unavailable unit still drops to 0 at once.
   */
  followRateKwPerS?: number;
  /** Quirk: runs the opposite direction of what is asked (charge when told to discharge). */
  wrongWay?: boolean;
}

export type SimMode = 'idle' | 'charge' | 'discharge' | 'none' | 'invalid';
export type RegisterTable = 'holding' | 'input';

/** What one unit is doing, in engineering units (kW positive = charge). */
export interface SimBatteryState {
  unitId: number;
  socPercent: number;
  socKwh: number;
  /** The power that the setpoint register asks for. */
  requestedKw: number;
  /** The power the battery runs at (the request within the limits). */
  powerKw: number;
  /** `none`: the map has no mode register. */
  mode: SimMode;
  status: BatteryState;
  fault: boolean;
  unavailable: boolean;
  /** Simulated epoch ms of the last watchdog refresh. */
  lastWatchdogAt: number;
  /** The revert time in force (the map's revert register, enabled), ms; 0: none. */
  revertMs: number;
}

/** One write request that the simulator accepted. */
export interface SimWrite {
  unitId: number;
  address: number;
  values: number[];
  fc: 'FC6' | 'FC16';
  /** Simulated epoch ms. */
  at: number;
}

/** A change of the setpoint that a unit runs at, and why. */
export interface SetpointChange {
  unitId: number;
  /** Simulated epoch ms. */
  at: number;
  /** The power the setpoint asks for, kW positive = charge. */
  requestedKw: number;
  /** The power the battery runs at right after (within its limits and mode). */
  powerKw: number;
  /** A client's write, the watchdog revert, a device restart, or `setRegister` by a test. */
  cause: 'write' | 'revert' | 'restart' | 'register';
}

/** A register value that a restarted device comes back with (all units, or `unitId`'s). */
export interface PowerOnRegister {
  unitId?: number;
  address: number;
  value: number;
  table?: RegisterTable;
}

/** An error that the server sends back as a Modbus exception response. */
export class ModbusException extends Error {
  constructor(
    readonly modbusErrorCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ModbusException';
  }
}

export const ILLEGAL_DATA_ADDRESS = 2;
export const ILLEGAL_DATA_VALUE = 3;

export type Field =
  | 'setpoint'
  | 'mode'
  | 'watchdog'
  | 'soc'
  | 'power'
  | 'status'
  | 'scale-factor'
  | 'revert-time'
  | 'revert-enable'
  | 'extra';

export interface Slot {
  field: Field;
  /** First address of the value this register belongs to, and how many registers it has. */
  start: number;
  count: number;
  writable: boolean;
}

export interface Unit {
  id: number;
  holding: Map<number, number>;
  input: Map<number, number>;
  socKwh: number;
  requestedKw: number;
  powerKw: number;
  fault: boolean;
  unavailable: boolean;
  lastWatchdogAt: number;
  /** The last write that starts the revert timer's countdown again (setpoint, mode, timer). */
  revertSince: number;
  writes: SimWrite[];
  history: SetpointChange[];
  /** Gets no answer (the whole device may be silent too). */
  silent: boolean;
}

/** Tolerance of the SoC limits and of out-of-range setpoints. */
export const EPS = 1e-9;

/** A free TCP port on `host`: bind port 0, read the port, close. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function exception(code: number, message: string): ModbusException {
  return new ModbusException(code, message);
}

/** The options without the server's and the map's, with their defaults. */
export type ResolvedOptions = Required<
  Omit<BatterySimulatorOptions, 'host' | 'port' | 'unitIds' | 'map' | 'extraRegisters'>
>;

/** The battery's options when not given. */
const DEFAULTS: ResolvedOptions = {
  capacityKwh: 100,
  initialSocPercent: 50,
  maxChargeKw: 50,
  maxDischargeKw: 50,
  socMinPercent: 5,
  socMaxPercent: 95,
  watchdogTimeoutMs: 0,
  rejectOutOfRange: false,
  clampRegister: false,
  clock: systemClock,
  tickMs: 1000,
  followRateKwPerS: 0,
  wrongWay: false,
};

/**
 * Checks the options, in this order: the map, the port, the unit ids, the battery's numbers
 * (a RangeError naming what is wrong), and fills in the defaults.
 */
export function resolveOptions(options: BatterySimulatorOptions): {
  map: RegisterMap;
  host: string;
  port: number;
  unitIds: number[];
  opts: ResolvedOptions;
} {
  const map = validateRegisterMap(options.map ?? GENERIC_MAP);
  if (map.telemetry.power && !['W', 'kW'].includes(map.telemetry.power.unit)) {
    throw new RangeError('the simulator needs telemetry.power in W or kW');
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${options.port}`);
  }
  const ids = options.unitIds ?? [1];
  if (ids.length === 0) throw new RangeError('unitIds: serve at least one unit id');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id > 255) {
      throw new RangeError(`unitIds: ${id} is not a unit id (0 to 255)`);
    }
  }
  if (new Set(ids).size !== ids.length) throw new RangeError('unitIds: duplicate unit id');
  const o: ResolvedOptions = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof ResolvedOptions)[]) {
    const v = options[k];
    if (v !== undefined && v !== null) Object.assign(o, { [k]: v });
  }
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new RangeError(message);
  };
  for (const k of ['capacityKwh', 'maxChargeKw', 'maxDischargeKw'] as const)
    check(o[k] > 0, `${k} must be > 0, got ${o[k]}`);
  for (const k of ['watchdogTimeoutMs', 'tickMs', 'followRateKwPerS'] as const)
    check(o[k] >= 0, `${k} must be >= 0, got ${o[k]}`);
  check(
    o.socMinPercent >= 0 && o.socMinPercent < o.socMaxPercent && o.socMaxPercent <= 100,
    'SoC limits: need 0 <= socMinPercent < socMaxPercent <= 100',
  );
  check(
    o.initialSocPercent >= 0 && o.initialSocPercent <= 100,
    `initialSocPercent must be 0 to 100, got ${o.initialSocPercent}`,
  );
  return { map, host: options.host ?? '127.0.0.1', port, unitIds: [...ids], opts: o };
}
