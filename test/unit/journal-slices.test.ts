/**
 * The journal's work in slices (issue 17): a plan's large `p:` record captured at its turn
 * and written over several turns, the records after it behind it; snapshots compacted from
 * the journal's own files while records keep coming. `sliceMs: 0` makes every turn write
 * one piece, so the tests see the in-between states without depending on the clock.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import type { Adapter } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { DispatchEngine, type PersistChange } from '../../src/engine';
import { JournalStore } from '../../src/journal';
import { Site, type SiteJSON } from '../../src/site';
import { FileStore } from '../../src/store';
import { FakeTimers } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const SLOT = 900 * S;
const ASSETS = 120; // x 96 slots: 11,520 rows, more than one piece per column
const adapter: Adapter = { protocol: 'test', dispatch: () => undefined };
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'qe-journal-slices-'));
const turn = () => new Promise<void>((r) => setImmediate(r));

function make(store: JournalStore | FileStore) {
  const clock = new ManualClock(T0);
  const timers = new FakeTimers(clock);
  const site = new Site({
    siteId: 'depot',
    clock,
    timers,
    store,
    config: { maxFinishedCommands: 50, commandTimeoutSeconds: 30, maxRetries: 1 },
    onError: () => {},
  });
  const assetMap: Record<string, string> = {};
  for (let a = 0; a < ASSETS; a++) {
    site.adapterRegistry.register(`ev${a}`, adapter);
    assetMap[`a${a}`] = `ev${a}`;
  }
  return { site, clock, timers, assetMap };
}

/** A schedule of `assets` x 96 slots from `from`, every value new every slot. */
function schedule(from: number, base: number, assets = ASSETS) {
  return Array.from({ length: 96 }, (_, i) => {
    const row: Record<string, unknown> = { timestamp: new Date(from + i * SLOT).toISOString() };
    for (let a = 0; a < assets; a++) row[`ev_a${a}_kw`] = base + ((a + i) % 7) + 0.5;
    return row;
  });
}

/** The document without the time it was built at. */
function comparable(doc: unknown): unknown {
  const d = JSON.parse(JSON.stringify(doc)) as SiteJSON;
  (d.engine as { savedAt?: string }).savedAt = '';
  d.siteId = '';
  return d;
}

/**
 * A copy of the journal's files as they are now: what a kill -9 now would leave. A worker
 * thread may rename or drop a file while it is copied: then the copy is taken again.
 */
function killCopy(dir: string): string {
  for (;;) {
    const copy = tmp();
    try {
      for (const name of fs.readdirSync(dir))
        fs.copyFileSync(path.join(dir, name), path.join(copy, name));
      return copy;
    } catch (err) {
      fs.rmSync(copy, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

describe('JournalStore in slices', () => {
  it("gives a plan's JSON in pieces, as toJSON gave it when asked, whatever happens after", async () => {
    const m = make(new JournalStore(tmp()));
    const { site, clock, timers, assetMap } = m;
    let change: PersistChange | null = null;
    site.engine.onPersist((c) => {
      if (c.key === 'p:day') change = c;
    });
    site.submitPlan(site.receiveSchedule(schedule(T0, 1), { scheduleId: 'day', assetMap }));
    // Some rows made into commands, some cut short by a newer plan for a few assets.
    await timers.advanceTo(T0 + 2 * SLOT);
    const cut: Record<string, string> = {};
    for (let a = 0; a < 5; a++) cut[`a${a}`] = `ev${a}`;
    site.submitPlan(
      site.receiveSchedule(schedule(T0 + 40 * SLOT, 9, 5), { scheduleId: 'next', assetMap: cut }),
    );
    const p = change as unknown as PersistChange;
    const before = JSON.stringify(p.value());
    const pieces = p.json?.() as Iterator<string>;
    should(pieces).be.ok();
    // Changes after the call: more rows made into commands, the rest cut by another plan.
    await timers.advanceTo(T0 + 10 * SLOT);
    site.submitPlan(
      site.receiveSchedule(schedule(T0 + 20 * SLOT, 3), { scheduleId: 'late', assetMap }),
    );
    const parts: string[] = [];
    for (let r = pieces.next(); !r.done; r = pieces.next()) parts.push(r.value);
    should(parts.length).be.above(6);
    should(parts.join('')).equal(before);
    should(JSON.stringify(p.value())).not.equal(before);
    // Once the plan is used up or superseded, its record is a removal.
    site.engine.cancelPending();
    should(site.engine.hasPlan('day')).be.false();
    should(p.json?.()).be.null();
    should(p.value()).be.undefined();
    should(clock.now()).be.above(T0);
    await site.stop();
  });

  it('writes a large plan record over turns, the records after it behind it; a kill meanwhile loses only what was not written', async () => {
    const dir = tmp();
    const store = new JournalStore(dir, { sliceMs: 0 });
    const m = make(store);
    store.load();
    const { site, timers, assetMap } = m;
    site.submit({
      id: 'first',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      scheduledAt: T0 + 5 * S,
    });
    while (store.backlog > 0) await turn();
    site.submitPlan(
      site.receiveSchedule(schedule(T0 + SLOT, 1), { scheduleId: 'day', assetMap }),
      'd1',
    );
    await turn();
    should(store.backlog).be.above(0);
    // While it is written: a row falls due and is made a command, another command comes.
    await timers.advanceTo(T0 + SLOT);
    site.engine.markDispatched('day:ev3:0');
    site.submit({
      id: 'late',
      assetId: 'ev2',
      type: 'SET_CHARGE_RATE',
      valueKw: 4,
      scheduledAt: T0 + 9 * S,
    });
    let torn = 0;
    while (store.backlog > 0) {
      // A kill now: the files load to what was whole; while the plan's record is being
      // written (its torn line dropped), nothing of what came after it.
      const copy = new JournalStore(killCopy(dir));
      const doc = copy.load() as SiteJSON;
      should(copy.problems).eql([]);
      const ids = doc.engine.commands.map((c) => c.id);
      should(ids).containEql('first');
      if (doc.engine.plans === undefined) {
        torn++;
        should(copy.warnings.length).be.belowOrEqual(1);
        should(ids).not.containEql('late');
        should(ids).not.containEql('day:ev3:0');
      }
      await turn();
    }
    should(torn).be.above(5);
    const lines = fs
      .readFileSync(
        path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.log')) as string),
        'utf8',
      )
      .split('\n');
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    should(at('["s","p:day"')).be.above(at('["n","first"'));
    should(at('["n","day:ev3:0"')).be.above(at('["s","p:day"'));
    should(at('["n","late"')).be.above(at('["s","p:day"'));
    const again = new JournalStore(dir);
    const doc = again.load() as SiteJSON;
    should(again.problems).eql([]);
    // The plan's record holds the rows as they were at its turn; rows made into commands
    // since are skipped on restore (no p: record for them): restored, both are the same.
    const restored = (d: SiteJSON) =>
      comparable({
        engine: DispatchEngine.restore(d.engine, {
          clock: new ManualClock(m.clock.now()),
        }).toJSON(),
      });
    should(restored(doc)).eql(restored(site.toJSON()));
    should(doc.owners).eql(site.toJSON().owners);
    should(doc.planOwners).eql(site.toJSON().planOwners);
    await site.stop();
  });

  for (const snapshotWorker of [true, false])
    it(`compacts its own files into a snapshot ${snapshotWorker ? 'in a worker thread' : 'on the loop, in slices,'} while records keep coming; a kill at any turn leaves files that load to the live state`, async () => {
      const dir = tmp();
      const store = new JournalStore(dir, { sliceMs: 0, snapshotWorker });
      const m = make(store);
      store.load();
      const { site } = m;
      const submit = (i: number) =>
        site.submit(
          Array.from({ length: 300 }, (_, k) => ({
            id: `s${i}-${k}`,
            assetId: `ev${k % ASSETS}`,
            type: 'SET_CHARGE_RATE' as const,
            valueKw: 1 + (k % 9),
            scheduledAt: T0 + 3600 * S + k * S,
          })),
          'd1',
        );
      submit(0);
      submit(1);
      while (store.backlog > 0) await turn();
      let done = false;
      let builtLive = 0;
      const toJSON = site.toJSON.bind(site);
      site.toJSON = () => {
        builtLive++;
        return toJSON();
      };
      const saving = site.save().then(() => {
        done = true;
      });
      let turns = 0;
      while (!done) {
        // Records arriving during the snapshot.
        if (turns === 1) submit(2);
        if (turns === 3) site.engine.markDispatched('s0-7');
        if (turns === 5) site.engine.handleResponse('s0-7', true);
        if (turns === 7) site.engine.cancel('s1-3', 'by hand');
        store.flush(); // what the site knows, written: a kill now must keep all of it
        const copy = new JournalStore(killCopy(dir));
        should(comparable(copy.load())).eql(comparable(toJSON()));
        should(copy.problems).eql([]);
        turns++;
        await turn();
      }
      await saving;
      should(turns).be.above(3);
      should(builtLive).equal(0); // the snapshot came from the files, not from the live site
      site.engine.markDispatched('s2-5');
      store.flush();
      const files = fs.readdirSync(dir).sort();
      should(files.filter((f) => f.startsWith('snapshot-'))).have.length(1);
      should(files.filter((f) => f.endsWith('.log'))).have.length(1);
      should(files.filter((f) => f.includes('.tmp-'))).have.length(0);
      const again = new JournalStore(dir);
      should(comparable(again.load())).eql(comparable(toJSON()));
      should(again.problems).eql([]);
      should(store.stats).match({ snapshots: 1, workerSnapshots: snapshotWorker ? 1 : 0 });
      await site.stop();
    });

  it('cuts a large record whose write failed off the segment, reports it, and goes on with the next records', async () => {
    const dir = tmp();
    const errors: Error[] = [];
    const store = new JournalStore(dir, { sliceMs: 0, onError: (e) => errors.push(e) });
    const m = make(store);
    store.load();
    const { site, assetMap } = m;
    site.submitPlan(
      site.receiveSchedule(schedule(T0 + SLOT, 1), { scheduleId: 'day', assetMap }),
      'd1',
    );
    await turn();
    await turn();
    should(store.backlog).be.above(0);
    // The segment's descriptor closed behind its back: the next piece's write fails (EBADF).
    fs.closeSync((store as unknown as { fd: number }).fd);
    await turn();
    should(errors).have.length(1);
    should(errors[0]?.message).match(/EBADF.*\(and the record p:day\) are not saved/);
    (store as unknown as { fd: number | null }).fd = null; // a new descriptor next time
    site.submit({
      id: 'after',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      scheduledAt: T0 + 5 * S,
    });
    while (store.backlog > 0) await turn();
    const again = new JournalStore(dir);
    const doc = again.load() as SiteJSON;
    should(again.problems).eql([]);
    should(again.warnings).eql([]);
    should(doc.engine.plans).be.undefined();
    should(doc.engine.commands.map((c) => c.id)).containEql('after');
    await site.stop();
  });

  it('compacts a journal holding large plan records, and compacts after a restore too', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    store.load();
    const { site, timers, assetMap } = m;
    site.submitPlan(
      site.receiveSchedule(schedule(T0 + SLOT, 1), { scheduleId: 'day', assetMap }),
      'd1',
    );
    await timers.advanceTo(T0 + 2 * SLOT);
    for (const c of site.engine.getPendingCommands()) site.engine.markDispatched(c);
    while (store.backlog > 0) await turn();
    const before = new JournalStore(killCopy(dir)).load();
    await store.compact();
    const files = fs.readdirSync(dir);
    should(files.filter((f) => f.startsWith('snapshot-'))).have.length(1);
    should(comparable(new JournalStore(dir).load())).eql(comparable(before));
    await site.stop();

    // Restored: the restore's own changes are journaled, so its first save compacts too.
    const counted = new JournalStore(dir);
    const calls: string[] = [];
    const save = counted.save.bind(counted);
    const compact = counted.compact.bind(counted);
    counted.save = (doc) => {
      calls.push('save');
      return save(doc);
    };
    counted.compact = () => {
      calls.push('compact');
      return compact();
    };
    const r = make(counted);
    await r.site.save();
    await r.site.save();
    should(calls).eql(['compact', 'compact']);
    await r.site.stop();
  });

  it('journals what a restore changed (expired, timed out, trimmed, owners): a kill at any turn restores the same, and the first snapshot is compacted from the files', async () => {
    const dir = tmp();
    const store = new JournalStore(dir, { sliceMs: 0 });
    const m = make(store);
    store.load();
    const at = T0 + 20 * 60 * S; // the restart
    const cmds = (prefix: string, n: number, validUntil: number) =>
      Array.from({ length: n }, (_, k) => ({
        id: `${prefix}${k}`,
        assetId: `ev${k % ASSETS}`,
        type: 'SET_CHARGE_RATE' as const,
        valueKw: 1 + (k % 9),
        scheduledAt: T0 + 5 * S + k,
        validUntil,
      }));
    m.site.submit(cmds('x', 200, T0 + 10 * 60 * S), 'd1'); // expire at the restore
    m.site.submit(cmds('k', 100, T0 + 24 * 3600 * S), 'd2'); // kept pending
    m.site.submit(cmds('f', 20, T0 + 24 * 3600 * S), 'd3'); // in flight: retried
    m.site.submit(cmds('g', 20, at + 1), 'd4'); // in flight: no time left to retry
    for (let k = 0; k < 20; k++) {
      m.site.engine.markDispatched(`f${k}`);
      m.site.engine.markDispatched(`g${k}`);
    }
    // A plan of 8 assets, its first two slots' rows made into commands before the kill.
    m.site.submitPlan(
      m.site.receiveSchedule(schedule(T0, 1, 8), { scheduleId: 'day', assetMap: m.assetMap }),
      'd5',
    );
    while (store.backlog > 0) await turn(); // its record: all its rows
    m.clock.set(T0 + 16 * 60 * S);
    m.site.engine.getPendingCommands();
    should(m.site.engine.getCommand('day:ev3:1')?.status).equal('PENDING');
    while (store.backlog > 0) await turn();
    await m.site.stop();

    // Restarted 20 minutes later: 200 expire, 20 time out, the finished beyond 50 trimmed.
    // The restore runs in the constructor, at the clock's time.
    const restarted = (d: string, sliceMs?: number) => {
      const c = new ManualClock(at);
      const site = new Site({
        siteId: 'depot',
        clock: c,
        timers: new FakeTimers(c),
        store: new JournalStore(d, sliceMs === undefined ? {} : { sliceMs }),
        config: { maxFinishedCommands: 50, commandTimeoutSeconds: 30, maxRetries: 1 },
        onError: () => {},
      });
      should(site.loadError).be.null();
      return site;
    };
    const live = restarted(dir, 0);
    const liveStore = (live as unknown as { store: JournalStore }).store;
    const want = comparable(live.toJSON());
    // k0..99, f0..19 (retried), the plan's second slot's commands and its rows left.
    should(live.engine.stats().pending).equal(120 + 8 + 8 * 94);
    should(live.engine.getCommand('day:ev3:1')?.status).equal('PENDING');
    should(live.toJSON().planOwners).eql({ day: 'd5' });
    should(live.engine.getCommand('x0')).be.undefined(); // expired, then trimmed
    should(live.engine.getCommand('g0')?.status).equal('TIMED_OUT');
    const owners: Record<string, string> = {};
    for (let k = 0; k < 100; k++) owners[`k${k}`] = 'd2';
    for (let k = 0; k < 20; k++) owners[`f${k}`] = 'd3';
    should(live.toJSON().owners).eql(owners);
    should(liveStore.backlog).be.above(64); // the restore's records, written over the turns
    const restoredFrom = async (d: string) => {
      const again = restarted(d);
      const doc = comparable(again.toJSON());
      await again.stop();
      return doc;
    };
    let builtLive = 0;
    const toJSON = live.toJSON.bind(live);
    live.toJSON = () => {
      builtLive++;
      return toJSON();
    };
    let done = false;
    const saving = live.save().then(() => {
      done = true;
    });
    let turns = 0;
    while (!done || liveStore.backlog > 0) {
      // A kill now: the files restore to the same state (the restore's changes are made
      // again the same way where their records are not written yet).
      should(await restoredFrom(killCopy(dir))).eql(want);
      turns++;
      await turn();
    }
    await saving;
    should(turns).be.above(3);
    should(builtLive).equal(0); // the first snapshot came from the files
    should(liveStore.stats.snapshots).equal(1);
    // The journal's files now hold the restored state itself.
    const files = new JournalStore(killCopy(dir));
    should(comparable(files.load())).eql(want);
    should(files.problems).eql([]);
    await live.stop();
  });

  it('compacts over the legacy state file (migration): the snapshot holds it and the journal, the file is kept as .migrated', async () => {
    const dir = tmp();
    const file = path.join(dir, 'state.json');
    const old = make(new FileStore(file));
    old.site.submit(
      { id: 'm1', assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 2, scheduledAt: T0 + 3600 * S },
      'd9',
    );
    await old.site.stop();
    const journalDir = path.join(dir, 'state.journal');
    const store = new JournalStore(journalDir, { legacyFile: file });
    should(store.load()).be.ok();
    store.journal({ key: 'o:m1', value: () => 'd2' });
    store.flush();
    await store.compact();
    should(fs.existsSync(file)).be.false();
    should(fs.existsSync(`${file}.migrated`)).be.true();
    const doc = new JournalStore(journalDir, { legacyFile: file }).load() as SiteJSON;
    should(doc.engine.commands.map((c) => c.id)).eql(['m1']);
    should(doc.owners).eql({ m1: 'd2' });
    should(store.stats.workerSnapshots).equal(1);
  });
});
