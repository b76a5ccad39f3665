import http from 'node:http';
import net from 'node:net';
import { RPCClient } from 'ocpp-rpc';
import should from 'should';
import { CentralSystem, type ChargerEvent } from '../../src/adapters/ocpp/central-system';
import type { OcppVersion } from '../../src/adapters/ocpp/translate';
import { CommandStatus } from '../../src/commands';
import {
  boot,
  charger,
  closePeers,
  nextEvent,
  on,
  peers,
  siteWith,
  startCentral,
  until,
} from '../helpers/ocpp-peers';
import { selfSignedCertificate } from '../helpers/tls';

// End to end on loopback: a real central system (ocpp-rpc server) and real ocpp-rpc clients
// playing chargers, through a Site with its dispatch loop (autoDispatch: the adapter is
// called directly, no Node-RED here).

afterEach(closePeers);

describe('OCPP central system (loopback, real sockets)', () => {
  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    describe(protocol, () => {
      it('boot and status drive the state machine; a setpoint becomes an accepted SetChargingProfile', async () => {
        const { central, port } = await startCentral();
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1', ratedKw: 22 }]);
        should(site.getStateMachine('ev1')?.currentState).equal('UNAVAILABLE');
        const cp = charger(port, 'CP1', protocol);
        const received: { method: string; params: unknown }[] = [];
        on(cp, 'SetChargingProfile', ({ params }: { params?: unknown }) => {
          received.push({ method: 'SetChargingProfile', params });
          return { status: 'Accepted' };
        });
        const booted = nextEvent(central, (e) => e.type === 'boot');
        await boot(cp, protocol);
        should(await booted).have.properties({ identity: 'CP1', protocol, accepted: true });
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [cmd] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 7.4 });
        await until(() => cmd?.status === CommandStatus.COMPLETED, 'COMPLETED');
        should(received).have.length(1);
        const limit = JSON.stringify(received[0]?.params);
        should(limit).match(/"limit":7400/);
        should(limit).match(/TxDefaultProfile/);
      });

      it('Rejected and NotImplemented are final failures (NotImplemented is remembered); silence is retried, then TIMED_OUT', async () => {
        const { central, port } = await startCentral();
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }], {
          maxRetries: 1,
          commandTimeoutSeconds: 2,
        });
        const cp = charger(port, 'CP1', protocol);
        let mode: 'reject' | 'notimpl' | 'silent' = 'reject';
        let calls = 0;
        on(cp, 'SetChargingProfile', () => {
          calls++;
          if (mode === 'reject') return { status: 'Rejected' };
          if (mode === 'notimpl')
            throw Object.assign(new Error('no smart charging'), { rpcErrorCode: 'NotImplemented' });
          return new Promise(() => {}); // never answers
        });
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [a] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 });
        await until(() => a?.status === CommandStatus.FAILED, 'FAILED (Rejected)');
        should(a?.lastError).match(/SetChargingProfile answered Rejected/);
        should(a?.attempts).equal(1);
        mode = 'silent';
        calls = 0;
        const [c] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 5 });
        await until(
          () => c?.status === CommandStatus.TIMED_OUT || c?.status === CommandStatus.FAILED,
          'gave up',
          1000,
        );
        should(c?.attempts).equal(2);
        should(calls).equal(2);
        mode = 'notimpl';
        calls = 0;
        const [b] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 4 });
        await until(() => b?.status === CommandStatus.FAILED, 'FAILED (NotImplemented)');
        should(b?.lastError).match(/NotImplemented/);
        should(b?.attempts).equal(1);
        // Learned: the next setpoint fails at once, without a call.
        const [d] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 4.5 });
        await until(() => d?.status === CommandStatus.FAILED, 'FAILED (no smart charging)');
        should(d?.lastError).match(/does not support smart charging .*; not sent/);
        should(calls).equal(1);
      });

      it('a disconnect holds commands; the reconnect releases the current one and re-sends the setpoint in force', async () => {
        const { central, port } = await startCentral();
        const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
        let cp = charger(port, 'CP1', protocol);
        const limits: string[] = [];
        const handler = ({ params }: { params?: unknown }) => {
          limits.push(JSON.stringify(params).match(/"limit":([\d.]+)/)?.[1] ?? '?');
          return { status: 'Accepted' };
        };
        on(cp, 'SetChargingProfile', handler);
        await boot(cp, protocol);
        await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
        const [first] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 6 });
        await until(() => first?.status === CommandStatus.COMPLETED, 'first COMPLETED');
        await cp.close({ force: true });
        await until(
          () => site.getStateMachine('ev1')?.currentState === 'UNAVAILABLE',
          'UNAVAILABLE',
        );
        // The charger comes back (a new connection, as after a reboot): the setpoint is sent again.
        cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', handler);
        await boot(cp, protocol);
        await until(() => limits.length === 2, 're-sent after the reboot');
        should(limits).eql(['6000', '6000']);
        // The re-apply ends (its confirmation is one more call) before the next drop: a retry
        // of it would otherwise race the held command below (ad-hoc setpoints do not supersede).
        await until(
          () =>
            site.engine.getCommands().find((c) => c.reapplyOf === first?.id)?.status ===
            CommandStatus.COMPLETED,
          're-apply COMPLETED',
        );
        // While offline, a new command waits (held), then goes out on reconnect.
        await cp.close({ force: true });
        await until(
          () => site.getStateMachine('ev1')?.currentState === 'UNAVAILABLE',
          'UNAVAILABLE again',
        );
        const [held] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 9 });
        await new Promise((r) => setTimeout(r, 50));
        should(held?.status).equal(CommandStatus.PENDING);
        should(held?.holdReason).equal('asset ev1 is UNAVAILABLE');
        cp = charger(port, 'CP1', protocol);
        on(cp, 'SetChargingProfile', handler);
        await boot(cp, protocol);
        await until(() => held?.status === CommandStatus.COMPLETED, 'held command COMPLETED');
        should(limits.at(-1)).equal('9000');
      });
    });
  }

  it('1.6: transactions are tracked (duplicate StopTransaction answered idempotently) and STOP_CHARGING stops the running one', async () => {
    const { central, port } = await startCentral();
    const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
    const cp = charger(port, 'CP1', 'ocpp1.6');
    const stopped: unknown[] = [];
    on(cp, 'RemoteStopTransaction', ({ params }: { params?: unknown }) => {
      stopped.push(params);
      return { status: 'Accepted' };
    });
    await boot(cp, 'ocpp1.6', 'Preparing');
    const started = (await cp.call('StartTransaction', {
      connectorId: 1,
      idTag: 'TAG',
      meterStart: 0,
      timestamp: new Date().toISOString(),
    })) as { transactionId: number };
    await cp.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status: 'Charging',
    });
    await until(() => site.getStateMachine('ev1')?.currentState === 'CHARGING', 'CHARGING');
    should(central.transactionOf('CP1', 1)).eql({ transactionId: started.transactionId });
    const [stop] = site.submit({ assetId: 'ev1', type: 'STOP_CHARGING' });
    await until(() => stop?.status === CommandStatus.COMPLETED, 'stop COMPLETED');
    should(stopped).eql([{ transactionId: started.transactionId }]);
    const ended: ChargerEvent[] = [];
    central.on('charger', (e: ChargerEvent) => e.type === 'transaction-ended' && ended.push(e));
    const stopMsg = {
      transactionId: started.transactionId,
      meterStop: 100,
      timestamp: new Date().toISOString(),
    };
    await cp.call('StopTransaction', stopMsg);
    await cp.call('StopTransaction', stopMsg);
    should(ended).have.length(1);
    should(central.transactionOf('CP1', 1)).be.null();
  });

  it('2.0.1: TransactionEvent Started before the RequestStart answer, and duplicate Ended, are handled once', async () => {
    const { central, port } = await startCentral();
    const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1' }]);
    const cp = charger(port, 'CP1', 'ocpp2.0.1');
    const events: ChargerEvent[] = [];
    central.on('charger', (e: ChargerEvent) => events.push(e));
    const tx = (eventType: string, seqNo: number, chargingState?: string) => ({
      eventType,
      timestamp: new Date().toISOString(),
      triggerReason: 'RemoteStart',
      seqNo,
      transactionInfo: { transactionId: 'T-1', ...(chargingState ? { chargingState } : {}) },
      evse: { id: 1, connectorId: 1 },
    });
    on(cp, 'RequestStartTransaction', async () => {
      await cp.call('TransactionEvent', tx('Started', 0, 'Charging'));
      return { status: 'Accepted', transactionId: 'T-1' };
    });
    await boot(cp, 'ocpp2.0.1', 'Occupied');
    const [start] = site.submit({ assetId: 'ev1', type: 'START_CHARGING' });
    await until(() => start?.status === CommandStatus.COMPLETED, 'start COMPLETED');
    await until(
      () => site.getStateMachine('ev1')?.currentState === 'CHARGING',
      'CHARGING from chargingState',
    );
    should(central.transactionOf('CP1', 1)).eql({ transactionId: 'T-1' });
    await cp.call('TransactionEvent', tx('Ended', 1));
    await cp.call('TransactionEvent', tx('Ended', 2));
    should(events.filter((e) => e.type === 'transaction-started')).have.length(1);
    should(events.filter((e) => e.type === 'transaction-ended')).have.length(1);
  });

  it('refuses unknown identities, wrong paths and wrong passwords at the handshake', async () => {
    const { port, central } = await startCentral({
      security: 'basic',
      chargers: [{ identity: 'CP1', password: 'correct-horse-battery' }],
    });
    const refused: ChargerEvent[] = [];
    central.on('charger', (e: ChargerEvent) => e.type === 'refused' && refused.push(e));
    await should(charger(port, 'STRANGER', 'ocpp1.6', { password: 'x' }).connect()).be.rejected();
    await should(
      charger(port, 'CP1', 'ocpp1.6', { password: 'wrong-password' }).connect(),
    ).be.rejected();
    await should(charger(port, 'CP1', 'ocpp1.6').connect()).be.rejected();
    const wrongPath = new RPCClient({
      endpoint: `ws://127.0.0.1:${port}/elsewhere`,
      identity: 'CP1',
      protocols: ['ocpp1.6'],
      reconnect: false,
      password: 'correct-horse-battery',
    } as never);
    peers.clients.push(wrongPath);
    await should(wrongPath.connect()).be.rejected();
    should(refused.map((r) => (r as { reason: string }).reason)).eql([
      'unknown charger identity "STRANGER"',
      'charger CP1: wrong or missing password',
      'charger CP1: wrong or missing password',
      'unknown path /elsewhere: chargers connect to /ocpp/<identity>',
    ]);
    const ok = charger(port, 'CP1', 'ocpp1.6', { password: 'correct-horse-battery' });
    await ok.connect();
    should(central.isConnected('CP1')).be.true();
  });

  it('refuses a charger that offers no OCPP version the server serves', async () => {
    const { port, central } = await startCentral({ protocols: ['ocpp2.0.1'] });
    const refused: string[] = [];
    central.on('charger', (e: ChargerEvent) => e.type === 'refused' && refused.push(e.reason));
    await should(charger(port, 'CP1', 'ocpp1.6').connect()).be.rejected();
    should(refused).eql([
      'charger CP1 offers no supported OCPP version (offered: ocpp1.6; served: ocpp2.0.1)',
    ]);
  });

  it('serves a path of an existing HTTP server (one port for everything), also at the root', async () => {
    for (const p of ['/ocpp', '/']) {
      const server = http.createServer((_req, res) => res.end('other'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const central = new CentralSystem({ path: p, chargers: [{ identity: 'CP1' }] });
      peers.centrals.push(central);
      const detach = central.attach(server);
      try {
        const cp = new RPCClient({
          endpoint: `ws://127.0.0.1:${port}${p === '/' ? '' : p}`,
          identity: 'CP1',
          protocols: ['ocpp1.6'],
          reconnect: false,
        } as never);
        peers.clients.push(cp);
        await cp.connect();
        should(central.isConnected('CP1')).be.true();
        await cp.close({ force: true });
      } finally {
        detach();
        await central.close();
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    }
  });

  it('tls-basic (security profile 2): wss with a certificate made here, plus a password', async () => {
    const pem = selfSignedCertificate();
    const central = new CentralSystem({
      port: 0,
      security: 'tls-basic',
      tls: pem,
      chargers: [{ identity: 'CP1', password: 'secret-secret-16' }],
    });
    peers.centrals.push(central);
    const port = await central.listen();
    const cp = new RPCClient({
      endpoint: `wss://127.0.0.1:${port}/ocpp`,
      identity: 'CP1',
      protocols: ['ocpp2.0.1'],
      password: 'secret-secret-16',
      reconnect: false,
      wsOpts: { ca: pem.cert },
    } as never);
    peers.clients.push(cp);
    await cp.connect();
    should(central.protocolOf('CP1')).equal('ocpp2.0.1');
    const plain = new RPCClient({
      endpoint: `ws://127.0.0.1:${port}/ocpp`,
      identity: 'CP1',
      protocols: ['ocpp2.0.1'],
      password: 'secret-secret-16',
      reconnect: false,
    } as never);
    peers.clients.push(plain);
    await should(plain.connect()).be.rejected();
  });

  it('a burst of malformed frames closes that charger only; the other carries on', async () => {
    const { central, port } = await startCentral({ maxBadMessages: 3 });
    const bad = charger(port, 'CP1', 'ocpp1.6');
    const good = charger(port, 'CP2', 'ocpp1.6');
    await bad.connect();
    await good.connect();
    const closed = new Promise((r) => bad.once('close', r));
    // Frames that are not OCPP-J at all (a valid message in between would reset the count).
    for (let i = 0; i < 20; i++) bad.sendRaw(i % 2 ? '{not json' : '[7, "no such message type"]');
    await closed;
    await until(() => !central.isConnected('CP1'), 'CP1 dropped');
    should(central.isConnected('CP2')).be.true();
    const hb = (await good.call('Heartbeat', {})) as { currentTime: string };
    should(hb.currentTime).be.a.String();
  });

  it('a frame above maxPayloadBytes closes that connection (1009)', async () => {
    const { central, port } = await startCentral({ maxPayloadBytes: 1024 });
    const cp = charger(port, 'CP1', 'ocpp1.6');
    await cp.connect();
    const closed = new Promise<{ code: number }>((r) => cp.once('close', r));
    cp.sendRaw(
      JSON.stringify([2, 'big', 'DataTransfer', { vendorId: 'x', data: 'y'.repeat(4096) }]),
    );
    should((await closed).code).equal(1009);
    await until(() => !central.isConnected('CP1'), 'dropped');
  });

  it('a charger that reconnects while its old socket is open replaces it, and the old close does not remove it', async () => {
    const { central, port } = await startCentral();
    const first = charger(port, 'CP1', 'ocpp1.6');
    await first.connect();
    const second = charger(port, 'CP1', 'ocpp1.6');
    await second.connect();
    await until(() => first.state === 3 /* CLOSED */, 'the old connection closed');
    should(central.isConnected('CP1')).be.true();
    const r = (await second.call('Heartbeat', {})) as { currentTime: string };
    should(r.currentTime).be.a.String();
  });

  it('close frees the port: a new central system listens on it at once', async () => {
    const first = new CentralSystem({ port: 0 });
    const port = await first.listen();
    const cp = charger(port, 'CP1', 'ocpp1.6');
    first.setChargers([{ identity: 'CP1' }]);
    await cp.connect();
    await first.close();
    const again = new CentralSystem({ port });
    peers.centrals.push(again);
    should(await again.listen()).equal(port);
    const taken = new CentralSystem({ port });
    await should(taken.listen()).be.rejectedWith(new RegExp(`port ${port} on 127.0.0.1 is in use`));
  });

  it('a listen that fails says why in short (problem) and keeps the errno on the error', async () => {
    const holder = new CentralSystem({ port: 0 });
    peers.centrals.push(holder);
    should(holder.problem).be.null();
    const port = await holder.listen();
    should(holder.problem).be.null();
    const taken = new CentralSystem({ port });
    peers.centrals.push(taken);
    const err = await taken.listen().then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    should(err?.code).equal('EADDRINUSE');
    should(taken.problem).have.properties({
      op: 'listen',
      code: 'in-use',
      text: `port ${port} in use`,
    });
  });

  it('listens with a backlog of 4,096 queued connections (listenBacklog), not the 511 of Node; a bad one is refused by name', async () => {
    const asked: unknown[] = [];
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
      asked.push(args[0]);
      return (listen as (...a: unknown[]) => net.Server).apply(this, args);
    } as typeof listen;
    try {
      for (const options of [{}, { listenBacklog: 64 }]) {
        const central = new CentralSystem({ port: 0, ...options });
        peers.centrals.push(central);
        await central.listen();
      }
    } finally {
      net.Server.prototype.listen = listen;
    }
    should(asked.map((a) => (a as { backlog?: number }).backlog)).eql([4096, 64]);
    should(asked[0]).have.properties({ port: 0, host: '127.0.0.1' });
    for (const bad of [0, 1.5, -1])
      should(() => new CentralSystem({ listenBacklog: bad })).throw(
        TypeError,
        /listenBacklog must be a whole number above 0/,
      );
  });

  it('refuses a setpoint above the rating before anything is sent', async () => {
    const { central, port } = await startCentral();
    const { site } = siteWith(central, [{ identity: 'CP1', assetId: 'ev1', ratedKw: 11 }]);
    const cp = charger(port, 'CP1', 'ocpp1.6');
    let calls = 0;
    on(cp, 'SetChargingProfile', () => {
      calls++;
      return { status: 'Accepted' };
    });
    await boot(cp, 'ocpp1.6');
    await until(() => site.getStateMachine('ev1')?.currentState === 'AVAILABLE', 'AVAILABLE');
    const [c] = site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 12 });
    await until(() => c?.status === CommandStatus.FAILED, 'FAILED');
    should(c?.lastError).match(/12 kW is above the rated 11 kW/);
    should(calls).equal(0);
  });
});
