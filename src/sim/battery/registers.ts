/**
 * The simulated battery's registers: the layout that its register map gives (which field
 * each holding and input register belongs to, how many registers a value takes, whether a
 * client may write it; two fields on one address are refused) and reading and writing values
 * in one unit's registers (words, scale factors, the setpoint in kW, the mode). No I/O.
 */

import {
  decodeValue,
  encodeValue,
  registerValueToSetpoint,
  setpointToRegisterValue,
} from '../../adapters/modbus/codec';
import {
  type RegisterMap,
  type RegisterSpec,
  registerCount,
} from '../../adapters/modbus/register-map';
import { revertRegisters } from '../battery-revert';
import type {
  BatterySimulatorOptions,
  Field,
  RegisterTable,
  ResolvedOptions,
  SimMode,
  Slot,
} from './types';

/** A unit's register tables: address -> raw 16-bit value. */
export type UnitRegisters = Record<RegisterTable, Map<number, number>>;

export class Registers {
  /** Per table, the field of each register the map gives. */
  readonly layout: Record<RegisterTable, Map<number, Slot>> = {
    holding: new Map(),
    input: new Map(),
  };

  constructor(
    readonly map: RegisterMap,
    private readonly opts: ResolvedOptions,
    extra: BatterySimulatorOptions['extraRegisters'],
  ) {
    const m = this.map;
    const add = (
      table: RegisterTable,
      start: number,
      count: number,
      field: Field,
      writable: boolean,
    ) => {
      for (let a = start; a < start + count; a++) {
        const had = this.layout[table].get(a);
        if (had && !(had.field === 'scale-factor' && field === 'scale-factor')) {
          throw new RangeError(
            `register map ${m.name}: ${table} register ${a} is both ${had.field} and ${field}`,
          );
        }
        this.layout[table].set(a, { field, start, count, writable });
      }
    };
    const spec = (s: RegisterSpec, field: Field, writable: boolean) => {
      const table = s.table ?? 'holding';
      add(table, s.address, registerCount(s.type), field, writable);
      if (s.scaleFactorAddress !== undefined)
        add(table, s.scaleFactorAddress, 1, 'scale-factor', false);
    };
    spec(m.setpoint, 'setpoint', true);
    if (m.mode) add('holding', m.mode.address, 1, 'mode', true);
    if (m.watchdog) add('holding', m.watchdog.address, 1, 'watchdog', true);
    for (const r of revertRegisters(m.revert)) add('holding', r.start, r.count, r.field, true);
    if (m.telemetry.soc) spec(m.telemetry.soc, 'soc', false);
    if (m.telemetry.power) spec(m.telemetry.power, 'power', false);
    if (m.telemetry.status) spec(m.telemetry.status, 'status', false);
    if (extra) {
      if (!(Number.isInteger(extra.address) && Number.isInteger(extra.count) && extra.count > 0)) {
        throw new RangeError('extraRegisters: address and count must be integers, count > 0');
      }
      for (let a = extra.address; a < extra.address + extra.count; a++)
        add('holding', a, 1, 'extra', true);
    }
  }

  private rated(): { charge: number; discharge: number } {
    return { charge: this.opts.maxChargeKw, discharge: this.opts.maxDischargeKw };
  }

  encodeSetpoint(u: UnitRegisters, kw: number): number[] {
    const sp = this.map.setpoint;
    return encodeValue(setpointToRegisterValue(kw, sp, this.rated()), sp, this.sf(u, sp));
  }

  /** The setpoint registers' words as signed kW (positive = charge). */
  decodeSetpoint(u: UnitRegisters, words: number[]): number {
    const sp = this.map.setpoint;
    const kw = registerValueToSetpoint(decodeValue(words, sp, this.sf(u, sp)), sp, this.rated());
    return kw === 0 ? 0 : kw;
  }

  sf(u: UnitRegisters, spec: RegisterSpec): number {
    if (spec.scaleFactorAddress === undefined) return 0;
    const raw = u[spec.table ?? 'holding'].get(spec.scaleFactorAddress) ?? 0;
    return raw > 0x7fff ? raw - 0x10000 : raw;
  }

  words(u: UnitRegisters, spec: RegisterSpec): number[] {
    const t = u[spec.table ?? 'holding'];
    return Array.from({ length: registerCount(spec.type) }, (_, i) => t.get(spec.address + i) ?? 0);
  }

  setWords(u: UnitRegisters, spec: RegisterSpec, words: number[]): void {
    const t = u[spec.table ?? 'holding'];
    words.forEach((w, i) => {
      t.set(spec.address + i, w & 0xffff);
    });
  }

  modeOf(u: UnitRegisters): SimMode {
    const m = this.map.mode;
    if (!m) return 'none';
    const raw = u.holding.get(m.address);
    if (raw === m.values.idle) return 'idle';
    if (raw === m.values.charge) return 'charge';
    if (raw === m.values.discharge) return 'discharge';
    return 'invalid';
  }
}
