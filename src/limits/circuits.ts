/**
 * The circuit tree of a site and how its assets hang off it: `validateLimits` checks a
 * configuration (from JSON or code; every error names the field) and resolves what the rest
 * of `src/limits/` needs (paths to the root, children, voltages, the phases each asset loads,
 * minimums in kW); conversions between kW and A; a meter's worst case. Pure: no I/O, no time.
 * (`failsafe.ts` says what each asset may draw when the gateway is gone.)
 */

import type {
  AssetConnection,
  CircuitSpec,
  LimitsConfig,
  MeterSpec,
  Phase,
  PhaseConnection,
  ResolvedAsset,
  ResolvedCircuit,
  SiteLimits,
} from './types';

export class LimitsConfigError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'LimitsConfigError';
  }
}

export const DEFAULT_VOLTAGE_V = 230;
export const DEFAULT_STALE_AFTER_S = 60;

const CONNECTIONS: readonly PhaseConnection[] = ['L1', 'L2', 'L3', 'L1L2L3', 'L2L3L1', 'L3L1L2'];
const TOP_KEYS = [
  'circuits',
  'assets',
  'meters',
  'minIntervalS',
  'hysteresisKw',
  'creditDischarge',
];
const LIMIT_KEYS = ['importKw', 'exportKw', 'importA', 'exportA'] as const;
const CIRCUIT_KEYS = ['id', 'parent', 'voltageV', ...LIMIT_KEYS];
const ASSET_KEYS = [
  'assetId',
  'kind',
  'circuit',
  'phases',
  'singlePhaseDraw',
  'ratingKw',
  'dischargeRatingKw',
  'minKw',
  'minA',
  'weight',
  'priority',
  'failsafeKw',
];
const METER_KEYS = ['id', 'circuit', 'staleAfterS', 'worstCaseKw', 'worstCaseA'];
const UNITS: Record<string, string> = {
  importKw: 'kW',
  exportKw: 'kW',
  importA: 'A per phase',
  exportA: 'A per phase',
};

const show = (v: unknown): string =>
  typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? 'undefined');

function fail(field: string, what: string, ...got: unknown[]): never {
  const tail = got.length > 0 ? `, got ${show(got[0])}` : '';
  throw new LimitsConfigError(`${field} ${what}${tail}`, field);
}

function record(v: unknown, field: string): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) fail(field, 'must be an object', v);
  return v as Record<string, unknown>;
}

function knownKeys(o: Record<string, unknown>, keys: readonly string[], field: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) {
      const near = keys.find((x) => x.toLowerCase() === k.toLowerCase());
      const hint = near ? ` (did you mean ${near}?)` : ` (known: ${keys.join(', ')})`;
      throw new LimitsConfigError(
        `${field}.${k} is not a known key${hint}`,
        field ? `${field}.${k}` : k,
      );
    }
  }
}

/** A finite number; `min` exclusive when `strict`. Returns undefined when absent. */
function num(
  o: Record<string, unknown>,
  key: string,
  field: string,
  opts: { min?: number; strict?: boolean; required?: boolean; unit?: string } = {},
): number | undefined {
  const v = o[key];
  const f = `${field}.${key}`;
  if (v === undefined && !opts.required) return undefined;
  const bound = opts.min === undefined ? '' : ` ${opts.strict ? '>' : '>='} ${opts.min}`;
  const unit = opts.unit ? ` (${opts.unit})` : '';
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(f, `must be a number${bound}${unit}`, v);
  if (opts.min !== undefined && (opts.strict ? v <= opts.min : v < opts.min))
    fail(f, `must be a number${bound}${unit}`, v);
  return v;
}

function id(o: Record<string, unknown>, key: string, field: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.trim() === '')
    fail(`${field}.${key}`, 'must be a non-empty string', v);
  return v;
}

function loadsOf(phases: PhaseConnection, singlePhaseDraw: boolean): Phase[] {
  if (phases.length === 2) return [phases as Phase];
  const three = [phases.slice(0, 2), phases.slice(2, 4), phases.slice(4, 6)] as Phase[];
  return singlePhaseDraw ? [three[0] as Phase] : three;
}

/** Checks a configuration; throws a LimitsConfigError naming the field. */
export function validateLimits(input: unknown): SiteLimits {
  const top = record(input, 'limits');
  knownKeys(top, TOP_KEYS, 'limits');
  if (!Array.isArray(top.circuits) || top.circuits.length === 0)
    fail('circuits', 'must be a non-empty array of circuits', top.circuits);
  if (!Array.isArray(top.assets))
    fail('assets', 'must be an array of asset connections', top.assets);
  if (top.meters !== undefined && !Array.isArray(top.meters))
    fail('meters', 'must be an array of meters', top.meters);
  num(top, 'minIntervalS', 'limits', { min: 0, unit: 's' });
  num(top, 'hysteresisKw', 'limits', { min: 0, unit: 'kW' });
  if (top.creditDischarge !== undefined && typeof top.creditDischarge !== 'boolean')
    fail('limits.creditDischarge', 'must be true or false', top.creditDischarge);

  // Circuits.
  const specs = new Map<string, { spec: CircuitSpec; field: string }>();
  let root: string | null = null;
  top.circuits.forEach((raw: unknown, i: number) => {
    const field = `circuits[${i}]`;
    const c = record(raw, field);
    knownKeys(c, CIRCUIT_KEYS, field);
    const cid = id(c, 'id', field);
    if (specs.has(cid)) fail(`${field}.id`, `duplicates the id of ${specs.get(cid)?.field}`, cid);
    if (
      c.parent !== undefined &&
      c.parent !== null &&
      (typeof c.parent !== 'string' || c.parent === '')
    )
      fail(`${field}.parent`, 'must be a circuit id, or null for the root', c.parent);
    num(c, 'voltageV', field, { min: 0, strict: true, unit: 'V' });
    for (const k of LIMIT_KEYS) num(c, k, field, { min: 0, strict: true, unit: UNITS[k] });
    const parent = (c.parent as string | null | undefined) ?? null;
    if (parent === null) {
      if (root !== null)
        fail(`${field}.parent`, `is missing, but ${root} is the root already (exactly one root)`);
      root = cid;
    }
    specs.set(cid, { spec: c as unknown as CircuitSpec, field });
  });
  if (root === null) fail('circuits', 'must have exactly one root (a circuit without parent)');
  for (const [cid, { spec, field }] of specs) {
    const p = spec.parent;
    if (p !== undefined && p !== null && !specs.has(p))
      fail(
        `${field}.parent`,
        `"${p}" is not a circuit id (known: ${[...specs.keys()].join(', ')})`,
      );
    if (p === cid) fail(`${field}.parent`, 'is the circuit itself (a cycle)', p);
  }
  const children = new Map<string, string[]>([...specs.keys()].map((k) => [k, []]));
  for (const [cid, { spec }] of specs) if (spec.parent) children.get(spec.parent)?.push(cid);
  const circuits = new Map<string, ResolvedCircuit>();
  const order: string[] = [];
  const queue: string[] = [root];
  while (queue.length > 0) {
    const cid = queue.shift() as string;
    const spec = specs.get(cid)?.spec as CircuitSpec;
    const parent = spec.parent ?? null;
    const up = parent === null ? null : (circuits.get(parent) as ResolvedCircuit);
    circuits.set(cid, {
      ...spec,
      parent,
      voltageV: spec.voltageV ?? up?.voltageV ?? DEFAULT_VOLTAGE_V,
      path: [cid, ...(up?.path ?? [])],
      children: children.get(cid) as string[],
    });
    order.push(cid);
    queue.push(...(children.get(cid) as string[]));
  }
  for (const [cid, { field }] of specs) {
    if (!circuits.has(cid))
      fail(`${field}.parent`, `makes a cycle: circuit ${cid} does not lead to the root ${root}`);
  }
  const circuitList = () => `known: ${order.join(', ')}`;

  // Assets.
  const assets = new Map<string, ResolvedAsset>();
  const assetField = new Map<string, string>();
  top.assets.forEach((raw: unknown, i: number) => {
    const field = `assets[${i}]`;
    const a = record(raw, field);
    knownKeys(a, ASSET_KEYS, field);
    const aid = id(a, 'assetId', field);
    if (assets.has(aid))
      fail(`${field}.assetId`, `duplicates the assetId of ${assetField.get(aid)}`, aid);
    if (a.kind !== 'ev' && a.kind !== 'battery')
      fail(`${field}.kind`, 'must be ev or battery', a.kind);
    const cid = id(a, 'circuit', field);
    const circuit = circuits.get(cid);
    if (!circuit) fail(`${field}.circuit`, `"${cid}" is not a circuit id (${circuitList()})`);
    if (!CONNECTIONS.includes(a.phases as PhaseConnection))
      fail(`${field}.phases`, `must be one of ${CONNECTIONS.join(', ')}`, a.phases);
    if (a.singlePhaseDraw !== undefined && typeof a.singlePhaseDraw !== 'boolean')
      fail(`${field}.singlePhaseDraw`, 'must be true or false', a.singlePhaseDraw);
    const rating = num(a, 'ratingKw', field, { min: 0, strict: true, required: true, unit: 'kW' });
    const discharge = num(a, 'dischargeRatingKw', field, { min: 0, strict: true, unit: 'kW' });
    if (discharge !== undefined && a.kind !== 'battery')
      fail(
        `${field}.dischargeRatingKw`,
        'is for a battery only (an EV charger does not discharge)',
      );
    const minKw = num(a, 'minKw', field, { min: 0, unit: 'kW' });
    const minA = num(a, 'minA', field, { min: 0, unit: 'A per phase' });
    if (minKw !== undefined && minA !== undefined)
      fail(`${field}.minA`, 'and minKw are both given: give one of them');
    const weight = num(a, 'weight', field, { min: 0, strict: true }) ?? 1;
    const priority = num(a, 'priority', field) ?? 0;
    const failsafe = num(a, 'failsafeKw', field, { min: 0, unit: 'kW' });
    if (failsafe !== undefined && failsafe > (rating as number))
      fail(`${field}.failsafeKw`, `must not exceed ratingKw ${rating}`, failsafe);
    const spd = a.singlePhaseDraw === true;
    const loads = loadsOf(a.phases as PhaseConnection, spd);
    const minKwResolved = minKw ?? ((minA ?? 0) * circuit.voltageV * loads.length) / 1000;
    const smallest = Math.min(rating as number, discharge ?? (rating as number));
    if (minKwResolved > smallest)
      fail(
        `${field}.${minA !== undefined ? 'minA' : 'minKw'}`,
        `is above the rating (${minKwResolved.toFixed(2)} kW > ${smallest} kW)`,
        minA ?? minKw,
      );
    assetField.set(aid, field);
    assets.set(aid, {
      ...(a as unknown as AssetConnection),
      loads,
      minKwResolved,
      weight,
      priority,
    });
  });

  // Meters.
  const meters = new Map<string, MeterSpec & { staleAfterS: number }>();
  const meterField = new Map<string, string>();
  ((top.meters ?? []) as unknown[]).forEach((raw, i) => {
    const field = `meters[${i}]`;
    const m = record(raw, field);
    knownKeys(m, METER_KEYS, field);
    const mid = id(m, 'id', field);
    if (meters.has(mid)) fail(`${field}.id`, `duplicates the id of ${meterField.get(mid)}`, mid);
    const cid = id(m, 'circuit', field);
    const circuit = circuits.get(cid);
    if (!circuit) fail(`${field}.circuit`, `"${cid}" is not a circuit id (${circuitList()})`);
    const staleAfterS = num(m, 'staleAfterS', field, { min: 0, strict: true, unit: 's' });
    const wkw = num(m, 'worstCaseKw', field, { min: 0, unit: 'kW' });
    const wa = num(m, 'worstCaseA', field, { min: 0, unit: 'A per phase' });
    if (wkw !== undefined && wa !== undefined)
      fail(`${field}.worstCaseA`, 'and worstCaseKw are both given: give one of them');
    if (
      wkw === undefined &&
      wa === undefined &&
      !circuit.path.some((c) => hasImportLimit(circuits, c))
    )
      fail(
        `${field}`,
        `needs worstCaseKw or worstCaseA: circuit ${cid} and its parents have no import limit to default to`,
      );
    meterField.set(mid, field);
    meters.set(mid, {
      ...(m as unknown as MeterSpec),
      staleAfterS: staleAfterS ?? DEFAULT_STALE_AFTER_S,
    });
  });

  return { config: top as unknown as LimitsConfig, order, circuits, assets, meters };
}

function hasImportLimit(circuits: Map<string, ResolvedCircuit>, cid: string): boolean {
  const c = circuits.get(cid);
  return c?.importKw !== undefined || c?.importA !== undefined;
}

/**
 * A on each phase the asset loads, per kW it draws, on circuit `circuitId` (default: its own
 * circuit), with that circuit's voltage: 1000 / (V x number of phases it loads).
 */
export function ampsPerKw(asset: ResolvedAsset, limits: SiteLimits, circuitId?: string): number {
  const c = limits.circuits.get(circuitId ?? asset.circuit) as ResolvedCircuit;
  return 1000 / (c.voltageV * asset.loads.length);
}

/** A per phase -> kW on `phases` phases at `voltageV`. */
export function ampsToKw(a: number, voltageV: number, phases = 3): number {
  return (a * voltageV * phases) / 1000;
}

/**
 * A meter's worst case as counted on its own circuit: total kW, and kW per phase (for the
 * A limits). Given: worstCaseKw (spread evenly) or worstCaseA. Default: the import limits of
 * its circuit (importKw as kW, importA as A on each phase), or of the nearest parent that has
 * one, so that nothing is left for the assets below.
 */
export function meterWorstCase(
  meter: MeterSpec,
  limits: SiteLimits,
): { kw: number; phaseKw: [number, number, number] } {
  const c = limits.circuits.get(meter.circuit) as ResolvedCircuit;
  if (meter.worstCaseKw !== undefined) {
    const p = meter.worstCaseKw / 3;
    return { kw: meter.worstCaseKw, phaseKw: [p, p, p] };
  }
  if (meter.worstCaseA !== undefined) {
    const p = ampsToKw(meter.worstCaseA, c.voltageV, 1);
    return { kw: 3 * p, phaseKw: [p, p, p] };
  }
  for (const cid of c.path) {
    const x = limits.circuits.get(cid) as ResolvedCircuit;
    if (x.importKw === undefined && x.importA === undefined) continue;
    // Per-phase kW counted on the meter's circuit, so that A on `x` come out as x.importA.
    const pa = x.importA !== undefined ? ampsToKw(x.importA, x.voltageV, 1) : undefined;
    const kw = x.importKw ?? 3 * (pa as number);
    const p = pa ?? kw / 3;
    return { kw, phaseKw: [p, p, p] };
  }
  return { kw: 0, phaseKw: [0, 0, 0] };
}
