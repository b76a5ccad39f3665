// The prepare step in slices (issue 17: nothing holds the event loop long): the engine's
// selection as steps (`prepareDueSteps`) with the engine consistent between any two of them,
// and the Site's sliced step (`prepareInSlices`) stopping when the run it prepares moves.
// Manual clock and fake timers; the steps are driven by hand, nothing depends on wall time.
// Also the boundary's timer fired early and the rest waited out (`waitUntil`): with a clock
// that moves when read, and one Site on the real clock that must never hand out early.
import should from 'should';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, CommandType } from '../../src/commands';
import { convertSchedule } from '../../src/convert';
import { DispatchEngine } from '../../src/engine';
import { PREPARE_CHUNK } from '../../src/engine-dispatch';
import { type DueCommandSink, Site } from '../../src/site';
import { BOUNDARY_EARLY_MS, waitUntil } from '../../src/site-loop';
import { FakeTimers } from '../helpers/fake-timers';
import { until } from '../helpers/wait';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const SLOT = 900 * S;

const rate = (assetId: string, valueKw: number, at: number, extra: object = {}) => ({
  assetId,
  type: CommandType.SET_CHARGE_RATE,
  valueKw,
  scheduledAt: at,
  validUntil: at + SLOT,
  ...extra,
});

/** `n` commands due at `at`, one per asset `a0`..: every third with priority 5. */
const burst = (n: number, at: number, tag = '') =>
  Array.from({ length: n }, (_, i) =>
    rate(`a${i}`, 1 + (i % 7), at, { id: `${tag}c${i}`, ...(i % 3 === 0 ? { priority: 5 } : {}) }),
  );

describe('DispatchEngine.prepareDueSteps', () => {
  it('yields every PREPARE_CHUNK entries and ends with what prepareDue gives, in the same order', () => {
    const n = 3 * PREPARE_CHUNK + 10;
    const a = new DispatchEngine({ clock: new ManualClock(T0) });
    const b = new DispatchEngine({ clock: new ManualClock(T0) });
    a.submit(burst(n, T0 + 10 * S));
    b.submit(burst(n, T0 + 10 * S));
    const steps = b.prepareDueSteps(T0 + 10 * S);
    let yields = 0;
    let r = steps.next();
    while (!r.done) {
      yields++;
      r = steps.next();
    }
    should(yields).equal(3);
    should(r.value.map((c) => c.id)).eql(a.prepareDue(T0 + 10 * S).map((c) => c.id));
  });

  it('a boundary between two steps hands out every due command once, in order; the rest of the step adds nothing twice', () => {
    const clock = new ManualClock(T0);
    const engine = new DispatchEngine({ clock });
    const n = 2 * PREPARE_CHUNK + 5;
    engine.submit(burst(n, T0 + 10 * S));
    const expected = new DispatchEngine({ clock: new ManualClock(T0 + 10 * S) });
    expected.submit(burst(n, T0 + 10 * S));
    const order = expected.getPendingCommands().map((c) => c.id);
    const steps = engine.prepareDueSteps(T0 + 10 * S);
    steps.next(); // one step: PREPARE_CHUNK taken out of the heap, the rest still in it
    clock.set(T0 + 10 * S);
    const due = engine.getPendingCommands();
    should(due.map((c) => c.id)).eql(order);
    for (const c of due) engine.markDispatched(c);
    // The step resumed after the boundary finds nothing left to prepare.
    let r = steps.next();
    while (!r.done) r = steps.next();
    should(r.value).eql([]);
    should(engine.getPendingCommands()).eql([]);
    should(engine.stats().inFlight).equal(n);
  });

  it('a command submitted between two steps, due sooner or first in order, is handed out in its place', () => {
    const clock = new ManualClock(T0);
    const engine = new DispatchEngine({ clock });
    engine.submit(burst(2 * PREPARE_CHUNK, T0 + 10 * S));
    const steps = engine.prepareDueSteps(T0 + 10 * S);
    steps.next();
    steps.next();
    // Taken out of the heap by the step after this: out of order behind what was prepared.
    engine.submit([
      rate('early', 1, T0 + 5 * S, { id: 'early' }),
      rate('urgent', 1, T0 + 10 * S, { id: 'urgent', priority: 9 }),
    ]);
    let r = steps.next();
    while (!r.done) r = steps.next();
    should(r.value[0]?.id).equal('early');
    should(r.value.slice(1, 4).map((c) => c.priority)).eql([9, 5, 5]);
    clock.set(T0 + 10 * S);
    const due = engine.getPendingCommands().map((c) => c.id);
    should(due[0]).equal('urgent');
    should(due).containEql('early');
    should(new Set(due).size).equal(2 * PREPARE_CHUNK + 2);
  });

  it('a plan of many assets: its due rows become commands across the steps, the same as at once', () => {
    const assets = PREPARE_CHUNK * 2 + 3;
    const rows = [0, 1].map((i) => {
      const row: Record<string, unknown> = { timestamp: new Date(T0 + i * SLOT).toISOString() };
      for (let a = 0; a < assets; a++) row[`ev_${a}_kw`] = 1 + ((a + i) % 5);
      return row;
    });
    const assetMap = Object.fromEntries(
      Array.from({ length: assets }, (_, a) => [`ev_${a}`, `ev${a}`]),
    );
    const conv = () =>
      convertSchedule(rows, { assetMap, scheduleId: 'day', now: T0 - 60 * S, slotSeconds: 900 });
    const a = new DispatchEngine({ clock: new ManualClock(T0 - 60 * S) });
    const b = new DispatchEngine({ clock: new ManualClock(T0 - 60 * S) });
    a.submitPlan(conv());
    b.submitPlan(conv());
    const steps = b.prepareDueSteps(T0);
    let yields = 0;
    let r = steps.next();
    while (!r.done) {
      yields++;
      r = steps.next();
    }
    should(yields).be.above(1);
    const ids = a.prepareDue(T0).map((c) => c.id);
    should(ids).have.length(assets);
    should(r.value.map((c) => c.id)).eql(ids);
  });
});

describe('Site.prepareInSlices', () => {
  class Sink implements DueCommandSink {
    readonly delivered: { id: string; at: number }[] = [];
    constructor(private readonly clock: ManualClock) {}
    deliver(cmd: Command) {
      this.delivered.push({ id: cmd.id, at: this.clock.now() });
    }
    undeliverable() {}
  }

  function make() {
    const clock = new ManualClock(T0);
    const timers = new FakeTimers(clock);
    const errors: Error[] = [];
    const site = new Site({
      siteId: 'depot',
      clock,
      timers,
      prepareAheadMs: 300,
      onError: (e) => errors.push(e),
    });
    const sink = new Sink(clock);
    site.attachDispatcher('d', sink);
    for (let i = 0; i < 2 * PREPARE_CHUNK; i++)
      site.adapterRegistry.register(`a${i}`, { protocol: 't', dispatch: () => {} });
    site.adapterRegistry.register('early', { protocol: 't', dispatch: () => {} });
    site.start();
    return { clock, timers, site, sink, errors };
  }

  it('stops at the next step when the run it prepares moves; the moved run is prepared and everything leaves once, on time', async () => {
    const { site, timers, sink, errors } = make();
    site.submit(burst(2 * PREPARE_CHUNK, T0 + 10 * S));
    const results: (Command[] | null)[] = [];
    const sliced = site.prepareInSlices.bind(site);
    site.prepareInSlices = async (at) => {
      const out = await sliced(at);
      results.push(out);
      return out;
    };
    // During the first step (before T0 + 10 s - 300 ms), a command due sooner arrives.
    const inner = site.engine.prepareDueSteps.bind(site.engine);
    let injected = false;
    site.engine.prepareDueSteps = function* (until) {
      const steps = inner(until);
      let r = steps.next();
      if (!injected) {
        injected = true;
        site.submit(rate('early', 1, T0 + 9900, { id: 'early' }));
      }
      while (!r.done) {
        yield;
        r = steps.next();
      }
      return r.value;
    };
    await timers.advanceTo(T0 + 10 * S - 300);
    // The first step stopped (its run moved to 9.9 s), and the moved run was prepared (with
    // what the stopped step had taken out, due later: still prepared, see prepareDue).
    should(results[0]).be.null();
    should(results[1]?.[0]?.id).equal('early');
    await timers.advanceTo(T0 + 10 * S);
    should(sink.delivered[0]).eql({ id: 'early', at: T0 + 9900 });
    const rest = sink.delivered.slice(1);
    should(rest).have.length(2 * PREPARE_CHUNK);
    should(new Set(rest.map((d) => d.id)).size).equal(2 * PREPARE_CHUNK);
    should(rest.every((d) => d.at === T0 + 10 * S)).be.true();
    should(errors).eql([]);
    await site.stop();
  });

  it('a stop during a step ends it: nothing more is prepared, nothing is handed out', async () => {
    const { site, timers, sink } = make();
    site.submit(burst(2 * PREPARE_CHUNK, T0 + 10 * S));
    const inner = site.engine.prepareDueSteps.bind(site.engine);
    let stopping: Promise<void> | null = null;
    site.engine.prepareDueSteps = function* (until) {
      const steps = inner(until);
      let r = steps.next();
      stopping = site.stop();
      while (!r.done) {
        yield;
        r = steps.next();
      }
      return r.value;
    };
    const out = await site.prepareInSlices(T0 + 10 * S);
    await stopping;
    should(out).be.null();
    await timers.advanceTo(T0 + 20 * S);
    should(sink.delivered).eql([]);
    // What the first step took out is still PENDING, nothing lost: it is there to hand out.
    should(site.engine.stats().pending).equal(2 * PREPARE_CHUNK);
    should(site.engine.getCommands({ status: CommandStatus.PENDING })).have.length(
      2 * PREPARE_CHUNK,
    );
  });
});

describe('the boundary fired early and waited out', () => {
  it('waitUntil returns once the clock reads the time, and false when it never does within the budget', () => {
    let t = 1000;
    let reads = 0;
    const moving = {
      now: () => {
        reads++;
        t += 0.25;
        return t;
      },
    };
    should(waitUntil(moving, 1003, 60_000)).be.true();
    should(reads).equal(12);
    should(t).be.aboveOrEqual(1003);
    // A clock that does not move: gives up after the budget (0 here: at once), not before.
    should(waitUntil(new ManualClock(1000), 1001, 0)).be.false();
    should(waitUntil(new ManualClock(1001), 1001, 0)).be.true();
  });

  it('on the real clock, a due command is never handed out before its time', async () => {
    const site = new Site({ siteId: 'real', prepareAheadMs: 0 });
    const seen: { at: number; due: number }[] = [];
    site.attachDispatcher('d', {
      deliver: (cmd) => seen.push({ at: Date.now(), due: cmd.scheduledAt.getTime() }),
      undeliverable: () => {},
    });
    for (const id of ['x', 'y', 'z'])
      site.adapterRegistry.register(id, { protocol: 't', dispatch: () => {} });
    const due = Date.now() + 5 * BOUNDARY_EARLY_MS + 20;
    site.submit([rate('x', 1, due), rate('y', 1, due), rate('z', 1, due + 7)]);
    site.start();
    try {
      await until(() => seen.length === 3, 'the three commands handed out', { ms: 5000 });
    } finally {
      await site.stop();
    }
    for (const s of seen) should(s.at).be.aboveOrEqual(s.due);
  });
});
