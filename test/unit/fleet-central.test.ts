import should from 'should';
import { FleetCentral } from '../../src/fleet/central';
import type { AssetStatus, FleetEvent, Presence } from '../../src/fleet/contract';
import { closeFleet, open, rig, schedule } from '../helpers/fleet-rig';
import { mqttVersions, startBroker } from '../helpers/mqtt-broker';

// FleetCentral against a FleetGateway end to end, over a real broker (aedes with MQTT 3.1.1,
// mosquitto with MQTT 5): requests resolve with the site's ack; presence, asset status and
// events are followed. Every wait is bounded.

afterEach(closeFleet);

function waitFor<T>(
  central: FleetCentral,
  event: 'presence' | 'asset' | 'event',
  pred: (x: T) => boolean,
  ms = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      central.off(event, on);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const on = (_site: string, x: unknown) => {
      if (!pred(x as T)) return;
      clearTimeout(t);
      central.off(event, on);
      resolve(x as T);
    };
    central.on(event, on);
  });
}

for (const v of mqttVersions()) {
  describe(`FleetCentral over MQTT ${v === 4 ? '3.1.1' : '5'}`, () => {
    it('sends a schedule, commands and caps to a site and resolves with its acks', async () => {
      const r = await rig(v, {
        limits: {
          circuits: [{ id: 'grid', importKw: 30 }],
          assets: [{ assetId: 'ev1', kind: 'ev', circuit: 'grid', phases: 'L1L2L3', ratingKw: 22 }],
        },
      });
      const central = new FleetCentral({
        url: r.broker.url,
        mqtt: { protocolVersion: v },
        timeoutMs: 5000,
      });
      open.push(() => central.stop());
      const setpoint = waitFor<AssetStatus>(central, 'asset', (s) => s.setpoint?.kw === 7);
      const completed = waitFor<FleetEvent>(
        central,
        'event',
        (e) => e.type === 'COMMAND_COMPLETED',
      );
      const online = waitFor<Presence>(central, 'presence', (p) => p.status === 'online');
      await central.start();
      await online; // retained: comes right after the subscription
      should(central.sites().get('depot1')).match({
        status: 'online',
        contract: 1,
      } satisfies Partial<Presence>);
      const a = await central.publishSchedule('depot1', schedule([7, 11]), { expirySeconds: 60 });
      should(a.status).equal('accepted');
      should(a.requestId).match(/^sch-/);
      should(a.result).match({ commandCount: 2 });
      should((await setpoint).setpoint).match({ type: 'SET_CHARGE_RATE', kw: 7 });
      should((await completed).payload).match({ assetId: 'ev1' });
      should(central.assets('depot1').get('ev1')?.setpoint?.kw).equal(7);
      // The same id again: duplicate.
      const again = await central.publishSchedule('depot1', schedule([7, 11]), {
        scheduleId: a.requestId as string,
      });
      should(again.status).equal('duplicate');
      const c = await central.sendCommands('depot1', [
        { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 },
      ]);
      should(c).match({ status: 'accepted', result: { commandIds: [/./] } });
      const caps = await central.sendCaps('depot1', [
        { id: 'dso', source: 'grid-operator', importKw: 10 },
      ]);
      should(caps).match({ status: 'accepted', result: { applied: ['dso'] } });
      const bad = await central.sendCaps('depot1', [
        { id: 'dso', source: 'grid-operator', importKw: -1 },
      ]);
      should(bad).match({ status: 'rejected', error: { index: 0 } });
    });

    it('follows presence: the site going offline (stop) is seen', async () => {
      const r = await rig(v);
      const central = new FleetCentral({ url: r.broker.url, mqtt: { protocolVersion: v } });
      open.push(() => central.stop());
      await central.start();
      const offline = waitFor<Presence>(central, 'presence', (p) => p.status === 'offline');
      await r.gateway.stop();
      should(await offline).match({ siteId: 'depot1', status: 'offline' });
      should(central.sites().get('depot1')?.status).equal('offline');
    });

    it('a request nobody answers rejects after its timeout, naming it', async () => {
      const broker = await startBroker({ mosquitto: v === 5 });
      open.push(() => broker.stop());
      const central = new FleetCentral({ url: broker.url, mqtt: { protocolVersion: v } });
      open.push(() => central.stop());
      await central.start();
      await should(
        central.publishSchedule('nowhere', schedule([1, 2]), { scheduleId: 's1', timeoutMs: 200 }),
      ).be.rejectedWith(/no ack from site nowhere for schedule s1 within 200 ms/);
    });
  });
}
