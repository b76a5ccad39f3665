/**
 * `BatterySimulator`: the simulated battery (device.ts) behind a Modbus TCP server
 * (modbus-serial's `ServerTCP`), and the switches a test uses: silence (a unit, or the whole
 * device, that never answers), faults, availability, quirks, SoC, raw registers, and what it
 * took (writes, setpoint history, state). A unit id that it does not serve gets no answer at
 * all (the client times out); `restart` reboots the device (every connection closes, nothing
 * listens for `downMs`, then it listens on the same port with its control registers at their
 * power-on values).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { type IServiceVector, ServerTCP } from 'modbus-serial';
import { revertTimeMs } from '../battery-revert';
import { BatteryDevice } from './device';
import {
  exception,
  freePort,
  ILLEGAL_DATA_ADDRESS,
  type PowerOnRegister,
  type RegisterTable,
  type SetpointChange,
  type SimBatteryState,
  type SimWrite,
  type Unit,
} from './types';

/**
 * Events: `listening` (port), `closed`, `write` (SimWrite), `setpoint` (unitId, requestedKw,
 * words), `mode` (unitId, SimMode, raw), `watchdog` (unitId, value), `revert` (unitId),
 * `applied` (SetpointChange), `restarted` (port), `unanswered` ({unitId, reason: 'unit' |
 * 'silent'}), `warning` (Error).
 */
export class BatterySimulator extends BatteryDevice {
  private boundPort = 0;
  private server: ServerTCP | null = null;
  private timer: NodeJS.Timeout | null = null;
  private silent = false;
  /** Aborts the down time of a restart under way (`close` stops a restart). */
  private restartAbort: AbortController | null = null;

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
    type Done<T> = (e: Error | null, v: T) => void;
    // One function per arity: ServerTCP tells the callback form by it.
    const one = (table: RegisterTable) => (addr: number, unitId: number, cb: Done<number>) =>
      this.handleRead(table, addr, 1, unitId, (e, v) => cb(e, v[0] ?? 0));
    const many =
      (table: RegisterTable) =>
      (addr: number, length: number, unitId: number, cb: Done<number[]>) =>
        this.handleRead(table, addr, length, unitId, cb);
    return {
      getHoldingRegister: one('holding'),
      getMultipleHoldingRegisters: many('holding'),
      getInputRegister: one('input'),
      getMultipleInputRegisters: many('input'),
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
      const v = this.regs.layout[table].has(a) ? u[table].get(a) : undefined;
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
      mode: this.regs.modeOf(u),
      status: this.statusOf(u),
      fault: u.fault,
      unavailable: u.unavailable,
      lastWatchdogAt: u.lastWatchdogAt,
      revertMs: revertTimeMs(this.map.revert, u.holding),
    };
  }
}
