/**
 * `ChargePointSimulator`: what a test or the qe-sim-charger command line does with a
 * simulated charge point: its state (limit in force, limit history, power, energy, SoC,
 * transaction, profiles, status), start and stop, what a driver does (plug in, start and stop
 * charging, unplug, a fault) and the faults of the field (`dropConnection`, `reboot`). The
 * session (session.ts) owns the connection and the timers; the station (station.ts) the
 * device state; the dialects (dialect-16.ts, dialect-201.ts) the OCPP messages.
 */

import type { SimChargingProfile } from '../charging-profiles';
import type { Link } from './dialect';
import { ChargePointSession } from './session';
import {
  type LimitChange,
  OCPP16_ERROR_CODES,
  type Ocpp16ErrorCode,
  type Result,
  type SimStatus,
  type StopReason,
} from './types';

export class ChargePointSimulator extends ChargePointSession {
  // --- state

  /** The limit in force now, W (null: no profile limits), whether connected or not. */
  get activeLimitW(): number | null {
    this.sync();
    return this.station.limitW;
  }

  /**
   * The limit that the charger's own profiles put in force at `t` (default now), W (null: no
   * profile limits), whether connected or not: what it does without a central system.
   */
  limitAt(t: number = this.clock.now()): number | null {
    return this.station.limitAt(t);
  }

  /** Every change of the limit in force, oldest first (the last 1000). */
  get limitHistory(): LimitChange[] {
    this.sync();
    return this.limitLog.map((c) => ({ ...c }));
  }

  get powerW(): number {
    return this.station.powerW;
  }

  /** The energy register, Wh (integrated up to now). */
  get energyWh(): number {
    return this.station.energyAt(this.clock.now());
  }

  get socPercent(): number | undefined {
    return this.station.socAt(this.clock.now());
  }

  get transactionId(): number | string | null {
    return this.station.tx?.id ?? null;
  }

  get profiles(): SimChargingProfile[] {
    return structuredClone(this.station.profiles);
  }

  get status(): SimStatus {
    return this.station.status;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  // --- lifecycle

  /**
   * Connects (retrying with backoff when `reconnect` is on and the server is not there yet;
   * an HTTP refusal such as 401 is final), sends BootNotification and, once accepted, the
   * status. Resolves with the BootNotification response.
   */
  async start(): Promise<Result> {
    this.stopping = false;
    this.accepted = false;
    this.resumeOnOpen = false;
    this.abort = new AbortController();
    await this.connect(this.opts.reconnect);
    if (!this.bootPromise) throw new Error('connected without booting');
    return this.bootPromise;
  }

  /** Connects; with `retry`, again with backoff until it works (an HTTP refusal is final). */

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.clearTimers();
    clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
    await this.client.close({ code: 1000, reason: 'simulator stopped' });
    this.isConnected = false;
    this.booted = false;
  }

  close(): Promise<void> {
    return this.stop();
  }

  // --- what a driver does

  async plugIn(): Promise<void> {
    this.requireBooted();
    await this.dialect.plugIn(this.link);
  }

  async startCharging(idTag = 'SIM'): Promise<void> {
    this.requireBooted();
    await this.dialect.startCharging(this.link, idTag);
  }

  async stopCharging(reason: StopReason = 'Local'): Promise<void> {
    this.requireBooted();
    await this.dialect.stopCharging(this.link, reason);
  }

  async unplug(): Promise<void> {
    this.requireBooted();
    await this.dialect.unplug(this.link);
  }

  /** The connector faults: the EV stops drawing, status Faulted (1.6 with `errorCode`). */
  async fault(errorCode: Ocpp16ErrorCode = 'InternalError'): Promise<void> {
    if (!OCPP16_ERROR_CODES.includes(errorCode)) {
      throw new RangeError(
        `errorCode must be one of ${OCPP16_ERROR_CODES.join(', ')}, got ${JSON.stringify(errorCode)}`,
      );
    }
    this.requireBooted();
    this.station.faulted = true;
    this.station.errorCode = errorCode;
    this.sync();
    await this.dialect.report(this.link);
  }

  async clearFault(): Promise<void> {
    this.requireBooted();
    this.station.faulted = false;
    this.sync();
    await this.dialect.report(this.link);
  }

  // --- faults

  /**
   * The network drops: by default the TCP socket is destroyed (the central system sees no
   * close frame, code 1006); `clean` closes with code 1001 instead. After `reconnectAfterMs`
   * (default 5000) the charger connects again (with backoff while nothing listens) and, as
   * real chargers do after a blip, sends neither BootNotification nor StatusNotification: its
   * transaction, profiles and limit carry on as they were. Resolves once the connection is
   * down; 'resumed' is emitted once it is back.
   */
  async dropConnection(
    options: { reconnectAfterMs?: number; clean?: boolean } = {},
  ): Promise<void> {
    const after = options.reconnectAfterMs ?? 5000;
    if (!(Number.isFinite(after) && after >= 0))
      throw new RangeError(`reconnectAfterMs must be >= 0, got ${after}`);
    if (!this.isConnected) throw new Error(`${this.identity}: not connected, nothing to drop`);
    // Closing (not losing) the client: ocpp-rpc does not reconnect by itself then.
    await this.client.close(
      options.clean ? { code: 1001, reason: 'network drop (simulated)' } : { force: true },
    );
    this.resumeOnOpen = true;
    this.emit('dropped', { clean: !!options.clean, reconnectAfterMs: after });
    this.reconnectAfter(after);
  }

  /**
   * The charger reboots: a running transaction ends (reason Reboot, sent while still
   * connected), the connection closes (`clean`, default true; false destroys the socket), the
   * charging profiles are forgotten unless `keepProfiles` (TxDefaultProfile is lost on reboot
   * by many chargers), and after `downMs` (default 1000) it connects and boots again:
   * BootNotification, then StatusNotification. The EV stays plugged in; energy is kept.
   */
  async reboot(
    options: { downMs?: number; keepProfiles?: boolean; clean?: boolean } = {},
  ): Promise<void> {
    const down = options.downMs ?? 1000;
    if (!(Number.isFinite(down) && down >= 0))
      throw new RangeError(`downMs must be >= 0, got ${down}`);
    const st = this.station;
    if (st.tx && this.booted) {
      await this.dialect.stopCharging(this.link, 'Reboot').catch((err) => this.warn(err));
    }
    if (st.tx) st.endTx(); // offline: the transaction ends unreported (nothing is queued)
    this.reconnecting?.abort();
    // Whatever the state (open, reconnecting, already down), it ends closed.
    await this.client.close(
      (options.clean ?? true) ? { code: 1001, reason: 'rebooting' } : { force: true },
    );
    this.isConnected = false;
    this.booted = false;
    this.accepted = false;
    this.resumeOnOpen = false;
    this.clearTimers();
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
    if (!options.keepProfiles) st.profiles = [];
    st.finishing = false;
    for (const k of Object.keys(this.reported)) delete this.reported[k as keyof Link['reported']];
    this.sync();
    this.emit('rebooting', { keepProfiles: !!options.keepProfiles, downMs: down });
    this.reconnectAfter(down);
  }

  /** Connects again after `ms` (with backoff), unless stopped or rebooted meanwhile. */
}
