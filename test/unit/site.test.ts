import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import type { Adapter } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus } from '../../src/commands';
import { type DueCommandSink, SAVE_PACING, Site } from '../../src/site';
import {
  FileStore,
  MemoryStore,
  PartialRestoreError,
  StoreCorruptError,
  writeJson,
} from '../../src/store';
import { FakeTimers } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const H = 3600 * S;

class Sink implements DueCommandSink {
  readonly delivered: Command[] = [];
  readonly failed: { cmd: Command; error: string }[] = [];
  deliver(cmd: Command) {
    this.delivered.push(cmd);
  }
  undeliverable(cmd: Command, error: string) {
    this.failed.push({ cmd, error });
  }
}

const adapter: Adapter = { protocol: 'test', dispatch: () => undefined };

function make(
  opts: { store?: MemoryStore | FileStore; autoDispatch?: boolean; errors?: Error[] } = {},
) {
  const clock = new ManualClock(T0);
  const timers = new FakeTimers(clock);
  const site = new Site({
    siteId: 'depot',
    clock,
    timers,
    store: opts.store ?? null,
    autoDispatch: opts.autoDispatch ?? false,
    onError: (e) => opts.errors?.push(e),
  });
  return { clock, timers, site };
}

describe('Site', () => {
  it('onMeasured hears every measurement; a listener that throws is reported, not fatal', () => {
    const errors: Error[] = [];
    const { site } = make({ errors });
    const heard: string[] = [];
    const off = site.onMeasured((assetId, m) => heard.push(`${assetId} ${m.kw}`));
    site.onMeasured(() => {
      throw new Error('boom');
    });
    site.measured('a', { kind: 'ev-limit', kw: 3 });
    should(heard).eql(['a 3']);
    should(errors.map((e) => e.message)).eql(['a listener to measurements of a failed: boom']);
    off();
    site.measured('a', { kind: 'ev-limit', kw: 4 });
    should(heard).eql(['a 3']);
  });

  it('needs a site id', () => {
    should(() => new Site({ siteId: ' ' })).throw(/siteId must be a non-empty string/);
  });

  it('delivers due commands to the dispatcher that submitted them, at their time', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('a', adapter);
    const s1 = new Sink();
    const s2 = new Sink();
    site.attachDispatcher('d1', s1);
    site.attachDispatcher('d2', s2);
    site.start();
    site.submit(
      { assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1, scheduledAt: T0 + 60 * S },
      'd2',
    );
    await timers.advanceTo(T0 + 59 * S);
    should(s2.delivered).have.length(0);
    await timers.advanceTo(T0 + 60 * S);
    should(s2.delivered.map((c) => c.valueKw)).eql([1]);
    should(s2.delivered[0]?.status).equal(CommandStatus.DISPATCHED);
    should(s1.delivered).have.length(0);
    await site.stop();
  });

  it('forgets the dispatcher of a command as soon as the command is finished', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('a', adapter);
    const s = new Sink();
    site.attachDispatcher('d1', s);
    site.start();
    site.submit(
      [1, 2, 3].map((k) => ({
        assetId: 'a',
        type: 'SET_CHARGE_RATE' as const,
        valueKw: k,
        scheduledAt: T0 + k * 60 * S,
      })),
      'd1',
    );
    const owners = (site as unknown as { owners: Map<string, string> }).owners;
    should(owners.size).equal(3);
    await timers.advanceTo(T0 + 60 * S);
    should(site.engine.handleResponse(s.delivered[0] as Command, true)).be.true();
    // Completed: gone from the map; the other two stay until they finish too.
    should(owners.size).equal(2);
    const rest = site.engine.getCommands({ status: CommandStatus.PENDING });
    site.engine.cancel(rest[0] as Command);
    should(owners.size).equal(1);
    should(Object.keys(site.toJSON().owners)).eql([(rest[1] as Command).id]);
    await site.stop();
  });

  it('a re-apply goes to the dispatcher that last delivered to its asset (its wires reach the adapter), not the first', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('a', adapter);
    const s1 = new Sink();
    const s2 = new Sink();
    site.attachDispatcher('d1', s1);
    site.attachDispatcher('d2', s2);
    site.start();
    const [c] = site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 3 }, 'd2');
    await timers.advanceTo(T0);
    site.engine.handleResponse(c as Command, true);
    should(c?.status).equal(CommandStatus.COMPLETED);
    const [again] = site.reapply('a', 'device restarted');
    should(again?.reapplyOf).equal(c?.id);
    await timers.advanceTo(T0 + 1);
    should(s2.delivered.map((x) => x.id)).eql([c?.id, again?.id]);
    should(s1.delivered).have.length(0);
    await site.stop();
  });

  it('an orphan command (its dispatcher gone) goes to the first dispatcher', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('a', adapter);
    const s1 = new Sink();
    site.attachDispatcher('d1', s1);
    const detach = site.attachDispatcher('gone', new Sink());
    site.start();
    site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 2 }, 'gone');
    detach();
    await timers.advanceTo(T0);
    should(s1.delivered.map((c) => c.valueKw)).eql([2]);
    await site.stop();
  });

  it('fails a due command for an asset no adapter serves and tells the dispatcher', async () => {
    const { site, timers } = make();
    const s = new Sink();
    site.attachDispatcher('d', s);
    site.start();
    site.submit({ assetId: 'ghost', type: 'SET_CHARGE_RATE', valueKw: 2 }, 'd');
    await timers.advanceTo(T0);
    should(s.failed).have.length(1);
    should(s.failed[0]?.error).match(/no adapter serves asset ghost/);
    should(s.failed[0]?.cmd.status).equal(CommandStatus.FAILED);
  });

  it('without a dispatcher, waits (checking every interval) or, with autoDispatch, uses the adapters', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('a', adapter);
    site.start();
    site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 2 });
    await timers.advanceTo(T0 + 1);
    should(site.engine.stats().pending).equal(1);
    should(site.nextRunAt).equal(T0 + 1 + 5 * S); // the round ran at T0 + 1 ms
    const auto = make({ autoDispatch: true });
    const sent: string[] = [];
    auto.site.adapterRegistry.register('a', {
      protocol: 't',
      dispatch: (c) => {
        sent.push(c.id);
        return { success: true };
      },
    });
    auto.site.start();
    const [c] = auto.site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 2 });
    await auto.timers.advanceTo(T0);
    should(sent).eql([c?.id]);
    should(c?.status).equal(CommandStatus.COMPLETED);
  });

  it('times out unanswered attempts by timer and re-sends them after the backoff', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('a', adapter);
    const s = new Sink();
    site.attachDispatcher('d', s);
    site.start();
    site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 2 }, 'd');
    await timers.advanceTo(T0);
    should(s.delivered).have.length(1);
    await timers.advanceTo(T0 + 30 * S);
    should(s.delivered).have.length(1);
    await timers.advanceTo(T0 + 32 * S);
    should(s.delivered).have.length(2);
    should(s.delivered[1]?.attempts).equal(2);
  });

  it('shares one state machine per asset and refuses another kind', () => {
    const { site } = make();
    const m = site.ensureStateMachine('ev', 'ev-charger', 'n1');
    should(site.ensureStateMachine('ev', 'ev-charger', 'n2')).equal(m);
    should(() => site.ensureStateMachine('ev', 'battery')).throw(
      /already has a ev-charger state machine/,
    );
    should(() => site.ensureStateMachine('x', 'boat' as never)).throw(/unknown asset kind "boat"/);
    should(site.releaseStateMachine('ev', 'n1')).be.false();
    should(site.getStateMachine('ev')).equal(m);
    should(site.releaseStateMachine('ev', 'n2')).be.true();
    should(site.getStateMachine('ev')).be.undefined();
    const custom = site.ensureStateMachine('c', {
      states: ['ON', 'OFF'],
      initial: 'OFF',
      transitions: [{ from: 'OFF', trigger: 'on', to: 'ON' }],
    });
    should(custom.trigger('on')).equal('ON');
  });

  it("keeps an asset's adapter and machine in one table entry, shared by registry, engine and site (serve / unserve)", () => {
    const { site } = make();
    const adapter: Adapter = { protocol: 'test', dispatch: () => ({ success: true }) };
    site.serve(adapter, ['a1', 'a2'], 'battery', 'n1');
    const e = site.assets.get('a1');
    should(e?.adapter).equal(adapter);
    should(e?.machine).equal(site.engine.getStateMachine('a1'));
    should(e?.machineKind).equal('battery');
    should([...(e?.machineUsers ?? [])]).eql(['n1']);
    should(site.adapterRegistry.size).equal(2);
    // All or none: a2 is served by another adapter, so a3 is not served either.
    const other: Adapter = { protocol: 'other', dispatch: () => ({ success: true }) };
    should(() => site.serve(other, ['a3', 'a2'], 'battery', 'n2')).throw(/already served/);
    should(site.adapterRegistry.has('a3')).be.false();
    site.unserve(adapter, ['a1', 'a2'], 'n1', false);
    should(site.assets.get('a1')?.adapter).be.null();
    should(site.getStateMachine('a1')).be.ok(); // kept: not removed
    site.unserve(adapter, ['a1'], 'n1', true);
    should(site.assets.get('a1')).be.undefined(); // nothing left: the entry is gone
    should(site.engine.getStateMachine('a1')).be.undefined();
  });

  it('holds commands of a FAULTED asset through its machine', async () => {
    const { site, timers } = make();
    site.adapterRegistry.register('ev', adapter);
    const s = new Sink();
    site.attachDispatcher('d', s);
    site.start();
    const m = site.ensureStateMachine('ev', 'ev-charger');
    m.trigger('fault');
    site.submit({ assetId: 'ev', type: 'SET_CHARGE_RATE', valueKw: 2 }, 'd');
    await timers.advanceTo(T0 + 10 * S);
    should(s.delivered).have.length(0);
    m.trigger('reset');
    await timers.advanceTo(T0 + 10 * S);
    should(s.delivered).have.length(1);
  });

  it('persists and restores commands, owners and asset states', async () => {
    const store = new MemoryStore();
    const a = make({ store });
    a.site.adapterRegistry.register('ev', adapter);
    a.site.ensureStateMachine('ev', 'ev-charger').trigger('disable');
    a.site.start();
    a.site.submit(
      [{ assetId: 'ev', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 + 60 * S }],
      'd1',
    );
    await a.timers.advanceTo(T0 + 1 * S); // the save is debounced
    should(store.saves).be.above(0);
    await a.site.stop();
    const doc = store.doc as {
      owners: Record<string, string>;
      engine: { assetStates: Record<string, string> };
    };
    should(Object.values(doc.owners)).eql(['d1']);
    should(doc.engine.assetStates).eql({ ev: 'UNAVAILABLE' });
    const b = make({ store });
    should(b.site.loadError).be.null();
    should(b.site.engine.stats().pending).equal(1);
    should(b.site.ensureStateMachine('ev', 'ev-charger').currentState).equal('UNAVAILABLE');
    should(b.site.toJSON().owners).eql(doc.owners);
  });

  it('waits longer between saves when saving takes long (SAVE_PACING times the last save)', async () => {
    const clock = new ManualClock(T0);
    const timers = new FakeTimers(clock);
    let saves = 0;
    // A store whose save takes 2 s of the site's clock, as a large state file would.
    const slow = {
      location: 'slow',
      load: () => undefined,
      save: async () => {
        saves++;
        clock.advance(2 * S);
      },
    };
    const site = new Site({ siteId: 'depot', clock, timers, store: slow });
    site.adapterRegistry.register('a', adapter);
    const delays = () => [...timers.pending.values()].map((t) => t.at - clock.now());
    site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1, scheduledAt: T0 + H });
    should(delays()).eql([200]); // the first save: the configured delay
    await timers.advanceTo(T0 + 200 + 2 * S); // the save ran from 200 ms to 2.2 s
    should(saves).equal(1);
    site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 2, scheduledAt: T0 + 2 * H });
    should(delays()).eql([SAVE_PACING * 2 * S]);
    await site.stop();
  });

  it('sets a corrupt file aside, reports it and starts empty', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-site-'));
    const file = path.join(dir, 'state.json');
    fs.writeFileSync(file, '{"format": "qubit-energy/site", "version": 1, "engine": {"form');
    const errors: Error[] = [];
    const { site } = make({ store: new FileStore(file), errors });
    should(site.loadError).be.instanceOf(StoreCorruptError);
    should(site.loadError?.message).match(/is not valid JSON.*moved it to .*state\.json\.corrupt-/);
    should(fs.existsSync(file)).be.false();
    should(fs.readdirSync(dir).filter((f) => f.includes('.corrupt-'))).have.length(1);
    should(site.engine.stats().total).equal(0);
    // A document that parses but is not a site's is set aside too.
    fs.writeFileSync(file, '{"hello": 1}');
    const other = make({ store: new FileStore(file) });
    should(other.site.loadError?.message).match(/cannot be restored: not a site state document/);
    should(fs.readdirSync(dir).filter((f) => f.includes('.corrupt-')).length).be.above(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('one bad entry costs nothing else: the rest is restored, it is reported, the file kept', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-site-'));
    const file = path.join(dir, 'state.json');
    const a = make({ store: new FileStore(file) });
    a.site.ensureStateMachine('ev', 'ev-charger').trigger('disable');
    a.site.submit(
      [1, 2, 3].map((n) => ({
        id: `c${n}`,
        assetId: 'ev',
        type: 'SET_CHARGE_RATE' as const,
        valueKw: n,
        scheduledAt: T0 + n * H,
      })),
      'd1',
    );
    await a.site.stop();
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    doc.engine.commands[1].valueKw = null; // what an overflowed setpoint became in JSON
    doc.owners.c3 = 7;
    const damaged = JSON.stringify(doc);
    fs.writeFileSync(file, damaged);

    const b = make({ store: new FileStore(file) });
    const err = b.site.loadError as PartialRestoreError;
    should(err).be.instanceOf(PartialRestoreError);
    should(err.problems).eql([
      {
        entry: 'commands[1]',
        id: 'c2',
        reason: 'valueKw must be a finite number >= 0 (kW) for SET_CHARGE_RATE, got null',
      },
      { entry: 'owners["c3"]', reason: 'must be a dispatcher id, got 7' },
    ]);
    should(err.message).match(
      /^saved state in .*state\.json: 2 entries could not be restored and were left out, everything else was restored \(the file as it was is kept as .*state\.json\.bad-entries-.*\): commands\[1\] \(id c2\): valueKw must be/,
    );
    should(fs.readFileSync(err.copy as string, 'utf8')).equal(damaged);
    should(b.site.engine.getCommands().map((c) => c.id)).eql(['c1', 'c3']);
    should(b.site.toJSON().owners).eql({ c1: 'd1' });
    should(b.site.ensureStateMachine('ev', 'ev-charger').currentState).equal('UNAVAILABLE');
    // Saving goes on (without the bad entry); the next start is clean.
    await b.site.stop();
    const c = make({ store: new FileStore(file) });
    should(c.site.loadError).be.null();
    should(c.site.engine.getCommands().map((x) => x.id)).eql(['c1', 'c3']);
    await c.site.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('never overwrites a state file that it could not read', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-site-'));
    const file = path.join(dir, 'state.json');
    fs.mkdirSync(file); // a directory where the file should be: unreadable as a file
    const { site } = make({ store: new FileStore(file) });
    should(site.loadError?.message).match(
      /cannot read state file .*nothing will be saved until it is fixed/,
    );
    site.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 });
    await site.save();
    should(fs.statSync(file).isDirectory()).be.true();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('FileStore', () => {
  it('writes atomically and reads back; a missing file is no state', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-store-'));
    const file = path.join(dir, 'sub', 'state.json');
    const store = new FileStore(file);
    should(store.load()).be.undefined();
    await Promise.all([store.save({ n: 1 }), store.save({ n: 2 }), store.save({ n: 3 })]);
    should(store.load()).eql({ n: 3 });
    should(fs.readdirSync(path.dirname(file))).eql(['state.json']); // no temp file left
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes exactly the text JSON.stringify gives, a large array a piece at a time', async () => {
    const commands = Array.from({ length: 5_432 }, (_, i) => ({
      id: `c${i}`,
      at: new Date(Date.UTC(2025, 5, 2, 0, i)),
      skipped: undefined,
      list: [i, null, 'x"y'],
    }));
    const doc = {
      format: 'qubit-energy/site',
      nothing: undefined,
      fn: () => 1,
      engine: { commands, sparse: [1, undefined, () => 2], nested: { deep: { deeper: [1, 2] } } },
      owners: Object.fromEntries(commands.map((c) => [c.id, 'd1'])),
      empty: {},
      emptyList: [],
      when: new Date(0),
    };
    const pieces: string[] = [];
    await writeJson(doc, async (p) => {
      pieces.push(p);
    });
    should(pieces.join('')).equal(JSON.stringify(doc));
    should(pieces.length).be.above(10); // not one string
    should(pieces.filter((p) => p.length > 200_000)).have.length(0);

    // Through a file: pieces gathered and written in several writes, the same text.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-store-'));
    const file = path.join(dir, 'state.json');
    const big = { engine: { commands: Array.from({ length: 20 }, () => commands).flat() } };
    await new FileStore(file).save(big);
    should(fs.readFileSync(file, 'utf8')).equal(JSON.stringify(big));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports a write that fails', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-store-'));
    fs.writeFileSync(path.join(dir, 'blocker'), 'x');
    const store = new FileStore(path.join(dir, 'blocker', 'state.json'));
    await should(store.save({})).be.rejected();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
