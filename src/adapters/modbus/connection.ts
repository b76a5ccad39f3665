/**
 * One Modbus bus (a TCP connection or a serial line) on modbus-serial, with what the library
 * leaves out: a timeout on every request (its default is none), one request at a time
 * through a bounded queue (a serial line carries one request at a time; one slow unit does not
 * clear the queue of the others), and reconnection with exponential backoff by a new client
 * (a modbus-serial client stays on "Port Not Open" after the device restarts). A request
 * that may not leave after a time (a setpoint whose slot ends) is dropped when its turn comes
 * too late.
 */

import { EventEmitter } from 'node:events';
import ModbusRTU from 'modbus-serial';
import { type Clock, systemClock } from '../../clock';
import { type NetProblem, type NetTarget, netProblem } from '../../net-errors';

export interface ModbusConnectionOptions {
  transport: 'tcp' | 'rtu';
  host?: string;
  /** Default 502. */
  port?: number;
  /** Per request; always set. Default 1000 ms. */
  timeoutMs?: number;
  serialPath?: string;
  baudRate?: number;
  parity?: 'none' | 'even' | 'odd';
  dataBits?: 7 | 8;
  stopBits?: 1 | 2;
  /** Requests waiting at most; more are refused at once. Default 200. */
  queueLimit?: number;
  /** Reconnect backoff: first delay, cap and factor. Defaults 500 ms, 30 s, 2. */
  reconnect?: { initialMs?: number; maxMs?: number; factor?: number };
  /** Makes the client (tests). Default: a new ModbusRTU. */
  createClient?: () => ModbusClient;
  /** Time for requests' `notAfter`. Default the system clock. */
  clock?: Clock;
}

/** Options of one request. */
export interface RequestOptions {
  /** Epoch ms: when its turn comes at or after this, it is not sent (ModbusExpiredError). */
  notAfter?: number;
}

/** What we use of modbus-serial's client. */
export interface ModbusClient {
  connectTCP(host: string, options: { port: number }): Promise<void>;
  connectRTUBuffered(path: string, options: Record<string, unknown>): Promise<void>;
  setID(id: number): void;
  setTimeout(ms: number): void;
  readHoldingRegisters(address: number, length: number): Promise<{ data: number[] }>;
  readInputRegisters(address: number, length: number): Promise<{ data: number[] }>;
  writeRegisters(address: number, values: number[]): Promise<unknown>;
  writeRegister(address: number, value: number): Promise<unknown>;
  close(cb?: () => void): void;
  destroy?(cb?: () => void): void;
  on(event: 'close', listener: () => void): unknown;
  removeAllListeners(event?: string): unknown;
  isOpen: boolean;
}

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** A failure of the bus (not connected, a timeout, a dropped connection): worth retrying. */
export class ModbusTransportError extends Error {
  constructor(
    message: string,
    readonly timeout = false,
  ) {
    super(message);
    this.name = 'ModbusTransportError';
  }
}

/** A request that was not sent: its turn came after its `notAfter`. */
export class ModbusExpiredError extends ModbusTransportError {
  constructor(message: string) {
    super(message);
    this.name = 'ModbusExpiredError';
  }
}

/** The device answered with a Modbus exception: final. */
export class ModbusDeviceError extends Error {
  constructor(
    message: string,
    readonly modbusCode: number,
  ) {
    super(message);
    this.name = 'ModbusDeviceError';
  }
}

export const EXCEPTION_NAMES: Record<number, string> = {
  1: 'Illegal function',
  2: 'Illegal data address',
  3: 'Illegal data value',
  4: 'Server device failure',
  5: 'Acknowledge',
  6: 'Server device busy',
  8: 'Memory parity error',
  10: 'Gateway path unavailable',
  11: 'Gateway target device failed to respond',
};

interface Task {
  unitId: number;
  what: string;
  run: (client: ModbusClient) => Promise<unknown>;
  notAfter: number | undefined;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class ModbusConnection extends EventEmitter {
  readonly options: ModbusConnectionOptions;
  private client: ModbusClient | null = null;
  private _state: ConnectionState = 'disconnected';
  private readonly queue: Task[] = [];
  private busy = false;
  /** The request on the wire, settled by close() if the client never answers it. */
  private current: Task | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private lastError: string | null = null;
  private lastProblem: NetProblem | null = null;

  constructor(options: ModbusConnectionOptions) {
    super();
    if (options.transport !== 'tcp' && options.transport !== 'rtu') {
      throw new TypeError(
        `modbus connection: transport must be tcp or rtu, got ${JSON.stringify(options.transport)}`,
      );
    }
    if (options.transport === 'tcp' && !options.host)
      throw new TypeError('modbus connection: tcp needs a host');
    if (options.transport === 'rtu' && !options.serialPath)
      throw new TypeError('modbus connection: rtu needs a serial port path');
    const timeout = options.timeoutMs ?? 1000;
    if (!(timeout > 0))
      throw new TypeError(`modbus connection: timeoutMs must be > 0, got ${timeout}`);
    this.options = { ...options, timeoutMs: timeout };
  }

  get state(): ConnectionState {
    return this._state;
  }

  get queueDepth(): number {
    return this.queue.length + (this.busy ? 1 : 0);
  }

  get error(): string | null {
    return this.lastError;
  }

  /**
   * Why the last attempt to open the bus failed, short ("127.0.0.1:502 refused",
   * "/dev/ttyUSB0 not found"). It stays through the reconnect attempts until one
   * succeeds or fails for another reason; null while connected or after a drop.
   */
  get problem(): NetProblem | null {
    return this.lastProblem;
  }

  /** Human-readable target, for messages. */
  get target(): string {
    const o = this.options;
    return o.transport === 'tcp'
      ? `${o.host}:${o.port ?? 502}`
      : `${o.serialPath}@${o.baudRate ?? 9600}`;
  }

  /** Connects in the background and keeps reconnecting until `close()`. */
  start(): void {
    if (this._state === 'closed' || this._state === 'connecting' || this._state === 'connected')
      return;
    void this.connect();
  }

  private setState(s: ConnectionState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit('state', s);
    if (s === 'connected') this.emit('connected');
    if (s === 'disconnected') this.emit('disconnected', this.lastError);
  }

  private async connect(): Promise<void> {
    this.setState('connecting');
    const o = this.options;
    let client: ModbusClient;
    try {
      client = o.createClient ? o.createClient() : (new ModbusRTU() as unknown as ModbusClient);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.lastProblem = netProblem(err, this.netTarget());
      this.setState('disconnected');
      this.scheduleReconnect();
      return;
    }
    // Before connecting: modbus-serial applies it to the connect too (else an unreachable host
    // takes the operating system's TCP timeout, minutes).
    client.setTimeout(o.timeoutMs as number);
    try {
      if (o.transport === 'tcp') {
        await client.connectTCP(o.host as string, { port: o.port ?? 502 });
      } else {
        await client.connectRTUBuffered(o.serialPath as string, {
          baudRate: o.baudRate ?? 9600,
          parity: o.parity ?? 'none',
          dataBits: o.dataBits ?? 8,
          stopBits: o.stopBits ?? 1,
        });
      }
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      this.lastError =
        /Cannot find module 'serialport'|serialport/i.test(msg) && o.transport === 'rtu'
          ? `RTU needs the optional package serialport: run "npm install serialport" in the Node-RED user directory (${msg})`
          : `cannot connect to ${this.target}: ${msg}`;
      this.lastProblem = netProblem(err, this.netTarget());
      dispose(client);
      if (this._state === 'closed') return;
      this.setState('disconnected');
      this.scheduleReconnect();
      return;
    }
    if (this._state === 'closed') {
      dispose(client);
      return;
    }
    client.on('close', () => this.onClientClosed(client));
    this.client = client;
    this.attempt = 0;
    this.lastError = null;
    this.lastProblem = null;
    this.setState('connected');
    this.pump();
  }

  /** What `netProblem` needs to name the bus. */
  private netTarget(): NetTarget {
    const o = this.options;
    return o.transport === 'tcp'
      ? { op: 'connect', host: o.host as string, port: o.port ?? 502 }
      : { op: 'open', path: o.serialPath as string };
  }

  private onClientClosed(client: ModbusClient): void {
    if (this.client !== client) return;
    this.client = null;
    if (this._state === 'closed') return;
    this.lastError = `connection to ${this.target} closed`;
    this.setState('disconnected');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this._state === 'closed' || this.retryTimer) return;
    const r = this.options.reconnect ?? {};
    const delay = Math.min(
      (r.initialMs ?? 500) * (r.factor ?? 2) ** this.attempt,
      r.maxMs ?? 30_000,
    );
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this._state !== 'closed') void this.connect();
    }, delay);
    this.retryTimer.unref?.();
  }

  /** Drops the current client and connects again (after a request found the port closed). */
  private reconnectNow(reason: string): void {
    const c = this.client;
    this.client = null;
    if (c) {
      c.removeAllListeners('close');
      dispose(c);
    }
    if (this._state === 'closed') return;
    this.lastError = reason;
    this.setState('disconnected');
    this.scheduleReconnect();
  }

  // ------------------------------------------------------------ requests

  /** Runs `run` with the client for unit `unitId`, after the requests queued before it. */
  request<T>(
    unitId: number,
    what: string,
    run: (client: ModbusClient) => Promise<T>,
    options: RequestOptions = {},
  ): Promise<T> {
    if (this._state === 'closed')
      return Promise.reject(
        new ModbusTransportError(`${what}: the connection to ${this.target} is closed`),
      );
    if (this._state !== 'connected') {
      return Promise.reject(
        new ModbusTransportError(
          `${what}: not connected to ${this.target}${this.lastError ? ` (${this.lastError})` : ''}`,
        ),
      );
    }
    const limit = this.options.queueLimit ?? 200;
    if (this.queue.length >= limit) {
      return Promise.reject(
        new ModbusTransportError(
          `${what}: the queue to ${this.target} is full (${limit} requests waiting)`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        unitId,
        what,
        run,
        notAfter: options.notAfter,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      this.emit('queue', this.queueDepth);
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    const task = this.queue.shift();
    if (!task) return;
    const client = this.client;
    if (!client || this._state !== 'connected') {
      task.reject(new ModbusTransportError(`${task.what}: not connected to ${this.target}`));
      this.pump();
      return;
    }
    if (task.notAfter !== undefined && (this.options.clock ?? systemClock).now() >= task.notAfter) {
      task.reject(
        new ModbusExpiredError(
          `${task.what}: not sent to unit ${task.unitId}: it was valid until ${new Date(task.notAfter).toISOString()} and waited in the queue until then`,
        ),
      );
      this.pump();
      return;
    }
    this.busy = true;
    this.current = task;
    client.setID(task.unitId);
    task
      .run(client)
      .then(
        (v) => task.resolve(v),
        (err: unknown) => task.reject(this.classify(err, task)),
      )
      .finally(() => {
        this.current = null;
        this.busy = false;
        this.emit('queue', this.queueDepth);
        this.pump();
      });
  }

  private classify(err: unknown, task: Task): Error {
    const e = err as { message?: string; modbusCode?: number; errno?: string; name?: string };
    const msg = e?.message ?? String(err);
    if (typeof e?.modbusCode === 'number') {
      const name = EXCEPTION_NAMES[e.modbusCode] ?? 'exception';
      return new ModbusDeviceError(
        `${task.what}: unit ${task.unitId} answered Modbus exception ${e.modbusCode} (${name})`,
        e.modbusCode,
      );
    }
    if (
      /timed out/i.test(msg) ||
      e?.errno === 'ETIMEDOUT' ||
      e?.name === 'TransactionTimedOutError'
    ) {
      return new ModbusTransportError(
        `${task.what}: unit ${task.unitId} did not answer within ${this.options.timeoutMs} ms`,
        true,
      );
    }
    if (/port not open/i.test(msg)) {
      this.reconnectNow(`${task.what}: port not open`);
      return new ModbusTransportError(`${task.what}: the connection to ${this.target} is down`);
    }
    return new ModbusTransportError(`${task.what}: ${msg}`);
  }

  readHolding(unitId: number, address: number, count: number): Promise<number[]> {
    return this.request(
      unitId,
      `read ${count} holding register(s) at ${address}`,
      async (c) => (await c.readHoldingRegisters(address, count)).data,
    );
  }

  readInput(unitId: number, address: number, count: number): Promise<number[]> {
    return this.request(
      unitId,
      `read ${count} input register(s) at ${address}`,
      async (c) => (await c.readInputRegisters(address, count)).data,
    );
  }

  /** FC16, or FC6 for a single register when asked. */
  write(
    unitId: number,
    address: number,
    words: number[],
    fc: 'FC16' | 'FC6' = 'FC16',
    options: RequestOptions = {},
  ): Promise<void> {
    return this.request(
      unitId,
      `write ${words.length} register(s) at ${address}`,
      async (c) => {
        if (fc === 'FC6') {
          if (words.length !== 1) throw new Error('FC6 writes exactly one register');
          await c.writeRegister(address, words[0] as number);
        } else {
          await c.writeRegisters(address, words);
        }
      },
      options,
    );
  }

  /** Stops reconnecting, rejects what is queued and closes the client. */
  async close(): Promise<void> {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this.emit('state', 'closed');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const closed = (t: Task) =>
      new ModbusTransportError(`${t.what}: the connection to ${this.target} was closed`);
    for (const t of this.queue.splice(0)) t.reject(closed(t));
    // Destroying the client cancels its timers: the request on the wire would never settle.
    if (this.current) this.current.reject(closed(this.current));
    const c = this.client;
    this.client = null;
    if (c) {
      c.removeAllListeners('close');
      dispose(c);
    }
  }
}

/**
 * Ends a client for good: `destroy` calls back at once and cancels its request timers
 * (`close` never calls back on a socket that is already closed).
 */
function dispose(c: ModbusClient): void {
  try {
    if (c.destroy) c.destroy(() => {});
    else c.close(() => {});
  } catch {
    // already closed
  }
}
