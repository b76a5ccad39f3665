/**
 * Example 07 (site limits with a building meter) runs as imported, on fake timers: three
 * chargers ask 22 kW each behind a 50 kW connection; as the building's load ramps to 30 kW
 * and a grid operator's cap comes and expires, what the dispatcher sends stays within the
 * limits, and the debug nodes show one readable line a message.
 */
import should from 'should';
import sinon from 'sinon';
import {
  arrivals,
  coordinatorOf,
  initialisersFor,
  press,
  readableDebug,
  readExample,
  warnings,
  watchSidebar,
} from './examples-lib';
import { settle, siteOf } from './flows';
import { helper } from './runtime';

const FILE = '07 Site limits with a building meter.json';
const S = 1000;

describe('examples: 07 site limits with a building meter', () => {
  const flow = readExample(FILE);
  let clock: sinon.SinonFakeTimers;
  let sidebar: ReturnType<typeof watchSidebar>;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(() => {
    sidebar = watchSidebar();
    // The meter's inject repeats (setInterval): faked too, so that time is the test's.
    clock = sinon.useFakeTimers({
      now: Date.parse('2025-06-02T08:00:00Z'),
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
    });
  });
  afterEach((done) => {
    sidebar.stop();
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

  it('the chargers share what the building leaves of 50 kW, and what a cap leaves until it expires', async () => {
    await helper.load(initialisersFor(flow), flow as never);
    const site = siteOf(coordinatorOf(flow));
    const sent = arrivals(flow, 'setpoints sent');
    const readings = arrivals(flow, 'meter readings');
    const errors = arrivals(flow, 'errors');
    const latest = new Map<string, number>();
    let building = 30; // the meter's worst case until its first reading
    const chargers = () => [...latest.values()].reduce((a, b) => a + b, 0);
    const checked: number[] = [];
    /** Every second: what was last sent to the chargers fits the connection and the feeder. */
    const step = async (seconds: number, importKw = 50) => {
      for (let i = 0; i < seconds; i++) {
        await clock.tickAsync(S);
        await settle(10);
        for (const m of sent) {
          const c = m.payload as { assetId: string; valueKw: number };
          latest.set(c.assetId, c.valueKw);
        }
        sent.length = 0;
        const last = readings[readings.length - 1];
        if (last) building = last.payload as number;
        if (latest.size === 3) {
          should(chargers() + building).be.belowOrEqual(importKw + 1e-6);
          should(chargers()).be.belowOrEqual((63 * 230 * 3) / 1000 + 1e-6); // the 63 A feeder
          checked.push(chargers());
        }
      }
    };

    // 1 s: the chargers ask 22 kW each; the meter has not been read: it counts as 30 kW.
    await step(1);
    should([...latest.keys()].sort()).eql(['ast_ev_001', 'ast_ev_002', 'ast_ev_003']);
    should(chargers()).be.approximately(20, 0.01);
    // The first reading (0 kW) at 2 s: they go up to what the 63 A feeder allows, once the
    // pacing allows an increase (5 s after the first setpoints left).
    await step(6);
    should(chargers()).be.approximately((63 * 230 * 3) / 1000, 0.1);
    // The building ramps 5 kW every 5 s to 30 kW; the chargers come down with it.
    await step(31);
    should(building).equal(30);
    should(chargers()).be.approximately(20, 0.01);

    // The grid operator caps the connection at 42 kW for a minute.
    press(flow, 'grid operator: 42 kW for 1 min');
    await step(5, 42);
    should(chargers()).be.approximately(12, 0.01);
    const capped = site.limiter?.inForce().find((l) => l.source === 'grid-operator');
    should(capped).have.properties({ target: 'root', limit: 'importKw', value: 42 });
    await step(50, 42);
    // It expires: 20 kW again (increases paced by 5 s).
    await step(15);
    should(site.limiter?.inForce().some((l) => l.source === 'grid-operator')).be.false();
    should(chargers()).be.approximately(20, 0.01);
    should(checked.length).be.above(100);
    should(errors).eql([]);
    should(warnings()).eql([]);

    // The debug sidebar shows one readable line a message.
    const shown = (name: string) => readableDebug(flow, sidebar.messages, name);
    should(shown('setpoints sent')[0]).match(
      /^ast_ev_00\d SET_CHARGE_RATE 6\.67 kW \(asked 22 kW, circuit root importKw \(config\)\)$/,
    );
    // The first reading makes room, but the increase waits for the pacing interval.
    should(shown('meter readings')[0]).equal('building 0 kW: no setpoint limited');
    should(shown('meter readings')).containEql('building 30 kW: 3 setpoints limited');
    const limits = shown('limits in force');
    should(limits[0]).equal(
      'limits: root importKw <= 50 kW (config), root importA <= 80 A (config), chargers importA <= 63 A (config); stale: building',
    );
    should(
      limits.some((l) => / root importKw <= 42 kW \(grid-operator\) until \d\d:\d\d:\d\d$/.test(l)),
    ).be.true(limits.join('\n'));
    should(limits[limits.length - 1]).equal(
      'limits: root importKw <= 50 kW (config), root importA <= 80 A (config), chargers importA <= 63 A (config)',
    );
    for (const line of shown('SETPOINT_LIMITED')) {
      should(line).match(
        /^ast_ev_00\d (limited 22 -> \d+(\.\d\d?)? kW \(.+\) after |22 kW as asked \()(dispatch|meter building|cap dso-1 \(grid-operator\)|time)\)?$/,
      );
    }
    // Switched off in the example (the same as "limits in force"): nothing shown.
    should(sidebar.messages.filter((m) => m.name === 'LIMITS_CHANGED')).eql([]);
  });
});
