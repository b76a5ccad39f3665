/**
 * Charging profiles as the simulated charge point (charge-point/station.ts) keeps and follows
 * them, as pure functions (no I/O, no clock): checking a profile as a charger does, storing it
 * (replacing one with the same id, or the same purpose and stack level), the limit in force at a
 * time (validFrom / validTo, startSchedule, periods and duration; the highest stack level per
 * purpose; TxProfile over TxDefaultProfile, capped by the station maxima), the composite schedule,
 * and the next time the limit may change (for following a step on time, offline too).
 */

export type ProfilePurpose =
  | 'ChargePointMaxProfile'
  | 'ChargingStationMaxProfile'
  | 'ChargingStationExternalConstraints'
  | 'TxDefaultProfile'
  | 'TxProfile';

export interface ChargingSchedule {
  startSchedule?: string;
  duration?: number;
  chargingRateUnit: 'A' | 'W';
  chargingSchedulePeriod: { startPeriod: number; limit: number; numberPhases?: number }[];
  minChargingRate?: number;
}

/** A charging profile as the simulator keeps it, whichever version it came in. */
export interface SimChargingProfile {
  id: number;
  purpose: ProfilePurpose;
  stackLevel: number;
  kind: 'Absolute' | 'Recurring' | 'Relative';
  recurrencyKind?: 'Daily' | 'Weekly';
  transactionId?: number | string;
  validFrom?: string;
  validTo?: string;
  /** The connector (1.6) or EVSE (2.0.1) it was set on; 0 is the whole station. */
  target: number;
  chargingSchedule: ChargingSchedule;
  /** Epoch ms at which the simulator received it. */
  receivedAt: number;
}

/** The station maxima: they cap whatever the transaction profiles allow. */
export const CAPS: readonly ProfilePurpose[] = [
  'ChargePointMaxProfile',
  'ChargingStationMaxProfile',
  'ChargingStationExternalConstraints',
];
const DAY_MS = 86_400_000;

/** What the limit of a profile depends on besides the profile: the transaction, W per A. */
export interface ProfileContext {
  /** The running transaction (TxProfiles of another are not in force), or null. */
  tx: { id: number | string; startedAt: number } | null;
  voltage: number;
  phases: number;
}

/**
 * Why a charger would refuse the profile's schedule, or null: periods from 0, in ascending
 * order, limits that are numbers >= 0, validFrom before validTo, a date that parses.
 */
export function profileProblem(p: SimChargingProfile): string | null {
  const periods = p.chargingSchedule.chargingSchedulePeriod;
  if (!periods.length) return 'no schedule period';
  if (periods[0]?.startPeriod !== 0) return 'the first period does not start at 0';
  for (let i = 1; i < periods.length; i++)
    if ((periods[i]?.startPeriod ?? 0) <= (periods[i - 1]?.startPeriod ?? 0))
      return 'periods are not in ascending order';
  if (periods.some((q) => !(Number.isFinite(q.limit) && q.limit >= 0)))
    return 'a limit is not a number >= 0';
  for (const d of [p.validFrom, p.validTo, p.chargingSchedule.startSchedule])
    if (d !== undefined && Number.isNaN(Date.parse(d))) return `bad date ${d}`;
  if (p.validFrom && p.validTo && Date.parse(p.validTo) <= Date.parse(p.validFrom))
    return 'validTo is not after validFrom';
  return null;
}

/**
 * The profiles with `p` stored: it replaces one with the same id, or the same purpose and
 * stackLevel (and, for TxProfile, the same transaction).
 */
export function withProfile(
  profiles: readonly SimChargingProfile[],
  p: SimChargingProfile,
): SimChargingProfile[] {
  return [
    ...profiles.filter(
      (q) =>
        q.id !== p.id &&
        !(
          q.purpose === p.purpose &&
          q.stackLevel === p.stackLevel &&
          q.transactionId === p.transactionId
        ),
    ),
    p,
  ];
}

/** Epoch ms at which the schedule of `p` starts, for the occurrence in force at `t`. */
export function scheduleStart(p: SimChargingProfile, t: number, ctx: ProfileContext): number {
  const given = p.chargingSchedule.startSchedule;
  if (p.kind === 'Relative') return ctx.tx && p.purpose.startsWith('Tx') ? ctx.tx.startedAt : t;
  const start = given ? Date.parse(given) : p.receivedAt;
  if (p.kind === 'Recurring') {
    const every = p.recurrencyKind === 'Weekly' ? 7 * DAY_MS : DAY_MS;
    return t < start ? start : start + Math.floor((t - start) / every) * every;
  }
  return start;
}

/** The limit of one profile at `t` in W, null when none of its periods is in force. */
export function profileLimitAt(
  p: SimChargingProfile,
  t: number,
  ctx: ProfileContext,
): number | null {
  if (p.validFrom && t < Date.parse(p.validFrom)) return null;
  if (p.validTo && t >= Date.parse(p.validTo)) return null;
  const start = scheduleStart(p, t, ctx);
  const s = p.chargingSchedule;
  const elapsed = (t - start) / 1000;
  if (elapsed < 0 || (s.duration !== undefined && elapsed >= s.duration)) return null;
  let period: ChargingSchedule['chargingSchedulePeriod'][number] | undefined;
  for (const candidate of s.chargingSchedulePeriod) {
    if (candidate.startPeriod <= elapsed) period = candidate;
  }
  if (!period) return null;
  return s.chargingRateUnit === 'W'
    ? period.limit
    : period.limit * ctx.voltage * (period.numberPhases ?? ctx.phases);
}

/**
 * The limit in force at `t`, W: the highest-stackLevel TxProfile of the running transaction
 * that has a period in force, else the TxDefaultProfile, capped by the station maxima (the
 * highest stack level of each purpose in force); null when no profile limits.
 */
export function limitAt(
  profiles: readonly SimChargingProfile[],
  t: number,
  ctx: ProfileContext,
): number | null {
  const tx = ctx.tx;
  const top = (purpose: ProfilePurpose): number | null => {
    const candidates = profiles
      .filter((p) => p.purpose === purpose)
      .filter(
        (p) =>
          p.purpose !== 'TxProfile' ||
          (tx !== null && (p.transactionId === undefined || p.transactionId === tx.id)),
      )
      .sort((a, b) => b.stackLevel - a.stackLevel);
    for (const p of candidates) {
      const w = profileLimitAt(p, t, ctx);
      if (w !== null) return w;
    }
    return null;
  };
  const txLimit = top('TxProfile') ?? top('TxDefaultProfile');
  const caps = CAPS.map(top).filter((w): w is number => w !== null);
  const all = txLimit === null ? caps : [txLimit, ...caps];
  return all.length ? Math.min(...all) : null;
}

/** Every time from `from` (inclusive) to `to` (exclusive) at which a profile may change the limit. */
export function changeTimes(
  profiles: readonly SimChargingProfile[],
  from: number,
  to: number,
  ctx: ProfileContext,
): number[] {
  const times = new Set<number>();
  for (const p of profiles) {
    const starts = [scheduleStart(p, from, ctx)];
    if (p.kind === 'Recurring') {
      starts.push((starts[0] ?? 0) + (p.recurrencyKind === 'Weekly' ? 7 * DAY_MS : DAY_MS));
    }
    for (const start of starts) {
      for (const period of p.chargingSchedule.chargingSchedulePeriod) {
        times.add(start + period.startPeriod * 1000);
      }
      if (p.chargingSchedule.duration !== undefined) {
        times.add(start + p.chargingSchedule.duration * 1000);
      }
    }
    if (p.validFrom) times.add(Date.parse(p.validFrom));
    if (p.validTo) times.add(Date.parse(p.validTo));
  }
  return [...times].filter((x) => x >= from && x < to).sort((a, b) => a - b);
}

/** The first time after `now` (within a day) at which the limit may change, if any. */
export function nextChange(
  profiles: readonly SimChargingProfile[],
  now: number,
  ctx: ProfileContext,
): number | undefined {
  return changeTimes(profiles, now + 1, now + DAY_MS, ctx)[0];
}

/**
 * The limit from `now` over `durationS` as periods (s from now, W), for GetCompositeSchedule;
 * no profile limit counts as `noLimitW` (the EV maximum).
 */
export function composite(
  profiles: readonly SimChargingProfile[],
  now: number,
  durationS: number,
  ctx: ProfileContext,
  noLimitW: number,
): { startPeriod: number; limitW: number }[] {
  const out: { startPeriod: number; limitW: number }[] = [];
  for (const t of [now, ...changeTimes(profiles, now, now + durationS * 1000, ctx)]) {
    const limitW = limitAt(profiles, t, ctx) ?? noLimitW;
    if (out.at(-1)?.limitW !== limitW) {
      out.push({ startPeriod: Math.floor((t - now) / 1000), limitW });
    }
  }
  return out;
}
