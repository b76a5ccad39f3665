import should from 'should';
import {
  ampsPerKw,
  LimitsConfigError,
  meterWorstCase,
  validateLimits,
} from '../../src/limits/circuits';
import { failsafeShares } from '../../src/limits/failsafe';
import type { LimitsConfig, ResolvedAsset } from '../../src/limits/types';

function base(): LimitsConfig {
  return {
    circuits: [
      { id: 'grid', importKw: 100, importA: 160 },
      { id: 'feeder-1', parent: 'grid', importA: 63 },
      { id: 'feeder-2', parent: 'grid', importA: 32, voltageV: 240 },
    ],
    assets: [
      { assetId: 'ev1', kind: 'ev', circuit: 'feeder-1', phases: 'L1L2L3', ratingKw: 22, minA: 6 },
      { assetId: 'ev2', kind: 'ev', circuit: 'feeder-1', phases: 'L2', ratingKw: 7.4, minA: 6 },
      {
        assetId: 'ev3',
        kind: 'ev',
        circuit: 'feeder-2',
        phases: 'L3L1L2',
        singlePhaseDraw: true,
        ratingKw: 11,
      },
      { assetId: 'bat', kind: 'battery', circuit: 'grid', phases: 'L2L3L1', ratingKw: 50 },
    ],
    meters: [{ id: 'house', circuit: 'feeder-1', worstCaseKw: 10 }],
  };
}

/** The error thrown by `validateLimits` on `mutate(base())`; checks the message and field. */
function bad(
  mutate: (c: LimitsConfig & Record<string, unknown>) => void,
  message: RegExp,
  field: string,
) {
  const c = base() as LimitsConfig & Record<string, unknown>;
  mutate(c);
  try {
    validateLimits(c);
  } catch (err) {
    should(err).be.instanceOf(LimitsConfigError);
    should((err as Error).message).match(message);
    should((err as LimitsConfigError).field).equal(field);
    return;
  }
  throw new Error(`no error for ${message}`);
}

// biome-ignore lint/suspicious/noExplicitAny: tests write wrong shapes on purpose
type Any = any;

describe('limits: validateLimits names the field of every error', () => {
  it('accepts the base configuration', () => {
    should(() => validateLimits(base())).not.throw();
  });

  const cases: [string, (c: Any) => void, RegExp, string][] = [
    [
      'not an object',
      (c) => Object.assign(c, { circuits: 'x' }),
      /^circuits must be a non-empty array/,
      'circuits',
    ],
    [
      'negative importA',
      (c) => {
        c.circuits[2].importA = -3;
      },
      /^circuits\[2\]\.importA must be a number > 0 \(A per phase\), got -3$/,
      'circuits[2].importA',
    ],
    [
      'zero importKw',
      (c) => {
        c.circuits[0].importKw = 0;
      },
      /circuits\[0\]\.importKw must be a number > 0 \(kW\), got 0/,
      'circuits[0].importKw',
    ],
    [
      'NaN voltage',
      (c) => {
        c.circuits[1].voltageV = Number.NaN;
      },
      /circuits\[1\]\.voltageV must be a number > 0 \(V\), got NaN/,
      'circuits[1].voltageV',
    ],
    [
      'Infinity limit',
      (c) => {
        c.circuits[1].exportKw = Number.POSITIVE_INFINITY;
      },
      /got Infinity/,
      'circuits[1].exportKw',
    ],
    [
      'string limit',
      (c) => {
        c.circuits[1].importA = '63';
      },
      /circuits\[1\]\.importA must be a number > 0 \(A per phase\), got "63"/,
      'circuits[1].importA',
    ],
    [
      'typo in a circuit key',
      (c) => {
        c.circuits[0].importkW = 5;
      },
      /circuits\[0\]\.importkW is not a known key \(did you mean importKw\?\)/,
      'circuits[0].importkW',
    ],
    [
      'unknown top key',
      (c) => {
        c.meter = [];
      },
      /limits\.meter is not a known key/,
      'limits.meter',
    ],
    [
      'duplicate circuit id',
      (c) => {
        c.circuits[2].id = 'feeder-1';
      },
      /circuits\[2\]\.id duplicates the id of circuits\[1\]/,
      'circuits[2].id',
    ],
    [
      'two roots',
      (c) => {
        c.circuits[2].parent = null;
      },
      /circuits\[2\]\.parent is missing, but grid is the root already \(exactly one root\)/,
      'circuits[2].parent',
    ],
    [
      'no root',
      (c) => {
        c.circuits[0].parent = 'feeder-2';
        c.circuits[1].parent = 'grid';
      },
      /exactly one root/,
      'circuits',
    ],
    [
      'unknown parent',
      (c) => {
        c.circuits[1].parent = 'gird';
      },
      /circuits\[1\]\.parent "gird" is not a circuit id \(known: grid, feeder-1, feeder-2\)/,
      'circuits[1].parent',
    ],
    [
      'cycle',
      (c) => {
        c.circuits.push({ id: 'a', parent: 'b' }, { id: 'b', parent: 'a' });
      },
      /circuits\[3\]\.parent makes a cycle: circuit a does not lead to the root grid/,
      'circuits[3].parent',
    ],
    [
      'self parent',
      (c) => {
        c.circuits[1].parent = 'feeder-1';
      },
      /circuits\[1\]\.parent is the circuit itself/,
      'circuits[1].parent',
    ],
    [
      'asset on unknown circuit',
      (c) => {
        c.assets[3].circuit = 'feeder-9';
      },
      /assets\[3\]\.circuit "feeder-9" is not a circuit id/,
      'assets[3].circuit',
    ],
    [
      'duplicate asset',
      (c) => {
        c.assets[1].assetId = 'ev1';
      },
      /assets\[1\]\.assetId duplicates the assetId of assets\[0\]/,
      'assets[1].assetId',
    ],
    [
      'bad phases',
      (c) => {
        c.assets[0].phases = 'L1L3L2';
      },
      /assets\[0\]\.phases must be one of L1, L2, L3, L1L2L3, L2L3L1, L3L1L2, got "L1L3L2"/,
      'assets[0].phases',
    ],
    [
      'bad kind',
      (c) => {
        c.assets[0].kind = 'heatpump';
      },
      /assets\[0\]\.kind must be ev or battery/,
      'assets[0].kind',
    ],
    [
      'minKw and minA',
      (c) => {
        c.assets[0].minKw = 4;
      },
      /assets\[0\]\.minA and minKw are both given/,
      'assets[0].minA',
    ],
    [
      'min above rating',
      (c) => {
        c.assets[1].minA = 40;
      },
      /assets\[1\]\.minA is above the rating \(9\.20 kW > 7\.4 kW\), got 40/,
      'assets[1].minA',
    ],
    [
      'minKw above rating',
      (c) => {
        c.assets[2].minKw = 12;
      },
      /assets\[2\]\.minKw is above the rating/,
      'assets[2].minKw',
    ],
    [
      'weight 0',
      (c) => {
        c.assets[0].weight = 0;
      },
      /assets\[0\]\.weight must be a number > 0, got 0/,
      'assets[0].weight',
    ],
    [
      'rating missing',
      (c) => {
        delete c.assets[0].ratingKw;
      },
      /assets\[0\]\.ratingKw must be a number > 0 \(kW\), got undefined/,
      'assets[0].ratingKw',
    ],
    [
      'typo in an asset key',
      (c) => {
        c.assets[0].ratingKW = 3;
      },
      /assets\[0\]\.ratingKW is not a known key \(did you mean ratingKw\?\)/,
      'assets[0].ratingKW',
    ],
    [
      'ev discharge rating',
      (c) => {
        c.assets[0].dischargeRatingKw = 3;
      },
      /assets\[0\]\.dischargeRatingKw is for a battery only/,
      'assets[0].dischargeRatingKw',
    ],
    [
      'failsafe above rating',
      (c) => {
        c.assets[1].failsafeKw = 8;
      },
      /assets\[1\]\.failsafeKw must not exceed ratingKw 7\.4, got 8/,
      'assets[1].failsafeKw',
    ],
    [
      'priority not finite',
      (c) => {
        c.assets[0].priority = Number.NaN;
      },
      /assets\[0\]\.priority must be a number, got NaN/,
      'assets[0].priority',
    ],
    [
      'singlePhaseDraw not boolean',
      (c) => {
        c.assets[2].singlePhaseDraw = 'yes';
      },
      /assets\[2\]\.singlePhaseDraw must be true or false/,
      'assets[2].singlePhaseDraw',
    ],
    [
      'meter on unknown circuit',
      (c) => {
        c.meters[0].circuit = 'x';
      },
      /meters\[0\]\.circuit "x" is not a circuit id/,
      'meters[0].circuit',
    ],
    [
      'duplicate meter',
      (c) => {
        c.meters.push({ id: 'house', circuit: 'grid' });
      },
      /meters\[1\]\.id duplicates the id of meters\[0\]/,
      'meters[1].id',
    ],
    [
      'meter both worst cases',
      (c) => {
        c.meters[0].worstCaseA = 3;
      },
      /meters\[0\]\.worstCaseA and worstCaseKw are both given/,
      'meters[0].worstCaseA',
    ],
    [
      'negative worst case',
      (c) => {
        c.meters[0].worstCaseKw = -1;
      },
      /meters\[0\]\.worstCaseKw must be a number >= 0 \(kW\), got -1/,
      'meters[0].worstCaseKw',
    ],
    [
      'meter without any import limit to default to',
      (c) => {
        c.circuits = [{ id: 'grid', exportKw: 5 }];
        c.assets = [];
        c.meters = [{ id: 'm', circuit: 'grid' }];
      },
      /meters\[0\] needs worstCaseKw or worstCaseA/,
      'meters[0]',
    ],
    [
      'stale 0',
      (c) => {
        c.meters[0].staleAfterS = 0;
      },
      /meters\[0\]\.staleAfterS must be a number > 0 \(s\), got 0/,
      'meters[0].staleAfterS',
    ],
    [
      'creditDischarge not boolean',
      (c) => {
        c.creditDischarge = 'yes';
      },
      /limits\.creditDischarge must be true or false/,
      'limits.creditDischarge',
    ],
    [
      'hysteresis negative',
      (c) => {
        c.hysteresisKw = -0.1;
      },
      /limits\.hysteresisKw must be a number >= 0 \(kW\), got -0\.1/,
      'limits.hysteresisKw',
    ],
    [
      'asset not an object',
      (c) => {
        c.assets[1] = 5;
      },
      /assets\[1\] must be an object, got 5/,
      'assets[1]',
    ],
    [
      'empty circuit id',
      (c) => {
        c.circuits[1].id = '';
      },
      /circuits\[1\]\.id must be a non-empty string/,
      'circuits[1].id',
    ],
  ];
  for (const [name, mutate, message, field] of cases) {
    it(name, () => bad(mutate, message, field));
  }

  it('refuses a non-object input', () => {
    should(() => validateLimits(null)).throw(LimitsConfigError, { field: 'limits' });
    should(() => validateLimits([])).throw(/limits must be an object/);
  });
});

describe('limits: validateLimits resolves the tree', () => {
  const limits = validateLimits(base());

  it('orders circuits root first, with paths and children', () => {
    should(limits.order).eql(['grid', 'feeder-1', 'feeder-2']);
    should(limits.circuits.get('feeder-2')?.path).eql(['feeder-2', 'grid']);
    should(limits.circuits.get('grid')?.children).eql(['feeder-1', 'feeder-2']);
    should(limits.circuits.get('grid')?.parent).equal(null);
  });

  it('inherits the voltage (230 V at the root by default)', () => {
    should(limits.circuits.get('grid')?.voltageV).equal(230);
    should(limits.circuits.get('feeder-1')?.voltageV).equal(230);
    should(limits.circuits.get('feeder-2')?.voltageV).equal(240);
    const deeper = validateLimits({
      circuits: [
        { id: 'r', voltageV: 220 },
        { id: 'a', parent: 'r' },
        { id: 'b', parent: 'a' },
      ],
      assets: [],
    });
    should(deeper.circuits.get('b')?.voltageV).equal(220);
  });

  it('resolves the phases each asset loads, rotation and single-phase draw', () => {
    should(limits.assets.get('ev1')?.loads).eql(['L1', 'L2', 'L3']);
    should(limits.assets.get('ev2')?.loads).eql(['L2']);
    should(limits.assets.get('bat')?.loads).eql(['L2', 'L3', 'L1']);
    should(limits.assets.get('ev3')?.loads).eql(['L3']);
  });

  it('converts minA into kW with the voltage and the phases drawn; defaults', () => {
    should(limits.assets.get('ev1')?.minKwResolved).be.approximately(4.14, 1e-9);
    should(limits.assets.get('ev2')?.minKwResolved).be.approximately(1.38, 1e-9);
    should(limits.assets.get('ev3')?.minKwResolved).equal(0);
    should(limits.assets.get('ev1')?.weight).equal(1);
    should(limits.assets.get('ev1')?.priority).equal(0);
    should(limits.meters.get('house')?.staleAfterS).equal(60);
  });

  it('ampsPerKw: A on each loaded phase per kW', () => {
    const a = (id: string) => limits.assets.get(id) as ResolvedAsset;
    should(ampsPerKw(a('ev1'), limits)).be.approximately(1000 / 690, 1e-12);
    should(ampsPerKw(a('ev2'), limits)).be.approximately(1000 / 230, 1e-12);
    should(ampsPerKw(a('ev3'), limits)).be.approximately(1000 / 240, 1e-12);
    should(ampsPerKw(a('ev3'), limits, 'grid')).be.approximately(1000 / 230, 1e-12);
  });

  it('meterWorstCase: given, or the import limit of its circuit', () => {
    should(meterWorstCase({ id: 'm', circuit: 'feeder-1', worstCaseKw: 9 }, limits)).eql({
      kw: 9,
      phaseKw: [3, 3, 3],
    });
    const a = meterWorstCase({ id: 'm', circuit: 'feeder-1' }, limits);
    should(a.phaseKw[0]).be.approximately((63 * 230) / 1000, 1e-9);
    const g = meterWorstCase({ id: 'm', circuit: 'grid' }, limits);
    should(g.kw).equal(100);
    should(g.phaseKw[0]).be.approximately((160 * 230) / 1000, 1e-9);
  });
});

describe('limits: failsafeShares', () => {
  it('shares what is left after the worst cases as the allocator would, the least over the path', () => {
    const c = base();
    c.meters = [{ id: 'house', circuit: 'feeder-1', worstCaseA: 13 }];
    const shares = failsafeShares(validateLimits(c));
    // feeder-1: 63 A - 13 A = 50 A on L2; ev2 (L2 only) gets its rating, 7.4 kW (32.2 A),
    // and ev1 (three-phase, 1.449 A per kW on each phase) the rest: (50 - 32.17) x 0.69 kW.
    should(shares.get('ev2')).be.approximately(7.4, 1e-9);
    should(shares.get('ev1')).be.approximately(((50 - 7400 / 230) * 690) / 1000, 1e-6);
    // feeder-2: 32 A on L3 for ev3 drawing one phase at 240 V: 7.68 kW.
    should(shares.get('ev3')).be.approximately(7.68, 1e-9);
    should(shares.get('bat')).be.greaterThan(0);
  });

  it('gives 0 below a meter that has no worst case, and honours failsafeKw', () => {
    const c = base();
    c.meters = [{ id: 'house', circuit: 'feeder-1' }];
    c.assets[2] = { ...c.assets[2], failsafeKw: 3 } as LimitsConfig['assets'][number];
    const shares = failsafeShares(validateLimits(c));
    should(shares.get('ev1')).equal(0);
    should(shares.get('ev2')).equal(0);
    should(shares.get('ev3')).equal(3);
  });

  it('ten chargers of 6 A minimum on 20 kW left: four at 5 kW and six at 0, not ten at 2 kW', () => {
    const shares = failsafeShares(
      validateLimits({
        circuits: [{ id: 'grid', importKw: 50 }],
        assets: Array.from({ length: 10 }, (_, i) => ({
          assetId: `ev${i}`,
          kind: 'ev' as const,
          circuit: 'grid',
          phases: 'L1L2L3' as const,
          ratingKw: 11,
          minA: 6,
        })),
        meters: [{ id: 'building', circuit: 'grid', worstCaseKw: 30 }],
      }),
    );
    const given = [...shares.values()];
    should(given.filter((v) => v > 0)).have.length(4);
    for (const v of given) should(v === 0 || Math.abs(v - 5) < 1e-9).be.true();
  });

  it('a share below the minimum is 0', () => {
    const c = base();
    c.meters = [{ id: 'house', circuit: 'feeder-1', worstCaseA: 60 }];
    const shares = failsafeShares(validateLimits(c));
    should(shares.get('ev1')).equal(0); // 3 A left: below 6 A
    should(shares.get('ev2')).equal(0);
  });
});
