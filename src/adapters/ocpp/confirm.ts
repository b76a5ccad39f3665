/**
 * Confirmation of the limit in force: after a charger accepted a SetChargingProfile, ask it
 * what it will actually do (GetCompositeSchedule), read the limit in force now from its answer
 * (1.6 or 2.0.1) and compare it with what was sent, within the rounding of the unit (0.1 W /
 * 0.1 A). The adapter (chargers.ts) calls `confirmLimit` and remembers a charger that does
 * not implement the question.
 */

import { TimeoutError } from 'ocpp-rpc';
import type { Command } from '../../commands';
import { AdapterError, type AdapterResult } from '../registry';
import type { CentralSystem } from './central-system';
import { type ChargerConfig, kwToLimit, type OcppCall, type OcppVersion } from './translate';

/** Answers that say a charger does not implement a call at all. */
export const NOT_IMPLEMENTED = new Set(['NotImplemented', 'NotSupported']);

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

/**
 * Asks the charger what it will actually do and compares the limit in force now with the
 * setpoint: COMPLETED when they agree, FAILED (final) when not. A charger that does not
 * implement the question (NotImplemented / NotSupported) counts as confirmed, and
 * `notImplemented` is told its answer; no answer throws (the engine retries).
 */
export async function confirmLimit(
  central: CentralSystem,
  cmd: Command,
  charger: ChargerConfig,
  target: number,
  notImplemented: (answer: string) => void,
): Promise<AdapterResult> {
  const version = central.protocolOf(charger.identity);
  if (!version) throw new AdapterError(`charger ${charger.identity} is not connected`);
  const { unit, limit } = kwToLimit(cmd.valueKw, charger);
  const sent = describeLimit(limit, unit, charger);
  const call = compositeCall(version, target, unit);
  let response: unknown;
  try {
    response = await central.call(charger.identity, call.method, call.params);
  } catch (err) {
    const code = (err as { rpcErrorCode?: unknown }).rpcErrorCode;
    if (typeof code === 'string' && NOT_IMPLEMENTED.has(code)) {
      notImplemented(code);
      return { success: true };
    }
    // No answer, a dropped connection: the engine retries (SetChargingProfile is idempotent).
    const message = err instanceof Error ? err.message : String(err);
    throw new AdapterError(
      `charger ${charger.identity} accepted ${sent} but GetCompositeSchedule failed: ${message}`,
      { timedOut: err instanceof TimeoutError, cause: err },
    );
  }
  const status = (response as { status?: unknown } | null)?.status;
  if (typeof status === 'string' && NOT_IMPLEMENTED.has(status)) {
    notImplemented(status);
    return { success: true };
  }
  const inForce = limitInForce(response, unit, charger);
  if ('error' in inForce)
    return {
      success: false,
      final: true,
      error: `charger ${charger.identity} accepted ${sent} but the limit in force could not be confirmed: ${inForce.error}`,
    };
  if (!agrees(limit, inForce.limit))
    return {
      success: false,
      final: true,
      error: `charger ${charger.identity} accepted ${sent} but its composite schedule applies ${describeLimit(inForce.limit, unit, charger)}`,
    };
  return { success: true };
}
