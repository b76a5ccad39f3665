import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import sinon from 'sinon';
import { EventType } from '../../src/event-bus';
import { JournalStore } from '../../src/journal';
import {
  allNodes,
  catcher,
  coordinator,
  type FlowNode,
  inbox,
  NODE_TYPES,
  onTab,
  settle,
  siteOf,
} from './flows';
import { helper } from './runtime';

const T0 = Date.parse('2025-06-02T08:00:00Z');
/** Node methods are sinon spies while the helper has a flow loaded. */
const spy = (method: unknown) => method as sinon.SinonSpy;
const S = 1000;

describe('nodes: asset state, events, coordinator', () => {
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach((done) => {
    helper.unload().then(() => done(), done);
  });

  describe('qe-asset-state', () => {
    const flow = (extra: Record<string, unknown> = {}): FlowNode[] =>
      onTab([
        coordinator(),
        {
          id: 'st',
          type: 'qe-asset-state',
          coordinator: 'coord',
          assetId: 'ev1',
          preset: 'ev-charger',
          wires: [['out']],
          ...extra,
        },
        { id: 'out', type: 'helper' },
        ...catcher(),
      ]);

    it('fires triggers, sends {assetId, from_state, to_state, trigger} and shows the state in colour', async () => {
      await helper.load(allNodes(), flow());
      const out = inbox('out');
      const st = helper.getNode('st');
      const statuses: { fill: string; text: string }[] = [];
      (st as unknown as NodeJS.EventEmitter).on(
        'call:status',
        (call: { args: [{ fill: string; text: string }] }) => statuses.push(call.args[0]),
      );
      for (const t of ['plug_in', 'start_charge', 'fault'])
        st.receive({ payload: t, topic: 'keep-me' } as never);
      await out.count(3);
      should(out.msgs.map((m) => m.payload)).eql([
        {
          assetId: 'ev1',
          from_state: 'AVAILABLE',
          to_state: 'PREPARING',
          trigger: 'plug_in',
          forced: false,
        },
        {
          assetId: 'ev1',
          from_state: 'PREPARING',
          to_state: 'CHARGING',
          trigger: 'start_charge',
          forced: false,
        },
        {
          assetId: 'ev1',
          from_state: 'CHARGING',
          to_state: 'FAULTED',
          trigger: 'fault',
          forced: false,
        },
      ]);
      should(out.msgs[0]?.topic).equal('keep-me'); // the input message goes on
      await settle();
      should(statuses.map((s) => `${s.fill} ${s.text}`)).eql([
        'green AVAILABLE',
        'yellow PREPARING',
        'green CHARGING',
        'red FAULTED',
      ]);
      st.receive({ payload: { state: 'UNAVAILABLE', reason: 'site maintenance' } } as never);
      await out.count(4);
      should(out.msgs[3]?.payload).have.properties({
        to_state: 'UNAVAILABLE',
        trigger: 'force',
        forced: true,
        reason: 'site maintenance',
      });
      await settle();
      should(statuses.at(-1)).have.properties({ fill: 'grey', text: 'UNAVAILABLE' });
    });

    it('an invalid trigger reaches a Catch node listing the valid triggers', async () => {
      await helper.load(allNodes(), flow({ preset: 'battery', assetId: 'b1' }));
      const caught = inbox('caught');
      helper.getNode('st').receive({ payload: 'stop' } as never);
      helper.getNode('st').receive({ payload: 42 } as never);
      helper.getNode('st').receive({ payload: { state: 'ON_FIRE' } } as never);
      await caught.count(3);
      const m = caught.msgs.map((c) => (c as { error: { message: string } }).error.message);
      should(m[0]).match(
        /trigger 'stop' is not valid in state IDLE; valid triggers: charge, discharge, fault, disable/,
      );
      should(m[1]).match(
        /msg.payload must be a trigger name \(one of charge, discharge, fault, disable\) or \{state/,
      );
      should(m[2]).match(/unknown state "ON_FIRE"/);
    });

    it('takes a custom definition, and refuses a broken one at deploy', async () => {
      const def = {
        states: ['OFF', 'ON'],
        initial: 'OFF',
        transitions: [{ from: 'OFF', trigger: 'switch_on', to: 'ON' }],
      };
      await helper.load(
        allNodes(),
        flow({ preset: 'custom', assetId: 'heat-pump', definition: JSON.stringify(def) }),
      );
      const out = inbox('out');
      helper.getNode('st').receive({ payload: 'switch_on' } as never);
      await out.count(1);
      should(out.msgs[0]?.payload).have.properties({
        assetId: 'heat-pump',
        from_state: 'OFF',
        to_state: 'ON',
      });
      await helper.unload();
      await helper.load(
        allNodes(),
        flow({
          preset: 'custom',
          assetId: 'hp2',
          definition: '{"states": ["A"], "initial": "B", "transitions": []}',
        }),
      );
      const caught = inbox('caught');
      helper.getNode('st').receive({ payload: 'go' } as never);
      await caught.count(1);
      should((caught.msgs[0] as { error: { message: string } }).error.message).match(
        /initial state "B" is not one of the states/,
      );
    });

    it('a change reported elsewhere (a device, another node) goes out too', async () => {
      await helper.load(allNodes(), flow());
      const out = inbox('out');
      siteOf().getStateMachine('ev1')?.forceState('CHARGING', 'StatusNotification');
      await out.count(1);
      should(out.msgs[0]).have.properties({ topic: 'ev1' });
      should(out.msgs[0]?.payload).have.properties({
        to_state: 'CHARGING',
        reason: 'StatusNotification',
      });
    });
  });

  describe('qe-events', () => {
    it('one output per selected event type, with topic, payload and event; optional asset filter', async () => {
      await helper.load(
        allNodes(),
        onTab([
          coordinator(),
          {
            id: 'ev',
            type: 'qe-events',
            coordinator: 'coord',
            eventTypes: ['STATE_CHANGED', 'COMMAND_CREATED'],
            assetFilter: 'a1',
            outputs: 2,
            wires: [['o1'], ['o2']],
          },
          {
            id: 'all',
            type: 'qe-events',
            coordinator: 'coord',
            eventTypes: [],
            outputs: 12,
            wires: [['x0'], ['x1'], [], [], [], [], [], ['x7'], [], [], [], []],
          },
          { id: 'o1', type: 'helper' },
          { id: 'o2', type: 'helper' },
          { id: 'x0', type: 'helper' },
          { id: 'x1', type: 'helper' },
          { id: 'x7', type: 'helper' },
        ]),
      );
      const o1 = inbox('o1');
      const o2 = inbox('o2');
      const x0 = inbox('x0');
      const x7 = inbox('x7');
      const site = siteOf();
      site.ensureStateMachine('a1', 'battery').trigger('charge');
      site.ensureStateMachine('a2', 'battery').trigger('charge');
      site.submit([
        { assetId: 'a2', type: 'SET_CHARGE_RATE', valueKw: 1, scheduledAt: Date.now() + 3600_000 },
        { assetId: 'a1', type: 'SET_CHARGE_RATE', valueKw: 2, scheduledAt: Date.now() + 3600_000 },
      ]);
      await o1.count(1);
      await o2.count(1);
      await x0.count(2);
      await x7.count(2);
      await settle();
      should(o1.msgs).have.length(1);
      should(o1.msgs[0]).have.properties({ topic: 'STATE_CHANGED' });
      should(o1.msgs[0]?.payload).have.properties({ assetId: 'a1', to_state: 'CHARGING' });
      should(o1.msgs[0]?.event).have.properties({ type: 'STATE_CHANGED' });
      should((o1.msgs[0] as { event: { sequence: number } }).event.sequence).be.a.Number();
      should(o2.msgs.map((m) => (m.payload as { valueKw: number }).valueKw)).eql([2]);
      should(x0.msgs.map((m) => m.topic)).eql(['COMMAND_CREATED', 'COMMAND_CREATED']);
      should(x7.msgs.map((m) => (m.payload as { assetId: string }).assetId)).eql(['a1', 'a2']);
    });

    it('listens to the selected types only: events made only for a listener stay unmade', async () => {
      await helper.load(
        allNodes(),
        onTab([
          coordinator(),
          {
            id: 'ev',
            type: 'qe-events',
            coordinator: 'coord',
            eventTypes: ['COMMAND_COMPLETED'],
            outputs: 1,
            wires: [[]],
          },
        ]),
      );
      const bus = siteOf().eventBus;
      // A plan's COMMAND_CREATED (one per planned row) is made only when someone listens.
      should(bus.hasSubscribers(EventType.COMMAND_CREATED)).be.false();
      should(bus.hasSubscribers(EventType.COMMAND_COMPLETED)).be.true();
    });

    it('refuses an unknown event type at deploy', async () => {
      await helper.load(
        allNodes(),
        onTab([
          coordinator(),
          {
            id: 'ev',
            type: 'qe-events',
            coordinator: 'coord',
            eventTypes: ['COMMAND_EXPLODED'],
            outputs: 1,
            wires: [[]],
          },
        ]),
      );
      const ev = helper.getNode('ev');
      await settle();
      should(spy(ev.error).calledWithMatch(/unknown event type COMMAND_EXPLODED/)).be.true();
    });
  });

  describe('qe-coordinator', () => {
    it('a wrong engine setting is reported to the users’ Catch nodes, and their input fails', async () => {
      await helper.load(
        allNodes(),
        onTab([
          coordinator({ maxRetries: -2 }),
          { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [[]] },
          ...catcher(),
        ]),
      );
      const caught = inbox('caught');
      helper
        .getNode('disp')
        .receive({ payload: { assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 } } as never);
      await caught.count(1);
      should((caught.msgs[0] as { error: { message: string } }).error.message).match(
        /qe-coordinator depot: engine config: maxRetries must be an integer >= 0, got -2/,
      );
    });

    it('a node without a coordinator says so', async () => {
      await helper.load(
        allNodes(),
        onTab([{ id: 'disp', type: 'qe-dispatcher', coordinator: '', wires: [[]] }, ...catcher()]),
      );
      const caught = inbox('caught');
      helper.getNode('disp').receive({ payload: {} } as never);
      await caught.count(1);
      should((caught.msgs[0] as { error: { message: string } }).error.message).match(
        /qe-dispatcher: no coordinator: pick a qe-coordinator/,
      );
    });
  });

  describe('deploys', () => {
    it('a partial deploy ("nodes") leaves no duplicate timers, subscriptions, dispatchers or adapters', async () => {
      const flow = onTab([
        coordinator(),
        { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['adapter']] },
        { id: 'adapter', type: 'qe-adapter', coordinator: 'coord', assets: 'a1', wires: [['out']] },
        {
          id: 'ev',
          type: 'qe-events',
          coordinator: 'coord',
          eventTypes: [],
          outputs: 12,
          wires: [[], [], [], [], [], [], [], [], [], [], [], []],
        },
        {
          id: 'st',
          type: 'qe-asset-state',
          coordinator: 'coord',
          assetId: 'a1',
          preset: 'ev-charger',
          wires: [[]],
        },
        { id: 'out', type: 'helper' },
      ]);
      await helper.load(allNodes(), flow);
      const site = siteOf();
      const subscribers = site.eventBus.subscriberCount();
      const machine = site.getStateMachine('a1');
      machine?.trigger('plug_in');
      // Modify every user node (a new name) and deploy only the modified nodes, three times.
      for (let i = 1; i <= 3; i++) {
        const changed = flow.map((n) =>
          n.type.startsWith('qe-') && n.type !== 'qe-coordinator' ? { ...n, name: `v${i}` } : n,
        );
        await helper.setFlows(changed, 'nodes');
      }
      should(siteOf()).equal(site); // the unchanged coordinator and its site stay
      should(site.eventBus.subscriberCount()).equal(subscribers);
      should(site.getStateMachine('a1')).equal(machine);
      should(machine?.currentState).equal('PREPARING');
      should(site.adapterRegistry.assets()).eql(['a1']);
      const out = inbox('out');
      site.submit({ assetId: 'a1', type: 'SET_CHARGE_RATE', valueKw: 3 }, 'disp');
      await out.count(1);
      await settle(10);
      should(out.msgs).have.length(1); // one dispatcher, one adapter: sent once
      // Removing the nodes frees everything they held in the shared site.
      await helper.setFlows(onTab([coordinator()]), 'nodes');
      should(site.eventBus.subscriberCount()).equal(1); // the site's own persistence listener
      should(site.adapterRegistry.assets()).eql([]);
      should(site.getStateMachine('a1')).be.undefined();
    });
  });

  describe('persistence', () => {
    let userDir: string;
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-userdir-'));
      helper.settings({ userDir });
    });
    // Inner hooks run before the outer afterEach: stop the flows (the coordinator saves on
    // close) before the user directory goes, or a last save races the removal.
    afterEach(async () => {
      await helper.unload();
      clock?.restore();
      fs.rmSync(userDir, { recursive: true, force: true });
    });

    const flow = () =>
      onTab([
        coordinator({ persist: true }),
        { id: 'disp', type: 'qe-dispatcher', coordinator: 'coord', wires: [['adapter']] },
        {
          id: 'adapter',
          type: 'qe-adapter',
          coordinator: 'coord',
          assets: 'a1, a2',
          wires: [['out']],
        },
        {
          id: 'st',
          type: 'qe-asset-state',
          coordinator: 'coord',
          assetId: 'a2',
          preset: 'battery',
          wires: [[]],
        },
        { id: 'out', type: 'helper' },
      ]);

    it('a restart restores pending commands and asset states and does not resend completed ones', async () => {
      clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      await helper.load(allNodes(), flow());
      let out = inbox('out');
      helper.getNode('st').receive({ payload: 'fault' } as never);
      helper.getNode('disp').receive({
        payload: [
          { id: 'now-1', assetId: 'a1', type: 'SET_CHARGE_RATE', valueKw: 5 },
          {
            id: 'later-1',
            assetId: 'a1',
            type: 'SET_CHARGE_RATE',
            valueKw: 6,
            scheduledAt: T0 + 3600_000,
          },
          { id: 'held-2', assetId: 'a2', type: 'SET_DISCHARGE_RATE', valueKw: 7 },
        ],
      } as never);
      await out.count(1);
      helper
        .getNode('adapter')
        .receive({ payload: { commandId: 'now-1', success: true } } as never);
      await settle(10);
      should(siteOf().engine.getCommand('now-1')?.status).equal('COMPLETED');
      await helper.unload(); // stops the flows: the coordinator's journal is flushed on close
      const journal = path.join(userDir, 'qe-coordinator', 'coord.journal');
      should(fs.readdirSync(journal).some((n) => /^journal-\d+\.log$/.test(n))).be.true();

      clock.tick(10 * S);
      await helper.load(allNodes(), flow());
      out = inbox('out');
      const site = siteOf();
      // Loaded in slices after the flows start: until then the site holds nothing.
      should(site.loading).be.true();
      should(site.engine.getCommand('later-1')).be.undefined();
      await site.loaded;
      should(site.engine.getCommand('now-1')?.status).equal('COMPLETED');
      should(site.engine.getCommand('later-1')?.status).equal('PENDING');
      should(site.getStateMachine('a2')?.currentState).equal('FAULTED');
      should(site.engine.getHeldCommands()).have.length(0); // held again only when due
      await clock.tickAsync(10 * S);
      should(site.engine.getHeldCommands('a2').map((c) => c.id)).eql(['held-2']);
      await clock.tickAsync(3600_000);
      await out.count(1);
      should(out.msgs.map((m) => m.commandId)).eql(['later-1']);
    });

    it('a state file with one bad entry: the rest is restored, the bad one reaches a Catch node', async () => {
      clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      await helper.load(allNodes(), flow());
      helper.getNode('disp').receive({
        payload: [5, 6, 7].map((kw, i) => ({
          id: `c${i}`,
          assetId: 'a1',
          type: 'SET_CHARGE_RATE',
          valueKw: kw,
          scheduledAt: T0 + (i + 1) * 3600_000,
        })),
      } as never);
      await settle(10);
      await helper.unload(); // the coordinator's journal is flushed on close
      const dir = path.join(userDir, 'qe-coordinator');
      const journal = path.join(dir, 'coord.journal');
      const doc = new JournalStore(journal).load() as {
        engine: { commands: { valueKw: unknown }[] };
      };
      should(doc.engine.commands).have.length(3);
      // A state file of the version before the journal, with an overflowed setpoint in it.
      (doc.engine.commands[1] as { valueKw: unknown }).valueKw = null;
      fs.rmSync(journal, { recursive: true });
      fs.writeFileSync(path.join(dir, 'coord.json'), JSON.stringify(doc));

      await helper.load(allNodes(), onTab([...flow().slice(1), ...catcher()]));
      const caught = inbox('caught');
      await caught.count(1);
      const err = (caught.msgs[0] as { error: { message: string; source: { id: string } } }).error;
      should(err.source.id).equal('coord');
      should(err.message).match(
        /1 entry could not be restored and was left out, everything else was restored .*: commands\[1\] \(id c1\): valueKw must be a finite number >= 0 \(kW\) for SET_CHARGE_RATE, got null$/,
      );
      const site = siteOf();
      should(site.engine.getCommands().map((c) => `${c.id} ${c.status}`)).eql([
        'c0 PENDING',
        'c2 PENDING',
      ]);
      const copies = fs.readdirSync(dir).filter((n) => n.startsWith('coord.journal.bad-entries-'));
      should(copies).have.length(1);
      should(fs.readdirSync(path.join(dir, copies[0] as string))).containEql('coord.json');
      should(fs.readdirSync(dir).some((n) => n.includes('.corrupt-'))).be.false();
    });

    it('a corrupt state file is moved aside and reported once the flows have started', async () => {
      const dir = path.join(userDir, 'qe-coordinator');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'coord.json'), 'not json at all');
      await helper.load(allNodes(), onTab([...flow().slice(1), ...catcher()]));
      // Reported through the config node, whose errors Node-RED forwards to its users' flows.
      const caught = inbox('caught');
      await caught.count(1);
      should((caught.msgs[0] as { error: { message: string } }).error.message).match(
        /is not valid JSON.*moved it to .*coord\.json\.corrupt-/,
      );
      should(fs.readdirSync(dir).some((n) => n.startsWith('coord.json.corrupt-'))).be.true();
      should(siteOf().engine.stats().total).equal(0);
    });
  });

  describe('packaging', () => {
    const root = path.join(__dirname, '../..');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

    const all = [...NODE_TYPES, 'qe-ocpp-server', 'qe-ocpp', 'qe-modbus-connection', 'qe-modbus'];
    it('package.json registers exactly the node folders', () => {
      should(Object.keys(pkg['node-red'].nodes).sort()).eql([...all].sort());
    });

    for (const type of all) {
      it(`${type}: registered in package.json, with help, locale and icon`, () => {
        should(pkg['node-red'].nodes[type]).equal(`nodes/${type}/${type}.js`);
        const html = fs.readFileSync(path.join(root, 'nodes', type, `${type}.html`), 'utf8');
        should(html).match(
          new RegExp(
            `<script type="text/javascript">[\\s\\S]*RED\\.nodes\\.registerType\\('${type}', \\{`,
          ),
        );
        const help =
          html.match(
            new RegExp(`<script type="text/html" data-help-name="${type}">([\\s\\S]*?)</script>`),
          )?.[1] ?? '';
        if (
          !['qe-coordinator', 'qe-ocpp-server', 'qe-modbus-connection', 'qe-fleet-broker'].includes(
            type,
          )
        ) {
          should(help).match(/<h3>Inputs<\/h3>|<h3>Outputs<\/h3>/);
          should(html).match(/category: 'energy'/);
        }
        should(help).match(/<h3>Details<\/h3>/);
        const locale = JSON.parse(
          fs.readFileSync(
            path.join(root, 'nodes', type, 'locales', 'en-US', `${type}.json`),
            'utf8',
          ),
        );
        should(Object.keys(locale)).eql([type]);
        const icon = html.match(/icon: '([^']+)'/)?.[1];
        should(icon).equal(`${type}.svg`);
        should(fs.existsSync(path.join(root, 'nodes', type, 'icons', icon as string))).be.true();
        // Every i18n key that the runtime uses exists in the locale.
        const ts = fs.readFileSync(path.join(root, 'nodes', type, `${type}.ts`), 'utf8');
        const keys = [...ts.matchAll(new RegExp(`'(${type}\\.[a-z.-]+)'`, 'g'))].map(
          (m) => m[1] as string,
        );
        for (const key of keys) {
          const value = key
            .split('.')
            .reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], locale);
          should(typeof value).equal('string', `${key} missing in the ${type} locale`);
        }
      });
    }
  });
});
