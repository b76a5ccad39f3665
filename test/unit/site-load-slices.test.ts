/**
 * A Site that loads its saved state in slices (`load: 'in-slices'`, `Site.open`): the same
 * state as a load at once, on real journal files; what waits for it (the loop, inOrder, the
 * async forms, re-applies, saves) and what is refused meanwhile; a site stopped while it
 * loads; a state that cannot be read.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import type { Adapter } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import type { Command } from '../../src/commands';
import { JournalStore } from '../../src/journal';
import { type DueCommandSink, Site, type SiteOptions } from '../../src/site';
import { FileStore, PartialRestoreError, StoreCorruptError } from '../../src/store';
import { FakeTimers } from '../helpers/fake-timers';
import { evConversion, M, SLOT, T0 } from '../helpers/plan-site';

const answers: Adapter = { protocol: 'test', dispatch: () => ({ success: true }) };

class Sink implements DueCommandSink {
  readonly delivered: Command[] = [];
  deliver(cmd: Command) {
    this.delivered.push(cmd);
  }
  undeliverable() {}
}

let dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-load-'));
  dirs.push(d);
  return d;
};

function site(dir: string, clock: ManualClock, extra: Partial<SiteOptions> = {}) {
  const errors: Error[] = [];
  const timers = new FakeTimers(clock);
  const s = new Site({
    siteId: 'depot',
    clock,
    timers,
    store: new JournalStore(dir),
    onError: (e) => errors.push(e),
    ...extra,
  });
  return { site: s, timers, errors };
}

/** Event-loop turns (setImmediate) while `p` runs. */
async function turnsWhile<T>(p: Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = () => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const value = await p;
  done = true;
  return { value, turns };
}

/**
 * A journal in `dir` holding: a plan of 40 EVs x 8 slots from dispatcher d1 (its first slot
 * answered), commands of d2 (one left in flight, one finished, one PENDING), ev0 FAULTED,
 * ev1 UNAVAILABLE; the clock then moved on a slot.
 */
async function savedState(dir: string): Promise<ManualClock> {
  const clock = new ManualClock(T0 - 10 * M);
  const { site: a, timers } = site(dir, clock, { autoDispatch: true });
  for (let i = 0; i < 40; i++) a.serve(answers, [`ev${i}`], 'ev-charger', 'ocpp');
  a.serve({ protocol: 'test', dispatch: () => undefined }, ['slow'], 'ev-charger', 'ocpp');
  a.serve(answers, ['steady'], 'ev-charger', 'ocpp');
  a.ensureStateMachine('ev0', 'ev-charger').trigger('fault');
  a.ensureStateMachine('ev1', 'ev-charger').trigger('disable');
  a.start();
  a.submitPlan(evConversion('plan', 40, 8, T0), 'd1');
  a.submit(
    [
      { id: 'steady', assetId: 'steady', type: 'SET_CHARGE_RATE', valueKw: 5, scheduledAt: T0 },
      { id: 'in-flight', assetId: 'slow', type: 'SET_CHARGE_RATE', valueKw: 4, scheduledAt: T0 },
      {
        id: 'later',
        assetId: 'ev39',
        type: 'SET_CHARGE_RATE',
        valueKw: 2,
        scheduledAt: T0 + 3 * SLOT,
      },
    ],
    'd2',
  );
  // Enough commands for a load of many checkpoints (one every few hundred entries).
  const bulk = [];
  for (let i = 0; i < 3000; i++) {
    const scheduledAt = T0 + (2 + (i % 5)) * SLOT;
    bulk.push({
      id: `bulk${i}`,
      assetId: `b${i % 60}`,
      type: 'SET_CHARGE_RATE',
      valueKw: i % 7,
      scheduledAt,
    });
  }
  a.submit(bulk as never, 'd2');
  await timers.advanceTo(T0 + M);
  await a.stop();
  clock.set(T0 + SLOT + M);
  return clock;
}

describe('Site loading in slices', () => {
  afterEach(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    dirs = [];
  });

  it('loads the state a load at once gives, over many turns, and journals the same', async () => {
    const dir = tmp();
    const clock = await savedState(dir);
    const copy = `${dir}-copy`;
    dirs.push(copy);
    fs.cpSync(dir, copy, { recursive: true });
    const once = site(dir, clock);
    should(once.site.loading).be.false();
    const sliced = site(copy, clock, { load: 'in-slices', loadSlicing: { sliceMs: 0 } });
    should(sliced.site.loading).be.true();
    should(sliced.site.engine.stats().pending).equal(0); // nothing yet
    // What the restore itself changes (expired, timed out) is not published, as at once
    // (where nothing can have subscribed yet).
    const events: string[] = [];
    sliced.site.eventBus.subscribe('*', (e) => events.push(e.type));
    const { turns } = await turnsWhile(sliced.site.loaded);
    should(sliced.site.loading).be.false();
    should(turns).be.above(5); // a checkpoint every few hundred entries, each its own turn
    should(sliced.site.loadError).be.null();
    should(events).eql([]);
    const a = once.site.toJSON();
    const b = sliced.site.toJSON();
    should(b.engine.commands.length).be.above(40);
    should(b).eql(a);
    should(sliced.site.engine.getCommand('in-flight')?.lastError).match(
      /no answer before the restart/,
    );
    // What each restore changed is journaled: both sets of files load to the same state.
    await once.site.stop();
    await sliced.site.stop();
    const again = (d: string) => {
      const s = site(d, clock).site;
      const json = s.toJSON();
      void s.stop();
      return json;
    };
    should(again(copy)).eql(again(dir));
    should(once.errors).eql([]);
    should(sliced.errors).eql([]);
  });

  it('while it loads: the loop, inOrder, the async forms and re-applies wait; the sync forms say why they cannot', async () => {
    const dir = tmp();
    const clock = await savedState(dir);
    const { site: s, timers } = site(dir, clock, {
      load: 'in-slices',
      loadSlicing: { sliceMs: 0 },
    });
    for (let i = 0; i < 40; i++) s.serve(answers, [`ev${i}`], 'ev-charger', 'ocpp');
    const sink = new Sink();
    s.attachDispatcher('d1', sink);
    s.start();
    // A machine that nothing changed takes its saved state; one a device changed keeps it.
    const ev0 = s.ensureStateMachine('ev0', 'ev-charger');
    const ev1 = s.ensureStateMachine('ev1', 'ev-charger');
    ev1.trigger('plug_in');
    should(s.reapply('ev2', 'reconnected')).eql([]);
    // A measurement meanwhile finds no setpoint in force (the engine is empty)...
    should(s.measured('steady', { kind: 'ev-limit', kw: 5 })).equal('unknown');
    should(() => s.submit({ assetId: 'ev3', type: 'SET_CHARGE_RATE', valueKw: 1 })).throw(
      /site depot is still loading its saved state: submit waits until site\.loaded/,
    );
    should(() => s.receiveSchedule([], { assetMap: {} })).throw(/still loading/);
    const counted = s.inOrder(() => s.engine.stats().pending);
    await timers.advanceTo(clock.now() + 5);
    should(sink.delivered).eql([]);
    should(await counted).be.above(0); // ran once the state was there
    should(s.loading).be.false();
    should(ev0.currentState).equal('FAULTED');
    should(ev1.currentState).equal('PREPARING');
    // ... and the next one after it finds the restored one.
    should(s.measured('steady', { kind: 'ev-limit', kw: 5 })).not.equal('unknown');
    // The re-apply asked for while loading was made after it, from the restored setpoint.
    const reapplied = s.engine
      .getCommands({ assetId: 'ev2' })
      .filter((c) => c.reapplyOf !== undefined);
    should(reapplied).have.length(1);
    // The loop runs now: the due commands (the plan's second slot) go out.
    await timers.advanceTo(clock.now() + 2000);
    should(sink.delivered.length).be.above(0);
    await s.stop();
  });

  it('stopped while it loads: stops loading and writes nothing over the saved state', async () => {
    const dir = tmp();
    const clock = await savedState(dir);
    const before = Object.fromEntries(
      fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]),
    );
    const { site: s } = site(dir, clock, { load: 'in-slices', loadSlicing: { sliceMs: 0 } });
    s.start();
    await new Promise((r) => setImmediate(r));
    s.ensureStateMachine('ev5', 'ev-charger').trigger('fault'); // a change to journal
    await s.stop();
    await s.loaded;
    const after = Object.fromEntries(
      fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]),
    );
    should(after).eql(before);
    await s.save(); // refused quietly: its state is not all there
    should(fs.readdirSync(dir).sort()).eql(Object.keys(before).sort());
  });

  it('the records of what the restore changed go out over several turns before it ends', async () => {
    // 3,000 commands whose slot ends before the restart: the restore expires them all, and
    // their records are handed to the journal in steps (one turn held ~70 ms at 40,000).
    const dir = tmp();
    const clock = new ManualClock(T0 - 10 * M);
    const a = site(dir, clock).site;
    const cmds = [];
    for (let i = 0; i < 3000; i++) {
      const scheduledAt = T0 + (i % 4) * SLOT;
      cmds.push({
        id: `x${i}`,
        assetId: `b${i % 50}`,
        type: 'SET_CHARGE_RATE',
        valueKw: 1 + (i % 7),
        scheduledAt,
        validUntil: scheduledAt + SLOT,
      });
    }
    a.submit(cmds as never, 'd1');
    await a.stop();
    clock.set(T0 + 5 * SLOT);
    const store = new JournalStore(dir);
    const errors: Error[] = [];
    const s = new Site({
      siteId: 'depot',
      clock,
      timers: new FakeTimers(clock),
      store,
      load: 'in-slices',
      loadSlicing: { sliceMs: 0 },
      onError: (e) => errors.push(e),
    });
    // The journal's records count, at each turn while the site still loads.
    const seen = new Set<number>();
    let done = false;
    const tick = () => {
      if (done) return;
      if (s.loading) seen.add(store.stats.records);
      setImmediate(tick);
    };
    setImmediate(tick);
    await s.loaded;
    done = true;
    should(s.engine.stats().pending).equal(0);
    const written = [...seen].filter((n) => n > 0);
    // Records written at several turns while it still loads (before: none until it ended,
    // then all of them handed over in one turn).
    should(written.length).be.above(2);
    await s.stop();
    // What the journal holds is the restored state: a load at once of its files reads the
    // 3,000 as expired, owners forgotten.
    const again = site(dir, clock).site;
    const json = again.toJSON();
    should(json.engine.commands.filter((c) => c.status === 'CANCELLED')).have.length(3000);
    should(json.owners).eql({});
    await again.stop();
    should(errors).eql([]);
  });

  it('a state that cannot be read: the same error as at once, the file set aside', async () => {
    const dir = tmp();
    const file = path.join(dir, 'state.json');
    fs.writeFileSync(
      file,
      `{"format": "qubit-energy/site", "version": 1, "engine": {"commands": [${'{"id":"x"},'.repeat(10_000)}`,
    );
    const errors: Error[] = [];
    const s = await Site.open({
      siteId: 'depot',
      store: new FileStore(file),
      onError: (e) => errors.push(e),
    });
    should(s.loadError).be.instanceOf(StoreCorruptError);
    should(s.loadError?.message).match(/is not valid JSON.*moved it to .*state\.json\.corrupt-/);
    should(fs.existsSync(file)).be.false();
    should(s.engine.stats().pending).equal(0);
    await s.stop();
  });

  it('a bad entry: left out and listed (PartialRestoreError), the rest restored, as at once', async () => {
    const dir = tmp();
    const clock = await savedState(dir);
    // A record in the middle of the journal that is not one.
    const seg = fs.readdirSync(dir).find((f) => f.startsWith('journal-')) as string;
    const lines = fs.readFileSync(path.join(dir, seg), 'utf8').split('\n');
    lines.splice(2, 0, '["s","c:broken"');
    fs.writeFileSync(path.join(dir, seg), lines.join('\n'));
    const copy = `${dir}-copy`;
    dirs.push(copy);
    fs.cpSync(dir, copy, { recursive: true });
    const once = site(dir, clock).site;
    const sliced = site(copy, clock, { load: 'in-slices' }).site;
    await sliced.loaded;
    should(sliced.loadError).be.instanceOf(PartialRestoreError);
    const problems = (e: Error | null) => (e as PartialRestoreError).problems;
    should(problems(sliced.loadError)).eql(problems(once.loadError));
    should(sliced.toJSON()).eql(once.toJSON());
    await once.stop();
    await sliced.stop();
  });
});
