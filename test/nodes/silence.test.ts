// In a real Node-RED runtime: the coordinator's `silenceSeconds` (optimiser silence: the
// fallbacks go out by timer when no schedule has come), its validation, and qe-schedule's
// `limitColumn` (msg.limits). Timers and Date are sinon's fakes; message delivery is real.

import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import sinon from 'sinon';
import { allNodes, catcher, coordinator, type FlowNode, inbox, onTab, settle } from './flows';
import { helper } from './runtime';

const T0 = Date.parse('2025-06-02T00:00:00Z');
const S = 1000;
const fixture = (f: string) => fs.readFileSync(path.join(__dirname, '../fixtures', f), 'utf8');
const EV_MAP = { ev_001: 'ast_ev_001', ev_002: 'ast_ev_002', ev_003: 'ast_ev_003' };

function flow(coordExtra: Record<string, unknown>, scheduleExtra: Record<string, unknown> = {}) {
  const nodes: FlowNode[] = [
    coordinator(coordExtra),
    {
      id: 'sched',
      type: 'qe-schedule',
      coordinator: 'coord',
      assetMap: JSON.stringify(EV_MAP),
      wires: [['disp', 'schedOut']],
      ...scheduleExtra,
    },
    { id: 'schedOut', type: 'helper' },
    { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['adapter']] },
    {
      id: 'adapter',
      type: 'qe-adapter',
      coordinator: 'coord',
      assets: 'ast_ev_001, ast_ev_002, ast_ev_003',
      wires: [['out']],
    },
    { id: 'out', type: 'helper' },
    {
      id: 'events',
      type: 'qe-events',
      coordinator: 'coord',
      eventTypes: ['OPTIMISER_SILENT'],
      outputs: 1,
      wires: [['silent']],
    },
    { id: 'silent', type: 'helper' },
    ...catcher(),
  ];
  return onTab(nodes);
}

describe('nodes: optimiser silence and the schedule limit column', () => {
  let clock: sinon.SinonFakeTimers;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(() => {
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

  it('no schedule for silenceSeconds: the fallbacks go out once, by timer, and OPTIMISER_SILENT', async () => {
    await helper.load(
      allNodes(),
      flow({
        horizonEnd: 'fallback',
        fallbackKw: '{"*": 1.5}',
        silenceSeconds: '1800',
        commandTimeoutSeconds: 3600,
      }),
    );
    const out = inbox('out');
    const silent = inbox('silent');
    // The device accepts every command (answered through the adapter's input).
    helper.getNode('out').on('input', (msg: object) => {
      const { commandId } = msg as { commandId?: string };
      helper.getNode('adapter').receive({ commandId, payload: { success: true } } as never);
    });
    helper
      .getNode('sched')
      .receive({ payload: fixture('ev-schedule.split.json'), scheduleId: 'day-1' } as never);
    await out.count(3); // the first slot of each vehicle, due now
    const fallbacks = () =>
      out.msgs
        .map((m) => (m.payload as { id: string; valueKw: number }).id)
        .filter((id) => id.includes('~silent'));
    await clock.tickAsync(1800 * S - 1);
    await settle();
    should(fallbacks()).eql([]);
    await clock.tickAsync(1);
    await silent.count(1);
    await out.count(6);
    should(fallbacks().sort()).eql([
      'day-1~silent:ast_ev_001',
      'day-1~silent:ast_ev_002',
      'day-1~silent:ast_ev_003',
    ]);
    should(silent.msgs[0]?.payload).have.properties({
      scheduleId: 'day-1',
      silentForSeconds: 1800,
      assets: ['ast_ev_001', 'ast_ev_002', 'ast_ev_003'],
    });
    // Hours later: nothing more (once per silence, and the stale plan was superseded).
    await clock.tickAsync(6 * 3600 * S);
    await settle();
    should(out.msgs).have.length(6);
    should(silent.msgs).have.length(1);
  });

  it('silenceSeconds without a fallback, or out of range, is a configuration error', async () => {
    for (const [extra, text] of [
      [{ silenceSeconds: 60 }, /silenceSeconds \(60\) sends the fallback setpoints of horizonEnd/],
      [
        { silenceSeconds: '0', horizonEnd: 'fallback', fallbackKw: '{"*": 0}' },
        /silenceSeconds must be null \(off\) or a number > 0 and <= 31536000 \(a year\), got 0/,
      ],
    ] as [Record<string, unknown>, RegExp][]) {
      await helper.load(allNodes(), flow(extra));
      const caught = inbox('caught');
      helper.getNode('sched').receive({ payload: fixture('ev-schedule.split.json') } as never);
      await caught.count(1);
      should((caught.msgs[0] as { error: { message: string } }).error.message).match(text);
      await helper.unload();
    }
  });

  it('qe-schedule with limitColumn passes the limits on in msg.limits and names the column', async () => {
    await helper.load(
      allNodes(),
      flow({}, { assetMap: '{"battery": "bat"}', limitColumn: ' peak_target_kw ' }),
    );
    const out = inbox('schedOut');
    helper.getNode('sched').receive({ payload: fixture('peak-shaving.csv') } as never);
    await out.count(1);
    const msg = out.msgs[0] as { limits: unknown; schedule: Record<string, unknown> };
    should(msg.limits).eql([{ from: T0, until: T0 + 24 * 3600 * S, importKw: 120 }]);
    should(msg.schedule.limitColumn).equal('peak_target_kw');
    should(msg.schedule.ignoredColumns).not.containEql('peak_target_kw');
  });
});
