/**
 * The simulated battery as a device, without its Modbus server: one independent battery per
 * unit id in the registers of its map (registers.ts), the power it runs at (the request
 * within its limits, mode, SoC limits and quirks), the SoC integrated over simulated time
 * (`tick`), the telemetry registers that follow, a client's write checked and applied, and
 * the watchdog and revert timer. simulator.ts puts a Modbus TCP server and the test switches
 * on top (`BatterySimulator` extends this class).
 *
 * What the simulator takes as given (documented device behaviour it imitates):
 * - Reads and writes must stay on known registers: a block that covers an unknown address is
 *   refused whole (exception 2), like most inverters; a write that covers only one word of a
 *   two-register value is refused too (exception 2).
 * - Telemetry and scale-factor registers are read-only (a write is exception 2); the mode
 *   register takes only the map's three values (anything else is exception 3).
 * - A setpoint beyond the limits is accepted and clamped (as real devices do), unless
 *   `rejectOutOfRange`, which answers exception 3 and leaves the registers as they were.
 * - Watchdog (`watchdogTimeoutMs` > 0): while the battery is asked to run (setpoint not 0 or
 *   mode not idle), it reverts to idle (setpoint 0, mode idle) once it has gone that long
 *   without a write to the map's watchdog register (or, for a map without one, without a
 *   setpoint or mode write). The countdown starts at the latest of the last watchdog write
 *   and the moment the battery was last asked to run after being idle.
 * - Revert timer (the map's `revert` register, e.g. SunSpec WSetRvrtTms / InOutWRte_RvrtTms;
 *   src/sim/battery-revert.ts): once a client writes a time (and the enable, where the map
 *   has one), a battery asked to run goes back to setpoint 0 / idle when no setpoint or mode
 *   write comes for that long (cause 'revert'); 0 turns it off; a restart powers it on at 0.
 *
 * Quirks, for compliance tests (`setQuirks` switches them while running): `followRateKwPerS`
 * (the power ramps toward the request at that rate instead of at once) and `wrongWay` (it
 * runs the opposite direction of what it is asked, within its limits).
 */

import { EventEmitter } from 'node:events';
import { encodeValue, orient, toWords } from '../../adapters/modbus/codec';
import {
  type RegisterMap,
  type RegisterSpec,
  registerCount,
} from '../../adapters/modbus/register-map';
import { BatteryState } from '../../state-machine';
import { powerOnRevert, revertDeadline, touchesRevert } from '../battery-revert';
import { Registers } from './registers';
import {
  type BatterySimulatorOptions,
  EPS,
  exception,
  ILLEGAL_DATA_ADDRESS,
  ILLEGAL_DATA_VALUE,
  type RegisterTable,
  type ResolvedOptions,
  resolveOptions,
  type SetpointChange,
  type SimWrite,
  type Slot,
  type Unit,
} from './types';

export class BatteryDevice extends EventEmitter {
  readonly map: RegisterMap;
  readonly host: string;
  readonly unitIds: readonly number[];
  protected readonly opts: ResolvedOptions;
  /** The port asked for (0: a free one). */
  protected readonly requestedPort: number;
  protected readonly units = new Map<number, Unit>();
  protected readonly regs: Registers;
  /** Simulated time = clock + offset; `tick(ms)` moves the offset. */
  protected offset = 0;
  protected lastAt: number;

  constructor(options: BatterySimulatorOptions = {}) {
    super();
    const r = resolveOptions(options);
    this.map = r.map;
    this.host = r.host;
    this.requestedPort = r.port;
    this.unitIds = r.unitIds;
    this.opts = r.opts;
    this.regs = new Registers(this.map, this.opts, options.extraRegisters);
    this.lastAt = this.now();
    for (const id of this.unitIds) this.units.set(id, this.newUnit(id));
  }

  protected newUnit(id: number): Unit {
    const u: Unit = {
      id,
      holding: new Map(),
      input: new Map(),
      socKwh: (this.opts.initialSocPercent / 100) * this.opts.capacityKwh,
      requestedKw: 0,
      powerKw: 0,
      fault: false,
      unavailable: false,
      lastWatchdogAt: this.now(),
      revertSince: this.now(),
      writes: [],
      history: [],
      silent: false,
    };
    for (const table of ['holding', 'input'] as const) {
      for (const a of this.regs.layout[table].keys()) u[table].set(a, 0);
    }
    this.resetControl(u);
    return u;
  }

  /** Setpoint 0, mode idle, and the telemetry that follows; recorded when there is a cause. */
  protected resetControl(u: Unit, cause?: 'revert' | 'restart', at = this.now()): void {
    this.regs.setWords(u, this.map.setpoint, this.regs.encodeSetpoint(u, 0));
    if (this.map.mode) u.holding.set(this.map.mode.address, this.map.mode.values.idle);
    u.requestedKw = 0;
    if (cause === 'restart') powerOnRevert(this.map.revert, u.holding);
    this.refresh(u);
    if (cause) this.record(u, cause, at);
  }

  protected record(u: Unit, cause: SetpointChange['cause'], at = this.now()): void {
    const change: SetpointChange = {
      unitId: u.id,
      at,
      requestedKw: u.requestedKw,
      powerKw: u.powerKw,
      cause,
    };
    u.history.push(change);
    if (u.history.length > 1000) u.history.splice(0, u.history.length - 1000);
    this.emit('applied', change);
  }

  /** A raw register set from outside the protocol; the battery follows its setpoint. */
  protected applyRegister(u: Unit, address: number, value: number, table: RegisterTable): void {
    const before = u.requestedKw;
    u[table].set(address, value & 0xffff);
    u.requestedKw = this.regs.decodeSetpoint(u, this.regs.words(u, this.map.setpoint));
    this.refresh(u);
    if (u.requestedKw !== before) this.record(u, 'register');
  }

  protected socPercent(u: Unit): number {
    return (u.socKwh / this.opts.capacityKwh) * 100;
  }

  /** The power the battery runs at now, kW positive = charge. */
  protected actualKw(u: Unit): number {
    const o = this.opts;
    if (u.fault || u.unavailable) return 0;
    let p = Math.min(o.maxChargeKw, Math.max(-o.maxDischargeKw, u.requestedKw));
    const mode = this.regs.modeOf(u);
    if (mode === 'idle' || mode === 'invalid') p = 0;
    if (mode === 'charge' && p < 0) p = 0;
    if (mode === 'discharge' && p > 0) p = 0;
    if (o.wrongWay) p = Math.min(o.maxChargeKw, Math.max(-o.maxDischargeKw, -p));
    const soc = this.socPercent(u);
    if (p > 0 && soc >= o.socMaxPercent - EPS) p = 0;
    if (p < 0 && soc <= o.socMinPercent + EPS) p = 0;
    return p === 0 ? 0 : p;
  }

  protected statusOf(u: Unit): BatteryState {
    if (u.fault) return BatteryState.FAULTED;
    if (u.unavailable) return BatteryState.UNAVAILABLE;
    if (u.powerKw > 0) return BatteryState.CHARGING;
    if (u.powerKw < 0) return BatteryState.DISCHARGING;
    return BatteryState.IDLE;
  }

  /**
   * Recomputes the power (moving toward it at `followRateKwPerS` over `ms` of simulated time,
   * when that quirk is on) and writes the telemetry registers.
   */
  protected refresh(u: Unit, ms = 0): void {
    const target = this.actualKw(u);
    const rate = this.opts.followRateKwPerS;
    if (rate > 0 && !u.fault && !u.unavailable) {
      const step = (rate * ms) / 1000;
      const next =
        target > u.powerKw
          ? Math.min(target, u.powerKw + step)
          : Math.max(target, u.powerKw - step);
      // The SoC limits hold whatever the ramp.
      const soc = this.socPercent(u);
      const o = this.opts;
      u.powerKw =
        (next > 0 && soc >= o.socMaxPercent - EPS) || (next < 0 && soc <= o.socMinPercent + EPS)
          ? 0
          : next;
    } else u.powerKw = target;
    const t = this.map.telemetry;
    const put = (spec: RegisterSpec, value: number) => {
      try {
        this.regs.setWords(u, spec, encodeValue(value, spec, this.regs.sf(u, spec)));
      } catch (err) {
        this.emit('warning', err);
      }
    };
    if (t.soc) put(t.soc, this.socPercent(u));
    if (t.power) put(t.power, orient(u.powerKw, t.power.sign) * (t.power.unit === 'W' ? 1000 : 1));
    if (t.status) {
      const state = this.statusOf(u);
      const code = Object.entries(t.status.states).find(([, s]) => s === state)?.[0];
      // A status code is a raw number: no scale.
      if (code !== undefined && Number.isInteger(Number(code))) {
        try {
          this.regs.setWords(u, t.status, toWords(Number(code), t.status.type, t.status.wordOrder));
        } catch (err) {
          this.emit('warning', err);
        }
      }
    }
  }

  protected active(u: Unit): boolean {
    const mode = this.regs.modeOf(u);
    return u.requestedKw !== 0 || (mode !== 'idle' && mode !== 'none');
  }

  protected write(u: Unit, address: number, values: number[], fc: 'FC6' | 'FC16'): void {
    const where = `unit ${u.id}`;
    // Check the whole request before changing anything.
    const touched = new Map<number, Slot>();
    for (let a = address; a < address + values.length; a++) {
      const slot = this.regs.layout.holding.get(a);
      if (!slot) throw exception(ILLEGAL_DATA_ADDRESS, `no holding register ${a} on ${where}`);
      if (!slot.writable) {
        throw exception(
          ILLEGAL_DATA_ADDRESS,
          `holding register ${a} (${slot.field}) is read-only on ${where}`,
        );
      }
      touched.set(slot.start, slot);
    }
    for (const slot of touched.values()) {
      if (slot.start < address || slot.start + slot.count > address + values.length) {
        throw exception(
          ILLEGAL_DATA_ADDRESS,
          `${slot.field} takes registers ${slot.start}-${slot.start + slot.count - 1} together on ${where}`,
        );
      }
    }
    const at = (a: number) => values[a - address] as number;
    const sp = this.map.setpoint;
    let newKw: number | undefined;
    if (touched.has(sp.address)) {
      const words = Array.from({ length: registerCount(sp.type) }, (_, i) => at(sp.address + i));
      newKw = this.regs.decodeSetpoint(u, words);
      if (!Number.isFinite(newKw))
        throw exception(ILLEGAL_DATA_VALUE, `setpoint is not a number on ${where}`);
      if (
        this.opts.rejectOutOfRange &&
        (newKw > this.opts.maxChargeKw + EPS || newKw < -this.opts.maxDischargeKw - EPS)
      ) {
        throw exception(
          ILLEGAL_DATA_VALUE,
          `setpoint ${newKw} kW is outside -${this.opts.maxDischargeKw}..${this.opts.maxChargeKw} kW on ${where}`,
        );
      }
    }
    const mode = this.map.mode;
    if (mode && touched.has(mode.address)) {
      const v = at(mode.address);
      if (!Object.values(mode.values).includes(v)) {
        throw exception(
          ILLEGAL_DATA_VALUE,
          `mode ${v} is not one of ${JSON.stringify(mode.values)} on ${where}`,
        );
      }
    }

    // Accepted: integrate up to now at the old power, then apply.
    this.tick(0);
    const now = this.now();
    const wasActive = this.active(u);
    values.forEach((v, i) => {
      u.holding.set(address + i, v & 0xffff);
    });
    if (this.opts.clampRegister && newKw !== undefined) {
      const clamped = Math.max(-this.opts.maxDischargeKw, Math.min(this.opts.maxChargeKw, newKw));
      if (clamped !== newKw) this.regs.setWords(u, sp, this.regs.encodeSetpoint(u, clamped));
    }
    const record: SimWrite = { unitId: u.id, address, values: [...values], fc, at: now };
    u.writes.push(record);
    if (u.writes.length > 1000) u.writes.splice(0, u.writes.length - 1000);
    this.emit('write', record);
    if (newKw !== undefined) {
      u.requestedKw = newKw;
      this.emit('setpoint', u.id, u.requestedKw, this.regs.words(u, sp));
    }
    if (mode && touched.has(mode.address))
      this.emit('mode', u.id, this.regs.modeOf(u), at(mode.address));

    const wd = this.map.watchdog;
    if (wd && touched.has(wd.address)) {
      u.lastWatchdogAt = now;
      this.emit('watchdog', u.id, at(wd.address));
    } else if (!wd && (newKw !== undefined || (mode && touched.has(mode.address)))) {
      u.lastWatchdogAt = now;
    }
    if (!wasActive && this.active(u)) u.lastWatchdogAt = Math.max(u.lastWatchdogAt, now);
    if (
      newKw !== undefined ||
      (mode && touched.has(mode.address)) ||
      touchesRevert(this.map.revert, address, values.length)
    )
      u.revertSince = now;
    this.refresh(u);
    if (newKw !== undefined || (mode && touched.has(mode.address))) this.record(u, 'write');
  }

  // -------------------------------------------------------------------------------------
  // Time

  protected now(): number {
    return this.opts.clock.now() + this.offset;
  }

  /**
   * Integrates every battery up to the present. `ms`: first move the simulated time forward
   * by that much (deterministic; tests use this and never sleep). `tick()` alone follows the
   * clock (the timer calls it every `tickMs`).
   */
  tick(ms?: number): void {
    if (ms !== undefined) {
      if (!(Number.isFinite(ms) && ms >= 0))
        throw new RangeError(`tick: ms must be >= 0, got ${ms}`);
      this.offset += ms;
    }
    const to = this.now();
    const from = this.lastAt;
    if (to <= from) return;
    this.lastAt = to;
    for (const u of this.units.values()) this.advance(u, from, to);
  }

  protected advance(u: Unit, from: number, to: number): void {
    let t = from;
    const deadline = this.active(u) ? this.revertAt(u) : null;
    if (deadline !== null && deadline <= to) {
      if (deadline > t) {
        this.integrate(u, deadline - t);
        t = deadline;
      }
      this.resetControl(u, 'revert', deadline);
      this.emit('revert', u.id);
    }
    if (to > t) this.integrate(u, to - t);
  }

  /** The earliest of the watchdog's deadline and the revert timer's, or null. */
  protected revertAt(u: Unit): number | null {
    const timeout = this.opts.watchdogTimeoutMs;
    const wd = timeout > 0 ? u.lastWatchdogAt + timeout : null;
    const rv = revertDeadline(this.map.revert, u.holding, u.revertSince);
    return wd === null ? rv : rv === null ? wd : Math.min(wd, rv);
  }

  protected integrate(u: Unit, ms: number): void {
    const p = u.powerKw;
    if (p !== 0) {
      const o = this.opts;
      const next = u.socKwh + (p * ms) / 3_600_000;
      const max = Math.max(u.socKwh, (o.socMaxPercent / 100) * o.capacityKwh);
      const min = Math.min(u.socKwh, (o.socMinPercent / 100) * o.capacityKwh);
      u.socKwh = Math.min(max, Math.max(min, next));
    }
    this.refresh(u, ms);
  }

  protected unit(unitId: number): Unit {
    const u = this.units.get(unitId);
    if (!u)
      throw new RangeError(
        `the simulator does not serve unit ${unitId} (it serves ${this.unitIds.join(', ')})`,
      );
    return u;
  }

  protected select(unitId?: number): Unit[] {
    return unitId === undefined ? [...this.units.values()] : [this.unit(unitId)];
  }
}
