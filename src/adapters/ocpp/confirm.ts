/**
 * Confirmation of the limit in force, pure: the GetCompositeSchedule call that asks a charger
 * what it will actually do after it accepted a SetChargingProfile, the limit in force now read
 * from its answer (1.6 or 2.0.1), and the comparison with what was sent, within the rounding of
 * the unit (0.1 W / 0.1 A). The adapter (chargers.ts) sends the call and acts on the verdict.
 */

import type { ChargerConfig, OcppCall, OcppVersion } from './translate';

/** How far ahead the composite schedule is asked for (s): only its first period matters. */
export const COMPOSITE_DURATION_S = 60;

/** The limits are sent with one decimal: this much apart still agrees. */
const TOLERANCE = 0.1 + 1e-9;

/** The question, for the connector / EVSE of the profile (0 for a station-wide limit). */
export function compositeCall(version: OcppVersion, target: number, unit: 'W' | 'A'): OcppCall {
  return version === 'ocpp1.6'
    ? {
        method: 'GetCompositeSchedule',
        params: { connectorId: target, duration: COMPOSITE_DURATION_S, chargingRateUnit: unit },
      }
    : {
        method: 'GetCompositeSchedule',
        params: { duration: COMPOSITE_DURATION_S, evseId: target, chargingRateUnit: unit },
      };
}

/** The limit in force now by the answer (its first period), in `unit`, or why there is none. */
export function limitInForce(
  response: unknown,
  unit: 'W' | 'A',
  charger: ChargerConfig,
): { limit: number } | { error: string } {
  const r = (response ?? {}) as {
    status?: unknown;
    chargingSchedule?: unknown;
    schedule?: unknown;
  };
  if (r.status !== 'Accepted')
    return { error: `GetCompositeSchedule answered ${String(r.status ?? 'without a status')}` };
  const s = (r.chargingSchedule ?? r.schedule) as
    | {
        chargingRateUnit?: unknown;
        chargingSchedulePeriod?: {
          startPeriod?: unknown;
          limit?: unknown;
          numberPhases?: unknown;
        }[];
      }
    | undefined;
  const periods = Array.isArray(s?.chargingSchedulePeriod) ? s.chargingSchedulePeriod : [];
  // The schedule starts at the time of the question: its first period is in force now.
  const first = periods.find((p) => typeof p?.limit === 'number' && Number.isFinite(p.limit));
  if (!s || !first) return { error: 'GetCompositeSchedule gave no schedule period' };
  const got = first.limit as number;
  const theirs =
    s.chargingRateUnit === 'A' || s.chargingRateUnit === 'W' ? s.chargingRateUnit : unit;
  if (theirs === unit) return { limit: got };
  // Asked in one unit, answered in the other: convert with the charger's phases and voltage.
  const phases =
    typeof first.numberPhases === 'number' ? first.numberPhases : (charger.phases ?? 3);
  const perAmp = (charger.voltage ?? 230) * phases;
  return { limit: theirs === 'A' ? got * perAmp : got / perAmp };
}

/** Whether the limit in force is the one sent, within the rounding of the unit. */
export function agrees(sent: number, inForce: number): boolean {
  return Math.abs(sent - inForce) <= TOLERANCE;
}

/** A limit for messages: `7400 W`, or `10.7 A (7384 W)` with the charger's phases and voltage. */
export function describeLimit(limit: number, unit: 'W' | 'A', charger: ChargerConfig): string {
  const r = Math.round(limit * 10) / 10;
  if (unit === 'W') return `${r} W`;
  const w = Math.round(limit * (charger.voltage ?? 230) * (charger.phases ?? 3));
  return `${r} A (${w} W)`;
}
