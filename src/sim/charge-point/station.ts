/**
 * The simulated charge point's device state, without I/O: plugged or not, faults,
 * availability, the transaction, the charging profiles (kept and evaluated by
 * ../charging-profiles.ts), the limit in force, the power the EV draws and the energy it
 * took. The dialects turn it into OCPP calls; the session recomputes it (`refresh`).
 */

import {
  composite,
  limitAt,
  nextChange,
  type ProfileContext,
  type SimChargingProfile,
  withProfile,
} from '../charging-profiles';
import type { Ocpp16ErrorCode, SimStatus } from './types';

export interface Transaction {
  /** 1.6: the integer from StartTransaction.conf; 2.0.1: a UUID the station made. */
  id: number | string;
  idTag: string;
  startedAt: number;
  /** The EV is authorised and may draw power. */
  charging: boolean;
  remoteStartId?: number;
  /** 2.0.1 TransactionEvent sequence number. */
  seqNo: number;
}

export interface StationConfig {
  evMaxW: number;
  voltage: number;
  phases: number;
  initialSocPercent?: number;
  batteryKwh: number;
}

export class Station {
  plugged = false;
  faulted = false;
  errorCode: Ocpp16ErrorCode = 'InternalError';
  /** ChangeAvailability Inoperative on the whole station / on our connector. */
  stationUnavailable = false;
  connectorUnavailable = false;
  /** Availability to apply when the running transaction ends (answered Scheduled). */
  scheduledAvailability: { station: boolean; operative: boolean } | null = null;
  /** 1.6: the transaction ended and the cable is still in (Finishing). */
  finishing = false;
  tx: Transaction | null = null;
  profiles: SimChargingProfile[] = [];
  limitW: number | null = null;
  powerW = 0;
  private energy = 0;
  private lastT: number;

  constructor(
    readonly cfg: StationConfig,
    now: number,
  ) {
    this.lastT = now;
  }

  get unavailable(): boolean {
    return this.stationUnavailable || this.connectorUnavailable;
  }

  get status(): SimStatus {
    if (this.faulted) return 'Faulted';
    if (this.unavailable && !this.tx) return 'Unavailable';
    if (!this.plugged) return 'Available';
    if (this.tx?.charging) {
      if (this.powerW > 0) return 'Charging';
      return this.limitW !== null && this.limitW <= 0 ? 'SuspendedEVSE' : 'SuspendedEV';
    }
    return this.finishing ? 'Finishing' : 'Preparing';
  }

  energyAt(now: number): number {
    return this.energy + (this.powerW * Math.max(0, now - this.lastT)) / 3_600_000;
  }

  socAt(now: number): number | undefined {
    const initial = this.cfg.initialSocPercent;
    if (initial === undefined) return undefined;
    return Math.min(100, initial + (this.energyAt(now) / (this.cfg.batteryKwh * 1000)) * 100);
  }

  /** Integrates energy up to `now`, then recomputes the limit and the power. */
  refresh(now: number): void {
    this.energy = this.energyAt(now);
    this.lastT = Math.max(this.lastT, now);
    this.limitW = this.limitAt(now);
    const full = (this.socAt(now) ?? 0) >= 100;
    const drawing =
      !!this.tx?.charging && this.plugged && !this.faulted && !this.unavailable && !full;
    this.powerW = drawing ? Math.max(0, Math.min(this.limitW ?? Infinity, this.cfg.evMaxW)) : 0;
  }

  private get ctx(): ProfileContext {
    return { tx: this.tx, voltage: this.cfg.voltage, phases: this.cfg.phases };
  }

  /** The limit in force at `t`, W, by its profiles (charging-profiles.ts); null: none limits. */
  limitAt(t: number): number | null {
    return limitAt(this.profiles, t, this.ctx);
  }

  /** The first time after `now` at which the limit may change (a period, validTo), if any. */
  nextChange(now: number): number | undefined {
    return nextChange(this.profiles, now, this.ctx);
  }

  /** The limit from `now` over `durationS` as periods (s from now, W), for GetCompositeSchedule. */
  composite(now: number, durationS: number): { startPeriod: number; limitW: number }[] {
    return composite(this.profiles, now, durationS, this.ctx, this.cfg.evMaxW);
  }

  /** Stores a profile: it replaces one with the same id, or the same purpose and stackLevel. */
  setProfile(p: SimChargingProfile): void {
    this.profiles = withProfile(this.profiles, p);
  }

  /** Removes the profiles that match every given criterion; true if any was removed. */
  clearProfiles(c: {
    id?: number;
    target?: number;
    purpose?: string;
    stackLevel?: number;
  }): boolean {
    const before = this.profiles.length;
    this.profiles = this.profiles.filter(
      (p) =>
        !(
          (c.id === undefined || p.id === c.id) &&
          (c.target === undefined || p.target === c.target) &&
          (c.purpose === undefined || p.purpose === c.purpose) &&
          (c.stackLevel === undefined || p.stackLevel === c.stackLevel)
        ),
    );
    return this.profiles.length < before;
  }

  beginTx(id: number | string, idTag: string, now: number, charging: boolean): Transaction {
    this.tx = { id, idTag, startedAt: now, charging, seqNo: 0 };
    this.finishing = false;
    return this.tx;
  }

  /** Ends the transaction: TxProfiles go with it, a scheduled availability applies. */
  endTx(): void {
    this.tx = null;
    this.finishing = this.plugged;
    this.profiles = this.profiles.filter((p) => p.purpose !== 'TxProfile');
    const s = this.scheduledAvailability;
    if (s) {
      this.setAvailability(s.station, s.operative);
      this.scheduledAvailability = null;
    }
  }

  setAvailability(station: boolean, operative: boolean): void {
    if (station) this.stationUnavailable = !operative;
    else this.connectorUnavailable = !operative;
  }

  /** Whether a new transaction may start now. */
  get canStart(): boolean {
    return !this.faulted && !this.unavailable && !this.tx?.charging;
  }
}
