/**
 * A fleet test rig: a broker (aedes for MQTT 3.1.1, mosquitto for MQTT 5), a Site with a
 * test adapter serving `ev1` that dispatches on its own (autoDispatch), a started
 * FleetGateway for site `depot1`, and an MQTT.js peer subscribed to everything of the site.
 * `closeFleet()` (in afterEach) closes what was opened, last first.
 */
import type { Adapter } from '../../src/adapters/registry';
import type { Command } from '../../src/commands';
import { FleetGateway, type FleetGatewayOptions } from '../../src/fleet/gateway';
import { Site } from '../../src/site';
import { startBroker, type TestBroker } from './mqtt-broker';
import { MqttPeer } from './mqtt-peer';

export const P = 'qe/v1/depot1';
export const LIMITS = {
  circuits: [{ id: 'grid', importKw: 30 }],
  assets: [{ assetId: 'ev1', kind: 'ev', circuit: 'grid', phases: 'L1L2L3', ratingKw: 22 }],
};

export interface Rig {
  broker: TestBroker;
  site: Site;
  gateway: FleetGateway;
  peer: MqttPeer;
  dispatched: Command[];
  errors: Error[];
}

export const open: (() => Promise<unknown>)[] = [];
/** Closes what the tests opened, last first (in afterEach). */
export async function closeFleet(): Promise<void> {
  for (const close of open.splice(0).reverse()) await close();
}

/** A split-orient schedule for ev1 from now: `kw` per slot of `slotMs`. */
export function schedule(kw: number[], slotMs = 60_000, start = Date.now()) {
  return {
    columns: ['ev_v1_kw'],
    index: kw.map((_, i) => new Date(start + i * slotMs).toISOString()),
    data: kw.map((k) => [k]),
  };
}

export async function rig(
  protocolVersion: 4 | 5,
  opts: Partial<FleetGatewayOptions> & { limits?: unknown; broker?: TestBroker } = {},
): Promise<Rig> {
  // aedes speaks 3.1.1 only: MQTT 5 runs against mosquitto.
  const broker = opts.broker ?? (await startBroker({ mosquitto: protocolVersion === 5 }));
  if (!opts.broker) open.push(() => broker.stop());
  const errors: Error[] = [];
  const site = new Site({
    siteId: 'depot1',
    autoDispatch: true,
    onError: (e) => errors.push(e),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const dispatched: Command[] = [];
  const adapter: Adapter = {
    protocol: 'test',
    dispatch: (c) => {
      dispatched.push(c);
      return { success: true };
    },
  };
  site.serve(adapter, ['ev1'], 'ev-charger', 'test');
  site.start();
  open.push(() => site.stop());
  const peer = await MqttPeer.connect(broker.url, { protocolVersion });
  open.push(() => peer.close());
  await peer.subscribe(`${P}/#`);
  const gateway = new FleetGateway(site, {
    url: broker.url,
    mqtt: { protocolVersion, reconnectPeriod: 50 },
    schedule: { assetMap: { v1: 'ev1' } },
    version: '9.9.9',
    onError: (e) => errors.push(e),
    ...opts,
  });
  open.push(() => gateway.stop());
  await gateway.start();
  return { broker, site, gateway, peer, dispatched, errors };
}

/** The gateway's own MQTT.js client (for tests that cut or resume its connection). */
export function gatewayClient(gateway: FleetGateway): import('mqtt').MqttClient {
  return (gateway as unknown as { client: import('mqtt').MqttClient }).client;
}

export { until } from './wait';
