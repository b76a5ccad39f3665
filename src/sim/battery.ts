/**
 * A simulated battery inverter behind a Modbus TCP server (modbus-serial's `ServerTCP`).
 *
 * It keeps the registers of a register map (default: `GENERIC_MAP`), one independent battery
 * per unit id: the setpoint register is the power it is asked for, the actual power is that
 * request within the battery's limits, the state of charge integrates the actual power over
 * time, and the telemetry registers (SoC, measured power, status) follow. It answers like a
 * device: an address that the map does not know is exception 2 (illegal data address), a
 * unit id that it does not serve gets no answer at all (the client times out), and switches
 * make it stop answering (all units or one; the connection stays open) or report a fault.
 *
 * Faults that the field produces, for fault tests: `setSilent` (a unit, or the whole device,
 * that never answers), `restart` (the device reboots: every connection closes, nothing listens
 * for `downMs`, then it listens on the same port with its control registers at their power-on
 * values, setpoint 0, and optionally other power-on registers such as a new scale factor),
 * the watchdog revert below, and `setpointHistory` (every setpoint the battery took, with its
 * time and cause: a write, a revert, a restart) to count what was lost.
 *
 * Time: `tick(ms?)` integrates deterministically (tests move time with it and never sleep);
 * a timer calls `tick()` every `tickMs` to follow the clock. Every write first integrates up
 * to the present at the old power, so the energy is exact whatever the tick.
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
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type IServiceVector, ServerTCP } from 'modbus-serial';
import {
  decodeValue,
  encodeValue,
  orient,
  registerValueToSetpoint,
  setpointToRegisterValue,
  toWords,
} from '../adapters/modbus/codec';
import {
  GENERIC_MAP,
  type RegisterMap,
  type RegisterSpec,
  registerCount,
  validateRegisterMap,
} from '../adapters/modbus/register-map';
import { type Clock, systemClock } from '../clock';
import { BatteryState } from '../state-machine';
import {
  powerOnRevert,
  revertDeadline,
  revertRegisters,
  revertTimeMs,
  touchesRevert,
} from './battery-revert';

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

type Field =
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

interface Slot {
  field: Field;
  /** First address of the value this register belongs to, and how many registers it has. */
  start: number;
  count: number;
  writable: boolean;
}

interface Unit {
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

const EPS = 1e-9;

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

function exception(code: number, message: string): ModbusException {
  return new ModbusException(code, message);
}

/**
 * Events: `listening` (port), `closed`, `write` (SimWrite), `setpoint` (unitId, requestedKw,
 * words), `mode` (unitId, SimMode, raw), `watchdog` (unitId, value), `revert` (unitId),
 * `applied` (SetpointChange), `restarted` (port), `unanswered` ({unitId, reason: 'unit' |
 * 'silent'}), `warning` (Error).
 */
export class BatterySimulator extends EventEmitter {
  readonly map: RegisterMap;
  readonly host: string;
  readonly unitIds: readonly number[];
  private readonly opts: Required<
    Omit<BatterySimulatorOptions, 'host' | 'port' | 'unitIds' | 'map' | 'extraRegisters'>
  >;
  private readonly requestedPort: number;
  private boundPort = 0;
  private server: ServerTCP | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly units = new Map<number, Unit>();
  private readonly layout: Record<RegisterTable, Map<number, Slot>> = {
    holding: new Map(),
    input: new Map(),
  };
  private silent = false;
  /** Aborts the down time of a restart under way (`close` stops a restart). */
  private restartAbort: AbortController | null = null;
  /** Simulated time = clock + offset; `tick(ms)` moves the offset. */
  private offset = 0;
  private lastAt: number;

  constructor(options: BatterySimulatorOptions = {}) {
    super();
    this.map = validateRegisterMap(options.map ?? GENERIC_MAP);
    if (this.map.telemetry.power && !['W', 'kW'].includes(this.map.telemetry.power.unit)) {
      throw new RangeError('the simulator needs telemetry.power in W or kW');
    }
    this.host = options.host ?? '127.0.0.1';
    this.requestedPort = options.port ?? 0;
    if (
      !Number.isInteger(this.requestedPort) ||
      this.requestedPort < 0 ||
      this.requestedPort > 65535
    ) {
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
    this.unitIds = [...ids];
    this.opts = {
      capacityKwh: options.capacityKwh ?? 100,
      initialSocPercent: options.initialSocPercent ?? 50,
      maxChargeKw: options.maxChargeKw ?? 50,
      maxDischargeKw: options.maxDischargeKw ?? 50,
      socMinPercent: options.socMinPercent ?? 5,
      socMaxPercent: options.socMaxPercent ?? 95,
      watchdogTimeoutMs: options.watchdogTimeoutMs ?? 0,
      rejectOutOfRange: options.rejectOutOfRange ?? false,
      clampRegister: options.clampRegister ?? false,
      clock: options.clock ?? systemClock,
      tickMs: options.tickMs ?? 1000,
      followRateKwPerS: options.followRateKwPerS ?? 0,
      wrongWay: options.wrongWay ?? false,
    };
    const o = this.opts;
    for (const k of ['capacityKwh', 'maxChargeKw', 'maxDischargeKw'] as const) {
      if (!(o[k] > 0)) throw new RangeError(`${k} must be > 0, got ${o[k]}`);
    }
    for (const k of ['watchdogTimeoutMs', 'tickMs', 'followRateKwPerS'] as const) {
      if (!(o[k] >= 0)) throw new RangeError(`${k} must be >= 0, got ${o[k]}`);
    }
    if (!(o.socMinPercent >= 0 && o.socMinPercent < o.socMaxPercent && o.socMaxPercent <= 100)) {
      throw new RangeError('SoC limits: need 0 <= socMinPercent < socMaxPercent <= 100');
    }
    if (!(o.initialSocPercent >= 0 && o.initialSocPercent <= 100)) {
      throw new RangeError(`initialSocPercent must be 0 to 100, got ${o.initialSocPercent}`);
    }
    this.buildLayout(options.extraRegisters);
    this.lastAt = this.now();
    for (const id of this.unitIds) this.units.set(id, this.newUnit(id));
  }

  // -------------------------------------------------------------------------------------
  // Server

  /** The bound port (after `start()`). */
  get port(): number {
    return this.boundPort;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  /**
   * Starts listening; resolves with the port. Port 0: ServerTCP treats 0 as "use 502"
   * (`options.port || 502`) and does not expose its net.Server, so the simulator first finds
   * a free port by binding a net server to port 0 and closing it (retrying if another process
   * takes that port in between).
   */
  async start(): Promise<number> {
    if (this.server) return this.boundPort;
    const fixed = this.requestedPort !== 0 ? this.requestedPort : this.boundPort;
    for (let attempt = 0; ; attempt++) {
      const port = fixed || (await freePort(this.host));
      try {
        this.server = await this.listen(port);
        this.boundPort = port;
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (fixed || attempt >= 4 || code !== 'EADDRINUSE') throw err;
      }
    }
    this.lastAt = Math.max(this.lastAt, this.now());
    if (this.opts.tickMs > 0 && !this.timer) {
      this.timer = setInterval(() => this.tick(), this.opts.tickMs);
      this.timer.unref();
    }
    this.emit('listening', this.boundPort);
    return this.boundPort;
  }

  /** Stops listening and drops every connection (and a restart under way stays down). */
  async close(): Promise<void> {
    this.restartAbort?.abort();
    this.restartAbort = null;
    await this.shutdown();
  }

  /** Stops listening and drops every connection. The batteries keep their state. */
  private async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const server = this.server;
    if (!server) return;
    this.server = null;
    // ServerTCP.close closes the net.Server and destroys the open sockets; the callback
    // comes once they are gone.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.emit('closed');
  }

  /**
   * Closes and listens again on the same port, as a device that reboots: clients see their
   * connection close and must connect again, and are refused for `downMs`. By default the
   * control registers go back to their power-on values (setpoint 0, mode idle), as after a
   * reboot; SoC is kept. `registers`: other values it comes back with (e.g. a scale factor).
   * Resolves with the port once it listens again; a `close()` meanwhile keeps it down (then
   * `listening` is false).
   */
  async restart(
    options: { downMs?: number; resetControl?: boolean; registers?: PowerOnRegister[] } = {},
  ): Promise<number> {
    this.restartAbort?.abort();
    const abort = new AbortController();
    this.restartAbort = abort;
    await this.shutdown();
    this.tick(0);
    if (options.resetControl ?? true) {
      for (const u of this.units.values()) this.resetControl(u, 'restart');
    }
    for (const r of options.registers ?? []) {
      const units = r.unitId === undefined ? [...this.units.values()] : [this.unit(r.unitId)];
      for (const u of units) this.applyRegister(u, r.address, r.value, r.table ?? 'holding');
    }
    if (options.downMs)
      await sleep(options.downMs, undefined, { signal: abort.signal }).catch(() => {});
    if (abort.signal.aborted) return this.boundPort;
    const port = await this.start();
    if (abort.signal.aborted) await this.shutdown();
    else this.emit('restarted', port);
    if (this.restartAbort === abort) this.restartAbort = null;
    return port;
  }

  private listen(port: number): Promise<ServerTCP> {
    return new Promise((resolve, reject) => {
      const server = new ServerTCP(this.vector(), { host: this.host, port });
      const onError = (err: Error) => {
        server.removeListener('initialized', onInit);
        // The net.Server is not listening: its close only reports that.
        server.close(() => reject(err));
      };
      const onInit = () => {
        server.removeListener('serverError', onError);
        server.on('serverError', (err: Error | null) => this.emit('warning', err));
        resolve(server);
      };
      server.once('initialized', onInit);
      server.once('serverError', onError);
      // A client that resets its connection; not our business.
      server.on('socketError', () => {});
      server.on('error', (err: Error | null) => this.emit('warning', err));
    });
  }

  /**
   * The ServerTCP service vector, in its callback form (arity 3/4): a request that should go
   * unanswered simply never calls back (ServerTCP then writes nothing); an error with
   * `modbusErrorCode` becomes an exception response with that code (other errors: code 4).
   */
  private vector(): IServiceVector {
    return {
      getHoldingRegister: (
        addr: number,
        unitId: number,
        cb: (e: Error | null, v: number) => void,
      ) => this.handleRead('holding', addr, 1, unitId, (e, v) => cb(e, v[0] ?? 0)),
      getMultipleHoldingRegisters: (
        addr: number,
        length: number,
        unitId: number,
        cb: (e: Error | null, v: number[]) => void,
      ) => this.handleRead('holding', addr, length, unitId, cb),
      getInputRegister: (addr: number, unitId: number, cb: (e: Error | null, v: number) => void) =>
        this.handleRead('input', addr, 1, unitId, (e, v) => cb(e, v[0] ?? 0)),
      getMultipleInputRegisters: (
        addr: number,
        length: number,
        unitId: number,
        cb: (e: Error | null, v: number[]) => void,
      ) => this.handleRead('input', addr, length, unitId, cb),
      setRegister: (addr: number, value: number, unitId: number, cb: (e: Error | null) => void) =>
        this.handleWrite(addr, [value], unitId, 'FC6', cb),
      setRegisterArray: (
        addr: number,
        values: number[],
        unitId: number,
        cb: (e: Error | null) => void,
      ) => this.handleWrite(addr, values, unitId, 'FC16', cb),
    };
  }

  /** The unit that answers this request, or undefined when nobody should answer. */
  private answering(unitId: number): Unit | undefined {
    const u = this.units.get(unitId);
    if (!u) this.emit('unanswered', { unitId, reason: 'unit' });
    else if (this.silent || u.silent) this.emit('unanswered', { unitId, reason: 'silent' });
    else return u;
    return undefined;
  }

  private handleRead(
    table: RegisterTable,
    address: number,
    length: number,
    unitId: number,
    cb: (e: Error | null, v: number[]) => void,
  ): void {
    const u = this.answering(unitId);
    if (!u) return;
    this.tick(0);
    const values: number[] = [];
    for (let a = address; a < address + length; a++) {
      const v = this.layout[table].has(a) ? u[table].get(a) : undefined;
      if (v === undefined) {
        // An empty array, not undefined: ServerTCP's FC4 path indexes it even on error.
        cb(exception(ILLEGAL_DATA_ADDRESS, `no ${table} register ${a} on unit ${unitId}`), []);
        return;
      }
      values.push(v);
    }
    cb(null, values);
  }

  private handleWrite(
    address: number,
    values: number[],
    unitId: number,
    fc: 'FC6' | 'FC16',
    cb: (e: Error | null) => void,
  ): void {
    const u = this.answering(unitId);
    if (!u) return;
    try {
      this.write(u, address, values, fc);
      cb(null);
    } catch (err) {
      cb(err as Error);
    }
  }

  // -------------------------------------------------------------------------------------
  // The device

  private buildLayout(extra: BatterySimulatorOptions['extraRegisters']): void {
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

  private newUnit(id: number): Unit {
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
      for (const a of this.layout[table].keys()) u[table].set(a, 0);
    }
    this.resetControl(u);
    return u;
  }

  /** Setpoint 0, mode idle, and the telemetry that follows; recorded when there is a cause. */
  private resetControl(u: Unit, cause?: 'revert' | 'restart', at = this.now()): void {
    this.setWords(u, this.map.setpoint, this.encodeSetpoint(u, 0));
    if (this.map.mode) u.holding.set(this.map.mode.address, this.map.mode.values.idle);
    u.requestedKw = 0;
    if (cause === 'restart') powerOnRevert(this.map.revert, u.holding);
    this.refresh(u);
    if (cause) this.record(u, cause, at);
  }

  private record(u: Unit, cause: SetpointChange['cause'], at = this.now()): void {
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
  private applyRegister(u: Unit, address: number, value: number, table: RegisterTable): void {
    const before = u.requestedKw;
    u[table].set(address, value & 0xffff);
    u.requestedKw = this.decodeSetpoint(u, this.words(u, this.map.setpoint));
    this.refresh(u);
    if (u.requestedKw !== before) this.record(u, 'register');
  }

  private rated(): { charge: number; discharge: number } {
    return { charge: this.opts.maxChargeKw, discharge: this.opts.maxDischargeKw };
  }

  private encodeSetpoint(u: Unit, kw: number): number[] {
    const sp = this.map.setpoint;
    return encodeValue(setpointToRegisterValue(kw, sp, this.rated()), sp, this.sf(u, sp));
  }

  /** The setpoint registers' words as signed kW (positive = charge). */
  private decodeSetpoint(u: Unit, words: number[]): number {
    const sp = this.map.setpoint;
    const kw = registerValueToSetpoint(decodeValue(words, sp, this.sf(u, sp)), sp, this.rated());
    return kw === 0 ? 0 : kw;
  }

  private sf(u: Unit, spec: RegisterSpec): number {
    if (spec.scaleFactorAddress === undefined) return 0;
    const raw = u[spec.table ?? 'holding'].get(spec.scaleFactorAddress) ?? 0;
    return raw > 0x7fff ? raw - 0x10000 : raw;
  }

  private words(u: Unit, spec: RegisterSpec): number[] {
    const t = u[spec.table ?? 'holding'];
    return Array.from({ length: registerCount(spec.type) }, (_, i) => t.get(spec.address + i) ?? 0);
  }

  private setWords(u: Unit, spec: RegisterSpec, words: number[]): void {
    const t = u[spec.table ?? 'holding'];
    words.forEach((w, i) => {
      t.set(spec.address + i, w & 0xffff);
    });
  }

  private modeOf(u: Unit): SimMode {
    const m = this.map.mode;
    if (!m) return 'none';
    const raw = u.holding.get(m.address);
    if (raw === m.values.idle) return 'idle';
    if (raw === m.values.charge) return 'charge';
    if (raw === m.values.discharge) return 'discharge';
    return 'invalid';
  }

  private socPercent(u: Unit): number {
    return (u.socKwh / this.opts.capacityKwh) * 100;
  }

  /** The power the battery runs at now, kW positive = charge. */
  private actualKw(u: Unit): number {
    const o = this.opts;
    if (u.fault || u.unavailable) return 0;
    let p = Math.min(o.maxChargeKw, Math.max(-o.maxDischargeKw, u.requestedKw));
    const mode = this.modeOf(u);
    if (mode === 'idle' || mode === 'invalid') p = 0;
    if (mode === 'charge' && p < 0) p = 0;
    if (mode === 'discharge' && p > 0) p = 0;
    if (o.wrongWay) p = Math.min(o.maxChargeKw, Math.max(-o.maxDischargeKw, -p));
    const soc = this.socPercent(u);
    if (p > 0 && soc >= o.socMaxPercent - EPS) p = 0;
    if (p < 0 && soc <= o.socMinPercent + EPS) p = 0;
    return p === 0 ? 0 : p;
  }

  private statusOf(u: Unit): BatteryState {
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
  private refresh(u: Unit, ms = 0): void {
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
        this.setWords(u, spec, encodeValue(value, spec, this.sf(u, spec)));
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
          this.setWords(u, t.status, toWords(Number(code), t.status.type, t.status.wordOrder));
        } catch (err) {
          this.emit('warning', err);
        }
      }
    }
  }

  private active(u: Unit): boolean {
    const mode = this.modeOf(u);
    return u.requestedKw !== 0 || (mode !== 'idle' && mode !== 'none');
  }

  private write(u: Unit, address: number, values: number[], fc: 'FC6' | 'FC16'): void {
    const where = `unit ${u.id}`;
    // Check the whole request before changing anything.
    const touched = new Map<number, Slot>();
    for (let a = address; a < address + values.length; a++) {
      const slot = this.layout.holding.get(a);
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
      newKw = this.decodeSetpoint(u, words);
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
      if (clamped !== newKw) this.setWords(u, sp, this.encodeSetpoint(u, clamped));
    }
    const record: SimWrite = { unitId: u.id, address, values: [...values], fc, at: now };
    u.writes.push(record);
    if (u.writes.length > 1000) u.writes.splice(0, u.writes.length - 1000);
    this.emit('write', record);
    if (newKw !== undefined) {
      u.requestedKw = newKw;
      this.emit('setpoint', u.id, u.requestedKw, this.words(u, sp));
    }
    if (mode && touched.has(mode.address))
      this.emit('mode', u.id, this.modeOf(u), at(mode.address));

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

  private now(): number {
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

  private advance(u: Unit, from: number, to: number): void {
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
  private revertAt(u: Unit): number | null {
    const timeout = this.opts.watchdogTimeoutMs;
    const wd = timeout > 0 ? u.lastWatchdogAt + timeout : null;
    const rv = revertDeadline(this.map.revert, u.holding, u.revertSince);
    return wd === null ? rv : rv === null ? wd : Math.min(wd, rv);
  }

  private integrate(u: Unit, ms: number): void {
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

  // -------------------------------------------------------------------------------------
  // Switches and inspection for tests

  /**
   * true: stop answering every request (clients time out, the connection stays open); false:
   * answer again. With `unitId`, only that unit (the others answer, unless all are silent).
   */
  setSilent(silent: boolean, unitId?: number): void {
    if (unitId === undefined) this.silent = silent;
    else this.unit(unitId).silent = silent;
  }

  /** Switches the quirks on or off while running (e.g. a battery that runs the wrong way is fixed). */
  setQuirks(quirks: { wrongWay?: boolean; followRateKwPerS?: number }): void {
    if (
      quirks.followRateKwPerS !== undefined &&
      !(Number.isFinite(quirks.followRateKwPerS) && quirks.followRateKwPerS >= 0)
    )
      throw new RangeError(`followRateKwPerS must be >= 0, got ${quirks.followRateKwPerS}`);
    this.tick(0);
    if (quirks.wrongWay !== undefined) this.opts.wrongWay = quirks.wrongWay;
    if (quirks.followRateKwPerS !== undefined) this.opts.followRateKwPerS = quirks.followRateKwPerS;
    for (const u of this.units.values()) this.refresh(u);
  }

  /** Fault: status fault, power 0, until cleared. All units when `unitId` is omitted. */
  setFault(fault: boolean, unitId?: number): void {
    this.tick(0);
    for (const u of this.select(unitId)) {
      u.fault = fault;
      this.refresh(u);
    }
  }

  /** Unavailable (e.g. grid or DC side disconnected): status unavailable, power 0. */
  setUnavailable(unavailable: boolean, unitId?: number): void {
    this.tick(0);
    for (const u of this.select(unitId)) {
      u.unavailable = unavailable;
      this.refresh(u);
    }
  }

  /** Sets the state of charge (percent) of a unit. */
  setSoc(unitId: number, percent: number): void {
    if (!(percent >= 0 && percent <= 100))
      throw new RangeError(`SoC must be 0 to 100, got ${percent}`);
    this.tick(0);
    const u = this.unit(unitId);
    u.socKwh = (percent / 100) * this.opts.capacityKwh;
    this.refresh(u);
  }

  /**
   * Sets a raw register from the test side, bypassing every check (e.g. a SunSpec
   * scale-factor register). The battery follows as if the value had been written.
   */
  setRegister(
    unitId: number,
    address: number,
    value: number,
    table: RegisterTable = 'holding',
  ): void {
    this.tick(0);
    this.applyRegister(this.unit(unitId), address, value, table);
  }

  /** A copy of a unit's registers: address -> raw 16-bit value. */
  unitsRegisters(unitId: number): {
    holding: Record<number, number>;
    input: Record<number, number>;
  } {
    this.tick(0);
    const u = this.unit(unitId);
    return { holding: Object.fromEntries(u.holding), input: Object.fromEntries(u.input) };
  }

  /** One raw register (undefined when the unit does not have it). */
  readRegister(
    unitId: number,
    address: number,
    table: RegisterTable = 'holding',
  ): number | undefined {
    this.tick(0);
    return this.unit(unitId)[table].get(address);
  }

  /** Consecutive raw registers. */
  readRegisters(
    unitId: number,
    address: number,
    count: number,
    table: RegisterTable = 'holding',
  ): (number | undefined)[] {
    return Array.from({ length: count }, (_, i) => this.readRegister(unitId, address + i, table));
  }

  /**
   * Every change of what a unit was asked to run at, oldest first (the last 1000): writes of
   * the setpoint or mode, watchdog reverts, restarts, raw register sets.
   */
  setpointHistory(unitId: number): SetpointChange[] {
    return this.unit(unitId).history.map((c) => ({ ...c }));
  }

  /** The writes a unit accepted, oldest first (the last 1000). */
  writes(unitId: number): readonly SimWrite[] {
    return [...this.unit(unitId).writes];
  }

  state(unitId: number): SimBatteryState {
    this.tick(0);
    const u = this.unit(unitId);
    return {
      unitId,
      socPercent: this.socPercent(u),
      socKwh: u.socKwh,
      requestedKw: u.requestedKw,
      powerKw: u.powerKw,
      mode: this.modeOf(u),
      status: this.statusOf(u),
      fault: u.fault,
      unavailable: u.unavailable,
      lastWatchdogAt: u.lastWatchdogAt,
      revertMs: revertTimeMs(this.map.revert, u.holding),
    };
  }

  private unit(unitId: number): Unit {
    const u = this.units.get(unitId);
    if (!u)
      throw new RangeError(
        `the simulator does not serve unit ${unitId} (it serves ${this.unitIds.join(', ')})`,
      );
    return u;
  }

  private select(unitId?: number): Unit[] {
    return unitId === undefined ? [...this.units.values()] : [this.unit(unitId)];
  }
}
