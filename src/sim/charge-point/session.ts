/**
 * The simulated charge point's session with its central system: the options with their
 * defaults, the ocpp-rpc client (strict mode) and the `Link` that the dialects use, connecting
 * with backoff, BootNotification (again after Pending / Rejected) or a silent resume after a
 * network drop, heartbeat and meter timers, incoming calls (quirks, the `respond` test hook,
 * then the dialect's handler), and following the limit in force (`sync`: the 'profile' and
 * 'power' events, the limit history, a timer at the next step of a schedule, offline too).
 * The public methods are in simulator.ts (`ChargePointSimulator` extends this class).
 */

import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRPCError, NOREPLY, RPCClient, UnexpectedHttpResponse } from 'ocpp-rpc';
import { type Clock, systemClock } from '../../clock';
import { type Dialect, type Link, responseStatuses } from './dialect';
import { dialect16 } from './dialect-16';
import { dialect201 } from './dialect-201';
import { Station, type StationConfig } from './station';
import type {
  ChargePointSimulatorOptions,
  LimitChange,
  OcppProtocol,
  Params,
  Resolved,
  RespondHook,
  Result,
} from './types';

type ClientOptions = ConstructorParameters<typeof RPCClient>[0];

const DIALECTS: Record<OcppProtocol, Dialect> = { 'ocpp1.6': dialect16, 'ocpp2.0.1': dialect201 };

export class ChargePointSession extends EventEmitter {
  readonly identity: string;
  readonly protocol: OcppProtocol;
  protected readonly opts: Resolved;
  protected readonly clock: Clock;
  protected readonly client: RPCClient;
  protected readonly dialect: Dialect;
  protected readonly station: Station;
  protected readonly link: Link;
  protected readonly reported: Link['reported'] = {};
  protected isConnected = false;
  protected booted = false;
  protected stopping = false;
  protected bootPromise: Promise<Result> | undefined;
  /** BootNotification was accepted since the last power-up (start or reboot). */
  protected accepted = false;
  /** The next connection resumes the session (after a network drop): no boot. */
  protected resumeOnOpen = false;
  protected heartbeatS = 0;
  protected readonly limitLog: LimitChange[] = [];
  /** The delayed reconnection of a drop or a reboot, while it waits. */
  protected reconnecting: AbortController | null = null;
  protected readonly timers = new Set<NodeJS.Timeout>();
  /** Profiles accepted and not applied yet (`applyDelayMs`): a reboot or stop drops them. */
  protected readonly pending = new Set<NodeJS.Timeout>();
  protected heartbeatTimer: NodeJS.Timeout | undefined;
  /** Syncs at the next change of the limit (a period step, a validTo), offline too. */
  protected stepTimer: NodeJS.Timeout | undefined;
  protected meterTimer: NodeJS.Timeout | undefined;
  protected lastLimit: number | null = null;
  protected lastPower = 0;
  protected abort = new AbortController();

  constructor(options: ChargePointSimulatorOptions) {
    super();
    this.opts = {
      connectorId: 1,
      evseId: 1,
      evMaxKw: 11,
      voltage: 230,
      phases: 3,
      meterIntervalMs: 10_000,
      batteryKwh: 60,
      reconnect: true,
      bootOnReconnect: true,
      callTimeoutMs: 30_000,
      authorize: true,
      vendor: 'QubitEnergy',
      model: 'SimCharger',
      ...stripUndefined(options),
    };
    this.identity = options.identity;
    this.protocol = options.protocol;
    this.clock = options.clock ?? systemClock;
    this.dialect = DIALECTS[this.protocol];
    if (!this.dialect)
      throw new TypeError(`protocol must be ocpp1.6 or ocpp2.0.1, got ${options.protocol}`);
    if (
      options.honourUnit !== undefined &&
      options.honourUnit !== 'W' &&
      options.honourUnit !== 'A'
    )
      throw new TypeError(`honourUnit must be W or A, got ${String(options.honourUnit)}`);
    const cfg: StationConfig = {
      evMaxW: this.opts.evMaxKw * 1000,
      voltage: this.opts.voltage,
      phases: this.opts.phases,
      batteryKwh: this.opts.batteryKwh,
    };
    if (options.initialSocPercent !== undefined) cfg.initialSocPercent = options.initialSocPercent;
    this.station = new Station(cfg, this.clock.now());

    const clientOptions: Partial<ClientOptions> = {
      endpoint: options.endpoint,
      identity: options.identity,
      protocols: [options.protocol],
      strictMode: true,
      reconnect: this.opts.reconnect,
      callTimeoutMs: this.opts.callTimeoutMs,
      backoff: {
        initialDelay: 1000,
        maxDelay: 30_000,
        factor: 2,
        randomisationFactor: 0.25,
        ...options.backoff,
      },
    };
    if (options.password !== undefined) clientOptions.password = options.password;
    if (options.wsOptions) clientOptions.wsOpts = options.wsOptions;
    this.client = new RPCClient(clientOptions as ClientOptions);

    this.link = {
      station: this.station,
      opts: this.opts,
      reported: this.reported,
      now: () => this.clock.now(),
      iso: (t) => new Date(t ?? this.clock.now()).toISOString(),
      send: (method, params) => this.send(method, params),
      sync: () => this.sync(),
      after: (fn) => {
        setImmediate(() => {
          if (!this.stopping) fn().catch((err) => this.warn(err));
        });
      },
      later: (ms, fn) => {
        const t = setTimeout(() => {
          this.pending.delete(t);
          if (!this.stopping) fn();
        }, ms);
        t.unref?.();
        this.pending.add(t);
      },
    };

    this.client.on('open', () => {
      this.isConnected = true;
      this.emit('connected');
      const resume = this.resumeOnOpen || !this.opts.bootOnReconnect;
      this.resumeOnOpen = false;
      if (resume && this.accepted) {
        this.resume();
        return;
      }
      this.bootPromise = this.boot();
      this.bootPromise.catch((err) => this.warn(err));
    });
    this.client.on('disconnect', (e: { code: number; reason: string }) => {
      this.isConnected = false;
      this.booted = false;
      this.clearTimers();
      this.emit('disconnected', e);
    });
    this.client.handle(async ({ method, params }) => this.onCall(method ?? '', params ?? {}));
  }

  protected async connect(retry: boolean, signal: AbortSignal = this.abort.signal): Promise<void> {
    const b = { initialDelay: 1000, maxDelay: 30_000, factor: 2, ...this.opts.backoff };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.connect();
        return;
      } catch (err) {
        if (!retry || this.stopping || signal.aborted || err instanceof UnexpectedHttpResponse)
          throw err;
        this.warn(err as Error);
        const delay = Math.min(b.maxDelay, b.initialDelay * b.factor ** attempt);
        await sleep(delay, undefined, { signal });
      }
    }
  }

  /** Closes the connection cleanly; no timers are left. */

  /** Sends meter values now (the meter timer does this every `meterIntervalMs`). */
  async sendMeterValues(): Promise<void> {
    this.requireBooted();
    this.sync();
    await this.dialect.report(this.link); // a state change first (e.g. SuspendedEVSE at limit 0)
    await this.dialect.meterValues(this.link, 'Sample.Periodic');
  }

  protected reconnectAfter(ms: number): void {
    this.reconnecting?.abort();
    const own = new AbortController();
    this.reconnecting = own;
    const signal = AbortSignal.any([this.abort.signal, own.signal]);
    sleep(ms, undefined, { signal })
      .then(() => this.connect(true, signal))
      .catch((err) => {
        if (!this.stopping && !signal.aborted) this.warn(err);
      })
      .finally(() => {
        if (this.reconnecting === own) this.reconnecting = null;
      });
  }

  /** Back after a network drop: the session carries on, nothing is sent. */
  protected resume(): void {
    this.booted = true;
    this.startTimers();
    this.sync();
    this.emit('resumed');
  }

  // --- internals

  protected async boot(): Promise<Result> {
    const res = await this.send(...this.dialect.bootCall(this.link));
    this.emit('booted', res);
    const interval = typeof res.interval === 'number' && res.interval > 0 ? res.interval : 0;
    if (res.status !== 'Accepted') {
      // Pending / Rejected: try again after the interval, send nothing else meanwhile.
      this.later(
        () => {
          this.bootPromise = this.boot();
          this.bootPromise.catch((err) => this.warn(err));
        },
        (interval || 10) * 1000,
      );
      return res;
    }
    this.booted = true;
    this.accepted = true;
    this.heartbeatS = interval;
    this.sync();
    await this.dialect.report(this.link, true);
    this.startTimers();
    return res;
  }

  /** Heartbeat at the interval of the last accepted boot, and the meter values. */
  protected startTimers(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.meterTimer);
    if (this.heartbeatS) {
      this.heartbeatTimer = setInterval(() => {
        this.send('Heartbeat', {}).catch((err) => this.warn(err));
      }, this.heartbeatS * 1000).unref();
    }
    if (this.opts.meterIntervalMs > 0) {
      this.meterTimer = setInterval(() => {
        if (this.booted) this.sendMeterValues().catch((err) => this.warn(err));
      }, this.opts.meterIntervalMs).unref();
    }
  }

  protected async onCall(method: string, params: Params): Promise<Result> {
    this.emit('call', method, params);
    const override = this.opts.respond?.(method, params);
    if (override !== undefined) return this.overridden(method, override);
    if (
      (method === 'SetChargingProfile' && this.opts.smartCharging === false) ||
      (method === 'GetCompositeSchedule' && this.opts.compositeSchedule === false)
    )
      throw createRPCError('NotImplemented', `${method} is not implemented by this charger`);
    const handler = this.dialect.handlers[method];
    if (!handler) throw createRPCError('NotImplemented', `${method} is not implemented`);
    const result = handler(this.link, params);
    this.link.after(async () => {
      if (this.booted) await this.dialect.report(this.link);
    });
    return result;
  }

  protected overridden(method: string, answer: NonNullable<ReturnType<RespondHook>>): Result {
    if (answer === 'noreply') return NOREPLY;
    if (answer === 'NotImplemented') {
      throw createRPCError('NotImplemented', `${method}: NotImplemented (test hook)`);
    }
    if (responseStatuses(this.protocol, method).includes(answer)) return { status: answer };
    const code = answer === 'NotSupported' ? 'NotSupported' : 'GenericError';
    throw createRPCError(code, `${method}: ${answer} (test hook)`);
  }

  protected async send(method: string, params: Params): Promise<Result> {
    if (!this.isConnected)
      throw new Error(`${this.identity}: not connected, cannot send ${method}`);
    return (await this.client.call(method, params)) as Result;
  }

  protected sync(): void {
    this.station.refresh(this.clock.now());
    const { limitW, powerW } = this.station;
    if (limitW !== this.lastLimit) {
      this.lastLimit = limitW;
      const change: LimitChange = { at: this.clock.now(), limitW, powerW };
      this.limitLog.push(change);
      if (this.limitLog.length > 1000) this.limitLog.splice(0, this.limitLog.length - 1000);
      this.emit('profile', limitW, change);
    }
    if (powerW !== this.lastPower) {
      this.lastPower = powerW;
      this.emit('power', powerW);
    }
    this.followSteps();
  }

  /** Syncs again when the limit may change next (a step of a period, a validTo), offline too. */
  protected followSteps(): void {
    clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
    if (this.stopping) return;
    const now = this.clock.now();
    const next = this.station.nextChange(now);
    if (next === undefined) return;
    this.stepTimer = setTimeout(() => this.sync(), next - now + 1).unref();
  }

  protected requireBooted(): void {
    if (!this.booted) throw new Error(`${this.identity}: not connected and booted`);
  }

  protected later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms).unref();
    this.timers.add(t);
  }

  protected clearTimers(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.meterTimer);
    this.heartbeatTimer = undefined;
    this.meterTimer = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Something failed in the background (a meter tick, a deferred action). */
  protected warn(err: unknown): void {
    this.emit('warning', err instanceof Error ? err : new Error(String(err)));
  }
}

/** `o` without its undefined properties, so that they don't hide the defaults. */
function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
