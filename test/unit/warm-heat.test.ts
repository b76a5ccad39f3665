/**
 * `heatUp` (src/warm.ts): a process's first warm-up, rounds of WARM_COMMANDS one a turn until
 * the scratch site has handed out WARM_HOT_COMMANDS (the handout optimised by V8 before the
 * first boundary), stopping short of the due time it serves; one at a time; and a Site that
 * starts it as soon as it has a due time ahead, on the system clock only. Each test but the
 * last uses a fresh copy of the module (its scratch sites are the module's, per process).
 */
import should from 'should';
import { ManualClock } from '../../src/clock';
import { CommandType } from '../../src/commands';
import { EventType } from '../../src/event-bus';
import { Site, type SiteOptions } from '../../src/site';
import { globalTimers } from '../../src/site-options';
import * as warmModule from '../../src/warm';
import { FakeTimers, flush } from '../helpers/fake-timers';

type Warm = typeof warmModule;

/** src/warm.ts loaded again: scratch sites of its own, none made yet. */
function freshWarm(): Warm {
  const path = require.resolve('../../src/warm');
  const cached = require.cache[path];
  delete require.cache[path];
  try {
    return require(path) as Warm;
  } finally {
    if (cached) require.cache[path] = cached;
  }
}

const make = (options: SiteOptions) => new Site(options);
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('heatUp (the first warm-up of a process)', () => {
  it('hands out rounds of WARM_COMMANDS, one a turn, until WARM_HOT_COMMANDS; then it is warm and does nothing more', async () => {
    const w = freshWarm();
    const clock = new ManualClock(0);
    should(w.warmedUp()).be.false();
    const done = w.heatUp(make, false, clock, 1_000_000);
    should(w.heatingUp()).equal(done);
    should(w.heatUp(make, false, clock, 1_000_000)).equal(done); // one at a time
    const seen: number[] = [];
    while (w.heatingUp() !== null) {
      await turn();
      seen.push(w.warmScratch()?.answered ?? 0);
    }
    await done;
    // Never more than one round in a turn: the event loop is served between them.
    let last = 0;
    for (const n of seen) {
      should(n - last).be.belowOrEqual(w.WARM_COMMANDS);
      last = n;
    }
    should(w.warmScratch()?.answered).equal(w.WARM_HOT_COMMANDS);
    should(w.warmedUp()).be.true();
    should(w.warmedUp(true)).be.false(); // the scratch with limits is another one
    // Nothing left behind on the scratch site: the command due later is cancelled.
    should(w.warmScratch()?.site.engine.stats()).match({ pending: 0, inFlight: 0 });
    await w.heatUp(make, false, clock, 1_000_000);
    should(w.heatingUp()).be.null();
    should(w.warmScratch()?.answered).equal(w.WARM_HOT_COMMANDS);
  });

  it('stops HEAT_MARGIN_MS before the due time it serves; a later one goes on from there', async () => {
    const w = freshWarm();
    const clock = new ManualClock(0);
    const dueAt = 10_000;
    const done = w.heatUp(make, true, clock, dueAt);
    while ((w.warmScratch(true)?.answered ?? 0) < 2 * w.WARM_COMMANDS) await turn();
    clock.set(dueAt - w.HEAT_MARGIN_MS + 1);
    await done;
    const answered = w.warmScratch(true)?.answered ?? 0;
    should(answered).be.aboveOrEqual(2 * w.WARM_COMMANDS);
    should(answered).be.below(w.WARM_HOT_COMMANDS);
    should(w.warmedUp(true)).be.false();
    // The next due time: the rest.
    await w.heatUp(make, true, clock, dueAt + 60_000);
    should(w.warmScratch(true)?.answered).equal(w.WARM_HOT_COMMANDS);
    should(w.warmScratch(true)?.site.limiter).be.ok();
  });

  it('the scratch with limits publishes LIMITS_CHANGED at every round (forgetPublished), as a real site at its first allocation', async () => {
    const w = freshWarm();
    await w.warm(make, true);
    const scratch = w.warmScratch(true)?.site as Site;
    let published = 0;
    scratch.eventBus.subscribe(EventType.LIMITS_CHANGED, () => published++);
    await w.warm(make, true);
    await w.warm(make, true);
    should(published).equal(2);
    // The limiter itself: unchanged limits are not published again, unless forgotten.
    const limiter = scratch.limiter as NonNullable<Site['limiter']>;
    limiter.publishLimits();
    should(published).equal(2);
    limiter.forgetPublished();
    limiter.publishLimits();
    should(published).equal(3);
  });

  it('a Site starts it when it has a due time ahead on the system clock, not on a test’s manual timers', async () => {
    const rate = (at: number) => ({
      assetId: 'a',
      type: CommandType.SET_CHARGE_RATE,
      valueKw: 5,
      scheduledAt: at,
    });
    // Sites with limits: their scratch site, not the one other tests may have heated already.
    const limits = {
      circuits: [{ id: 'c', importKw: 100 }],
      assets: [
        {
          assetId: 'a',
          kind: 'ev' as const,
          circuit: 'c',
          ratingKw: 22,
          phases: 'L1L2L3' as const,
        },
      ],
    };
    const errors: Error[] = [];
    // Manual clock and timers: no heat-up (the test drives every turn).
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const timers = new FakeTimers(clock);
    const manual = new Site({ siteId: 'manual', clock, timers, limits, onError: () => {} });
    manual.adapterRegistry.register('a', { protocol: 't', dispatch: () => {} });
    const before = warmModule.heatingUp(true);
    manual.submit(rate(clock.now() + 60_000));
    manual.start();
    await flush();
    if (before === null) should(warmModule.heatingUp(true)).be.null();
    await manual.stop();
    // The system clock and Node's timers.
    const site = new Site({
      siteId: 'real',
      timers: globalTimers,
      limits,
      onError: (e) => errors.push(e),
    });
    site.adapterRegistry.register('a', { protocol: 't', dispatch: () => {} });
    site.submit(rate(Date.now() + 60_000));
    site.start();
    const heating = warmModule.heatingUp(true);
    if (!warmModule.warmedUp(true)) should(heating).not.be.null();
    await heating;
    should(warmModule.warmedUp(true)).be.true();
    should(site.engine.stats()).match({ pending: 1, inFlight: 0 }); // the real site untouched
    should(errors).eql([]);
    await site.stop();
  });
});
