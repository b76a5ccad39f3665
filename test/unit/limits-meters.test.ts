import should from 'should';
import { validateLimits } from '../../src/limits/circuits';
import { MeterReadingError, MeterReadings } from '../../src/limits/meters';

const T0 = Date.UTC(2025, 5, 2, 8);

function near(actual: number[] | undefined, expected: number[]) {
  should(actual).have.length(expected.length);
  expected.forEach((v, i) => {
    should(actual?.[i]).be.approximately(v, 1e-9);
  });
}

function site() {
  return validateLimits({
    circuits: [
      { id: 'grid', importKw: 100, importA: 160 },
      { id: 'feeder-1', parent: 'grid', importA: 63 },
      { id: 'feeder-2', parent: 'grid', importKw: 30, voltageV: 240 },
    ],
    assets: [],
    meters: [
      { id: 'building', circuit: 'grid', worstCaseKw: 60, staleAfterS: 30 },
      { id: 'heatpump', circuit: 'feeder-1', worstCaseA: 20 },
      { id: 'pv', circuit: 'feeder-2' },
    ],
  });
}

function refused(m: MeterReadings, reading: unknown, message: RegExp, field: string, now = T0) {
  try {
    m.record(reading, now);
  } catch (err) {
    should(err).be.instanceOf(MeterReadingError);
    should((err as Error).message).match(message);
    should((err as MeterReadingError).field).equal(field);
    return;
  }
  throw new Error(`accepted ${JSON.stringify(reading)}`);
}

describe('limits: MeterReadings', () => {
  it('refuses bad readings, naming the field', () => {
    const m = new MeterReadings(site());
    refused(m, 'x', /^reading must be an object/, 'reading');
    refused(
      m,
      { meter: 'bulding', kw: 1 },
      /reading\.meter "bulding" is not a meter id \(known: building, heatpump, pv\)/,
      'reading.meter',
    );
    refused(m, { meter: 'building' }, /exactly one of kw/, 'reading');
    refused(m, { meter: 'building', kw: 1, a: [1, 1, 1] }, /exactly one of kw/, 'reading');
    refused(
      m,
      { meter: 'building', a: [1, 'x', 1] },
      /^reading\.a\[1\] must be a finite number \(A\), got "x"$/,
      'reading.a[1]',
    );
    refused(m, { meter: 'building', a: [1, 2] }, /reading\.a must be three numbers/, 'reading.a');
    refused(
      m,
      { meter: 'building', kw: Number.NaN },
      /reading\.kw must be a finite number \(kW\), got NaN/,
      'reading.kw',
    );
    refused(
      m,
      { meter: 'building', kw: [1, 2, null] },
      /reading\.kw\[2\] must be a finite number \(kW\), got null/,
      'reading.kw[2]',
    );
    refused(
      m,
      { meter: 'building', kw: 1, when: 3 },
      /reading\.when is not a known key/,
      'reading.when',
    );
    refused(
      m,
      { meter: 'building', kw: 1, at: 'now' },
      /reading\.at must be epoch ms/,
      'reading.at',
    );
    refused(
      m,
      { meter: 'building', kw: 1, at: T0 + 6000 },
      /reading\.at is 6\.0 s in the future/,
      'reading.at',
    );
    should(() => m.record({ meter: 'building', kw: 1, at: T0 + 4000 }, T0)).not.throw();
    refused(
      m,
      { meter: 'building', kw: 1, at: T0 },
      /older than the latest reading of building/,
      'reading.at',
      T0 + 5000,
    );
    should(m.lastAt('building')).equal(T0 + 4000);
  });

  it('counts a feeder load on its parent; A and kW converted with each circuit voltage', () => {
    const m = new MeterReadings(site());
    m.record({ meter: 'building', kw: 30 }, T0);
    m.record({ meter: 'heatpump', a: [10, 0, 5] }, T0);
    m.record({ meter: 'pv', kw: [-2.4, -2.4, -2.4] }, T0);
    const loads = m.loads(T0 + 1000);
    const f1 = loads.get('feeder-1');
    near(f1?.a, [10, 0, 5]);
    should(f1?.kw).be.approximately(3.45, 1e-9);
    const f2 = loads.get('feeder-2');
    should(f2?.kw).be.approximately(-7.2, 1e-9);
    should(f2?.a[0]).be.approximately(-10, 1e-9); // 2.4 kW at 240 V
    should(f2?.generationA?.[0]).be.approximately(10, 1e-9);
    should(f2?.generationKw).be.approximately(7.2, 1e-9);
    const grid = loads.get('grid');
    // 30 kW evenly (43.48 A per phase at 230 V) + heat pump + PV (2.4 kW per phase = 10.43 A at 230 V).
    const even = 10_000 / 230;
    should(grid?.a[0]).be.approximately(even + 10 - 2400 / 230, 1e-9);
    should(grid?.a[1]).be.approximately(even - 2400 / 230, 1e-9);
    should(grid?.kw).be.approximately(30 + 3.45 - 7.2, 1e-9);
    should(grid?.generationKw).be.approximately(7.2, 1e-9);
    should(grid?.stale).eql([]);
  });

  it('a meter never read or stale counts as its worst case; nextStaleAt says when', () => {
    const m = new MeterReadings(site());
    let loads = m.loads(T0);
    should(m.stale(T0)).eql(['building', 'heatpump', 'pv']);
    // pv has no worst case: its circuit's importKw (30 kW), so nothing is left below feeder-2.
    should(loads.get('feeder-2')?.kw).equal(30);
    near(loads.get('feeder-1')?.a, [20, 20, 20]);
    should(loads.get('grid')?.kw).be.approximately(60 + 13.8 + 30, 1e-9);
    should(loads.get('grid')?.stale).eql(['building', 'heatpump', 'pv']);
    should(m.nextStaleAt(T0)).equal(null);

    m.record({ meter: 'building', kw: 5 }, T0);
    m.record({ meter: 'heatpump', kw: 1 }, T0 + 10_000);
    m.record({ meter: 'pv', kw: -3 }, T0);
    should(m.nextStaleAt(T0 + 1)).equal(T0 + 30_000);
    loads = m.loads(T0 + 29_999);
    should(loads.get('grid')?.kw).be.approximately(5 + 1 - 3, 1e-9);
    loads = m.loads(T0 + 30_000);
    should(m.stale(T0 + 30_000)).eql(['building']);
    should(loads.get('grid')?.kw).be.approximately(60 + 1 - 3, 1e-9);
    should(loads.get('grid')?.stale).eql(['building']);
    should(loads.get('feeder-1')?.stale).eql([]);
    should(m.nextStaleAt(T0 + 30_000)).equal(T0 + 60_000);
    should(m.nextStaleAt(T0 + 60_000)).equal(T0 + 70_000);
    // A stale PV meter counts its worst case for import and keeps its generation for export.
    loads = m.loads(T0 + 61_000);
    should(loads.get('feeder-2')?.kw).equal(30);
    should(loads.get('feeder-2')?.generationKw).be.approximately(3, 1e-9);
    // A new reading brings it back.
    m.record({ meter: 'building', kw: 7 }, T0 + 61_000);
    should(m.stale(T0 + 61_000)).eql(['pv']);
  });
});
