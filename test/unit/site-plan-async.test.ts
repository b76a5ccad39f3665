/**
 * Site.submitPlanAsync: a plan read in slices, then registered in one step. It must give what
 * submitPlan gives (events, commands, persistence entries), leave the old schedule in force
 * until its commit, and take effect in order with the operations given to `site.inOrder`.
 * Turns are counted (setImmediate), never timed.
 */
import should from 'should';
import { commandToJSON } from '../../src/commands';
import { InOrder } from '../../src/in-order';
import { planOfConversion, planOfConversionAsync } from '../../src/plans';
import { evConversion, journalingSite, SLOT, T0 } from '../helpers/plan-site';
import { countTurns } from '../helpers/wait';

/** `assets` EVs x `slots` slots from `start`, values changing every 1 to 3 slots. */
const conversion = (id: string, assets: number, slots: number, start: number) =>
  evConversion(id, assets, slots, start);

/** A site journaling into a list (key and JSON of each entry as it comes), with its events. */
function rig(maxFinishedCommands = 10_000, listen = true) {
  const { site, clock, journal } = journalingSite(maxFinishedCommands);
  const events: string[] = [];
  if (listen)
    site.eventBus.subscribe('*', (e) => events.push(`${e.type} ${JSON.stringify(e.payload)}`));
  site.start();
  return { site, clock, journal, events };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Site.submitPlanAsync', () => {
  for (const listen of [true, false]) {
    it(`gives what submitPlan gives: result, events, commands, journal entries, saved state (${listen ? 'with' : 'without'} event subscribers)`, async () => {
      const first = conversion('day', 40, 24, T0);
      const second = conversion('day2', 40, 24, T0 + 4 * SLOT);
      // Few finished commands kept: most superseded rows are dropped at once.
      const sync = rig(50, listen);
      const sliced = rig(50, listen);
      const a1 = sync.site.submitPlan(planOfConversion(first), 'd1');
      const b1 = await sliced.site.submitPlanAsync(planOfConversion(first), {
        owner: 'd1',
        slicing: { sliceMs: 0 },
      });
      should(b1).eql(a1);
      // The replacement supersedes the first from its fourth slot on.
      const a2 = sync.site.submitPlan(second, 'd2');
      const b2 = await sliced.site.submitPlanAsync(second, {
        owner: 'd2',
        slicing: { sliceMs: 0 },
      });
      should(b2).eql(a2);
      await nextTurn();
      should(sliced.events).eql(sync.events);
      if (listen) should(sync.events.length).be.above(900); // created and cancelled rows
      should(sliced.journal).eql(sync.journal);
      should(sync.journal.some((j) => j.startsWith('p:day2 '))).be.true();
      should(sliced.site.engine.getCommands().map(commandToJSON)).eql(
        sync.site.engine.getCommands().map(commandToJSON),
      );
      should(sliced.site.toJSON()).eql(sync.site.toJSON());
      await sync.site.stop();
      await sliced.site.stop();
    });
  }

  it('leaves the old schedule in force until the new plan is committed, reading it over many turns', async () => {
    const { site } = rig();
    site.submitPlan(conversion('day', 600, 96, T0), 'd');
    const before = site.engine.getCommands({ scheduleId: 'day' }).map(commandToJSON);
    const stats = site.engine.stats();
    let turns = 0;
    let committed = false;
    const probe = () => {
      turns++;
      // The commit's turn may come before the promise resolves (the cut rows follow in slices).
      if (site.engine.hasPlan('day2')) committed = true;
      // Until the commit: the same commands, none cancelled, nothing of the new one.
      if (!committed) {
        should(site.engine.stats()).eql(stats);
        should(site.engine.hasPlan('day2')).be.false();
        setImmediate(probe);
      }
    };
    setImmediate(probe);
    const done = site.submitPlanAsync(planOfConversion(conversion('day2', 600, 96, T0 + SLOT)), {
      slicing: { sliceMs: 0 },
    });
    const result = await done;
    committed = true;
    should(turns).be.above(3);
    should(before.length).be.above(1000);
    should(result.count).be.above(1000);
    should(site.engine.hasPlan('day2')).be.true();
    // The first slot of `day` stays; the rest is superseded.
    should(site.engine.getCommands({ scheduleId: 'day', status: 'PENDING' as never })).have.length(
      600,
    );
    await site.stop();
  });

  it('a bad plan rejects with submitPlan’s error and changes nothing; so does a stopped site or an aborted signal', async () => {
    const { site } = rig();
    const plan = planOfConversion(conversion('day', 5, 8, T0));
    should(() => site.submitPlan({ ...plan, until: [1] })).throw(/plan\.until: has 1 entries/);
    await should(site.submitPlanAsync({ ...plan, until: [1] })).be.rejectedWith(
      /plan\.until: has 1 entries/,
    );
    const abort = new AbortController();
    const aborted = site.submitPlanAsync(plan, { signal: abort.signal, slicing: { sliceMs: 0 } });
    abort.abort();
    await should(aborted).be.rejectedWith(/aborted before it was registered; nothing changed/);
    const stopping = site.submitPlanAsync(plan, { slicing: { sliceMs: 0 } });
    await site.stop();
    await should(stopping).be.rejectedWith(/site s stopped while the plan was read/);
    should(site.engine.stats().pending).equal(0);
    should(site.engine.hasPlan('day')).be.false();
  });

  it('takes effect in order with site.inOrder: a reset after a plan cancels it; when idle, at once', async () => {
    const { site } = rig();
    // Idle: the operation runs now, in this turn, and its value comes back as it is.
    should(site.inOrder(() => 42)).equal(42);
    const plan = planOfConversion(conversion('day', 50, 24, T0));
    const registering = site.submitPlanAsync(plan, { slicing: { sliceMs: 0 } });
    const order: string[] = [];
    const reset = site.inOrder(() => {
      order.push('reset');
      return site.engine.cancelPending({}, 'reset').length;
    });
    should(reset).be.instanceOf(Promise); // waits for the plan
    should(order).eql([]);
    const sub = await registering;
    should(await reset).equal(sub.count);
    should(site.engine.stats().pending).equal(0);
    await site.stop();
  });
});

describe('InOrder', () => {
  it('runs at once while nothing waits; otherwise after every earlier one, a failure stopping none', async () => {
    const q = new InOrder();
    const seen: string[] = [];
    let release: () => void = () => {};
    const slow = q.run(
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    should(q.pending).equal(1);
    const failing = q.run(() => {
      seen.push('fails');
      throw new Error('boom');
    });
    const after = q.run(() => {
      seen.push('after');
      return 'ok';
    });
    should(seen).eql([]);
    release();
    await slow;
    await should(failing).be.rejectedWith('boom');
    should(await after).equal('ok');
    should(seen).eql(['fails', 'after']);
    should(q.pending).equal(0);
    should(q.run(() => 'now')).equal('now');
  });
});

describe('planOfConversionAsync', () => {
  it('gives what planOfConversion gives, over several turns', async () => {
    const conv = conversion('day', 300, 96, T0);
    const turns = countTurns();
    const plan = await planOfConversionAsync(conv, { sliceMs: 0 });
    turns.stop();
    should(turns.turns).be.above(1);
    should(plan).eql(planOfConversion(conv));
  });
});
