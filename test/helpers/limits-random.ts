/**
 * Random sites for the property test of site limits (test/unit/limits-property.test.ts): a
 * seeded generator of configurations, loads, caps and requests (`makeCase`), and `Check`,
 * straightforward computations from the raw configuration (walking parents, summing each
 * asset onto every circuit above it) that the test compares the code under test with.
 */
import type {
  AssetConnection,
  CircuitLoad,
  CircuitSpec,
  DynamicCap,
  LimitsConfig,
  PhaseConnection,
} from '../../src/limits/types';

export const T0 = Date.UTC(2025, 5, 2, 8);
export const P = ['L1', 'L2', 'L3'];

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Case {
  config: LimitsConfig;
  caps: DynamicCap[];
  schedule: { from: number; until: number | null; importKw: number }[];
  loads: Map<string, CircuitLoad>;
  requests: { assetId: string; kw: number }[];
  other: { assetId: string; kw: number }[];
  now: number;
}

export function makeCase(rnd: () => number): Case {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const chance = (p: number) => rnd() < p;
  const range = (lo: number, hi: number) => lo + rnd() * (hi - lo);
  const circuits: CircuitSpec[] = [{ id: 'root', importKw: range(20, 300) }];
  if (chance(0.5)) circuits[0] = { ...circuits[0], importA: range(40, 400) } as CircuitSpec;
  if (chance(0.4)) circuits[0] = { ...circuits[0], exportKw: range(5, 100) } as CircuitSpec;
  const feeders = 1 + Math.floor(rnd() * 4);
  for (let f = 0; f < feeders; f++) {
    const c: CircuitSpec = { id: `f${f}`, parent: 'root' };
    if (chance(0.7)) c.importA = range(10, 120);
    if (chance(0.3)) c.importKw = range(5, 80);
    if (chance(0.2)) c.exportA = range(5, 60);
    if (chance(0.15)) c.voltageV = pick([220, 240]);
    circuits.push(c);
    const subs = chance(0.5) ? Math.floor(rnd() * 3) : 0;
    for (let s = 0; s < subs; s++) {
      const sc: CircuitSpec = { id: `f${f}s${s}`, parent: `f${f}` };
      if (chance(0.8)) sc.importA = range(6, 63);
      if (chance(0.2)) sc.importKw = range(3, 30);
      if (chance(0.15)) sc.exportKw = range(2, 30);
      circuits.push(sc);
    }
  }
  const assets: AssetConnection[] = [];
  const n = 1 + Math.floor(rnd() * 25);
  for (let i = 0; i < n; i++) {
    const battery = chance(0.2);
    const phases = pick<PhaseConnection>(['L1', 'L2', 'L3', 'L1L2L3', 'L2L3L1', 'L3L1L2']);
    const three = phases.length > 2;
    const a: AssetConnection = {
      assetId: `a${i}`,
      kind: battery ? 'battery' : 'ev',
      circuit: pick(circuits).id,
      phases,
      ratingKw: battery ? range(3, 50) : three ? pick([11, 22]) : pick([3.7, 7.4]),
    };
    if (three && !battery && chance(0.3)) a.singlePhaseDraw = true;
    if (!battery && chance(0.6)) a.minA = 6;
    if (battery && chance(0.3)) a.minKw = range(0, 2);
    if (battery && chance(0.3)) a.dischargeRatingKw = range(3, 50);
    if (chance(0.3)) a.weight = pick([0.5, 2, 3]);
    if (chance(0.25)) a.priority = pick([1, 2]);
    assets.push(a);
  }
  // minA must not be above the rating for the validation to accept it.
  for (const a of assets)
    if (
      a.minA &&
      (6 * 240 * (a.phases.length > 2 && !a.singlePhaseDraw ? 3 : 1)) / 1000 > a.ratingKw
    )
      delete a.minA;
  const config: LimitsConfig = { circuits, assets, creditDischarge: chance(0.5) };
  const loads = new Map<string, CircuitLoad>();
  for (const c of circuits) {
    if (chance(0.3)) continue;
    const scale = c.importKw ?? 40;
    const a: [number, number, number] = [0, 0, 0].map(
      () => range(-0.3, 1.05) * (c.importA ?? 60) * 0.6,
    ) as [number, number, number];
    const l: CircuitLoad = { a, kw: range(-0.3, 1.1) * scale * 0.7, stale: [] };
    if (chance(0.5)) {
      l.generationKw = range(0, 10);
      l.generationA = [range(0, 10), range(0, 10), range(0, 10)];
    }
    loads.set(c.id, l);
  }
  const caps: DynamicCap[] = [];
  if (chance(0.4))
    caps.push({
      id: 'dso',
      source: 'grid-operator',
      importKw: range(5, 200),
      ...(chance(0.5) ? { expiresAt: T0 + 60_000 } : {}),
    });
  if (chance(0.3))
    caps.push({ id: 'feeder', source: 'flow', circuit: pick(circuits).id, importA: range(5, 80) });
  if (chance(0.2))
    caps.push({ id: 'exp', source: 'flow', circuit: pick(circuits).id, exportKw: range(1, 40) });
  if (chance(0.25))
    caps.push({
      id: '14a',
      source: 'grid-operator',
      assets: chance(0.5) ? '*' : [pick(assets).assetId],
      assetMaxKw: range(1, 10),
    });
  const schedule = chance(0.2) ? [{ from: T0, until: T0 + 120_000, importKw: range(10, 200) }] : [];
  const ask = (a: AssetConnection) =>
    a.kind === 'battery' && chance(0.5)
      ? -range(0, 60)
      : chance(0.1)
        ? 0
        : range(0, a.ratingKw * 1.3);
  const requests = assets
    .filter(() => chance(0.9))
    .map((a) => ({ assetId: a.assetId, kw: ask(a) }));
  const asked = new Set(requests.map((r) => r.assetId));
  const other = assets
    .filter((a) => asked.has(a.assetId))
    .map((a) => ({ assetId: a.assetId, kw: ask(a) }));
  return {
    config,
    caps,
    schedule,
    loads,
    requests,
    other,
    now: T0 + (chance(0.5) ? 30_000 : 90_000),
  };
}

/** Straightforward checks of a case, from the raw config. */
export class Check {
  readonly parent = new Map<string, string | null>();
  readonly volt = new Map<string, number>();
  constructor(readonly c: Case) {
    for (const x of c.config.circuits) this.parent.set(x.id, x.parent ?? null);
    const v = (id: string): number => {
      const x = c.config.circuits.find((y) => y.id === id) as CircuitSpec;
      return x.voltageV ?? (x.parent ? v(x.parent) : 230);
    };
    for (const x of c.config.circuits) this.volt.set(x.id, v(x.id));
  }
  private readonly ancestors = new Map<string, Set<string>>();
  under(circuit: string, ancestor: string): boolean {
    let set = this.ancestors.get(circuit);
    if (!set) {
      set = new Set<string>();
      for (let c: string | null = circuit; c; c = this.parent.get(c) ?? null) set.add(c);
      this.ancestors.set(circuit, set);
    }
    return set.has(ancestor);
  }
  phases(a: AssetConnection): string[] {
    if (a.phases.length === 2) return [a.phases];
    const three = [a.phases.slice(0, 2), a.phases.slice(2, 4), a.phases.slice(4)];
    return a.singlePhaseDraw ? [three[0] as string] : three;
  }
  minKw(a: AssetConnection): number {
    return (
      a.minKw ??
      ((a.minA ?? 0) * (this.volt.get(a.circuit) as number) * this.phases(a).length) / 1000
    );
  }
  private readonly cache = new Map<string, number | undefined>();
  /** The most restrictive value of a limit at `now`, from config, caps and schedule. */
  limit(
    circuit: string,
    limit: 'importKw' | 'exportKw' | 'importA' | 'exportA',
  ): number | undefined {
    const key = `${circuit} ${limit}`;
    if (!this.cache.has(key)) this.cache.set(key, this.computeLimit(circuit, limit));
    return this.cache.get(key);
  }
  computeLimit(
    circuit: string,
    limit: 'importKw' | 'exportKw' | 'importA' | 'exportA',
  ): number | undefined {
    const vals: number[] = [];
    const spec = this.c.config.circuits.find((x) => x.id === circuit) as CircuitSpec;
    if (spec[limit] !== undefined) vals.push(spec[limit] as number);
    for (const cap of this.c.caps) {
      if (cap.assets || (cap.expiresAt !== undefined && cap.expiresAt <= this.c.now)) continue;
      if ((cap.circuit ?? 'root') === circuit && cap[limit] !== undefined)
        vals.push(cap[limit] as number);
    }
    if (circuit === 'root' && limit === 'importKw')
      for (const s of this.c.schedule)
        if (s.from <= this.c.now && (s.until === null || s.until > this.c.now))
          vals.push(s.importKw);
    return vals.length > 0 ? Math.min(...vals) : undefined;
  }
  assetCap(a: AssetConnection, kw: number): number {
    let v = kw < 0 ? (a.dischargeRatingKw ?? a.ratingKw) : a.ratingKw;
    for (const cap of this.c.caps)
      if (cap.assets === '*' || (Array.isArray(cap.assets) && cap.assets.includes(a.assetId)))
        v = Math.min(v, cap.assetMaxKw as number);
    return v;
  }
  /**
   * One limit: `adds`, what the assets adding to it count (imports, or discharges); `total`,
   * everything (discharge credit and the uncontrolled load included).
   */
  usage(
    x: Map<string, number>,
    circuit: string,
    limit: string,
    phase: number,
  ): { adds: number; total: number } {
    const imp = limit.startsWith('import');
    const credit = this.c.config.creditDischarge ?? true;
    let own = 0;
    let adds = 0;
    for (const a of this.c.config.assets) {
      const kw = x.get(a.assetId) ?? 0;
      if (kw === 0 || !this.under(a.circuit, circuit)) continue;
      const u = imp ? (kw > 0 ? kw : credit ? kw : 0) : Math.max(0, -kw);
      let add = 0;
      if (limit.endsWith('Kw')) add = u;
      else {
        const ph = this.phases(a);
        if (ph.includes(P[phase] as string))
          add = (u * 1000) / ((this.volt.get(circuit) as number) * ph.length);
      }
      own += add;
      if (add > 0) adds += add;
    }
    const unc = this.uncontrolled(circuit, limit, phase);
    return { adds, total: own + unc };
  }
  /** Every limit exceeded while some asset adds to it (an uncontrolled load alone is not theirs). */
  broken(x: Map<string, number>): string[] {
    // One pass over the assets: add each one's kW and A to every circuit above it.
    const credit = this.c.config.creditDischarge ?? true;
    const sums = new Map<string, { adds: number; total: number }>();
    const add = (key: string, u: number) => {
      const e = sums.get(key) ?? { adds: 0, total: 0 };
      e.total += u;
      if (u > 0) e.adds += u;
      sums.set(key, e);
    };
    for (const a of this.c.config.assets) {
      const kw = x.get(a.assetId) ?? 0;
      if (kw === 0) continue;
      const imp = kw > 0 ? kw : credit ? kw : 0;
      const exp = Math.max(0, -kw);
      const ph = this.phases(a);
      for (let c: string | null = a.circuit; c; c = this.parent.get(c) ?? null) {
        const perA = 1000 / ((this.volt.get(c) as number) * ph.length);
        add(`${c} importKw -1`, imp);
        add(`${c} exportKw -1`, exp);
        for (const p of ph) {
          add(`${c} importA ${P.indexOf(p)}`, imp * perA);
          add(`${c} exportA ${P.indexOf(p)}`, exp * perA);
        }
      }
    }
    const out: string[] = [];
    for (const c of this.c.config.circuits)
      for (const limit of ['importKw', 'exportKw', 'importA', 'exportA'] as const) {
        const v = this.limit(c.id, limit);
        if (v === undefined) continue;
        for (const ph of limit.endsWith('A') ? [0, 1, 2] : [-1]) {
          const s = sums.get(`${c.id} ${limit} ${ph}`);
          if (!s) continue;
          const total = s.total + this.uncontrolled(c.id, limit, ph);
          const eps = 1e-6 * Math.max(1, v);
          if (s.adds > eps && total > v + eps) out.push(`${c.id} ${limit} ${ph}: ${total} > ${v}`);
        }
      }
    return out;
  }

  /** The uncontrolled load (import) or generation (export) counted against a limit. */
  uncontrolled(circuit: string, limit: string, phase: number): number {
    const l = this.c.loads.get(circuit);
    const imp = limit.startsWith('import');
    let unc = 0;
    if (l) {
      if (imp) unc = limit.endsWith('Kw') ? l.kw : (l.a[phase] as number);
      else
        unc = limit.endsWith('Kw')
          ? (l.generationKw ?? Math.max(0, -l.kw))
          : (l.generationA?.[phase] ?? Math.max(0, -(l.a[phase] as number)));
    }
    return unc;
  }
}
