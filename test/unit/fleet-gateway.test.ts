import type { MqttClient } from 'mqtt';
import should from 'should';
import { EVENT_TYPES, EventType } from '../../src/event-bus';
import type { Ack, AssetStatus, FleetEvent, Presence } from '../../src/fleet/contract';
import { closeFleet, LIMITS, open, P, rig, schedule } from '../helpers/fleet-rig';
import { mqttVersions } from '../helpers/mqtt-broker';
import { MqttPeer } from '../helpers/mqtt-peer';
import { countTurns, until } from '../helpers/wait';

// The gateway against a real broker (aedes on 127.0.0.1, port 0) and a real MQTT.js peer
// playing the optimiser, with MQTT 3.1.1 and 5. A Site with a test adapter dispatches on its
// own (autoDispatch) in real time; every wait is bounded (the peer's `next`).

afterEach(closeFleet);

const ack = (m: { json: unknown }) => m.json as Ack;

for (const v of mqttVersions()) {
  describe(`FleetGateway over MQTT ${v === 4 ? '3.1.1' : '5'}`, () => {
    it('comes online: retained presence and asset status, seen by a late subscriber', async () => {
      const r = await rig(v);
      should(r.gateway.connected).be.true();
      const late = await MqttPeer.connect(r.broker.url, { protocolVersion: v });
      open.push(() => late.close());
      await late.subscribe(`${P}/#`);
      const presence = await late.next(`${P}/presence`);
      should(presence.packet.retain).be.true();
      should(presence.json).match({
        siteId: 'depot1',
        status: 'online',
        version: '9.9.9',
        contract: 1,
      } satisfies Partial<Presence>);
      const asset = await late.next(`${P}/assets/ev1`);
      should(asset.packet.retain).be.true();
      should(asset.json).match({ assetId: 'ev1', state: 'AVAILABLE', setpoint: null });
    });

    it('accepts a schedule, dispatches it, acks with the summary and publishes the setpoint', async () => {
      const r = await rig(v);
      await r.peer.publish(`${P}/schedule`, { scheduleId: 'day-1', schedule: schedule([7, 11]) });
      const a = ack(await r.peer.next(`${P}/schedule/ack`));
      should(a).match({ requestId: 'day-1', status: 'accepted' });
      should(a.result).match({ scheduleId: 'day-1', assets: ['ev1'], commandCount: 2, slots: 2 });
      const status = await r.peer.next(
        `${P}/assets/ev1`,
        (m) => (m.json as AssetStatus).setpoint !== null,
      );
      should((status.json as AssetStatus).setpoint).match({ type: 'SET_CHARGE_RATE', kw: 7 });
      should(r.dispatched.map((c) => c.valueKw)).eql([7]);
      const done = await r.peer.next(`${P}/events/COMMAND_COMPLETED`);
      should((done.json as FleetEvent).payload).match({ assetId: 'ev1', valueKw: 7 });
      should(r.gateway.stats()).match({ received: 1, acked: 1, rejected: 0 });
    });

    it('sends the ack before the events the schedule caused (the optimiser waits for the ack)', async () => {
      const r = await rig(v);
      await r.peer.subscribe(`${P}/events/#`);
      await r.peer.publish(`${P}/schedule`, { scheduleId: 'day-1', schedule: schedule([7, 11]) });
      await r.peer.next(`${P}/schedule/ack`);
      await r.peer.next(`${P}/events/COMMAND_CREATED`);
      const order = r.peer.messages
        .map((m) => m.topic)
        .filter((t) => t === `${P}/schedule/ack` || t.startsWith(`${P}/events/`));
      should(order[0]).equal(`${P}/schedule/ack`);
      should(order).containEql(`${P}/events/SCHEDULE_RECEIVED`);
      should(order).containEql(`${P}/events/COMMAND_CREATED`);
    });

    it('answers the same schedule id again `duplicate` and makes no new commands', async () => {
      const r = await rig(v);
      const req = { scheduleId: 'day-1', schedule: schedule([7, 11]) };
      await r.peer.publish(`${P}/schedule`, req);
      await r.peer.next(`${P}/schedule/ack`);
      const total = r.site.engine.stats().total;
      await r.peer.publish(`${P}/schedule`, req);
      const a = ack(await r.peer.next(`${P}/schedule/ack`, (m) => ack(m).status !== 'accepted'));
      should(a).match({ requestId: 'day-1', status: 'duplicate' });
      should(r.site.engine.stats().total).equal(total);
      // A new id is a new revision that supersedes.
      await r.peer.publish(`${P}/schedule`, { scheduleId: 'day-2', schedule: schedule([5]) });
      const b = ack(await r.peer.next(`${P}/schedule/ack`, (m) => ack(m).requestId === 'day-2'));
      should(b.status).equal('rejected'); // one row: no slot length to infer
      should(b.error?.message).match(/slotSeconds/);
      should(r.gateway.stats()).match({ received: 3, acked: 1, duplicates: 1, rejected: 1 });
    });

    it('rejects a bad schedule with the row and column in the ack', async () => {
      const r = await rig(v);
      const bad = schedule([7, 11, 3]);
      (bad.data[1] as unknown[])[0] = 'lots';
      await r.peer.publish(`${P}/schedule`, { scheduleId: 'bad', schedule: bad });
      const a = ack(await r.peer.next(`${P}/schedule/ack`));
      should(a).match({ requestId: 'bad', status: 'rejected' });
      should(a.error).match({ row: 1, column: 'ev_v1_kw' });
      should(a.error?.message).match(/row 1.*column ev_v1_kw/);
      should(r.site.engine.stats().total).equal(0);
      // The id of a rejected schedule is free: the fixed one is accepted.
      await r.peer.publish(`${P}/schedule`, { scheduleId: 'bad', schedule: schedule([7, 11]) });
      should(
        ack(await r.peer.next(`${P}/schedule/ack`, (m) => ack(m).status === 'accepted')).requestId,
      ).equal('bad');
    });

    it('answers malformed requests with a rejected ack and keeps going', async () => {
      const r = await rig(v, { maxPayloadBytes: 4096 });
      const cases: [string, string | object, RegExp, string | undefined][] = [
        ['schedule', '{not json', /not JSON/, undefined],
        ['schedule', { schedule: schedule([1, 2]) }, /must be \{"scheduleId"/, 'scheduleId'],
        [
          'schedule',
          { scheduleId: 42, schedule: [] },
          /scheduleId must be a non-empty/,
          'scheduleId',
        ],
        ['schedule', 'x'.repeat(5000), /5000 bytes, more than the 4096/, undefined],
        ['commands', [1, 2], /requestId must be/, 'requestId'],
        ['commands', { requestId: 'r', commands: 'all' }, /commands must be an array/, 'commands'],
        ['limits', 'null', /requestId must be/, 'requestId'],
      ];
      for (const [kind, body, message, field] of cases) {
        r.peer.clear();
        await r.peer.publish(`${P}/${kind}`, body);
        const a = ack(await r.peer.next(`${P}/${kind}/ack`));
        should(a.status).equal('rejected');
        should(a.error?.message).match(message);
        should(a.error?.field).equal(field);
      }
      should(r.gateway.stats().rejected).equal(cases.length);
      should(r.errors).eql([]);
      should(r.gateway.connected).be.true();
    });

    it('takes hand-made commands: ids in the ack, a bad one names its index and field', async () => {
      const r = await rig(v);
      await r.peer.publish(`${P}/commands`, {
        requestId: 'manual-1',
        commands: [{ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 4 }],
      });
      const a = ack(await r.peer.next(`${P}/commands/ack`));
      should(a).match({ requestId: 'manual-1', status: 'accepted' });
      const ids = (a.result as { commandIds: string[] }).commandIds;
      should(ids).have.length(1);
      should(r.site.engine.getCommand(ids[0] as string)?.valueKw).equal(4);
      await r.peer.next(`${P}/events/COMMAND_COMPLETED`);
      should(r.dispatched.map((c) => c.id)).eql(ids);
      // QoS 1 may deliver twice: the same request id is a no-op.
      r.peer.clear();
      await r.peer.publish(`${P}/commands`, {
        requestId: 'manual-1',
        commands: [{ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 4 }],
      });
      should(ack(await r.peer.next(`${P}/commands/ack`)).status).equal('duplicate');
      r.peer.clear();
      await r.peer.publish(`${P}/commands`, {
        requestId: 'manual-2',
        commands: [
          { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 4 },
          { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: -3 },
        ],
      });
      const b = ack(await r.peer.next(`${P}/commands/ack`));
      should(b).match({ requestId: 'manual-2', status: 'rejected' });
      should(b.error).match({ index: 1, field: 'valueKw' });
      should(r.site.engine.stats().total).equal(1); // nothing of manual-2
    });

    it('applies caps in order; a bad one rejects with its index, the earlier stay', async () => {
      const r = await rig(v, { limits: LIMITS });
      await r.peer.publish(`${P}/limits`, {
        requestId: 'caps-1',
        caps: [
          { id: 'dso-1', source: 'grid-operator', importKw: 20 },
          { id: 'dso-2', source: 'grid-operator', importKw: 'lots' },
          { id: 'dso-3', source: 'grid-operator', importKw: 10 },
        ],
      });
      const a = ack(await r.peer.next(`${P}/limits/ack`));
      should(a).match({ requestId: 'caps-1', status: 'rejected', result: { applied: ['dso-1'] } });
      should(a.error).match({ index: 1, field: 'cap.importKw' });
      should(a.error?.message).match(/caps\[1\].*before it were applied.*dso-1/);
      const inForce = r.site.limiter?.inForce() ?? [];
      should(inForce.some((l) => l.sourceId === 'dso-1' && l.value === 20)).be.true();
      should(inForce.some((l) => l.sourceId === 'dso-3')).be.false();
      r.peer.clear();
      await r.peer.publish(`${P}/limits`, {
        requestId: 'caps-2',
        caps: [{ id: 'dso-1', clear: true }],
      });
      should(ack(await r.peer.next(`${P}/limits/ack`))).match({
        status: 'accepted',
        result: { applied: ['dso-1'] },
      });
      should((r.site.limiter?.inForce() ?? []).some((l) => l.sourceId === 'dso-1')).be.false();
    });

    it('a site without limits rejects caps saying so', async () => {
      const r = await rig(v);
      await r.peer.publish(`${P}/limits`, {
        requestId: 'c',
        caps: [{ id: 'x', source: 'flow', importKw: 5 }],
      });
      const a = ack(await r.peer.next(`${P}/limits/ack`));
      should(a).match({ status: 'rejected', error: { index: 0 } });
      should(a.error?.message).match(/has no limits/);
    });

    it('publishes its last will when its connection dies, and comes back online', async () => {
      const r = await rig(v);
      await r.peer.next(`${P}/presence`, (m) => (m.json as Presence).status === 'online');
      r.peer.clear();
      const client = (r.gateway as unknown as { client: { stream: { destroy(): void } } }).client;
      client.stream.destroy();
      const will = await r.peer.next(`${P}/presence`);
      should(will.json).match({ siteId: 'depot1', status: 'offline', contract: 1 });
      const back = await r.peer.next(
        `${P}/presence`,
        (m) => (m.json as Presence).status === 'online',
      );
      should(back.json).match({ status: 'online' });
    });

    it('stop() publishes offline presence and removes every listener', async () => {
      const r = await rig(v);
      const before = r.site.eventBus.subscriberCount();
      await r.peer.next(`${P}/presence`);
      r.peer.clear();
      await r.gateway.stop();
      const off = await r.peer.next(`${P}/presence`);
      should(off.json).match({ status: 'offline' });
      should(off.packet.retain).be.false(); // live delivery; the broker keeps it retained
      // One subscription per type it follows (every type by default), all removed.
      should(r.site.eventBus.subscriberCount()).equal(before - EVENT_TYPES.length);
      should(r.gateway.connected).be.false();
      await r.gateway.stop(); // idempotent
    });

    it('publishes measurements as telemetry, QoS 0', async () => {
      const r = await rig(v);
      r.site.measured('ev1', { kind: 'ev-limit', kw: 3.5, at: Date.parse('2026-01-01T00:00:00Z') });
      const t = await r.peer.next(`${P}/telemetry/ev1`);
      should(t.json).eql({ assetId: 'ev1', kw: 3.5, at: '2026-01-01T00:00:00.000Z' });
      should(t.packet.qos).equal(0);
    });
  });
}

// MQTT 5 needs a broker that speaks it: Mosquitto, in .ci/run's pass 3 (see mqttVersions).
if (mqttVersions().includes(5)) {
  describe('FleetGateway, MQTT 5 only', () => {
    it('answers on the response topic with the correlation data, not on the ack topic', async () => {
      const r = await rig(5);
      await r.peer.subscribe('central/replies');
      const correlationData = Buffer.from('c0ffee', 'hex');
      await r.peer.publish(
        `${P}/schedule`,
        { scheduleId: 'day-1', schedule: schedule([7, 11]) },
        { qos: 1, properties: { responseTopic: 'central/replies', correlationData } },
      );
      const reply = await r.peer.next('central/replies');
      should(ack(reply)).match({ requestId: 'day-1', status: 'accepted' });
      should(reply.packet.properties?.correlationData?.equals(correlationData)).be.true();
      await r.peer.publish(`${P}/commands`, { requestId: 'after', commands: [] });
      await r.peer.next(`${P}/commands/ack`);
      should(r.peer.all(`${P}/schedule/ack`)).have.length(0);
    });

    it('takes a bare schedule with its id in the user property scheduleId (CSV too)', async () => {
      const r = await rig(5);
      const t0 = new Date(Date.now()).toISOString();
      const t1 = new Date(Date.now() + 60_000).toISOString();
      await r.peer.publish(`${P}/schedule`, `timestamp,ev_v1_kw\n${t0},6\n${t1},2\n`, {
        qos: 1,
        properties: { userProperties: { scheduleId: 'csv-1' } },
      });
      const a = ack(await r.peer.next(`${P}/schedule/ack`));
      should(a).match({ requestId: 'csv-1', status: 'accepted', result: { commandCount: 2 } });
    });
  });
}

describe('FleetGateway, either version', () => {
  it('coalesces an asset status per tick: changes within one publish the last state only', async () => {
    const r = await rig(4);
    await r.peer.next(`${P}/assets/ev1`);
    r.peer.clear();
    const machine = r.site.getStateMachine('ev1');
    machine?.trigger('plug_in');
    machine?.trigger('start_charge');
    const status = await r.peer.next(`${P}/assets/ev1`);
    should((status.json as AssetStatus).state).equal('CHARGING');
    await r.peer.next(`${P}/events/STATE_CHANGED`, (m) => m.text.includes('"to_state":"CHARGING"'));
    should(r.peer.all(`${P}/assets/ev1`)).have.length(1);
    should(r.peer.all(`${P}/events/STATE_CHANGED`)).have.length(2);
  });

  it('listens to the event types it publishes and those the asset status follows, no more', async () => {
    const r = await rig(4, { eventTypes: [EventType.COMMAND_COMPLETED] });
    const bus = r.site.eventBus;
    // A plan's COMMAND_CREATED (one per planned row) is made only when someone listens.
    should(bus.hasSubscribers(EventType.COMMAND_CREATED)).be.false();
    should(bus.hasSubscribers(EventType.STATE_CHANGED)).be.true();
    should(bus.hasSubscribers(EventType.COMMAND_CANCELLED)).be.true();
  });

  it('registers a schedule as its plan: a later slot stays a planned row, not a command', async () => {
    const r = await rig(4);
    await r.peer.publish(`${P}/schedule`, { scheduleId: 'p', schedule: schedule([7, 11, 9]) });
    should(ack(await r.peer.next(`${P}/schedule/ack`)).status).equal('accepted');
    await until(() => r.dispatched.length === 1, 'the first slot dispatched');
    const doc = r.site.engine.toJSON();
    // The first slot was due: made into its command. The two after it are still columns.
    should(doc.commands.map((c) => c.valueKw)).eql([7]);
    should(doc.plans?.map((p) => p.scheduleId)).eql(['p']);
    should(r.site.engine.stats()).match({ total: 3, pending: 2 });
  });

  it('reads, converts and registers a schedule in slices: the event loop is served meanwhile', async () => {
    const kw = Array.from({ length: 96 }, (_, i) => 1 + (i % 10));
    const columns = Array.from({ length: 60 }, (_, a) => `ev_v${a}_kw`);
    const assetMap = Object.fromEntries(columns.map((_, a) => [`v${a}`, `ev${a}`]));
    // sliceMs 0: a turn at every checkpoint, so the test does not depend on the machine's speed.
    const r = await rig(4, { slicing: { sliceMs: 0 }, schedule: { assetMap } });
    const gw = r.gateway;
    // Turns of the event loop from the request's arrival to the schedule's acceptance.
    const counting: { turns?: ReturnType<typeof countTurns> } = {};
    const client = (gw as unknown as { client: MqttClient }).client;
    client.on('message', (topic) => {
      if (!topic.endsWith('/schedule') || counting.turns) return;
      counting.turns = countTurns();
    });
    let atAccept = -1;
    r.site.eventBus.subscribe(EventType.SCHEDULE_RECEIVED, () => {
      atAccept = counting.turns?.turns ?? 0;
    });
    const start = Date.now() + 60_000;
    await r.peer.publish(`${P}/schedule`, {
      scheduleId: 'big',
      schedule: {
        columns,
        index: kw.map((_, i) => new Date(start + i * 900_000).toISOString()),
        data: kw.map((k) => columns.map(() => k)),
      },
    });
    const a = ack(await r.peer.next(`${P}/schedule/ack`, (m) => ack(m).requestId === 'big'));
    counting.turns?.stop();
    should(a).match({ status: 'accepted', result: { commandCount: 60 * 96 } });
    // A synchronous read would have let no turn run before the schedule was accepted.
    should(atAccept).be.above(2);
    should(r.site.engine.stats().pending).equal(60 * 96);
  });

  it('stop() during a schedule read finishes it: registered and acked before the client ends', async () => {
    const r = await rig(4, { slicing: { sliceMs: 0 } });
    let stopped: Promise<void> | null = null;
    r.site.eventBus.subscribe(EventType.SCHEDULE_RECEIVED, () => {
      // Converted and accepted; its plan is still to be registered (in slices).
      stopped ??= r.gateway.stop();
    });
    await r.peer.publish(`${P}/schedule`, { scheduleId: 's', schedule: schedule([7, 11, 9]) });
    const a = ack(await r.peer.next(`${P}/schedule/ack`));
    should(a).match({ requestId: 's', status: 'accepted' });
    should(stopped).not.be.null();
    await stopped;
    should(r.site.engine.stats().total).equal(3);
    should(r.gateway.connected).be.false();
  });

  it('stop() takes no request that waits behind the one under way: no ack, nothing registered', async () => {
    const r = await rig(4, { slicing: { sliceMs: 0 } });
    const client = (r.gateway as unknown as { client: MqttClient }).client;
    let stopped: Promise<void> | null = null;
    // The second request has reached the gateway (queued behind the first, or the first is
    // done): stop now. Either way the first is acked and the second is not taken.
    client.on('message', (_topic, payload) => {
      if (payload.toString().includes('"second"')) stopped ??= r.gateway.stop();
    });
    // The second is sent once the first is under way (converted, its plan being registered
    // in slices): sent together, both could arrive in one read, before the first is taken,
    // and then the stop would rightly take neither.
    let second: Promise<void> | null = null;
    r.site.eventBus.subscribe(EventType.SCHEDULE_RECEIVED, () => {
      second ??= r.peer.publish(`${P}/schedule`, {
        scheduleId: 'second',
        schedule: schedule([5, 6]),
      });
    });
    await r.peer.publish(`${P}/schedule`, { scheduleId: 'first', schedule: schedule([7, 11]) });
    await until(() => second !== null, 'the first request is under way');
    await second;
    await until(() => stopped !== null, 'the second request reached the gateway');
    await stopped;
    // The offline presence goes out after every ack the gateway gives.
    await r.peer.next(`${P}/presence`, (m) => (m.json as Presence).status === 'offline');
    const acks = r.peer.all(`${P}/schedule/ack`).map((m) => ack(m));
    should(acks.map((a) => [a.requestId, a.status])).eql([['first', 'accepted']]);
    should(r.site.engine.hasScheduleId('first')).be.true();
    should(r.site.engine.hasScheduleId('second')).be.false();
  });

  it('hands a schedule to onCommands with its conversion instead of submitting it', async () => {
    const handed: [number, string | undefined][] = [];
    const r = await rig(4, {
      onCommands: (commands, conversion) => handed.push([commands.length, conversion?.scheduleId]),
    });
    await r.peer.publish(`${P}/schedule`, { scheduleId: 'w', schedule: schedule([7, 11]) });
    should(ack(await r.peer.next(`${P}/schedule/ack`)).status).equal('accepted');
    should(handed).eql([[2, 'w']]);
    should(r.site.engine.stats().total).equal(0);
    await r.peer.publish(`${P}/commands`, {
      requestId: 'm',
      commands: [{ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 1 }],
    });
    await r.peer.next(`${P}/commands/ack`);
    should(handed).eql([
      [2, 'w'],
      [1, undefined],
    ]);
  });
});
