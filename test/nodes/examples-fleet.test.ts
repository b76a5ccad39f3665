/**
 * Example 08 (fleet gateway over MQTT) runs as imported against a real broker (aedes on a
 * loopback port instead of 127.0.0.1:1883): a central client publishes a schedule for the
 * example's site, gets `accepted`, and the commands reach the simulated chargers and
 * complete; the debug nodes show one readable line a message. Real time, every wait bounded;
 * nothing asserts on how long something took.
 */
import mqtt, { type MqttClient } from 'mqtt';
import should from 'should';
import type { Command } from '../..';
import { startBroker, type TestBroker } from '../helpers/mqtt-broker';
import { untilWith } from '../helpers/wait';
import {
  initialisersFor,
  readableDebug,
  readExample,
  warnings,
  watchSidebar,
} from './examples-lib';
import { siteOf } from './flows';
import { helper } from './runtime';

const until = untilWith({ ms: 20_000 });

describe('example 08: fleet gateway over MQTT, against a real broker', function () {
  this.timeout(60_000);
  const file = '08 Fleet gateway over MQTT.json';
  const flow = readExample(file);
  let broker: TestBroker;
  let central: MqttClient | null = null;

  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  beforeEach(async () => {
    broker = await startBroker();
  });
  afterEach(async () => {
    await helper.unload();
    await central?.endAsync(true);
    central = null;
    await broker.stop();
  });

  it('a schedule published for fleet-depot is accepted, dispatched to the chargers and completed', async () => {
    const sidebar = watchSidebar();
    try {
      await run(sidebar);
    } finally {
      sidebar.stop();
    }
  });

  async function run(sidebar: ReturnType<typeof watchSidebar>): Promise<void> {
    const site = flow.find((n) => n.type === 'qe-coordinator')?.siteId as string;
    should(site).equal('fleet-depot');
    const loaded = flow.map((n) => (n.type === 'qe-fleet-broker' ? { ...n, url: broker.url } : n));
    await helper.load(initialisersFor(flow), loaded as never);

    central = await mqtt.connectAsync(broker.url, { clientId: 'example-08-central' });
    const seen: { topic: string; payload: Record<string, unknown> }[] = [];
    central.on('message', (topic, buf) =>
      seen.push({ topic, payload: JSON.parse(buf.toString()) as Record<string, unknown> }),
    );
    await central.subscribeAsync(`qe/v1/${site}/#`, { qos: 1 });
    await until(
      () => seen.some((s) => s.topic.endsWith('/presence') && s.payload.status === 'online'),
      'the site online',
    );
    const start = Math.floor(Date.now() / 60_000) * 60_000;
    const schedule = [0, 1].map((i) => ({
      timestamp: new Date(start + i * 15 * 60_000).toISOString(),
      ev_001_kw: 7,
      ev_002_kw: 11,
    }));
    await central.publishAsync(
      `qe/v1/${site}/schedule`,
      JSON.stringify({ scheduleId: 'plan-1', schedule }),
      { qos: 1 },
    );
    await until(() => seen.some((s) => s.topic.endsWith('/schedule/ack')), 'the ack');
    const ack = seen.find((s) => s.topic.endsWith('/schedule/ack'))?.payload;
    should(ack).have.properties({ requestId: 'plan-1', status: 'accepted' });

    const commands = () =>
      siteOf(flow.find((n) => n.type === 'qe-coordinator')?.id).engine.getCommands({
        scheduleId: 'plan-1',
      }) as Command[];
    await until(
      () => commands().length === 2 && commands().every((c) => c.status === 'COMPLETED'),
      'both commands COMPLETED',
    );
    should(
      commands()
        .map((c) => `${c.assetId} ${c.valueKw}`)
        .sort(),
    ).eql(['ast_ev_001 7', 'ast_ev_002 11']);

    const shown = (name: string) => readableDebug(flow, sidebar.messages, name);
    should(shown('commands received')).eql(['plan-1: 2 commands for ast_ev_001, ast_ev_002']);
    should(shown('acks and connection')).containEql('plan-1 accepted');
    should(shown('acks and connection')).containEql(`broker connected (${broker.url})`);
    should(shown('setpoints sent')).eql([
      'ast_ev_001 SET_CHARGE_RATE 7 kW',
      'ast_ev_002 SET_CHARGE_RATE 11 kW',
    ]);
    should(warnings()).eql([]);
  }
});
