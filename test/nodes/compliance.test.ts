import should from 'should';
import { BatterySimulator } from '../../src/sim/battery';
import { untilWith } from '../helpers/wait';
import { allNodes, catcher, coordinator, type FlowNode, inbox, onTab, siteOf } from './flows';
import { helper } from './runtime';

// Compliance through Node-RED: a simulated battery (real Modbus TCP on loopback) that runs the
// wrong way; qe-events sends ASSET_DEVIATION, qe-modbus shows the deviation in its status
// (as a Status node sees it), and once the battery is fixed, ASSET_COMPLIANT. The grace is
// the default 5 s of a battery: the waits are bounded, nothing asserts on durations.

const nodeTypes = () => [
  ...allNodes(),
  require('../../nodes/qe-modbus-connection/qe-modbus-connection.js').default,
  require('../../nodes/qe-modbus/qe-modbus.js').default,
];

const until = untilWith({ rounds: 1500 });

interface StatusMsg {
  status: { fill?: string; shape?: string; text?: string };
}

function flow(port: number): FlowNode[] {
  return onTab([
    coordinator({ commandTimeoutSeconds: 2, retryBaseSeconds: 0.1, maxRetries: 1 }),
    {
      id: 'bus',
      type: 'qe-modbus-connection',
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      timeoutMs: 200,
    },
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['mb']] },
    {
      id: 'mb',
      type: 'qe-modbus',
      coordinator: 'coord',
      connection: 'bus',
      batteries: [
        {
          assetId: 'ast_batt_001',
          unitId: 1,
          profile: 'generic',
          ratedChargeKw: 40,
          ratedDischargeKw: 40,
          pollSeconds: 0.2,
        },
      ],
      wires: [[], []],
    },
    {
      id: 'ev',
      type: 'qe-events',
      coordinator: 'coord',
      eventTypes: ['ASSET_DEVIATION', 'ASSET_COMPLIANT'],
      outputs: 2,
      wires: [['dev'], ['ok']],
    },
    { id: 'dev', type: 'helper' },
    { id: 'ok', type: 'helper' },
    { id: 'st', type: 'status', scope: ['mb'], wires: [['statuses']] },
    { id: 'statuses', type: 'helper' },
    ...catcher(),
  ]);
}

describe('nodes: compliance (qe-events, qe-modbus status)', () => {
  let sim: BatterySimulator | null = null;
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
    await sim?.close();
    sim = null;
  });

  it('a battery running the wrong way: ASSET_DEVIATION out of qe-events and in the status, then ASSET_COMPLIANT', async () => {
    sim = new BatterySimulator({ tickMs: 0, wrongWay: true });
    await sim.start();
    await helper.load(nodeTypes(), flow(sim.port));
    const dev = inbox('dev');
    const ok = inbox('ok');
    const statuses = inbox('statuses');
    const site = siteOf();
    const s = sim;
    await until(() => site.stateMachine('ast_batt_001')?.currentState === 'IDLE', 'polled');
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_batt_001', type: 'SET_DISCHARGE_RATE', valueKw: 10 },
    } as never);
    await until(() => s.state(1).powerKw === 10, 'charging the wrong way');
    await dev.count(1);
    should(dev.msgs[0]).have.properties({ topic: 'ASSET_DEVIATION' });
    should(dev.msgs[0]?.payload).containDeep({
      assetId: 'ast_batt_001',
      setpointKw: -10,
      measuredKw: 10,
    });
    const deviating = (m: unknown) =>
      /^ast_batt_001: 10 kW runs the wrong way \(setpoint -10 kW\)$/.test(
        (m as StatusMsg).status.text ?? '',
      );
    await until(() => statuses.msgs.some(deviating), 'the deviation in the status');
    s.setQuirks({ wrongWay: false });
    await ok.count(1);
    should(ok.msgs[0]?.payload).containDeep({ assetId: 'ast_batt_001', measuredKw: -10 });
    const back = ok.msgs[0]?.payload as { deviatedForMs: number };
    should(back.deviatedForMs).be.above(0);
    await until(
      () =>
        !deviating(statuses.msgs.at(-1)) &&
        (statuses.msgs.at(-1) as unknown as StatusMsg).status.fill === 'green',
      'the status back to green',
    );
    should(dev.msgs).have.length(1);
  });
});
