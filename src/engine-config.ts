/**
 * The dispatch engine's settings (what each means, the defaults, and `resolveConfig`, which
 * checks a partial configuration and names the field that is wrong) and the shapes of what
 * it takes and gives: filters, answers' options, stats, its saved state.
 */

import type { Command, CommandJSON, CommandStatus } from './commands';
import { DEFAULT_DEADBAND_KW, type HorizonEnd } from './convert';
import type { PlanJSON } from './plans';
import { type LastScheduleJSON, MAX_SILENCE_SECONDS } from './silence';

export interface EngineConfig {
  /** How often a polling host calls the engine (the Node-RED dispatcher uses timers instead). */
  dispatchIntervalSeconds: number;
  /** How long one attempt waits for the device's answer. */
  commandTimeoutSeconds: number;
  /** Retries after the first attempt. */
  maxRetries: number;
  retryBackoffFactor: number;
  /** A device state older than this is stale (see `isStateStale`). */
  staleStateSeconds: number;
  /** Delay before the first retry; retry n waits retryBaseSeconds * factor^(n-1). */
  retryBaseSeconds: number;
  retryMaxSeconds: number;
  deadbandKw: number;
  horizonEnd: HorizonEnd;
  /** Finished commands kept for inspection and persistence (oldest dropped first). */
  maxFinishedCommands: number;
  /**
   * Optimiser silence: when no schedule has been received for this long (seconds) since the
   * last one, the assets of the last schedule are sent the fallback setpoints of
   * `horizonEnd` (which must then be `{fallbackKw}`), once per silence. Null: off.
   */
  silenceSeconds: number | null;
}

export const DEFAULT_CONFIG: Readonly<EngineConfig> = Object.freeze({
  dispatchIntervalSeconds: 5,
  commandTimeoutSeconds: 30,
  maxRetries: 3,
  retryBackoffFactor: 2.0,
  staleStateSeconds: 60,
  retryBaseSeconds: 2,
  retryMaxSeconds: 60,
  deadbandKw: DEFAULT_DEADBAND_KW,
  horizonEnd: 'hold' as HorizonEnd,
  maxFinishedCommands: 10_000,
  silenceSeconds: null as number | null,
});

const NUMERIC_LIMITS: Record<string, { min: number; integer?: boolean; exclusive?: boolean }> = {
  dispatchIntervalSeconds: { min: 0, exclusive: true },
  commandTimeoutSeconds: { min: 0, exclusive: true },
  maxRetries: { min: 0, integer: true },
  retryBackoffFactor: { min: 1 },
  staleStateSeconds: { min: 0, exclusive: true },
  retryBaseSeconds: { min: 0 },
  retryMaxSeconds: { min: 0 },
  deadbandKw: { min: 0 },
  maxFinishedCommands: { min: 0, integer: true },
};

/** Merges `partial` over the defaults; throws a TypeError naming any field that is wrong. */
export function resolveConfig(partial: Partial<EngineConfig> = {}): EngineConfig {
  const config = { ...DEFAULT_CONFIG, ...partial } as EngineConfig;
  for (const key of Object.keys(partial)) {
    if (!(key in DEFAULT_CONFIG)) {
      throw new TypeError(
        `engine config: unknown setting ${JSON.stringify(key)}; known: ${Object.keys(DEFAULT_CONFIG).join(', ')}`,
      );
    }
  }
  for (const [key, lim] of Object.entries(NUMERIC_LIMITS)) {
    const v = (config as unknown as Record<string, unknown>)[key];
    const ok =
      typeof v === 'number' &&
      Number.isFinite(v) &&
      (lim.exclusive ? v > lim.min : v >= lim.min) &&
      (!lim.integer || Number.isInteger(v));
    if (!ok) {
      throw new TypeError(
        `engine config: ${key} must be ${lim.integer ? 'an integer' : 'a number'} ${lim.exclusive ? '>' : '>='} ${lim.min}, got ${JSON.stringify(v)}`,
      );
    }
  }
  const h = config.horizonEnd;
  if (h !== 'hold' && (h === null || typeof h !== 'object' || typeof h.fallbackKw !== 'object')) {
    throw new TypeError(
      `engine config: horizonEnd must be 'hold' or {fallbackKw: {...}}, got ${JSON.stringify(h)}`,
    );
  }
  if (config.silenceSeconds === undefined) config.silenceSeconds = null;
  const s = config.silenceSeconds;
  if (s !== null) {
    if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0 || s > MAX_SILENCE_SECONDS) {
      throw new TypeError(
        `engine config: silenceSeconds must be null (off) or a number > 0 and <= ${MAX_SILENCE_SECONDS} (a year), got ${JSON.stringify(s)}`,
      );
    }
    if (h === 'hold') {
      throw new TypeError(
        `engine config: silenceSeconds (${s}) sends the fallback setpoints of horizonEnd: set horizonEnd to {fallbackKw: {...}}`,
      );
    }
  }
  return config;
}

export interface ResponseOptions {
  /** The device refused the command: FAILED at once, no retry. */
  final?: boolean;
  /** With success: confirmed as well as accepted (COMPLETED). Default true. */
  completed?: boolean;
  /** The failure is no answer at all (a call timeout): TIMED_OUT when no attempt is left. */
  timedOut?: boolean;
  /** Not sent: its slot ended while it waited (CANCELLED, expired). */
  expired?: boolean;
}

export interface CommandFilter {
  assetId?: string;
  status?: CommandStatus | CommandStatus[];
  scheduleId?: string;
}

export interface EngineStats {
  total: number;
  pending: number;
  held: number;
  inFlight: number;
  finished: number;
  byStatus: Record<CommandStatus, number>;
}

export interface EngineJSON {
  format: 'qubit-energy/dispatch-engine';
  version: 1;
  savedAt: string;
  commands: CommandJSON[];
  assetStates: Record<string, string>;
  scheduleRevisions: Record<string, number>;
  /** The last schedule received, for the optimiser silence (absent in older documents). */
  lastSchedule?: LastScheduleJSON | null;
  /** The rows of submitted plans not yet made into commands (absent when none). */
  plans?: PlanJSON[];
}

/** The `meta` entry of `onPersist`: the engine's small fields besides its commands. */
export interface EngineMetaJSON {
  assetStates: Record<string, string>;
  scheduleRevisions: Record<string, number>;
  lastSchedule: LastScheduleJSON | null;
}

export type TimeInput = number | Date | string;

/** What `submitPlan` did. */
export interface PlanSubmission {
  scheduleId: string;
  /** Rows registered (commands to come). */
  count: number;
  /** The schedule was already registered with the same rows: nothing changed. */
  duplicate: boolean;
}

/** See `DispatchEngine.rateSetpoints`. */
export interface RateSetpoints {
  plan?: Command;
  inFlight: Command[];
  last?: Command;
}
