/**
 * The timeline of a site (src/timeline.ts): the snapshot's content, the deltas (coalesced,
 * throttled), and the lease: nothing is published or listened to without a watcher, deltas
 * while leased, none after the lease lapses. Manual clock and fake timers: no sleeping.
 */
import should from 'should';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus } from '../../src/commands';
import { type DueCommandSink, Site } from '../../src/site';
import { buildSnapshot, type TimelineDelta, TimelineFeed } from '../../src/timeline';
import { FakeTimers } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;

class Sink implements DueCommandSink {
  readonly delivered: Command[] = [];
  deliver(cmd: Command) {
    this.delivered.push(cmd);
  }
  undeliverable() {}
}

function make() {
  const clock = new ManualClock(T0);
  const timers = new FakeTimers(clock);
  const errors: Error[] = [];
  const site = new Site({ siteId: 'depot', clock, timers, onError: (e) => errors.push(e) });
  site.adapterRegistry.register('ev1', { protocol: 'test', dispatch: () => undefined });
  site.adapterRegistry.register('ev2', { protocol: 'test', dispatch: () => undefined });
  const sink = new Sink();
  site.attachDispatcher('d', sink);
  site.start();
  const deltas: TimelineDelta[] = [];
  const feed = new TimelineFeed(site, {
    clock,
    timers,
    throttleMs: 250,
    leaseMs: 30 * S,
    publish: (d) => deltas.push(JSON.parse(JSON.stringify(d)) as TimelineDelta),
  });
  return { clock, timers, site, sink, feed, deltas, errors };
}

describe('timeline of a site', () => {
  it('a snapshot holds the assets, their states, and the commands with times, values and history', async () => {
    const { site, sink, timers } = make();
    site.ensureStateMachine('ev1', 'ev-charger');
    site.submit(
      [
        {
          assetId: 'ev1',
          type: 'SET_CHARGE_RATE',
          valueKw: 7.4,
          scheduledAt: T0,
          validUntil: T0 + 900 * S,
        },
        { assetId: 'ev2', type: 'SET_CHARGE_RATE', valueKw: 11, scheduledAt: T0 + 900 * S },
      ],
      'd',
    );
    await timers.advanceTo(T0 + 1);
    should(sink.delivered.map((c) => c.assetId)).eql(['ev1']);
    site.engine.handleResponse(sink.delivered[0] as Command, true);
    site.getStateMachine('ev1')?.forceState('CHARGING', 'test');
    const snap = buildSnapshot(site, T0 + 2, { ev1: [[T0, 7.2]] });
    should(snap.kind).equal('snapshot');
    should(snap.siteId).equal('depot');
    should(snap.assets.map((a) => a.id)).eql(['ev1', 'ev2']);
    should(snap.assets[0]?.state).equal('CHARGING');
    should(snap.assets[0]?.states.at(-1)?.[1]).equal('CHARGING');
    should(snap.assets[1]?.state).be.null();
    const ev1 = snap.commands.find((c) => c.assetId === 'ev1');
    should(ev1).match({ kw: 7.4, at: T0, until: T0 + 900 * S, status: 'completed', attempts: 1 });
    should(ev1?.history.map((h) => h[1])).eql([
      'PENDING',
      'DISPATCHED',
      'ACKNOWLEDGED',
      'COMPLETED',
    ]);
    should(snap.commands.find((c) => c.assetId === 'ev2')?.status).equal('pending');
    should(snap.measurements).eql({ ev1: [[T0, 7.2]] });
  });

  it('snapshotAsync (in slices) gives what snapshot gives, and starts the lease', async () => {
    const { site, feed } = make();
    const inputs = [];
    for (let i = 0; i < 3000; i++) {
      inputs.push({
        assetId: i % 2 ? 'ev1' : 'ev2',
        type: 'SET_CHARGE_RATE' as const,
        valueKw: i % 11,
        scheduledAt: T0 + (i + 1) * 60 * S,
      });
    }
    site.submit(inputs, 'd');
    should(feed.active).be.false();
    const sliced = await feed.snapshotAsync({ sliceMs: 0 });
    should(feed.active).be.true();
    should(sliced).eql(feed.snapshot());
    should(sliced.commands).have.length(3000);
    feed.stop();
  });

  it('shows a command held by its faulted asset as held', () => {
    const { site } = make();
    site.ensureStateMachine('ev1', 'ev-charger');
    site.getStateMachine('ev1')?.forceState('FAULTED', 'test');
    site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 }, 'd');
    site.engine.getPendingCommands(T0);
    should(buildSnapshot(site, T0).commands[0]?.status).equal('held');
  });

  it('publishes nothing and listens to nothing without a lease', async () => {
    const { site, feed, deltas, timers } = make();
    site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 }, 'd');
    site.measured('ev1', { kind: 'ev-limit', kw: 2.9 });
    await timers.advanceTo(T0 + 10 * S);
    should(feed.active).be.false();
    should(feed.stats).eql({ changes: 0, published: 0 });
    should(deltas).eql([]);
  });

  it('while leased, publishes coalesced deltas at most every throttleMs', async () => {
    const { site, feed, deltas, timers, sink, clock } = make();
    const snap = feed.snapshot();
    should(feed.active).be.true();
    should(snap.seq).equal(0);
    site.submit(
      [
        { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 },
        { assetId: 'ev2', type: 'SET_CHARGE_RATE', valueKw: 4, scheduledAt: T0 },
      ],
      'd',
    );
    // The two commands are created and dispatched within one throttle window: one delta.
    await timers.advanceTo(T0 + 100);
    should(deltas).eql([]);
    should(sink.delivered.length).equal(2);
    site.measured('ev1', { kind: 'ev-limit', kw: 1 });
    site.measured('ev1', { kind: 'ev-limit', kw: 2.9 });
    await timers.advanceTo(T0 + 250);
    should(deltas.length).equal(1);
    const d1 = deltas[0] as TimelineDelta;
    should(d1.seq).equal(1);
    should(d1.commands.map((c) => [c.assetId, c.status]).sort()).eql([
      ['ev1', 'dispatched'],
      ['ev2', 'dispatched'],
    ]);
    // Only the latest measurement of the window.
    should(d1.measurements).eql([['ev1', clock.now() - 150, 2.9]]);
    // Nothing changes: nothing is published.
    await timers.advanceTo(T0 + 2 * S);
    should(deltas.length).equal(1);
    site.engine.handleResponse(sink.delivered[0] as Command, true);
    await timers.advanceTo(T0 + 3 * S);
    should(deltas.length).equal(2);
    should(deltas[1]?.commands.map((c) => c.status)).eql(['completed']);
    should(deltas[1]?.seq).equal(2);
    // The next snapshot carries the measurements seen while leased and the last seq.
    const again = feed.snapshot();
    should(again.seq).equal(2);
    should(again.measurements.ev1?.map((m) => m[1])).eql([1, 2.9]);
    should(again.commands.find((c) => c.id === sink.delivered[0]?.id)?.status).equal(
      CommandStatus.COMPLETED.toLowerCase(),
    );
  });

  it('a state change is published with the asset', async () => {
    const { site, feed, deltas, timers } = make();
    site.ensureStateMachine('ev1', 'ev-charger');
    feed.snapshot();
    site.getStateMachine('ev1')?.forceState('FAULTED', 'test');
    await timers.advanceTo(T0 + S);
    should(deltas.length).equal(1);
    should(deltas[0]?.states).eql([['ev1', T0, 'FAULTED']]);
  });

  it('stops listening and publishing when the lease lapses; renewals keep it going', async () => {
    const { site, feed, deltas, timers } = make();
    feed.snapshot();
    await timers.advanceTo(T0 + 20 * S);
    should(feed.renew()).be.true();
    await timers.advanceTo(T0 + 45 * S); // 25 s after the renewal: still leased
    should(feed.active).be.true();
    site.submit(
      { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 + 60 * S },
      'd',
    );
    await timers.advanceTo(T0 + 46 * S);
    should(deltas.length).equal(1);
    await timers.advanceTo(T0 + 51 * S); // 31 s after the renewal: lapsed
    should(feed.active).be.false();
    const changes = feed.stats.changes;
    site.submit(
      { assetId: 'ev2', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 + 60 * S },
      'd',
    );
    await timers.advanceTo(T0 + 70 * S); // both dispatched meanwhile
    should(deltas.length).equal(1);
    should(feed.stats.changes).equal(changes);
    should(feed.renew()).be.false(); // ask for a snapshot again
    should(timers.pending.size).be.above(0); // the site's own timer only
    feed.snapshot();
    should(feed.active).be.true();
    feed.stop();
    should(feed.active).be.false();
  });

  it('a change at the end of the lease is not published after it', async () => {
    const { site, feed, deltas, timers } = make();
    feed.snapshot();
    await timers.advanceTo(T0 + 30 * S - 100);
    site.submit(
      { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 + 99 * S },
      'd',
    );
    await timers.advanceTo(T0 + 31 * S);
    should(deltas).eql([]);
    should(feed.active).be.false();
  });

  it('asks the watcher to resync instead of sending more than maxCommands commands', async () => {
    const { site, timers, clock } = make();
    const deltas: TimelineDelta[] = [];
    const feed = new TimelineFeed(site, {
      clock,
      timers,
      maxCommands: 2,
      publish: (d) => deltas.push(d),
    });
    feed.snapshot();
    site.submit(
      [1, 2, 3].map((i) => ({
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE' as const,
        valueKw: i,
        scheduledAt: T0 + i * 900 * S,
      })),
      'd',
    );
    await timers.advanceTo(T0 + S);
    should(deltas.length).equal(1);
    should(deltas[0]).match({ resync: true, commands: [] });
  });

  it('refuses a throttle or lease that is not a positive number', () => {
    const { site } = make();
    should(() => new TimelineFeed(site, { publish: () => {}, throttleMs: 0 })).throw(
      /throttleMs must be a number > 0, got 0/,
    );
    should(() => new TimelineFeed(site, { publish: () => {}, leaseMs: Number.NaN })).throw(
      /leaseMs must be a number > 0/,
    );
  });

  it('Site.onMeasured tells each measurement; a failing listener is reported, not thrown', () => {
    const { site, errors } = make();
    const got: [string, number, number][] = [];
    const off = site.onMeasured((a, m) => {
      got.push([a, m.kw, m.at ?? -1]);
    });
    site.onMeasured(() => {
      throw new Error('boom');
    });
    should(site.measured('ev1', { kind: 'ev-limit', kw: 5, at: T0 - S })).be.a.String();
    off();
    site.measured('ev1', { kind: 'ev-limit', kw: 6 });
    should(got).eql([['ev1', 5, T0 - S]]);
    should(errors.map((e) => e.message)).eql([
      'a listener to measurements of ev1 failed: boom',
      'a listener to measurements of ev1 failed: boom',
    ]);
  });
});
