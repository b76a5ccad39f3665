import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import type { Adapter } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { CommandStatus } from '../../src/commands';
import { DispatchEngine } from '../../src/engine';
import { FLUSH_SLICE, JournalStore } from '../../src/journal';
import { Site, type SiteJSON } from '../../src/site';
import { FileStore, PartialRestoreError } from '../../src/store';
import { FakeTimers, flush } from '../helpers/fake-timers';
import { evConversion } from '../helpers/plan-site';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const adapter: Adapter = { protocol: 'test', dispatch: () => undefined };

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'qe-journal-'));

function make(store: JournalStore | FileStore, clock = new ManualClock(T0)) {
  const timers = new FakeTimers(clock);
  const errors: Error[] = [];
  const site = new Site({
    siteId: 'depot',
    clock,
    timers,
    store,
    config: { maxFinishedCommands: 6, commandTimeoutSeconds: 30, maxRetries: 1 },
    onError: (e) => errors.push(e),
  });
  for (const a of ['ev1', 'ev2', 'bat']) site.adapterRegistry.register(a, adapter);
  return { site, clock, timers, errors };
}

/** The document without the time it was built at. */
function comparable(doc: unknown): unknown {
  const d = JSON.parse(JSON.stringify(doc)) as SiteJSON;
  (d.engine as { savedAt?: string }).savedAt = '';
  d.siteId = '';
  return d;
}

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number) {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random changes to a live site: submissions, dispatches, answers, timeouts, states. */
async function randomChanges(
  m: ReturnType<typeof make>,
  random: () => number,
  steps: number,
  store: JournalStore,
): Promise<void> {
  const { site, clock, timers } = m;
  const assets = ['ev1', 'ev2', 'bat'];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  let n = 0;
  for (let i = 0; i < steps; i++) {
    const r = random();
    const now = clock.now();
    if (r < 0.3) {
      const batch = 1 + Math.floor(random() * 3);
      const cmds = [];
      for (let k = 0; k < batch; k++) {
        cmds.push({
          id: `c${n++}`,
          assetId: pick(assets),
          type: 'SET_CHARGE_RATE' as const,
          valueKw: Math.round(random() * 200) / 10,
          scheduledAt: now + Math.floor(random() * 120) * S,
        });
      }
      site.submit(cmds, pick(['d1', 'd2']));
    } else if (r < 0.5) {
      for (const c of site.engine.getPendingCommands(now).slice(0, 2))
        site.engine.markDispatched(c);
    } else if (r < 0.7) {
      const inFlight = site.engine
        .getCommands()
        .filter((c) => c.status === 'DISPATCHED' || c.status === 'ACKNOWLEDGED');
      if (inFlight.length > 0) {
        const c = pick(inFlight);
        const ok = random() < 0.7;
        site.engine.handleResponse(c, ok, ok ? null : 'busy', { completed: random() < 0.6 });
      }
    } else if (r < 0.8) {
      await timers.advanceTo(now + Math.floor(random() * 40) * S);
      site.engine.checkTimeouts();
    } else if (r < 0.88) {
      const machine = site.ensureStateMachine(pick(assets), 'ev-charger');
      const t = pick(['disable', 'enable', 'fault', 'reset', 'plug_in']);
      if (machine.canTrigger?.(t) ?? true) {
        try {
          machine.trigger(t);
        } catch {
          // Not allowed from this state: nothing changed.
        }
      }
    } else if (r < 0.93) {
      const pending = site.engine.getCommands().filter((c) => c.status === 'PENDING');
      if (pending.length > 0) site.engine.cancel(pick(pending), 'by hand');
    } else if (r < 0.97) {
      // A compaction now and then, while the changes go on.
      void store.save(site.toJSON());
    }
    if (random() < 0.5) await flush();
  }
  await flush();
}

describe('JournalStore', () => {
  it('replays to the live state: random changes, restored from snapshot + journal', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const dir = tmp();
      const store = new JournalStore(dir, { compactAfterBytes: 3000 });
      const m = make(store);
      should(store.load()).be.undefined();
      await randomChanges(m, rng(seed), 300, store);
      await m.timers.advanceTo(m.clock.now() + 5 * S); // a snapshot the journal asked for
      await flush();
      const again = new JournalStore(dir);
      const doc = again.load();
      should(again.problems).eql([]);
      should(comparable(doc)).eql(comparable(m.site.toJSON()));
      await m.site.stop();
    }
  });

  it('writes bytes per change, not the state: a status change is a short record', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    store.load();
    m.site.submit(
      Array.from({ length: 200 }, (_, i) => ({
        id: `x${i}`,
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE',
        valueKw: 5,
        scheduledAt: T0,
      })),
    );
    await flush();
    const before = store.stats.recordBytes;
    m.site.engine.markDispatched('x7');
    await flush();
    const perChange = store.stats.recordBytes - before;
    should(perChange).be.below(200);
    should(perChange).be.below(JSON.stringify(m.site.engine.getCommand('x7')).length);
    await m.site.stop();
  });

  it('writes a burst larger than FLUSH_SLICE over the next turns, FLUSH_SLICE a turn', async () => {
    const dir = tmp();
    // No time limit a turn (sliceMs): the count alone, whatever the machine's speed.
    const store = new JournalStore(dir, { sliceMs: Number.POSITIVE_INFINITY });
    const m = make(store);
    store.load();
    m.site.submit(
      Array.from({ length: FLUSH_SLICE * 2 + 10 }, (_, i) => ({
        id: `b${i}`,
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE' as const,
        valueKw: 1,
        scheduledAt: T0 + H,
      })),
    );
    await new Promise((r) => setImmediate(r));
    should(store.stats).match({ writes: 1, records: FLUSH_SLICE });
    await flush();
    should(store.stats).match({ writes: 3, records: FLUSH_SLICE * 2 + 10 });
    should(comparable(new JournalStore(dir).load())).eql(comparable(m.site.toJSON()));
    await m.site.stop();
  });

  it('writes an entry changed again while its burst is written once more if it was written, once if not, with its last value', async () => {
    const dir = tmp();
    const store = new JournalStore(dir, { sliceMs: 0 }); // 64 records a turn
    const owner = (id: string, value: string) =>
      store.journal({ key: `o:${id}`, value: () => value });
    for (let i = 0; i < 200; i++) owner(`k${i}`, 'd1');
    await new Promise((r) => setImmediate(r));
    should(store.stats.records).equal(64);
    owner('k10', 'd2'); // written already: written again, after the rest
    owner('k150', 'd2'); // not yet: written once, with its new value
    should(store.backlog).equal(136 + 2);
    let turns = 1;
    while (store.backlog > 0) {
      await new Promise((r) => setImmediate(r));
      turns++;
      const copy = new JournalStore(dir);
      copy.load();
      should(copy.problems).eql([]);
    }
    should(turns).equal(5); // 64, 64, 64 (k150 skipped: changed again), the last 7, then k10 and k150
    should(store.stats.records).equal(201);
    const lines = fs.readFileSync(path.join(dir, fs.readdirSync(dir)[0] as string), 'utf8');
    should(lines.split('\n').filter((l) => l.includes('"o:k150"'))).eql(['["s","o:k150","d2"]']);
    const doc = new JournalStore(dir).load() as SiteJSON;
    should(doc.owners).match({ k0: 'd1', k10: 'd2', k150: 'd2', k199: 'd1' });
    should(Object.keys(doc.owners)).have.length(200);
    await store.close();
  });

  it('reports a write that fails instead of throwing from its timer, then writes commands in full', async () => {
    const dir = tmp();
    const errors: Error[] = [];
    const store = new JournalStore(dir, { onError: (e) => errors.push(e) });
    const m = make(store);
    store.load();
    m.site.submit({
      id: 'w',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      scheduledAt: T0 + H,
    });
    await flush();
    // The segment's descriptor closed behind its back: the next write fails (EBADF).
    fs.closeSync((store as unknown as { fd: number }).fd);
    m.site.engine.markDispatched('w');
    await flush();
    should(errors).have.length(1);
    should(errors[0]?.message).match(/^cannot write the journal in .*: .*EBADF/);
    (store as unknown as { fd: number | null }).fd = null; // a new descriptor next time
    m.site.engine.handleResponse('w', true);
    await flush();
    should(comparable(new JournalStore(dir).load())).eql(comparable(m.site.toJSON()));
    await m.site.stop();
  });

  it('ignores, reports and cuts off a torn last record; keeps everything before it', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    store.load();
    m.site.submit({
      id: 'a',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      scheduledAt: T0,
    });
    await flush();
    m.site.engine.markDispatched('a');
    await m.site.stop();
    const seg = fs.readdirSync(dir).find((f) => f.endsWith('.log')) as string;
    const size = fs.statSync(path.join(dir, seg)).size;
    fs.appendFileSync(path.join(dir, seg), '["d","a","COMPLETED",1,nu');
    const again = new JournalStore(dir);
    const doc = again.load() as SiteJSON;
    should(again.problems).eql([]);
    should(again.warnings).have.length(1);
    should(again.warnings[0]).match(
      /^journal-\d+\.log line \d+ \(offset \d+\): a torn last record/,
    );
    should(doc.engine.commands.map((c) => [c.id, c.status])).eql([['a', 'DISPATCHED']]);
    should(fs.statSync(path.join(dir, seg)).size).equal(size);
    // The site restores it and says what was left out.
    const b = make(new JournalStore(dir));
    should(b.site.loadError).be.null(); // cut off by the load before: nothing torn any more
    should(b.site.engine.getCommand('a')?.status).equal(CommandStatus.PENDING); // retried
    await b.site.stop();
  });

  it('loadAsync reads what load reads: a long record, non-ASCII ids, a bad record in the middle (its byte offset), a torn last one cut off', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    store.load();
    // A command whose id and asset are not ASCII, and one record longer than 64 KB.
    m.site.adapterRegistry.register('évé-1', adapter);
    m.site.submit({
      id: 'ça',
      assetId: 'évé-1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      scheduledAt: T0 + H,
    });
    const many = [];
    for (let i = 0; i < 900; i++)
      many.push({
        id: `n${i}`,
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE',
        valueKw: i % 7,
        scheduledAt: T0 + H + i * 60_000,
      });
    m.site.submit(many as never);
    m.site.submitPlan(evConversion('big', 300, 96, T0 + 2 * H));
    await flush();
    m.site.engine.markDispatched('ça');
    await m.site.stop();
    const seg = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.log')) as string);
    const lines = fs.readFileSync(seg, 'utf8').split('\n');
    should(lines.some((l) => l.length > 1 << 16)).be.true(); // the plan's record
    const bad = lines.findIndex((l) => l.includes('"n5"'));
    lines[bad] = `${lines[bad]?.slice(0, 12)}\u0000é garbage`;
    fs.writeFileSync(seg, `${lines.join('\n')}["d","ça","COMPLETED",1,nu`);
    const copy = `${dir}-async`;
    fs.cpSync(dir, copy, { recursive: true });
    const atOnce = new JournalStore(dir);
    const inSlices = new JournalStore(copy);
    const a = atOnce.load();
    const b = await inSlices.loadAsync({ sliceMs: 0 });
    should(b).eql(a);
    should(inSlices.problems).eql(atOnce.problems);
    should(inSlices.problems).have.length(1);
    should(inSlices.problems[0]?.entry).match(/ \(offset \d+\)$/);
    should(inSlices.warnings).eql(atOnce.warnings);
    should(inSlices.warnings[0]).match(/a torn last record of \d+ bytes/);
    should(fs.readFileSync(path.join(copy, path.basename(seg)))).eql(fs.readFileSync(seg));
    const doc = b as SiteJSON;
    should(doc.engine.commands.find((c) => c.id === 'ça')?.status).equal('DISPATCHED');
    should(doc.engine.commands).have.length(900);
    should(JSON.stringify(doc.engine.plans)).match(/"big"/);
    fs.rmSync(copy, { recursive: true, force: true });
  });

  it('reports a corrupt record in the middle with its line and offset, and keeps the others', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    store.load();
    for (const id of ['a', 'b', 'c']) {
      m.site.submit({
        id,
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE',
        valueKw: 3,
        scheduledAt: T0 + H,
      });
      await flush();
    }
    await m.site.stop();
    const seg = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.log')) as string);
    const lines = fs.readFileSync(seg, 'utf8').split('\n');
    const bi = lines.findIndex((l) => l.includes('"b"'));
    const offset = lines.slice(0, bi).join('\n').length + 1;
    lines[bi] = `${lines[bi]?.slice(0, 20)}\u0000garbage`;
    fs.writeFileSync(seg, lines.join('\n'));
    const b = make(new JournalStore(dir));
    should(b.site.loadError).be.instanceOf(PartialRestoreError);
    should(b.site.loadError?.message).match(
      new RegExp(`journal-\\d+\\.log line ${bi + 1} \\(offset ${offset}\\): not valid JSON`),
    );
    should(
      b.site.engine
        .getCommands()
        .map((c) => c.id)
        .sort(),
    ).eql(['a', 'c']);
    should(b.site.toJSON().owners).eql({});
    // Its files still hold the bad record: the first save is the whole restored state.
    const bStore = (b.site as unknown as { store: JournalStore }).store;
    await b.site.save();
    should(bStore.stats).match({ snapshots: 1, workerSnapshots: 0 });
    const again = new JournalStore(dir);
    should(comparable(again.load())).eql(comparable(b.site.toJSON()));
    should(again.problems).eql([]);
    await b.site.stop();
  });

  it('loses no record that arrives while a snapshot is written, and drops the covered segments', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    store.load();
    const submit = (i: number) =>
      m.site.submit(
        Array.from({ length: 500 }, (_, k) => ({
          id: `s${i}-${k}`,
          assetId: 'ev1',
          type: 'SET_CHARGE_RATE',
          valueKw: 1 + (k % 9),
          scheduledAt: T0 + H + k * S,
        })),
        'd1',
      );
    submit(0);
    await flush();
    const snapshot = store.save(m.site.toJSON());
    // Changes in the turns while the snapshot is written.
    submit(1);
    await new Promise((r) => setImmediate(r));
    m.site.engine.markDispatched('s0-3');
    m.site.engine.handleResponse('s0-3', true);
    await snapshot;
    submit(2);
    await flush();
    const files = fs.readdirSync(dir).sort();
    should(files.filter((f) => f.startsWith('snapshot-'))).have.length(1);
    should(files.filter((f) => f.endsWith('.log'))).have.length(1); // the older one dropped
    const again = new JournalStore(dir);
    should(comparable(again.load())).eql(comparable(m.site.toJSON()));
    should(again.problems).eql([]);
    await m.site.stop();
  });

  it('replays plans: rows made due, answered and cut short by a newer plan restore as the live state does (the cut rows not journaled)', async () => {
    const dir = tmp();
    const store = new JournalStore(dir);
    const m = make(store);
    const { site, clock, timers } = m;
    const slotMs = 900 * S;
    const MAP = { a: 'ev1', b: 'ev2' };
    const rows = (from: number, n: number, base: number) =>
      Array.from({ length: n }, (_, i) => ({
        timestamp: new Date(from + i * slotMs).toISOString(),
        ev_a_kw: base + (i % 3),
        ev_b_kw: base + 1 + (i % 2),
      }));
    const first = site.receiveSchedule(rows(T0, 8, 2), { scheduleId: 'day', assetMap: MAP });
    site.submitPlan(first, 'd1');
    for (let k = 0; k < 3; k++) {
      await timers.advanceTo(T0 + k * slotMs);
      for (const c of site.engine.getPendingCommands()) {
        site.engine.markDispatched(c);
        site.engine.handleResponse(c, k !== 1, k === 1 ? 'busy' : null, { completed: true });
      }
      await flush();
    }
    // A newer plan for both assets from slot 5 on: the old plan's rows from then on are cut.
    const second = site.receiveSchedule(rows(T0 + 5 * slotMs, 4, 7), {
      scheduleId: 'next',
      assetMap: MAP,
    });
    site.submitPlan(second, 'd2');
    await flush();
    should(site.toJSON().engine.plans?.length).be.above(0);
    const doc = new JournalStore(dir).load() as SiteJSON;
    const at = clock.now();
    const fromJournal = DispatchEngine.restore(doc.engine, { clock: new ManualClock(at) });
    const fromLive = DispatchEngine.restore(site.toJSON().engine, { clock: new ManualClock(at) });
    // Planned rows that the newer plan cut are kept CANCELLED for inspection in the live
    // engine, but not journaled (the cut plan's p: record says they are gone): all else is
    // the same.
    const cut = (c: { status: string; attempts: number; lastError: string | null }) =>
      c.status === 'CANCELLED' && c.attempts === 0 && /^superseded/.test(c.lastError ?? '');
    const liveDoc = fromLive.toJSON();
    should(liveDoc.commands.filter(cut).length).be.above(0);
    liveDoc.commands = liveDoc.commands.filter((c) => !cut(c));
    should(comparable({ engine: fromJournal.toJSON() })).eql(comparable({ engine: liveDoc }));
    const view = (e: DispatchEngine) =>
      e
        .getCommands()
        .filter((c) => !cut(c))
        .map((c) => [c.id, c.status, c.valueKw, c.scheduledAt.getTime()]);
    should(view(fromJournal)).eql(view(fromLive));
    should(view(fromJournal).filter((v) => v[1] === 'PENDING').length).be.above(4);
    should(doc.planOwners).eql(site.toJSON().planOwners);
    await site.stop();
  });

  it("loads today's FileStore state file as its first snapshot (migration)", async () => {
    const dir = tmp();
    const file = path.join(dir, 'state.json');
    const old = make(new FileStore(file));
    old.site.submit(
      { id: 'm1', assetId: 'bat', type: 'SET_CHARGE_RATE', valueKw: 2, scheduledAt: T0 + H },
      'd9',
    );
    await old.site.stop();
    const journalDir = path.join(dir, 'state.journal');
    const m = make(new JournalStore(journalDir, { legacyFile: file }));
    should(m.site.loadError).be.null();
    should(m.site.toJSON().owners).eql({ m1: 'd9' });
    m.site.engine.markDispatched('m1');
    await flush();
    await m.site.stop();
    // Before any snapshot: the legacy file is the base, the journal goes over it.
    const again = new JournalStore(journalDir, { legacyFile: file });
    const doc = again.load() as SiteJSON;
    should(doc.engine.commands.map((c) => [c.id, c.status])).eql([['m1', 'DISPATCHED']]);
    should(doc.owners).eql({ m1: 'd9' });
    // Once a snapshot is written, the legacy file is kept as <file>.migrated and not read again.
    await again.save(doc);
    should(fs.existsSync(file)).be.false();
    should(fs.existsSync(`${file}.migrated`)).be.true();
    const after = new JournalStore(journalDir, { legacyFile: file }).load() as SiteJSON;
    should(after.engine.commands.map((c) => [c.id, c.status])).eql([['m1', 'DISPATCHED']]);
  });

  it('survives kill -9 of a process that journals in a loop: everything it knew written is there', async function () {
    this.timeout(60_000);
    const dir = tmp();
    const child = spawn(
      process.execPath,
      ['-r', 'tsx/cjs', path.join(__dirname, '../helpers/journal-writer.ts'), dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let last = -1;
    let buffer = '';
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', () => reject(new Error('the writer exited by itself')));
      child.stdout.on('data', (d: Buffer) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const l of lines) last = Number(l.slice('written '.length));
        // Far enough for compactions to have happened; then kill it mid-loop.
        if (last >= 3000 && child.pid !== undefined) {
          child.removeAllListeners('exit');
          child.on('exit', () => resolve());
          process.kill(child.pid, 'SIGKILL');
        }
      });
    });
    const store = new JournalStore(dir);
    const doc = store.load() as SiteJSON;
    // At most a torn last record (a warning); never a bad one.
    should(store.problems).eql([]);
    should(store.warnings.length).be.belowOrEqual(1);
    const ids = new Set(doc.engine.commands.map((c) => c.id));
    // The newest commands it reported written are there (older ones finished and trimmed).
    for (let n = last - 40; n <= last; n++) should(ids.has(`k-${n}`)).be.true();
    const site = new Site({ siteId: 'kill', store: new JournalStore(dir) });
    should(site.engine.getCommand(`k-${last - 1}`)?.status).equal(CommandStatus.COMPLETED);
    await site.stop();
  });
});

const H = 3600 * S;
