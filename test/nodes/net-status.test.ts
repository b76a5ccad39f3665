import net from 'node:net';
import should from 'should';
import type { ModbusConnectionNode } from '../../nodes/qe-modbus-connection/qe-modbus-connection';
import { BatterySimulator } from '../../src/sim/battery';
import { untilWith } from '../helpers/wait';
import { allNodes, catcher, coordinator, type FlowNode, inbox, onTab } from './flows';
import { helper } from './runtime';

// A listener or a bus that cannot open: the user nodes (qe-ocpp, qe-modbus) say why in their
// status, as Status nodes see it, until the cause goes away. Real sockets on loopback, a real
// Node-RED runtime; every wait bounded, nothing asserts on how long something took.

const nodeTypes = () => [
  ...allNodes(),
  require('../../nodes/qe-ocpp-server/qe-ocpp-server.js').default,
  require('../../nodes/qe-ocpp/qe-ocpp.js').default,
  require('../../nodes/qe-modbus-connection/qe-modbus-connection.js').default,
  require('../../nodes/qe-modbus/qe-modbus.js').default,
];

interface StatusMsg {
  status: { fill?: string; shape?: string; text?: string; source: { id: string } };
}

const until = untilWith({ rounds: 600 });

/** A port on 127.0.0.1 that nothing listens on (bound on port 0, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A Status node that watches `id`, wired to a helper node `statuses`. */
function statusWatch(id: string): FlowNode[] {
  return [
    { id: 'st', type: 'status', scope: [id], wires: [['statuses']] },
    { id: 'statuses', type: 'helper' },
  ];
}

function ocppFlow(port: number): FlowNode[] {
  return onTab([
    coordinator(),
    {
      id: 'srv',
      type: 'qe-ocpp-server',
      mode: 'port',
      host: '127.0.0.1',
      port,
      path: '/ocpp',
      protocols: 'both',
      security: 'none',
    },
    {
      id: 'ocpp',
      type: 'qe-ocpp',
      coordinator: 'coord',
      server: 'srv',
      chargers: [
        { identity: 'CP001', assetId: 'ast_ev_001', ratedKw: 22 },
        { identity: 'CP002', assetId: 'ast_ev_002', ratedKw: 22 },
      ],
      wires: [[], []],
    },
    ...statusWatch('ocpp'),
    ...catcher(),
  ]);
}

function modbusFlow(port: number): FlowNode[] {
  return onTab([
    coordinator(),
    {
      id: 'bus',
      type: 'qe-modbus-connection',
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      timeoutMs: 200,
    },
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
    ...statusWatch('mb'),
    ...catcher(),
  ]);
}

describe('nodes: the status says why a listener or a bus cannot open', () => {
  let blocker: net.Server | null = null;
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
    if (blocker) await new Promise((r) => blocker?.close(r));
    blocker = null;
  });

  it('qe-ocpp: "port N in use" while its central system cannot listen; the error reaches Catch once; a redeploy on a free port clears it', async () => {
    const held = net.createServer();
    blocker = held;
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
    const port = (held.address() as net.AddressInfo).port;
    // The Catch and Status nodes first, so that their helper nodes are watched from the start;
    // then the OCPP nodes, by a deploy of the modified nodes.
    const f = ocppFlow(port);
    const watchers = new Set(['f1', 'coord', 'st', 'statuses', 'catchAll', 'caught']);
    await helper.load(
      nodeTypes(),
      f.filter((n) => watchers.has(n.id)),
    );
    const statuses = inbox('statuses');
    const caught = inbox('caught');
    await helper.setFlows(f, 'nodes');
    const texts = () => statuses.msgs.map((m) => (m as unknown as StatusMsg).status.text);
    await until(() => texts().includes(`port ${port} in use`), 'the cause in the status');
    should((statuses.msgs.at(-1) as unknown as StatusMsg).status).have.properties({
      fill: 'red',
      shape: 'ring',
      text: `port ${port} in use`,
    });
    should((statuses.msgs.at(-1) as unknown as StatusMsg).status.source.id).equal('ocpp');
    await until(() => caught.msgs.length > 0, 'the error caught');
    const err = caught.msgs[0]?.error as { message: string; source: { id: string } };
    should(err.message).equal(
      `qe-ocpp-server: central system: port ${port} on 127.0.0.1 is in use`,
    );
    should(err.source.id).equal('srv');

    // The user picks another port: the server and its users restart, and it listens.
    await helper.setFlows(
      f.map((n) => (n.id === 'srv' ? { ...n, port: 0 } : n)),
      'nodes',
    );
    await until(
      () => texts().at(-1) === 'qe-ocpp.status.connected',
      'the status back to the chargers',
    );
    should((statuses.msgs.at(-1) as unknown as StatusMsg).status).have.properties({
      fill: 'red',
      shape: 'ring',
    });
    const srv = helper.getNode('srv') as unknown as { ready: Promise<void>; port: number | null };
    await srv.ready;
    should(srv.port).be.a.Number().and.not.equal(port);
    // once, with the full message: the redeploy did not report it again
    should(caught.msgs).have.length(1);
  });

  it('qe-modbus: "host:port refused" through the reconnect attempts, then connected once the device is there', async function () {
    this.timeout(20_000);
    const port = await closedPort();
    await helper.load(nodeTypes(), modbusFlow(port));
    const statuses = inbox('statuses');
    const texts = () => statuses.msgs.map((m) => (m as unknown as StatusMsg).status.text);
    const refused = `127.0.0.1:${port} refused`;
    await until(() => texts().includes(refused), 'the cause in the status');
    should((statuses.msgs.at(-1) as unknown as StatusMsg).status).have.properties({
      fill: 'red',
      shape: 'ring',
      text: refused,
    });
    // The bus tries again (0.5 s, then 1 s later): the status keeps the cause meanwhile.
    const bus = helper.getNode('bus') as unknown as ModbusConnectionNode;
    let attempts = 0;
    bus.connection?.on('state', (s: string) => {
      if (s === 'connecting') attempts++;
    });
    await until(() => attempts >= 2, 'two more attempts', 600);
    should(
      texts()
        .slice(texts().indexOf(refused))
        .filter((t) => t !== refused),
    ).eql([]);

    // The device comes up on that port: the next attempt connects and the status says so.
    sim = new BatterySimulator({ port, tickMs: 0 });
    await sim.start();
    await until(() => texts().at(-1) === 'qe-modbus.status.connected', 'connected', 1500);
    should((statuses.msgs.at(-1) as unknown as StatusMsg).status).have.properties({
      fill: 'green',
      shape: 'dot',
    });
  });
});
