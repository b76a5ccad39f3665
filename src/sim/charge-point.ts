/**
 * A simulated OCPP charge point (OCPP-J 1.6 or 2.0.1) on ocpp-rpc's client, in strict mode:
 * every call it sends and every call it accepts is checked against the official schemas.
 *
 * It boots, reports its status, plugs in an EV, runs transactions, follows the charging
 * profiles that it is given (power = min(active limit, EV maximum)), integrates energy and
 * sends meter values, and reconnects with backoff (booting again, or with
 * `bootOnReconnect: false` resuming silently as many real chargers do).
 *
 * Faults that the field produces, for fault tests: `dropConnection` (the network drops: the
 * TCP socket is destroyed, or closed cleanly, and the charger comes back after a delay without
 * BootNotification or StatusNotification, keeping its transaction and profiles), `reboot`
 * (the connection goes, the transaction ends, the profiles are forgotten unless kept, and it
 * boots again with BootNotification and StatusNotification). It answers TriggerMessage
 * StatusNotification (1.6 with or without connectorId, 2.0.1 with or without evse) and
 * GetCompositeSchedule. `activeLimitW` is the limit it applies now and `limitHistory` every
 * change of it with its time, so that a test can count lost or stale setpoints.
 *
 * Quirks of real chargers, as options, for tests of what a central system confirms:
 * `quirk: 'ignore-profile'` (SetChargingProfile answered Accepted, nothing applied),
 * `compositeSchedule: false` (GetCompositeSchedule answered NotImplemented), `smartCharging:
 * false` (SetChargingProfile answered NotImplemented), `minCurrentA` (a limit between 0 and
 * this many A per phase is raised to it, 0 still pauses: the IEC 61851 minimum of 6 A) and
 * `applyDelayMs` (a profile is checked and accepted at once but applied only after the delay;
 * the composite schedule gives the old limit until then) and `honourUnit` (limits are
 * followed in one unit only, W or A: a profile in the other is answered Accepted and ignored).
 *
 * The shape: `Station` holds the device state (no I/O); one `Dialect` per OCPP version turns
 * that state into calls and incoming calls into state; `ChargePointSimulator` owns the
 * connection, the timers and the events.
 *
 * Profiles are checked, stored and evaluated by charging-profiles.ts; the limit in force is
 * recomputed at each step of a schedule (and validTo), connected or not, so a station maximum
 * profile that steps down while the central system is gone is followed on time; `limitAt(t)`
 * tells the limit the charger's own profiles put in force at any time.
 *
 * Simplifications, on purpose: one connector (1.6) / one EVSE with connector 1 (2.0.1);
 * messages are not queued while offline (the methods
 * that need the connection throw, meter ticks are skipped); Reset is answered, not performed.
 */

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRPCError, NOREPLY, RPCClient, UnexpectedHttpResponse } from 'ocpp-rpc';
import { type Clock, systemClock } from '../clock';
import {
  CAPS,
  type ChargingSchedule,
  composite,
  limitAt,
  nextChange,
  type ProfileContext,
  type ProfilePurpose,
  profileProblem,
  type SimChargingProfile,
  withProfile,
} from './charging-profiles';

export type { ProfilePurpose, SimChargingProfile } from './charging-profiles';

export type OcppProtocol = 'ocpp1.6' | 'ocpp2.0.1';

/** The connector's status, in OCPP 1.6 words (2.0.1 maps them, see `Dialect201`). */
export type SimStatus =
  | 'Available'
  | 'Preparing'
  | 'Charging'
  | 'SuspendedEVSE'
  | 'SuspendedEV'
  | 'Finishing'
  | 'Unavailable'
  | 'Faulted';

/** Why a transaction stopped: the values that both versions' enums share. */
export type StopReason =
  | 'Local'
  | 'Remote'
  | 'EVDisconnected'
  | 'DeAuthorized'
  | 'EmergencyStop'
  | 'PowerLoss'
  | 'Reboot'
  | 'Other';

/** OCPP 1.6 StatusNotification errorCode (2.0.1 StatusNotification has none). */
export const OCPP16_ERROR_CODES = [
  'ConnectorLockFailure',
  'EVCommunicationError',
  'GroundFailure',
  'HighTemperature',
  'InternalError',
  'OtherError',
  'OverCurrentFailure',
  'PowerMeterFailure',
  'PowerSwitchFailure',
  'ReaderFailure',
  'UnderVoltage',
  'OverVoltage',
] as const;
export type Ocpp16ErrorCode = (typeof OCPP16_ERROR_CODES)[number];

/**
 * Test hook: overrides the answer to an incoming call. `Accepted`, `Rejected`,
 * `NotSupported` are sent as the `status` of the response when that method's schema allows
 * the value (without doing anything else), otherwise as a CALLERROR (`NotSupported`, or
 * `GenericError` for `Rejected`); `NotImplemented` is a CALLERROR; `noreply` never answers;
 * `undefined` lets the simulator answer normally.
 */
export type RespondHook = (
  method: string,
  params: unknown,
) => 'Accepted' | 'Rejected' | 'NotSupported' | 'NotImplemented' | 'noreply' | undefined;

export interface ChargePointSimulatorOptions {
  /** The central system's URL without the identity, e.g. `ws://127.0.0.1:9220/ocpp`. */
  endpoint: string;
  identity: string;
  protocol: OcppProtocol;
  /** HTTP Basic password (OCPP security profile 1); the user name is the identity. */
  password?: string;
  /** Passed to the `ws` WebSocket, e.g. `{ ca }` for wss. */
  wsOptions?: Record<string, unknown>;
  /** OCPP 1.6 connector (default 1). */
  connectorId?: number;
  /** OCPP 2.0.1 EVSE (default 1); its connector is 1. */
  evseId?: number;
  /** The most the EV draws, kW (default 11). */
  evMaxKw?: number;
  /** For limits in A: W = A x voltage x phases (defaults 230 V, 3 phases). */
  voltage?: number;
  phases?: number;
  /** Meter values every this many ms while connected (default 10,000; 0: none). */
  meterIntervalMs?: number;
  /** If given, the EV reports SoC, integrated with `batteryKwh` (default 60). */
  initialSocPercent?: number;
  batteryKwh?: number;
  /** Reconnect after losing the connection, with exponential backoff (default true). */
  reconnect?: boolean;
  /**
   * Send BootNotification again after such a reconnect (default true). false: resume as
   * after a network blip, without BootNotification or StatusNotification (many real chargers).
   */
  bootOnReconnect?: boolean;
  backoff?: Partial<BackoffOptions>;
  /** Timeout of the calls that the simulator sends (default 30,000 ms). */
  callTimeoutMs?: number;
  /** Send Authorize before a local start (`startCharging`); default true. */
  authorize?: boolean;
  /** Time source of timestamps, energy and schedules (default: the system clock). */
  clock?: Clock;
  vendor?: string;
  model?: string;
  respond?: RespondHook;
  /** `ignore-profile`: answers SetChargingProfile Accepted and applies nothing. */
  quirk?: 'ignore-profile';
  /** false: answers GetCompositeSchedule with NotImplemented (default true). */
  compositeSchedule?: boolean;
  /** false: answers SetChargingProfile with NotImplemented, no smart charging (default true). */
  smartCharging?: boolean;
  /** A limit above 0 and below this many A per phase is raised to it (e.g. 6); 0 still pauses. */
  minCurrentA?: number;
  /** Applies an accepted profile only this many ms later (default 0: at once). */
  applyDelayMs?: number;
  /** Follows limits only in this unit: a profile in the other is answered Accepted, ignored. */
  honourUnit?: 'W' | 'A';
}

/** A change of the limit that the charger applies, and what it draws then. */
export interface LimitChange {
  /** Epoch ms (the simulator's clock). */
  at: number;
  /** The limit in force from then, W (null: no profile limits). */
  limitW: number | null;
  powerW: number;
}

export interface BackoffOptions {
  initialDelay: number;
  maxDelay: number;
  factor: number;
  randomisationFactor: number;
}

type Params = Record<string, unknown>;
type Result = Record<string, unknown>;
type ClientOptions = ConstructorParameters<typeof RPCClient>[0];

const round1 = (x: number): number => Math.round(x * 10) / 10;

// ---------------------------------------------------------------------------------------
// Station: the device, without I/O

interface Transaction {
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

interface StationConfig {
  evMaxW: number;
  voltage: number;
  phases: number;
  initialSocPercent?: number;
  batteryKwh: number;
}

class Station {
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

// ---------------------------------------------------------------------------------------
// What the dialects need from the simulator

interface Link {
  readonly station: Station;
  readonly opts: Resolved;
  /** What the central system was last told, so that a change is reported once. */
  readonly reported: {
    status?: string;
    station?: string;
    chargingState?: string;
    /** 2.0.1: the transaction whose TransactionEvent Started went out. */
    txId?: number | string;
  };
  now(): number;
  iso(t?: number): string;
  /** Sends a call (strict mode validates it) and returns the response. */
  send(method: string, params: Params): Promise<Result>;
  /** Recomputes limit and power, and emits 'profile' / 'power' when they changed. */
  sync(): void;
  /** Runs `fn` after the answer to the current incoming call has gone out. */
  after(fn: () => Promise<unknown>): void;
  /** Runs `fn` in `ms` unless the charger reboots or stops first (`applyDelayMs`). */
  later(ms: number, fn: () => void): void;
}

type Resolved = Required<
  Pick<
    ChargePointSimulatorOptions,
    | 'connectorId'
    | 'evseId'
    | 'evMaxKw'
    | 'voltage'
    | 'phases'
    | 'meterIntervalMs'
    | 'batteryKwh'
    | 'reconnect'
    | 'bootOnReconnect'
    | 'callTimeoutMs'
    | 'authorize'
    | 'vendor'
    | 'model'
  >
> &
  ChargePointSimulatorOptions;

type Handler = (link: Link, params: Params) => Result;

/** What a remote start brings: 2.0.1 its remoteStartId; both versions maybe a TxProfile. */
interface RemoteStart {
  remoteStartId?: number;
  profile?: SimChargingProfile;
}

interface Dialect {
  bootCall(link: Link): [string, Params];
  /** Sends StatusNotification (and 2.0.1 charging state) for what changed, or all if `force`. */
  report(link: Link, force?: boolean): Promise<void>;
  plugIn(link: Link): Promise<void>;
  /**
   * Starts (or authorises) the transaction. A remote start's `profile` (its TxProfile) is
   * put in force together with the transaction, before anything reports it charging, as a
   * real charger does: the EV never draws more than the profile allows.
   */
  startCharging(link: Link, idTag: string, remote?: RemoteStart): Promise<void>;
  stopCharging(link: Link, reason: StopReason): Promise<void>;
  unplug(link: Link): Promise<void>;
  meterValues(link: Link, context: 'Sample.Periodic' | 'Trigger'): Promise<void>;
  /** Incoming calls, by method. */
  handlers: Record<string, Handler>;
}

/** The sampled values of a meter reading, in the version's shape. */
function samples(link: Link, v16: boolean, context: string): Params[] {
  const now = link.now();
  const st = link.station;
  const values: [string, number, string, string?][] = [
    ['Power.Active.Import', st.powerW, 'W'],
    ['Energy.Active.Import.Register', round1(st.energyAt(now)), 'Wh'],
  ];
  const soc = st.socAt(now);
  if (soc !== undefined) values.push(['SoC', round1(soc), 'Percent', 'EV']);
  return values.map(([measurand, value, unit, location]) => ({
    value: v16 ? String(value) : value,
    context,
    measurand,
    ...(v16 ? { unit } : { unitOfMeasure: { unit } }),
    ...(location ? { location } : {}),
  }));
}

/** What both versions share about a profile; the caller picks the schedule and target. */
function toSimProfile(
  raw: Params,
  id: number,
  schedule: ChargingSchedule,
  target: number,
  now: number,
): SimChargingProfile {
  const p: SimChargingProfile = {
    id,
    purpose: raw.chargingProfilePurpose as ProfilePurpose,
    stackLevel: raw.stackLevel as number,
    kind: raw.chargingProfileKind as SimChargingProfile['kind'],
    target,
    chargingSchedule: structuredClone(schedule),
    receivedAt: now,
  };
  if (raw.recurrencyKind !== undefined) p.recurrencyKind = raw.recurrencyKind as 'Daily';
  if (raw.transactionId !== undefined) p.transactionId = raw.transactionId as number | string;
  if (raw.validFrom !== undefined) p.validFrom = raw.validFrom as string;
  if (raw.validTo !== undefined) p.validTo = raw.validTo as string;
  return p;
}

/**
 * Checks a profile as real chargers do and stores it: 'Accepted' or 'Rejected'.
 * Station maxima only on target 0; TxProfile only on our connector, with a running
 * transaction (and its id, if it names one; 2.0.1 requires it).
 */
function applyProfile(link: Link, p: SimChargingProfile, ours: number, needTxId: boolean): string {
  const st = link.station;
  if (p.target !== 0 && p.target !== ours) return 'Rejected';
  if (CAPS.includes(p.purpose) && p.target !== 0) return 'Rejected';
  if (p.purpose === 'TxProfile') {
    if (p.target === 0 || !st.tx) return 'Rejected';
    if (p.transactionId === undefined ? needTxId : p.transactionId !== st.tx.id) return 'Rejected';
    p.transactionId = st.tx.id;
  }
  if (profileProblem(p) !== null) return 'Rejected';
  const { quirk, minCurrentA, applyDelayMs, honourUnit } = link.opts;
  if (quirk === 'ignore-profile') return 'Accepted';
  if (honourUnit && p.chargingSchedule.chargingRateUnit !== honourUnit) return 'Accepted';
  if (minCurrentA !== undefined && minCurrentA > 0) {
    const perAmp = (n?: number) => link.opts.voltage * (n ?? link.opts.phases);
    for (const period of p.chargingSchedule.chargingSchedulePeriod) {
      const min =
        p.chargingSchedule.chargingRateUnit === 'A'
          ? minCurrentA
          : minCurrentA * perAmp(period.numberPhases);
      if (period.limit > 0 && period.limit < min) period.limit = round1(min);
    }
  }
  const apply = () => {
    st.setProfile(p);
    link.sync();
  };
  if (applyDelayMs !== undefined && applyDelayMs > 0) link.later(applyDelayMs, apply);
  else apply();
  return 'Accepted';
}

function compositePeriods(link: Link, durationS: number, unit: 'A' | 'W' | undefined) {
  const { voltage, phases } = link.opts;
  const chargingRateUnit = unit ?? 'W';
  const chargingSchedulePeriod = link.station
    .composite(link.now(), durationS)
    .map(({ startPeriod, limitW }) => ({
      startPeriod,
      limit: round1(chargingRateUnit === 'W' ? limitW : limitW / (voltage * phases)),
    }));
  return { chargingRateUnit, chargingSchedulePeriod };
}

// ---------------------------------------------------------------------------------------
// OCPP 1.6

const dialect16: Dialect = {
  bootCall: (link) => [
    'BootNotification',
    { chargePointVendor: link.opts.vendor, chargePointModel: link.opts.model },
  ],

  async report(link, force = false) {
    const st = link.station;
    const calls: Params[] = [];
    const station = st.stationUnavailable ? 'Unavailable' : 'Available';
    if (force || link.reported.station !== station) {
      link.reported.station = station;
      calls.push({ connectorId: 0, status: station });
    }
    const status = st.status;
    if (force || link.reported.status !== status) {
      link.reported.status = status;
      calls.push({ connectorId: link.opts.connectorId, status });
    }
    for (const c of calls) {
      const errorCode = c.status === 'Faulted' ? st.errorCode : 'NoError';
      await link.send('StatusNotification', { ...c, errorCode, timestamp: link.iso() });
    }
  },

  async plugIn(link) {
    link.station.plugged = true;
    link.station.finishing = false;
    link.sync();
    await this.report(link);
  },

  async startCharging(link, idTag, remote) {
    const st = link.station;
    if (!st.canStart) throw new Error(`cannot start charging while ${st.status}`);
    if (!st.plugged) await this.plugIn(link);
    if (!remote && link.opts.authorize) {
      const auth = await link.send('Authorize', { idTag });
      const status = (auth.idTagInfo as { status: string }).status;
      if (status !== 'Accepted') throw new Error(`Authorize: idTag ${idTag} is ${status}`);
    }
    const meterStart = Math.round(st.energyAt(link.now()));
    const res = await link.send('StartTransaction', {
      connectorId: link.opts.connectorId,
      idTag,
      meterStart,
      timestamp: link.iso(),
    });
    st.beginTx(res.transactionId as number, idTag, link.now(), true);
    const status = (res.idTagInfo as { status: string }).status;
    // The remote start's profile first, then the status that says Charging.
    if (status === 'Accepted' && remote?.profile) {
      applyProfile(link, remote.profile, link.opts.connectorId, false);
    }
    link.sync();
    if (status !== 'Accepted') {
      await this.stopCharging(link, 'DeAuthorized');
      throw new Error(`StartTransaction: idTag ${idTag} is ${status}`);
    }
    await this.report(link);
  },

  async stopCharging(link, reason) {
    const st = link.station;
    const tx = st.tx;
    if (!tx) return;
    link.sync();
    st.endTx();
    link.sync();
    await link.send('StopTransaction', {
      transactionId: tx.id as number,
      idTag: tx.idTag,
      meterStop: Math.round(st.energyAt(link.now())),
      timestamp: link.iso(),
      reason,
    });
    await this.report(link);
  },

  async unplug(link) {
    if (link.station.tx) await this.stopCharging(link, 'EVDisconnected');
    link.station.plugged = false;
    link.station.finishing = false;
    link.sync();
    await this.report(link);
  },

  async meterValues(link, context) {
    const tx = link.station.tx;
    await link.send('MeterValues', {
      connectorId: link.opts.connectorId,
      ...(tx ? { transactionId: tx.id } : {}),
      meterValue: [{ timestamp: link.iso(), sampledValue: samples(link, true, context) }],
    });
  },

  handlers: {
    SetChargingProfile(link, p) {
      const raw = p.csChargingProfiles as Params;
      const schedule = raw.chargingSchedule as ChargingSchedule;
      const profile = toSimProfile(
        raw,
        raw.chargingProfileId as number,
        schedule,
        p.connectorId as number,
        link.now(),
      );
      return { status: applyProfile(link, profile, link.opts.connectorId, false) };
    },

    ClearChargingProfile(link, p) {
      const cleared = link.station.clearProfiles({
        id: p.id as number | undefined,
        target: p.connectorId as number | undefined,
        purpose: p.chargingProfilePurpose as string | undefined,
        stackLevel: p.stackLevel as number | undefined,
      });
      link.sync();
      return { status: cleared ? 'Accepted' : 'Unknown' };
    },

    GetCompositeSchedule(link, p) {
      const connectorId = p.connectorId as number;
      if (connectorId !== 0 && connectorId !== link.opts.connectorId) return { status: 'Rejected' };
      const duration = p.duration as number;
      return {
        status: 'Accepted',
        connectorId,
        scheduleStart: link.iso(),
        chargingSchedule: {
          duration,
          startSchedule: link.iso(),
          ...compositePeriods(link, duration, p.chargingRateUnit as 'A' | 'W' | undefined),
        },
      };
    },

    RemoteStartTransaction(link, p) {
      const st = link.station;
      const connectorId = (p.connectorId as number | undefined) ?? link.opts.connectorId;
      const raw = p.chargingProfile as Params | undefined;
      if (connectorId !== link.opts.connectorId || !st.canStart || st.tx) {
        return { status: 'Rejected' };
      }
      if (raw && raw.chargingProfilePurpose !== 'TxProfile') return { status: 'Rejected' };
      const remote: RemoteStart = {};
      if (raw) {
        const schedule = raw.chargingSchedule as ChargingSchedule;
        const id = raw.chargingProfileId as number;
        remote.profile = toSimProfile(raw, id, schedule, connectorId, link.now());
      }
      link.after(() => dialect16.startCharging(link, p.idTag as string, remote));
      return { status: 'Accepted' };
    },

    RemoteStopTransaction(link, p) {
      const tx = link.station.tx;
      if (!tx || tx.id !== p.transactionId) return { status: 'Rejected' };
      link.after(() => dialect16.stopCharging(link, 'Remote'));
      return { status: 'Accepted' };
    },

    ChangeAvailability(link, p) {
      const connectorId = p.connectorId as number;
      if (connectorId !== 0 && connectorId !== link.opts.connectorId) return { status: 'Rejected' };
      return changeAvailability(link, connectorId === 0, p.type === 'Operative', dialect16);
    },

    Reset: () => ({ status: 'Accepted' }),

    TriggerMessage(link, p) {
      const c = p.connectorId as number | undefined;
      if (c !== undefined && c !== 0 && c !== link.opts.connectorId) return { status: 'Rejected' };
      if (p.requestedMessage !== 'StatusNotification' || c === undefined) {
        return trigger(link, dialect16, p.requestedMessage as string);
      }
      // The status of that connector alone (0: the whole station).
      link.after(async () => {
        const st = link.station;
        const station = c === 0;
        const status = station ? (st.stationUnavailable ? 'Unavailable' : 'Available') : st.status;
        if (station) link.reported.station = status;
        else link.reported.status = status;
        const errorCode = status === 'Faulted' ? st.errorCode : 'NoError';
        await link.send('StatusNotification', {
          connectorId: c,
          status,
          errorCode,
          timestamp: link.iso(),
        });
      });
      return { status: 'Accepted' };
    },
  },
};

function changeAvailability(link: Link, station: boolean, operative: boolean, d: Dialect): Result {
  const st = link.station;
  if (st.tx && !operative) {
    st.scheduledAvailability = { station, operative };
    return { status: 'Scheduled' };
  }
  st.setAvailability(station, operative);
  link.sync();
  link.after(() => d.report(link));
  return { status: 'Accepted' };
}

function trigger(link: Link, d: Dialect, message: string): Result {
  const run: Record<string, () => Promise<unknown>> = {
    BootNotification: () => link.send(...d.bootCall(link)),
    Heartbeat: () => link.send('Heartbeat', {}),
    StatusNotification: () => d.report(link, true),
    MeterValues: () => d.meterValues(link, 'Trigger'),
  };
  const fn = run[message];
  if (!fn) return { status: 'NotImplemented' };
  link.after(fn);
  return { status: 'Accepted' };
}

// ---------------------------------------------------------------------------------------
// OCPP 2.0.1: the transaction starts when the cable goes in; StatusNotification only says
// Available / Occupied / Unavailable / Faulted, the rest is TransactionEvent chargingState.

const connectorStatus201: Record<SimStatus, string> = {
  Available: 'Available',
  Preparing: 'Occupied',
  Charging: 'Occupied',
  SuspendedEVSE: 'Occupied',
  SuspendedEV: 'Occupied',
  Finishing: 'Occupied',
  Unavailable: 'Unavailable',
  Faulted: 'Faulted',
};

function chargingState201(st: Station): string {
  const s = st.status;
  if (s === 'Charging' || s === 'SuspendedEV' || s === 'SuspendedEVSE') return s;
  return st.plugged ? 'EVConnected' : 'Idle';
}

/**
 * Whether the central system has been told of the running transaction (its Started went
 * out, its Ended did not): only then may an Updated go out, never before Started or after
 * Ended.
 */
function announced201(link: Link): boolean {
  const tx = link.station.tx;
  return !!tx && link.reported.txId === tx.id;
}

/** Sends a TransactionEvent for the running transaction. */
async function txEvent201(
  link: Link,
  eventType: 'Started' | 'Updated' | 'Ended',
  triggerReason: string,
  extra: { info?: Params; event?: Params; meter?: string } = {},
): Promise<Result> {
  const tx = link.station.tx;
  if (!tx) throw new Error('no transaction');
  const chargingState = chargingState201(link.station);
  link.reported.chargingState = chargingState;
  if (eventType === 'Started') link.reported.txId = tx.id;
  if (eventType === 'Ended') link.reported.txId = undefined;
  const params: Params = {
    eventType,
    timestamp: link.iso(),
    triggerReason,
    seqNo: tx.seqNo++,
    transactionInfo: {
      transactionId: tx.id,
      chargingState,
      ...(tx.remoteStartId !== undefined ? { remoteStartId: tx.remoteStartId } : {}),
      ...extra.info,
    },
    evse: { id: link.opts.evseId, connectorId: 1 },
    ...extra.event,
  };
  if (extra.meter) {
    params.meterValue = [
      { timestamp: link.iso(), sampledValue: samples(link, false, extra.meter) },
    ];
  }
  return link.send('TransactionEvent', params);
}

const dialect201: Dialect = {
  bootCall: (link) => [
    'BootNotification',
    {
      reason: 'PowerUp',
      chargingStation: { model: link.opts.model, vendorName: link.opts.vendor },
    },
  ],

  async report(link, force = false) {
    const st = link.station;
    const connector = connectorStatus201[st.status];
    if (force || link.reported.status !== connector) {
      link.reported.status = connector;
      await link.send('StatusNotification', {
        timestamp: link.iso(),
        connectorStatus: connector,
        evseId: link.opts.evseId,
        connectorId: 1,
      });
    }
    if (announced201(link) && link.reported.chargingState !== chargingState201(st)) {
      await txEvent201(link, 'Updated', 'ChargingStateChanged');
    }
  },

  async plugIn(link) {
    const st = link.station;
    if (st.plugged) return;
    st.plugged = true;
    link.sync();
    if (!st.canStart) return this.report(link);
    st.beginTx(randomUUID(), '', link.now(), false);
    await this.report(link);
    await txEvent201(link, 'Started', 'CablePluggedIn', { meter: 'Transaction.Begin' });
  },

  async startCharging(link, idTag, remote) {
    const st = link.station;
    if (!st.canStart) throw new Error(`cannot start charging while ${st.status}`);
    if (!st.plugged) await this.plugIn(link);
    const idToken = { idToken: idTag, type: remote ? 'Central' : 'ISO14443' };
    if (!remote && link.opts.authorize) {
      const auth = await link.send('Authorize', { idToken });
      const status = (auth.idTokenInfo as { status: string }).status;
      if (status !== 'Accepted') throw new Error(`Authorize: idToken ${idTag} is ${status}`);
    }
    const trigger = remote ? 'RemoteStart' : 'Authorized';
    const started = !st.tx;
    const tx = st.tx ?? st.beginTx(randomUUID(), idTag, link.now(), true);
    tx.idTag = idTag;
    tx.charging = true;
    if (remote?.remoteStartId !== undefined) tx.remoteStartId = remote.remoteStartId;
    // The remote start's profile first, then the TransactionEvent that says Charging.
    if (remote?.profile) applyProfile(link, remote.profile, link.opts.evseId, false);
    link.sync();
    await txEvent201(link, started ? 'Started' : 'Updated', trigger, {
      event: { idToken },
      ...(started ? { meter: 'Transaction.Begin' } : {}),
    });
    await this.report(link);
  },

  async stopCharging(link, reason) {
    const st = link.station;
    if (!st.tx) return;
    link.sync();
    const trigger =
      reason === 'Remote'
        ? 'RemoteStop'
        : reason === 'EVDisconnected'
          ? 'EVCommunicationLost'
          : reason === 'DeAuthorized'
            ? 'Deauthorized'
            : reason === 'Local'
              ? 'StopAuthorized'
              : 'AbnormalCondition';
    st.tx.charging = false;
    link.sync();
    await txEvent201(link, 'Ended', trigger, {
      info: { stoppedReason: reason },
      meter: 'Transaction.End',
    });
    st.endTx();
    link.reported.chargingState = undefined;
    link.sync();
    await this.report(link);
  },

  async unplug(link) {
    const st = link.station;
    st.plugged = false;
    if (st.tx) await this.stopCharging(link, 'EVDisconnected');
    st.finishing = false;
    link.sync();
    await this.report(link);
  },

  async meterValues(link, context) {
    // A transaction whose Started is still on its way (or whose Ended is) gets none.
    if (announced201(link)) {
      const trigger = context === 'Trigger' ? 'Trigger' : 'MeterValuePeriodic';
      await txEvent201(link, 'Updated', trigger, { meter: context });
      return;
    }
    await link.send('MeterValues', {
      evseId: link.opts.evseId,
      meterValue: [{ timestamp: link.iso(), sampledValue: samples(link, false, context) }],
    });
  },

  handlers: {
    SetChargingProfile(link, p) {
      const raw = p.chargingProfile as Params;
      const schedule = (raw.chargingSchedule as ChargingSchedule[])[0]!;
      const profile = toSimProfile(raw, raw.id as number, schedule, p.evseId as number, link.now());
      return { status: applyProfile(link, profile, link.opts.evseId, true) };
    },

    ClearChargingProfile(link, p) {
      const c = (p.chargingProfileCriteria ?? {}) as Params;
      const cleared = link.station.clearProfiles({
        id: p.chargingProfileId as number | undefined,
        target: c.evseId as number | undefined,
        purpose: c.chargingProfilePurpose as string | undefined,
        stackLevel: c.stackLevel as number | undefined,
      });
      link.sync();
      return { status: cleared ? 'Accepted' : 'Unknown' };
    },

    GetCompositeSchedule(link, p) {
      const evseId = p.evseId as number;
      if (evseId !== 0 && evseId !== link.opts.evseId) return { status: 'Rejected' };
      const duration = p.duration as number;
      return {
        status: 'Accepted',
        schedule: {
          evseId,
          duration,
          scheduleStart: link.iso(),
          ...compositePeriods(link, duration, p.chargingRateUnit as 'A' | 'W' | undefined),
        },
      };
    },

    RequestStartTransaction(link, p) {
      const st = link.station;
      const evseId = (p.evseId as number | undefined) ?? link.opts.evseId;
      const raw = p.chargingProfile as Params | undefined;
      if (evseId !== link.opts.evseId || !st.canStart) return { status: 'Rejected' };
      if (raw && raw.chargingProfilePurpose !== 'TxProfile') return { status: 'Rejected' };
      const running = st.tx?.id;
      const remote: RemoteStart = { remoteStartId: p.remoteStartId as number };
      if (raw) {
        const schedule = (raw.chargingSchedule as ChargingSchedule[])[0]!;
        remote.profile = toSimProfile(raw, raw.id as number, schedule, evseId, link.now());
      }
      const idTag = (p.idToken as { idToken: string }).idToken;
      link.after(() => dialect201.startCharging(link, idTag, remote));
      return running === undefined
        ? { status: 'Accepted' }
        : { status: 'Accepted', transactionId: running };
    },

    RequestStopTransaction(link, p) {
      const tx = link.station.tx;
      if (!tx || tx.id !== p.transactionId) return { status: 'Rejected' };
      link.after(() => dialect201.stopCharging(link, 'Remote'));
      return { status: 'Accepted' };
    },

    ChangeAvailability(link, p) {
      const evse = p.evse as { id: number } | undefined;
      if (evse && evse.id !== 0 && evse.id !== link.opts.evseId) return { status: 'Rejected' };
      const station = !evse || evse.id === 0;
      return changeAvailability(link, station, p.operationalStatus === 'Operative', dialect201);
    },

    Reset: () => ({ status: 'Accepted' }),

    TriggerMessage(link, p) {
      const message = p.requestedMessage as string;
      const evse = p.evse as { id: number; connectorId?: number } | undefined;
      if (evse && (evse.id !== link.opts.evseId || (evse.connectorId ?? 1) !== 1)) {
        return { status: 'Rejected' };
      }
      if (message === 'TransactionEvent') {
        if (!link.station.tx) return { status: 'Rejected' };
        link.after(async () => {
          // While Started (or Ended) is on its way, that event carries the state asked for.
          if (announced201(link))
            await txEvent201(link, 'Updated', 'Trigger', { meter: 'Trigger' });
        });
        return { status: 'Accepted' };
      }
      return trigger(link, dialect201, message);
    },
  },
};

const DIALECTS: Record<OcppProtocol, Dialect> = { 'ocpp1.6': dialect16, 'ocpp2.0.1': dialect201 };

const SCHEMA_FILES: Record<OcppProtocol, string> = {
  'ocpp1.6': 'ocpp-rpc/lib/schemas/ocpp1_6.json',
  'ocpp2.0.1': 'ocpp-rpc/lib/schemas/ocpp2_0_1.json',
};

interface JsonSchema {
  $id?: string;
  enum?: string[];
  $ref?: string;
  properties?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
}

/** The values that the `status` of `method`'s response may take, from ocpp-rpc's schemas. */
function responseStatuses(protocol: OcppProtocol, method: string): readonly string[] {
  const schemas = require(SCHEMA_FILES[protocol]) as JsonSchema[];
  const conf = schemas.find((s) => s.$id === `urn:${method}.conf`);
  let status = conf?.properties?.status;
  if (status?.$ref) status = conf?.definitions?.[status.$ref.split('/').pop() ?? ''];
  return status?.enum ?? [];
}

// ---------------------------------------------------------------------------------------
// The simulator

export class ChargePointSimulator extends EventEmitter {
  readonly identity: string;
  readonly protocol: OcppProtocol;
  private readonly opts: Resolved;
  private readonly clock: Clock;
  private readonly client: RPCClient;
  private readonly dialect: Dialect;
  private readonly station: Station;
  private readonly link: Link;
  private readonly reported: Link['reported'] = {};
  private isConnected = false;
  private booted = false;
  private stopping = false;
  private bootPromise: Promise<Result> | undefined;
  /** BootNotification was accepted since the last power-up (start or reboot). */
  private accepted = false;
  /** The next connection resumes the session (after a network drop): no boot. */
  private resumeOnOpen = false;
  private heartbeatS = 0;
  private readonly limitLog: LimitChange[] = [];
  /** The delayed reconnection of a drop or a reboot, while it waits. */
  private reconnecting: AbortController | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Profiles accepted and not applied yet (`applyDelayMs`): a reboot or stop drops them. */
  private readonly pending = new Set<NodeJS.Timeout>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** Syncs at the next change of the limit (a period step, a validTo), offline too. */
  private stepTimer: NodeJS.Timeout | undefined;
  private meterTimer: NodeJS.Timeout | undefined;
  private lastLimit: number | null = null;
  private lastPower = 0;
  private abort = new AbortController();

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
  private async connect(retry: boolean, signal = this.abort.signal): Promise<void> {
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

  /** Sends meter values now (the meter timer does this every `meterIntervalMs`). */
  async sendMeterValues(): Promise<void> {
    this.requireBooted();
    this.sync();
    await this.dialect.report(this.link); // a state change first (e.g. SuspendedEVSE at limit 0)
    await this.dialect.meterValues(this.link, 'Sample.Periodic');
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
  private reconnectAfter(ms: number): void {
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
  private resume(): void {
    this.booted = true;
    this.startTimers();
    this.sync();
    this.emit('resumed');
  }

  // --- internals

  private async boot(): Promise<Result> {
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
  private startTimers(): void {
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

  private async onCall(method: string, params: Params): Promise<Result> {
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

  private overridden(method: string, answer: NonNullable<ReturnType<RespondHook>>): Result {
    if (answer === 'noreply') return NOREPLY;
    if (answer === 'NotImplemented') {
      throw createRPCError('NotImplemented', `${method}: NotImplemented (test hook)`);
    }
    if (responseStatuses(this.protocol, method).includes(answer)) return { status: answer };
    const code = answer === 'NotSupported' ? 'NotSupported' : 'GenericError';
    throw createRPCError(code, `${method}: ${answer} (test hook)`);
  }

  private async send(method: string, params: Params): Promise<Result> {
    if (!this.isConnected)
      throw new Error(`${this.identity}: not connected, cannot send ${method}`);
    return (await this.client.call(method, params)) as Result;
  }

  private sync(): void {
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
  private followSteps(): void {
    clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
    if (this.stopping) return;
    const now = this.clock.now();
    const next = this.station.nextChange(now);
    if (next === undefined) return;
    this.stepTimer = setTimeout(() => this.sync(), next - now + 1).unref();
  }

  private requireBooted(): void {
    if (!this.booted) throw new Error(`${this.identity}: not connected and booted`);
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms).unref();
    this.timers.add(t);
  }

  private clearTimers(): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.meterTimer);
    this.heartbeatTimer = undefined;
    this.meterTimer = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Something failed in the background (a meter tick, a deferred action). */
  private warn(err: unknown): void {
    this.emit('warning', err instanceof Error ? err : new Error(String(err)));
  }
}

/** `o` without its undefined properties, so that they don't hide the defaults. */
function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
