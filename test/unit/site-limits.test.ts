// Site limits in a Site, with a manual clock: setpoints are limited as they leave and
// re-allocated on readings, caps and staleness; decreases go first, increases wait for them
// and for the pacing interval. After every step the test checks the worst case of what the
// devices may be doing (per asset the higher of its last completed setpoint and any on its
// way) plus the building's load against the connection's limit.
import should from 'should';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, CommandType } from '../../src/commands';
import { type BusEvent, EventType } from '../../src/event-bus';
import type { LimitsConfig } from '../../src/limits/types';
import { type DueCommandSink, Site } from '../../src/site';
import { MemoryStore } from '../../src/store';
import { FakeTimers, flush } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const EVS = Array.from({ length: 10 }, (_, i) => `ev${i + 1}`);

/** A 50 kW connection, ten 11 kW three-phase chargers (6 A minimum), a building meter. */
function depot(extra: Partial<LimitsConfig> = {}): LimitsConfig {
  return {
    circuits: [{ id: 'grid', importKw: 50 }],
    assets: EVS.map((assetId) => ({
      assetId,
      kind: 'ev' as const,
      circuit: 'grid',
      phases: 'L1L2L3' as const,
      ratingKw: 11,
      minA: 6,
    })),
    meters: [{ id: 'building', circuit: 'grid', staleAfterS: 60, worstCaseKw: 30 }],
    minIntervalS: 10,
    hysteresisKw: 0.1,
    ...extra,
  };
}

class Sink implements DueCommandSink {
  readonly delivered: Command[] = [];
  deliver(cmd: Command) {
    this.delivered.push(cmd);
  }
  undeliverable() {}
}

function make(limits: LimitsConfig = depot(), store: MemoryStore | null = null) {
  const clock = new ManualClock(T0);
  const timers = new FakeTimers(clock);
  const errors: Error[] = [];
  const site = new Site({
    siteId: 'depot',
    clock,
    timers,
    store,
    limits,
    onError: (e) => errors.push(e),
  });
  for (const id of EVS) site.adapterRegistry.register(id, { protocol: 'test', dispatch: () => {} });
  const sink = new Sink();
  site.attachDispatcher('d', sink);
  const limited: BusEvent<EventType.SETPOINT_LIMITED>['payload'][] = [];
  site.eventBus.subscribe(EventType.SETPOINT_LIMITED, (e) => limited.push(e.payload));
  site.start();
  return { clock, timers, site, sink, limited, errors };
}

/** What each device may be doing: the higher of its last COMPLETED setpoint and any in flight. */
function worstCase(site: Site): Map<string, number> {
  const out = new Map<string, number>();
  const now = site.clock.now();
  for (const id of EVS) {
    const s = site.engine.rateSetpoints(id, now);
    let kw = s.last?.status === CommandStatus.COMPLETED ? s.last.valueKw : 0;
    for (const c of s.inFlight) kw = Math.max(kw, c.valueKw);
    out.set(id, kw);
  }
  return out;
}

function sum(m: Map<string, number>): number {
  let t = 0;
  for (const v of m.values()) t += v;
  return t;
}

/** Answers every command in flight with success, in delivery order. */
function completeAll(site: Site, sink: Sink): number {
  let n = 0;
  for (const c of sink.delivered) {
    if (c.status === CommandStatus.DISPATCHED) {
      site.engine.handleResponse(c, true);
      n++;
    }
  }
  return n;
}

function scheduleAll(site: Site, kw: number, at = T0) {
  site.submit(
    EVS.map((assetId) => ({
      assetId,
      type: CommandType.SET_CHARGE_RATE,
      valueKw: kw,
      scheduledAt: at,
      scheduleId: 'plan',
    })),
    'd',
  );
}

describe('Site limits (SiteLimiter in a Site)', () => {
  it('ten 11 kW chargers on 50 kW: each setpoint leaves limited to an equal share, with what was asked and the limit that bound it', async () => {
    const { site, sink, timers, limited } = make();
    site.measure({ meter: 'building', kw: 0 });
    scheduleAll(site, 11);
    await timers.advanceTo(T0);
    should(sink.delivered).have.length(10);
    for (const c of sink.delivered) {
      should(c.valueKw).be.approximately(5, 1e-9);
      should(c.askedKw).equal(11);
      should(c.limitedBy).match(/grid/);
    }
    should(limited).have.length(10);
    should(limited[0]).containEql({ askedKw: 11, reason: 'dispatch' });
    should(limited[0]?.kw).be.approximately(5, 1e-9);
    completeAll(site, sink);
    should(sum(worstCase(site))).be.belowOrEqual(50 + 1e-9);
    await site.stop();
  });

  it('a building load rising 0 -> 30 kW: decreases go out at once, the sum stays within 50 kW at every step, and chargers below 6 A get 0', async () => {
    const { site, sink, timers } = make();
    site.measure({ meter: 'building', kw: 0 });
    scheduleAll(site, 11);
    await timers.advanceTo(T0);
    completeAll(site, sink);
    for (const load of [10, 20, 30]) {
      const before = sink.delivered.length;
      site.measure({ meter: 'building', kw: load });
      // Before anything is confirmed, the devices may still be on their old values: the
      // limit holds only once the decreases are done, so they must all be on their way now.
      await flush();
      const fresh = sink.delivered.slice(before);
      should(fresh.length).be.above(0);
      for (const c of fresh) should(c.reapplyOf).be.a.String();
      completeAll(site, sink);
      await flush();
      const worst = worstCase(site);
      should(sum(worst) + load).be.belowOrEqual(50 + 1e-9);
      for (const kw of worst.values()) {
        // 6 A on three phases at 230 V is 4.14 kW: 0, or at least that.
        should(kw === 0 || kw >= 4.14 - 1e-9).be.true(`${kw} kW is below the minimum`);
      }
    }
    // 20 kW left: four chargers at 5 kW, the others off, not ten at 2 kW. The rises to 5 kW
    // wait for the pacing interval (10 s after the last increase, the first dispatch).
    should(sum(worstCase(site))).be.below(20 - 1);
    await timers.advanceTo(T0 + 10 * S);
    completeAll(site, sink);
    await flush();
    const worst = [...worstCase(site).values()].filter((v) => v > 0);
    should(worst.length).be.aboveOrEqual(3);
    should(sum(worstCase(site))).be.approximately(20, 1e-6);
    await site.stop();
  });

  it('break before make: increases wait until the decreases that make room are confirmed, and for the pacing interval', async () => {
    const { site, sink, timers, clock } = make();
    site.measure({ meter: 'building', kw: 30 });
    scheduleAll(site, 11);
    await timers.advanceTo(T0);
    completeAll(site, sink);
    await flush();
    const low = sum(worstCase(site));
    should(low).be.belowOrEqual(20 + 1e-9);
    // The load drops: room for more, but increases are paced (10 s).
    await timers.advanceTo(T0 + 2 * S);
    const before = sink.delivered.length;
    site.measure({ meter: 'building', kw: 0 });
    await flush();
    should(sink.delivered.length).equal(before);
    await timers.advanceTo(T0 + 10 * S);
    const ups = sink.delivered.slice(before);
    should(ups.length).be.above(0);
    // Every intermediate state fits: check with the increases in flight and nothing confirmed.
    should(sum(worstCase(site))).be.belowOrEqual(50 + 1e-9);
    completeAll(site, sink);
    await timers.advanceTo(clock.now() + 30 * S);
    completeAll(site, sink);
    await timers.advanceTo(clock.now() + 30 * S);
    should(sum(worstCase(site))).be.approximately(50, 1e-6);
    await site.stop();
  });

  it('a meter silent for longer than staleAfterS counts as its worst case (30 kW), not as zero', async () => {
    const { site, sink, timers } = make();
    site.measure({ meter: 'building', kw: 0 });
    scheduleAll(site, 11);
    await timers.advanceTo(T0);
    completeAll(site, sink);
    should(sum(worstCase(site))).be.approximately(50, 1e-6);
    const changes: string[][] = [];
    site.eventBus.subscribe(EventType.LIMITS_CHANGED, (e) => changes.push(e.payload.staleMeters));
    await timers.advanceTo(T0 + 61 * S);
    completeAll(site, sink);
    await flush();
    should(sum(worstCase(site))).be.belowOrEqual(20 + 1e-9);
    should(changes.at(-1)).eql(['building']);
    await site.stop();
  });

  it('a grid operator cap with an expiry binds, shows as a limit in force with its source, and lifts when it expires', async () => {
    const { site, sink, timers } = make();
    site.measure({ meter: 'building', kw: 0 });
    scheduleAll(site, 11);
    await timers.advanceTo(T0);
    completeAll(site, sink);
    site.setCap({
      id: 'dso-1',
      source: 'grid-operator',
      circuit: 'grid',
      importKw: 25,
      expiresAt: T0 + 120 * S,
    });
    await flush();
    completeAll(site, sink);
    await flush();
    should(sum(worstCase(site))).be.belowOrEqual(25 + 1e-9);
    const inForce = site.limiter?.inForce() ?? [];
    should(inForce.some((l) => l.source === 'grid-operator' && l.value === 25)).be.true();
    site.measure({ meter: 'building', kw: 0 }); // keep the meter fresh
    await timers.advanceTo(T0 + 59 * S);
    site.measure({ meter: 'building', kw: 0 });
    await timers.advanceTo(T0 + 121 * S);
    completeAll(site, sink);
    site.measure({ meter: 'building', kw: 0 });
    await timers.advanceTo(T0 + 160 * S);
    completeAll(site, sink);
    await flush();
    should(site.limiter?.inForce().some((l) => l.source === 'grid-operator')).be.false();
    should(sum(worstCase(site))).be.above(25);
    await site.stop();
  });

  it('a cap survives a restart (saved with the site); a bad reading names its field and changes nothing', async () => {
    const store = new MemoryStore();
    const a = make(depot(), store);
    a.site.setCap({ id: 'dso', source: 'grid-operator', importKw: 20, expiresAt: T0 + 3600 * S });
    await a.site.save();
    await a.site.stop();
    const b = make(depot(), store);
    should(b.site.limiter?.inForce().some((l) => l.sourceId === 'dso' && l.value === 20)).be.true();
    should(() => b.site.measure({ meter: 'building', a: [1, 'x', 3] })).throw(/a\[1\]/);
    should(() => b.site.measure({ meter: 'boiler', kw: 1 })).throw(/boiler/);
    await b.site.stop();
  });

  it('a bad limits configuration fails the site with the field named', () => {
    should(
      () =>
        new Site({
          siteId: 'x',
          limits: { circuits: [{ id: 'grid', importKw: -5 }], assets: [] },
        }),
    ).throw(/circuits\[0\]\.importKw/);
  });
});
