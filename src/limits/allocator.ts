/**
 * Shares what fits: `allocate` turns what the assets ask into what each may draw so that on
 * every circuit and phase the controllable load plus the uncontrolled load stays within every
 * limit in force; `violations` checks any set of allocations against the same rules (for
 * tests and hosts). Pure.
 *
 * The rules:
 * - Import: on each circuit with an import limit, the assets below it (kW, and A on each
 *   phase they load) plus the uncontrolled load (`CircuitLoad.kw`, `.a`) stay within the
 *   limit; if the uncontrolled load alone exceeds it, the assets below get 0.
 * - Export (batteries discharging): the discharges below a circuit plus the generation
 *   (`CircuitLoad.generationKw`, `.generationA`) stay within its export limits. Consumption
 *   and charging are not credited against export limits.
 * - Discharge credit (`creditDischarge`, default true): discharges are allocated first; what
 *   a battery is allocated to discharge then frees as much import capacity on its circuits
 *   (and phases) for the others. Without it, a discharge neither frees nor takes import.
 * - Each asset: never more than asked, its rating (dischargeRatingKw when discharging), or an
 *   asset cap in force (maxKw, applied to both directions); 0 or at least its minimum.
 * - Sharing: higher priority first; equal priority by weighted max-min fairness in kW
 *   (water-filling, see `fill.ts`), minimums as described there.
 */

import { ampsPerKw } from './circuits';
import { BOUND_MIN, BOUND_UPPER, type FillItem, waterFill } from './fill';
import { describeLimit } from './sources';
import type {
  Allocation,
  AllocationRequest,
  CircuitLimits,
  CircuitLoad,
  EffectiveLimits,
  LimitInForce,
  ResolvedAsset,
  ResolvedCircuit,
  SiteLimits,
} from './types';
import { PHASES } from './types';

export class AllocationError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'AllocationError';
  }
}

/** One linear constraint of one direction: a limit on a circuit, kW or A on one phase. */
export interface Constraint {
  circuit: string;
  limit: keyof CircuitLimits;
  /** Phase index (0..2) for A limits; -1 for kW limits. */
  phase: number;
  inForce: LimitInForce;
  /** The limit minus the uncontrolled load (import) or generation (export). */
  cap: number;
}

/** `circuit feeder-1 importA L2 (config)` */
export function constraintLabel(c: Constraint): string {
  return describeLimit(c.inForce, c.phase < 0 ? undefined : PHASES[c.phase]);
}

/** Uncontrolled load counted against the limit of `c` (import) or generation (export). */
export function uncontrolled(
  load: CircuitLoad | undefined,
  dir: 'import' | 'export',
  phase: number,
): number {
  if (!load) return 0;
  if (dir === 'import') return phase < 0 ? load.kw : (load.a[phase] as number);
  if (phase < 0) return load.generationKw ?? Math.max(0, -load.kw);
  return load.generationA?.[phase] ?? Math.max(0, -(load.a[phase] as number));
}

/**
 * The constraints of one direction over the given assets, and for each asset its constraint
 * indexes and coefficients (1 per kW for kW limits, A per kW on each phase it loads).
 */
/** Per asset, what does not change between allocations: its path and A per kW on each circuit. */
interface AssetLayout {
  /** Circuit indexes (into `order`) of its path, its own circuit first. */
  path: Int32Array;
  /** A per kW on each loaded phase, per circuit of the path. */
  apk: Float64Array;
  /** Indexes (0..2) of the phases it loads. */
  phases: Int32Array;
}
const layouts = new WeakMap<SiteLimits, Map<string, AssetLayout>>();

function layoutOf(limits: SiteLimits): Map<string, AssetLayout> {
  let map = layouts.get(limits);
  if (map) return map;
  map = new Map();
  const index = new Map(limits.order.map((c, i) => [c, i]));
  for (const a of limits.assets.values()) {
    const path = (limits.circuits.get(a.circuit) as ResolvedCircuit).path;
    map.set(a.assetId, {
      path: Int32Array.from(path, (c) => index.get(c) as number),
      apk: Float64Array.from(path, (c) => ampsPerKw(a, limits, c)),
      phases: Int32Array.from(a.loads, (ph) => PHASES.indexOf(ph)),
    });
  }
  layouts.set(limits, map);
  return map;
}

export function buildConstraints(
  limits: SiteLimits,
  assets: ResolvedAsset[],
  dir: 'import' | 'export',
  loads: Map<string, CircuitLoad>,
  effective: EffectiveLimits,
): { cons: Constraint[]; of: { cons: number[]; coefs: number[] }[] } {
  const cons: Constraint[] = [];
  const kwKey = dir === 'import' ? 'importKw' : 'exportKw';
  const aKey = dir === 'import' ? 'importA' : 'exportA';
  // Per circuit index: its kW constraint and its three A constraints (-1: none).
  const ks = new Int32Array(4 * limits.order.length).fill(-1);
  limits.order.forEach((cid, ci) => {
    const eff = effective.circuits.get(cid);
    if (!eff) return;
    const load = loads.get(cid);
    const kw = eff[kwKey];
    if (kw) {
      ks[4 * ci] = cons.length;
      const cap = kw.value - uncontrolled(load, dir, -1);
      cons.push({ circuit: cid, limit: kwKey, phase: -1, inForce: kw, cap });
    }
    const a = eff[aKey];
    if (a) {
      for (let p = 0; p < 3; p++) {
        ks[4 * ci + 1 + p] = cons.length;
        const cap = a.value - uncontrolled(load, dir, p);
        cons.push({ circuit: cid, limit: aKey, phase: p, inForce: a, cap });
      }
    }
  });
  const layout = layoutOf(limits);
  const of = assets.map((asset) => {
    const l = layout.get(asset.assetId) as AssetLayout;
    const out = { cons: [] as number[], coefs: [] as number[] };
    for (let m = 0; m < l.path.length; m++) {
      const base = 4 * (l.path[m] as number);
      const kw = ks[base] as number;
      if (kw >= 0) {
        out.cons.push(kw);
        out.coefs.push(1);
      }
      if ((ks[base + 1] as number) >= 0) {
        const apk = l.apk[m] as number;
        for (let q = 0; q < l.phases.length; q++) {
          out.cons.push(ks[base + 1 + (l.phases[q] as number)] as number);
          out.coefs.push(apk);
        }
      }
    }
    return out;
  });
  return { cons, of };
}

/** The most an asset may do in the direction of `kw` (rating, asset cap), and what sets it. */
export function assetUpper(
  asset: ResolvedAsset,
  kw: number,
  effective: EffectiveLimits,
): { value: number; label: string } {
  const rating = kw < 0 ? (asset.dischargeRatingKw ?? asset.ratingKw) : asset.ratingKw;
  const cap = effective.assets.get(asset.assetId);
  if (cap && cap.value < rating) return { value: cap.value, label: describeLimit(cap) };
  return { value: rating, label: 'rating' };
}

function checkRequests(limits: SiteLimits, requests: AllocationRequest[]): ResolvedAsset[] {
  if (!Array.isArray(requests)) throw new AllocationError('requests must be an array', 'requests');
  const seen = new Set<string>();
  return requests.map((r, i) => {
    const asset = limits.assets.get(r?.assetId);
    if (!asset)
      throw new AllocationError(
        `requests[${i}].assetId ${JSON.stringify(r?.assetId)} is not an asset of the site limits`,
        `requests[${i}].assetId`,
      );
    if (seen.has(r.assetId))
      throw new AllocationError(
        `requests[${i}].assetId ${r.assetId} is asked twice`,
        `requests[${i}].assetId`,
      );
    seen.add(r.assetId);
    if (typeof r.kw !== 'number' || !Number.isFinite(r.kw))
      throw new AllocationError(
        `requests[${i}].kw must be a finite number (kW), got ${String(r.kw)}`,
        `requests[${i}].kw`,
      );
    if (r.kw < 0 && asset.kind !== 'battery')
      throw new AllocationError(
        `requests[${i}].kw is ${r.kw}: ${r.assetId} is an EV charger and cannot discharge`,
        `requests[${i}].kw`,
      );
    return asset;
  });
}

const fmtKw = (v: number) => `${Number(v.toFixed(3))} kW`;

/** One direction: fills `idx` (indexes into requests) against `cons`. Returns kW magnitudes. */
function solve(
  requests: AllocationRequest[],
  assets: ResolvedAsset[],
  idx: number[],
  cons: Constraint[],
  of: { cons: number[]; coefs: number[] }[],
  effective: EffectiveLimits,
  out: Allocation[],
): void {
  const uppers = idx.map((i) =>
    assetUpper(assets[i] as ResolvedAsset, (requests[i] as AllocationRequest).kw, effective),
  );
  const items: FillItem[] = idx.map((i, j) => {
    const a = assets[i] as ResolvedAsset;
    return {
      upper: Math.min(
        Math.abs((requests[i] as AllocationRequest).kw),
        (uppers[j] as { value: number }).value,
      ),
      min: a.minKwResolved,
      weight: a.weight,
      priority: a.priority,
      cons: (of[j] as { cons: number[] }).cons,
      coefs: (of[j] as { coefs: number[] }).coefs,
    };
  });
  const { x, bound } = waterFill(
    cons.map((c) => c.cap),
    items,
  );
  const labels = new Map<number, string>();
  idx.forEach((i, j) => {
    const r = requests[i] as AllocationRequest;
    const asked = Math.abs(r.kw);
    // Dust from floating point (1e-15 kW) is 0.
    const given = (x[j] as number) < 1e-9 ? 0 : (x[j] as number);
    const a = assets[i] as ResolvedAsset;
    const b = bound[j] as number;
    let boundBy: string | null = null;
    if (given < asked - 1e-9) {
      const up = uppers[j] as { value: number; label: string };
      if (b === BOUND_MIN) {
        boundBy = `minimum ${fmtKw(a.minKwResolved)}`;
        if (up.value < a.minKwResolved) boundBy += ` above ${up.label}`;
      } else if (b === BOUND_UPPER) boundBy = up.label;
      else {
        boundBy = labels.get(b) ?? constraintLabel(cons[b] as Constraint);
        labels.set(b, boundBy);
      }
    }
    out[i] = { assetId: r.assetId, askedKw: r.kw, kw: r.kw < 0 ? -given : given, boundBy };
  });
}

/** What each asset may draw (one per request, same order). Throws an AllocationError for a bad request. */
export function allocate(
  limits: SiteLimits,
  requests: AllocationRequest[],
  loads: Map<string, CircuitLoad>,
  effective: EffectiveLimits,
): Allocation[] {
  const assets = checkRequests(limits, requests);
  const out: Allocation[] = new Array(requests.length);
  const discharging: number[] = [];
  const charging: number[] = [];
  requests.forEach((r, i) => {
    if (r.kw < 0) discharging.push(i);
    else if (r.kw > 0) charging.push(i);
    else out[i] = { assetId: r.assetId, askedKw: r.kw, kw: 0, boundBy: null };
  });
  if (discharging.length > 0) {
    const list = discharging.map((i) => assets[i] as ResolvedAsset);
    const { cons, of } = buildConstraints(limits, list, 'export', loads, effective);
    solve(requests, assets, discharging, cons, of, effective, out);
  }
  if (charging.length > 0) {
    const list = charging.map((i) => assets[i] as ResolvedAsset);
    const { cons, of } = buildConstraints(limits, list, 'import', loads, effective);
    if ((limits.config.creditDischarge ?? true) && discharging.length > 0) {
      const byKey = new Map(cons.map((c, k) => [`${c.circuit} ${c.limit} ${c.phase}`, k]));
      const credit = buildConstraints(
        limits,
        discharging.map((i) => assets[i] as ResolvedAsset),
        'import',
        new Map(),
        effective,
      );
      discharging.forEach((i, j) => {
        const d = -(out[i] as Allocation).kw;
        const o = credit.of[j] as { cons: number[]; coefs: number[] };
        o.cons.forEach((k, m) => {
          const c = credit.cons[k] as Constraint;
          const own = byKey.get(`${c.circuit} ${c.limit} ${c.phase}`);
          if (own !== undefined) (cons[own] as Constraint).cap += d * (o.coefs[m] as number);
        });
      });
    }
    solve(requests, assets, charging, cons, of, effective, out);
  }
  return out;
}

/** What one asset at `kw` counts on a constraint of direction `dir`, per unit of its coefficient. */
export function usageOf(kw: number, dir: 'import' | 'export', credit: boolean): number {
  if (dir === 'export') return Math.max(0, -kw);
  return kw >= 0 ? kw : credit ? kw : 0;
}

/**
 * Every way the allocations break a limit in force, a rating, an asset cap, the ask or a
 * minimum; empty when everything fits. A circuit limit counts as broken only when some
 * asset adds to it (imports for an import limit, discharges for an export limit): an
 * uncontrolled load alone above its limit is not the allocation's doing.
 */
export function violations(
  limits: SiteLimits,
  allocations: { assetId: string; kw: number; askedKw?: number }[],
  loads: Map<string, CircuitLoad>,
  effective: EffectiveLimits,
): string[] {
  const out: string[] = [];
  const credit = limits.config.creditDischarge ?? true;
  const tol = (v: number) => 1e-6 * Math.max(1, Math.abs(v));
  const used = allocations.filter((a) => limits.assets.has(a.assetId));
  for (const al of allocations) {
    const asset = limits.assets.get(al.assetId);
    if (!asset) {
      out.push(`asset ${al.assetId}: not an asset of the site limits`);
      continue;
    }
    const up = assetUpper(asset, al.kw, effective);
    if (Math.abs(al.kw) > up.value + tol(up.value))
      out.push(`asset ${al.assetId} ${up.label}: ${fmtKw(Math.abs(al.kw))} > ${fmtKw(up.value)}`);
    if (
      al.askedKw !== undefined &&
      (al.kw * al.askedKw < 0 || Math.abs(al.kw) > Math.abs(al.askedKw) + tol(al.askedKw))
    )
      out.push(`asset ${al.assetId}: given ${fmtKw(al.kw)}, more than asked ${fmtKw(al.askedKw)}`);
    if (al.kw !== 0 && Math.abs(al.kw) < asset.minKwResolved - tol(asset.minKwResolved))
      out.push(
        `asset ${al.assetId}: ${fmtKw(Math.abs(al.kw))} is below its minimum ${fmtKw(asset.minKwResolved)}`,
      );
    if (al.kw < 0 && asset.kind !== 'battery')
      out.push(`asset ${al.assetId}: an EV charger cannot discharge`);
  }
  for (const dir of ['import', 'export'] as const) {
    const assets = used.map((a) => limits.assets.get(a.assetId) as ResolvedAsset);
    const { cons, of } = buildConstraints(limits, assets, dir, loads, effective);
    const sum = new Float64Array(cons.length);
    const adds = new Float64Array(cons.length);
    used.forEach((a, j) => {
      const u = usageOf(a.kw, dir, credit);
      if (u === 0) return;
      const o = of[j] as { cons: number[]; coefs: number[] };
      o.cons.forEach((k, m) => {
        sum[k] = (sum[k] as number) + u * (o.coefs[m] as number);
        if (u > 0) adds[k] = (adds[k] as number) + u * (o.coefs[m] as number);
      });
    });
    cons.forEach((c, k) => {
      const total = (sum[k] as number) + (c.inForce.value - c.cap);
      const over = total - c.inForce.value;
      if ((adds[k] as number) > tol(c.inForce.value) && over > tol(c.inForce.value)) {
        const unit = c.phase < 0 ? 'kW' : 'A';
        out.push(
          `${constraintLabel(c)}: ${total.toFixed(3)} ${unit} > ${c.inForce.value} ${unit}, over by ${over.toFixed(3)} ${unit}`,
        );
      }
    });
  }
  return out;
}
