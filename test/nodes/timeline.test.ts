/**
 * The coordinator's timeline in a real Node-RED runtime: the admin endpoint answers a
 * snapshot of the site (over HTTP on loopback), and deltas go out through RED.comms only
 * while an editor holds the lease: none before the first snapshot, some while leased, none
 * after it lapses. A short lease and throttle (settings.qeTimeline) keep the waits short;
 * every wait is bounded, and no assertion is on a duration.
 */
import should from 'should';
import { sleep, until } from '../helpers/wait';
import { coordinator, onTab, siteOf } from './flows';
import { helper, runtimeRequire } from './runtime';

const LEASE_MS = 800;
const THROTTLE_MS = 50;
const TOPIC = 'qe-coordinator/coord/timeline';

interface Published {
  topic: string;
  data: { kind: string; seq: number; commands: { assetId: string; status: string; kw: number }[] };
}

/** settings.js of the runtime, with this package's own `qeTimeline`. */
type Settings = Parameters<typeof helper.settings>[0];

describe('nodes: the coordinator timeline (admin endpoint, comms while leased)', () => {
  const published: Published[] = [];
  const events = (runtimeRequire('@node-red/util') as { events: NodeJS.EventEmitter }).events;
  const onComms = (m: Published) => {
    if (m.topic.startsWith('qe-coordinator/')) published.push(m);
  };

  before((done) => {
    helper.settings({ qeTimeline: { leaseMs: LEASE_MS, throttleMs: THROTTLE_MS } } as Settings);
    events.on('comms', onComms);
    helper.startServer(done);
  });
  after((done) => {
    events.removeListener('comms', onComms);
    helper.settings({ qeTimeline: undefined } as Settings);
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
    published.length = 0;
  });

  const nodes = () => [require('../../nodes/qe-coordinator/qe-coordinator.js').default];
  const submit = (assetId: string, kw: number) =>
    siteOf().submit({ assetId, type: 'SET_CHARGE_RATE', valueKw: kw }, 'test');

  it('answers 404 for a coordinator that is not running, 400 for a bad lease', async () => {
    await helper.load(nodes(), onTab([coordinator()]));
    const res = await helper.request().get('/qe-coordinator/nope/timeline');
    should(res.status).equal(404);
    should(res.body.error).match(/qe-coordinator nope: no running site/);
    const bad = await helper.request().get('/qe-coordinator/coord/timeline?lease=x');
    should(bad.status).equal(400);
    should(bad.body.error).equal('lease: must be "renew" or absent, got x');
  });

  it('publishes nothing before a snapshot, deltas while leased, nothing after the lease lapses', async () => {
    await helper.load(nodes(), onTab([coordinator()]));
    // Nobody watches: changes publish nothing.
    submit('ev1', 3);
    await sleep(THROTTLE_MS * 4);
    should(published).eql([]);

    const snap = await helper.request().get('/qe-coordinator/coord/timeline');
    should(snap.status).equal(200);
    should(snap.body).match({ kind: 'snapshot', siteId: 'depot', seq: 0 });
    should(snap.body.assets.map((a: { id: string }) => a.id)).eql(['ev1']);
    should(snap.body.commands).have.length(1);
    should(snap.body.commands[0]).match({ assetId: 'ev1', kw: 3, status: 'pending' });

    // Watched: the next change arrives as a delta on the coordinator's topic.
    submit('ev2', 4);
    await until(() => published.length > 0, 'a delta');
    should(published[0]?.topic).equal(TOPIC);
    should(published[0]?.data).match({ kind: 'delta', seq: 1 });
    should(published[0]?.data.commands.map((c) => [c.assetId, c.kw])).eql([['ev2', 4]]);

    // Renewals keep it going past the first lease.
    for (let i = 0; i < 3; i++) {
      await sleep(LEASE_MS / 2);
      const r = await helper.request().get('/qe-coordinator/coord/timeline?lease=renew');
      should(r.body).eql({ active: true });
    }
    submit('ev3', 5);
    await until(() => published.length > 1, 'a delta after renewals');
    should(published[1]?.data.commands.map((c) => c.assetId)).eql(['ev3']);

    // No renewal: the lease lapses, and changes publish nothing again.
    await sleep(LEASE_MS + 200);
    const count = published.length;
    submit('ev4', 6);
    await sleep(THROTTLE_MS * 4);
    should(published.length).equal(count);
    const r = await helper.request().get('/qe-coordinator/coord/timeline?lease=renew');
    should(r.body).eql({ active: false });
  });

  it('stops publishing when the coordinator is removed', async () => {
    await helper.load(nodes(), onTab([coordinator()]));
    await helper.request().get('/qe-coordinator/coord/timeline').expect(200);
    const site = siteOf();
    await helper.unload();
    site.submit({ assetId: 'ev9', type: 'SET_CHARGE_RATE', valueKw: 1 }, 'test');
    await sleep(THROTTLE_MS * 4);
    should(published).eql([]);
    const res = await helper.request().get('/qe-coordinator/coord/timeline');
    should(res.status).equal(404);
  });
});
