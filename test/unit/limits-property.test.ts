import { writeFileSync } from 'node:fs';
import should from 'should';
import { allocate, violations } from '../../src/limits/allocator';
import { validateLimits } from '../../src/limits/circuits';
import { failsafeShares } from '../../src/limits/failsafe';
import { planChanges } from '../../src/limits/plan';
import { LimitSources } from '../../src/limits/sources';
import type { Allocation, AssetConnection, MeterSpec } from '../../src/limits/types';
import { Check, makeCase, mulberry32, P, T0 } from '../helpers/limits-random';

// Random sites, loads, caps and requests (test/helpers/limits-random.ts); every property is
// checked by a straightforward computation there (walking the config), not by the code under
// test alone. Seeded: a failure prints the seed and case; LIMITS_SEED=<n> replays it,
// LIMITS_CASES=<n> runs more, LIMITS_DUMP=<file> writes the failing case as JSON.
const SEED = Number(process.env.LIMITS_SEED ?? 20251202);
const CASES = Number(process.env.LIMITS_CASES ?? 3000);

/** A plain check (should's deep equality costs more than the allocator in a loop of thousands). */
function ok(cond: boolean, what: () => string): void {
  if (!cond) throw new Error(what());
}

function checkAllocation(k: Check, allocs: Allocation[]): void {
  const c = k.c;
  const x = new Map(allocs.map((a) => [a.assetId, a.kw]));
  ok(
    allocs.map((a) => a.assetId).join() === c.requests.map((r) => r.assetId).join(),
    () => 'not one allocation per request, in order',
  );
  const broken = k.broken(x);
  ok(broken.length === 0, () => `a limit is exceeded: ${broken.join('; ')}`);
  const assets = new Map(c.config.assets.map((a) => [a.assetId, a]));
  for (const al of allocs) {
    const a = assets.get(al.assetId) as AssetConnection;
    const eps = 1e-6 * Math.max(1, Math.abs(al.askedKw));
    ok(
      al.kw * al.askedKw >= 0 && Math.abs(al.kw) <= Math.abs(al.askedKw) + eps,
      () => `${al.assetId} above its ask`,
    );
    ok(
      Math.abs(al.kw) <= k.assetCap(a, al.askedKw) + 1e-9,
      () => `${al.assetId} above its rating or cap`,
    );
    const min = k.minKw(a);
    ok(al.kw === 0 || Math.abs(al.kw) >= min - 1e-9, () => `${al.assetId} below its minimum`);
    // No capacity wasted: below the ask means a named limit that is tight.
    if (Math.abs(al.kw) >= Math.abs(al.askedKw) - eps) {
      ok(al.boundBy === null, () => `${al.assetId} got its ask but boundBy ${al.boundBy}`);
      continue;
    }
    const b = al.boundBy ?? '';
    const m = /^circuit (\S+) (importKw|importA|exportKw|exportA)(?: (L[123]))? \(/.exec(b);
    if (m) {
      const limit = m[2] as 'importKw';
      const v = k.limit(m[1] as string, limit);
      ok(v !== undefined, () => `${al.assetId}: ${b} is not a limit in force`);
      const u = k.usage(x, m[1] as string, limit, m[3] ? P.indexOf(m[3]) : -1);
      ok(
        u.total >= (v as number) - 1e-6 * Math.max(1, v as number),
        () => `${al.assetId}: ${b} is not tight (${u.total} < ${v})`,
      );
    } else if (b === 'rating') {
      const rating = al.askedKw < 0 ? (a.dischargeRatingKw ?? a.ratingKw) : a.ratingKw;
      ok(Math.abs(Math.abs(al.kw) - rating) < 1e-9, () => `${al.assetId}: not at its rating`);
    } else if (b.startsWith(`asset ${al.assetId} maxKw`)) {
      ok(
        Math.abs(Math.abs(al.kw) - k.assetCap(a, al.askedKw)) < 1e-9,
        () => `${al.assetId}: not at its cap`,
      );
    } else if (b.startsWith('minimum')) {
      ok(al.kw === 0, () => `${al.assetId}: bound by its minimum but given ${al.kw}`);
      if (min <= Math.min(Math.abs(al.askedKw), k.assetCap(a, al.askedKw))) {
        // Its minimum does not fit beside what the others got.
        const y = new Map(x);
        y.set(al.assetId, Math.sign(al.askedKw) * min);
        ok(k.broken(y).length > 0, () => `${al.assetId}: its minimum would fit`);
      }
    } else throw new Error(`${al.assetId}: boundBy ${JSON.stringify(b)}`);
  }
  // Equal weight and priority under the same binding limit: equal shares (unless at the minimum).
  const groups = new Map<string, Allocation[]>();
  for (const al of allocs) {
    if (!al.boundBy?.startsWith('circuit ')) continue;
    const a = assets.get(al.assetId) as AssetConnection;
    const key = `${al.boundBy} ${a.weight ?? 1} ${a.priority ?? 0}`;
    groups.set(key, [...(groups.get(key) ?? []), al]);
  }
  for (const g of groups.values()) {
    const free = g.filter(
      (al) => Math.abs(Math.abs(al.kw) - k.minKw(assets.get(al.assetId) as AssetConnection)) > 1e-7,
    );
    const first = Math.abs((free[0] as Allocation | undefined)?.kw ?? 0);
    for (const al of free)
      ok(
        Math.abs(Math.abs(al.kw) - first) <= 1e-6,
        () => `unequal shares under ${al.boundBy}: ${al.kw} and ${first}`,
      );
  }
}

describe('limits: property test over random sites (seeded)', function () {
  this.timeout(60_000);

  it(`${CASES} random cases: allocations fit, are fair, waste nothing; plans fit on the way`, () => {
    const rnd = mulberry32(SEED);
    let dropped = 0;
    let bound = 0;
    let maxRounds = 0;
    for (let i = 0; i < CASES; i++) {
      const c = makeCase(rnd);
      try {
        const limits = validateLimits(c.config);
        const sources = new LimitSources(limits);
        for (const cap of c.caps) sources.setCap(cap, T0);
        if (c.schedule.length > 0) sources.setScheduleLimits('s', c.schedule);
        const eff = sources.effective(c.now);
        const k = new Check(c);
        const allocs = allocate(limits, c.requests, c.loads, eff);
        checkAllocation(k, allocs);
        const v = violations(limits, allocs, c.loads, eff);
        ok(v.length === 0, () => `violations: ${v.join('; ')}`);
        dropped += allocs.filter((a) => a.boundBy?.startsWith('minimum')).length;
        bound += allocs.filter((a) => a.boundBy?.startsWith('circuit')).length;

        // Break before make: from another allocation that fits now, towards this one.
        const committed = new Map(
          allocate(limits, c.other, c.loads, eff).map((a) => [a.assetId, a.kw]),
        );
        ok(k.broken(committed).length === 0, () => 'the committed state does not fit');
        const hysteresis = rnd() < 0.5 ? 0 : 0.5;
        let state = new Map(committed);
        let rounds = 0;
        for (let round = 0; round < 40; round++) {
          const plan = planChanges(limits, allocs, state, c.loads, eff, hysteresis);
          if (plan.size === 0) break;
          rounds++;
          const order = [...plan.entries()].sort(() => rnd() - 0.5);
          for (const [id, v] of order) {
            state.set(id, v);
            const broken = k.broken(state);
            if (broken.length > 0)
              throw new Error(`after sending ${id} ${v} in round ${round}: ${broken.join('; ')}`);
          }
          state = new Map(state);
        }
        maxRounds = Math.max(maxRounds, rounds);
        if (hysteresis === 0)
          for (const a of allocs)
            ok(
              Math.abs((state.get(a.assetId) ?? 0) - a.kw) <= 1e-6,
              () => `${a.assetId} did not reach its target`,
            );
      } catch (err) {
        if (process.env.LIMITS_DUMP)
          writeFileSync(
            process.env.LIMITS_DUMP,
            JSON.stringify(c, (_, v) => (v instanceof Map ? [...v] : v)),
          );
        (err as Error).message =
          `seed ${SEED} case ${i}: ${(err as Error).message}\n${JSON.stringify(c, (_, v) => (v instanceof Map ? [...v] : v))}`;
        throw err;
      }
    }
    // The generator exercises the interesting paths.
    should(dropped).be.greaterThan(CASES / 20);
    should(bound).be.greaterThan(CASES / 2);
    // Plans reach their targets in a few calls (moves that free room go first).
    should(maxRounds).be.belowOrEqual(10);
  });

  it('failsafe shares fit with the worst cases on every circuit and phase (random sites)', () => {
    const rnd = mulberry32(SEED + 1);
    for (let i = 0; i < 1000; i++) {
      const c = makeCase(rnd);
      const meters: MeterSpec[] = c.config.circuits
        .filter(() => rnd() < 0.4)
        .map((x, j) =>
          rnd() < 0.5
            ? { id: `m${j}`, circuit: x.id, worstCaseKw: rnd() * 30 }
            : { id: `m${j}`, circuit: x.id, worstCaseA: rnd() * 20 },
        );
      c.config.meters = meters;
      c.caps = [];
      c.schedule = [];
      c.loads = new Map();
      const k = new Check(c);
      // The meters' worst cases as uncontrolled load on each circuit (including below).
      for (const x of c.config.circuits) {
        const a: [number, number, number] = [0, 0, 0];
        let kw = 0;
        for (const m of meters) {
          if (!k.under(m.circuit, x.id)) continue;
          const vm = k.volt.get(m.circuit) as number;
          const pk =
            m.worstCaseKw !== undefined
              ? m.worstCaseKw / 3
              : ((m.worstCaseA as number) * vm) / 1000;
          kw += 3 * pk;
          for (let p = 0; p < 3; p++)
            a[p] = (a[p] as number) + (pk * 1000) / (k.volt.get(x.id) as number);
        }
        c.loads.set(x.id, { a, kw, stale: [] });
      }
      const shares = failsafeShares(validateLimits(c.config));
      const x = new Map([...shares].map(([id, v]) => [id, v]));
      try {
        should(k.broken(x)).eql([]);
        for (const a of c.config.assets) {
          const v = shares.get(a.assetId) as number;
          should(v <= a.ratingKw + 1e-9 && (v === 0 || v >= k.minKw(a) - 1e-9)).be.true();
        }
      } catch (err) {
        (err as Error).message = `seed ${SEED + 1} case ${i}: ${(err as Error).message}`;
        throw err;
      }
    }
  });
});
