/**
 * Schedule -> commands, pure: no engine state. Per asset, the first slot with a value always
 * gives a command; later slots only when the value moves by more than the deadband.
 */

import { randomUUID } from 'node:crypto';
import { CHUNK, runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import {
  type Command,
  CommandStatus,
  CommandType,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
} from './commands';
import type { ScheduleSummary } from './event-bus';
import {
  type ParseOptions,
  parseSteps,
  type Schedule,
  ScheduleError,
  type ScheduleProblem,
  type SetpointColumn,
} from './schedule';

/**
 * What happens after the last slot: 'hold' keeps the last setpoint in force (its command
 * never expires); `fallbackKw` sends a setpoint per asset id at the end of the schedule
 * (positive charges, negative discharges a battery; '*' applies to every asset not named).
 * A negative fallback for an EV asset is refused with a ScheduleError.
 */
export type HorizonEnd = 'hold' | { fallbackKw: Record<string, number> };

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

/** An asset of a change plan, with the schedule columns that set it. */
export interface PlannedAsset {
  assetId: string;
  kind: 'ev' | 'battery';
  /** One column for an EV; charge and/or discharge for a battery (netted). */
  columns: string[];
}

/**
 * The setpoint changes of a conversion, one entry per future command, in parallel arrays
 * (per asset, in time order): a schedule of 10,000 assets x 96 slots gives ~160,000 of them,
 * and these are numbers in four arrays, not 160,000 objects.
 */
export interface ChangePlan {
  count: number;
  assets: readonly PlannedAsset[];
  /** Index into `assets`. */
  asset: readonly number[];
  /** The row whose start the change is due at; `times.length - 1` is the horizon-end fallback. */
  slot: readonly number[];
  /** Signed kW: a negative value discharges a battery. */
  valueKw: readonly number[];
  /** The slot at which it stops applying (the asset's next change), or -1: until replaced. */
  until: readonly number[];
  /** Epoch ms of each slot start, and last the end of the schedule. */
  times: readonly number[];
}

interface AssetColumns {
  assetId: string;
  kind: 'ev' | 'battery';
  ev?: SetpointColumn;
  charge?: SetpointColumn;
  discharge?: SetpointColumn;
}

export const DEFAULT_DEADBAND_KW = 0.001;

/**
 * Float noise allowed in kW comparisons: 1.1 - 1 is 0.10000000000000009, which is a change
 * of exactly 0.1 kW (within a deadband of 0.1), not above it.
 */
const KW_EPSILON = 1e-9;

/** Candidate asset-map keys for a setpoint column, in order of preference. */
export function mapKeysFor(col: SetpointColumn): string[] {
  if (col.kind === 'ev') {
    const k = col.key;
    return k.startsWith('ev_') ? [k, k.slice(3)] : [k, `ev_${k}`];
  }
  return col.key === '' ? ['battery'] : [col.key, `battery_${col.key}`];
}

function roundKw(v: number): number {
  // Netting and float noise (7.4 - 0.1 = 7.300000000000001): keep 1 mW resolution. The
  // values are within +-MAX_POWER_KW, so v * 1e6 stays finite (1e308 would overflow it to
  // Infinity); past 2^53 / 1e6 kW there is nothing below 1 mW to round anyway.
  if (!(Math.abs(v) < 1e9)) return v;
  const r = Math.round(v * 1e6) / 1e6;
  return r === 0 ? 0 : r;
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
  const problems: ScheduleProblem[] = [];
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

  // Which columns feed which asset.
  const byAsset = new Map<string, AssetColumns>();
  const unmapped: string[] = [];
  let work = 0;
  for (const col of schedule.setpoints) {
    if (++work >= CHUNK / 8) {
      work = 0;
      yield;
    }
    const key = mapKeysFor(col).find((k) => Object.hasOwn(assetMap, k));
    if (key === undefined) {
      unmapped.push(col.name);
      continue;
    }
    const assetId = assetMap[key] as string;
    const kind = col.kind === 'ev' ? 'ev' : 'battery';
    let entry = byAsset.get(assetId);
    if (!entry) {
      entry = { assetId, kind };
      byAsset.set(assetId, entry);
    }
    const slot = col.kind === 'ev' ? 'ev' : col.kind === 'battery_charge' ? 'charge' : 'discharge';
    const other =
      entry[slot] ??
      (entry.kind !== kind ? (entry.ev ?? entry.charge ?? entry.discharge) : undefined);
    if (other) {
      problems.push({
        column: col.name,
        reason: `maps to asset ${assetId}, which column ${other.name} already sets`,
      });
      continue;
    }
    entry[slot] = col;
  }
  if (unmapped.length > 0 && !options.ignoreUnmapped) {
    problems.push({
      reason: `no asset in assetMap for column${unmapped.length > 1 ? 's' : ''} ${unmapped.join(', ')} (map keys tried: ${unmapped
        .map((n) => {
          const c = schedule.setpoints.find((s) => s.name === n) as SetpointColumn;
          return mapKeysFor(c).join(' or ');
        })
        .join('; ')}); add them to assetMap or set ignoreUnmapped`,
    });
  }
  const fallbackFor = (assetId: string): number | undefined =>
    horizon === 'hold'
      ? undefined
      : Object.hasOwn(horizon.fallbackKw, assetId)
        ? horizon.fallbackKw[assetId]
        : horizon.fallbackKw['*'];
  for (const a of byAsset.values()) {
    const fb = fallbackFor(a.assetId);
    if (a.kind === 'ev' && fb !== undefined && fb < 0) {
      const key =
        horizon !== 'hold' && Object.hasOwn(horizon.fallbackKw, a.assetId) ? a.assetId : '*';
      problems.push({
        reason: `horizonEnd.fallbackKw[${JSON.stringify(key)}] is ${fb} kW for EV asset ${a.assetId}: an EV charger cannot discharge; use 0 or more`,
      });
    }
  }
  if (problems.length > 0) throw new ScheduleError(problems);

  const n = schedule.rows;
  const times = schedule.times;
  const endMs = schedule.slotEnd(n - 1);
  const rated = options.ratedKw ?? {};
  const hasRatings = Object.keys(rated).length > 0;
  const assets = [...byAsset.values()];

  // The changes, columnar: no object per command until someone asks for the commands.
  const plan = {
    asset: [] as number[],
    slot: [] as number[],
    valueKw: [] as number[],
    until: [] as number[],
  };
  const planAssets: PlannedAsset[] = [];
  for (let ai = 0; ai < assets.length; ai++) {
    const a = assets[ai] as AssetColumns;
    // Frozen: the plan and every command of the asset share this list.
    const colNames = Object.freeze(
      a.kind === 'ev'
        ? [(a.ev as SetpointColumn).name]
        : [a.charge?.name, a.discharge?.name].filter((x): x is string => x !== undefined),
    ) as string[];
    planAssets.push({ assetId: a.assetId, kind: a.kind, columns: colNames });
    const evVals = a.ev ? (schedule.values.get(a.ev.name) as Float64Array) : undefined;
    const chVals = a.charge ? (schedule.values.get(a.charge.name) as Float64Array) : undefined;
    const diVals = a.discharge
      ? (schedule.values.get(a.discharge.name) as Float64Array)
      : undefined;
    const limit = hasRatings && Object.hasOwn(rated, a.assetId) ? rated[a.assetId] : undefined;
    let charge = Number.NaN;
    let discharge = Number.NaN;
    let last = Number.NaN;
    let lastChange = -1;
    for (let i = 0; i < n; i++) {
      let v: number;
      if (evVals) {
        v = evVals[i] as number;
        if (Number.isNaN(v)) continue; // null: hold
      } else {
        const c = chVals ? (chVals[i] as number) : Number.NaN;
        const d = diVals ? (diVals[i] as number) : Number.NaN;
        if (!Number.isNaN(c)) charge = c;
        if (!Number.isNaN(d)) discharge = d;
        if (Number.isNaN(charge) && Number.isNaN(discharge)) continue;
        v = roundKw(
          (!Number.isNaN(charge) ? charge : 0) - (!Number.isNaN(discharge) ? discharge : 0),
        );
      }
      // parseSchedule bounds every cell; a Schedule built by hand is checked here, and so is
      // what netting derives from the cells.
      if (!(Math.abs(v) <= MAX_POWER_KW) || (evVals !== undefined && v < 0)) {
        problems.push({
          row: i,
          time: schedule.labels[i],
          column: colNames.join(' - '),
          value: v,
          reason:
            v < 0 && evVals !== undefined
              ? `${v} kW is negative: an EV setpoint is a magnitude`
              : `${v} kW is beyond ${MAX_POWER_KW} kW (1 GW), the most accepted for one asset`,
        });
        if (problems.length >= 50) break;
        continue;
      }
      if (limit !== undefined && Math.abs(v) > limit + KW_EPSILON) {
        problems.push({
          row: i,
          time: schedule.labels[i],
          column: colNames.join(' - '),
          value: v,
          reason: `${Math.abs(v)} kW is above the rated ${limit} kW of asset ${a.assetId}`,
        });
        if (problems.length >= 50) break;
        continue;
      }
      if (!Number.isNaN(last) && Math.abs(v - last) <= deadband + KW_EPSILON) continue;
      if (lastChange >= 0) plan.until[lastChange] = i;
      lastChange = plan.slot.length;
      plan.asset.push(ai);
      plan.slot.push(i);
      plan.valueKw.push(v);
      plan.until.push(-1);
      last = v;
    }
    const fb = fallbackFor(a.assetId);
    // (A negative fallback for an EV asset was rejected above.)
    if (fb !== undefined && lastChange >= 0 && Math.abs(fb - last) > deadband + KW_EPSILON) {
      plan.until[lastChange] = n;
      plan.asset.push(ai);
      plan.slot.push(n);
      plan.valueKw.push(fb);
      plan.until.push(-1);
    }
    work += n + 1;
    if (work >= CHUNK) {
      work = 0;
      yield;
    }
  }
  if (problems.length > 0) throw new ScheduleError(problems);

  const changes: ChangePlan = {
    count: plan.slot.length,
    assets: planAssets,
    asset: plan.asset,
    slot: plan.slot,
    valueKw: plan.valueKw,
    until: plan.until,
    times: [...times, endMs],
  };
  const summary: ScheduleSummary = {
    scheduleId,
    start: schedule.start.toISOString(),
    end: new Date(endMs).toISOString(),
    slotSeconds: schedule.slotSeconds,
    slots: n,
    assets: assets.map((a) => a.assetId),
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
