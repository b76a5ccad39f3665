import should from 'should';
import { SUNSPEC_704 } from '../../src/adapters/modbus/maps';
import { BatterySimulator } from '../../src/sim/battery';
import { untilWith } from '../helpers/wait';
import { allNodes, catcher, coordinator, type FlowNode, inbox, onTab, siteOf } from './flows';
import { helper } from './runtime';

// End to end through Node-RED: the Modbus nodes with the simulated battery over real TCP on
// loopback. Real time, short periods, every wait bounded; nothing asserts on durations.

const modbusNodes = () => [
  ...allNodes(),
  require('../../nodes/qe-modbus-connection/qe-modbus-connection.js').default,
  require('../../nodes/qe-modbus/qe-modbus.js').default,
];

const until = untilWith({ rounds: 600 });

const sims: BatterySimulator[] = [];
async function battery(opts: ConstructorParameters<typeof BatterySimulator>[0] = {}) {
  const sim = new BatterySimulator({ unitIds: [1, 2], tickMs: 0, ...opts });
  await sim.start();
  sims.push(sim);
  return sim;
}

function flow(
  port: number,
  extra: { coord?: Record<string, unknown>; batteries?: unknown[] } = {},
): FlowNode[] {
  return onTab([
    coordinator({
      commandTimeoutSeconds: 2,
      retryBaseSeconds: 0.1,
      maxRetries: 1,
      staleStateSeconds: 1,
      ...extra.coord,
    }),
    {
      id: 'bus',
      type: 'qe-modbus-connection',
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      timeoutMs: 200,
    },
    {
      id: 'sched',
      type: 'qe-schedule',
      coordinator: 'coord',
      assetMap: '{"battery":"ast_batt_001"}',
      wires: [['disp']],
    },
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['mb']] },
    {
      id: 'mb',
      type: 'qe-modbus',
      coordinator: 'coord',
      connection: 'bus',
      batteries: extra.batteries ?? [
        {
          assetId: 'ast_batt_001',
          unitId: 1,
          profile: 'generic',
          ratedChargeKw: 40,
          ratedDischargeKw: 40,
          pollSeconds: 0.1,
        },
        {
          assetId: 'ast_batt_002',
          unitId: 2,
          profile: 'generic',
          ratedChargeKw: 40,
          ratedDischargeKw: 40,
          pollSeconds: 0.1,
        },
      ],
      wires: [['results'], ['telemetry']],
    },
    { id: 'results', type: 'helper' },
    { id: 'telemetry', type: 'helper' },
    ...catcher(),
  ]);
}

describe('nodes: Modbus battery end to end', () => {
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
    await Promise.all(sims.splice(0).map((s) => s.close()));
  });

  it('a schedule (charge and discharge columns) becomes netted setpoints in the registers, read back to COMPLETED', async () => {
    const sim = await battery();
    await helper.load(modbusNodes(), flow(sim.port));
    const site = siteOf();
    const results = inbox('results');
    const telemetry = inbox('telemetry');
    await until(() => telemetry.msgs.length > 0, 'telemetry');
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 1000;
    helper.getNode('sched').receive({
      payload: {
        columns: ['battery_charge_kw', 'battery_discharge_kw', 'load_forecast_kw'],
        index: [0, 1].map((i) => new Date(t0 + i * 5000).toISOString()),
        data: [
          [12, 0, 80],
          [0, 8, 120],
        ],
      },
    } as never);
    await until(() => sim.state(1).requestedKw === 12, 'charge 12 kW written');
    await until(() => results.msgs.length === 1, 'first result');
    should(results.msgs[0]?.payload).have.properties({ success: true });
    should(sim.readRegisters(1, 100, 2)).eql([0, 12000]);
    await until(() => sim.state(1).requestedKw === -8, 'discharge 8 kW at the next slot');
    await until(() => site.engine.stats().byStatus.COMPLETED === 2, 'both COMPLETED');
    should(sim.state(2).requestedKw).equal(0); // the other unit untouched
    const last = telemetry.msgs.at(-1)?.payload as { socPercent: number; state: string };
    should(last.socPercent).be.a.Number();
  });

  it('silence: the write is retried, then TIMED_OUT, and the battery is UNAVAILABLE', async () => {
    const sim = await battery();
    await helper.load(modbusNodes(), flow(sim.port));
    const site = siteOf();
    await until(
      () => site.getStateMachine('ast_batt_001')?.currentState === 'IDLE',
      'IDLE from telemetry',
    );
    sim.setSilent(true);
    helper.getNode('disp').receive({
      payload: { id: 'quiet', assetId: 'ast_batt_001', type: 'SET_CHARGE_RATE', valueKw: 5 },
    } as never);
    await until(
      () =>
        ['TIMED_OUT', 'FAILED', 'PENDING'].includes(
          site.engine.getCommand('quiet')?.status ?? '',
        ) && site.getStateMachine('ast_batt_001')?.currentState === 'UNAVAILABLE',
      'UNAVAILABLE',
      1000,
    );
    sim.setSilent(false);
    await until(
      () => site.getStateMachine('ast_batt_001')?.currentState !== 'UNAVAILABLE',
      'answering again',
      1000,
    );
  });

  it('an exception and a setpoint beyond the rating both fail, and reach the results output and Catch nodes', async () => {
    const sim = await battery();
    await helper.load(
      modbusNodes(),
      flow(sim.port, {
        batteries: [
          {
            assetId: 'ast_batt_001',
            unitId: 1,
            profile: 'generic',
            ratedChargeKw: 40,
            ratedDischargeKw: 40,
            pollSeconds: 1,
          },
          {
            assetId: 'ast_batt_002',
            unitId: 2,
            profile: JSON.stringify({
              name: 'wrong',
              setpoint: { address: 7000, type: 'int16', unit: 'kW', sign: 'charge-positive' },
              telemetry: {},
            }),
            ratedChargeKw: 40,
            ratedDischargeKw: 40,
            pollSeconds: 1,
          },
        ],
      }),
    );
    const site = siteOf();
    const results = inbox('results');
    const caught = inbox('caught');
    helper.getNode('disp').receive({
      payload: [
        { id: 'big', assetId: 'ast_batt_001', type: 'SET_DISCHARGE_RATE', valueKw: 45 },
        { id: 'exc', assetId: 'ast_batt_002', type: 'SET_CHARGE_RATE', valueKw: 5 },
      ],
    } as never);
    await until(() => results.msgs.length === 2, 'two results');
    await until(() => caught.msgs.length === 2, 'two errors caught');
    const errors = caught.msgs.map((m) => (m as { error?: { message?: string } }).error?.message);
    should(errors.join('\n')).match(/ast_batt_001 FAILED: .*45 kW discharge is above/);
    should(errors.join('\n')).match(/ast_batt_002 FAILED: .*Modbus exception 2/);
    should(site.engine.getCommand('big')?.lastError).match(
      /45 kW discharge is above the rated 40 kW/,
    );
    should(site.engine.getCommand('exc')?.lastError).match(/Modbus exception 2/);
    should(site.engine.getCommand('exc')?.status).equal('FAILED');
    should(sim.writes(1).filter((w) => w.address === 100)).have.length(0);
  });

  it('a bad register map is refused at deploy, naming the field', async () => {
    const sim = await battery();
    await helper.load(
      modbusNodes(),
      flow(sim.port, {
        batteries: [
          {
            assetId: 'b',
            unitId: 1,
            profile:
              '{"name":"x","setpoint":{"address":1,"type":"int24","unit":"W","sign":"charge-positive"},"telemetry":{}}',
            ratedChargeKw: 5,
            ratedDischargeKw: 5,
          },
        ],
      }),
    );
    const caught = inbox('caught');
    helper.getNode('mb').receive({
      payload: { id: 'x', assetId: 'b', type: 'SET_CHARGE_RATE', valueKw: 1 },
    } as never);
    await caught.count(1);
    should((caught.msgs[0] as { error: { message: string } }).error.message).match(
      /battery \[0\] \(b\): register map x: setpoint.type must be one of/,
    );
  });

  it('the device restarts: the bus reconnects and the setpoint in force is written again; a partial deploy rebuilds the bus', async () => {
    const sim = await battery();
    const f = flow(sim.port);
    await helper.load(modbusNodes(), f);
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_batt_001', type: 'SET_CHARGE_RATE', valueKw: 9 },
    } as never);
    await until(() => sim.state(1).requestedKw === 9, 'written');
    await sim.restart();
    await until(() => sim.state(1).requestedKw === 9, 'written again after the restart', 1000);
    await helper.setFlows(
      f.map((n) => (n.id === 'bus' ? { ...n, name: 'renamed' } : n)),
      'nodes',
    );
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_batt_002', type: 'SET_DISCHARGE_RATE', valueKw: 3 },
    } as never);
    await until(() => sim.state(2).requestedKw === -3, 'works after the partial deploy', 1000);
  });

  it('Revert seconds on a SunSpec 704 row: the revert time is written on connect; one the device refuses shows in the status and holds no setpoint back', async () => {
    const base = 40_070;
    const sim = await battery({ map: SUNSPEC_704(base) });
    // Unit 2's map points its revert timer at a register the device does not have.
    const refused = { ...SUNSPEC_704(base), revert: { address: 100, type: 'uint16', unit: 's' } };
    const row = { ratedChargeKw: 40, ratedDischargeKw: 40, pollSeconds: 1, revertSeconds: 6 };
    const nodes = flow(sim.port, {
      batteries: [
        { assetId: 'ast_batt_001', unitId: 1, profile: 'sunspec-704', baseAddress: base, ...row },
        { assetId: 'ast_batt_002', unitId: 2, profile: JSON.stringify(refused), ...row },
      ],
    });
    await helper.load(modbusNodes(), [
      ...nodes,
      { id: 'st', type: 'status', z: 'f1', scope: ['mb'], wires: [['statuses']] },
      { id: 'statuses', type: 'helper', z: 'f1' },
    ]);
    const statuses = inbox('statuses');
    await until(() => sim.state(1).revertMs === 6000, 'the revert time written to unit 1');
    should(sim.readRegisters(1, base + 28, 3)).eql([1, 0, 6]);
    await until(
      () =>
        statuses.msgs.some(
          (m) =>
            (m as unknown as { status: { text?: string } }).status.text ===
            'qe-modbus.status.revertFailed',
        ),
      'the status says the revert timer is not set',
    );
    helper.getNode('disp').receive({
      payload: [
        { assetId: 'ast_batt_001', type: 'SET_CHARGE_RATE', valueKw: 4 },
        { assetId: 'ast_batt_002', type: 'SET_DISCHARGE_RATE', valueKw: 3 },
      ],
    } as never);
    await until(() => sim.state(1).requestedKw === 4, 'unit 1 written');
    await until(() => sim.state(2).requestedKw === -3, 'unit 2 written all the same');
    should(sim.state(2).revertMs).equal(0);
  });

  it('a watchdog that is not below the revert time is refused at deploy, naming both', async () => {
    const sim = await battery();
    await helper.load(
      modbusNodes(),
      flow(sim.port, {
        batteries: [
          {
            assetId: 'b',
            unitId: 1,
            profile: 'generic',
            ratedChargeKw: 5,
            ratedDischargeKw: 5,
            watchdogSeconds: 10,
            revertSeconds: 5,
          },
        ],
      }),
    );
    const caught = inbox('caught');
    helper.getNode('mb').receive({
      payload: { id: 'x', assetId: 'b', type: 'SET_CHARGE_RATE', valueKw: 1 },
    } as never);
    await caught.count(1);
    should((caught.msgs[0] as { error: { message: string } }).error.message).match(
      /battery \[0\] \(b\): watchdogSeconds \(10\) must be below revertSeconds \(5\)/,
    );
  });

  it('a bus that cannot work (TCP without host) is an error of qe-modbus-connection that reaches Catch nodes once; qe-modbus is misconfigured', async () => {
    const f = flow(0).map((n) => (n.id === 'bus' ? { ...n, host: '' } : n));
    // The Catch node first, so that its helper node is watched from the start.
    const watchers = new Set(['f1', 'coord', 'catchAll', 'caught']);
    await helper.load(
      modbusNodes(),
      f.filter((n) => watchers.has(n.id)),
    );
    const caught = inbox('caught');
    await helper.setFlows(f, 'nodes');
    await caught.count(1);
    const err = (caught.msgs[0] as { error: { message: string; source: { id: string } } }).error;
    should(err.source.id).equal('bus');
    should(err.message).equal('qe-modbus-connection: modbus connection: tcp needs a host');
    // qe-modbus refuses input with the same reason.
    helper.getNode('mb').receive({
      payload: { id: 'x', assetId: 'ast_batt_001', type: 'SET_CHARGE_RATE', valueKw: 1 },
    } as never);
    await caught.count(2);
    should((caught.msgs[1] as { error: { message: string } }).error.message).equal(
      'Error: qe-modbus-connection: modbus connection: tcp needs a host',
    );
    should(
      caught.msgs.filter(
        (m) => (m as { error: { source: { id: string } } }).error.source.id === 'bus',
      ),
    ).have.length(1);
  });
});
