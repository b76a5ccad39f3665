/**
 * Schedule -> commands, pure: no engine state. Per asset, the first slot with a value always
 * gives a command; later slots only when the value moves by more than the deadband.
 *
 * This file owns the conversion: its options (checked here), the `Conversion` object, the
 * commands made from its change plan on first read, and its import limits; the change plan
 * itself is built in convert-plan.ts.
 */

import { randomUUID } from 'node:crypto';
import { runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import {
  type Command,
  CommandStatus,
  CommandType,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
} from './commands';
import {
  type ChangePlan,
  DEFAULT_DEADBAND_KW,
  type HorizonEnd,
  type PlannedAsset,
  planSteps,
} from './convert-plan';
import type { ScheduleSummary } from './event-bus';
import { type ParseOptions, parseSteps, type Schedule, ScheduleError } from './schedule';

export {
  type ChangePlan,
  DEFAULT_DEADBAND_KW,
  type HorizonEnd,
  mapKeysFor,
  type PlannedAsset,
} from './convert-plan';

export interface ConvertOptions extends ParseOptions {
  /** Optimiser ids (the `<vehicle>` of `ev_<vehicle>_kw`, `battery`, ...) -> asset ids. */
  assetMap: Record<string, string>;
  /** Report setpoint columns with no asset instead of rejecting the schedule. */
  ignoreUnmapped?: boolean;
  /** Rated power per asset id, kW: a setpoint above it rejects the schedule. */
  ratedKw?: Record<string, number>;
  /** A change smaller than or equal to this (kW) gives no new command. Default 0.001. */
  deadbandKw?: number;
  horizonEnd?: HorizonEnd;
  maxRetries?: number;
  timeoutSeconds?: number;
  priority?: number;
  /** Creation time of the commands (epoch ms). Default Date.now(). */
  now?: number;
}

/** A site import limit of a schedule (its `limitColumn`): epoch ms, kW. */
export interface ImportLimit {
  from: number;
  /** When it stops applying; null: until replaced (a schedule's limits always end). */
  until: number | null;
  importKw: number;
}

export interface Conversion {
  schedule: Schedule;
  scheduleId: string;
  summary: ScheduleSummary;
  /**
   * The site import limits of the `limitColumn`, consecutive equal slots merged, slots
   * without a value left out; empty without the column. They make no commands.
   */
  limits: ImportLimit[];
  /** What changes when, columnar: the conversion's result before any object is made. */
  changes: ChangePlan;
  /** What every command of the plan carries: creation time (epoch ms) and settings. */
  made: PlanSettings;
  /**
   * The commands, one per change, PENDING: made from `changes` the first time they are
   * read, then the same array every time.
   */
  readonly commands: Command[];
}

/** The settings the commands of one conversion share. */
export interface PlanSettings {
  now: number;
  maxRetries: number;
  timeoutSeconds: number;
  priority: number;
}

export function newScheduleId(): string {
  return `sch-${randomUUID().slice(0, 8)}`;
}

export function convertSchedule(input: unknown, options: ConvertOptions): Conversion {
  return runSync(convertSteps(input, options, false));
}

/**
 * `convertSchedule` in slices of a few milliseconds, the event loop served between them:
 * the same conversion, or the same ScheduleError (row, column, value) as a rejection. The
 * commands are made, as by `convertSchedule`, when `commands` is first read.
 */
export function convertScheduleAsync(
  input: unknown,
  options: ConvertOptions,
  slicing: SliceOptions = {},
): Promise<Conversion> {
  return runSliced(convertSteps(input, options, true), slicing);
}

/** `convertSchedule` as a loop that yields at checkpoints (see chunks.ts). */
function* convertSteps(
  input: unknown,
  options: ConvertOptions,
  sliced: boolean,
): Steps<Conversion> {
  const assetMap = options.assetMap ?? {};
  if (assetMap === null || typeof assetMap !== 'object' || Array.isArray(assetMap)) {
    throw new ScheduleError('assetMap must be an object of {optimiser id: asset id}');
  }
  for (const k of Object.keys(assetMap)) {
    const v = assetMap[k];
    if (typeof v !== 'string' || v.trim() === '') {
      throw new ScheduleError(
        `assetMap[${JSON.stringify(k)}] must be a non-empty asset id, got ${JSON.stringify(v)}`,
      );
    }
  }
  const deadband = options.deadbandKw ?? DEFAULT_DEADBAND_KW;
  if (!(deadband >= 0))
    throw new ScheduleError(`deadbandKw must be >= 0, got ${JSON.stringify(options.deadbandKw)}`);
  const horizon = options.horizonEnd ?? 'hold';
  if (horizon !== 'hold') {
    if (
      !horizon ||
      typeof horizon !== 'object' ||
      typeof horizon.fallbackKw !== 'object' ||
      horizon.fallbackKw === null
    ) {
      throw new ScheduleError(
        `horizonEnd must be 'hold' or {fallbackKw: {assetId: kW}}, got ${JSON.stringify(horizon)}`,
      );
    }
    for (const [k, v] of Object.entries(horizon.fallbackKw)) {
      if (typeof v !== 'number' || !(Math.abs(v) <= MAX_POWER_KW)) {
        throw new ScheduleError(
          `horizonEnd.fallbackKw[${JSON.stringify(k)}] must be a number (kW) from -${MAX_POWER_KW} to ${MAX_POWER_KW} (1 GW, the most accepted for one asset), got ${typeof v === 'number' ? v : JSON.stringify(v)}`,
        );
      }
    }
  }
  // The commands' settings, as createCommand (and so a restart) accepts them.
  const settings: [keyof ConvertOptions, number, number, boolean][] = [
    ['maxRetries', 0, Number.POSITIVE_INFINITY, true],
    ['timeoutSeconds', 0.001, MAX_TIMEOUT_SECONDS, false],
    ['priority', Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, false],
  ];
  for (const [key, min, max, integer] of settings) {
    const v = options[key];
    if (v === undefined) continue;
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      v < min ||
      v > max ||
      (integer && !Number.isInteger(v))
    ) {
      throw new ScheduleError(
        `${key} must be ${integer ? 'an integer' : 'a number'}${min > Number.NEGATIVE_INFINITY ? ` >= ${min}` : ''}${max < Number.POSITIVE_INFINITY ? ` and <= ${max}` : ''}, got ${JSON.stringify(v)}`,
      );
    }
  }

  const schedule = yield* parseSteps(input, options, sliced);
  const scheduleId = options.scheduleId ?? schedule.scheduleId ?? newScheduleId();
  const { changes, unmapped } = yield* planSteps(schedule, {
    assetMap,
    ignoreUnmapped: options.ignoreUnmapped,
    ratedKw: options.ratedKw,
    deadband,
    horizon,
  });
  const endMs = schedule.slotEnd(schedule.rows - 1);
  const summary: ScheduleSummary = {
    scheduleId,
    start: schedule.start.toISOString(),
    end: new Date(endMs).toISOString(),
    slotSeconds: schedule.slotSeconds,
    slots: schedule.rows,
    assets: changes.assets.map((a) => a.assetId),
    ignoredColumns: [...schedule.ignoredColumns],
    unmappedColumns: unmapped,
    commandCount: changes.count,
    ...(schedule.limitColumn === null ? {} : { limitColumn: schedule.limitColumn }),
  };
  const made: PlanSettings & { scheduleId: string } = {
    scheduleId,
    now: options.now ?? Date.now(),
    maxRetries: options.maxRetries ?? 3,
    timeoutSeconds: options.timeoutSeconds ?? 30,
    priority: options.priority ?? 1,
  };
  return conversionOf(schedule, summary, changes, limitsOf(schedule), made);
}

type Made = Parameters<typeof commandSteps>[1];

/** How each conversion's commands are made, and once made, the commands. */
const madeOf = new WeakMap<Conversion, { made: Made; commands?: Command[] }>();

function conversionOf(
  schedule: Schedule,
  summary: ScheduleSummary,
  changes: ChangePlan,
  limits: ImportLimit[],
  made: Made,
): Conversion {
  const state: { made: Made; commands?: Command[] } = { made };
  const conversion: Conversion = {
    schedule,
    scheduleId: made.scheduleId,
    summary,
    changes,
    limits,
    made,
    get commands(): Command[] {
      state.commands ??= runSync(commandSteps(changes, made));
      return state.commands;
    },
  };
  madeOf.set(conversion, state);
  return conversion;
}

/**
 * A conversion's `commands`, made in slices of a few ms if not made yet (160,000 of them
 * for 10,000 assets x 96 slots): then `conversion.commands` is that same array.
 */
export async function commandsAsync(
  conversion: Conversion,
  slicing: SliceOptions = {},
): Promise<Command[]> {
  const state = madeOf.get(conversion);
  if (state === undefined) return conversion.commands;
  state.commands ??= await runSliced(commandSteps(conversion.changes, state.made), slicing);
  return state.commands;
}

/**
 * The same conversion under another schedule id (its summary and its commands' ids and
 * `scheduleId`): for a host that picks the id after converting in slices, when another
 * schedule took the one it converted under. Shares the schedule, plan and limits.
 */
export function withScheduleId(conversion: Conversion, scheduleId: string): Conversion {
  const made = madeOf.get(conversion)?.made;
  if (made === undefined) throw new TypeError('not a conversion made by convertSchedule');
  if (scheduleId === conversion.scheduleId) return conversion;
  return conversionOf(
    conversion.schedule,
    { ...conversion.summary, scheduleId },
    conversion.changes,
    conversion.limits,
    { ...made, scheduleId },
  );
}

/** A schedule's import limits per slot as runs of equal values (NaN: no limit). */
function limitsOf(schedule: Schedule): ImportLimit[] {
  const v = schedule.limits;
  const out: ImportLimit[] = [];
  if (v === null) return out;
  let run: ImportLimit | null = null;
  for (let i = 0; i < v.length; i++) {
    const kw = v[i] as number;
    if (Number.isNaN(kw)) {
      run = null;
      continue;
    }
    if (run !== null && run.importKw === kw) {
      run.until = schedule.slotEnd(i);
      continue;
    }
    run = { from: schedule.times[i] as number, until: schedule.slotEnd(i), importKw: kw };
    out.push(run);
  }
  return out;
}

/**
 * The commands of a change plan: one PENDING command per change, with the ids, times and
 * settings of the conversion. Commands of one plan share their Dates (one per slot) and
 * their first history entry (a frozen array that `transition` copies on the first change).
 */
function* commandSteps(
  changes: ChangePlan,
  made: {
    scheduleId: string;
    now: number;
    maxRetries: number;
    timeoutSeconds: number;
    priority: number;
  },
): Steps<Command[]> {
  const { scheduleId, maxRetries, timeoutSeconds, priority } = made;
  const createdAt = new Date(made.now);
  const history = Object.freeze([
    Object.freeze({ status: CommandStatus.PENDING, at: createdAt }),
  ]) as unknown as Command['history'];
  const times = changes.times;
  const endSlot = times.length - 1;
  const dates: (Date | undefined)[] = new Array(times.length);
  const dateOf = (slot: number): Date => {
    let d = dates[slot];
    if (d === undefined) {
      d = new Date(times[slot] as number);
      dates[slot] = d;
    }
    return d;
  };
  const prefixes = changes.assets.map((a) => `${scheduleId}:${a.assetId}:`);
  const out: Command[] = new Array(changes.count);
  for (let k = 0; k < changes.count; k++) {
    const ai = changes.asset[k] as number;
    const a = changes.assets[ai] as PlannedAsset;
    const slot = changes.slot[k] as number;
    const value = changes.valueKw[k] as number;
    const until = changes.until[k] as number;
    const discharge = a.kind === 'battery' && value < 0;
    out[k] = {
      id: (prefixes[ai] as string) + (slot === endSlot ? 'end' : String(slot)),
      assetId: a.assetId,
      type: discharge ? CommandType.SET_DISCHARGE_RATE : CommandType.SET_CHARGE_RATE,
      valueKw: discharge ? -value : value,
      scheduledAt: dateOf(slot),
      validUntil: until < 0 ? null : dateOf(until),
      status: CommandStatus.PENDING,
      priority,
      attempts: 0,
      maxRetries,
      timeoutSeconds,
      scheduleId,
      source: { columns: a.columns, slot },
      lastError: null,
      holdReason: null,
      nextAttemptAt: null,
      deadline: null,
      createdAt,
      history,
    };
    if ((k & 1023) === 1023) yield;
  }
  return out;
}
