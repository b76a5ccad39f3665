/**
 * Schedule -> change plan, pure: which columns feed which asset (the asset map, battery
 * netting), and per asset the setpoint changes that become commands (deadband, ratings,
 * the horizon-end fallback), as parallel arrays: no object per command. convert.ts makes
 * the conversion and the commands from it.
 */

import { CHUNK, type Steps } from './chunks';
import { MAX_POWER_KW } from './commands';
import {
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

/** Rows of a change plan built in one set of arrays before the next (see `planSteps`). */
const SEGMENT = 32_768;

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

/** What `planSteps` needs of the conversion's options, checked by convertSchedule. */
export interface PlanRules {
  assetMap: Record<string, string>;
  ignoreUnmapped?: boolean;
  ratedKw?: Record<string, number>;
  deadband: number;
  horizon: HorizonEnd;
}

/**
 * The change plan of a parsed schedule, and its setpoint columns that no asset takes
 * (`unmapped`, allowed by `ignoreUnmapped`); or a ScheduleError naming each column, row and
 * value that was wrong. Yields at checkpoints (see chunks.ts).
 */
export function* planSteps(
  schedule: Schedule,
  rules: PlanRules,
): Steps<{ changes: ChangePlan; unmapped: string[] }> {
  const { assetMap, deadband, horizon } = rules;
  const problems: ScheduleProblem[] = [];
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
  if (unmapped.length > 0 && !rules.ignoreUnmapped) {
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
  const rated = rules.ratedKw ?? {};
  const hasRatings = Object.keys(rated).length > 0;
  const assets = [...byAsset.values()];

  // The changes, columnar: no object per command until someone asks for the commands. Built
  // in segments of about SEGMENT rows (cut between assets) joined at the end one column a
  // step: four arrays growing past 100,000 rows would each be copied to fresh memory within
  // the same step (tens of ms).
  type Columns = { asset: number[]; slot: number[]; valueKw: number[]; until: number[] };
  const segments: Columns[] = [];
  let plan: Columns = { asset: [], slot: [], valueKw: [], until: [] };
  let rowsBefore = 0;
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
    if (plan.slot.length >= SEGMENT) {
      segments.push(plan);
      rowsBefore += plan.slot.length;
      plan = { asset: [], slot: [], valueKw: [], until: [] };
    }
    if (work >= CHUNK) {
      work = 0;
      yield;
    }
  }
  if (problems.length > 0) throw new ScheduleError(problems);
  segments.push(plan);
  const column = function* (k: keyof Columns): Steps<number[]> {
    yield;
    return segments.length === 1
      ? (plan[k] as number[])
      : ([] as number[]).concat(...segments.map((g) => g[k]));
  };
  const changes: ChangePlan = {
    count: rowsBefore + plan.slot.length,
    assets: planAssets,
    asset: yield* column('asset'),
    slot: yield* column('slot'),
    valueKw: yield* column('valueKw'),
    until: yield* column('until'),
    times: [...times, endMs],
  };
  return { changes, unmapped };
}
