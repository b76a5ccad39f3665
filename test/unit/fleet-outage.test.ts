import { connect } from 'mqtt';
import should from 'should';
import { CommandType } from '../../src/commands';
import type { AssetStatus, BufferDropped, FleetEvent, Presence } from '../../src/fleet/contract';
import { FleetGateway } from '../../src/fleet/gateway';
import { Site } from '../../src/site';
import { closeFleet, gatewayClient, open, P, rig, schedule, until } from '../helpers/fleet-rig';
import { mqttVersions, startBroker } from '../helpers/mqtt-broker';
import { MqttPeer } from '../helpers/mqtt-peer';

// The broker goes away and comes back (a real broker process or server stopped and started on
// the same port; its retained messages are lost, as without persistence). The gateway
// reconnects by hand here (`reconnectPeriod: 0`, then `client.reconnect()`) once a fresh
// subscriber is in place, so that what it sends on reconnect is seen whatever the timing.

afterEach(closeFleet);

for (const v of mqttVersions()) {
  describe(`FleetGateway with the broker away, MQTT ${v === 4 ? '3.1.1' : '5'}`, () => {
    it('the site dispatches on; events are buffered and sent after, retained state republished', async () => {
      const r = await rig(v, { mqtt: { protocolVersion: v, reconnectPeriod: 0 } });
      // Slot 2 begins 1.5 s from now: after the broker is gone.
      await r.peer.publish(`${P}/schedule`, {
        scheduleId: 'day-1',
        schedule: schedule([7, 11], 1500),
      });
      await r.peer.next(`${P}/events/COMMAND_COMPLETED`);
      await r.broker.stop();
      await until(() => !r.gateway.connected, 'the gateway sees the broker gone');
      const lastSent = r.gateway.stats().eventsSent;
      await until(() => r.dispatched.length === 2, 'slot 2 dispatched during the outage', 1000);
      should(r.dispatched.map((c) => c.valueKw)).eql([7, 11]);
      await until(
        () => r.site.engine.getCommand(r.dispatched[1]?.id ?? '')?.status === 'COMPLETED',
        'slot 2 done',
      );
      const held = r.gateway.stats();
      should(held.buffered).be.above(0);
      should(held.eventsSent).equal(lastSent);
      should(held.dropped).equal(0);

      await r.broker.start();
      const peer = await MqttPeer.connect(r.broker.url, { protocolVersion: v });
      open.push(() => peer.close());
      await peer.subscribe(`${P}/#`);
      gatewayClient(r.gateway).reconnect();
      const presence = await peer.next(`${P}/presence`);
      should(presence.json).match({ status: 'online' } satisfies Partial<Presence>);
      const status = await peer.next(`${P}/assets/ev1`);
      should((status.json as AssetStatus).setpoint).match({
        kw: 11,
        type: CommandType.SET_CHARGE_RATE,
      });
      await until(() => r.gateway.stats().buffered === 0, 'buffer flushed');
      const events = await until(
        () => peer.all(`${P}/events/+`).length >= held.buffered,
        'the buffered events delivered',
      ).then(() => peer.all(`${P}/events/+`).map((m) => m.json as FleetEvent));
      const seqs = events.map((e) => e.sequence);
      should(seqs).eql([...seqs].sort((a, b) => a - b));
      should(events.map((e) => e.type)).containEql('COMMAND_COMPLETED');
      should(
        events.some(
          (e) =>
            e.type === 'COMMAND_DISPATCHED' && (e.payload as { valueKw: number }).valueKw === 11,
        ),
      ).be.true();
      should(r.gateway.stats().eventsSent).equal(lastSent + held.buffered);
    });

    it('a full buffer drops the oldest, counts them and says so after reconnecting', async () => {
      const r = await rig(v, {
        mqtt: { protocolVersion: v, reconnectPeriod: 0 },
        eventBufferLimit: 3,
      });
      await r.broker.stop();
      await until(() => !r.gateway.connected, 'the gateway sees the broker gone');
      for (const kw of [1, 2, 3])
        r.site.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: kw });
      await until(
        () => r.dispatched.length === 3 && r.site.engine.stats().finished === 3,
        'all three done',
      );
      const s = r.gateway.stats();
      should(s.buffered).equal(3);
      should(s.dropped).be.above(0);

      await r.broker.start();
      const peer = await MqttPeer.connect(r.broker.url, { protocolVersion: v });
      open.push(() => peer.close());
      await peer.subscribe(`${P}/events/#`);
      gatewayClient(r.gateway).reconnect();
      const note = (await peer.next(`${P}/events/BUFFER_DROPPED`)).json as FleetEvent;
      const dropped = note.payload as BufferDropped;
      should(dropped.dropped).equal(s.dropped);
      should(dropped.lastSequence - dropped.firstSequence + 1).equal(s.dropped);
      await until(() => peer.all(`${P}/events/+`).length === 4, 'the note and three events');
      const kept = peer.all(`${P}/events/+`).map((m) => m.json as FleetEvent);
      should(kept[0]?.type).equal('BUFFER_DROPPED');
      should(kept.slice(1).map((e) => e.sequence)).eql([
        dropped.lastSequence + 1,
        dropped.lastSequence + 2,
        dropped.lastSequence + 3,
      ]);
      should(r.gateway.stats()).match({ buffered: 0, dropped: s.dropped });
    });

    it('starts with the broker down: start() resolves, events wait, online once the broker is up', async () => {
      const broker = await startBroker({ mosquitto: v === 5 });
      open.push(() => broker.stop());
      await broker.stop();
      const errors: Error[] = [];
      const site = new Site({ siteId: 'depot1', autoDispatch: true, onError: () => {} });
      site.start();
      open.push(() => site.stop());
      const gateway = new FleetGateway(site, {
        url: broker.url,
        mqtt: { protocolVersion: v, reconnectPeriod: 50 },
        onError: (e) => errors.push(e),
      });
      open.push(() => gateway.stop());
      await gateway.start();
      should(gateway.connected).be.false();
      site.submit({ assetId: 'ev9', type: 'SET_CHARGE_RATE', valueKw: 1 }); // no adapter: FAILED
      await until(() => site.engine.stats().finished === 1, 'the command finished offline');
      const waiting = gateway.stats().buffered;
      should(waiting).be.above(1);
      await until(() => errors.length > 0, 'the refused connection reported');
      await broker.start();
      await until(() => gateway.connected, 'connected once the broker is up');
      await until(() => gateway.stats().eventsSent === waiting, 'the events sent');
      const peer = await MqttPeer.connect(broker.url, { protocolVersion: v });
      open.push(() => peer.close());
      await peer.subscribe(`${P}/presence`);
      should((await peer.next(`${P}/presence`)).json).match({ status: 'online' });
      // The same refusal on every attempt is reported once.
      should(errors.filter((e) => /ECONNREFUSED/.test(e.message))).have.length(1);
    });

    it('works on a client it is given and leaves it connected on stop', async () => {
      const broker = await startBroker({ mosquitto: v === 5 });
      open.push(() => broker.stop());
      const client = connect(broker.url, { protocolVersion: v });
      open.push(() => client.endAsync(true));
      await new Promise((resolve) => client.once('connect', resolve));
      const listeners = client.listenerCount('message');
      const site = new Site({ siteId: 'depot1', autoDispatch: true, onError: () => {} });
      open.push(() => site.stop());
      const gateway = new FleetGateway(site, { client });
      await gateway.start();
      const peer = await MqttPeer.connect(broker.url, { protocolVersion: v });
      open.push(() => peer.close());
      await peer.subscribe(`${P}/#`);
      await peer.publish(`${P}/commands`, { requestId: 'r1', commands: [] });
      should((await peer.next(`${P}/commands/ack`)).json).match({ status: 'accepted' });
      await gateway.stop();
      should((await peer.next(`${P}/presence`, (m) => m.text.includes('offline'))).json).match({
        status: 'offline',
      });
      should(client.connected).be.true();
      should(client.listenerCount('message')).equal(listeners);
    });
  });
}
