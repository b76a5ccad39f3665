/**
 * StationFailsafe: the OCPP part of the failsafe chain. Each charge point with a failsafe
 * share (its chargers' `failsafeKw`, else the host's `failsafeKw(assetId)`) holds ONE
 * station-wide maximum profile owned by the adapter (1.6 ChargePointMaxProfile on connector 0,
 * 2.0.1 ChargingStationMaxProfile on EVSE 0) with two periods: the cap in force (a
 * SET_POWER_LIMIT setpoint, else the rating) from now, and min(failsafe share, cap) from
 * `failsafeAfterS` on. While the charge point is connected the profile is sent again every
 * `failsafeAfterS / 3`, so the step stays in the future (the first refresh after a send that
 * is not itself a refresh comes a little earlier, between a half and the whole interval, by a
 * fraction fixed per identity: thousands of chargers that booted together then refresh spread
 * over the interval, not in one wave); when the gateway, Node-RED or the
 * network is gone, nobody moves it and the charger steps down to its failsafe share on its
 * own. It is sent with the re-apply after a boot or a connect (first, before the setpoints,
 * see chargers.ts), when the share changes (`refresh`) and by
 * SET_POWER_LIMIT commands (same id and stack level: it replaces, never stacks). A refresh
 * has slack and yields to other calls: when it falls due while the central system is busy
 * (calls wait for a turn, or BUSY_CALLS or more have no answer yet: a slot start's setpoints
 * to thousands of chargers), it waits a little longer, at most half an interval in all, so the
 * step is still half of `failsafeAfterS` ahead when it goes. A refused
 * refresh is reported and retried at the next one; a charger that does not implement it is
 * remembered (capability `maxProfile`), reported once, and left alone until it boots again.
 */

import type { Command } from '../../commands';
import type { AdapterHost } from '../host';
import type { LearnedCapabilities } from './capabilities';
import type { CentralSystem } from './central-system';
import { NOT_IMPLEMENTED } from './confirm';
import {
  type ChargerConfig,
  type FailsafeOptions,
  interpretResponse,
  stationMaxCall,
} from './translate';

/** What became of a charge point's failsafe profile (on a change of it). */
export interface FailsafeEvent {
  type: 'failsafe';
  identity: string;
  /** `applied`: the charger accepted it; `failed`: refused or no answer (retried); `unknown`: not sent. */
  status: 'applied' | 'failed' | 'unknown';
  message: string;
}

/** Default seconds without the gateway before a charger steps down to its failsafe share. */
export const DEFAULT_FAILSAFE_AFTER_S = 60;
/** Calls waiting or without an answer from which the central system is busy for a refresh. */
export const BUSY_CALLS = 64;
/** How long a refresh waits when the central system is busy, ms: a quarter interval at most. */
export const yieldMs = (intervalMs: number): number => Math.min(1000, intervalMs / 4);

/** The shortest refresh interval, s: `failsafeAfterS` is at least 3 times this. */
export const MIN_REFRESH_S = 0.5;
const MAX_AFTER_S = 86_400;

/**
 * The fraction (0 to 1/2) of the refresh interval by which the first refresh after a fresh
 * send comes earlier, fixed per identity (FNV-1a of it): spreads a fleet's refreshes.
 */
export function refreshStagger(identity: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < identity.length; i++) h = Math.imul(h ^ identity.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 2 ** 33;
}

/** Throws a clear error unless `v` is a valid failsafeAfterS. */
export function checkFailsafeAfterS(v: unknown, where: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 3 * MIN_REFRESH_S || v > MAX_AFTER_S)
    throw new TypeError(
      `${where}: failsafeAfterS must be a number of seconds from ${3 * MIN_REFRESH_S} to ${MAX_AFTER_S} (it is refreshed every third of it), got ${JSON.stringify(v)}`,
    );
}

interface Cap {
  kw: number;
  /** Epoch ms; null: until replaced. */
  until: number | null;
}

interface Station {
  timer?: NodeJS.Timeout;
  /** The SET_POWER_LIMIT setpoint the charger accepted, in force until `until`. */
  cap?: Cap;
  /** One sent and not answered yet (the refreshes meanwhile carry it: they queue after it). */
  pending?: Cap & { id: string };
  /** The refresh waiting for its answer: no other is queued behind it. */
  inFlight?: object;
  /** How long the refresh now due has waited for a central system less busy, ms. */
  yieldedMs?: number;
  status?: FailsafeEvent['status'];
  message?: string;
}

export interface StationFailsafeDeps {
  host: AdapterHost;
  central: CentralSystem;
  byIdentity: ReadonlyMap<string, ChargerConfig[]>;
  learned: LearnedCapabilities;
  /** Default seconds before the step (a charger's `failsafeAfterS` overrides it). */
  afterS: number;
  tell: (e: FailsafeEvent & { assetIds: string[] }) => void;
  onError: (err: Error) => void;
}

export class StationFailsafe {
  private readonly stations = new Map<string, Station>();
  private running = false;

  constructor(private readonly d: StationFailsafeDeps) {}

  private station(identity: string): Station {
    let s = this.stations.get(identity);
    if (!s) {
      s = {};
      this.stations.set(identity, s);
    }
    return s;
  }

  private list(identity: string): ChargerConfig[] {
    return this.d.byIdentity.get(identity) ?? [];
  }

  /** Seconds before the step: the shortest of its chargers' overrides, else the default. */
  afterS(identity: string): number {
    const own = this.list(identity)
      .map((c) => c.failsafeAfterS)
      .filter((v): v is number => v !== undefined);
    return own.length ? Math.min(...own) : this.d.afterS;
  }

  /** The charge point's failsafe share: the sum of its chargers', if every one is known. */
  shareKw(identity: string): number | undefined {
    let sum = 0;
    for (const c of this.list(identity)) {
      let kw: number | undefined = c.failsafeKw;
      if (kw === undefined && this.d.host.failsafeKw) {
        try {
          kw = this.d.host.failsafeKw(c.assetId);
        } catch (err) {
          this.d.onError(err instanceof Error ? err : new Error(String(err)));
          return undefined;
        }
      }
      if (kw === undefined || !Number.isFinite(kw) || kw < 0) return undefined;
      sum += kw;
    }
    return this.list(identity).length ? sum : undefined;
  }

  /** The charge point's rating: the sum of its chargers' ratedKw, if every one is given. */
  private ratedKw(identity: string): number | undefined {
    const list = this.list(identity);
    if (!list.length || list.some((c) => c.ratedKw === undefined)) return undefined;
    return list.reduce((s, c) => s + (c.ratedKw ?? 0), 0);
  }

  /** The config the station profile is built with: its first charger's, in its learned unit. */
  private stationCharger(identity: string): ChargerConfig {
    const first = this.list(identity)[0] as ChargerConfig;
    const unit = this.d.learned.unitOf(first.assetId);
    return unit ? { ...first, unit } : first;
  }

  /** Why the charge point gets no failsafe profile, or null when it does. */
  private why(identity: string): string | null {
    const first = this.list(identity)[0];
    if (!first) return 'not a charger of this adapter';
    if (this.d.learned.lacks(first.assetId, 'smartCharging') !== undefined)
      return 'it has no smart charging';
    if (this.d.learned.lacks(first.assetId, 'maxProfile') !== undefined)
      return 'it does not implement the station maximum profile';
    if (this.shareKw(identity) === undefined) return 'no failsafe share is known';
    if (this.ratedKw(identity) === undefined)
      return 'ratedKw is not configured (the first period of the profile is the rating)';
    return null;
  }

  /** Whether the charge point holds the failsafe profile (its setpoints then expire). */
  active(identity: string): boolean {
    return this.why(identity) === null;
  }

  /** The cap in force: a SET_POWER_LIMIT setpoint that has not expired, else the rating. */
  private capKw(identity: string, now: number): number {
    const s = this.stations.get(identity);
    const cap = s?.pending ?? s?.cap;
    if (cap && (cap.until === null || now < cap.until)) return cap.kw;
    return this.ratedKw(identity) as number;
  }

  /**
   * What a setpoint's call to `charger` gets from the chain (nothing without it): Tx profiles
   * expire `afterS` after the command's validUntil, and SET_POWER_LIMIT becomes the cap of
   * the two-period station profile.
   */
  optionsFor(charger: ChargerConfig, isCap: boolean): FailsafeOptions {
    const identity = charger.identity;
    if (!this.active(identity)) return {};
    const afterS = this.afterS(identity);
    if (!isCap) return { validToAfterS: afterS };
    const now = this.d.host.clock.now();
    return {
      station: {
        charger: this.stationCharger(identity),
        failsafeKw: this.shareKw(identity) as number,
        afterS,
        now,
      },
    };
  }

  /** A SET_POWER_LIMIT setpoint goes out: refreshes carry it until it is answered. */
  noteCap(identity: string, cmd: Command): void {
    if (this.d.byIdentity.has(identity))
      this.station(identity).pending = {
        id: cmd.id,
        kw: cmd.valueKw,
        until: cmd.validUntil?.getTime() ?? null,
      };
  }

  /** Its answer: accepted, it is the cap of the refreshes while in force; else the old one. */
  settleCap(identity: string, commandId: string, accepted: boolean): void {
    const s = this.stations.get(identity);
    if (!s?.pending || s.pending.id !== commandId) return;
    if (accepted) s.cap = { kw: s.pending.kw, until: s.pending.until };
    s.pending = undefined;
  }

  /**
   * Sends the profile to the charge point after `delayMs` (a connect, a boot, a change of
   * its share), replacing a refresh that was waiting; then every third of `afterS`.
   */
  schedule(identity: string, delayMs: number, periodic = false): void {
    if (!this.running || !this.d.byIdentity.has(identity)) return;
    const s = this.station(identity);
    if (s.timer) clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      s.timer = undefined;
      this.send(identity, periodic).catch((err) => this.d.onError(err as Error));
    }, delayMs);
    s.timer.unref?.();
  }

  /** The connection went: no refresh until it is back (the charger steps down on its own). */
  disconnected(identity: string): void {
    const s = this.stations.get(identity);
    if (s?.timer) clearTimeout(s.timer);
    if (s) {
      s.timer = undefined;
      s.status = undefined;
      s.inFlight = undefined;
      s.yieldedMs = 0;
    }
  }

  /** Sends the profile now to the connected charge points of `assetId`, or all. */
  refresh(assetId?: string): void {
    for (const [identity, list] of this.d.byIdentity) {
      if (assetId !== undefined && !list.some((c) => c.assetId === assetId)) continue;
      if (this.d.central.isConnected(identity)) this.schedule(identity, 0);
    }
  }

  start(): void {
    this.running = true;
  }

  stop(): void {
    this.running = false;
    for (const s of this.stations.values()) if (s.timer) clearTimeout(s.timer);
    this.stations.clear();
  }

  /** What is wrong, in short, for a status: e.g. `CP1: failsafe profile failed`. */
  summary(): string[] {
    const out: string[] = [];
    for (const [identity, s] of this.stations)
      if (s.status === 'failed') out.push(`${identity}: failsafe profile failed`);
    return out;
  }

  private report(identity: string, status: FailsafeEvent['status'], message: string): void {
    const s = this.station(identity);
    if (s.status === status && s.message === message) return;
    s.status = status;
    s.message = message;
    this.d.tell({
      type: 'failsafe',
      identity,
      status,
      message,
      assetIds: this.list(identity).map((c) => c.assetId),
    });
  }

  /**
   * Queues the profile on the charger's call queue now (before anything queued after this
   * call, e.g. a re-applied setpoint and its confirmation), and refreshes it from then on.
   */
  sendNow(identity: string): void {
    if (!this.running || !this.d.byIdentity.has(identity)) return;
    const s = this.station(identity);
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    this.send(identity).catch((err) => this.d.onError(err as Error));
  }

  /** `periodic`: a refresh (the next one comes a whole interval later, else a little earlier). */
  private async send(identity: string, periodic = false): Promise<void> {
    const version = this.d.central.protocolOf(identity);
    if (!this.running || !version) return;
    const afterS = this.afterS(identity);
    const intervalMs = (afterS * 1000) / 3;
    const s = this.station(identity);
    // First, as it is cheap: hundreds of refreshes may come due in one turn of a busy slot.
    if (periodic && this.yields(s, intervalMs)) {
      this.schedule(identity, yieldMs(intervalMs), true);
      return;
    }
    s.yieldedMs = 0;
    const why = this.why(identity);
    // No share known: nothing to say (the chain is not in use for it), as before.
    if (why !== null && this.shareKw(identity) === undefined) return;
    if (why !== null) {
      this.report(identity, 'unknown', `charger ${identity}: no failsafe profile sent: ${why}`);
      return;
    }
    // The next refresh, whatever becomes of this one (a failure is retried then); never later
    // than a third of afterS after this one.
    this.schedule(
      identity,
      periodic ? intervalMs : intervalMs * (1 - refreshStagger(identity)),
      true,
    );
    // A charger that does not answer: one refresh waits in its queue, not one per interval.
    if (s.inFlight) return;
    const token = {};
    s.inFlight = token;
    try {
      await this.sendProfile(identity, afterS);
    } finally {
      if (s.inFlight === token) s.inFlight = undefined;
    }
  }

  /**
   * Whether the refresh now due waits for a central system less busy: yes while it is busy
   * and the refresh has waited less than half an interval in all (it then goes regardless).
   */
  private yields(s: Station, intervalMs: number): boolean {
    const central = this.d.central;
    const busy = central.waitingCalls > 0 || central.callsInFlight >= BUSY_CALLS;
    const waited = s.yieldedMs ?? 0;
    const more = yieldMs(intervalMs);
    if (!busy || waited + more > intervalMs / 2) return false;
    s.yieldedMs = waited + more;
    return true;
  }

  private async sendProfile(identity: string, afterS: number): Promise<void> {
    const version = this.d.central.protocolOf(identity);
    if (!version) return;
    const now = this.d.host.clock.now();
    const capKw = this.capKw(identity, now);
    const failsafeKw = this.shareKw(identity) as number;
    const call = stationMaxCall(this.stationCharger(identity), version, {
      capKw,
      failsafeKw,
      afterS,
      now,
    });
    const what = `failsafe profile (${capKw} kW, ${Math.min(capKw, failsafeKw)} kW after ${afterS} s)`;
    let answer: unknown;
    try {
      answer = await this.d.central.call(identity, call.method, call.params);
    } catch (err) {
      const code = (err as { rpcErrorCode?: unknown }).rpcErrorCode;
      const message = err instanceof Error ? err.message : String(err);
      if (typeof code === 'string' && NOT_IMPLEMENTED.has(code))
        return this.unsupported(identity, code);
      if (!this.d.central.isConnected(identity)) return; // gone: sent again on the next connect
      this.report(identity, 'failed', `charger ${identity}: ${what} not applied: ${message}`);
      return;
    }
    const status = (answer as { status?: unknown } | null)?.status;
    if (status === 'NotSupported') return this.unsupported(identity, status);
    const verdict = interpretResponse(call.method, answer);
    if (!verdict.accepted) {
      this.report(identity, 'failed', `charger ${identity}: ${what} refused: ${verdict.reason}`);
      return;
    }
    this.report(identity, 'applied', `charger ${identity}: ${what} applied`);
  }

  /** Remembers (until it boots) that the charger lacks the profile; told once; no retries. */
  private unsupported(identity: string, answer: string): void {
    const s = this.stations.get(identity);
    if (s?.timer) clearTimeout(s.timer);
    if (s) {
      s.timer = undefined;
      s.status = undefined;
    }
    this.d.learned.learn(
      identity,
      'maxProfile',
      answer,
      `charger ${identity} answered ${answer} to its station maximum profile: it gets no failsafe profile and keeps its last limits when the gateway is gone, until it boots again`,
    );
  }
}
