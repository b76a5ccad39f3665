import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import should from 'should';
import type { Presence } from '../../src/fleet/contract';
import { closeFleet, gatewayClient, open, P, rig, schedule, until } from '../helpers/fleet-rig';
import { mqttVersions } from '../helpers/mqtt-broker';
import { MqttPeer, type Received } from '../helpers/mqtt-peer';

// The gateway against docs/asyncapi.json: every message it publishes in a busy session (both
// protocol versions, real broker) is on a channel of the document and valid against one of
// that channel's message payload schemas (ajv); a retained message is on a channel whose
// operation binding says retain; and wrong messages are rejected (the schemas are not vacuous).

interface Doc {
  channels: Record<string, { address: string | null; messages: Record<string, { $ref: string }> }>;
  operations: Record<
    string,
    {
      action: string;
      channel: { $ref: string };
      bindings: { mqtt: { qos: number; retain: boolean } };
    }
  >;
  components: {
    messages: Record<string, { payload: { $ref: string } }>;
    schemas: Record<string, unknown>;
  };
  servers: {
    broker: { bindings: { mqtt: { lastWill: { topic: string; qos: number; retain: boolean } } } };
  };
}

const doc = JSON.parse(
  readFileSync(path.join(__dirname, '../../docs/asyncapi.json'), 'utf8'),
) as Doc;
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
// The payload schemas, where their `#/components/schemas/...` references point.
ajv.addSchema({ components: { schemas: doc.components.schemas } }, 'asyncapi');

/** Message name -> validator of its payload. */
const validators = new Map<string, ValidateFunction>();
for (const [name, m] of Object.entries(doc.components.messages)) {
  const v = ajv.getSchema(`asyncapi${m.payload.$ref}`);
  if (!v) throw new Error(`no schema for message ${name}`);
  validators.set(name, v);
}

interface Channel {
  id: string;
  pattern: RegExp;
  messages: string[];
  retain: boolean;
}
const channels: Channel[] = Object.entries(doc.channels)
  .filter(([, c]) => c.address !== null)
  .map(([id, c]) => {
    const op = Object.values(doc.operations).find((o) => o.channel.$ref === `#/channels/${id}`);
    return {
      id,
      pattern: new RegExp(`^${(c.address as string).replace(/\{[^}]+\}/g, '[^/]+')}$`),
      messages: Object.values(c.messages).map((m) => m.$ref.replace('#/components/messages/', '')),
      retain: op?.bindings.mqtt.retain ?? false,
    };
  });

/** The errors of `body` on `topic` against the document, or [] when it conforms. */
function check(topic: string, body: unknown, retained: boolean, response = false): string[] {
  const names = response ? ['Ack'] : channels.find((c) => c.pattern.test(topic))?.messages;
  if (!names) return [`${topic}: no channel of the document`];
  const channel = channels.find((c) => c.pattern.test(topic));
  if (retained && !response && !channel?.retain) return [`${topic}: retained, but not so bound`];
  const errors: string[] = [];
  for (const n of names) {
    const v = validators.get(n) as ValidateFunction;
    if (v(body)) return [];
    errors.push(`${n}: ${ajv.errorsText(v.errors)}`);
  }
  return [`${topic}: ${errors.join(' | ')}`];
}

function checkAll(messages: Received[], responseTopic?: string): string[] {
  return messages.flatMap((m) =>
    check(m.topic, m.json, m.packet.retain, m.topic === responseTopic),
  );
}

afterEach(closeFleet);

describe('the AsyncAPI document (docs/asyncapi.json)', () => {
  it('is AsyncAPI 3.0 with the channels, operations and last will of the contract', () => {
    should((doc as unknown as { asyncapi: string }).asyncapi).equal('3.0.0');
    should(channels.map((c) => c.id).sort()).eql(
      [
        'assetStatus',
        'commands',
        'commandsAck',
        'events',
        'limits',
        'limitsAck',
        'presence',
        'schedule',
        'scheduleAck',
        'telemetry',
      ].sort(),
    );
    should(doc.servers.broker.bindings.mqtt.lastWill).match({
      topic: 'qe/v1/{siteId}/presence',
      qos: 1,
      retain: true,
    });
  });

  it('rejects messages that break the contract', () => {
    const at = '2026-01-01T00:00:00.000Z';
    const good: Presence = { siteId: 's', status: 'online', version: '1', contract: 1, at };
    should(check(`${P}/presence`, good, true)).eql([]);
    should(check(`${P}/presence`, { ...good, status: 'maybe' }, false)).have.length(1);
    should(check(`${P}/presence`, { ...good, at: 'yesterday' }, false)).have.length(1);
    should(check(`${P}/schedule/ack`, { requestId: 'x', status: 'accepted' }, false)).have.length(
      1,
    );
    should(
      check(`${P}/assets/a`, { assetId: 'a', state: null, setpoint: { kw: '7' }, at }, false),
    ).have.length(1);
    should(
      check(`${P}/events/X`, { type: 'NOPE', payload: {}, timestamp: at, sequence: 1 }, false),
    ).have.length(1);
    should(check(`${P}/telemetry/a`, { assetId: 'a', kw: 1, at }, true)).match([/retained/]);
    should(check(`${P}/elsewhere`, {}, false)).match([/no channel/]);
  });
});

for (const v of mqttVersions()) {
  describe(`the gateway's messages conform to the AsyncAPI document, MQTT ${v === 4 ? '3.1.1' : '5'}`, () => {
    it('presence, will, asset status, events, telemetry and acks of every kind', async () => {
      const r = await rig(v, {
        limits: {
          circuits: [{ id: 'grid', importKw: 30 }],
          assets: [{ assetId: 'ev1', kind: 'ev', circuit: 'grid', phases: 'L1L2L3', ratingKw: 22 }],
        },
        eventBufferLimit: 1,
        mqtt: { protocolVersion: v, reconnectPeriod: 0 },
      });
      const late = await MqttPeer.connect(r.broker.url, { protocolVersion: v });
      open.push(() => late.close());
      await late.subscribe(`${P}/#`); // retained presence and asset status
      await late.next(`${P}/assets/ev1`);
      const requests: [string, unknown][] = [
        ['schedule', { scheduleId: 'd1', schedule: schedule([7, 11]) }],
        ['schedule', { scheduleId: 'd1', schedule: schedule([7, 11]) }],
        [
          'schedule',
          { scheduleId: 'd2', schedule: { columns: ['ev_v1_kw'], index: ['x'], data: [[1]] } },
        ],
        ['schedule', 'not json'],
        [
          'commands',
          { requestId: 'c1', commands: [{ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 2 }] },
        ],
        ['commands', { requestId: 'c2', commands: [{ assetId: 'ev1', type: 'FLY' }] }],
        [
          'limits',
          { requestId: 'l1', caps: [{ id: 'dso', source: 'grid-operator', importKw: 11 }] },
        ],
        [
          'limits',
          { requestId: 'l2', caps: [{ id: 'dso', source: 'grid-operator', importKw: -1 }] },
        ],
      ];
      for (const [kind, body] of requests) await r.peer.publish(`${P}/${kind}`, body);
      await until(() => r.peer.all(`${P}/+/ack`).length === requests.length, 'every ack');
      const statuses = r.peer.all(`${P}/+/ack`).map((m) => (m.json as { status: string }).status);
      should(new Set(statuses)).eql(new Set(['accepted', 'duplicate', 'rejected']));
      await r.peer.next(`${P}/events/LIMITS_CHANGED`);
      await r.peer.next(`${P}/events/COMMAND_COMPLETED`);
      r.site.getStateMachine('ev1')?.trigger('plug_in');
      await r.peer.next(`${P}/events/STATE_CHANGED`);
      r.site.measured('ev1', { kind: 'ev-limit', kw: 2 });
      await r.peer.next(`${P}/telemetry/ev1`);
      if (v === 5) {
        await r.peer.subscribe('replies/x');
        await r.peer.publish(
          `${P}/commands`,
          { requestId: 'c3', commands: [] },
          { qos: 1, properties: { responseTopic: 'replies/x', correlationData: Buffer.from('1') } },
        );
        await r.peer.next('replies/x');
      }
      // The will, then the buffer's note: the broker away while events happen.
      gatewayClient(r.gateway).stream.destroy();
      await r.peer.next(`${P}/presence`, (m) => (m.json as Presence).status === 'offline');
      await until(() => !r.gateway.connected, 'disconnected');
      r.site.submit([
        { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 },
        { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 4 },
      ]);
      await until(() => r.gateway.stats().dropped > 0, 'an event dropped');
      gatewayClient(r.gateway).reconnect();
      await r.peer.next(`${P}/events/BUFFER_DROPPED`);
      await r.gateway.stop();
      await until(
        () => r.peer.all(`${P}/presence`, (m) => m.text.includes('"offline"')).length >= 2,
        'the will and the offline presence of stop()',
      );

      const all = [...late.messages, ...r.peer.messages].filter(
        (m) => !/\/(schedule|commands|limits)$/.test(m.topic), // the requests themselves
      );
      const topics = new Set(all.map((m) => m.topic.replace(/^qe\/v1\/depot1\//, '')));
      for (const t of [
        'presence',
        'assets/ev1',
        'schedule/ack',
        'commands/ack',
        'limits/ack',
        'telemetry/ev1',
        'events/COMMAND_CREATED',
        'events/STATE_CHANGED',
        'events/SCHEDULE_RECEIVED',
        'events/BUFFER_DROPPED',
      ]) {
        should(topics.has(t)).be.true(`no message on ${t}`);
      }
      should(all.some((m) => m.packet.retain)).be.true();
      should(checkAll(all, 'replies/x')).eql([]);
      should(all.length).be.above(20);
    });
  });
}
