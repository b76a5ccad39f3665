import should from 'should';
import { ManualClock } from '../../src/clock';
import { ComplianceMonitor, type Setpoint } from '../../src/compliance';
import { EventType } from '../../src/event-bus';
import { Site } from '../../src/site';

const ev = (kw: number, id = 'c1'): Setpoint => ({ id, kind: 'ev-limit', kw });
const bat = (kw: number, id = 'b1', extra: Partial<Setpoint> = {}): Setpoint => ({
  id,
  kind: 'battery',
  kw,
  ...extra,
});

describe('ComplianceMonitor', () => {
  let clock: ManualClock;
  let m: ComplianceMonitor;
  beforeEach(() => {
    clock = new ManualClock('2026-01-01T00:00:00Z');
    m = new ComplianceMonitor({ clock });
  });

  it('an EV above its limit deviates only after the 15 s grace, then complies again', () => {
    should(m.setSetpoint('ev1', ev(7.4))).be.null();
    should(m.measure('ev1', { kw: 11 })).be.null();
    should(m.stateOf('ev1')).equal('pending');
    clock.advance(10_000);
    should(m.measure('ev1', { kw: 11 })).be.null();
    clock.advance(5_000);
    const d = m.measure('ev1', { kw: 11 });
    should(d).containDeep({ type: 'deviation', assetId: 'ev1', setpointKw: 7.4, measuredKw: 11 });
    should(d?.reason).equal('11 kW > 7.4 kW limit');
    should(d?.since).equal(Date.parse('2026-01-01T00:00:00Z'));
    should(m.stateOf('ev1')).equal('deviating');
    // Still deviating: no second event.
    clock.advance(10_000);
    should(m.measure('ev1', { kw: 11 })).be.null();
    clock.advance(10_000);
    const c = m.measure('ev1', { kw: 7.3 });
    should(c).containDeep({ type: 'compliant', assetId: 'ev1', setpointKw: 7.4, measuredKw: 7.3 });
    should(c?.deviatedForMs).equal(35_000);
    should(m.stateOf('ev1')).equal('compliant');
  });

  it('an EV drawing less than its limit (the car decides) or within the tolerance complies', () => {
    m.setSetpoint('ev1', ev(7.4));
    for (let i = 0; i < 5; i++) {
      should(m.measure('ev1', { kw: i % 2 ? 0 : 7.8 })).be.null(); // 7.8 <= 7.4 + 0.5
      clock.advance(10_000);
    }
    should(m.stateOf('ev1')).equal('compliant');
    // 5 % of a 22 kW limit is 1.1 kW: 23 kW is within it.
    m.setSetpoint('ev2', ev(22, 'c2'));
    m.measure('ev2', { kw: 23 });
    clock.advance(20_000);
    should(m.measure('ev2', { kw: 23 })).be.null();
    should(m.stateOf('ev2')).equal('compliant');
  });

  it('a battery running the wrong way deviates after its 5 s grace', () => {
    m.setSetpoint('b', bat(-5));
    should(m.measure('b', { kw: 5, intervalMs: 1000 })).be.null();
    clock.advance(4_999);
    should(m.measure('b', { kw: 5, intervalMs: 1000 })).be.null();
    clock.advance(1);
    const d = m.measure('b', { kw: 5, intervalMs: 1000 });
    should(d?.type).equal('deviation');
    should(d?.reason).match(/wrong way/);
    clock.advance(1000);
    should(m.measure('b', { kw: -4.9, intervalMs: 1000 })?.type).equal('compliant');
  });

  it('a battery far from its setpoint (same direction) deviates; close to it does not', () => {
    m.setSetpoint('b', bat(10));
    m.measure('b', { kw: 2 });
    clock.advance(6_000);
    should(m.measure('b', { kw: 2 })?.reason).match(/far from setpoint 10 kW/);
    m.setSetpoint('c', bat(10, 'b2'));
    m.measure('c', { kw: 9.6 });
    clock.advance(6_000);
    should(m.measure('c', { kw: 9.6 })).be.null();
  });

  it('a battery held at 0 kW by its SoC limit does not deviate', () => {
    m.setSetpoint('b', bat(5, 'b1', { atSocMax: true }));
    m.measure('b', { kw: 0 });
    clock.advance(10_000);
    should(m.measure('b', { kw: 0 })).be.null();
    should(m.stateOf('b')).equal('compliant');
    m.setSetpoint('d', bat(-5, 'b2', { atSocMin: true }));
    m.measure('d', { kw: 0 });
    clock.advance(10_000);
    should(m.measure('d', { kw: 0 })).be.null();
    // Without the limit, 0 kW against -5 kW deviates.
    m.setSetpoint('e', bat(-5, 'b3'));
    m.measure('e', { kw: 0 });
    clock.advance(10_000);
    should(m.measure('e', { kw: 0 })?.type).equal('deviation');
  });

  it('a new setpoint restarts the grace period', () => {
    m.setSetpoint('ev1', ev(7.4, 'c1'));
    m.measure('ev1', { kw: 11 });
    clock.advance(14_000);
    should(m.measure('ev1', { kw: 11 })).be.null();
    m.setSetpoint('ev1', ev(7, 'c2'));
    clock.advance(10_000);
    should(m.measure('ev1', { kw: 11 })).be.null(); // 10 s into the new setpoint's grace
    clock.advance(5_000);
    should(m.measure('ev1', { kw: 11 })?.type).equal('deviation');
    // The same setpoint again (same id) does not restart anything.
    should(m.setSetpoint('ev1', ev(7, 'c2'))).be.null();
    should(m.stateOf('ev1')).equal('deviating');
  });

  it('data older than its interval (twice, one missed reading) is stale: not compliant', () => {
    m.setSetpoint('ev1', ev(7.4));
    m.measure('ev1', { kw: 3, intervalMs: 10_000 });
    should(m.stateOf('ev1')).equal('compliant');
    clock.advance(20_001);
    should(m.stateOf('ev1')).equal('stale');
    should(m.evaluate('ev1')).be.null();
    // A measurement taken long ago is stale on arrival.
    should(m.measure('ev1', { kw: 20, at: clock.now() - 60_000, intervalMs: 10_000 })).be.null();
    should(m.stateOf('ev1')).equal('stale');
    // Time passing does not declare a deviation out of stale data.
    clock.advance(60_000);
    should(m.evaluate('ev1')).be.null();
    should(m.deviationOf('ev1')).be.null();
  });

  it('evaluate declares a deviation once the grace ran out without a new reading', () => {
    m.setSetpoint('ev1', ev(7.4));
    m.measure('ev1', { kw: 11, intervalMs: 10_000 });
    clock.advance(15_000);
    should(m.evaluate('ev1')?.type).equal('deviation');
    should(m.deviationOf('ev1')?.reason).equal('11 kW > 7.4 kW limit');
  });

  it('no setpoint in force: nothing to comply with; the episode ends silently', () => {
    should(m.measure('ev1', { kw: 11 })).be.null();
    should(m.stateOf('ev1')).equal('unknown');
    m.setSetpoint('ev1', ev(7.4));
    clock.advance(15_000);
    should(m.measure('ev1', { kw: 11 })?.type).equal('deviation');
    should(m.setSetpoint('ev1', null)).be.null();
    should(m.stateOf('ev1')).equal('unknown');
    should(m.deviationOf('ev1')).be.null();
  });

  it('rejects bad options and measurements with a clear error', () => {
    should.throws(() => new ComplianceMonitor({ toleranceKw: -1 }), /toleranceKw must be/);
    should.throws(() => m.measure('x', { kw: Number.NaN }), /measurement of x must be a finite/);
  });
});

describe('Site.measured (the setpoint in force from the engine)', () => {
  it('follows the COMPLETED setpoint as slots begin and end; none in force: nothing to check', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00Z');
    const t0 = clock.now();
    const site = new Site({ siteId: 's', clock, onError: () => {} });
    site.adapterRegistry.register('ev1', { protocol: 't', dispatch: () => ({ success: true }) });
    const events: string[] = [];
    site.eventBus.subscribe('*', (e) => {
      if (e.type === EventType.ASSET_DEVIATION || e.type === EventType.ASSET_COMPLIANT)
        events.push(`${e.type} ${e.payload.setpointKw}`);
    });
    site.submit([
      {
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE',
        valueKw: 7.4,
        scheduledAt: t0,
        validUntil: t0 + 60_000,
      },
      {
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE',
        valueKw: 11,
        scheduledAt: t0 + 60_000,
        validUntil: t0 + 120_000,
      },
    ]);
    const run = async () => {
      for (const c of site.engine.getPendingCommands()) await site.engine.dispatchCommand(c);
    };
    await run();
    const m = { kind: 'ev-limit' as const, kw: 11, intervalMs: 10_000 };
    should(site.measured('ev1', m)).equal('pending');
    clock.advance(15_000);
    should(site.measured('ev1', m)).equal('deviating');
    clock.advance(45_000); // the second slot begins: 11 kW is its limit
    await run();
    should(site.measured('ev1', m)).equal('compliant');
    clock.advance(60_000); // both slots ended: no setpoint in force
    should(site.measured('ev1', m)).equal('unknown');
    should(events).eql(['ASSET_DEVIATION 7.4', 'ASSET_COMPLIANT 11']);
    await site.stop();
  });
});
