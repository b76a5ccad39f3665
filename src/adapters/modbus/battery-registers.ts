/**
 * One battery on a Modbus bus as registers: its configuration (`BatteryConfig`), what the
 * adapter keeps about it (`Battery`: the setpoint in force, scale factors, timers, last SoC),
 * and the register traffic itself: a setpoint written (mode, setpoint, read-back) and a
 * telemetry read (SoC, power, status, SunSpec scale factors). No timers and no site here:
 * ModbusBatteries (batteries.ts) decides when to write and poll, and what the answers mean
 * for the asset's state machine and commands.
 */

import type { OnDeviation } from '../../compliance';
import { BatteryState } from '../../state-machine';
import { AdapterError, type AdapterResult } from '../registry';
import {
  decodeValue,
  EncodeError,
  encodeValue,
  orient,
  readBackMatches,
  registerValueToSetpoint,
  setpointToRegisterValue,
} from './codec';
import {
  type ModbusConnection,
  ModbusDeviceError,
  ModbusExpiredError,
  ModbusTransportError,
} from './connection';
import { type RegisterMap, type RegisterSpec, registerCount } from './register-map';

export interface BatteryConfig {
  assetId: string;
  /** Modbus unit id (slave id), 1 to 247 (0 and 255 are accepted for gateways). */
  unitId: number;
  map: RegisterMap;
  ratedChargeKw: number;
  ratedDischargeKw: number;
  /** Telemetry poll period, ms. Default 5000. */
  pollIntervalMs?: number;
  /**
   * Re-write the setpoint in force this often (below the device's revert timeout); 0 = never.
   * Default: revertSeconds / 3 when revertSeconds is set, else 0. Must be below revertSeconds.
   */
  watchdogSeconds?: number;
  /**
   * The failsafe: the device reverts to its safe setting when no one writes a setpoint for
   * this long. With a map that has a `revert` register, written to the device on every
   * connect (a whole number of seconds); without one, the device's own configured timeout,
   * which this adapter cannot set: it only keeps the watchdog below it.
   */
  revertSeconds?: number;
  /** At or below this SoC (last reading) a discharge setpoint is written as 0. */
  socMinPercent?: number;
  /** At or above this SoC (last reading) a charge setpoint is written as 0. */
  socMaxPercent?: number;
  /**
   * When the measured power does not follow the setpoint in force (compliance): 'report'
   * (default: ASSET_DEVIATION) or 'reapply' (also re-apply it, once per deviation).
   */
  onDeviation?: OnDeviation;
}

export interface Telemetry {
  assetId: string;
  unitId: number;
  /** ISO time of the reading. */
  at: string;
  socPercent?: number;
  /** Measured power, kW, positive = charging. */
  powerKw?: number;
  statusCode?: number;
  state?: string;
}

export interface Active {
  /** Signed kW, positive = charge, as last accepted. */
  kw: number;
  validUntil: number | null;
}

export interface Battery {
  config: BatteryConfig;
  /** The watchdog period in force, seconds (0: none). */
  watchdogSeconds: number;
  /** Why the revert timer could not be written at the last connect (null: written, or not asked). */
  revertError: string | null;
  active: Active | null;
  /** Scale factors read from the device (SunSpec), by register address. */
  scaleFactors: Map<number, number>;
  limitKw: number | null;
  lastOk: number;
  pollTimer: NodeJS.Timeout | null;
  watchdogTimer: NodeJS.Timeout | null;
  counter: number;
  polling: boolean;
  /** Last SoC read, percent. */
  soc: number | null;
}

/**
 * Writes mode and setpoint, then reads the setpoint back. Throws AdapterError when
 * retryable; a device exception, a value the map cannot encode or a wrong read-back is final.
 */
export async function writeSetpoint(
  connection: ModbusConnection,
  b: Battery,
  kw: number,
  notAfter?: number,
  onWritten?: () => void,
): Promise<AdapterResult> {
  const { map, unitId, assetId } = b.config;
  const spec = map.setpoint;
  try {
    const sf =
      spec.scaleFactorAddress === undefined
        ? 0
        : await scaleFactor(connection, b, spec.scaleFactorAddress);
    const rated = { charge: b.config.ratedChargeKw, discharge: b.config.ratedDischargeKw };
    const value = setpointToRegisterValue(kw, spec, rated);
    const words = encodeValue(value, spec, sf);
    if (map.mode) {
      const m = map.mode.values;
      const mode = kw > 0 ? m.charge : kw < 0 ? m.discharge : m.idle;
      await connection.write(
        unitId,
        map.mode.address,
        [mode],
        map.mode.function ?? 'FC16',
        notAfter === undefined ? {} : { notAfter },
      );
    }
    await connection.write(
      unitId,
      spec.address,
      words,
      spec.function ?? 'FC16',
      notAfter === undefined ? {} : { notAfter },
    );
    onWritten?.();
    if (spec.readBack === false) return { success: true };
    const back = await connection.readHolding(unitId, spec.address, registerCount(spec.type));
    // The register must hold what was written, as its type can hold it (float32: exactly).
    if (!readBackMatches(value, back, spec, sf)) {
      const readKw = registerValueToSetpoint(decodeValue(back, spec, sf), spec, rated);
      return {
        success: false,
        final: true,
        error: `battery ${assetId}: wrote ${kw} kW but read back ${readKw} kW at register ${spec.address}`,
      };
    }
    return { success: true };
  } catch (err) {
    if (err instanceof ModbusDeviceError)
      return { success: false, final: true, error: `battery ${assetId}: ${err.message}` };
    if (err instanceof EncodeError)
      return { success: false, final: true, error: `battery ${assetId}: ${err.message}` };
    if (err instanceof ModbusExpiredError)
      return { success: false, expired: true, error: `battery ${assetId}: ${err.message}` };
    throw new AdapterError(`battery ${assetId}: ${(err as Error).message}`, {
      cause: err,
      timedOut: err instanceof ModbusTransportError && err.timeout,
    });
  }
}

/** A SunSpec scale factor, read once per connection (`b.scaleFactors`, cleared on connect). */
async function scaleFactor(
  connection: ModbusConnection,
  b: Battery,
  address: number,
): Promise<number> {
  const known = b.scaleFactors.get(address);
  if (known !== undefined) return known;
  const [w] = await connection.readHolding(b.config.unitId, address, 1);
  const sf = w === undefined ? 0 : w > 0x7fff ? w - 0x10000 : w;
  if (sf === -32768)
    throw new EncodeError(
      `scale factor at register ${address} is not implemented by the device (0x8000)`,
    );
  b.scaleFactors.set(address, sf);
  return sf;
}

async function readSpec(
  connection: ModbusConnection,
  b: Battery,
  spec: RegisterSpec,
): Promise<number> {
  const n = registerCount(spec.type);
  const words =
    spec.table === 'input'
      ? await connection.readInput(b.config.unitId, spec.address, n)
      : await connection.readHolding(b.config.unitId, spec.address, n);
  const sf =
    spec.scaleFactorAddress === undefined
      ? 0
      : await scaleFactor(connection, b, spec.scaleFactorAddress);
  return decodeValue(words, spec, sf);
}

/**
 * Reads SoC, power and status once, as the map says (`b.soc` follows the SoC read), and the
 * state they tell: the map's status code if it has one, else the sign of the power.
 */
export async function readTelemetry(
  connection: ModbusConnection,
  b: Battery,
  now: number,
): Promise<{ telemetry: Telemetry; state: string | undefined }> {
  const { map, assetId, unitId } = b.config;
  const t: Telemetry = { assetId, unitId, at: new Date(now).toISOString() };
  if (map.telemetry.soc) {
    t.socPercent = await readSpec(connection, b, map.telemetry.soc);
    b.soc = t.socPercent;
  }
  if (map.telemetry.power) {
    const p = map.telemetry.power;
    const v = await readSpec(connection, b, p);
    t.powerKw = orient(p.unit === 'W' ? v / 1000 : v, p.sign);
  }
  let state: string | undefined;
  if (map.telemetry.status) {
    const code = await readSpec(connection, b, map.telemetry.status);
    t.statusCode = code;
    state = map.telemetry.status.states[String(code)];
  }
  if (state === undefined && t.powerKw !== undefined) {
    state =
      t.powerKw > 1e-3
        ? BatteryState.CHARGING
        : t.powerKw < -1e-3
          ? BatteryState.DISCHARGING
          : BatteryState.IDLE;
  }
  return { telemetry: t, state };
}
