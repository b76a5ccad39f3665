/**
 * The device examples (04 OCPP chargers, 05 Modbus battery, 06 a charger that ignores its
 * limit) run as imported, against the package's simulators over real sockets on loopback (the central system on a free port, the
 * battery simulator on a free port): what their debug nodes show in the sidebar is one
 * readable line a message, built from what the real nodes send. Real time, every wait
 * bounded; nothing asserts on how long something took.
 */
import should from 'should';
import { BatterySimulator } from '../../src/sim/battery';
import { ChargePointSimulator } from '../../src/sim/charge-point';
import { untilWith } from '../helpers/wait';
import {
  type ExampleNode,
  initialisersFor,
  readableDebug,
  readExample,
  type SidebarMessage,
  warnings,
  watchSidebar,
} from './examples-lib';
import { helper } from './runtime';

const until = untilWith({ ms: 20_000 });

/** The sidebar messages of the debug node `name`, as they arrive. */
const of = (flow: ExampleNode[], messages: SidebarMessage[], name: string) => {
  const id = flow.find((n) => n.type === 'debug' && n.name === name)?.id;
  if (!id) throw new Error(`no debug node "${name}"`);
  return () => messages.filter((m) => m.id === id).map((m) => String(m.msg));
};

describe('examples with devices: debug summaries', function () {
  this.timeout(60_000);
  let sidebar: ReturnType<typeof watchSidebar>;
  const chargers: ChargePointSimulator[] = [];
  let battery: BatterySimulator | null = null;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(() => {
    sidebar = watchSidebar();
  });
  afterEach(async () => {
    sidebar.stop();
    await Promise.all(chargers.splice(0).map((c) => c.stop().catch(() => {})));
    await helper.unload();
    await battery?.close();
    battery = null;
  });

  it('04: results, charger events and site events read as one line each', async () => {
    const flow = readExample('04 OCPP chargers from a schedule.json');
    // The central system on a free port instead of 9220.
    const loaded = flow.map((n) => (n.type === 'qe-ocpp-server' ? { ...n, port: 0 } : n));
    await helper.load(initialisersFor(flow), loaded as never);
    const serverId = flow.find((n) => n.type === 'qe-ocpp-server')?.id as string;
    const server = helper.getNode(serverId) as unknown as {
      ready: Promise<void>;
      port: number | null;
      failure: string | null;
    };
    await server.ready;
    if (server.port === null)
      throw new Error(`the central system did not start: ${server.failure}`);
    for (const [identity, protocol] of [
      ['CP001', 'ocpp1.6'],
      ['CP002', 'ocpp2.0.1'],
    ] as const) {
      const sim = new ChargePointSimulator({
        endpoint: `ws://127.0.0.1:${server.port}/ocpp`,
        identity,
        protocol,
        meterIntervalMs: 0,
        reconnect: false,
      });
      chargers.push(sim);
      await sim.start();
      await sim.plugIn();
      await sim.startCharging();
    }
    const results = of(flow, sidebar.messages, 'command results');
    const siteEvents = of(flow, sidebar.messages, 'site events');
    // The sample schedule goes 1 s after deploy: each charger's first slot completes.
    await until(() => results().length >= 2, 'a result for each charger');
    await until(
      () => siteEvents().filter((l) => / COMPLETED$/.test(l)).length >= 2,
      'two COMPLETED events',
    );

    should(readableDebug(flow, sidebar.messages, 'command results').sort()).eql([
      'ast_ev_001 SET_CHARGE_RATE 7.4 kW: ok',
      'ast_ev_002 SET_CHARGE_RATE 0 kW: ok',
    ]);

    // CP001 reboots: the setpoint in force is re-applied, and the result line says so.
    await chargers[0]?.stop();
    const again = new ChargePointSimulator({
      endpoint: `ws://127.0.0.1:${server.port}/ocpp`,
      identity: 'CP001',
      protocol: 'ocpp1.6',
      meterIntervalMs: 0,
      reconnect: false,
    });
    chargers.push(again);
    await again.start();
    await until(
      () => results().includes('ast_ev_001 SET_CHARGE_RATE 7.4 kW (re-applied): ok'),
      "the re-applied setpoint's result",
    );
    const events = readableDebug(flow, sidebar.messages, 'charger events');
    should(events).containEql('CP001 connected: ocpp1.6');
    should(events).containEql('CP002 connected: ocpp2.0.1');
    should(events.some((l) => /^CP001 status: ocpp1\.6, Charging$/.test(l))).be.true();
    should(events.some((l) => /^CP002 transaction-started: .*transaction \S+/.test(l))).be.true();
    const site = readableDebug(flow, sidebar.messages, 'site events');
    should(site).containEql('ast_ev_001 SET_CHARGE_RATE 7.4 kW COMPLETED');
    should(site).containEql('ast_ev_001 UNAVAILABLE -> AVAILABLE');
    should(sidebar.messages.filter((m) => m.name === 'errors')).eql([]);
    should(warnings()).eql([]);
  });

  it('05: results, telemetry and state changes read as one line each', async () => {
    battery = new BatterySimulator({ host: '127.0.0.1', port: 0, unitIds: [1] });
    const port = await battery.start();
    const flow = readExample('05 Battery from a schedule (Modbus).json');
    // The bus points at the simulator's free port instead of 5020.
    const loaded = flow.map((n) => (n.type === 'qe-modbus-connection' ? { ...n, port } : n));
    await helper.load(initialisersFor(flow), loaded as never);
    const results = of(flow, sidebar.messages, 'command results');
    const telemetry = of(flow, sidebar.messages, 'telemetry');
    const states = of(flow, sidebar.messages, 'state changes');
    await until(() => results().length >= 1, 'a command result');
    await until(() => telemetry().length >= 1, 'a telemetry reading');
    await until(() => states().length >= 1, 'a state change');

    should(readableDebug(flow, sidebar.messages, 'command results')[0]).equal(
      'ast_batt_001 SET_CHARGE_RATE 40 kW: ok',
    );
    for (const line of readableDebug(flow, sidebar.messages, 'telemetry')) {
      should(line).match(/^ast_batt_001: SoC \d+(\.\d+)? %, -?\d+(\.\d+)? kW, [A-Z]+$/);
    }
    should(readableDebug(flow, sidebar.messages, 'state changes')[0]).match(
      /^ast_batt_001 [A-Z]+ -> [A-Z]+( \(.+\))?$/,
    );
    should(sidebar.messages.filter((m) => m.name === 'errors')).eql([]);
    should(warnings()).eql([]);
  });

  it('06: a charger that ignores its limit shows a deviation, then complies again', async () => {
    const flow = readExample('06 Deviations from a quirky charger.json');
    // The central system on a free port instead of 9226.
    const loaded = flow.map((n) => (n.type === 'qe-ocpp-server' ? { ...n, port: 0 } : n));
    await helper.load(initialisersFor(flow), loaded as never);
    const serverId = flow.find((n) => n.type === 'qe-ocpp-server')?.id as string;
    const server = helper.getNode(serverId) as unknown as {
      ready: Promise<void>;
      port: number | null;
      failure: string | null;
    };
    await server.ready;
    if (server.port === null)
      throw new Error(`the central system did not start: ${server.failure}`);
    // What the comment's command line starts (--ignore-profile --start), with meter values
    // every second instead of 5 s: the deviation shows once the 15-s grace has run out.
    const sim = new ChargePointSimulator({
      endpoint: `ws://127.0.0.1:${server.port}/ocpp`,
      identity: 'CP006',
      protocol: 'ocpp1.6',
      quirk: 'ignore-profile',
      meterIntervalMs: 1000,
      reconnect: false,
    });
    chargers.push(sim);
    await sim.start();
    await sim.plugIn();
    await sim.startCharging();
    const deviations = of(flow, sidebar.messages, 'deviations');
    const compliant = of(flow, sidebar.messages, 'compliant again');
    // 7.4 kW for the first 30-s slot, which the charger accepts and ignores (11 kW)...
    await until(() => deviations().length >= 1, 'a deviation', { ms: 30_000 });
    should(compliant()).eql([]);
    // ...then 11 kW, which its EV's 11 kW keeps to.
    await until(() => compliant().length >= 1, 'compliance again', { ms: 25_000 });

    const [deviation, ...more] = readableDebug(flow, sidebar.messages, 'deviations');
    should(deviation).match(
      /^ast_ev_001 DEVIATION: 11 kW > 7\.4 kW limit since \d\d:\d\d:\d\d UTC$/,
    );
    should(more).eql([]);
    should(readableDebug(flow, sidebar.messages, 'compliant again')).match([
      /^ast_ev_001 compliant again after \d+ s: 11 kW for a 11 kW setpoint$/,
    ]);
    should(readableDebug(flow, sidebar.messages, 'command results')).containEql(
      'ast_ev_001 SET_CHARGE_RATE 7.4 kW: ok',
    );
    // The charger accepted the limit and applied nothing: its EV drew 11 kW throughout.
    should(sim.powerW).equal(11_000);
    should(sidebar.messages.filter((m) => m.name === 'errors')).eql([]);
    should(warnings()).eql([]);
  });
});
