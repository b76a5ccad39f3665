import should from 'should';
import WebSocket from 'ws';
import { freePort } from '../../src/sim/battery';
import type { ChargePointSimulatorOptions } from '../../src/sim/charge-point';
import { ChargePointSimulator } from '../../src/sim/charge-point';
import { selfSignedCertificate } from '../helpers/tls';
import { untilWith } from '../helpers/wait';
import { allNodes, catcher, coordinator, type FlowNode, inbox, onTab, siteOf } from './flows';
import { helper } from './runtime';

// End to end through Node-RED: the OCPP nodes with simulated chargers of both versions as
// real WebSocket clients on loopback. Real time (sockets, ocpp-rpc timers), short timeouts,
// every wait bounded; nothing asserts on how long something took.

const ocppNodes = () => [
  ...allNodes(),
  require('../../nodes/qe-ocpp-server/qe-ocpp-server.js').default,
  require('../../nodes/qe-ocpp/qe-ocpp.js').default,
];

const sims: ChargePointSimulator[] = [];
function sim(
  port: number,
  identity: string,
  protocol: 'ocpp1.6' | 'ocpp2.0.1',
  extra: Partial<ChargePointSimulatorOptions> = {},
) {
  const s = new ChargePointSimulator({
    endpoint: `ws://127.0.0.1:${port}/ocpp`,
    identity,
    protocol,
    meterIntervalMs: 0,
    reconnect: false,
    ...extra,
  });
  sims.push(s);
  return s;
}

const until = untilWith({ rounds: 600 });

const CHARGERS = [
  { identity: 'CP001', assetId: 'ast_ev_001', ratedKw: 22 },
  { identity: 'CP002', assetId: 'ast_ev_002', ratedKw: 22 },
];

function flow(
  opts: {
    port?: number;
    server?: Record<string, unknown>;
    coord?: Record<string, unknown>;
    chargers?: unknown[];
    ocpp?: Record<string, unknown>;
  } = {},
): FlowNode[] {
  return onTab([
    coordinator({ commandTimeoutSeconds: 3, retryBaseSeconds: 0.2, ...opts.coord }),
    {
      id: 'srv',
      type: 'qe-ocpp-server',
      mode: 'port',
      host: '127.0.0.1',
      port: opts.port ?? 0,
      path: '/ocpp',
      protocols: 'both',
      security: 'none',
      callTimeoutSeconds: 1,
      ...opts.server,
    },
    {
      id: 'sched',
      type: 'qe-schedule',
      coordinator: 'coord',
      assetMap: '{"ev_001":"ast_ev_001","ev_002":"ast_ev_002"}',
      wires: [['disp']],
    },
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['ocpp']] },
    {
      id: 'ocpp',
      type: 'qe-ocpp',
      coordinator: 'coord',
      server: 'srv',
      chargers: opts.chargers ?? CHARGERS,
      ...opts.ocpp,
      wires: [['results'], ['events']],
    },
    { id: 'results', type: 'helper' },
    { id: 'events', type: 'helper' },
    ...catcher(),
  ]);
}

async function serverPort(): Promise<number> {
  const srv = helper.getNode('srv') as unknown as {
    ready: Promise<void>;
    port: number | null;
    failure: string | null;
  };
  await srv.ready;
  if (srv.port === null) throw new Error(`the OCPP server did not start: ${srv.failure}`);
  return srv.port;
}

describe('nodes: OCPP chargers end to end', () => {
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

  it('failsafe: a charger with Failsafe kW gets the two-period station profile; a bad setting is misconfigured', async () => {
    await helper.load(
      ocppNodes(),
      flow({
        ocpp: { failsafeAfterS: '30' },
        chargers: [{ identity: 'CP001', assetId: 'ast_ev_001', ratedKw: 22, failsafeKw: 4 }],
      }),
    );
    const port = await serverPort();
    const events = inbox('events');
    const a = sim(port, 'CP001', 'ocpp2.0.1');
    await a.start();
    const max = () => a.profiles.find((p) => p.purpose === 'ChargingStationMaxProfile');
    await until(() => max() !== undefined, 'the station profile');
    should(max()?.chargingSchedule.chargingSchedulePeriod).eql([
      { startPeriod: 0, limit: 22000 },
      { startPeriod: 90, limit: 4000 },
    ]);
    await until(
      () => events.msgs.some((m) => m.topic === 'failsafe'),
      'a failsafe event on output 2',
    );
    should(events.msgs.find((m) => m.topic === 'failsafe')?.payload).have.properties({
      identity: 'CP001',
      status: 'applied',
      assetIds: ['ast_ev_001'],
    });
    await a.stop();
    await helper.unload();
    await helper.load(
      ocppNodes(),
      flow({ chargers: [{ identity: 'CP001', assetId: 'ast_ev_001', failsafeKw: 4 }] }),
    );
    const caught = inbox('caught');
    helper.getNode('ocpp').receive({ payload: {} } as never);
    await caught.count(1);
    should(String((caught.msgs[0]?.error as { message?: string })?.message)).match(
      /failsafeKw needs ratedKw/,
    );
  });

  it('boot and status reach the state machines of both versions', async () => {
    await helper.load(ocppNodes(), flow());
    const port = await serverPort();
    const site = siteOf();
    const events = inbox('events');
    should(site.getStateMachine('ast_ev_001')?.currentState).equal('UNAVAILABLE');
    const a = sim(port, 'CP001', 'ocpp1.6');
    const b = sim(port, 'CP002', 'ocpp2.0.1');
    await Promise.all([a.start(), b.start()]);
    await until(
      () =>
        site.getStateMachine('ast_ev_001')?.currentState === 'AVAILABLE' &&
        site.getStateMachine('ast_ev_002')?.currentState === 'AVAILABLE',
      'both AVAILABLE',
    );
    await b.plugIn();
    await until(
      () => site.getStateMachine('ast_ev_002')?.currentState === 'PREPARING',
      '2.0.1 Occupied + EVConnected -> PREPARING',
    );
    await a.plugIn();
    await a.startCharging();
    await until(
      () => site.getStateMachine('ast_ev_001')?.currentState === 'CHARGING',
      '1.6 Charging',
    );
    await until(
      () => events.msgs.some((m) => m.topic === 'transaction-started'),
      'transaction event out',
    );
    const boot = events.msgs.find((m) => m.topic === 'boot');
    should(boot?.payload).have.properties({ identity: 'CP001', accepted: true });
    should((boot as unknown as { payload: { assetIds: string[] } }).payload.assetIds).eql([
      'ast_ev_001',
    ]);
  });

  it('a schedule becomes SetChargingProfile with the right limit at each slot, for both versions', async () => {
    await helper.load(ocppNodes(), flow());
    const port = await serverPort();
    const site = siteOf();
    const results = inbox('results');
    const a = sim(port, 'CP001', 'ocpp1.6');
    const b = sim(port, 'CP002', 'ocpp2.0.1');
    await Promise.all([a.start(), b.start()]);
    await until(
      () => site.getStateMachine('ast_ev_002')?.currentState === 'AVAILABLE',
      'AVAILABLE',
    );
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 1000;
    helper.getNode('sched').receive({
      payload: {
        columns: ['ev_ev_001_kw', 'ev_ev_002_kw', 'price_per_kwh'],
        index: [0, 1].map((i) => new Date(t0 + i * 5000).toISOString()),
        data: [
          [7.4, 11, 0.2],
          [3.7, 11, 0.3],
        ],
      },
    } as never);
    await until(
      () => a.activeLimitW === 7400 && b.activeLimitW === 11000,
      `first slot limits (${a.activeLimitW}, ${b.activeLimitW})`,
    );
    await until(() => a.activeLimitW === 3700, 'second slot limit');
    await until(() => results.msgs.length === 3, 'three results');
    should(results.msgs.every((m) => (m.payload as { success: boolean }).success)).be.true();
    should(site.engine.stats().byStatus.COMPLETED).equal(3);
    const cp1 = a.profiles.find((p) => p.purpose === 'TxDefaultProfile');
    should(cp1).be.ok();
  });

  it('Rejected fails at once; silence is retried and ends TIMED_OUT', async () => {
    await helper.load(ocppNodes(), flow({ coord: { maxRetries: 1, commandTimeoutSeconds: 2 } }));
    const port = await serverPort();
    const site = siteOf();
    let mode: 'Rejected' | 'noreply' = 'Rejected';
    const a = sim(port, 'CP001', 'ocpp1.6', {
      respond: (method) => (method === 'SetChargingProfile' ? mode : undefined),
    });
    await a.start();
    await until(
      () => site.getStateMachine('ast_ev_001')?.currentState === 'AVAILABLE',
      'AVAILABLE',
    );
    helper.getNode('disp').receive({
      payload: { id: 'rej', assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 5 },
    } as never);
    await until(() => site.engine.getCommand('rej')?.status === 'FAILED', 'FAILED');
    should(site.engine.getCommand('rej')?.lastError).match(
      /CP001: SetChargingProfile answered Rejected/,
    );
    should(site.engine.getCommand('rej')?.attempts).equal(1);
    mode = 'noreply';
    helper.getNode('disp').receive({
      payload: { id: 'quiet', assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 6 },
    } as never);
    await until(
      () =>
        site.engine.getCommand('quiet')?.status === 'TIMED_OUT' ||
        site.engine.getCommand('quiet')?.status === 'FAILED',
      'gave up',
      1500,
    );
    should(site.engine.getCommand('quiet')?.attempts).equal(2);
  });

  it('a charger that reconnects gets the setpoint in force again', async () => {
    await helper.load(ocppNodes(), flow());
    const port = await serverPort();
    const site = siteOf();
    const results = inbox('results');
    const first = sim(port, 'CP001', 'ocpp1.6');
    await first.start();
    await until(
      () => site.getStateMachine('ast_ev_001')?.currentState === 'AVAILABLE',
      'AVAILABLE',
    );
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 8 },
    } as never);
    await until(() => first.activeLimitW === 8000, 'limit set');
    // Confirmed (its GetCompositeSchedule answered) before the charger goes: otherwise the
    // command is still being confirmed, its retry carries the setpoint to the new connection,
    // and nothing needs re-applying.
    await until(
      () => site.engine.getCommands().some((c) => c.status === 'COMPLETED'),
      'the setpoint confirmed',
    );
    await first.stop();
    await until(
      () => site.getStateMachine('ast_ev_001')?.currentState === 'UNAVAILABLE',
      'UNAVAILABLE',
    );
    // The charger rebooted: it has forgotten its profiles.
    const again = sim(port, 'CP001', 'ocpp1.6');
    await again.start();
    should(again.activeLimitW).be.null();
    await until(() => again.activeLimitW === 8000, 'the setpoint is sent again', 1000);
    // A tracked command through the dispatcher, reported on output 1 like any other.
    await until(
      () =>
        results.msgs.some(
          (m) =>
            (m.payload as { success?: boolean; command?: { reapplyOf?: string } }).command
              ?.reapplyOf !== undefined && (m.payload as { success?: boolean }).success === true,
        ),
      'reported on output 1',
    );
    const reapplied = site.engine.getCommands().filter((c) => c.reapplyOf !== undefined);
    should(reapplied).have.length(1);
    should(reapplied[0]?.status).equal('COMPLETED');
    should(reapplied[0]?.valueKw).equal(8);
  });

  it('STOP_CHARGING stops the running transaction', async () => {
    await helper.load(ocppNodes(), flow());
    const port = await serverPort();
    const site = siteOf();
    const a = sim(port, 'CP001', 'ocpp1.6');
    await a.start();
    await a.plugIn();
    await a.startCharging();
    const tx = a.transactionId;
    should(tx).be.a.Number();
    await until(() => site.getStateMachine('ast_ev_001')?.currentState === 'CHARGING', 'CHARGING');
    helper
      .getNode('disp')
      .receive({ payload: { id: 'stop', assetId: 'ast_ev_001', type: 'STOP_CHARGING' } } as never);
    await until(() => site.engine.getCommand('stop')?.status === 'COMPLETED', 'stop COMPLETED');
    await until(() => a.transactionId === null, 'the simulator stopped its transaction');
    await until(
      () => site.getStateMachine('ast_ev_001')?.currentState !== 'CHARGING',
      'not CHARGING',
    );
  });

  it('refuses unknown identities and wrong passwords (basic)', async () => {
    await helper.load(ocppNodes(), flow({ server: { security: 'basic' } }), {
      srv: { passwords: '{"CP001": "correct-horse-battery", "CP002": "another-secret-1"}' },
    });
    const port = await serverPort();
    await should(
      sim(port, 'CP001', 'ocpp1.6', { password: 'wrong-one-here' }).start(),
    ).be.rejected();
    await should(sim(port, 'STRANGER', 'ocpp1.6', { password: 'x' }).start()).be.rejected();
    const ok = sim(port, 'CP001', 'ocpp1.6', { password: 'correct-horse-battery' });
    await ok.start();
    await until(
      () => siteOf().getStateMachine('ast_ev_001')?.currentState === 'AVAILABLE',
      'AVAILABLE',
    );
  });

  it('tls-basic works with a certificate generated in the test', async () => {
    const pem = selfSignedCertificate();
    await helper.load(ocppNodes(), flow({ server: { security: 'tls-basic' } }), {
      srv: { passwords: '{"CP002": "tls-secret-pass"}', cert: pem.cert, key: pem.key },
    });
    const port = await serverPort();
    const b = new ChargePointSimulator({
      endpoint: `wss://127.0.0.1:${port}/ocpp`,
      identity: 'CP002',
      protocol: 'ocpp2.0.1',
      password: 'tls-secret-pass',
      wsOptions: { ca: pem.cert },
      meterIntervalMs: 0,
      reconnect: false,
    });
    sims.push(b);
    await b.start();
    await until(
      () => siteOf().getStateMachine('ast_ev_002')?.currentState === 'AVAILABLE',
      'AVAILABLE over wss',
    );
  });

  it('a burst of malformed frames from one charger neither crashes Node-RED nor disturbs another', async () => {
    await helper.load(ocppNodes(), flow({ server: { maxBadMessages: 3 } }));
    const port = await serverPort();
    const site = siteOf();
    const good = sim(port, 'CP002', 'ocpp2.0.1');
    await good.start();
    const bad = new WebSocket(`ws://127.0.0.1:${port}/ocpp/CP001`, 'ocpp1.6');
    await new Promise((r, j) => {
      bad.once('open', r);
      bad.once('error', j);
    });
    const closed = new Promise<number>((r) => bad.once('close', (code) => r(code)));
    for (let i = 0; i < 50; i++)
      bad.send(i % 3 === 0 ? '\u0000\u0001garbage' : i % 3 === 1 ? '[2,' : '{"x":1}');
    should(await closed).equal(1002);
    helper.getNode('disp').receive({
      payload: { id: 'after', assetId: 'ast_ev_002', type: 'SET_CHARGE_RATE', valueKw: 4 },
    } as never);
    await until(
      () => site.engine.getCommand('after')?.status === 'COMPLETED',
      'the other charger still works',
    );
    should(good.activeLimitW).equal(4000);
  });

  it('a partial deploy of the server frees and rebinds its port; chargers come back', async () => {
    const port = await freePort();
    const f = flow({ port });
    await helper.load(ocppNodes(), f);
    should(await serverPort()).equal(port);
    const a = sim(port, 'CP001', 'ocpp1.6', {
      reconnect: true,
      backoff: { initialDelay: 50, maxDelay: 200 },
    });
    await a.start();
    for (let i = 1; i <= 2; i++) {
      const changed = f.map((n) =>
        n.id === 'srv' || n.id === 'ocpp' ? { ...n, name: `v${i}` } : n,
      );
      await helper.setFlows(changed, 'nodes');
      should(await serverPort()).equal(port);
    }
    await until(
      () => siteOf().getStateMachine('ast_ev_001')?.currentState === 'AVAILABLE',
      'reconnected and AVAILABLE',
      1000,
    );
  });

  it('a setpoint above the rating is refused before anything is sent', async () => {
    await helper.load(ocppNodes(), flow());
    const port = await serverPort();
    const calls: string[] = [];
    const a = sim(port, 'CP001', 'ocpp1.6');
    a.on('call', (m: string) => calls.push(m));
    await a.start();
    const site = siteOf();
    await until(
      () => site.getStateMachine('ast_ev_001')?.currentState === 'AVAILABLE',
      'AVAILABLE',
    );
    helper.getNode('disp').receive({
      payload: { id: 'big', assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 30 },
    } as never);
    await until(() => site.engine.getCommand('big')?.status === 'FAILED', 'FAILED');
    should(site.engine.getCommand('big')?.lastError).match(
      /30 kW is above the rated 22 kW of charger CP001/,
    );
    should(calls.filter((c) => c === 'SetChargingProfile')).have.length(0);
  });
});
