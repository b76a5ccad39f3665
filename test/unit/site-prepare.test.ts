// The prepare step before a slot boundary (issue 17), with a manual clock and fake timers: the
// engine selects what will be due ahead of its time (`prepareDue`) without changing anything,
// the Site does it `prepareAheadMs` before the boundary, and the limiter's allocation decided
// then is used at the boundary only when nothing it depends on changed since.
import should from 'should';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, CommandType } from '../../src/commands';
import { DispatchEngine } from '../../src/engine';
import type { LimitsConfig } from '../../src/limits/types';
import { type DueCommandSink, PREPARE_MARGIN, Site } from '../../src/site';
import { BATTERY_DEFINITION, StateMachine } from '../../src/state-machine';
import { WARM_COMMANDS, warmScratch } from '../../src/warm';
import { FakeTimers, flush } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;

class Sink implements DueCommandSink {
  readonly delivered: { cmd: Command; at: number }[] = [];
  constructor(private readonly clock: ManualClock) {}
  deliver(cmd: Command) {
    this.delivered.push({ cmd, at: this.clock.now() });
  }
  undeliverable() {}
}

const rate = (assetId: string, valueKw: number, at: number, extra: object = {}) => ({
  assetId,
  type: CommandType.SET_CHARGE_RATE,
  valueKw,
  scheduledAt: at,
  validUntil: at + 900 * S,
  ...extra,
});

describe('DispatchEngine.prepareDue', () => {
  function makeEngine() {
    const clock = new ManualClock(T0);
    return { clock, engine: new DispatchEngine({ clock }) };
  }

  it('selects what is due by `until`, in handout order, and changes nothing before its time', () => {
    const { clock, engine } = makeEngine();
    engine.submit([
      rate('a', 1, T0 + 10 * S),
      rate('b', 2, T0 + 10 * S, { priority: 5 }),
      rate('c', 3, T0 + 20 * S),
    ]);
    const prepared = engine.prepareDue(T0 + 10 * S);
    should(prepared.map((c) => c.assetId)).eql(['b', 'a']);
    for (const c of prepared) should(c.status).equal(CommandStatus.PENDING);
    // Not due yet: nothing handed out, and the next wake is still their time.
    should(engine.getPendingCommands(T0 + 9999)).eql([]);
    should(engine.nextWakeAt()).equal(T0 + 10 * S);
    clock.set(T0 + 10 * S);
    should(engine.getPendingCommands().map((c) => c.assetId)).eql(['b', 'a']);
    // Handed out but not dispatched: handed out again, as without preparing.
    should(engine.getPendingCommands().map((c) => c.assetId)).eql(['b', 'a']);
    for (const c of engine.getPendingCommands()) engine.markDispatched(c);
    should(engine.getPendingCommands()).eql([]);
    should(engine.nextWakeAt()).equal(T0 + 20 * S); // c, before the attempts' deadline
    clock.set(T0 + 20 * S);
    should(engine.getPendingCommands().map((c) => c.assetId)).eql(['c']);
  });

  it('a prepared command cancelled or superseded is not handed out; one submitted later is, in priority order', () => {
    const { clock, engine } = makeEngine();
    const [a, b] = engine.submit([
      rate('a', 1, T0 + 10 * S, { scheduleId: 'p1' }),
      rate('b', 2, T0 + 10 * S, { scheduleId: 'p1' }),
    ]);
    should(engine.prepareDue(T0 + 10 * S)).have.length(2);
    engine.cancel(a as Command);
    // A newer schedule for b from the same slot on supersedes the prepared one.
    const [b2] = engine.submit(rate('b', 7, T0 + 10 * S, { scheduleId: 'p2' }));
    engine.submit(rate('z', 9, T0 + 10 * S, { priority: 9 }));
    should((b as Command).status).equal(CommandStatus.CANCELLED);
    clock.set(T0 + 10 * S);
    const due = engine.getPendingCommands();
    should(due.map((c) => `${c.assetId}:${c.valueKw}`)).eql(['z:9', 'b:7']);
    should(due[1]).equal(b2);
  });

  it('a prepared command whose asset is held at its time is held, and leaves when released', () => {
    const { clock, engine } = makeEngine();
    const machine = new StateMachine({ ...BATTERY_DEFINITION, assetId: 'a', clock });
    engine.registerStateMachine(machine);
    engine.submit(rate('a', 1, T0 + 10 * S));
    should(engine.prepareDue(T0 + 10 * S)).have.length(1);
    machine.forceState('FAULTED', 'test');
    clock.set(T0 + 10 * S);
    should(engine.getPendingCommands()).eql([]);
    should(engine.getHeldCommands('a')).have.length(1);
    machine.forceState('IDLE', 'test');
    should(engine.getPendingCommands().map((c) => c.assetId)).eql(['a']);
  });

  it('a prepared command whose slot ended before it left expires at its time', () => {
    const { clock, engine } = makeEngine();
    const [a] = engine.submit({ ...rate('a', 1, T0 + 10 * S), validUntil: T0 + 11 * S });
    engine.prepareDue(T0 + 10 * S);
    clock.set(T0 + 12 * S);
    should(engine.getPendingCommands()).eql([]);
    should((a as Command).status).equal(CommandStatus.CANCELLED);
    should((a as Command).lastError).match(/expired/);
  });
});

describe('Site: the prepare step before a boundary', () => {
  function make(opts: { prepareAheadMs?: number; limits?: LimitsConfig } = {}) {
    const clock = new ManualClock(T0);
    const timers = new FakeTimers(clock);
    const errors: Error[] = [];
    const site = new Site({
      siteId: 'depot',
      clock,
      timers,
      onError: (e) => errors.push(e),
      ...(opts.prepareAheadMs !== undefined ? { prepareAheadMs: opts.prepareAheadMs } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
    });
    const sink = new Sink(clock);
    site.attachDispatcher('d', sink);
    const prepared: { at: number; for: number; ids: string[] }[] = [];
    // The loop's prepare step (the selection in slices, then the rest): when it started.
    const prepare = site.prepareInSlices.bind(site);
    site.prepareInSlices = async (at: number) => {
      const started = clock.now();
      const out = await prepare(at);
      if (out) prepared.push({ at: started, for: at, ids: out.map((c) => c.assetId) });
      return out;
    };
    site.start();
    return { clock, timers, site, sink, prepared, errors };
  }

  it('prepares the commands of a boundary prepareAheadMs before it, then hands them out at it', async () => {
    const { site, timers, sink, prepared, errors } = make({ prepareAheadMs: 300 });
    for (const id of ['a', 'b'])
      site.adapterRegistry.register(id, { protocol: 't', dispatch: () => {} });
    site.submit([rate('a', 1, T0 + 10 * S), rate('b', 2, T0 + 10 * S), rate('a', 3, T0 + 20 * S)]);
    await timers.advanceTo(T0 + 10 * S - 301);
    should(prepared).eql([]);
    await timers.advanceTo(T0 + 10 * S - 1);
    should(prepared).eql([{ at: T0 + 10 * S - 300, for: T0 + 10 * S, ids: ['a', 'b'] }]);
    should(sink.delivered).eql([]);
    await timers.advanceTo(T0 + 10 * S);
    should(sink.delivered.map((d) => [d.cmd.assetId, d.at])).eql([
      ['a', T0 + 10 * S],
      ['b', T0 + 10 * S],
    ]);
    for (const d of sink.delivered) site.engine.handleResponse(d.cmd, true);
    // The next boundary is prepared in its turn.
    await timers.advanceTo(T0 + 20 * S);
    should(prepared.map((p) => [p.at, p.for])).eql([
      [T0 + 10 * S - 300, T0 + 10 * S],
      [T0 + 20 * S - 300, T0 + 20 * S],
    ]);
    should(sink.delivered).have.length(3);
    should(errors).eql([]);
    await site.stop();
  });

  it('the prepare step warms the handout on a scratch site of its own: nothing of it reaches the real one', async () => {
    const { site, timers, sink } = make({ prepareAheadMs: 300 });
    site.adapterRegistry.register('a', { protocol: 't', dispatch: () => {} });
    const seen: string[] = [];
    site.eventBus.subscribe('*', (e) => {
      const id = (e.payload as { assetId?: string }).assetId;
      if (id !== undefined) seen.push(id);
    });
    site.submit(rate('a', 1, T0 + 10 * S));
    await timers.advanceTo(T0 + 10 * S - 1);
    await flush();
    const before = warmScratch()?.answered ?? 0;
    should(before).be.above(0); // the loop's own prepare step warmed it
    site.prepare(T0 + 10 * S); // the same boundary again (a reading, a schedule): warm already
    await flush();
    should(warmScratch()?.answered).equal(before);
    site.prepare(T0 + 11 * S); // another due time: one warm-up
    await flush();
    const scratch = warmScratch();
    should(scratch?.site).not.be.undefined();
    should(scratch?.site).not.equal(site);
    // The scratch site handed out and answered its batch: nothing left pending or in flight.
    should(scratch?.answered).equal(before + WARM_COMMANDS);
    const stats = scratch?.site.engine.stats();
    should(stats?.pending).equal(0);
    should(stats?.inFlight).equal(0);
    await timers.advanceTo(T0 + 10 * S);
    should(sink.delivered.map((d) => d.cmd.assetId)).eql(['a']);
    should(seen.every((id) => id === 'a')).be.true();
    should(site.engine.stats().total).equal(1);
    await site.stop();
  });

  it('a schedule that comes after the prepare step is prepared again and leaves on time', async () => {
    const { site, timers, sink, prepared } = make({ prepareAheadMs: 300 });
    for (const id of ['a', 'b'])
      site.adapterRegistry.register(id, { protocol: 't', dispatch: () => {} });
    site.submit(rate('a', 1, T0 + 10 * S, { scheduleId: 'p1' }));
    await timers.advanceTo(T0 + 10 * S - 100);
    should(prepared.map((p) => p.ids)).eql([['a']]);
    site.submit([
      rate('a', 5, T0 + 10 * S, { scheduleId: 'p2' }),
      rate('b', 6, T0 + 10 * S, { scheduleId: 'p2' }),
    ]);
    await timers.advanceTo(T0 + 10 * S - 1);
    // Prepared again at once, with the new schedule's commands (the superseded one dropped).
    should(prepared.at(-1)).eql({ at: T0 + 10 * S - 100, for: T0 + 10 * S, ids: ['a', 'b'] });
    await timers.advanceTo(T0 + 10 * S);
    should(sink.delivered.map((d) => `${d.cmd.assetId}:${d.cmd.valueKw}`)).eql(['a:5', 'b:6']);
    await site.stop();
  });

  it('a prepare step that took long starts the next one earlier: PREPARE_MARGIN times as long ahead, at most 5 s', async () => {
    const { site, timers, clock, prepared } = make({ prepareAheadMs: 300 });
    site.adapterRegistry.register('a', { protocol: 't', dispatch: () => {} });
    site.submit([rate('a', 1, T0 + 10 * S), rate('a', 2, T0 + 20 * S), rate('a', 3, T0 + 40 * S)]);
    // The step before the first boundary takes 400 ms of the clock (a slow allocation).
    const slow = site.prepareInSlices.bind(site);
    let took = 400;
    site.prepareInSlices = async (at: number) => {
      const out = await slow(at);
      clock.advance(took);
      return out;
    };
    await timers.advanceTo(T0 + 10 * S);
    should(prepared.map((p) => p.at)).eql([T0 + 10 * S - 300]);
    should(site.prepareLeadMs).equal(300); // measured inside prepare: the advance is after it
    await timers.advanceTo(T0 + 15 * S);
    took = 0;
    // Measured from the clock inside the step: make the next step itself take 400 ms.
    const inner = site.engine.prepareDueSteps.bind(site.engine);
    site.engine.prepareDueSteps = (until) => {
      clock.advance(400);
      return inner(until);
    };
    await timers.advanceTo(T0 + 20 * S);
    should(prepared.at(-1)?.for).equal(T0 + 20 * S);
    should(site.prepareLeadMs).equal(PREPARE_MARGIN * 400);
    site.engine.prepareDueSteps = inner;
    await timers.advanceTo(T0 + 40 * S - 1);
    // The next step started PREPARE_MARGIN x 400 ms ahead, not 300.
    should(prepared.at(-1)).containEql({
      at: T0 + 40 * S - PREPARE_MARGIN * 400,
      for: T0 + 40 * S,
    });
    should(site.prepareLeadMs).equal(300);
    await site.stop();
  });

  it('prepareAheadMs 0 turns it off; a bad value is refused with the option named', async () => {
    const { site, timers, sink, prepared } = make({ prepareAheadMs: 0 });
    site.adapterRegistry.register('a', { protocol: 't', dispatch: () => {} });
    site.submit(rate('a', 1, T0 + 10 * S));
    await timers.advanceTo(T0 + 10 * S);
    should(prepared).eql([]);
    should(sink.delivered).have.length(1);
    await site.stop();
    for (const bad of [-1, Number.NaN, '250', 120_000])
      should(() => new Site({ siteId: 's', prepareAheadMs: bad as number })).throw(
        /prepareAheadMs must be a number of ms from 0 \(off\) to 60000/,
      );
  });

  describe('with limits', () => {
    const limits = (): LimitsConfig => ({
      circuits: [{ id: 'grid', importKw: 20 }],
      assets: ['a', 'b'].map((assetId) => ({
        assetId,
        kind: 'ev' as const,
        circuit: 'grid',
        phases: 'L1L2L3' as const,
        ratingKw: 22,
      })),
      meters: [],
      minIntervalS: 0,
      hysteresisKw: 0.1,
    });

    /** Counts the limiter's allocations (its private `decide`). */
    function countDecisions(site: Site): { n: number } {
      const counter = { n: 0 };
      const limiter = site.limiter as unknown as { decide: (...a: unknown[]) => unknown };
      const decide = limiter.decide.bind(limiter);
      limiter.decide = (...a: unknown[]) => {
        counter.n++;
        return decide(...a);
      };
      return counter;
    }

    it('the allocation decided ahead is used at the boundary when nothing changed', async () => {
      const { site, timers, sink } = make({ prepareAheadMs: 250, limits: limits() });
      for (const id of ['a', 'b'])
        site.adapterRegistry.register(id, { protocol: 't', dispatch: () => {} });
      site.submit([rate('a', 15, T0 + 10 * S), rate('b', 15, T0 + 10 * S)]);
      const decisions = countDecisions(site);
      await timers.advanceTo(T0 + 10 * S - 1);
      should(decisions.n).equal(1);
      should(site.limiter?.hasPrepared).be.true();
      await timers.advanceTo(T0 + 10 * S);
      should(decisions.n).equal(1); // not allocated again
      should(site.limiter?.hasPrepared).be.false();
      should(sink.delivered.map((d) => d.cmd.valueKw)).eql([10, 10]);
      for (const d of sink.delivered) {
        should(d.cmd.askedKw).equal(15);
        should(d.cmd.limitedBy).match(/grid/);
      }
      await site.stop();
    });

    it('warms on a scratch site with limits, prepared as the real one: its allocation decided ahead and used', async () => {
      const { site, timers } = make({ prepareAheadMs: 250, limits: limits() });
      site.adapterRegistry.register('a', { protocol: 't', dispatch: () => {} });
      site.submit(rate('a', 15, T0 + 10 * S));
      await timers.advanceTo(T0 + 10 * S - 1);
      await flush();
      const scratch = warmScratch(true);
      should(scratch?.site.limiter).be.ok();
      should(scratch?.site).not.equal(site);
      const before = scratch?.answered ?? 0;
      should(before).be.aboveOrEqual(WARM_COMMANDS);
      // Another warm-up: the scratch's batch allocated once, in its prepare step, and that
      // allocation used at its handout (not decided again there).
      const scratchSite = scratch?.site as Site;
      const decisions = countDecisions(scratchSite);
      const limiter = scratchSite.limiter as NonNullable<Site['limiter']>;
      const prepare = limiter.prepare.bind(limiter);
      let prepared = 0;
      limiter.prepare = (...a: Parameters<typeof prepare>) => {
        prepared++;
        return prepare(...a);
      };
      site.prepare(T0 + 11 * S);
      await flush();
      should(prepared).equal(1);
      should(decisions.n).equal(1);
      should(scratch?.site.limiter?.hasPrepared).be.false();
      should(warmScratch(true)?.answered).equal(before + WARM_COMMANDS);
      should(scratch?.site.engine.stats()).match({ pending: 0, inFlight: 0 });
      await site.stop();
    });

    it('a cap set between the prepare step and the boundary is respected: allocated again', async () => {
      const { site, timers, sink } = make({ prepareAheadMs: 250, limits: limits() });
      for (const id of ['a', 'b'])
        site.adapterRegistry.register(id, { protocol: 't', dispatch: () => {} });
      site.submit([rate('a', 15, T0 + 10 * S), rate('b', 15, T0 + 10 * S)]);
      await timers.advanceTo(T0 + 10 * S - 100);
      should(site.limiter?.hasPrepared).be.true();
      site.setCap({ id: 'dso', source: 'grid-operator', circuit: 'grid', importKw: 8 });
      await timers.advanceTo(T0 + 10 * S);
      should(sink.delivered.map((d) => d.cmd.valueKw)).eql([4, 4]);
      await site.stop();
    });

    it('a command that changed between the prepare step and the boundary makes it allocate again', async () => {
      const { site, timers, sink } = make({ prepareAheadMs: 250, limits: limits() });
      for (const id of ['a', 'b'])
        site.adapterRegistry.register(id, { protocol: 't', dispatch: () => {} });
      const [a] = site.submit([rate('a', 15, T0 + 10 * S), rate('b', 15, T0 + 10 * S)]);
      const decisions = countDecisions(site);
      await timers.advanceTo(T0 + 10 * S - 100);
      should(decisions.n).equal(1);
      site.engine.cancel(a as Command);
      await timers.advanceTo(T0 + 10 * S);
      // b alone: all it asked fits; the allocation prepared for a and b was not used.
      should(decisions.n).be.above(1);
      should(sink.delivered.map((d) => `${d.cmd.assetId}:${d.cmd.valueKw}`)).eql(['b:15']);
      await site.stop();
    });
  });
});
