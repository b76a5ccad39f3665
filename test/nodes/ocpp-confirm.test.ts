import should from 'should';
import { ChargePointSimulator } from '../../src/sim/charge-point';
import { untilWith } from '../helpers/wait';
import { allNodes, catcher, coordinator, type FlowNode, inbox, onTab, siteOf } from './flows';
import { helper } from './runtime';

// Verified dispatch through Node-RED: what qe-ocpp learns of a charger (no smart charging,
// no GetCompositeSchedule) comes out once on output 2 (topic `capability`) and shows in the
// node's status, as a Status node sees it, until the charger boots again. A simulated charger
// on loopback; every wait bounded, nothing asserts on how long something took.

const nodeTypes = () => [
  ...allNodes(),
  require('../../nodes/qe-ocpp-server/qe-ocpp-server.js').default,
  require('../../nodes/qe-ocpp/qe-ocpp.js').default,
];

interface StatusMsg {
  status: { fill?: string; shape?: string; text?: string };
}

const until = untilWith({ rounds: 600 });

function flow(chargers?: Record<string, unknown>[]): FlowNode[] {
  return onTab([
    coordinator({ commandTimeoutSeconds: 3, retryBaseSeconds: 0.2 }),
    {
      id: 'srv',
      type: 'qe-ocpp-server',
      mode: 'port',
      host: '127.0.0.1',
      port: 0,
      path: '/ocpp',
      protocols: 'both',
      security: 'none',
      callTimeoutSeconds: 1,
    },
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['ocpp']] },
    {
      id: 'ocpp',
      type: 'qe-ocpp',
      coordinator: 'coord',
      server: 'srv',
      chargers: chargers ?? [
        { identity: 'CP001', assetId: 'ev1', confirm: 'confirmed' },
        { identity: 'CP002', assetId: 'ev2' },
      ],
      wires: [['results'], ['events']],
    },
    { id: 'results', type: 'helper' },
    { id: 'events', type: 'helper' },
    { id: 'st', type: 'status', scope: ['ocpp'], wires: [['statuses']] },
    { id: 'statuses', type: 'helper' },
    ...catcher(),
  ]);
}

const sims: ChargePointSimulator[] = [];

describe('nodes: qe-ocpp verified dispatch', () => {
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach(async () => {
    await Promise.all(sims.splice(0).map((s) => s.stop().catch(() => {})));
    await helper.unload();
  });

  it('a charger without smart charging, one without GetCompositeSchedule: said once, in the status until a reboot', async () => {
    await helper.load(nodeTypes(), flow());
    const srv = helper.getNode('srv') as unknown as { ready: Promise<void>; port: number | null };
    await srv.ready;
    const site = siteOf();
    const events = inbox('events');
    const statuses = inbox('statuses');
    const lastStatus = () => (statuses.msgs.at(-1) as unknown as StatusMsg | undefined)?.status;
    const common = {
      endpoint: `ws://127.0.0.1:${srv.port}/ocpp`,
      meterIntervalMs: 0,
      backoff: { initialDelay: 20, maxDelay: 100 },
    };
    const a = new ChargePointSimulator({
      ...common,
      identity: 'CP001',
      protocol: 'ocpp1.6',
      smartCharging: false,
    });
    const b = new ChargePointSimulator({
      ...common,
      identity: 'CP002',
      protocol: 'ocpp2.0.1',
      compositeSchedule: false,
    });
    sims.push(a, b);
    await Promise.all([a.start(), b.start()]);
    // (The test runtime has no message catalogue: the count shows as its key.)
    await until(
      () => lastStatus()?.fill === 'green',
      `both connected (${JSON.stringify(statuses.msgs.map((m) => (m as unknown as StatusMsg).status))})`,
    );
    should(lastStatus()?.text).equal('qe-ocpp.status.connected');

    const send = (id: string, assetId: string, valueKw: number) =>
      helper.getNode('disp').receive({
        payload: { id, assetId, type: 'SET_CHARGE_RATE', valueKw },
      } as never);
    const ended = (id: string) => {
      const s = site.engine.getCommand(id)?.status;
      return s === 'COMPLETED' || s === 'FAILED';
    };
    for (const [i, kw] of [5, 6, 7].entries()) {
      send(`a${i}`, 'ev1', kw);
      send(`b${i}`, 'ev2', kw);
      await until(() => ended(`a${i}`) && ended(`b${i}`), `round ${i} ended`);
    }
    should(['a0', 'a1', 'a2'].map((id) => site.engine.getCommand(id)?.status)).eql([
      'FAILED',
      'FAILED',
      'FAILED',
    ]);
    should(site.engine.getCommand('a1')?.lastError).equal(
      'charger CP001 does not support smart charging (answered NotImplemented to SetChargingProfile); not sent',
    );
    should(['b0', 'b1', 'b2'].map((id) => site.engine.getCommand(id)?.status)).eql([
      'COMPLETED',
      'COMPLETED',
      'COMPLETED',
    ]);
    should(b.activeLimitW).equal(7000);

    const told = events.msgs.filter((m) => m.topic === 'capability');
    should(told.map((m) => (m.payload as { capability: string }).capability).sort()).eql([
      'compositeSchedule',
      'smartCharging',
    ]);
    should(
      told.find((m) => (m.payload as { identity: string }).identity === 'CP001')?.payload,
    ).have.properties({ capability: 'smartCharging', value: false, assetIds: ['ev1'] });
    await until(
      () =>
        lastStatus()?.text ===
        'qe-ocpp.status.connected; CP001: no smart charging; CP002: limits not confirmed',
      `the status says what they lack (${lastStatus()?.text})`,
    );
    should(lastStatus()?.fill).equal('yellow');

    // CP001 boots again: forgotten, out of the status.
    await a.reboot({ downMs: 10 });
    await until(
      () => lastStatus()?.text === 'qe-ocpp.status.connected; CP002: limits not confirmed',
      `CP001 forgotten after its reboot (${lastStatus()?.text})`,
    );
  });

  it("onDeviation 'reapply-other-unit' is taken; an unknown one refuses input, naming the charger", async () => {
    await helper.load(
      nodeTypes(),
      flow([{ identity: 'CP001', assetId: 'ev1', onDeviation: 'reapply-other-unit' }]),
    );
    const statuses = inbox('statuses');
    const srv = helper.getNode('srv') as unknown as { ready: Promise<void> };
    await srv.ready;
    await until(() => statuses.msgs.length > 0, 'a status');
    should((statuses.msgs.at(-1) as unknown as StatusMsg).status.text).not.equal(
      'qe-ocpp.status.misconfigured',
    );
    should(siteOf().stateMachine('ev1')).be.ok(); // served: its machine exists
    await helper.unload();

    await helper.load(
      nodeTypes(),
      flow([{ identity: 'CP001', assetId: 'ev1', onDeviation: 'other-unit' }]),
    );
    const caught = inbox('caught');
    helper.getNode('ocpp').receive({ payload: {} } as never);
    await until(() => caught.msgs.length > 0, 'the error caught');
    should((caught.msgs[0] as unknown as { error: { message: string } }).error.message).equal(
      'Error: qe-ocpp: charger [0] (CP001): onDeviation must be report, reapply or reapply-other-unit',
    );
  });
});
