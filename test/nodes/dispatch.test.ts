import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import sinon from 'sinon';
import {
  allNodes,
  catcher,
  coordinator,
  type FlowNode,
  inbox,
  onTab,
  settle,
  siteOf,
} from './flows';
import { helper } from './runtime';

const T0 = Date.parse('2025-06-02T00:00:00Z');
const H = 3600_000;
const S = 1000;
const fixture = (f: string) => fs.readFileSync(path.join(__dirname, '../fixtures', f), 'utf8');
const EV_MAP = { ev_001: 'ast_ev_001', ev_002: 'ast_ev_002', ev_003: 'ast_ev_003' };

/** schedule -> dispatcher -> adapter -> out; adapter results come back on its input. */
function dispatchFlow(
  coordExtra: Record<string, unknown> = {},
  assets = 'ast_ev_001, ast_ev_002, ast_ev_003',
): FlowNode[] {
  return [
    coordinator(coordExtra),
    {
      id: 'sched',
      type: 'qe-schedule',
      coordinator: 'coord',
      assetMap: JSON.stringify(EV_MAP),
      wires: [['disp', 'schedOut']],
    },
    { id: 'schedOut', type: 'helper' },
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['adapter', 'dispOut']] },
    { id: 'dispOut', type: 'helper' },
    { id: 'adapter', type: 'qe-adapter', coordinator: 'coord', assets, wires: [['out']] },
    { id: 'out', type: 'helper' },
    {
      id: 'events',
      type: 'qe-events',
      coordinator: 'coord',
      eventTypes: ['COMMAND_COMPLETED', 'COMMAND_TIMED_OUT', 'COMMAND_FAILED', 'SCHEDULE_RECEIVED'],
      outputs: 4,
      wires: [['completed'], ['timedOut'], ['failed'], ['received']],
    },
    { id: 'completed', type: 'helper' },
    { id: 'timedOut', type: 'helper' },
    { id: 'failed', type: 'helper' },
    { id: 'received', type: 'helper' },
    ...catcher(),
  ];
}

describe('nodes: schedule -> dispatcher -> custom adapter', () => {
  let clock: sinon.SinonFakeTimers;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(() => {
    // Timers and Date are fake; setImmediate (message delivery) stays real.
    clock = sinon.useFakeTimers({
      now: T0 - 60 * S,
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

  it('qe-schedule turns the optimiser’s schedule into JSON-safe commands and a summary', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const out = inbox('schedOut');
    const received = inbox('received');
    helper
      .getNode('sched')
      .receive({ payload: fixture('ev-schedule.split.json'), scheduleId: 'day-1' } as never);
    await out.count(1);
    const msg = out.msgs[0] as {
      payload: Record<string, unknown>[];
      schedule: Record<string, unknown>;
    };
    should(msg.payload).have.length(10);
    should(JSON.parse(JSON.stringify(msg.payload))).eql(msg.payload);
    should(msg.payload[0]).have.properties({
      id: 'day-1:ast_ev_001:0',
      assetId: 'ast_ev_001',
      type: 'SET_CHARGE_RATE',
      valueKw: 0,
      scheduledAt: '2025-06-02T00:00:00.000Z',
      status: 'PENDING',
    });
    should(msg.schedule).have.properties({
      scheduleId: 'day-1',
      start: '2025-06-02T00:00:00.000Z',
      end: '2025-06-03T00:00:00.000Z',
      slotSeconds: 3600,
      commandCount: 10,
    });
    should(msg.schedule.assets).eql(['ast_ev_001', 'ast_ev_002', 'ast_ev_003']);
    should(msg.schedule.ignoredColumns).containEql('price_per_kwh');
    await received.count(1);
    should(received.msgs[0]).have.properties({ topic: 'SCHEDULE_RECEIVED' });
  });

  it('qe-schedule: a schedule carrying its own id sent twice is id, then id#2, which supersedes it', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const out = inbox('schedOut');
    const caught = inbox('caught');
    const site = siteOf();
    const wrapped = `{"scheduleId": "opt-7", "status": "optimal", "schedule": ${fixture('ev-schedule.split.json')}}`;
    helper.getNode('sched').receive({ payload: wrapped } as never);
    await out.count(1);
    await settle(10);
    helper.getNode('sched').receive({ payload: wrapped } as never);
    await out.count(2);
    await settle(10);
    const ids = out.msgs.map(
      (m) => (m as { schedule: { scheduleId: string } }).schedule.scheduleId,
    );
    should(ids).eql(['opt-7', 'opt-7#2']);
    should((out.msgs[1] as { payload: { id: string }[] }).payload[0]?.id).equal(
      'opt-7#2:ast_ev_001:0',
    );
    should(
      site.engine.getCommands({ scheduleId: 'opt-7', status: 'CANCELLED' as never }),
    ).have.length(10);
    should(
      site.engine.getCommands({ scheduleId: 'opt-7#2', status: 'PENDING' as never }),
    ).have.length(10);
    should(caught.msgs).have.length(0);
  });

  it('a big schedule travels as msg.plan only; the dispatcher makes its commands as they fall due', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const out = inbox('out');
    const schedOut = inbox('schedOut');
    const caught = inbox('caught');
    const site = siteOf();
    // 3 vehicles x 400 quarter hours, a new value every slot: 1,200 commands.
    const rows = Array.from({ length: 400 }, (_, i) => ({
      timestamp: new Date(T0 + i * 900 * S).toISOString(),
      ev_001_kw: 1 + (i % 7),
      ev_002_kw: 2 + (i % 5),
      ev_003_kw: 3 + (i % 3),
    }));
    helper.getNode('sched').receive({ payload: rows, scheduleId: 'big' } as never);
    await schedOut.count(1);
    await settle(10);
    const msg = schedOut.msgs[0] as {
      payload: { commandCount: number };
      schedule: { commandCount: number };
      plan: { scheduleId: string; slot: ArrayLike<number> };
    };
    should(msg.schedule.commandCount).equal(1200);
    should(msg.payload).eql(msg.schedule); // not 1,200 commands' JSON
    should(msg.plan.scheduleId).equal('big');
    should(msg.plan.slot.length).equal(1200);
    should(site.engine.stats().pending).equal(1200);
    await clock.tickAsync(60 * S);
    await out.count(3);
    should(out.msgs.map((m) => (m as { commandId: string }).commandId)).eql([
      'big:ast_ev_001:0',
      'big:ast_ev_002:0',
      'big:ast_ev_003:0',
    ]);
    // A bad plan reaches a Catch node, naming the field, and changes nothing.
    helper.getNode('disp').receive({ plan: { ...msg.plan, scheduleId: '' } } as never);
    await caught.count(1);
    should((caught.msgs[0] as { error: { message: string } }).error.message).match(
      /qe-dispatcher: msg\.plan\.scheduleId: must be a non-empty string/,
    );
    should(site.engine.stats().pending + site.engine.stats().inFlight).equal(1200);
  });

  it('qe-dispatcher: a plan, then a reset at once: the reset acts on the plan (messages in order)', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const schedOut = inbox('schedOut');
    const caught = inbox('caught');
    const site = siteOf();
    const rows = Array.from({ length: 400 }, (_, i) => ({
      timestamp: new Date(T0 + i * 900 * S).toISOString(),
      ev_001_kw: 1 + (i % 7),
      ev_002_kw: 2 + (i % 5),
      ev_003_kw: 3 + (i % 3),
    }));
    helper.getNode('sched').receive({ payload: rows, scheduleId: 'big' } as never);
    await schedOut.count(1);
    await settle(10);
    should(site.engine.stats().pending).equal(1200);
    const plan = (schedOut.msgs[0] as { plan: Record<string, unknown> }).plan;
    // A second plan, then a reset, sent together: the reset must find the plan registered.
    // (That a message waits for a plan read over several turns is the core's: site.inOrder,
    // test/unit/site-plan-async.test.ts; a plan this small is read in one slice.)
    const disp = helper.getNode('disp');
    disp.receive({ plan: { ...plan, scheduleId: 'big-2' } } as never);
    disp.receive({ reset: true } as never);
    await settle(10);
    should(site.engine.hasPlan('big-2')).be.false();
    should(site.engine.stats().pending).equal(0);
    should(
      site.engine.getCommands({ scheduleId: 'big-2', status: 'CANCELLED' as never }).length,
    ).be.above(0);
    should(caught.msgs).have.length(0);
  });

  it('qe-dispatcher: arrays of 3,000 commands, then a reset at once: the reset finds both registered (messages in order)', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const caught = inbox('caught');
    const site = siteOf();
    const payload = Array.from({ length: 3000 }, (_, i) => ({
      id: `big-${i}`,
      assetId: `ast_ev_00${1 + (i % 3)}`,
      type: 'SET_CHARGE_RATE',
      valueKw: 1 + (i % 7),
      scheduledAt: new Date(T0 + Math.floor(i / 3) * 900 * S).toISOString(),
    }));
    const disp = helper.getNode('disp');
    disp.receive({ payload } as never);
    // Message delivery and the slices' turns are real (setImmediate); timers are fake.
    for (let k = 0; k < 5000 && site.engine.stats().pending < 3000; k++)
      await new Promise((resolve) => setImmediate(resolve));
    should(site.engine.stats().pending).equal(3000);
    // (That they are made over several turns, then registered in one, is the core's:
    // test/unit/site-submit-async.test.ts; how many turns here is the machine's.)
    should(site.engine.getCommands({ assetId: 'ast_ev_002' })).have.length(1000);
    disp.receive({ payload: payload.map((c) => ({ ...c, id: `again-${c.id}` })) } as never);
    disp.receive({ reset: true } as never);
    await settle(10);
    // The reset came after the second array: it found both registered, and cancelled all.
    should(site.engine.stats().pending).equal(0);
    should(site.engine.getCommands({ status: 'CANCELLED' as never })).have.length(6000);
    should(caught.msgs).have.length(0);
  });

  it('qe-schedule: a schedule that comes while a large one converts waits for it: in order, done for each', async () => {
    const assets = 2000;
    const columns = Array.from({ length: assets }, (_, a) => `ev_ev_${a}_kw`);
    const index = Array.from({ length: 96 }, (_, s) => new Date(T0 + s * 900 * S).toISOString());
    const big = JSON.stringify({
      columns,
      index,
      data: index.map((_, s) => columns.map((_, a) => ((a + Math.floor(s / 8)) % 22) / 2)),
    });
    const flow = dispatchFlow();
    const sched = flow.find((n) => n.id === 'sched') as FlowNode;
    sched.assetMap = JSON.stringify(
      Object.fromEntries(columns.map((_, a) => [`ev_${a}`, `ast_ev_${a}`])),
    );
    sched.ignoreUnmapped = true;
    flow.push(
      { id: 'doneOfSched', type: 'complete', scope: ['sched'], wires: [['completedSched']] },
      { id: 'completedSched', type: 'helper' },
    );
    await helper.load(allNodes(), onTab(flow));
    const out = inbox('schedOut');
    const completed = inbox('completedSched');
    const caught = inbox('caught');
    const node = helper.getNode('sched');
    node.receive({ payload: big, scheduleId: 'day' } as never);
    node.receive({
      payload:
        '{"columns": ["ev_ev_1_kw"], "index": ["2025-06-02T00:00:00Z", "2025-06-02T01:00:00Z"], "data": [[-1], [2]]}',
    } as never);
    node.receive({ payload: fixture('ev-schedule.split.json'), scheduleId: 'day' } as never);
    await out.count(2);
    await caught.count(1);
    await completed.count(2);
    const ids = out.msgs.map(
      (m) => (m as { schedule: { scheduleId: string } }).schedule.scheduleId,
    );
    should(ids).eql(['day', 'day#2']);
    should((out.msgs[0] as { schedule: { assets: string[] } }).schedule.assets).have.length(assets);
    should((caught.msgs[0] as { error: { message: string } }).error.message).match(
      /row 0 \(2025-06-02T00:00:00Z\), column ev_ev_1_kw: -1 kW is negative/,
    );
    // done() for every message: two without an error reach the Complete node.
    should(completed.msgs).have.length(2);
  });

  it('sends each command at its slot start, by timer, and the custom adapter completes it', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const out = inbox('out');
    const completed = inbox('completed');
    const site = siteOf();
    helper.getNode('sched').receive({ payload: fixture('ev-schedule.split.json') } as never);
    await settle(10);
    should(site.engine.stats().pending).equal(10);
    should(out.msgs).have.length(0);
    // 00:00: the first command of each vehicle.
    await clock.tickAsync(60 * S);
    await out.count(3);
    should(out.msgs.map((m) => m.topic)).eql(['ast_ev_001', 'ast_ev_002', 'ast_ev_003']);
    const first = out.msgs[0] as { payload: { id: string; status: string }; commandId: string };
    should(first.payload.status).equal('DISPATCHED');
    should(first.commandId).equal(first.payload.id);
    // Answer all three through the adapter's input: with msg.commandId, or in the payload.
    helper
      .getNode('adapter')
      .receive({ commandId: first.commandId, payload: { success: true } } as never);
    for (const m of out.msgs.slice(1, 3)) {
      helper
        .getNode('adapter')
        .receive({ payload: { commandId: m.commandId, success: true } } as never);
    }
    await completed.count(3);
    should(
      (completed.msgs[0] as { payload: { id: string; status: string } }).payload,
    ).have.properties({ id: first.payload.id, status: 'COMPLETED' });
    should(site.engine.getCommand(first.payload.id)?.history.map((h) => h.status)).eql([
      'PENDING',
      'DISPATCHED',
      'ACKNOWLEDGED',
      'COMPLETED',
    ]);
    // Nothing more until 01:00, when ast_ev_001 goes to 11 kW.
    await clock.tickAsync(H - S);
    await settle();
    should(out.msgs).have.length(3);
    await clock.tickAsync(S);
    await out.count(4);
    should(out.msgs[3]).have.properties({ topic: 'ast_ev_001' });
    should((out.msgs[3] as { payload: { valueKw: number } }).payload.valueKw).equal(11);
    should(site.engine.stats()).have.properties({ pending: 6, inFlight: 1 });
  });

  it('the dispatcher’s status shows pending work, then idle with the last command', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const disp = helper.getNode('disp') as unknown as NodeJS.EventEmitter;
    const statuses: { fill: string; text: string }[] = [];
    disp.on('call:status', (call: { args: [{ fill: string; text: string }] }) =>
      statuses.push(call.args[0]),
    );
    const out = inbox('out');
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 3, scheduledAt: T0 },
    } as never);
    await clock.tickAsync(300);
    await settle();
    should(statuses.at(-1)).have.properties({ fill: 'blue', text: 'qe-dispatcher.status.pending' });
    await clock.tickAsync(60 * S);
    await out.count(1);
    helper
      .getNode('adapter')
      .receive({ payload: { commandId: out.msgs[0]?.commandId, success: true } } as never);
    await settle();
    await clock.tickAsync(300);
    await settle();
    should(statuses.at(-1)).have.properties({
      fill: 'grey',
      text: 'qe-dispatcher.status.idle-last',
    });
  });

  it('an unanswered command is retried after its timeout and ends TIMED_OUT', async () => {
    await helper.load(
      allNodes(),
      onTab(dispatchFlow({ maxRetries: 1, commandTimeoutSeconds: 10 })),
    );
    const out = inbox('out');
    const timedOut = inbox('timedOut');
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 7.4 },
    } as never);
    await out.count(1);
    await clock.tickAsync(10 * S); // timeout of attempt 1, retry in 2 s
    await settle();
    should(out.msgs).have.length(1);
    await clock.tickAsync(2 * S);
    await out.count(2);
    should((out.msgs[1] as { payload: { attempts: number } }).payload.attempts).equal(2);
    await clock.tickAsync(10 * S);
    await timedOut.count(1);
    const p = (
      timedOut.msgs[0] as { payload: { status: string; attempts: number; lastError: string } }
    ).payload;
    should(p).have.properties({ status: 'TIMED_OUT', attempts: 2 });
    should(p.lastError).match(/no answer within 10 s/);
  });

  it('a rejection (final) fails at once; a transient failure is retried', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const out = inbox('out');
    const failed = inbox('failed');
    helper.getNode('disp').receive({
      payload: [
        { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 1 },
        { assetId: 'ast_ev_002', type: 'SET_CHARGE_RATE', valueKw: 2 },
      ],
    } as never);
    await out.count(2);
    const [a, b] = out.msgs as { commandId: string }[];
    helper.getNode('adapter').receive({
      payload: { commandId: a?.commandId, success: false, error: 'Rejected', final: true },
    } as never);
    helper
      .getNode('adapter')
      .receive({ payload: { commandId: b?.commandId, success: false, error: 'busy' } } as never);
    await failed.count(1);
    should((failed.msgs[0] as { payload: { lastError: string } }).payload.lastError).equal(
      'Rejected',
    );
    await clock.tickAsync(2 * S);
    await out.count(3);
    should(out.msgs[2]).have.properties({ commandId: b?.commandId });
  });

  it('a command for an asset no adapter serves fails with an error a Catch node sees', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow({}, 'ast_ev_001')));
    const caught = inbox('caught');
    const failed = inbox('failed');
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_nobody', type: 'SET_CHARGE_RATE', valueKw: 1 },
    } as never);
    await caught.count(1);
    const err = (caught.msgs[0] as { error: { message: string; source: { id: string } } }).error;
    should(err.message).match(/no adapter serves asset ast_nobody/);
    should(err.source.id).equal('disp');
    await failed.count(1);
  });

  it('one dispatcher feeds several adapters: each passes over the others’ assets', async () => {
    const flow = dispatchFlow({}, 'ast_ev_001');
    flow.push(
      {
        id: 'adapter2',
        type: 'qe-adapter',
        coordinator: 'coord',
        assets: 'ast_ev_002',
        wires: [['out2']],
      },
      { id: 'out2', type: 'helper' },
    );
    (flow.find((n) => n.id === 'disp') as unknown as { wires: string[][] }).wires[0]?.push(
      'adapter2',
    );
    await helper.load(allNodes(), onTab(flow));
    const out = inbox('out');
    const out2 = inbox('out2');
    helper.getNode('disp').receive({
      payload: [
        { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 1 },
        { assetId: 'ast_ev_002', type: 'SET_CHARGE_RATE', valueKw: 2 },
      ],
    } as never);
    await out.count(1);
    await out2.count(1);
    await settle();
    should(out.msgs.map((m) => m.topic)).eql(['ast_ev_001']);
    should(out2.msgs.map((m) => m.topic)).eql(['ast_ev_002']);
  });

  it('msg.reset cancels what is pending; topic "cancel" cancels one asset', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const site = siteOf();
    helper.getNode('sched').receive({ payload: fixture('ev-schedule.split.json') } as never);
    await settle(10);
    should(site.engine.stats().pending).equal(10);
    helper
      .getNode('disp')
      .receive({ topic: 'cancel', payload: { assetId: 'ast_ev_003' } } as never);
    await settle();
    should(
      site.engine.getCommands({ assetId: 'ast_ev_003', status: 'CANCELLED' as never }),
    ).have.length(4);
    helper.getNode('disp').receive({ reset: true } as never);
    await settle();
    should(site.engine.stats()).have.properties({ pending: 0 });
    should(site.engine.stats().byStatus.CANCELLED).equal(10);
  });

  it('holds the commands of a FAULTED asset and sends them when it recovers', async () => {
    const flow = dispatchFlow();
    flow.push(
      {
        id: 'state',
        type: 'qe-asset-state',
        coordinator: 'coord',
        assetId: 'ast_ev_001',
        preset: 'ev-charger',
        wires: [['stateOut']],
      },
      { id: 'stateOut', type: 'helper' },
    );
    await helper.load(allNodes(), onTab(flow));
    const out = inbox('out');
    const states = inbox('stateOut');
    helper.getNode('state').receive({ payload: 'fault' } as never);
    await states.count(1);
    helper.getNode('disp').receive({
      payload: { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 5 },
    } as never);
    await clock.tickAsync(10 * S);
    await settle();
    should(out.msgs).have.length(0);
    should(siteOf().engine.getHeldCommands('ast_ev_001')).have.length(1);
    helper.getNode('state').receive({ payload: 'reset' } as never);
    await out.count(1);
    should(out.msgs[0]).have.properties({ topic: 'ast_ev_001' });
  });

  it('bad input reaches a Catch node with a message that says what was wrong, and changes nothing', async () => {
    await helper.load(allNodes(), onTab(dispatchFlow()));
    const caught = inbox('caught');
    const out = inbox('schedOut');
    const site = siteOf();
    helper.getNode('sched').receive({
      payload:
        '{"columns": ["ev_ev_001_kw"], "index": ["2025-06-02T00:00:00Z", "2025-06-02T01:00:00Z"], "data": [[1], [-4]]}',
    } as never);
    helper.getNode('sched').receive({
      payload: 'timestamp,ev_ev_009_kw\n2025-06-02T00:00:00Z,1\n2025-06-02T01:00:00Z,2\n',
    } as never);
    helper.getNode('sched').receive({ payload: { schedule: 42 } } as never);
    helper.getNode('disp').receive({
      payload: [
        { assetId: 'ast_ev_001', type: 'SET_CHARGE_RATE', valueKw: 1 },
        { assetId: 'ast_ev_001', type: 'BOOST', valueKw: 1 },
      ],
    } as never);
    helper.getNode('disp').receive({ payload: 'charge!' } as never);
    helper.getNode('disp').receive({ topic: 'cancel', payload: {} } as never);
    helper.getNode('adapter').receive({ payload: { commandId: 'x', success: 'yes' } } as never);
    helper.getNode('adapter').receive({ payload: 17 } as never);
    await caught.count(8);
    // In order per node; qe-schedule converts in slices and qe-dispatcher makes an array's
    // commands in slices, so their errors may come after the adapter's.
    const from = (id: string) =>
      caught.msgs
        .map((m) => (m as { error: { message: string; source: { id: string } } }).error)
        .filter((e) => e.source.id === id)
        .map((e) => e.message);
    const messages = [...from('sched'), ...from('disp'), ...from('adapter')];
    should(messages[0]).match(
      /row 1 \(2025-06-02T01:00:00Z\), column ev_ev_001_kw: -4 kW is negative/,
    );
    should(messages[1]).match(/no asset in assetMap for column ev_ev_009_kw/);
    should(messages[2]).match(/expected a schedule .* got number 42/);
    should(messages[3]).match(/command \[1\]: type must be one of .* got "BOOST"/);
    should(messages[4]).match(/msg.payload must be a command or an array of commands/);
    should(messages[5]).match(/a cancel message needs msg.payload = \{assetId/);
    should(messages[6]).match(/success must be true or false, got "yes"/);
    should(messages[7]).match(/must be a command from a dispatcher .* or a result/);
    await settle();
    should(out.msgs).have.length(0);
    should(site.engine.stats().total).equal(0);
  });
});
