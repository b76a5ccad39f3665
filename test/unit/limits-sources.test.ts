import should from 'should';
import { validateLimits } from '../../src/limits/circuits';
import { CapError, describeLimit, LimitSources } from '../../src/limits/sources';

const T0 = Date.UTC(2025, 5, 2, 8);
const MIN = 60_000;

function sources() {
  const limits = validateLimits({
    circuits: [
      { id: 'grid', importKw: 100, exportKw: 50 },
      { id: 'feeder-1', parent: 'grid', importA: 63 },
    ],
    assets: [
      { assetId: 'ev1', kind: 'ev', circuit: 'feeder-1', phases: 'L1L2L3', ratingKw: 22 },
      { assetId: 'ev2', kind: 'ev', circuit: 'feeder-1', phases: 'L1', ratingKw: 7.4 },
    ],
  });
  return new LimitSources(limits);
}

function refused(s: LimitSources, cap: unknown, message: RegExp, field: string) {
  try {
    s.setCap(cap, T0);
  } catch (err) {
    should(err).be.instanceOf(CapError);
    should((err as Error).message).match(message);
    should((err as CapError).field).equal(field);
    return;
  }
  throw new Error(`accepted ${JSON.stringify(cap)}`);
}

describe('limits: LimitSources', () => {
  it('refuses bad caps, naming the field', () => {
    const s = sources();
    refused(s, null, /^cap must be an object/, 'cap');
    refused(s, { source: 'dso', importKw: 5 }, /cap\.id must be a non-empty string/, 'cap.id');
    refused(
      s,
      { id: 'a', importKw: 5 },
      /cap\.source must name where the cap comes from/,
      'cap.source',
    );
    refused(
      s,
      { id: 'a', source: 'dso', importKw: -1 },
      /cap\.importKw must be a number >= 0 \(kW\), got -1/,
      'cap.importKw',
    );
    refused(
      s,
      { id: 'a', source: 'dso', importA: 'x' },
      /cap\.importA must be a number >= 0 \(A per phase\), got "x"/,
      'cap.importA',
    );
    refused(
      s,
      { id: 'a', source: 'dso', importKW: 5 },
      /cap\.importKW is not a known key/,
      'cap.importKW',
    );
    refused(s, { id: 'a', source: 'dso' }, /cap limits nothing/, 'cap');
    refused(
      s,
      { id: 'a', source: 'dso', circuit: 'feeder-9', importKw: 5 },
      /cap\.circuit "feeder-9" is not a circuit id \(known: grid, feeder-1\)/,
      'cap.circuit',
    );
    refused(
      s,
      { id: 'a', source: 'dso', assets: ['ev1', 'ev9'], assetMaxKw: 4.2 },
      /cap\.assets\[1\] "ev9" is not an asset id/,
      'cap.assets[1]',
    );
    refused(
      s,
      { id: 'a', source: 'dso', assets: '*' },
      /cap\.assetMaxKw must be a number >= 0/,
      'cap.assetMaxKw',
    );
    refused(
      s,
      { id: 'a', source: 'dso', assets: '*', assetMaxKw: 4, importKw: 3 },
      /not both/,
      'cap',
    );
    refused(
      s,
      { id: 'a', source: 'dso', importKw: 5, expiresAt: T0 },
      /cap\.expiresAt is in the past/,
      'cap.expiresAt',
    );
    refused(s, { id: 'a', clear: 'yes' }, /cap\.clear must be true/, 'cap.clear');
    refused(
      s,
      { id: 'a', source: 'dso', importKw: 5, expiresAt: 'soon' },
      /ISO 8601/,
      'cap.expiresAt',
    );
    refused(s, { id: 'a', source: 'dso', importKw: 5, durationS: 0 }, /> 0/, 'cap.durationS');
    refused(
      s,
      { id: 'a', source: 'dso', importKw: 5, durationS: 60, expiresAt: T0 + 1 },
      /not both/,
      'cap',
    );
    should(s.capList()).eql([]);
  });

  it('a cap may say when it ends as an ISO time (as a grid operator sends it) or as a duration; kept as epoch ms', () => {
    const s = sources();
    const iso = new Date(T0 + 15 * MIN).toISOString();
    should(s.setCap({ id: 'a', source: 'dso', importKw: 5, expiresAt: iso }, T0)?.expiresAt).equal(
      T0 + 15 * MIN,
    );
    const b = s.setCap({ id: 'b', source: 'dso', importKw: 6, durationS: 120 }, T0);
    should(b?.expiresAt).equal(T0 + 120_000);
    should(b).not.have.property('durationS');
    should(s.inForce(T0 + 119_999).some((l) => l.sourceId === 'b')).be.true();
    should(s.inForce(T0 + 120_000).some((l) => l.sourceId === 'b')).be.false();
  });

  it('the most restrictive limit wins, with its source; caps replace, clear and expire', () => {
    const s = sources();
    let eff = s.effective(T0);
    should(eff.circuits.get('grid')?.importKw).eql({
      scope: 'circuit',
      target: 'grid',
      limit: 'importKw',
      value: 100,
      source: 'config',
    });
    s.setCap({ id: 'dso-1', source: 'grid-operator', importKw: 60, expiresAt: T0 + 10 * MIN }, T0);
    s.setCap({ id: 'flow', source: 'flow', circuit: 'feeder-1', importA: 70 }, T0);
    s.setCap({ id: '§14a', source: 'grid-operator', assets: '*', assetMaxKw: 4.2 }, T0);
    eff = s.effective(T0 + MIN);
    should(eff.circuits.get('grid')?.importKw?.value).equal(60);
    should(describeLimit(eff.circuits.get('grid')?.importKw as never)).equal(
      'circuit grid importKw (grid-operator dso-1)',
    );
    should(eff.circuits.get('grid')?.exportKw?.source).equal('config');
    // 70 A from the flow is above the config's 63 A: the config wins.
    should(eff.circuits.get('feeder-1')?.importA?.source).equal('config');
    should(describeLimit(eff.assets.get('ev2') as never)).equal(
      'asset ev2 maxKw (grid-operator §14a)',
    );
    should(s.inForce(T0 + MIN)).have.length(3 + 1 + 1 + 2);
    should(s.nextChangeAt(T0)).equal(T0 + 10 * MIN);

    // The same id replaces; expiry drops it by time alone.
    s.setCap({ id: 'dso-1', source: 'grid-operator', importKw: 40, expiresAt: T0 + 5 * MIN }, T0);
    should(s.effective(T0 + 5 * MIN - 1).circuits.get('grid')?.importKw?.value).equal(40);
    should(s.effective(T0 + 5 * MIN).circuits.get('grid')?.importKw?.value).equal(100);
    should(s.nextChangeAt(T0 + 5 * MIN)).equal(null);

    // Clear by message or by call.
    should(s.setCap({ id: '§14a', clear: true }, T0)).equal(null);
    should(s.effective(T0).assets.size).equal(0);
    should(s.clearCap('flow')).be.true();
    should(s.clearCap('flow')).be.false();
    should(s.inForce(T0 + 6 * MIN)).have.length(3);
  });

  it('forgets expired caps when a new one arrives (caps with ever new ids do not pile up)', () => {
    const s = sources();
    for (let i = 0; i < 100; i++)
      s.setCap(
        { id: `c${i}`, source: 'flow', importKw: 50, expiresAt: T0 + (i + 1) * MIN },
        T0 + i * MIN,
      );
    should(s.capList().map((c) => c.id)).eql(['c99']);
    should(s.effective(T0 + 99 * MIN).circuits.get('grid')?.importKw?.sourceId).equal('c99');
  });

  it("the schedule's own limits on the root: in force slot by slot, replaced by the next schedule", () => {
    const s = sources();
    s.setScheduleLimits('sched-1', [
      { from: T0, until: T0 + 15 * MIN, importKw: 80 },
      { from: T0 + 15 * MIN, until: T0 + 30 * MIN, importKw: 120 },
      { from: T0 + 30 * MIN, until: null, importKw: 20 },
    ]);
    should(s.effective(T0 - 1).circuits.get('grid')?.importKw?.source).equal('config');
    const first = s.effective(T0).circuits.get('grid')?.importKw;
    should(first).containEql({
      value: 80,
      source: 'schedule',
      sourceId: 'sched-1',
      until: T0 + 15 * MIN,
    });
    should(s.effective(T0 + 20 * MIN).circuits.get('grid')?.importKw?.value).equal(100);
    should(s.effective(T0 + 99 * MIN).circuits.get('grid')?.importKw?.value).equal(20);
    should(s.nextChangeAt(T0 - 1)).equal(T0);
    should(s.nextChangeAt(T0)).equal(T0 + 15 * MIN);
    should(s.nextChangeAt(T0 + 30 * MIN)).equal(null);
    s.setScheduleLimits('sched-2', [{ from: T0, until: T0 + MIN, importKw: 50 }]);
    should(s.effective(T0 + 99 * MIN).circuits.get('grid')?.importKw?.value).equal(100);
    should(s.effective(T0).circuits.get('grid')?.importKw?.sourceId).equal('sched-2');
    should(() => s.setScheduleLimits('s', [{ from: T0, until: T0, importKw: 5 }])).throw(
      /slots\[0\]\.until must be epoch ms after from/,
    );
    should(() => s.setScheduleLimits('s', [{ from: T0, until: null, importKw: Number.NaN }])).throw(
      /slots\[0\]\.importKw must be a number >= 0/,
    );
    s.clearScheduleLimits();
    should(s.effective(T0).circuits.get('grid')?.importKw?.source).equal('config');
  });
});
