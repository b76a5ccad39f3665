import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { RPCClient } from 'ocpp-rpc';
import should from 'should';
import { CentralSystem, type ChargerEvent } from '../../src/adapters/ocpp/central-system';
import type { OcppVersion } from '../../src/adapters/ocpp/translate';
import { selfSignedCertificate } from '../helpers/tls';
import { untilWith } from '../helpers/wait';

// What a hostile or broken peer can do to the central system, over real sockets on loopback:
// malformed upgrade URLs (raw HTTP written by hand, since WebSocket clients refuse to send
// them), half-open handshakes, over-long OCPP-J message ids; and what a charger sees when
// the central system closes. Every wait ends on an event (or mocha's timeout); nothing
// asserts on how long something took.

type Client = InstanceType<typeof RPCClient>;
const clients: Client[] = [];
const centrals: CentralSystem[] = [];
const servers: http.Server[] = [];
const sockets: net.Socket[] = [];

/**
 * Records uncaught exceptions and unhandled rejections while a test runs. Mocha fails a test
 * on an uncaught exception, but re-emits an unhandled rejection to nobody (outside mocha,
 * Node ends the process on either): this makes both fail the test, at once.
 */
function trapProcessFaults() {
  const faults: unknown[] = [];
  let fail: (err: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failed.catch(() => {});
  const record = (err: unknown) => {
    faults.push(err);
    fail(new Error(`the process got an uncaught fault: ${(err as Error)?.stack ?? String(err)}`));
  };
  process.on('uncaughtException', record);
  process.on('unhandledRejection', record);
  return {
    faults,
    /** Rejects as soon as a fault is recorded: race a wait against it. */
    failed,
    release() {
      process.off('uncaughtException', record);
      process.off('unhandledRejection', record);
    },
  };
}

let trap: ReturnType<typeof trapProcessFaults>;
function setUp() {
  beforeEach(() => {
    trap = trapProcessFaults();
  });
  afterEach(tearDown);
}
async function tearDown() {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(clients.splice(0).map((c) => c.close({ force: true }).catch(() => {})));
  await Promise.all(centrals.splice(0).map((c) => c.close()));
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  trap.release();
  should(trap.faults).eql([]);
}

async function startCentral(opts: ConstructorParameters<typeof CentralSystem>[0] = {}) {
  const central = new CentralSystem({ port: 0, chargers: [{ identity: 'CP1' }], ...opts });
  centrals.push(central);
  const port = await central.listen();
  return { central, port };
}

/** An HTTP server of someone else's (as Node-RED's), with the central system on a path. */
async function startAttached(opts: ConstructorParameters<typeof CentralSystem>[0] = {}) {
  const server = http.createServer((_req, res) => res.end('other'));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const central = new CentralSystem({ chargers: [{ identity: 'CP1' }], ...opts });
  centrals.push(central);
  central.attach(server);
  return { central, port: (server.address() as net.AddressInfo).port };
}

function charger(port: number, identity = 'CP1', protocol: OcppVersion = 'ocpp1.6'): Client {
  const c = new RPCClient({
    endpoint: `ws://127.0.0.1:${port}/ocpp`,
    identity,
    protocols: [protocol],
    strictMode: true,
    reconnect: false,
  } as never);
  clients.push(c);
  return c;
}

/** Connects, sends `text` as it is, and resolves to all that came back once the peer closed. */
function rawExchange(port: number, text: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (d) => {
    received += d.toString('latin1');
  });
  socket.write(text);
  const closed = new Promise<string>((r) => socket.once('close', () => r(received)));
  return Promise.race([closed, trap.failed]);
}

function upgradeRequest(path: string, protocol = 'ocpp1.6'): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Protocol: ${protocol}`,
    '',
    '',
  ].join('\r\n');
}

async function heartbeat(c: Client): Promise<void> {
  const r = (await c.call('Heartbeat', {})) as { currentTime: string };
  should(r.currentTime).be.a.String();
}

describe('OCPP central system: faults from the network', () => {
  setUp();
  for (const mode of ['port', 'path'] as const) {
    it(`${mode} mode: a malformed percent-encoding in the URL gets a 400 and the server keeps serving`, async () => {
      const { central, port } = mode === 'port' ? await startCentral() : await startAttached();
      const refused: ChargerEvent[] = [];
      central.on('charger', (e: ChargerEvent) => e.type === 'refused' && refused.push(e));
      for (const path of ['/ocpp/%FF', '/ocpp/%C0%AE']) {
        const answer = await rawExchange(port, upgradeRequest(path));
        should(answer).startWith('HTTP/1.1 400 Bad Request\r\n');
        should(answer).match(/malformed percent-encoding/);
      }
      should(refused).have.length(2);
      const cp = charger(port);
      await Promise.race([cp.connect(), trap.failed]);
      await heartbeat(cp);
      should(central.isConnected('CP1')).be.true();
    });
  }

  it('path mode: upgrades outside the path are left to the server’s other listeners', async () => {
    const { port } = await startAttached();
    const [server] = servers;
    server?.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      if (!req.url?.startsWith('/ocpp/')) socket.end('HTTP/1.1 418 Other\r\n\r\n');
    });
    should(await rawExchange(port, upgradeRequest('/comms/%FF'))).startWith('HTTP/1.1 418');
  });

  it('a socket that sends nothing, or half a request, is closed after handshakeTimeoutMs', async () => {
    const { port } = await startCentral({ handshakeTimeoutMs: 200 });
    const silent = rawExchange(port, '');
    const partial = rawExchange(port, 'GET /ocpp/CP1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr');
    await Promise.all([silent, partial]);
    const cp = charger(port);
    await cp.connect();
    await heartbeat(cp);
  });

  it('tls-basic: a socket that never starts TLS, or never sends its request over TLS, is closed too', async () => {
    const pem = selfSignedCertificate();
    const { port } = await startCentral({
      security: 'tls-basic',
      tls: pem,
      chargers: [{ identity: 'CP1', password: 'secret-secret-16' }],
      handshakeTimeoutMs: 200,
    });
    const silentTcp = rawExchange(port, '');
    const tlsOnly = tls.connect({ port, host: '127.0.0.1', ca: pem.cert });
    sockets.push(tlsOnly);
    tlsOnly.on('error', () => {});
    await Promise.race([once(tlsOnly, 'secureConnect'), trap.failed]);
    await Promise.all([silentTcp, Promise.race([once(tlsOnly, 'close'), trap.failed])]);
  });

  it('refuses handshakeTimeoutMs and closeTimeoutMs that are not positive milliseconds', () => {
    for (const bad of [0, -1, Number.NaN, 2 ** 31]) {
      should(() => new CentralSystem({ handshakeTimeoutMs: bad })).throw(
        /handshakeTimeoutMs must be a number of milliseconds above 0/,
      );
      should(() => new CentralSystem({ closeTimeoutMs: bad })).throw(
        /closeTimeoutMs must be a number of milliseconds above 0/,
      );
    }
  });

  it('a charger that reconnects without a BootNotification keeps working', async () => {
    const { central, port } = await startCentral();
    const first = charger(port);
    await first.connect();
    await first.call('BootNotification', { chargePointVendor: 'v', chargePointModel: 'm' });
    await first.close({ code: 1000 });
    const again = charger(port);
    again.handle('TriggerMessage', (async () => ({ status: 'Accepted' })) as never);
    await again.connect();
    should(central.isConnected('CP1')).be.true();
    await again.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status: 'Available',
    });
    should(
      await central.call('CP1', 'TriggerMessage', { requestedMessage: 'StatusNotification' }),
    ).eql({ status: 'Accepted' });
  });

  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    it(`${protocol}: a CALL with a message id above 36 characters gets a format CALLERROR and counts as bad`, async () => {
      const { central, port } = await startCentral({ maxBadMessages: 2 });
      const bad: ChargerEvent[] = [];
      central.on('charger', (e: ChargerEvent) => e.type === 'bad-message' && bad.push(e));
      const cp = charger(port, 'CP1', protocol);
      await cp.connect();
      const inbound: unknown[] = [];
      cp.on('message', (m: { message: string; outbound: boolean }) => {
        if (!m.outbound) inbound.push(JSON.parse(m.message));
      });
      const answered = (n: number) =>
        new Promise<void>((r) => {
          const check = () => {
            if (inbound.length >= n) {
              cp.off('message', check);
              r();
            }
          };
          cp.on('message', check);
        });
      // 36 characters is the most OCPP-J allows, and is served.
      const ok = 'a'.repeat(36);
      let next = answered(1);
      cp.sendRaw(JSON.stringify([2, ok, 'Heartbeat', {}]));
      await next;
      should(inbound[0]).match([3, ok, {}]);
      const long = 'b'.repeat(37);
      next = answered(2);
      cp.sendRaw(JSON.stringify([2, long, 'Heartbeat', {}]));
      await next;
      const code = protocol === 'ocpp1.6' ? 'FormationViolation' : 'FormatViolation';
      should(inbound[1]).match([4, long, code]);
      should(bad.map((e) => (e as { error: string }).error)).eql([
        'message id of 37 characters (OCPP-J allows at most 36)',
      ]);
      // A third bad message in a row is one more than maxBadMessages: the connection closes.
      const closed = new Promise<{ code: number }>((r) => cp.once('close', r));
      cp.sendRaw(JSON.stringify([2, `${long}c`, 'Heartbeat', {}]));
      cp.sendRaw(JSON.stringify([2, `${long}d`, 'Heartbeat', {}]));
      should((await closed).code).equal(1002);
    });
  }

  it('a CALLRESULT with an unknown or over-long id is ignored: no answer, the charger carries on', async () => {
    const { port } = await startCentral();
    const cp = charger(port);
    await cp.connect();
    const inbound: unknown[] = [];
    cp.on('message', (m: { message: string; outbound: boolean }) => {
      if (!m.outbound) inbound.push(JSON.parse(m.message));
    });
    cp.sendRaw(JSON.stringify([3, 'x'.repeat(40), { status: 'Accepted' }]));
    cp.sendRaw(JSON.stringify([3, 'no-such-call', {}]));
    // Messages are handled in order: the Heartbeat's answer is the first (and only) one.
    await heartbeat(cp);
    should(inbound).have.length(1);
    should((inbound[0] as unknown[])[0]).equal(3);
  });
});

describe('OCPP central system: closing', () => {
  setUp();
  for (const mode of ['port', 'path'] as const) {
    it(`${mode} mode: chargers see 1001 (going away) with a reason; the port is free afterwards`, async () => {
      const { central, port } = mode === 'port' ? await startCentral() : await startAttached();
      const cp = charger(port);
      await cp.connect();
      const closed = new Promise<{ code: number; reason: string }>((r) => cp.once('close', r));
      await central.close();
      const e = await closed;
      should(e.code).equal(1001);
      should(String(e.reason)).equal('central system closing');
      if (mode === 'port') {
        const again = new CentralSystem({ port });
        centrals.push(again);
        should(await again.listen()).equal(port);
      } else {
        // The HTTP server is not ours: it keeps serving.
        const body = await new Promise<string>((r, j) =>
          http
            .get(`http://127.0.0.1:${port}/`, (res) => {
              let s = '';
              res.on('data', (d) => {
                s += d;
              });
              res.on('end', () => r(s));
            })
            .on('error', j),
        );
        should(body).equal('other');
      }
    });
  }

  it('a charger that never answers the close frame still gets one; close() frees the port after closeTimeoutMs', async () => {
    const { central, port } = await startCentral({ closeTimeoutMs: 100 });
    const peer = await rawWebSocket(port);
    await until(() => central.isConnected('CP1'), 'connected');
    const socketClosed = new Promise((r) => peer.socket.once('close', r));
    await Promise.race([central.close(), trap.failed]);
    await socketClosed;
    // The close frame (opcode 8) with 1001 arrived before the socket was dropped.
    const frames = peer.frames();
    const at = frames.indexOf(0x88);
    should(at).be.aboveOrEqual(0);
    should(frames.readUInt16BE(at + 2)).equal(1001);
    const again = new CentralSystem({ port });
    centrals.push(again);
    should(await again.listen()).equal(port);
  });

  it('a charger that answers the close frame with a CALL and a broken frame does not upset the process', async () => {
    const { central, port } = await startCentral({ closeTimeoutMs: 100 });
    const peer = await rawWebSocket(port);
    await until(() => central.isConnected('CP1'), 'connected');
    peer.socket.on('data', () => {
      if (!peer.frames().includes(0x88) || peer.socket.destroyed) return;
      // A masked text frame (mask 0) with a CALL, then a frame with a reserved opcode.
      const call = Buffer.from(JSON.stringify([2, 'late', 'Heartbeat', {}]));
      peer.socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | call.length, 0, 0, 0, 0]), call]));
      peer.socket.write(Buffer.from([0x8f, 0x80, 0, 0, 0, 0]));
    });
    const socketClosed = new Promise((r) => peer.socket.once('close', r));
    await Promise.race([central.close(), trap.failed]);
    await Promise.race([socketClosed, trap.failed]);
    // A rejection that nobody handles is reported once the microtasks have run: let it come.
    await new Promise((r) => setImmediate(r));
  });
});

/**
 * A WebSocket handshake for CP1 written by hand on a raw socket: a peer that reads but
 * answers nothing unless the test writes it.
 */
async function rawWebSocket(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  let received = Buffer.alloc(0);
  socket.on('data', (d) => {
    received = Buffer.concat([received, d]);
  });
  await new Promise<void>((resolve) => {
    const check = () => {
      if (received.includes('\r\n\r\n')) {
        socket.off('data', check);
        resolve();
      }
    };
    socket.on('data', check);
    socket.write(upgradeRequest('/ocpp/CP1'));
  });
  should(received.toString('latin1')).startWith('HTTP/1.1 101');
  return {
    socket,
    /** What came after the handshake answer. */
    frames: () => received.subarray(received.indexOf('\r\n\r\n') + 4),
  };
}

const until = untilWith({ rounds: 400, everyMs: 5 });
