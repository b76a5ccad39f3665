import should from 'should';
import { type Adapter, AdapterRegistry } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, type CommandStatus, commandToJSON } from '../../src/commands';
import { convertSchedule } from '../../src/convert';
import { DispatchEngine, type EngineConfig, type PersistChange } from '../../src/engine';
import { type AnyBusEvent, EventBus } from '../../src/event-bus';
import { planOfConversion, readPlan, readPlanInChunks, type SchedulePlan } from '../../src/plans';
import { type DueCommandSink, Site } from '../../src/site';
import { MemoryStore } from '../../src/store';
import { FakeTimers } from '../helpers/fake-timers';
import { countTurns } from '../helpers/wait';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const M = 60_000;
const SLOT = 15 * M;

/** A schedule of `assets` EVs and one battery (charge/discharge), `slots` rows from `start`. */
function schedule(slots: number, assets: number, start = T0, seed = 1) {
  const rows: Record<string, unknown>[] = [];
  let x = seed;
  const rnd = () => {
    x = (x * 16807) % 2147483647;
    return x / 2147483647;
  };
  for (let i = 0; i < slots; i++) {
    const row: Record<string, unknown> = { timestamp: new Date(start + i * SLOT).toISOString() };
    for (let a = 0; a < assets; a++)
      row[`ev_${a}_kw`] = rnd() < 0.3 ? null : Math.round(rnd() * 4) * 3;
    row.battery_charge_kw = rnd() < 0.5 ? 5 : 0;
    row.battery_discharge_kw = rnd() < 0.5 ? 2 : 0;
    rows.push(row);
  }
  return rows;
}

function mapOf(assets: number): Record<string, string> {
  const m: Record<string, string> = { battery: 'bat' };
  for (let a = 0; a < assets; a++) m[`ev_${a}`] = `ev${a}`;
  return m;
}

function convert(id: string, rows: unknown, assets: number, now: number) {
  return convertSchedule(rows, {
    assetMap: mapOf(assets),
    scheduleId: id,
    now,
    horizonEnd: { fallbackKw: { '*': 0 } },
    slotSeconds: SLOT / 1000,
  });
}

function rig(config: Partial<EngineConfig> = {}) {
  const clock = new ManualClock(T0 - 5 * M);
  const bus = new EventBus({ clock });
  const engine = new DispatchEngine({
    eventBus: bus,
    adapterRegistry: new AdapterRegistry(),
    config,
    clock,
  });
  const events: string[] = [];
  bus.subscribe('*', (e: AnyBusEvent) => events.push(JSON.stringify([e.type, e.payload])));
  return { clock, engine, events };
}

const sorted = (cmds: Command[]) =>
  cmds.map((c) => JSON.stringify(commandToJSON(c))).sort((a, b) => a.localeCompare(b));

const privates = (e: DispatchEngine) => e as unknown as { tracked: Map<string, unknown> };

describe('DispatchEngine plans', () => {
  it('a plan behaves as its commands: hand-out order, events, answers, supersession, stats', () => {
    const a = rig({ maxRetries: 1, retryBaseSeconds: 60 });
    const b = rig({ maxRetries: 1, retryBaseSeconds: 60 });
    const one = (now: number) => convert('one', schedule(12, 4), 4, now);
    a.engine.submit(one(a.clock.now()).commands);
    const sub = b.engine.submitPlan(one(b.clock.now()));
    should(sub).eql({ scheduleId: 'one', count: one(0).changes.count, duplicate: false });
    // Nothing made yet: the rows are numbers until due.
    should(privates(b.engine).tracked.size).equal(0);
    should(b.engine.stats()).eql(a.engine.stats());
    should(b.events).eql(a.events);
    let step = 0;
    for (let t = T0; t < T0 + 14 * SLOT; t += 5 * M) {
      for (const r of [a, b]) r.clock.set(t);
      if (t === T0 + 5 * SLOT + 5 * M) {
        // Mid-plan, a newer schedule for two of the assets, from the next slot on.
        const two = (now: number) =>
          convertSchedule(schedule(4, 2, T0 + 6 * SLOT, 7), {
            assetMap: { ev_0: 'ev0', ev_1: 'ev1' },
            ignoreUnmapped: true,
            scheduleId: 'two',
            now,
          });
        a.engine.submit(two(t).commands);
        b.engine.submitPlan(two(t));
      }
      const dueA = a.engine.getPendingCommands();
      const dueB = b.engine.getPendingCommands();
      should(dueB.map((c) => c.id)).eql(dueA.map((c) => c.id));
      dueA.forEach((c, i) => {
        const d = dueB[i] as Command;
        a.engine.markDispatched(c);
        b.engine.markDispatched(d);
        // Every third fails once (a retry later), the others complete.
        const ok = (step++ + i) % 3 !== 0;
        a.engine.handleResponse(c, ok, ok ? null : 'busy');
        b.engine.handleResponse(d, ok, ok ? null : 'busy');
      });
      should(b.engine.stats()).eql(a.engine.stats());
      should(b.engine.nextWakeAt()).equal(a.engine.nextWakeAt());
    }
    should(b.events).eql(a.events);
    should(sorted(b.engine.getCommands())).eql(sorted(a.engine.getCommands()));
    // The run went through what it should compare: supersession, retries, expiry.
    const text = a.events.join('\n');
    for (const what of ['superseded by schedule two', 'retry in 60 s', 'expired: its slot ended'])
      should(text).containEql(what);
  });

  it('makes a row into its command only when due or read, and the same one every time', () => {
    const { engine, clock } = rig();
    const conv = convert('day', schedule(8, 2), 2, clock.now());
    engine.submitPlan(conv);
    const expected = conv.commands.map((c) => JSON.stringify(commandToJSON(c)));
    should(privates(engine).tracked.size).equal(0);
    should(engine.stats().pending).equal(conv.commands.length);
    const last = conv.commands.at(-1) as Command;
    const got = engine.getCommand(last.id) as Command;
    should(JSON.stringify(commandToJSON(got))).equal(JSON.stringify(commandToJSON(last)));
    should(engine.getCommand(last.id)).equal(got);
    // Reading one row made those before it for its asset, nothing of the other assets.
    const sameAsset = conv.commands.filter((c) => c.assetId === last.assetId).length;
    should(privates(engine).tracked.size).equal(sameAsset);
    should(engine.getInFlightCommands('ev0')).eql([]);
    should(privates(engine).tracked.size).equal(sameAsset); // counting in flight made nothing
    should(engine.getCommand('day:nobody:0')).be.undefined();
    should(engine.getCommand('day:ev0:9999')).be.undefined();
    should(sorted(engine.getCommands())).eql([...expected].sort((x, y) => x.localeCompare(y)));
    should(engine.stats().pending).equal(conv.commands.length);
  });

  it('prepareDue makes the rows due by then into commands ahead of time and returns them; the hand-out is the same', () => {
    const a = rig();
    const b = rig();
    const conv = convert('day', schedule(6, 3), 3, a.clock.now());
    a.engine.submitPlan(conv);
    b.engine.submitPlan(conv);
    const dueBy = conv.commands.filter((c) => c.scheduledAt.getTime() <= T0 + 3 * SLOT).length;
    should(dueBy).be.above(4);
    should(b.engine.prepareDue(T0 + 3 * SLOT)).have.length(dueBy);
    should(privates(b.engine).tracked.size).equal(dueBy);
    should(b.engine.stats()).eql(a.engine.stats());
    for (const t of [T0, T0 + SLOT, T0 + 2 * SLOT, T0 + 3 * SLOT, T0 + 4 * SLOT]) {
      a.clock.set(t);
      b.clock.set(t);
      should(b.engine.getPendingCommands().map((c) => c.id)).eql(
        a.engine.getPendingCommands().map((c) => c.id),
      );
    }
  });

  it('cuts a plan short when superseded: later rows cancelled, the last kept ends at the new start', () => {
    const { engine, clock, events } = rig();
    const ev = (start: number, values: number[], battery?: number) =>
      values.map((v, i) => ({
        timestamp: new Date(start + i * SLOT).toISOString(),
        ev_0_kw: v,
        ...(battery === undefined ? {} : { battery_charge_kw: battery }),
      }));
    const old = convertSchedule(ev(T0, [0, 2, 4, 6, 8, 10, 12, 14], 3), {
      assetMap: mapOf(1),
      scheduleId: 'old',
      now: clock.now(),
    });
    engine.submitPlan(old);
    const cut = T0 + 4 * SLOT + 7 * M;
    const fresh = convertSchedule(ev(cut, [1, 2]), {
      assetMap: { ev_0: 'ev0' },
      scheduleId: 'new',
      now: clock.now(),
    });
    engine.submitPlan(fresh);
    const ids = (status: string) =>
      engine
        .getCommands({ scheduleId: 'old', assetId: 'ev0', status: status as CommandStatus })
        .map((c) => c.id);
    should(ids('CANCELLED')).eql(['old:ev0:5', 'old:ev0:6', 'old:ev0:7']);
    should(engine.getCommand('old:ev0:5')?.lastError).equal('superseded by schedule new');
    should(ids('PENDING')).eql(['old:ev0:0', 'old:ev0:1', 'old:ev0:2', 'old:ev0:3', 'old:ev0:4']);
    should(engine.getCommand('old:ev0:4')?.validUntil?.getTime()).equal(cut);
    should(engine.getCommand('old:ev0:3')?.validUntil?.getTime()).equal(T0 + 4 * SLOT);
    should(events.filter((e) => e.includes('"COMMAND_CANCELLED"'))).have.length(3);
    // The battery of the old plan is not in the new one: untouched.
    should(engine.getCommand('old:bat:0')?.status).equal('PENDING');
    should(engine.stats().pending).equal(old.changes.count - 3 + fresh.changes.count);
  });

  it('a superseded plan beyond maxFinishedCommands makes no object for the rows it drops', () => {
    const { engine, clock, events } = rig({ maxFinishedCommands: 5 });
    const first = convert('a', schedule(40, 6, T0, 11), 6, clock.now());
    engine.submitPlan(first);
    const second = convert('b', schedule(40, 6, T0, 12), 6, clock.now());
    engine.submitPlan(second);
    // Every row of `a` was cancelled (events for all), 5 of them kept as finished commands.
    should(events.filter((e) => e.includes('"COMMAND_CANCELLED"'))).have.length(
      first.changes.count,
    );
    should(engine.stats().byStatus.CANCELLED).equal(5);
    should(privates(engine).tracked.size).equal(5);
    should(engine.stats().pending).equal(second.changes.count);
    should(engine.hasPlan('a')).be.false();
  });

  it('re-delivery of the same plan is recognised; other rows under the same id are refused', () => {
    const { engine, clock } = rig();
    const conv = convert('day', schedule(6, 2), 2, clock.now());
    engine.submitPlan(conv);
    should(engine.submitPlan(conv).duplicate).be.true();
    const other = convert('day', schedule(6, 2, T0, 99), 2, clock.now());
    should(() => engine.submitPlan(other)).throw(
      /schedule day is already registered with other content/,
    );
    // Once every row is a command (the plan used up), still recognised from the commands.
    engine.getCommands();
    should(engine.hasPlan('day')).be.false();
    should(engine.submitPlan(planOfConversion(conv)).duplicate).be.true();
    should(() => engine.submitPlan(other)).throw(/already registered with other content/);
  });

  it('refuses a bad plan, naming what is wrong, and changes nothing', () => {
    const { engine, clock } = rig();
    const good = planOfConversion(convert('day', schedule(4, 1), 1, clock.now()));
    const bad = (patch: Partial<SchedulePlan>) => () => engine.submitPlan({ ...good, ...patch });
    should(bad({ scheduleId: '' })).throw(/plan\.scheduleId: must be a non-empty string/);
    should(bad({ slot: [0] })).throw(/plan\.slot: has 1 entries, but the assets' counts add up to/);
    should(bad({ valueKw: Array.from(good.valueKw, () => -3) })).throw(
      /plan\.valueKw\[0\]: must be a number \(kW\) within 0 and/,
    );
    should(bad({ times: [3, 2, 1] })).throw(/plan\.times\[1\]/);
    should(() => engine.submitPlan(null as never)).throw(/plan: must be a schedule plan object/);
    should(engine.stats().total).equal(0);
  });

  it('cancelPending cancels planned rows too; with maxFinishedCommands the rest are returned only', () => {
    const { engine, clock } = rig({ maxFinishedCommands: 3 });
    const conv = convert('day', schedule(10, 2), 2, clock.now());
    engine.submitPlan(conv);
    const one = engine.cancelPending({ assetId: 'ev1' }, 'by hand');
    should(one.map((c) => c.id)).eql(
      conv.commands.filter((c) => c.assetId === 'ev1').map((c) => c.id),
    );
    should(one.every((c) => c.status === 'CANCELLED' && c.lastError === 'by hand')).be.true();
    const rest = engine.cancelPending({}, 'reset');
    should(one.length + rest.length).equal(conv.commands.length);
    should(engine.stats()).have.properties({ pending: 0, finished: 3 });
  });

  it('persists plans in columnar form and restores them, past the rows already made', () => {
    const { engine, clock } = rig();
    const conv = convert('day', schedule(8, 2), 2, clock.now());
    engine.submitPlan(conv);
    clock.set(T0 + SLOT);
    const due = engine.getPendingCommands();
    for (const c of due) {
      engine.markDispatched(c);
      engine.handleResponse(c, true);
    }
    const doc = JSON.parse(JSON.stringify(engine.toJSON()));
    should(doc.plans).have.length(1);
    should(doc.plans[0].slot.length).be.below(conv.changes.count);
    should(doc.commands.length).equal(privates(engine).tracked.size);
    const restored = DispatchEngine.restore(doc, { clock });
    should(sorted(restored.getCommands())).eql(sorted(engine.getCommands()));
    should(JSON.stringify(restored.toJSON())).equal(JSON.stringify(engine.toJSON()));
    // A plan saved before its rows were made: the rows restored as still planned.
    const { engine: e2, clock: c2 } = rig();
    e2.submitPlan(conv);
    const fresh = DispatchEngine.restore(JSON.parse(JSON.stringify(e2.toJSON())), { clock: c2 });
    should(fresh.stats().pending).equal(conv.changes.count);
    should(privates(fresh).tracked.size).equal(0);
    should(fresh.hasScheduleId('day')).be.true();
  });

  it('restores old documents (commands only), and reports a bad plan but keeps the rest', () => {
    const { engine, clock } = rig();
    const conv = convert('day', schedule(4, 1), 1, clock.now());
    engine.submit(conv.commands);
    const old = JSON.parse(JSON.stringify(engine.toJSON()));
    should(old.plans).be.undefined();
    should(sorted(DispatchEngine.restore(old, { clock }).getCommands())).eql(
      sorted(engine.getCommands()),
    );
    const problems: string[] = [];
    const withBad = { ...old, plans: [{ scheduleId: 'x', assets: 3 }] };
    const r = DispatchEngine.restore(withBad, { clock }, (p) => problems.push(JSON.stringify(p)));
    should(problems).have.length(1);
    should(problems[0]).match(/plans\[0\]/);
    should(r.stats().total).equal(conv.commands.length);
  });

  it('onPersist: p:<scheduleId> when a plan is registered, cut short and used up', () => {
    const { engine, clock } = rig();
    const seen: { key: string; rows: number | undefined }[] = [];
    engine.onPersist((c: PersistChange) => {
      if (!c.key.startsWith('p:')) return; // (`meta`, `c:<id>`: the engine's other entries)
      const v = c.value() as SchedulePlan | undefined;
      seen.push({ key: c.key, rows: v?.slot.length });
    });
    const conv = convert('day', schedule(6, 1), 1, clock.now());
    engine.submitPlan(conv);
    should(seen).eql([{ key: 'p:day', rows: conv.changes.count }]);
    engine.cancelPending({ assetId: 'ev0' });
    should(seen.at(-1)?.key).equal('p:day');
    engine.cancelPending({});
    should(seen.at(-1)).eql({ key: 'p:day', rows: undefined });
  });

  it('readPlanInChunks lets the event loop run between chunks and reads what readPlan reads', async () => {
    const { engine, clock } = rig();
    const conv = convert('big', schedule(96, 1000), 1000, clock.now());
    const plan = planOfConversion(conv);
    should(plan.slot.length).be.above(40_000);
    // Other work (here: a chain of setImmediate) runs while the plan is read.
    const turns = countTurns();
    // sliceMs 0: a turn at every checkpoint (with the default 8 ms a fast machine may read it
    // all in one slice, and the test would depend on its speed).
    const stored = await readPlanInChunks(plan, 'plan', { sliceMs: 0 });
    turns.stop();
    should(turns.turns).be.above(1);
    should(stored.toJSON()).eql(readPlan(planOfConversion(conv)).toJSON());
    // The stored plan has its own arrays: changing the input afterwards changes nothing.
    (plan.valueKw as Float64Array)[0] = 99;
    should(stored.valueKw[0]).not.equal(99);
    engine.submitPlan(stored);
    should(engine.stats().pending).equal(conv.changes.count);
    await should(readPlanInChunks({ ...plan, until: [1] })).be.rejectedWith(
      /plan\.until: has 1 entries/,
    );
  });

  it('receiveSchedule makes no command objects, and the site flow takes the plan', () => {
    const { engine } = rig();
    const conv = engine.receiveSchedule(schedule(96, 50), {
      assetMap: mapOf(50),
      slotSeconds: 900,
    });
    const sub = engine.submitPlan(conv);
    should(sub.count).equal(conv.changes.count);
    should(privates(engine).tracked.size).equal(0);
  });
});

describe('Site.submitPlan', () => {
  class Sink implements DueCommandSink {
    readonly delivered: string[] = [];
    deliver(cmd: Command) {
      this.delivered.push(cmd.id);
    }
    undeliverable() {}
  }
  const adapter: Adapter = { protocol: 'test', dispatch: () => undefined };
  const rows = (start: number) =>
    [0, 1, 2, 3].map((i) => ({
      timestamp: new Date(start + i * SLOT).toISOString(),
      ev_0_kw: i + 1,
      ev_1_kw: 10 + i,
    }));

  it('hands the rows to the plan’s dispatcher; the plan and its dispatcher survive a restart', async () => {
    const store = new MemoryStore();
    const open = () => {
      const clock = new ManualClock(T0 - M);
      const timers = new FakeTimers(clock);
      const site = new Site({ siteId: 's', clock, timers, store, autoDispatch: false });
      for (const a of ['ev0', 'ev1']) site.adapterRegistry.register(a, adapter);
      const d1 = new Sink();
      const d2 = new Sink();
      site.attachDispatcher('d1', d1);
      site.attachDispatcher('d2', d2);
      site.start();
      return { site, timers, d1, d2 };
    };
    const first = open();
    const conv = convertSchedule(rows(T0), {
      assetMap: { ev_0: 'ev0', ev_1: 'ev1' },
      scheduleId: 'day',
      now: T0 - M,
    });
    should(first.site.submitPlan(conv, 'd2')).eql({
      scheduleId: 'day',
      count: 8,
      duplicate: false,
    });
    await first.timers.advanceTo(T0);
    should(first.d2.delivered).eql(['day:ev0:0', 'day:ev1:0']);
    should(first.d1.delivered).eql([]);
    for (const id of first.d2.delivered) first.site.respond(id, true);
    await first.site.save();
    await first.site.stop();
    const doc = store.doc as { planOwners?: Record<string, string>; engine: { plans?: unknown[] } };
    should(doc.planOwners).eql({ day: 'd2' });
    should(doc.engine.plans).have.length(1);
    const second = open();
    await second.timers.advanceTo(T0 + SLOT);
    should(second.d2.delivered).eql(['day:ev0:1', 'day:ev1:1']);
    should(second.d1.delivered).eql([]);
    should(second.site.engine.getCommand('day:ev0:0')?.status).equal('COMPLETED');
    await second.site.stop();
  });
});
