import net from 'node:net';
import { RPCClient } from 'ocpp-rpc';
import should from 'should';
import type { FlowNode } from './flows';
import { helper } from './runtime';

// The qe-ocpp-server node in a real Node-RED runtime, against what the network can do to it:
// a malformed upgrade URL on Node-RED's own HTTP server (path mode), and what a connected
// charger sees when the server node is redeployed. Real sockets on loopback; every wait ends
// on an event (or mocha's timeout).

const serverNode = () => require('../../nodes/qe-ocpp-server/qe-ocpp-server.js').default;

type Client = InstanceType<typeof RPCClient>;
const clients: Client[] = [];

function charger(endpoint: string, identity = 'CP1'): Client {
  const c = new RPCClient({
    endpoint,
    identity,
    protocols: ['ocpp1.6'],
    strictMode: true,
    reconnect: false,
  } as never);
  clients.push(c);
  return c;
}

function server(extra: Record<string, unknown>): FlowNode[] {
  return [
    {
      id: 'srv',
      type: 'qe-ocpp-server',
      mode: 'port',
      host: '127.0.0.1',
      port: 0,
      path: '/ocpp',
      protocols: 'both',
      security: 'none',
      allowUnknown: true,
      ...extra,
    },
  ];
}

/** Sends a WebSocket upgrade request for `path` as raw text; resolves to the whole answer. */
function rawUpgrade(port: number, path: string, failed: Promise<never>): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (d) => {
    received += d.toString('latin1');
  });
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n',
  );
  const closed = new Promise<string>((r) => socket.once('close', () => r(received)));
  return Promise.race([closed, failed]).finally(() => socket.destroy());
}

describe('nodes: qe-ocpp-server against the network', () => {
  // Outside mocha, an uncaught exception or an unhandled rejection ends Node-RED; mocha
  // fails a test on the first only. Both fail these tests, at once.
  const faults: unknown[] = [];
  let fail: (err: Error) => void = () => {};
  let failed: Promise<never>;
  const record = (err: unknown) => {
    faults.push(err);
    fail(new Error(`the process got an uncaught fault: ${(err as Error)?.stack ?? String(err)}`));
  };

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(() => {
    faults.length = 0;
    failed = new Promise<never>((_, reject) => {
      fail = reject;
    });
    failed.catch(() => {});
    process.on('uncaughtException', record);
    process.on('unhandledRejection', record);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close({ force: true }).catch(() => {})));
    await helper.unload();
    process.off('uncaughtException', record);
    process.off('unhandledRejection', record);
    should(faults).eql([]);
  });

  it("path mode: /ocpp/%FF and /ocpp/%C0%AE on Node-RED's own port get a 400; chargers still connect", async () => {
    await helper.load([serverNode()], server({ mode: 'path' }));
    const port = Number(new URL(helper.url()).port);
    for (const path of ['/ocpp/%FF', '/ocpp/%C0%AE']) {
      should(await rawUpgrade(port, path, failed)).startWith('HTTP/1.1 400 Bad Request\r\n');
    }
    const cp = charger(`ws://127.0.0.1:${port}/ocpp`);
    await Promise.race([cp.connect(), failed]);
    const hb = (await cp.call('Heartbeat', {})) as { currentTime: string };
    should(hb.currentTime).be.a.String();
    // Node-RED itself still answers on that port.
    const res = await fetch(`${helper.url()}/no-such-page`);
    should(res.status).equal(404);
  });

  for (const mode of ['port', 'path'] as const) {
    it(`${mode} mode: a redeploy of the server closes its chargers with 1001 (going away)`, async () => {
      const flow = server({ mode });
      await helper.load([serverNode()], flow);
      const node = helper.getNode('srv') as unknown as { ready: Promise<void>; port: number };
      await node.ready;
      const port = mode === 'port' ? node.port : Number(new URL(helper.url()).port);
      const cp = charger(`ws://127.0.0.1:${port}/ocpp`);
      await cp.connect();
      const closed = new Promise<{ code: number; reason: string }>((r) => cp.once('close', r));
      await helper.setFlows(
        flow.map((n) => ({ ...n, name: 'redeployed' })),
        'nodes',
      );
      const e = await closed;
      should(e.code).equal(1001);
      should(String(e.reason)).equal('central system closing');
    });
  }
});
