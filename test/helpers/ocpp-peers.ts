/**
 * OCPP peers for tests on loopback sockets: a real central system on port 0, real ocpp-rpc
 * clients playing chargers (both versions), a Site that dispatches through the OcppChargers
 * adapter (autoDispatch: no Node-RED), and the waits they need. Everything a test makes here is
 * closed by `closePeers()` (call it in afterEach).
 */
import { RPCClient } from 'ocpp-rpc';
import { CentralSystem, type ChargerEvent } from '../../src/adapters/ocpp/central-system';
import { OcppChargers } from '../../src/adapters/ocpp/chargers';
import type { OcppVersion } from '../../src/adapters/ocpp/translate';
import { Site } from '../../src/site';
import { untilWith } from './wait';

export type Client = InstanceType<typeof RPCClient>;
const clients: Client[] = [];
const centrals: CentralSystem[] = [];
const sites: Site[] = [];
/** What `closePeers` closes: a test that makes its own peers adds them here. */
export const peers = { clients, centrals, sites };

export async function closePeers(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.close({ force: true }).catch(() => {})));
  await Promise.all(sites.splice(0).map((s) => s.stop()));
  await Promise.all(centrals.splice(0).map((c) => c.close()));
}

export async function startCentral(opts: ConstructorParameters<typeof CentralSystem>[0] = {}) {
  const central = new CentralSystem({
    port: 0,
    chargers: [{ identity: 'CP1' }, { identity: 'CP2' }],
    callTimeoutMs: 500,
    ...opts,
  });
  centrals.push(central);
  const port = await central.listen();
  return { central, port };
}

export function charger(
  port: number,
  identity: string,
  protocol: OcppVersion,
  extra: Record<string, unknown> = {},
): Client {
  const c = new RPCClient({
    endpoint: `ws://127.0.0.1:${port}/ocpp`,
    identity,
    protocols: [protocol],
    strictMode: true,
    reconnect: false,
    ...extra,
  } as never);
  clients.push(c);
  return c;
}

/** A charger's handler for a call (ocpp-rpc's types want a promise back). */
export function on(c: Client, method: string, fn: (x: { params?: unknown }) => unknown): void {
  c.handle(method, (async (x: { params?: unknown }) => fn(x)) as never);
}

export function nextEvent(
  central: CentralSystem,
  pred: (e: ChargerEvent) => boolean,
): Promise<ChargerEvent> {
  return new Promise((resolve) => {
    const listener = (e: ChargerEvent) => {
      if (pred(e)) {
        central.off('charger', listener);
        resolve(e);
      }
    };
    central.on('charger', listener);
  });
}

/** Polls every 5 ms, at most 400 times. */
export const until = untilWith({ rounds: 400, everyMs: 5 });

export function siteWith(
  central: CentralSystem,
  chargers: ConstructorParameters<typeof OcppChargers>[2],
  config = {},
) {
  const site = new Site({
    siteId: 't',
    autoDispatch: true,
    config: { commandTimeoutSeconds: 5, retryBaseSeconds: 0.05, ...config },
    onError: () => {},
  });
  sites.push(site);
  const fleet = new OcppChargers(site, central, chargers, { reapplyDelayMs: 20 });
  fleet.start();
  site.start();
  return { site, fleet };
}

/** Connects and, unless `status` is null, sends BootNotification and StatusNotification. */
export async function boot(c: Client, protocol: OcppVersion, status: string | null = 'Available') {
  await c.connect();
  if (status === null) return;
  if (protocol === 'ocpp1.6') {
    await c.call('BootNotification', { chargePointVendor: 'test', chargePointModel: 'test' });
    await c.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status });
  } else {
    await c.call('BootNotification', {
      reason: 'PowerUp',
      chargingStation: { model: 'test', vendorName: 'test' },
    });
    await c.call('StatusNotification', {
      timestamp: new Date().toISOString(),
      connectorStatus: status,
      evseId: 1,
      connectorId: 1,
    });
  }
}

/** The limit (W or A) of a SetChargingProfile's parameters, as text. */
export function limitOf(params: unknown): string {
  return JSON.stringify(params).match(/"limit":([\d.]+)/)?.[1] ?? '?';
}
