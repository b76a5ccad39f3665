/**
 * The Node-RED face of the fleet link, in a real runtime against a real MQTT broker (aedes
 * on a loopback port): qe-fleet-broker and qe-fleet. A central client (MQTT.js) publishes
 * schedules and reads acks and presence as an optimiser would; the commands come out of
 * qe-fleet into a dispatcher and an adapter. Broker outages, credentials and partial deploys.
 * Real time; every wait is bounded (`until`, mocha's timeout); nothing asserts on how long
 * something took.
 */
import { createServer, type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import should from 'should';
import { startBroker, type TestBroker } from '../helpers/mqtt-broker';
import { selfSignedCertificate } from '../helpers/tls';
import { untilWith } from '../helpers/wait';
import { allNodes, coordinator, type FlowNode, onTab, siteOf } from './flows';
import { coreNode, helper } from './runtime';

const until = untilWith({ ms: 15_000 });

interface Seen {
  topic: string;
  payload: Record<string, unknown>;
  retain: boolean;
}

/** A central client on the broker: what it receives under `qe/v1/depot/#`, and publishing. */
async function central(url: string): Promise<{
  client: MqttClient;
  seen: Seen[];
  publish(kind: string, body: unknown): Promise<void>;
  acks(kind: string): Record<string, unknown>[];
}> {
  const client = await mqtt.connectAsync(url, { clientId: `central-${Math.random()}` });
  const seen: Seen[] = [];
  client.on('message', (topic, buf, packet) => {
    let payload: Record<string, unknown> = {};
    try {
      payload = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
    } catch {}
    seen.push({ topic, payload, retain: packet.retain });
  });
  await client.subscribeAsync('qe/v1/depot/#', { qos: 1 });
  return {
    client,
    seen,
    publish: async (kind, body) => {
      await client.publishAsync(`qe/v1/depot/${kind}`, JSON.stringify(body), { qos: 1 });
    },
    acks: (kind) => seen.filter((s) => s.topic === `qe/v1/depot/${kind}/ack`).map((s) => s.payload),
  };
}

/** A schedule for ev1 in the optimiser's records format, starting this minute. */
function schedule(kw: number): unknown[] {
  const start = Math.floor(Date.now() / 60_000) * 60_000;
  return [0, 1].map((i) => ({
    timestamp: new Date(start + i * 15 * 60_000).toISOString(),
    ev_ev1_kw: kw,
  }));
}

/** coordinator depot, a broker node, qe-fleet -> dispatcher -> adapter (ev1) -> dev. */
function fleetFlow(url: string, extra: Record<string, unknown> = {}): FlowNode[] {
  return [
    ...onTab([
      coordinator(),
      {
        id: 'fleet',
        type: 'qe-fleet',
        coordinator: 'coord',
        broker: 'broker',
        assetMap: JSON.stringify({ ev1: 'ev1' }),
        ratedKw: '{}',
        timeZone: 'UTC',
        eventTypes: ['SCHEDULE_RECEIVED'],
        wires: [['disp', 'out1'], ['out2']],
        ...extra,
      },
      { id: 'out1', type: 'helper' },
      { id: 'out2', type: 'helper' },
      { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['adapter']] },
      { id: 'adapter', type: 'qe-adapter', coordinator: 'coord', assets: 'ev1', wires: [['dev']] },
      { id: 'dev', type: 'helper' },
    ]),
    { id: 'broker', type: 'qe-fleet-broker', url, protocolVersion: '4', keepalive: 5 },
  ];
}

/** What reaches a helper node, as it comes. */
function collect(id: string): Record<string, unknown>[] {
  const msgs: Record<string, unknown>[] = [];
  helper.getNode(id).on('input', (msg: Record<string, unknown>) => msgs.push(msg));
  return msgs;
}

/** The commands that reach the device, answered with success at once. */
function device(): { assetId: string; valueKw: number }[] {
  const seen: { assetId: string; valueKw: number }[] = [];
  const adapter = helper.getNode('adapter');
  (helper.getNode('dev') as unknown as NodeJS.EventEmitter).on(
    'input',
    (msg: { payload: { id: string; assetId: string; valueKw: number } }) => {
      seen.push(msg.payload);
      adapter.receive({ payload: { commandId: msg.payload.id, success: true } } as never);
    },
  );
  return seen;
}

/** The status texts a node shows, as they come. */
function statuses(id: string): { fill: string; shape: string; text: string }[] {
  const seen: { fill: string; shape: string; text: string }[] = [];
  (helper.getNode(id) as unknown as NodeJS.EventEmitter).on(
    'call:status',
    (call: { args: [{ fill: string; shape: string; text: string }] }) => seen.push(call.args[0]),
  );
  return seen;
}

/**
 * A broker that checks a username and password and counts connections (aedes behind a
 * loopback port), for the tests of credentials and of partial deploys.
 */
async function countingBroker(user: string, pass: string) {
  const { Aedes } = await import('aedes');
  const connects: string[] = [];
  const refused: string[] = [];
  const broker = await Aedes.createBroker({
    authenticate: (client, username, password, cb) => {
      const ok = user === '' || (username === user && password?.toString() === pass);
      if (!ok) refused.push(client.id);
      cb(ok ? null : Object.assign(new Error('not authorized'), { returnCode: 5 }), ok);
    },
  });
  broker.on('client', (c) => connects.push(c.id));
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    broker.handle(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    connects,
    refused,
    connected: () => broker.connectedClients,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** aedes behind TLS on a loopback port: `mqtts://127.0.0.1:<port>`. */
async function tlsBroker(key: string, cert: string) {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key, cert }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    broker.handle(s as unknown as Socket);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtts://127.0.0.1:${port}`,
    connected: () => broker.connectedClients,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('nodes: fleet gateway over MQTT (qe-fleet-broker, qe-fleet)', function () {
  this.timeout(30_000);
  let broker: TestBroker;
  let cc: Awaited<ReturnType<typeof central>> | null = null;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(async () => {
    broker = await startBroker();
  });
  afterEach(async () => {
    await helper.unload();
    await cc?.client.endAsync(true);
    cc = null;
    await broker.stop();
  });

  it('a schedule over MQTT comes out of output 1 as qe-schedule does, reaches the adapter, and is acked accepted, duplicate, rejected', async () => {
    await helper.load(allNodes(), fleetFlow(broker.url));
    const dev = device();
    const out1 = collect('out1');
    const out2 = collect('out2');
    const status = statuses('fleet');
    await until(() => status.some((s) => s.text === 'qe-fleet.status.connected'), 'connected');
    cc = await central(broker.url);

    await cc.publish('schedule', { scheduleId: 'plan-1', schedule: schedule(7) });
    await until(() => cc!.acks('schedule').length >= 1, 'the first ack');
    should(cc.acks('schedule')[0]).have.properties({ requestId: 'plan-1', status: 'accepted' });
    await until(() => dev.length >= 1, 'a command at the device');
    should(dev[0]).have.properties({ assetId: 'ev1', valueKw: 7 });
    // Output 1: the shape of qe-schedule's output.
    should(out1).have.length(1);
    const msg = out1[0] as {
      topic: string;
      payload: { assetId: string }[];
      schedule: Record<string, unknown>;
      plan: { scheduleId: string; assets: { assetId: string; count: number }[] };
    };
    should(msg.topic).equal('plan-1');
    // Its plan, which the dispatcher registered (the command reached the device above).
    should(msg.plan.scheduleId).equal('plan-1');
    should(msg.plan.assets).match([{ assetId: 'ev1', count: 1 }]);
    should(msg.payload.map((c) => c.assetId)).eql(['ev1']);
    should(msg.schedule).have.properties({ scheduleId: 'plan-1', commandCount: 1 });
    should(JSON.parse(JSON.stringify(msg.payload))).eql(msg.payload);

    // The same id again: a no-op answered duplicate; a bad schedule: rejected with the reason.
    await cc.publish('schedule', { scheduleId: 'plan-1', schedule: schedule(7) });
    await cc.publish('schedule', {
      scheduleId: 'plan-2',
      schedule: schedule(-5),
    });
    await until(() => cc!.acks('schedule').length >= 3, 'three acks');
    const [, dup, bad] = cc.acks('schedule');
    should(dup).have.properties({ requestId: 'plan-1', status: 'duplicate' });
    should(bad).have.properties({ requestId: 'plan-2', status: 'rejected' });
    should((bad as { error: { message: string } }).error.message).match(/ev_ev1_kw|negative|-5/);
    should(out1).have.length(1);
    should(dev).have.length(1);
    // Output 2 shows the acks for a debug node.
    await until(() => out2.filter((m) => m.topic !== 'connection').length >= 3, 'acks on output 2');
    // The status names the last schedule.
    should(status.at(-1)?.text).equal('qe-fleet.status.connected-schedule');
    // Events of the ticked types are published.
    should(cc.seen.some((s) => s.topic === 'qe/v1/depot/events/SCHEDULE_RECEIVED')).be.true();
  });

  it('hand-made commands over MQTT come out of output 1 with topic "commands" and are acked with their ids; caps without site limits are rejected', async () => {
    await helper.load(allNodes(), fleetFlow(broker.url));
    const dev = device();
    const out1 = collect('out1');
    const status = statuses('fleet');
    await until(() => status.some((s) => s.text === 'qe-fleet.status.connected'), 'connected');
    cc = await central(broker.url);
    await cc.publish('commands', {
      requestId: 'manual-1',
      commands: [{ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 2 }],
    });
    await until(() => cc!.acks('commands').length >= 1, 'the ack');
    should(cc.acks('commands')[0]).have.properties({ requestId: 'manual-1', status: 'accepted' });
    await until(() => dev.length >= 1, 'the command at the device');
    should(dev[0]).have.properties({ assetId: 'ev1', valueKw: 2 });
    // The ack's result names the command that was made.
    const id = (dev[0] as unknown as { id: string }).id;
    should(JSON.stringify(cc.acks('commands')[0]?.result)).containEql(id);
    should(out1.map((m) => m.topic)).eql(['commands']);
    should(out1[0]).not.have.property('schedule');
    // This coordinator has no limits: a cap is answered rejected, and nothing else happens.
    await cc.publish('limits', {
      requestId: 'cap-1',
      caps: [{ id: 'dso', source: 'grid-operator', importKw: 10 }],
    });
    await until(() => cc!.acks('limits').length >= 1, 'the caps ack');
    should(cc.acks('limits')[0]).have.properties({ requestId: 'cap-1', status: 'rejected' });
    should(out1).have.length(1);
  });

  it('presence is retained online while deployed, offline after the node closes', async () => {
    await helper.load(allNodes(), fleetFlow(broker.url));
    const status = statuses('fleet');
    await until(() => status.some((s) => s.text === 'qe-fleet.status.connected'), 'connected');
    // A client that arrives later still learns it: retained.
    cc = await central(broker.url);
    await until(
      () => cc!.seen.some((s) => s.topic === 'qe/v1/depot/presence' && s.retain),
      'retained presence',
    );
    const first = cc.seen.find((s) => s.topic === 'qe/v1/depot/presence');
    should(first?.payload).have.properties({ siteId: 'depot', status: 'online', contract: 1 });
    await helper.unload();
    await until(
      () =>
        cc!.seen.some((s) => s.topic === 'qe/v1/depot/presence' && s.payload.status === 'offline'),
      'offline presence',
    );
    const late = await central(broker.url);
    try {
      await until(
        () => late.seen.some((s) => s.topic === 'qe/v1/depot/presence' && s.retain),
        'retained presence for a late client',
      );
      should(late.seen.find((s) => s.topic === 'qe/v1/depot/presence')?.payload.status).equal(
        'offline',
      );
    } finally {
      await late.client.endAsync(true);
    }
  });

  it('the broker stops and starts: the status goes disconnected, then connected; the site dispatches on', async () => {
    await helper.load(allNodes(), fleetFlow(broker.url));
    const dev = device();
    const status = statuses('fleet');
    const out2 = collect('out2');
    await until(() => status.some((s) => s.text === 'qe-fleet.status.connected'), 'connected');
    cc = await central(broker.url);
    await cc.publish('schedule', { scheduleId: 'plan-1', schedule: schedule(5) });
    await until(() => dev.length >= 1, 'the first command');
    await cc.client.endAsync(true);
    cc = null;

    const before = status.length;
    await broker.stop();
    // While the broker is away: why, in short (the reconnects are refused).
    await until(
      () => status.slice(before).some((s) => s.fill === 'red' && /refused/.test(s.text)),
      'a red status saying refused',
    );
    should(status.slice(before).find((s) => /refused/.test(s.text))?.text).equal(
      `127.0.0.1:${broker.port} refused`,
    );
    // The site goes on without its broker: a command from the flow is dispatched.
    helper
      .getNode('disp')
      .receive({ payload: [{ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 }] } as never);
    await until(() => dev.some((c) => c.valueKw === 3), 'a command while the broker is away');

    const down = status.length;
    await broker.start();
    await until(() => status.slice(down).some((s) => s.fill === 'green'), 'connected again', {
      ms: 20_000,
    });
    should(
      out2
        .filter((m) => m.topic === 'connection')
        .map((m) => (m.payload as { status: string }).status),
    ).containDeepOrdered(['connected', 'disconnected', 'connected']);
    cc = await central(broker.url);
    await cc.publish('schedule', { scheduleId: 'plan-2', schedule: schedule(9) });
    await until(() => dev.some((c) => c.valueKw === 9), 'a schedule after the outage');
    should(siteOf().siteId).equal('depot');
  });

  it('username and password are credentials: sent to the broker, never in the flow; a wrong one shows in the status', async () => {
    const auth = await countingBroker('site-user', 's3cret');
    const runtime = helper as unknown as {
      _redNodes: { getFlows(): unknown };
      credentials: { get(id: string): Record<string, unknown> | undefined };
    };
    try {
      // Deployed as the editor deploys: the credentials inline in the broker node; the
      // runtime takes them out of the flow (the type declares them) into its store.
      await helper.load(allNodes(), []);
      const flow = fleetFlow(auth.url).map((n) =>
        n.id === 'broker'
          ? { ...n, credentials: { username: 'site-user', password: 's3cret' } }
          : n,
      );
      await helper.setFlows(flow as never, 'full');
      await until(() => auth.connected() === 1, 'connected with credentials');
      should(auth.connects).have.length(1);
      should(auth.connects[0]).match(/^qe-gw-depot-/);
      should(auth.refused).eql([]);
      // The flow as the runtime keeps (and would save) it: no username, no password.
      const text = JSON.stringify(runtime._redNodes.getFlows());
      should(text).match(/qe-fleet-broker/);
      should(text).not.match(/s3cret|site-user/);
      should(runtime.credentials.get('broker')).have.properties({
        username: 'site-user',
        password: 's3cret',
      });
      await helper.unload();

      // A wrong password: refused by the broker, said in the status.
      await helper.load(allNodes(), fleetFlow(auth.url), {
        broker: { username: 'site-user', password: 'wrong' },
      } as never);
      const bad = statuses('fleet');
      await until(() => bad.some((s) => s.fill === 'red'), 'a red status');
      should(auth.refused.length).be.above(0);
      should(bad.find((s) => s.fill === 'red')?.text).match(/authori[sz]ed/i);
    } finally {
      await helper.unload();
      await auth.close();
    }
  });

  it('a partial deploy ("nodes") leaves one client, and one answer to a request', async () => {
    const counting = await countingBroker('', '');
    try {
      const flow = fleetFlow(counting.url);
      await helper.load(allNodes(), flow);
      await until(() => counting.connected() === 1, 'one client');
      for (let i = 1; i <= 3; i++) {
        const changed = flow.map((n) => (n.id === 'fleet' ? { ...n, name: `v${i}` } : n));
        await helper.setFlows(changed, 'nodes');
        await until(() => counting.connects.length === i + 1, `client ${i + 1}`);
      }
      await new Promise((r) => setTimeout(r, 300));
      should(counting.connected()).equal(1);
      should(counting.connects).have.length(4);
      // The site's dispatching still works through the redeployed node.
      cc = await central(counting.url);
      const dev = device();
      await cc.publish('schedule', { scheduleId: 'after-redeploy', schedule: schedule(4) });
      await until(() => dev.length >= 1, 'a command after the redeploys');
      await until(() => cc!.acks('schedule').length >= 1, 'the ack');
      await new Promise((r) => setTimeout(r, 200));
      // One gateway answered, once.
      should(cc.acks('schedule').map((a) => a.status)).eql(['accepted']);
    } finally {
      await helper.unload();
      await cc?.client.endAsync(true);
      cc = null;
      await counting.close();
    }
  });

  it("TLS from a Node-RED tls-config node: connects to an mqtts:// broker whose certificate it trusts, refuses one it doesn't", async () => {
    const { key, cert } = selfSignedCertificate();
    const secure = await tlsBroker(key, cert);
    const nodes = [...allNodes(), coreNode('network/05-tls.js')];
    const withTls = (tlsNode: string) =>
      fleetFlow(secure.url).map((n) => (n.id === 'broker' ? { ...n, tls: tlsNode } : n));
    try {
      // The CA is the broker's own (self-signed) certificate, as tls-config's credentials.
      await helper.load(
        nodes,
        [
          ...withTls('tls'),
          { id: 'tls', type: 'tls-config', cert: '', key: '', ca: '', verifyservercert: true },
        ],
        { tls: { cadata: cert } } as never,
      );
      await until(() => secure.connected() === 1, 'connected over TLS');
      await helper.unload();
      await until(() => secure.connected() === 0, 'gone');

      // Without the CA the certificate is not trusted: no connection, and the status says why.
      await helper.load(nodes, [
        ...withTls('tls'),
        { id: 'tls', type: 'tls-config', cert: '', key: '', ca: '', verifyservercert: true },
      ]);
      const status = statuses('fleet');
      await until(() => status.some((s) => s.fill === 'red'), 'a red status');
      should(secure.connected()).equal(0);
      should(status.find((s) => s.fill === 'red')?.text).match(/^127\.0\.0\.1:\d+: /);
    } finally {
      await helper.unload();
      await secure.close();
    }
  });

  it('misconfigured: a bad broker URL, an unknown event type: the reason is logged as an error', async () => {
    await helper.load(allNodes(), [
      ...fleetFlow('http://127.0.0.1:1').filter((n) => n.id !== 'broker'),
      { id: 'broker', type: 'qe-fleet-broker', url: 'http://127.0.0.1:1' },
    ]);
    const logged = (
      helper.log() as unknown as { args: { level: number; msg: unknown; id?: string }[][] }
    ).args
      .map((a) => a[0])
      .filter((e) => e?.id === 'fleet' && e.level === 20)
      .map((e) => String(e?.msg));
    should(logged.join('\n')).match(/qe-fleet-broker: the broker URL must start with mqtt:\/\//);
    await helper.unload();
    await helper.load(allNodes(), fleetFlow(broker.url, { eventTypes: ['NOPE'] }));
    const caught = (
      helper.log() as unknown as { args: { level: number; msg: unknown; id?: string }[][] }
    ).args
      .map((a) => a[0])
      .filter((e) => e?.id === 'fleet' && e.level === 20)
      .map((e) => String(e?.msg));
    should(caught.join('\n')).match(/qe-fleet: unknown event type NOPE/);
  });
});
