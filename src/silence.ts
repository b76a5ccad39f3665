/**
 * Optimiser silence: what the engine remembers of the last schedule it received (when, its
 * id, its assets), so that when no new schedule has come for `silenceSeconds` it moves those
 * assets to their fallback setpoints, once per silence. This module decides when, makes the
 * fallback commands and persists and restores what it remembers; the engine registers the
 * commands like any others.
 */

import { type Command, CommandStatus, CommandType, isoTime } from './commands';
import { problemAt, type RestoreProblem, shown } from './restore';

/** The longest silence accepted, seconds (a year). */
export const MAX_SILENCE_SECONDS = 365 * 86_400;

/** Fallback commands of a silence carry the schedule id `<last schedule id>~silent`. */
export const SILENCE_SUFFIX = '~silent';

export interface LastSchedule {
  scheduleId: string;
  /** When it was received (epoch ms, the engine's clock). */
  at: number;
  /** Its assets, with their kind (an EV is never sent a negative fallback). */
  assets: { assetId: string; kind: 'ev' | 'battery' }[];
  /** When its silence was answered with fallback commands; null: not (yet). */
  silentAt: number | null;
}

/** `LastSchedule` in the engine's JSON. */
export interface LastScheduleJSON {
  scheduleId: string;
  receivedAt: string;
  assets: { assetId: string; kind: 'ev' | 'battery' }[];
  silentAt: string | null;
}

export function lastScheduleToJSON(last: LastSchedule): LastScheduleJSON {
  return {
    scheduleId: last.scheduleId,
    receivedAt: isoTime(last.at),
    assets: last.assets.map((a) => ({ ...a })),
    silentAt: last.silentAt === null ? null : isoTime(last.silentAt),
  };
}

/**
 * The `lastSchedule` entry of a saved engine: null when absent (a state file from before
 * silences were counted) or when it cannot be used, which is reported to `onProblem`.
 */
export function lastScheduleFromJSON(
  value: unknown,
  onProblem: (p: RestoreProblem) => void,
): LastSchedule | null {
  if (value === undefined || value === null) return null;
  const bad = (field: string, v: unknown, what: string): null => {
    onProblem(problemAt('lastSchedule', field, `must be ${what}, got ${shown(v)}`));
    return null;
  };
  if (typeof value !== 'object' || Array.isArray(value)) {
    onProblem({ entry: 'lastSchedule', reason: `must be an object, got ${shown(value)}` });
    return null;
  }
  const v = value as Partial<Record<keyof LastScheduleJSON, unknown>>;
  if (typeof v.scheduleId !== 'string' || v.scheduleId === '')
    return bad('scheduleId', v.scheduleId, 'a schedule id');
  const at = typeof v.receivedAt === 'string' ? Date.parse(v.receivedAt) : Number.NaN;
  if (!Number.isFinite(at)) return bad('receivedAt', v.receivedAt, 'an ISO 8601 time');
  let silentAt: number | null = null;
  if (v.silentAt !== null && v.silentAt !== undefined) {
    silentAt = typeof v.silentAt === 'string' ? Date.parse(v.silentAt) : Number.NaN;
    if (!Number.isFinite(silentAt)) return bad('silentAt', v.silentAt, 'an ISO 8601 time or null');
  }
  const assets: LastSchedule['assets'] = [];
  if (!Array.isArray(v.assets)) return bad('assets', v.assets, 'an array of {assetId, kind}');
  for (const a of v.assets as unknown[]) {
    const e = a as { assetId?: unknown; kind?: unknown } | null;
    if (
      !e ||
      typeof e.assetId !== 'string' ||
      e.assetId === '' ||
      (e.kind !== 'ev' && e.kind !== 'battery')
    ) {
      return bad('assets', a, 'an array of {assetId, kind: "ev" | "battery"}');
    }
    assets.push({ assetId: e.assetId, kind: e.kind });
  }
  return { scheduleId: v.scheduleId, at, assets, silentAt };
}

/** When the silence after `last` begins (epoch ms), or null: no silence to wait for. */
export function silenceDeadline(
  last: LastSchedule | null,
  silenceSeconds: number | null,
): number | null {
  if (last === null || silenceSeconds === null || last.silentAt !== null) return null;
  return last.at + silenceSeconds * 1000;
}

/** Whether a command is the fallback of a silence. */
export function isSilenceFallback(cmd: Command): boolean {
  return cmd.scheduleId?.endsWith(SILENCE_SUFFIX) === true;
}

/**
 * The fallback commands of a silence, due `now`, one per asset of the last schedule that
 * `fallbackKw` names (or '*' covers): PENDING, valid until replaced. An EV asset with a
 * negative fallback gets none (a charger cannot discharge).
 */
export function silenceCommands(
  last: LastSchedule,
  fallbackKw: Record<string, number>,
  now: number,
  settings: { maxRetries: number; timeoutSeconds: number },
): Command[] {
  const scheduleId = last.scheduleId + SILENCE_SUFFIX;
  const at = new Date(now);
  const silentFor = Math.round((now - last.at) / 1000);
  const reason = `optimiser silent for ${silentFor} s: no schedule since ${last.scheduleId} at ${isoTime(last.at)}; fallback setpoint`;
  const out: Command[] = [];
  for (const { assetId, kind } of last.assets) {
    const kw = Object.hasOwn(fallbackKw, assetId) ? fallbackKw[assetId] : fallbackKw['*'];
    if (kw === undefined || (kind === 'ev' && kw < 0)) continue;
    const discharge = kind === 'battery' && kw < 0;
    out.push({
      id: `${scheduleId}:${assetId}`,
      assetId,
      type: discharge ? CommandType.SET_DISCHARGE_RATE : CommandType.SET_CHARGE_RATE,
      valueKw: discharge ? -kw : kw === 0 ? 0 : kw,
      scheduledAt: at,
      validUntil: null,
      status: CommandStatus.PENDING,
      priority: 1,
      attempts: 0,
      maxRetries: settings.maxRetries,
      timeoutSeconds: settings.timeoutSeconds,
      scheduleId,
      source: null,
      lastError: null,
      holdReason: null,
      nextAttemptAt: null,
      deadline: null,
      createdAt: at,
      history: [{ status: CommandStatus.PENDING, at, reason }],
    });
  }
  return out;
}
