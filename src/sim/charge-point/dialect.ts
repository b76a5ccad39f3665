/**
 * What both OCPP dialects of the simulated charge point share: the `Link` they use to reach
 * the station and the session, the `Dialect` contract (boot, report, driver actions, meter
 * values, incoming calls by method), and the helpers whose logic is the same in 1.6 and
 * 2.0.1: meter samples, a profile as the station keeps it, checking and applying a profile,
 * ClearChargingProfile, GetCompositeSchedule, ChangeAvailability, TriggerMessage, and the
 * statuses a response may take (for the `respond` test hook).
 */

import {
  CAPS,
  type ChargingSchedule,
  type ProfilePurpose,
  profileProblem,
  type SimChargingProfile,
} from '../charging-profiles';
import type { Station } from './station';
import type { OcppProtocol, Params, Resolved, Result, StopReason } from './types';

export const round1 = (x: number): number => Math.round(x * 10) / 10;

export interface Link {
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

export type Handler = (link: Link, params: Params) => Result;

/** What a remote start brings: 2.0.1 its remoteStartId; both versions maybe a TxProfile. */
export interface RemoteStart {
  remoteStartId?: number;
  profile?: SimChargingProfile;
}

export interface Dialect {
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
export function samples(link: Link, v16: boolean, context: string): Params[] {
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
export function toSimProfile(
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
export function applyProfile(
  link: Link,
  p: SimChargingProfile,
  ours: number,
  needTxId: boolean,
): string {
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

/** ClearChargingProfile: removes the profiles that match every criterion given. */
export function clearProfiles(
  link: Link,
  c: Record<'id' | 'target' | 'purpose' | 'stackLevel', unknown>,
): Result {
  const cleared = link.station.clearProfiles(c as Parameters<Station['clearProfiles']>[0]);
  link.sync();
  return { status: cleared ? 'Accepted' : 'Unknown' };
}

/**
 * GetCompositeSchedule for `target` (0: the station, else it must be `ours`): Rejected for
 * another connector / EVSE; otherwise Accepted with what `shape` makes of the duration and
 * the periods (the answer's shape differs between versions).
 */
export function compositeSchedule(
  link: Link,
  target: number,
  ours: number,
  p: Params,
  shape: (duration: number, periods: ReturnType<typeof compositePeriods>) => Result,
): Result {
  if (target !== 0 && target !== ours) return { status: 'Rejected' };
  const duration = p.duration as number;
  const unit = p.chargingRateUnit as 'A' | 'W' | undefined;
  return { status: 'Accepted', ...shape(duration, compositePeriods(link, duration, unit)) };
}

/** RemoteStopTransaction / RequestStopTransaction: stops the running one if it is the one named. */
export function remoteStop(link: Link, d: Dialect, transactionId: unknown): Result {
  const tx = link.station.tx;
  if (!tx || tx.id !== transactionId) return { status: 'Rejected' };
  link.after(() => d.stopCharging(link, 'Remote'));
  return { status: 'Accepted' };
}

export function changeAvailability(
  link: Link,
  station: boolean,
  operative: boolean,
  d: Dialect,
): Result {
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

export function trigger(link: Link, d: Dialect, message: string): Result {
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
export function responseStatuses(protocol: OcppProtocol, method: string): readonly string[] {
  const schemas = require(SCHEMA_FILES[protocol]) as JsonSchema[];
  const conf = schemas.find((s) => s.$id === `urn:${method}.conf`);
  let status = conf?.properties?.status;
  if (status?.$ref) status = conf?.definitions?.[status.$ref.split('/').pop() ?? ''];
  return status?.enum ?? [];
}
