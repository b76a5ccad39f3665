import should from 'should';
import { AllocationError, allocate, violations } from '../../src/limits/allocator';
import { validateLimits } from '../../src/limits/circuits';
import { MeterReadings } from '../../src/limits/meters';
import { planChanges } from '../../src/limits/plan';
import { LimitSources } from '../../src/limits/sources';
import type {
  Allocation,
  AssetConnection,
  CircuitSpec,
  LimitsConfig,
} from '../../src/limits/types';

const T0 = Date.UTC(2025, 5, 2, 8);
const MIN = 60_000;

/** A site: limits, its sources, its meters, and allocate() at `now` with the meters' loads. */
function site(config: LimitsConfig) {
  const limits = validateLimits(config);
  const sources = new LimitSources(limits);
  const meters = new MeterReadings(limits);
  const run = (asks: Record<string, number>, now = T0) => {
    const loads = meters.loads(now);
    const eff = sources.effective(now);
    const requests = Object.entries(asks).map(([assetId, kw]) => ({ assetId, kw }));
    const out = allocate(limits, requests, loads, eff);
    should(violations(limits, out, loads, eff)).eql([]);
    return out;
  };
  const kw = (out: Allocation[]) => Object.fromEntries(out.map((a) => [a.assetId, round(a.kw)]));
  return { limits, sources, meters, run, kw };
}

const round = (v: number) => Math.round(v * 1000) / 1000;
const ev = (
  assetId: string,
  circuit: string,
  phases: AssetConnection['phases'],
  more: Partial<AssetConnection> = {},
): AssetConnection => ({
  assetId,
  kind: 'ev',
  circuit,
  phases,
  ratingKw: phases.length > 2 ? 22 : 7.4,
  minA: 6,
  ...more,
});

describe('limits: allocate', () => {
  it('shares a feeder A limit equally among three-phase chargers, wired with rotation', () => {
    const s = site({
      circuits: [
        { id: 'grid', importKw: 200 },
        { id: 'feeder', parent: 'grid', importA: 32 },
      ],
      assets: [
        ev('a', 'feeder', 'L1L2L3'),
        ev('b', 'feeder', 'L2L3L1'),
        ev('c', 'feeder', 'L3L1L2'),
      ],
    });
    const out = s.run({ a: 22, b: 22, c: 22 });
    // 32 A per phase over three chargers: 10.667 A each = 7.36 kW.
    should(s.kw(out)).eql({ a: 7.36, b: 7.36, c: 7.36 });
    should(out[0]?.boundBy).match(/^circuit feeder importA L[123] \(config\)$/);
  });

  it('counts single-phase chargers and singlePhaseDraw on the phase they load', () => {
    const s = site({
      circuits: [{ id: 'grid', importA: 32 }],
      assets: [
        ev('l1', 'grid', 'L1', { minA: 0 }),
        // Its L1 is wired to the circuit's L2: a one-phase car draws on L2.
        ev('spd', 'grid', 'L2L3L1', { singlePhaseDraw: true, minA: 0 }),
        ev('l2', 'grid', 'L2', { minA: 0 }),
      ],
    });
    const out = s.run({ l1: 7.4, spd: 7.4, l2: 7.4 });
    // l1 alone on L1: 7.4 kW would be 32.17 A, so 32 A = 7.36 kW; spd and l2 share L2.
    should(s.kw(out)).eql({ l1: 7.36, spd: 3.68, l2: 3.68 });
    should(out[1]?.boundBy).equal('circuit grid importA L2 (config)');
    should(out[0]?.boundBy).equal('circuit grid importA L1 (config)');
  });

  it('minimum current: a charger whose share is below 6 A gets 0 and the others share its part', () => {
    const s = site({
      circuits: [{ id: 'grid', importA: 32 }],
      assets: ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => ev(id, 'grid', 'L1L2L3')),
    });
    const out = s.run({ a: 22, b: 22, c: 22, d: 22, e: 22, f: 22 });
    const given = out.filter((a) => a.kw > 0);
    should(given).have.length(5); // 32 A / 6 = 5.33 A < 6 A; 32 / 5 = 6.4 A
    for (const a of given) should(a.kw).be.approximately((6.4 * 690) / 1000, 1e-9);
    const dropped = out.find((a) => a.kw === 0) as Allocation;
    should(dropped.assetId).equal('f'); // the last of equals
    should(dropped.boundBy).equal('minimum 4.14 kW');
    // One asks less: the freed share goes to the others, and the dropped one is re-admitted.
    const again = s.run({ a: 22, b: 22, c: 22, d: 22, e: 0, f: 22 });
    should(again.filter((a) => a.kw > 0)).have.length(5);
    should(s.run({ a: 2 })[0]).eql({ assetId: 'a', askedKw: 2, kw: 0, boundBy: 'minimum 4.14 kW' });
  });

  it('three levels: root kW, feeders and sub-circuits in A, each binding in turn', () => {
    const s = site({
      circuits: [
        { id: 'grid', importKw: 30 },
        { id: 'f1', parent: 'grid', importA: 40 },
        { id: 'f1a', parent: 'f1', importA: 16 },
        { id: 'f2', parent: 'grid' },
      ],
      assets: [
        ev('a1', 'f1a', 'L1L2L3', { minA: 0 }),
        ev('a2', 'f1a', 'L1L2L3', { minA: 0 }),
        ev('b1', 'f1', 'L1L2L3', { minA: 0 }),
        ev('c1', 'f2', 'L1L2L3', { minA: 0 }),
      ],
    });
    const out = s.run({ a1: 22, a2: 22, b1: 22, c1: 22 });
    const k = s.kw(out);
    // f1a: 16 A for a1 and a2 -> 8 A each = 5.52 kW; grid 30 kW: b1 and c1 share the rest.
    should(k.a1).equal(5.52);
    should(k.a2).equal(5.52);
    should(k.b1).be.approximately(9.48, 1e-3);
    should(k.c1).be.approximately(9.48, 1e-3);
    should(out[0]?.boundBy).match(/^circuit f1a importA/);
    should(out[3]?.boundBy).equal('circuit grid importKw (config)');
  });

  it('priorities first, then weights', () => {
    const s = site({
      circuits: [{ id: 'grid', importKw: 20 }],
      assets: [
        ev('vip', 'grid', 'L1L2L3', { priority: 1, minA: 0 }),
        ev('w2', 'grid', 'L1L2L3', { weight: 2, minA: 0 }),
        ev('w1', 'grid', 'L1L2L3', { minA: 0 }),
      ],
    });
    should(s.kw(s.run({ vip: 11, w2: 22, w1: 22 }))).eql({ vip: 11, w2: 6, w1: 3 });
    should(s.kw(s.run({ vip: 22, w2: 22, w1: 22 }))).eql({ vip: 20, w2: 0, w1: 0 });
  });

  it('never above the ask, the rating or an asset cap (with its source)', () => {
    const s = site({
      circuits: [{ id: 'grid', importKw: 100 }],
      assets: [ev('a', 'grid', 'L1L2L3', { ratingKw: 11 }), ev('b', 'grid', 'L1L2L3')],
    });
    s.sources.setCap({ id: '§14a', source: 'grid-operator', assets: ['b'], assetMaxKw: 4.2 }, T0);
    const out = s.run({ a: 15, b: 22 });
    should(out).eql([
      { assetId: 'a', askedKw: 15, kw: 11, boundBy: 'rating' },
      { assetId: 'b', askedKw: 22, kw: 4.2, boundBy: 'asset b maxKw (grid-operator §14a)' },
    ]);
    should(s.run({ a: 5 })[0]).eql({ assetId: 'a', askedKw: 5, kw: 5, boundBy: null });
  });

  it('a stale meter counts as its worst case; an uncontrolled load above the limit leaves 0', () => {
    const s = site({
      circuits: [
        { id: 'grid', importKw: 50 },
        { id: 'f', parent: 'grid', importA: 63 },
      ],
      assets: [ev('a', 'f', 'L1L2L3', { minA: 0 })],
      meters: [
        { id: 'house', circuit: 'grid', worstCaseKw: 40, staleAfterS: 30 },
        { id: 'shop', circuit: 'f' },
      ],
    });
    s.meters.record({ meter: 'house', kw: 20 }, T0);
    // shop never read: counts as f's import limit, 63 A: nothing left below f.
    const first = s.run({ a: 22 }, T0)[0] as Allocation;
    should(first.kw).equal(0);
    should(first.boundBy).match(/^circuit (grid|f) import/);
    s.meters.record({ meter: 'shop', a: [10, 10, 10] }, T0);
    should(s.run({ a: 22 }, T0 + 1000)[0]).containEql({ kw: 22, boundBy: null });
    // house goes stale at T0 + 30 s: 40 kW + shop 6.9 kW leave 3.1 kW.
    should(s.run({ a: 22 }, T0 + 30_000)[0]?.kw).be.approximately(50 - 40 - 6.9, 1e-9);
    s.meters.record({ meter: 'house', kw: 60 }, T0 + 31_000);
    should(s.run({ a: 22 }, T0 + 31_000)[0]).containEql({
      kw: 0,
      boundBy: 'circuit grid importKw (config)',
    });
  });

  it('caps expire by time: the allocation follows the limit in force', () => {
    const s = site({
      circuits: [{ id: 'grid', importKw: 40 }],
      assets: [ev('a', 'grid', 'L1L2L3', { minA: 0 }), ev('b', 'grid', 'L1L2L3', { minA: 0 })],
    });
    s.sources.setCap(
      { id: 'dso-7', source: 'grid-operator', importKw: 10, expiresAt: T0 + 15 * MIN },
      T0,
    );
    const during = s.run({ a: 22, b: 22 }, T0 + MIN);
    should(s.kw(during)).eql({ a: 5, b: 5 });
    should(during[0]?.boundBy).equal('circuit grid importKw (grid-operator dso-7)');
    should(s.sources.nextChangeAt(T0 + MIN)).equal(T0 + 15 * MIN);
    should(s.kw(s.run({ a: 22, b: 22 }, T0 + 15 * MIN))).eql({ a: 20, b: 20 });
  });

  describe('batteries', () => {
    const config = (credit?: boolean): LimitsConfig => ({
      circuits: [
        { id: 'grid', importKw: 50, exportKw: 10 } as CircuitSpec,
        { id: 'f', parent: 'grid', importA: 100 },
      ],
      assets: [
        ev('car', 'f', 'L1L2L3', { minA: 0 }),
        {
          assetId: 'bat',
          kind: 'battery',
          circuit: 'f',
          phases: 'L1L2L3',
          ratingKw: 30,
          dischargeRatingKw: 20,
        },
      ],
      meters: [{ id: 'm', circuit: 'grid', worstCaseKw: 50 }],
      ...(credit === undefined ? {} : { creditDischarge: credit }),
    });

    it('discharge frees import for the others (credit, the default)', () => {
      const s = site(config());
      s.meters.record({ meter: 'm', kw: 45 }, T0);
      // Export limit 10 kW binds the discharge (the load is not credited against export).
      const out = s.run({ car: 22, bat: -15 });
      should(out[1]).eql({
        assetId: 'bat',
        askedKw: -15,
        kw: -10,
        boundBy: 'circuit grid exportKw (config)',
      });
      should(out[0]?.kw).be.approximately(15, 1e-9); // 50 - 45 + 10
      should(s.run({ bat: -25 })[0]).containEql({ kw: -10 });
    });

    it('without credit a discharge frees nothing', () => {
      const s = site(config(false));
      s.meters.record({ meter: 'm', kw: 45 }, T0);
      const out = s.run({ car: 22, bat: -15 });
      should(out[0]?.kw).be.approximately(5, 1e-9);
      should(out[1]?.kw).equal(-10);
    });

    it('charging is an import like any other; discharge rating and generation bound the discharge', () => {
      const s = site({
        ...config(),
        circuits: [
          { id: 'grid', importKw: 50, exportKw: 100 },
          { id: 'f', parent: 'grid' },
        ],
      });
      s.meters.record({ meter: 'm', kw: -70 }, T0); // PV: 70 kW fed back
      const out = s.run({ car: 22, bat: -25 });
      // Export: 100 - 70 of generation = 30; the discharge rating 20 binds first.
      should(out[1]).eql({ assetId: 'bat', askedKw: -25, kw: -20, boundBy: 'rating' });
      s.meters.record({ meter: 'm', kw: -90 }, T0);
      should(s.run({ bat: -25 })[0]).containEql({
        kw: -10,
        boundBy: 'circuit grid exportKw (config)',
      });
      should(s.run({ bat: 30, car: 22 }).map((a) => a.kw)).eql([30, 22]);
    });
  });

  it('refuses bad requests, naming them', () => {
    const s = site({ circuits: [{ id: 'grid', importKw: 10 }], assets: [ev('a', 'grid', 'L1')] });
    const eff = s.sources.effective(T0);
    const loads = s.meters.loads(T0);
    should(() => allocate(s.limits, [{ assetId: 'x', kw: 1 }], loads, eff)).throw(AllocationError, {
      field: 'requests[0].assetId',
    });
    should(() => allocate(s.limits, [{ assetId: 'a', kw: -1 }], loads, eff)).throw(
      /EV charger and cannot discharge/,
    );
    should(() => allocate(s.limits, [{ assetId: 'a', kw: Number.NaN }], loads, eff)).throw(
      /requests\[0\]\.kw must be a finite number/,
    );
    should(() =>
      allocate(
        s.limits,
        [
          { assetId: 'a', kw: 1 },
          { assetId: 'a', kw: 2 },
        ],
        loads,
        eff,
      ),
    ).throw(/asked twice/);
  });

  it('violations names the limit, the phase and by how much', () => {
    const s = site({
      circuits: [{ id: 'grid', importA: 32 }],
      assets: [ev('a', 'grid', 'L2', { minA: 0 }), ev('b', 'grid', 'L1L2L3', { minA: 0 })],
    });
    const v = violations(
      s.limits,
      [
        { assetId: 'a', kw: 7.36 },
        { assetId: 'b', kw: 6.9 },
      ],
      s.meters.loads(T0),
      s.sources.effective(T0),
    );
    should(v).eql(['circuit grid importA L2 (config): 42.000 A > 32 A, over by 10.000 A']);
    should(
      violations(
        s.limits,
        [{ assetId: 'a', kw: 8, askedKw: 5 }],
        s.meters.loads(T0),
        s.sources.effective(T0),
      ),
    ).containEql('asset a rating: 8 kW > 7.4 kW');
  });
});

describe('limits: planChanges (break before make)', () => {
  const s = site({
    circuits: [{ id: 'grid', importKw: 30 }],
    assets: [
      ev('a', 'grid', 'L1L2L3', { minA: 0 }),
      ev('b', 'grid', 'L1L2L3', { minA: 0 }),
      ev('c', 'grid', 'L1L2L3'),
    ],
  });
  const plan = (
    targets: Record<string, number>,
    committed: Record<string, number>,
    hysteresis = 0.1,
  ) =>
    Object.fromEntries(
      planChanges(
        s.limits,
        Object.entries(targets).map(([assetId, kw]) => ({
          assetId,
          askedKw: kw,
          kw,
          boundBy: null,
        })),
        new Map(Object.entries(committed)),
        s.meters.loads(T0),
        s.sources.effective(T0),
        hysteresis,
      ),
    );

  it('decreases at once; increases only into room that is free now', () => {
    // a 20 -> 5, b 10 -> 25: b may only take what is free while a is still at 20.
    should(plan({ a: 5, b: 25 }, { a: 20, b: 10 })).eql({ a: 5 });
    // Once a is confirmed at 5, b goes up.
    should(plan({ a: 5, b: 25 }, { a: 5, b: 10 })).eql({ b: 25 });
  });

  it('partial increases share the room; an increase from 0 waits for its minimum', () => {
    should(plan({ a: 10, b: 10 }, { a: 0, b: 0 })).eql({ a: 10, b: 10 });
    // 4 kW free: below c's minimum (4.14 kW), so c waits until a and b are down.
    should(plan({ a: 10, b: 10, c: 10 }, { a: 13, b: 13, c: 0 }, 0)).eql({ a: 10, b: 10 });
    // 8 kW free (b's decrease does not count yet): a takes its 3, c the other 5 of its 9.
    const p = plan({ a: 13, b: 10, c: 9 }, { a: 10, b: 12, c: 0 }, 0);
    should(Object.keys(p).sort()).eql(['a', 'b', 'c']);
    should(p.a).equal(13);
    should(p.b).equal(10);
    should(p.c).be.approximately(5, 1e-9);
  });

  it('hysteresis: small changes are not sent unless a decrease is needed to fit', () => {
    should(plan({ a: 10.05, b: 10 }, { a: 10, b: 10 })).eql({});
    should(plan({ a: 9.95 }, { a: 10 })).eql({});
    // Committed 30.05 kW on a 30 kW limit: the small decrease is needed.
    should(plan({ a: 9.95, b: 20.05 }, { a: 10, b: 20.05 })).eql({ a: 9.95 });
  });
});
