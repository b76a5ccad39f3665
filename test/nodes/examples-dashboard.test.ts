/**
 * Example 09 (a FlowFuse Dashboard 2 dashboard of a simulated site) runs as imported, with
 * the Dashboard 2 nodes loaded from the devDependency: what reaches its widgets is built
 * from what the package's nodes send (qe-events, qe-asset-state, the adapter's commands).
 * Real time (the example's simulated devices answer after 0.2 s, its meters read every
 * 2 s); every wait bounded, nothing asserts on how long something took.
 * The page in a browser: test/browser/dashboard.test.ts.
 */
import should from 'should';
import { untilWith } from '../helpers/wait';
import { arrivals, DASHBOARD, initialisersFor, readExample, warnings } from './examples-lib';
import { helper } from './runtime';

const FILE = '09 Dashboard (FlowFuse Dashboard 2).json';

const until = untilWith({ ms: 20_000, everyMs: 20 });

type Msg = Record<string, unknown>;
const values = (msgs: Msg[], topic: string) =>
  msgs.filter((m) => m.topic === topic).map((m) => m.payload as number);

describe(`examples: ${FILE}`, function () {
  this.timeout(40_000);
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
  });

  it('uses FlowFuse Dashboard 2 widgets: charts, a table and texts, on one page', () => {
    const flow = readExample(FILE);
    const types = flow.map((n) => n.type).filter((t) => DASHBOARD.types.has(t));
    for (const t of ['ui-base', 'ui-page', 'ui-chart', 'ui-table', 'ui-text']) {
      should(types).containEql(t);
    }
    const base = flow.find((n) => n.type === 'ui-base') as unknown as { path: string };
    const page = flow.find((n) => n.type === 'ui-page') as unknown as { path: string };
    // The page that the comment node and the README name.
    should(`${base.path}${page.path}`).equal('/dashboard/site');
  });

  it("feeds each asset's chart, the table and the totals from the package's outputs", async () => {
    const flow = readExample(FILE);
    await helper.load(initialisersFor(flow), flow as never);
    const charts = {
      ev1: arrivals(flow, 'ast_ev_001 chart'),
      ev2: arrivals(flow, 'ast_ev_002 chart'),
      batt: arrivals(flow, 'ast_batt_001 chart'),
    };
    const table = arrivals(flow, 'assets table');
    const setpointTotal = arrivals(flow, 'site setpoint total');
    const measuredTotal = arrivals(flow, 'site measured total');
    const last = arrivals(flow, 'last event');
    const errors = arrivals(flow, 'errors');

    // The first slot of the sample day: 7.4 kW, 0 kW, the battery charging at 5 kW.
    await until(
      () =>
        values(charts.ev1, 'setpoint').includes(7.4) &&
        values(charts.batt, 'setpoint').includes(5) &&
        values(charts.ev1, 'measured').some((v) => v > 0),
      'the first setpoints in force and a measurement following them',
    );
    should(values(charts.ev2, 'measured').length).be.above(0);
    for (const v of values(charts.ev1, 'measured')) should(v).be.within(0, 7.4 + 0.5);

    await until(() => {
      const rows = table.at(-1)?.payload as Msg[] | undefined;
      return rows?.find((r) => r.asset === 'ast_ev_001')?.state === 'CHARGING';
    }, "ast_ev_001's row to say CHARGING");
    const rows = table.at(-1)?.payload as Msg[];
    // Array.from: the function node's arrays come from its sandbox (another prototype).
    should(Array.from(rows, (r) => r.asset)).eql(['ast_ev_001', 'ast_ev_002', 'ast_batt_001']);
    should(rows[0]).have.properties({ state: 'CHARGING', 'setpoint kW': 7.4 });
    should(rows[2]).have.properties({ state: 'CHARGING', 'setpoint kW': 5 });
    // The last event of each row is the package's msg.summary.
    should(rows[0]?.['last event']).match(
      /^ast_ev_001 (SET_CHARGE_RATE 7\.4 kW COMPLETED|\w+ -> CHARGING \(simulated device\))$/,
    );

    await until(() => setpointTotal.some((m) => m.payload === 12.4), 'the site total 12.4 kW');
    should(measuredTotal.every((m) => typeof m.payload === 'number')).be.true();
    should(last.length).be.above(0);
    for (const m of last)
      should(m.summary)
        .be.a.String()
        .and.match(/^\S.*\S$/);
    should(last.map((m) => m.summary)).containEql('ast_ev_001 SET_CHARGE_RATE 7.4 kW COMPLETED');
    should(errors).eql([]);
    should(warnings()).eql([]);
  });
});
