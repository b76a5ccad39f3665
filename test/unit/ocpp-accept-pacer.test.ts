import { EventEmitter } from 'node:events';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { RPCClient } from 'ocpp-rpc';
import should from 'should';
import { AcceptPacer, SETUP_HOLD_MS } from '../../src/adapters/ocpp/accept-pacer';
import { CentralSystem, type ChargerEvent } from '../../src/adapters/ocpp/central-system';
import { boot, closePeers, peers, startCentral, until } from '../helpers/ocpp-peers';
import { selfSignedCertificate } from '../helpers/tls';
import { countTurns } from '../helpers/wait';

// New connections on the central system's own port, a window at a time (accept-pacer.ts):
// first the pacer alone, on fake time with fake sockets and turns run by hand; then a crowd of
// real ocpp-rpc chargers connecting at once to a real central system on loopback.

/** A socket as the pacer sees it: endpoints, destroyed, 'close'. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  bytesRead = 0;
  constructor(
    readonly name: string,
    readonly remotePort: number,
    readonly remoteAddress = '127.0.0.1',
  ) {
    super();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/** A pacer on fake time whose turns run when the test says so; records how each was asked for. */
function rig(budgetMs = 20, holdMs = SETUP_HOLD_MS) {
  const clock = { t: 0 };
  const asked: { how: 'turn' | 'timer'; fn: () => void }[] = [];
  const letIn: string[] = [];
  const pacer = new AcceptPacer(
    budgetMs,
    holdMs,
    () => clock.t,
    (fn) => asked.push({ how: 'turn', fn }),
    (fn) => asked.push({ how: 'timer', fn }),
  );
  /** Runs the turn asked for, `ms` of fake time after the last; says how it was asked for. */
  const turn = (ms = 1) => {
    const next = asked.shift();
    if (!next) throw new Error('no turn asked for');
    clock.t += ms;
    next.fn();
    return next.how;
  };
  const sockets = (n: number, from = 0) =>
    Array.from({ length: n }, (_, i) => new FakeSocket(`s${from + i}`, 40000 + from + i));
  const add = (list: FakeSocket[]) => {
    for (const s of list) pacer.add(s as unknown as Socket, () => letIn.push(s.name));
  };
  return { pacer, clock, asked, letIn, turn, sockets, add };
}

/** HTTP servers a central system was attached to, closed after each test. */
const servers: http.Server[] = [];

afterEach(async () => {
  await closePeers();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

describe('new connections a window at a time (accept-pacer.ts)', () => {
  it('lets in 8 at first; the rest wait, in order, until earlier ones go through', () => {
    const { pacer, letIn, turn, sockets, add } = rig();
    const crowd = sockets(30);
    add(crowd);
    should(letIn).eql([]); // nothing is read in the poll phase that accepted them
    should(turn()).equal('turn');
    should(letIn).eql(crowd.slice(0, 8).map((s) => s.name));
    should(pacer.waiting).equal(22);
    // The window is full: the next look is by a timer, not an immediate (no busy loop).
    should(turn()).equal('timer');
    should(letIn.length).equal(8);
    // Three go through (their first message): the window grows by three, six come in.
    for (const s of crowd.slice(0, 3)) pacer.settled(s);
    turn();
    should(pacer.window).equal(11);
    should(letIn).eql(crowd.slice(0, 14).map((s) => s.name));
    should(pacer.settingUp).equal(11);
  });

  it('halves the window after a turn longer than the budget, then grows by one a round', () => {
    const { pacer, letIn, turn, sockets, add } = rig(20);
    const crowd = sockets(100);
    add(crowd);
    turn();
    should(letIn.length).equal(8);
    turn(35); // the turn after took 35 ms: their handshakes were too much at once
    should(pacer.window).equal(4);
    should(letIn.length).equal(8); // eight still setting up, over the new window
    for (const s of crowd.slice(0, 8)) pacer.settled(s);
    turn(5);
    // Eight went through: after a long turn the window grows by one per window's worth
    // (4 of the 8 make it 5; the other 4 are not yet a window of 5).
    should(pacer.window).equal(5);
    should(letIn.length).equal(13);
    for (const s of crowd.slice(8, 9)) pacer.settled(s);
    turn(5);
    should(pacer.window).equal(6); // credit 4 + 1 = a window of 5: one more
    should(letIn.length).equal(15); // 13 let in, 9 through: 4 setting up, room for 2
    for (let i = 0; i < 6; i++) turn(40);
    should(pacer.window).equal(2); // never below two
  });

  it('a connection that says nothing frees its slot after the hold time, and the window grows by it', () => {
    const { pacer, letIn, turn, sockets, add } = rig(20, 2000);
    const crowd = sockets(40);
    add(crowd);
    turn();
    should(letIn.length).equal(8);
    for (let i = 0; i < 199; i++) turn(10); // 1,991 ms of short turns, the eight silent
    should(letIn.length).equal(8);
    turn(10); // 2,001 ms: their time is up; idle, they cost nothing
    should(letIn.length).equal(16);
    turn(10);
    should(pacer.window).equal(16); // grown by the eight idle ones, as by eight gone through
    should(letIn.length).equal(24);
  });

  it('one whose time runs out mid-handshake frees its slot without growing the window', () => {
    const { pacer, letIn, turn, sockets, add } = rig(20, 2000);
    const crowd = sockets(40);
    add(crowd);
    turn();
    for (const s of crowd.slice(0, 8)) s.bytesRead = 300; // a request read, no first message
    for (let i = 0; i < 200; i++) turn(10);
    should(letIn.length).equal(16);
    turn(10);
    should(pacer.window).equal(8);
    should(letIn.length).equal(16);
  });

  it('skips a connection that closed while it waited; one that closes while setting up frees its slot', () => {
    const { pacer, letIn, turn, sockets, add } = rig();
    const crowd = sockets(10);
    add(crowd);
    crowd[0]?.destroy();
    turn();
    should(letIn).eql(crowd.slice(1, 9).map((s) => s.name));
    crowd[1]?.destroy(); // a charger that gave up during its handshake
    turn();
    should(letIn).eql(crowd.slice(1, 10).map((s) => s.name));
    should(pacer.settingUp).equal(8);
    should(pacer.waiting).equal(0);
  });

  it('knows a connection by its endpoints when the central system names it by the TLS socket over it', () => {
    const { pacer, letIn, turn, sockets, add } = rig();
    const crowd = sockets(9);
    add(crowd);
    turn();
    should(letIn.length).equal(8);
    pacer.settled({ remoteAddress: '127.0.0.1', remotePort: crowd[4]?.remotePort });
    pacer.settled({ remoteAddress: '127.0.0.1', remotePort: 1 }); // not ours: nothing
    turn();
    should(letIn).eql(crowd.map((s) => s.name));
    should(pacer.settingUp).equal(8);
  });

  it('budget Infinity lets every connection in as it comes', () => {
    const { pacer, letIn, asked, sockets, add } = rig(Number.POSITIVE_INFINITY);
    add(sockets(50));
    should(letIn.length).equal(50);
    should(asked.length).equal(0);
    should(pacer.waiting).equal(0);
  });
});

/** A WebSocket upgrade request for OCPP 1.6 as a charger sends it. */
function upgradeRequest(port: number, identity: string): string {
  return [
    `GET /ocpp/${identity} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${Buffer.from(identity.padEnd(16, '.')).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Protocol: ocpp1.6',
    '',
    '',
  ].join('\r\n');
}

/** A charger's BootNotification as one masked WebSocket text frame (under 126 bytes). */
function bootFrame(): Buffer {
  const payload = Buffer.from(
    JSON.stringify([
      2,
      'b1',
      'BootNotification',
      { chargePointVendor: 't', chargePointModel: 't' },
    ]),
  );
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/**
 * `n` chargers on raw sockets: all connect first (the kernel completes them), then all send
 * their upgrade requests in one go, as a crowd does after a power cut, and a boot once
 * upgraded. Resolves to the turn of the event loop in which each upgrade was answered.
 */
async function crowd(
  acceptSliceMs: number,
  n: number,
  mode: 'port' | 'path' = 'port',
): Promise<number[]> {
  const chargers = Array.from({ length: n }, (_, i) => ({ identity: `CP${i}` }));
  const { central, port, accepted } =
    mode === 'port'
      ? await onItsPort(chargers, acceptSliceMs)
      : await onAPath(chargers, acceptSliceMs);
  const turn = countTurns();
  const upgradedIn: number[] = [];
  const booted = new Set<string>();
  central.on('charger', (e: ChargerEvent) => {
    if (e.type === 'connected') upgradedIn.push(turn.turns);
    if (e.type === 'boot') booted.add(e.identity);
  });
  const sockets: net.Socket[] = [];
  try {
    await Promise.all(
      chargers.map(
        () =>
          new Promise<void>((resolve, reject) => {
            const s = net.connect(port, '127.0.0.1', () => resolve());
            s.once('error', reject);
            sockets.push(s);
          }),
      ),
    );
    // Every connection accepted (and, without pacing, reading) before the requests come.
    await until(() => accepted() === n, `${n} connections accepted`);
    const answers = sockets.map(
      (s) =>
        new Promise<string>((resolve) =>
          s.once('data', (d) => {
            s.write(bootFrame());
            resolve(d.toString('latin1').split('\r\n')[0] as string);
          }),
        ),
    );
    sockets.forEach((s, i) => {
      s.write(upgradeRequest(port, `CP${i}`));
    });
    should(new Set(await Promise.all(answers))).eql(new Set(['HTTP/1.1 101 Switching Protocols']));
    await until(() => booted.size === n, `${n} chargers booted`);
  } finally {
    turn.stop();
    for (const s of sockets) s.destroy();
  }
  return upgradedIn;
}

/** A central system on its own port; `accepted`: the connections it holds. */
async function onItsPort(chargers: { identity: string }[], acceptSliceMs: number) {
  const { central, port } = await startCentral({ chargers, acceptSliceMs });
  return { central, port, accepted: () => central.connectionsOpen };
}

/** A central system on a path of another HTTP server (as on Node-RED's own port). */
async function onAPath(chargers: { identity: string }[], acceptSliceMs: number) {
  const server = http.createServer();
  let open = 0;
  server.on('connection', (s) => {
    open++;
    s.once('close', () => open--);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const central = new CentralSystem({ path: '/ocpp', chargers, acceptSliceMs, callTimeoutMs: 500 });
  peers.centrals.push(central);
  central.attach(server);
  servers.push(server);
  const port = (server.address() as net.AddressInfo).port;
  return { central, port, accepted: () => open };
}

/** How many upgrades each turn that had any answered, in turn order. */
function perTurn(turns: number[]): number[] {
  const m = new Map<number, number>();
  for (const t of turns) m.set(t, (m.get(t) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
}

describe('a crowd of chargers at once (loopback, real sockets)', () => {
  it('without pacing the whole crowd is upgraded in one turn (the case the pacer is for)', async () => {
    should(perTurn(await crowd(Number.POSITIVE_INFINITY, 40))).eql([40]);
  });

  it('with it, eight in the first turn, then as many as went through, and every charger boots', async () => {
    const counts = perTurn(await crowd(20, 40));
    should(counts[0]).equal(8);
    should(Math.max(...counts)).be.belowOrEqual(16);
    should(counts.reduce((a, b) => a + b, 0)).equal(40);
  });

  it("on another server's path (Node-RED's own port): the same crowd, the same bound", async () => {
    should(perTurn(await crowd(Number.POSITIVE_INFINITY, 40, 'path'))).eql([40]);
    const counts = perTurn(await crowd(20, 40, 'path'));
    should(counts[0]).equal(8);
    should(Math.max(...counts)).be.belowOrEqual(16);
    should(counts.reduce((a, b) => a + b, 0)).equal(40);
  });

  it('close() ends the connections still waiting to be let in, and the port is free', async () => {
    const { central, port } = await startCentral({});
    const sockets = Array.from({ length: 20 }, () => net.connect(port, '127.0.0.1'));
    const closed = sockets.map(
      (s) => new Promise<void>((resolve) => s.once('close', () => resolve())),
    );
    for (const s of sockets) s.on('error', () => {});
    await until(() => central.connectionsOpen === 20, '20 connections accepted');
    await central.close();
    await Promise.all(closed); // 8 let in (saying nothing), 12 waiting: all ended
    const again = net.createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise((r) => again.close(r));
  });

  it('a TLS charger (tls-basic) frees its place with its first message too, known by its endpoints', async () => {
    const pem = selfSignedCertificate();
    const chargers = Array.from({ length: 12 }, (_, i) => ({
      identity: `CP${i}`,
      password: 'secret-secret-16',
    }));
    const { central, port } = await startCentral({ security: 'tls-basic', tls: pem, chargers });
    const cps = chargers.map((c) => {
      const cp = new RPCClient({
        endpoint: `wss://127.0.0.1:${port}/ocpp`,
        identity: c.identity,
        protocols: ['ocpp1.6'],
        password: c.password,
        reconnect: false,
        wsOpts: { ca: pem.cert },
      } as never);
      peers.clients.push(cp);
      return cp;
    });
    await Promise.all(cps.map((cp) => boot(cp, 'ocpp1.6')));
    // Every one went through: none holds a place until its 2 s run out (the central system
    // names a TLS connection by the TLS socket, the pacer holds the raw one under it).
    const pacer = (central as unknown as { admissions: AcceptPacer }).admissions;
    should(pacer.settingUp).equal(0);
    should(pacer.window).be.above(8); // grown by those that went through
  });
});
