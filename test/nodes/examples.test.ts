/**
 * The importable example flows under examples/ (Node-RED: Import > Examples): each file is
 * a valid flow export that uses only our nodes and Node-RED core nodes, loads into the
 * runtime, and does what its comments say.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import should from 'should';
import sinon from 'sinon';
import type { AnyBusEvent, Command } from '../..';
import {
  arrivals,
  CONFIG_TYPES,
  CORE_TYPES,
  captured,
  coordinatorOf,
  type ExampleNode,
  files,
  findNode,
  initialisersFor,
  modulesOf,
  OURS,
  press,
  readableDebug,
  readExample,
  warnings,
  watchSidebar,
} from './examples-lib';
import { settle, siteOf } from './flows';
import { helper, runtimeRequire } from './runtime';

describe('examples', () => {
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });

  it('there are example flows, with names that read well in the Import menu', () => {
    should(files.length).be.aboveOrEqual(2);
    for (const f of files) should(f).match(/^\d\d [A-Z][\w ,()-]+\.json$/);
  });

  it('every non-config node type of the package appears in some example', () => {
    const used = new Set(files.flatMap((f) => readExample(f).map((n) => n.type)));
    for (const type of OURS) {
      if (!CONFIG_TYPES.has(type)) should(used.has(type)).be.true(`${type} is in no example`);
    }
  });

  it('every debug node of the examples and of the demo flow shows a one-line summary (msg.summary or an expression), not a whole message', () => {
    const demoFlow = path.join(__dirname, '../../scripts/demo-flow.json');
    const flows: [string, ExampleNode[]][] = [
      ...files.map((f): [string, ExampleNode[]] => [f, readExample(f)]),
      ['scripts/demo-flow.json', JSON.parse(fs.readFileSync(demoFlow, 'utf8')) as ExampleNode[]],
    ];
    const { util } = runtimeRequire('@node-red/util') as {
      util: { prepareJSONataExpression(expr: string, node: null): unknown };
    };
    let debugNodes = 0;
    for (const [file, flow] of flows) {
      for (const n of flow.filter((d) => d.type === 'debug')) {
        debugNodes++;
        // msg.summary: the one line that the package's nodes put on what they send.
        if (n.targetType === 'msg' && n.complete === 'summary') continue;
        should(n.targetType).equal('jsonata', `${file}: debug ${n.name} shows msg.${n.complete}`);
        should(() => util.prepareJSONataExpression(String(n.complete), null)).not.throw();
      }
    }
    should(debugNodes).be.above(20);
  });

  for (const file of files) {
    describe(file, () => {
      const flow = readExample(file);

      it('is a flow export on one tab, with fixed ids, our nodes, core nodes and the palette modules it names only', () => {
        const modules = modulesOf(flow);
        const moduleType = (t: string) => modules.some((m) => m.types.has(t));
        const moduleConfig = (t: string) => modules.some((m) => m.configTypes.has(t));
        should(flow).be.an.Array();
        const tabs = flow.filter((n) => n.type === 'tab');
        should(tabs).have.length(1);
        const tab = (tabs[0] as ExampleNode).id;
        const ids = new Set<string>();
        for (const n of flow) {
          should(n.id).match(/^[0-9a-f]{16}$/);
          should(ids.has(n.id)).be.false(`id ${n.id} appears twice`);
          ids.add(n.id);
          const known =
            n.type === 'tab' || OURS.has(n.type) || n.type in CORE_TYPES || moduleType(n.type);
          should(known).be.true(`node ${n.id} has type ${n.type}: neither ours nor core`);
        }
        // A flow that needs a palette module says which, and how to install it.
        for (const m of modules) {
          const says = flow.some(
            (n) =>
              n.type === 'comment' &&
              String(n.name).includes(m.name) &&
              String((n as { info?: unknown }).info).includes(`npm install ${m.name}`),
          );
          should(says).be.true(`${file} needs ${m.name}: a comment node must say so and how`);
        }
        for (const n of flow) {
          if (n.type === 'tab') continue;
          if (moduleConfig(n.type)) continue;
          if (CONFIG_TYPES.has(n.type)) {
            // Importing an example must not write files.
            if (n.type === 'qe-coordinator') should(n.persist).equal(false);
            continue;
          }
          should(n.z).equal(tab);
          should(n.name).be.a.String().and.not.empty();
          should(n.x! % 20).equal(0, `${n.name}: x ${n.x} off the grid`);
          should(n.y! % 20).equal(0, `${n.name}: y ${n.y} off the grid`);
          for (const to of (n.wires ?? []).flat()) {
            should(ids.has(to)).be.true(`${n.name} is wired to ${to}, which is not in the flow`);
          }
          if (OURS.has(n.type)) {
            const coord = flow.find((c) => c.id === n.coordinator);
            should(coord?.type).equal('qe-coordinator', `${n.name} has no coordinator`);
          }
        }
      });

      it('loads into the runtime with every node started and no error', async () => {
        const clock = sinon.useFakeTimers({
          now: Date.parse('2025-06-02T08:00:00Z'),
          toFake: ['setTimeout', 'clearTimeout', 'Date'],
        });
        try {
          // A central system of an example listens on a fixed port (9220): here on a free one,
          // so that the test neither collides with nor needs that port.
          const loaded = flow.map((n) => (n.type === 'qe-ocpp-server' ? { ...n, port: 0 } : n));
          await helper.load(initialisersFor(flow), loaded as never);
          await settle();
          for (const n of flow) {
            if (n.type !== 'tab')
              should.exist(helper.getNode(n.id), `${n.type} ${n.id} not started`);
          }
          should(siteOf(coordinatorOf(flow))).be.ok();
          // A Modbus bus of an example points at a simulator that nothing serves here: it
          // keeps reconnecting in the background, and says so.
          const reconnecting = /^qe-modbus-connection .*: cannot connect to .*; reconnecting$/;
          should(warnings().filter((w) => !reconnecting.test(w))).eql([]);
        } finally {
          await helper.unload();
          clock.restore();
        }
      });
    });
  }

  describe('01: dispatch a schedule with the custom adapter', () => {
    const flow = readExample('01 Dispatch a schedule (custom adapter).json');
    const T0 = Date.parse('2025-06-02T08:00:00.300Z');
    const S = 1000;
    let clock: sinon.SinonFakeTimers;

    beforeEach(() => {
      // Timers and Date are fake, for our nodes and inside function nodes alike (the
      // function node's sandbox calls the global setTimeout at run time, and takes Date
      // when the node starts); setImmediate (message delivery) stays real.
      clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    });
    afterEach((done) => {
      helper.unload().then(
        () => {
          clock.restore();
          done();
        },
        (err: unknown) => {
          clock.restore();
          done(err);
        },
      );
    });

    it('on deploy, sends the sample schedule from now on; every command ends COMPLETED, retries included', async () => {
      const sidebar = watchSidebar();
      after(() => sidebar.stop());
      await helper.load(initialisersFor(flow), flow as never);
      const site = siteOf(coordinatorOf(flow));
      const events: AnyBusEvent[] = [];
      const off = site.eventBus.subscribe('*', (e) => events.push(e));
      const toDevice = arrivals(flow, 'to the device');
      const completedDebug = arrivals(flow, 'COMMAND_COMPLETED');
      const errors = arrivals(flow, 'errors');
      const of = (type: string) => events.filter((e) => e.type === type);

      // The inject fires once, 1 s after deploy.
      await clock.tickAsync(900);
      await settle();
      should(of('SCHEDULE_RECEIVED')).have.length(0);
      await clock.tickAsync(100);
      await settle(10);
      const received = of('SCHEDULE_RECEIVED');
      should(received).have.length(1);
      const summary = received[0]?.payload as unknown as Record<string, unknown>;
      should(summary).have.properties({
        scheduleId: 'demo',
        start: new Date(Math.floor((T0 + S) / S) * S).toISOString(),
        slotSeconds: 20,
        slots: 6,
        commandCount: 12,
      });
      should(summary.assets).eql(['ast_ev_001', 'ast_ev_002', 'ast_batt_001']);
      should(summary.ignoredColumns).eql(['price_per_kwh']);
      // The first slot's commands go out at once, to the device.
      should(toDevice.map((m) => m.topic)).eql(['ast_ev_001', 'ast_ev_002', 'ast_batt_001']);

      // Six 20-s slots, a 5-s answer timeout and 2-s backoff: all done within 2.5 minutes.
      for (let t = 0; t < 150; t++) {
        await clock.tickAsync(S);
        await settle();
      }
      off();
      const commands: Command[] = site.engine.getCommands({ scheduleId: 'demo' });
      should(commands).have.length(12);
      should(commands.map((c) => c.status)).eql(new Array(12).fill('COMPLETED'));
      should(of('COMMAND_COMPLETED')).have.length(12);
      should(completedDebug).have.length(12);
      should(of('COMMAND_FAILED').length + of('COMMAND_TIMED_OUT').length).equal(0);
      should(errors).have.length(0);

      // Each command went out at its slot start (the first slot starts at the whole second
      // before the inject fired).
      const start = Date.parse(String(summary.start));
      for (const c of commands) {
        const firstSent = c.history.find((h) => h.status === 'DISPATCHED')?.at.getTime();
        should(firstSent).equal(Math.max(c.scheduledAt.getTime(), T0 + S), c.id);
        should((c.scheduledAt.getTime() - start) % (20 * S)).equal(0);
      }
      const reasons = commands.flatMap((c) => c.history.map((h) => h.reason ?? ''));
      // The simulated device leaves every 5th command unanswered: timed out, then retried.
      should(reasons.some((r) => /retry in 2 s: no answer within 5 s/.test(r))).be.true();
      // And refuses the battery's first discharge attempt as busy: retried, then accepted.
      const discharge = commands.find((c) => c.type === 'SET_DISCHARGE_RATE');
      should(discharge?.assetId).equal('ast_batt_001');
      should(discharge?.attempts).be.aboveOrEqual(2);
      should(
        discharge?.history.some((h) => /busy: inverter is ramping/.test(h.reason ?? '')),
      ).be.true();
      const attempts = commands.reduce((sum, c) => sum + c.attempts, 0);
      should(toDevice).have.length(attempts);
      should(warnings()).eql([]);

      // The debug sidebar shows one readable line a message, not objects to unfold.
      const shown = (name: string) => readableDebug(flow, sidebar.messages, name);
      const completedLine = /^ast_\w+ SET_(CHARGE|DISCHARGE)_RATE \d+(\.\d+)? kW COMPLETED$/;
      should(shown('COMMAND_COMPLETED')).have.length(12);
      for (const line of shown('COMMAND_COMPLETED')) should(line).match(completedLine);
      should(shown('SCHEDULE_RECEIVED')).eql([
        `schedule demo: 12 commands for ast_ev_001, ast_ev_002, ast_batt_001, 6 slots of 20 s from ${summary.start}`,
      ]);
      should(shown('commands sent')).have.length(attempts);
      should(shown('commands sent')).containEql(
        'ast_batt_001 SET_DISCHARGE_RATE 10 kW DISPATCHED (attempt 2 of 4)',
      );
      should(shown('to the device')).eql(shown('commands sent'));
      should(shown('device answers')).containEql(
        'ast_batt_001: failure, busy: inverter is ramping',
      );
      should(shown('device answers')).containEql('ast_ev_001: success');
      // Switched off in the example (click their buttons to see them): nothing shown.
      for (const name of ['commands created', 'COMMAND_CREATED', 'COMMAND_ACKNOWLEDGED']) {
        const id = findNode(flow, name).id;
        should(sidebar.messages.filter((m) => m.id === id)).eql([]);
      }
    });
  });

  describe('02: asset states and holds', () => {
    const flow = readExample('02 Asset states and holds.json');
    const S = 1000;
    let clock: sinon.SinonFakeTimers;

    beforeEach(() => {
      clock = sinon.useFakeTimers({
        now: Date.parse('2025-06-02T08:00:00Z'),
        toFake: ['setTimeout', 'clearTimeout', 'Date'],
      });
    });
    afterEach((done) => {
      helper.unload().then(
        () => {
          clock.restore();
          done();
        },
        (err: unknown) => {
          clock.restore();
          done(err);
        },
      );
    });

    const step = async (ms = S) => {
      await settle();
      await clock.tickAsync(ms);
      await settle();
    };

    it('holds the commands of a FAULTED or UNAVAILABLE charger; reset releases them, cancel and reset drop them', async () => {
      const sidebar = watchSidebar();
      after(() => sidebar.stop());
      await helper.load(initialisersFor(flow), flow as never);
      const site = siteOf(coordinatorOf(flow));
      const sent = arrivals(flow, 'commands sent');
      const states = arrivals(flow, 'state changes');
      const events = arrivals(flow, 'events');
      const errors = arrivals(flow, 'errors');
      const ev = () => site.engine.getCommands({ assetId: 'ast_ev_001' }) as Command[];

      // A faulted charger: the 11 kW override is held, nothing is sent.
      press(flow, 'fault', 'EV charger ast_ev_001');
      await step();
      should(states.map((m) => (m.payload as { to_state: string }).to_state)).eql(['FAULTED']);
      press(flow, 'EV 11 kW');
      await step(10 * S);
      should(sent).have.length(0);
      should(site.engine.getHeldCommands('ast_ev_001')).have.length(1);
      should(site.engine.getHeldCommands('ast_ev_001')[0]?.holdReason).match(/FAULTED/);

      // reset: AVAILABLE again, the held command goes out and the auto-answer completes it.
      press(flow, 'reset', 'EV charger ast_ev_001');
      await step();
      should(sent.map((m) => m.topic)).eql(['ast_ev_001']);
      await step();
      should(ev().map((c) => c.status)).eql(['COMPLETED']);
      should((ev()[0] as Command).valueKw).equal(11);

      // The battery is not held: its command is completed at once.
      press(flow, 'battery charge 5 kW');
      await step(2 * S);
      should(site.engine.getCommands({ assetId: 'ast_batt_001' })).have.length(1);
      should((site.engine.getCommands({ assetId: 'ast_batt_001' })[0] as Command).status).equal(
        'COMPLETED',
      );

      // A forced UNAVAILABLE holds too; "cancel EV" (topic cancel) drops the held command.
      press(flow, '{state: "UNAVAILABLE"}');
      await step();
      press(flow, 'EV 0 kW');
      await step(5 * S);
      should(site.engine.getHeldCommands('ast_ev_001')).have.length(1);
      press(flow, 'cancel EV');
      await step();
      should(site.engine.getHeldCommands('ast_ev_001')).have.length(0);
      should(ev().map((c) => c.status)).eql(['COMPLETED', 'CANCELLED']);
      press(flow, 'enable');
      await step();

      // "reset all" (msg.reset) cancels whatever is pending, here a held battery command.
      press(flow, 'fault', 'battery ast_batt_001');
      await step();
      press(flow, 'battery charge 5 kW');
      await step();
      should(site.engine.getHeldCommands('ast_batt_001')).have.length(1);
      press(flow, 'reset all');
      await step();
      should(site.engine.stats().pending).equal(0);
      const battery = site.engine.getCommands({ assetId: 'ast_batt_001' }) as Command[];
      should(battery.map((c) => c.status)).eql(['COMPLETED', 'CANCELLED']);
      should(sent).have.length(2);

      // An invalid trigger reaches the catch node, with the valid ones listed.
      press(flow, 'start_charge');
      await step();
      should(errors).have.length(1);
      should((errors[0]?.error as { message?: string } | undefined)?.message).match(
        /ast_ev_001.*plug_in.*/,
      );

      // The event fan-out showed only these assets, by event type.
      const topics = new Set(events.map((m) => m.topic));
      should([...topics].sort()).eql([
        'COMMAND_CANCELLED',
        'COMMAND_COMPLETED',
        'COMMAND_CREATED',
        'COMMAND_DISPATCHED',
        'STATE_CHANGED',
      ]);
      should(warnings()).eql([]);

      // The debug sidebar shows one readable line a message, not objects to unfold.
      const shown = (name: string) => readableDebug(flow, sidebar.messages, name);
      should(shown('state changes')[0]).equal('ast_ev_001 AVAILABLE -> FAULTED');
      should(shown('commands sent')).eql([
        'ast_ev_001 SET_CHARGE_RATE 11 kW DISPATCHED (attempt 1 of 4)',
        'ast_batt_001 SET_CHARGE_RATE 5 kW DISPATCHED (attempt 1 of 4)',
      ]);
      should(shown('events')).containEql(
        'ast_ev_001 SET_CHARGE_RATE 0 kW CANCELLED (cancelled by hand)',
      );
      should(shown('events')).containEql('ast_ev_001 AVAILABLE -> FAULTED');
      should(shown('errors')).have.length(1);
      should(shown('errors')[0]).match(/^EV charger ast_ev_001: .*ast_ev_001.*plug_in/);
    });
  });

  describe('03: schedule from HTTP', () => {
    const file = '03 Schedule from a file or HTTP.json';
    const flow = readExample(file);
    let server: http.Server | null = null;

    afterEach(async () => {
      if (server) await new Promise((r) => server?.close(r));
      server = null;
      await helper.unload();
    });

    it('POST /schedule answers 202 with the summary, or 400 with the reason', async function () {
      if (!files.includes(file)) this.skip();
      captured.httpNode = null;
      await helper.load(initialisersFor(flow), flow as never);
      const app = captured.httpNode as http.RequestListener | null;
      if (!app) throw new Error('the http in node registered no routes on RED.httpNode');
      server = http.createServer((req, res) => app(req, res));
      await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/schedule`;
      const post = async (body: unknown) => {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };

      const ok = await post({
        columns: ['ev_ev_001_kw', 'battery_charge_kw', 'battery_discharge_kw'],
        index: ['2030-01-01T08:00:00Z', '2030-01-01T09:00:00Z'],
        data: [
          [11, 5, 0],
          [7.4, 0, 10],
        ],
      });
      should(ok.status).equal(202);
      should(ok.body).have.properties({
        start: '2030-01-01T08:00:00.000Z',
        slotSeconds: 3600,
        commandCount: 4,
      });
      should(ok.body.assets).eql(['ast_ev_001', 'ast_batt_001']);
      const site = siteOf(coordinatorOf(flow));
      should(site.engine.stats().pending).equal(4);

      const bad = await post({
        columns: ['ev_ev_001_kw'],
        index: ['2030-01-01T08:00:00Z', '2030-01-01T09:00:00Z'],
        data: [[11], [-4]],
      });
      should(bad.status).equal(400);
      should(bad.body.error).match(/row 1 .*column ev_ev_001_kw: -4 kW is negative/);
      should(site.engine.stats().pending).equal(4);
      await settle();
      should(warnings()).eql([]);
    });
  });
});
