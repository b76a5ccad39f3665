/**
 * The Node-RED face of site limits, in a real runtime: the coordinator's Limits property,
 * qe-meter (readings re-allocate the setpoints that a dispatcher sends to an adapter) and
 * qe-limit (dynamic caps, their expiry, LIMITS_CHANGED out), errors to Catch nodes, and
 * partial deploys. Real time with short expiries; every wait is bounded (mocha's timeout and
 * `until`); nothing asserts on how long something took.
 */
import should from 'should';
import { untilWith } from '../helpers/wait';
import {
  allNodes,
  catcher,
  coordinator,
  type FlowNode,
  inbox,
  onTab,
  settle,
  siteOf,
} from './flows';
import { helper } from './runtime';

/** Two 22 kW chargers on a 30 kW connection with a building meter. */
const LIMITS = {
  circuits: [{ id: 'root', importKw: 30 }],
  assets: [
    { assetId: 'ev1', kind: 'ev', circuit: 'root', phases: 'L1L2L3', ratingKw: 22 },
    { assetId: 'ev2', kind: 'ev', circuit: 'root', phases: 'L2L3L1', ratingKw: 22 },
  ],
  meters: [{ id: 'building', circuit: 'root', staleAfterS: 600, worstCaseKw: 10 }],
  minIntervalS: 0,
  hysteresisKw: 0.1,
};

const until = untilWith({ ms: 10_000 });

interface Cmd {
  id: string;
  assetId: string;
  valueKw: number;
  askedKw?: number;
  limitedBy?: string;
}

/**
 * coordinator (with limits) -> dispatcher -> adapter (ev1, ev2) -> `dev`, which answers every
 * command with success into the adapter; a meter and a limit node; a Catch node.
 */
function site(limits: unknown = LIMITS, extra: FlowNode[] = []): FlowNode[] {
  return onTab([
    coordinator({ limits: typeof limits === 'string' ? limits : JSON.stringify(limits) }),
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['adapter']] },
    {
      id: 'adapter',
      type: 'qe-adapter',
      coordinator: 'coord',
      assets: 'ev1, ev2',
      wires: [['dev']],
    },
    { id: 'dev', type: 'helper' },
    {
      id: 'meter',
      type: 'qe-meter',
      coordinator: 'coord',
      meter: 'building',
      wires: [['metered']],
    },
    { id: 'metered', type: 'helper' },
    { id: 'limit', type: 'qe-limit', coordinator: 'coord', wires: [['limits']] },
    { id: 'limits', type: 'helper' },
    ...catcher(),
    ...extra,
  ]);
}

/** The commands that reach the device, answered with success at once. */
function device(): Cmd[] {
  const seen: Cmd[] = [];
  const adapter = helper.getNode('adapter');
  (helper.getNode('dev') as unknown as NodeJS.EventEmitter).on('input', (msg: { payload: Cmd }) => {
    const cmd = msg.payload;
    seen.push(cmd);
    adapter.receive({ payload: { commandId: cmd.id, success: true } } as never);
  });
  return seen;
}

/** The last command each asset received: `ev1 10 (asked 11)`. */
function latest(seen: Cmd[]): string[] {
  const last = new Map<string, Cmd>();
  for (const c of seen) last.set(c.assetId, c);
  return [...last.values()]
    .sort((a, b) => a.assetId.localeCompare(b.assetId))
    .map(
      (c) => `${c.assetId} ${c.valueKw}${c.askedKw !== undefined ? ` (asked ${c.askedKw})` : ''}`,
    );
}

/** Status texts a node shows, as they come. */
function statuses(id: string): { fill: string; shape: string; text: string }[] {
  const seen: { fill: string; shape: string; text: string }[] = [];
  (helper.getNode(id) as unknown as NodeJS.EventEmitter).on(
    'call:status',
    (call: { args: [{ fill: string; shape: string; text: string }] }) => seen.push(call.args[0]),
  );
  return seen;
}

const ask = (kw: number) => ({
  payload: ['ev1', 'ev2'].map((assetId) => ({ assetId, type: 'SET_CHARGE_RATE', valueKw: kw })),
});

describe('nodes: site limits (qe-coordinator limits, qe-meter, qe-limit)', function () {
  this.timeout(20_000);
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach((done) => {
    helper.unload().then(() => done(), done);
  });

  it('meter readings re-allocate the setpoints: the commands carry valueKw, askedKw and limitedBy; msg.limited says what came down', async () => {
    await helper.load(allNodes(), site());
    const seen = device();
    const metered = inbox('metered');
    const meterStatus = statuses('meter');
    should(siteOf().limiter).be.ok();

    // The building meter has not been read: it counts as its worst case, 10 kW of 30.
    helper.getNode('disp').receive(ask(11) as never);
    await until(() => seen.length >= 2, 'the first two setpoints');
    should(latest(seen)).eql(['ev1 10 (asked 11)', 'ev2 10 (asked 11)']);
    should(seen[0]?.limitedBy).match(/root/);

    // 20 kW in the building: 5 kW each, at once.
    helper.getNode('meter').receive({ payload: 20, topic: 'building' } as never);
    await metered.count(1);
    await until(() => latest(seen).join() === 'ev1 5 (asked 11),ev2 5 (asked 11)', '5 kW each');
    const first = metered.msgs[0] as { topic: string; payload: number; limited: unknown[] };
    should(first.topic).equal('building'); // the message passed on as it came
    should(first.payload).equal(20);
    should(first.limited).have.length(2);
    should(first.limited[0]).have.properties({ askedKw: 11, kw: 5, reason: 'meter building' });
    should(meterStatus[meterStatus.length - 1]?.text).match(/^20 kW \d\d:\d\d:\d\d$/);

    // The building drops to 2 kW: room for what the chargers asked; nothing limited.
    helper.getNode('meter').receive({ payload: { kw: [1, 0.5, 0.5] } } as never);
    await metered.count(2);
    await until(() => latest(seen).join() === 'ev1 11,ev2 11', 'back to 11 kW each');
    should((metered.msgs[1] as { limited: unknown[] }).limited).eql([]);
    should(meterStatus[meterStatus.length - 1]?.text).match(/^1\/0\.5\/0\.5 kW /);
    should(inbox('caught').msgs).have.length(0);
  });

  it('a bad reading reaches a Catch node naming the field; the readings before it are kept', async () => {
    await helper.load(allNodes(), site());
    const caught = inbox('caught');
    const metered = inbox('metered');
    helper
      .getNode('meter')
      .receive({ payload: [{ kw: 4 }, { a: [10, 12, 11] }, { kw: 'lots' }, { kw: 1 }] } as never);
    await caught.count(1);
    const err = (caught.msgs[0] as { error: { message: string; source: { id: string } } }).error;
    should(err.source.id).equal('meter');
    should(err.message).match(/qe-meter: msg\.payload\[2\]: reading\.kw .*"lots"/);
    // The A reading (the second) is the one in force; the fourth was never measured.
    const root = siteOf().limiter?.meters.loads(Date.now()).get('root');
    should(root?.kw).be.approximately((33 * 230) / 1000, 1e-9);
    should(siteOf().limiter?.meters.stale(Date.now())).eql([]);
    await settle();
    should(metered.msgs).have.length(0); // nothing sent on an error

    // A number with no meter named on the node, and a payload of another kind.
    helper.getNode('meter').receive({ payload: 'twelve' } as never);
    await caught.count(2);
    should((caught.msgs[1] as { error: { message: string } }).error.message).match(
      /qe-meter: msg\.payload must be a number \(kW\) or a reading/,
    );
  });

  it('qe-limit: a cap with an expiry shows in status and output, brings the setpoints down, and lifts when it expires', async () => {
    await helper.load(allNodes(), site());
    const seen = device();
    const out = inbox('limits');
    const limitStatus = statuses('limit');
    helper.getNode('meter').receive({ payload: 0 } as never);
    helper.getNode('disp').receive(ask(11) as never);
    await until(() => latest(seen).join() === 'ev1 11,ev2 11', '11 kW each');
    const before = out.msgs.length;

    const expiresAt = Date.now() + 1500;
    helper.getNode('limit').receive({
      payload: { id: 'dso-1', source: 'grid-operator', importKw: 12, expiresAt },
    } as never);
    await out.count(before + 1);
    const set = out.msgs[before] as { topic: string; payload: { limits: unknown[] } };
    should(set.topic).equal('LIMITS_CHANGED');
    should(set.payload.limits).containEql({
      scope: 'circuit',
      target: 'root',
      limit: 'importKw',
      value: 12,
      source: 'grid-operator',
      sourceId: 'dso-1',
      until: expiresAt,
    });
    should(limitStatus[limitStatus.length - 1]).have.properties({ fill: 'yellow', shape: 'dot' });
    should(limitStatus[limitStatus.length - 1]?.text).match(
      /^root ≤ 12 kW \(grid-operator\) until \d\d:\d\d:\d\d$/,
    );
    await until(() => latest(seen).join() === 'ev1 6 (asked 11),ev2 6 (asked 11)', '6 kW each');

    // It expires by itself: the limits go back to the configuration, the setpoints go up.
    await until(
      () => out.msgs.slice(before + 1).some((m) => !JSON.stringify(m.payload).includes('dso-1')),
      'a LIMITS_CHANGED without the cap',
    );
    should(limitStatus[limitStatus.length - 1]).have.properties({
      fill: 'green',
      text: 'root ≤ 30 kW (config)',
    });
    await until(() => latest(seen).join() === 'ev1 11,ev2 11', 'back to 11 kW each');

    // A cap on assets, then a clear; a bad cap in an array keeps the ones before it.
    const caught = inbox('caught');
    helper.getNode('limit').receive({
      payload: [
        { id: '14a', source: 'grid-operator', assets: '*', assetMaxKw: 4.2 },
        { id: 'bad', source: 'flow', importKw: -1 },
      ],
    } as never);
    await caught.count(1);
    should((caught.msgs[0] as { error: { message: string } }).error.message).match(
      /qe-limit: msg\.payload\[1\]: cap\.importKw must be a number >= 0/,
    );
    await until(() => latest(seen).join() === 'ev1 4.2 (asked 11),ev2 4.2 (asked 11)', '4.2 each');
    helper.getNode('limit').receive({ payload: { id: '14a', clear: true } } as never);
    await until(() => latest(seen).join() === 'ev1 11,ev2 11', 'back to 11 kW after the clear');
  });

  it('qe-meter: red ring while the meter is stale (before its first reading and after staleAfterS)', async () => {
    const limits = { ...LIMITS, meters: [{ id: 'building', circuit: 'root', staleAfterS: 0.5 }] };
    await helper.load(allNodes(), site(limits));
    const meterStatus = statuses('meter');
    const stale = { fill: 'red', shape: 'ring', text: 'qe-meter.status.stale' };
    await settle();
    helper.getNode('meter').receive({ payload: 3 } as never);
    await until(() => meterStatus.some((s) => s.fill === 'green'), 'a green status');
    should(meterStatus[meterStatus.length - 1]?.text).match(/^3 kW /);
    await until(() => meterStatus[meterStatus.length - 1]?.fill === 'red', 'stale again');
    should(meterStatus[meterStatus.length - 1]).eql(stale);
  });

  it('a bad limits configuration fails the coordinator naming the field: its users refuse input with it', async () => {
    const bad = { ...LIMITS, circuits: [{ id: 'root', importKw: -5 }] };
    await helper.load(allNodes(), site(bad));
    const caught = inbox('caught');
    helper.getNode('meter').receive({ payload: 3 } as never);
    helper.getNode('disp').receive(ask(1) as never);
    await caught.count(2);
    for (const m of caught.msgs) {
      should((m as { error: { message: string } }).error.message).match(
        /qe-coordinator depot: limits: circuits\[0\]\.importKw must be a number/,
      );
    }
    await helper.unload();

    // Not JSON at all.
    await helper.load(allNodes(), site('{"circuits": ['));
    const caught2 = inbox('caught');
    helper.getNode('limit').receive({ payload: { id: 'x', clear: true } } as never);
    await caught2.count(1);
    should((caught2.msgs[0] as { error: { message: string } }).error.message).match(
      /qe-coordinator depot: qe-coordinator: limits is not valid JSON/,
    );
  });

  it('without limits on the coordinator, qe-meter and qe-limit say so; a meter that is not one of the limits too', async () => {
    await helper.load(
      allNodes(),
      onTab([
        coordinator(),
        { id: 'meter', type: 'qe-meter', coordinator: 'coord', meter: 'building', wires: [[]] },
        { id: 'limit', type: 'qe-limit', coordinator: 'coord', wires: [[]] },
        ...catcher(),
      ]),
    );
    should(siteOf().limiter).be.null();
    const caught = inbox('caught');
    helper.getNode('meter').receive({ payload: 3 } as never);
    await caught.count(1);
    helper.getNode('limit').receive({ payload: { id: 'x', clear: true } } as never);
    await caught.count(2);
    const texts = caught.msgs.map((m) => (m as { error: { message: string } }).error.message);
    should(texts[0]).match(/qe-meter: site depot has no limits/);
    should(texts[1]).match(/qe-limit: site depot has no limits/);
    await helper.unload();

    const flow = site(LIMITS).map((n) => (n.id === 'meter' ? { ...n, meter: 'garage' } : n));
    await helper.load(allNodes(), flow);
    const caught2 = inbox('caught');
    helper.getNode('meter').receive({ payload: 3 } as never);
    await caught2.count(1);
    should((caught2.msgs[0] as { error: { message: string } }).error.message).match(
      /qe-meter: meter "garage" is not one of the meters of site depot \(building\)$/,
    );
  });

  it('a partial deploy ("nodes") leaves no duplicate listeners; removing the nodes frees them', async () => {
    const flow = site();
    await helper.load(allNodes(), flow);
    const s = siteOf();
    const subscribers = s.eventBus.subscriberCount();
    for (let i = 1; i <= 3; i++) {
      const changed = flow.map((n) =>
        n.type === 'qe-meter' || n.type === 'qe-limit' ? { ...n, name: `v${i}` } : n,
      );
      await helper.setFlows(changed, 'nodes');
    }
    should(siteOf()).equal(s);
    should(s.eventBus.subscriberCount()).equal(subscribers);
    // One limit node: one LIMITS_CHANGED message a change.
    const out = inbox('limits');
    helper
      .getNode('limit')
      .receive({ payload: { id: 'dso-1', source: 'grid-operator', importKw: 20 } } as never);
    await out.count(1);
    await settle(10);
    should(out.msgs).have.length(1);
    const without = flow.filter((n) => n.type !== 'qe-meter' && n.type !== 'qe-limit');
    await helper.setFlows(without, 'nodes');
    should(s.eventBus.subscriberCount()).equal(subscribers - 2); // one each
  });
});
