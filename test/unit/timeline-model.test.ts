/**
 * The sidebar tab's data model (resources/qe-timeline-model.js, plain browser JS loaded here
 * as CommonJS): a snapshot followed by the feed's deltas gives the same picture as a fresh
 * snapshot (a real Site and TimelineFeed, fake clock); stale deltas are ignored, a resync
 * is reported; filters, the time window and the command under a point.
 */
import should from 'should';
import { ManualClock } from '../../src/clock';
import type { Command } from '../../src/commands';
import { Site } from '../../src/site';
import { buildSnapshot, type TimelineDelta, TimelineFeed } from '../../src/timeline';
import { FakeTimers } from '../helpers/fake-timers';

interface Row {
  id: string;
  state: string | null;
  states: [number, string][];
  cmds: { id: string; status: string; at: number; kw: number }[];
  meas: [number, number][];
}
interface Model {
  seq: number;
  assets: Map<string, Row>;
  rows: Row[];
  filterAsset: string;
  filterStatus: string;
  window: string;
}
const M = require('../../resources/qe-timeline-model.js') as {
  createModel(): Model;
  load(m: Model, snap: unknown, clock: number): void;
  apply(m: Model, d: unknown, clock: number): 'applied' | 'stale' | 'resync';
  finish(m: Model): void;
  filterRows(m: Model): void;
  timeWindow(m: Model, clock: number): [number, number];
  commandAt(a: Row, t: number): { id: string } | null;
};

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;

/** What a picture shows of a model: per asset, its state and its commands' status and kW. */
function picture(m: Model) {
  return m.rows.map((a) => ({
    id: a.id,
    state: a.state,
    cmds: a.cmds.map((c) => `${c.id}:${c.status}:${c.kw}`),
    meas: a.meas.length,
  }));
}

describe('timeline tab model (resources/qe-timeline-model.js)', () => {
  it('a snapshot and the deltas after it make the same picture as a new snapshot', async () => {
    const clock = new ManualClock(T0);
    const timers = new FakeTimers(clock);
    const site = new Site({ siteId: 'depot', clock, timers, onError: () => {} });
    const delivered: Command[] = [];
    site.attachDispatcher('d', { deliver: (c) => delivered.push(c), undeliverable: () => {} });
    site.start();
    site.ensureStateMachine('ev1', 'ev-charger');
    const deltas: TimelineDelta[] = [];
    const feed = new TimelineFeed(site, {
      clock,
      timers,
      publish: (d) => deltas.push(JSON.parse(JSON.stringify(d)) as TimelineDelta),
    });
    const m = M.createModel();
    M.load(m, JSON.parse(JSON.stringify(feed.snapshot())), clock.now());
    M.finish(m);
    site.submit(
      [0, 1, 2].flatMap((s) =>
        ['ev1', 'ev2'].map((assetId) => ({
          assetId,
          type: 'SET_CHARGE_RATE' as const,
          valueKw: 3 + s,
          scheduledAt: T0 + s * 60 * S,
          validUntil: T0 + (s + 1) * 60 * S,
        })),
      ),
      'd',
    );
    let seen = 0;
    /** Applies the deltas so far (the first one twice: ignored) and compares with a new snapshot. */
    const compare = async (what: string) => {
      await timers.advanceTo(clock.now() + 300); // the last delta out
      for (const d of [...deltas.slice(seen), deltas[0]]) if (d) M.apply(m, d, clock.now());
      seen = deltas.length;
      M.finish(m);
      const fresh = M.createModel();
      M.load(fresh, JSON.parse(JSON.stringify(feed.snapshot())), clock.now());
      M.finish(fresh);
      should(picture(m).map((r) => ({ ...r, meas: 0 }))).eql(
        picture(fresh).map((r) => ({ ...r, meas: 0 })),
        what,
      );
      should(fresh.seq).equal(m.seq);
      return fresh;
    };
    for (let t = 1; t <= 150; t++) {
      await timers.advanceTo(T0 + t * S);
      for (const c of delivered.splice(0)) site.respond(c.id, c.assetId === 'ev1');
      if (t === 30) site.getStateMachine('ev1')?.forceState('FAULTED', 'test');
      if (t === 70) site.getStateMachine('ev1')?.forceState('AVAILABLE', 'test');
      if (t % 10 === 0) site.measured('ev2', { kind: 'ev-limit', kw: 2 });
      if (t % 20 === 0) feed.renew();
      if (t === 65) {
        const fresh = await compare('while ev1 is faulted');
        should(fresh.rows[0]?.cmds[1]?.status).equal('held');
      }
    }
    should(deltas.length).be.above(3);
    await compare('at the end');
    // The feed keeps each measurement; a delta carries the latest of its window.
    should(m.assets.get('ev2')?.meas.length).be.above(0);
    should(
      m.assets
        .get('ev1')
        ?.states.map((s) => s[1])
        .slice(-2),
    ).eql(['FAULTED', 'AVAILABLE']);
    should(buildSnapshot(site, clock.now()).commands.length).equal(6);
    feed.stop();
    await site.stop();
  });

  it('ignores a delta it has seen, and reports a resync', () => {
    const m = M.createModel();
    M.load(m, { siteId: 's', now: T0, seq: 5, assets: [], commands: [], measurements: {} }, T0);
    const d = { kind: 'delta', now: T0, seq: 5, commands: [], states: [], measurements: [] };
    should(M.apply(m, d, T0)).equal('stale');
    should(M.apply(m, { ...d, seq: 6, resync: true }, T0)).equal('resync');
    should(M.apply(m, { ...d, seq: 7 }, T0)).equal('applied');
  });

  it('filters by asset and status; the window and the command at a time', () => {
    const m = M.createModel();
    const cmd = (id: string, assetId: string, status: string, at: number) => ({
      id,
      assetId,
      status,
      at,
      until: at + 900 * S,
      kw: 1,
      type: 'SET_CHARGE_RATE',
      history: [],
    });
    M.load(
      m,
      {
        siteId: 's',
        now: T0,
        seq: 0,
        assets: [],
        commands: [
          cmd('b', 'ev_2', 'failed', T0 + 900 * S),
          cmd('a', 'ev_1', 'completed', T0),
          cmd('c', 'batt', 'completed', T0),
        ],
        measurements: {},
      },
      T0 - 5 * S, // the browser's clock is 5 s behind the runtime's
    );
    M.finish(m);
    should(m.rows.map((r) => r.id)).eql(['batt', 'ev_1', 'ev_2']);
    m.filterAsset = 'EV';
    M.filterRows(m);
    should(m.rows.map((r) => r.id)).eql(['ev_1', 'ev_2']);
    m.filterStatus = 'failed';
    M.filterRows(m);
    should(m.rows.map((r) => r.id)).eql(['ev_2']);
    const [from, to] = M.timeWindow(m, T0 - 5 * S);
    should(from).be.below(T0);
    should(to).be.above(T0 + 1800 * S);
    m.window = '1h';
    should(M.timeWindow(m, T0 - 5 * S)).eql([T0 - 900 * S, T0 + 2700 * S]);
    const row = m.rows[0] as Row;
    should(M.commandAt(row, T0 + 1000 * S)?.id).equal('b');
    should(M.commandAt(row, T0)).be.null();
  });
});
