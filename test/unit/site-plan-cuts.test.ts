/**
 * A replacing plan through Site.submitPlanAsync: the rows it supersedes are cut in its
 * registration step and made into their CANCELLED commands, changes and events afterwards,
 * in slices (engine.commitPlan with `cutsLater`, settleCutsSteps). Side by side with the
 * one-turn submitPlan it must give the same commands, counts, events (order and payloads),
 * change notices, journal entries, saved state and restore; a query made while the slices
 * are under way sees every cut row; a stop or an abort in the middle leaves the same state.
 * Turns are counted (setImmediate), never timed.
 */
import should from 'should';
import { ManualClock } from '../../src/clock';
import { commandToJSON } from '../../src/commands';
import { planOfConversion } from '../../src/plans';
import { Site } from '../../src/site';
import { FakeTimers } from '../helpers/fake-timers';
import { evConversion, journalingSite, M, SLOT, T0 } from '../helpers/plan-site';

const ASSETS = 120;
const SLOTS = 24;

/** ASSETS EVs x SLOTS slots from `start`, values changing every 1 to 3 slots. */
const conversion = (id: string, start: number, shift = 0) =>
  evConversion(id, ASSETS, SLOTS, start, shift);

type Listen = 'all' | 'cancelled' | 'none';

/**
 * A site journaling into a list, with what it tells: its events (`listen`: every type, only
 * COMMAND_CANCELLED, none) and its change notices (id and status).
 */
function rig(maxFinishedCommands: number, listen: Listen) {
  const { site, clock, timers, journal } = journalingSite(maxFinishedCommands);
  const events: string[] = [];
  if (listen !== 'none')
    site.eventBus.subscribe(listen === 'all' ? '*' : ('COMMAND_CANCELLED' as never), (e) =>
      events.push(`${e.type} ${JSON.stringify(e.payload)}`),
    );
  const changes: string[] = [];
  site.engine.onCommandChange((cmd) => changes.push(`${cmd.id} ${cmd.status}`));
  site.start();
  return { site, clock, timers, journal, events, changes };
}

type Rig = ReturnType<typeof rig>;

/** Everything that the two ways must give alike. */
function seen(r: Rig) {
  return {
    commands: r.site.engine.getCommands().map(commandToJSON),
    stats: r.site.engine.stats(),
    saved: r.site.toJSON(),
    events: r.events,
    changes: r.changes,
    journal: r.journal,
  };
}

/** A site restored from `doc`: its commands and counts. */
function restored(doc: unknown) {
  const clock = new ManualClock(T0 - 10 * M);
  const site = new Site({
    siteId: 's',
    clock,
    timers: new FakeTimers(clock),
    store: { location: 'restore', load: () => doc, save: async () => {} },
  });
  return { commands: site.engine.getCommands().map(commandToJSON), stats: site.engine.stats() };
}

/** How many rows of the first plan the second cuts: those from its first slot on. */
function cutRows(): number {
  const r = rig(10, 'none');
  r.site.submitPlan(conversion('day', T0));
  const rows = r.site.engine.getCommands({ scheduleId: 'day' });
  void r.site.stop();
  return rows.filter((c) => c.scheduledAt.getTime() >= T0 + 3 * SLOT).length;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Registers `first` then the replacing `second` on both rigs: at once on `sync`, through
 * submitPlanAsync on `sliced` (0-ms slices: a turn between every step of the cut rows).
 * `during(turn)` runs in each turn after `second`'s registration until its promise resolves.
 */
async function replace(
  sync: Rig,
  sliced: Rig,
  during: (turn: number) => void = () => {},
): Promise<{ turns: number }> {
  const first = planOfConversion(conversion('day', T0));
  const second = conversion('day2', T0 + 3 * SLOT, 1);
  should(sync.site.submitPlan(first, 'd1')).eql(
    await sliced.site.submitPlanAsync(first, { owner: 'd1', slicing: { sliceMs: 0 } }),
  );
  const a = sync.site.submitPlan(second, 'd2');
  let turns = 0;
  let resolved = false;
  const probe = () => {
    if (resolved) return;
    if (sliced.site.engine.hasPlan('day2')) during(turns++);
    setImmediate(probe);
  };
  setImmediate(probe);
  const b = await sliced.site.submitPlanAsync(second, { owner: 'd2', slicing: { sliceMs: 0 } });
  resolved = true;
  should(b).eql(a);
  await nextTurn();
  return { turns };
}

describe('Site.submitPlanAsync replacing a plan: the cut rows made in slices', () => {
  for (const maxFinished of [10_000, 500]) {
    for (const listen of ['all', 'cancelled', 'none'] as const) {
      it(`gives what submitPlan gives: commands, counts, events, changes, journal, saved state, restore (maxFinishedCommands ${maxFinished}, events: ${listen})`, async () => {
        const sync = rig(maxFinished, listen);
        const sliced = rig(maxFinished, listen);
        // While the slices run, fewer change notices than at the end: they are spread.
        const notices: number[] = [];
        const { turns } = await replace(sync, sliced, () => notices.push(sliced.changes.length));
        const after = sliced.changes.length; // (reading the commands below makes more)
        const a = seen(sync);
        const b = seen(sliced);
        should(notices.length).be.above(0);
        if (listen === 'all') {
          // COMMAND_CREATED is heard of: the cut rows are made in the commit, before it.
          should(notices.every((n) => n === after)).be.true();
        } else {
          should(turns).be.above(3);
          should(notices[0]).be.below(after);
        }
        should(b.commands).eql(a.commands);
        should(b.stats).eql(a.stats);
        should(b.events).eql(a.events);
        should(b.changes).eql(a.changes);
        should(b.journal).eql(a.journal);
        should(b.saved).eql(a.saved);
        const cut = cutRows();
        should(cut).be.above(1000);
        should(a.stats.byStatus.CANCELLED).equal(Math.min(maxFinished, cut));
        if (listen !== 'none')
          should(a.events.filter((e) => e.startsWith('COMMAND_CANCELLED ')).length).equal(cut);
        should(restored(b.saved)).eql(restored(a.saved));
        await sync.site.stop();
        await sliced.site.stop();
      });
    }
  }

  it('a query made while the slices are under way sees every cut row, as after the one-turn commit', async () => {
    const sync = rig(10_000, 'cancelled');
    const sliced = rig(10_000, 'cancelled');
    let asked: ReturnType<typeof seen> | undefined;
    let before = -1;
    await replace(sync, sliced, (turn) => {
      if (turn !== 1) return;
      before = sliced.events.length;
      asked = seen(sliced);
    });
    const a = seen(sync);
    should(asked).not.be.undefined();
    // The query came before every event was out, and made the rest at once.
    should(before).be.below(a.events.length);
    should(asked?.commands).eql(a.commands);
    should(asked?.stats).eql(a.stats);
    should(asked?.events).eql(a.events);
    should(asked?.changes).eql(a.changes);
    should(seen(sliced).events).eql(a.events);
    await sync.site.stop();
    await sliced.site.stop();
  });

  it('each query that returns finished commands makes the rest first: getCommand, stats, toJSON, getCommandInForce, a save', async () => {
    const queries: Record<string, (s: Site) => unknown> = {
      getCommand: (s) => s.engine.getCommand('day:ev0:20'),
      stats: (s) => s.engine.stats(),
      toJSON: (s) => s.engine.toJSON(),
      getCommandInForce: (s) => s.engine.getCommandInForce('ev0') ?? null,
      save: (s) => s.save(),
    };
    for (const [name, query] of Object.entries(queries)) {
      const sync = rig(10_000, 'cancelled');
      const sliced = rig(10_000, 'cancelled');
      let count = -1;
      let at = -1;
      await replace(sync, sliced, (turn) => {
        if (turn !== 0) return;
        at = sliced.changes.length;
        const out = query(sliced.site);
        if (out instanceof Promise) out.catch(() => {});
        count = sliced.changes.length;
      });
      should(at).be.below(count, name);
      should(count).equal(sync.changes.length, name);
      should(sliced.events).eql(sync.events);
      await sync.site.stop();
      await sliced.site.stop();
    }
  });

  it('a change of another command in the middle comes after every cut row (events in order)', async () => {
    const changes: Record<string, (s: Site) => unknown> = {
      cancel: (s) => s.engine.cancel('day:ev1:0', 'by hand'),
      // Planned rows only (none made yet): cancelled without a change of a tracked command.
      cancelPending: (s) => s.engine.cancelPending({ assetId: 'ev5' }, 'reset'),
      submit: (s) => s.engine.submit({ assetId: 'ev7', type: 'SET_CHARGE_RATE', valueKw: 2 }),
    };
    for (const [name, change] of Object.entries(changes)) {
      for (const maxFinished of [10_000, 500]) {
        const sync = rig(maxFinished, 'cancelled');
        const sliced = rig(maxFinished, 'cancelled');
        let before = -1;
        await replace(sync, sliced, (turn) => {
          if (turn !== 0) return;
          before = sliced.events.length;
          change(sliced.site);
        });
        change(sync.site);
        should(before).be.below(sync.events.length);
        const a = seen(sync);
        const b = seen(sliced);
        should(b.events).eql(a.events, name);
        should(b.changes.map((c) => c.replace(/cmd-[^ ]+/, 'cmd'))).eql(
          a.changes.map((c) => c.replace(/cmd-[^ ]+/, 'cmd')),
          name,
        );
        should(b.stats).eql(a.stats, name);
        should(b.commands.length).equal(a.commands.length, name);
        await sync.site.stop();
        await sliced.site.stop();
      }
    }
  });

  it('a stop or an abort while the slices run leaves the state the one-turn commit leaves', async () => {
    for (const how of ['stop', 'abort'] as const) {
      const sync = rig(10_000, 'cancelled');
      const sliced = rig(10_000, 'cancelled');
      const first = planOfConversion(conversion('day', T0));
      const second = planOfConversion(conversion('day2', T0 + 3 * SLOT, 1));
      sync.site.submitPlan(first, 'd1');
      sync.site.submitPlan(second, 'd2');
      await sliced.site.submitPlanAsync(first, { owner: 'd1', slicing: { sliceMs: 0 } });
      const abort = new AbortController();
      let stopping: Promise<void> | undefined;
      let cut = -1;
      const probe = () => {
        if (!sliced.site.engine.hasPlan('day2')) return void setImmediate(probe);
        cut = sliced.changes.length;
        if (how === 'stop') stopping = sliced.site.stop();
        else abort.abort();
      };
      setImmediate(probe);
      const result = await sliced.site.submitPlanAsync(second, {
        owner: 'd2',
        slicing: { sliceMs: 0 },
        signal: abort.signal,
      });
      await stopping;
      should(result.count).be.above(0);
      should(cut).be.above(-1);
      // Stopped: the slices ended early; the rest is made as soon as something reads.
      if (how === 'stop') should(sliced.changes.length).be.below(sync.changes.length);
      should(sliced.site.engine.getCommands().map(commandToJSON)).eql(
        sync.site.engine.getCommands().map(commandToJSON),
      );
      should(sliced.site.engine.stats()).eql(sync.site.engine.stats());
      should(sliced.events).eql(sync.events);
      should(sliced.changes).eql(sync.changes);
      await sync.site.stop();
      if (how === 'abort') await sliced.site.stop();
    }
  });
});
