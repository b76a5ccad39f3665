/**
 * The fleet of `npm start` (scripts/demo.ts): an MQTT broker in the demo's process (aedes on
 * 127.0.0.1) and the fleet's central client (FleetCentral), which publishes one schedule to
 * each site of the demo flow when the site's presence says online, and reports each ack.
 */
import net, { type AddressInfo } from 'node:net';
import type * as Core from '..';

/** What the central publishes to each site of the demo flow, by siteId: one schedule. */
export function fleetSchedule(
  siteId: string,
  now: number,
): { scheduleId: string; schedule: unknown } {
  const start = Math.floor(now / 1000) * 1000;
  const at = (i: number, offsetS: number) =>
    new Date(start + (offsetS + i * 15) * 1000).toISOString();
  if (siteId === 'demo-depot-2') {
    // The second site's charger: 7 kW, then 11 kW, then 0, in 15-s slots from now.
    return {
      scheduleId: 'fleet-1',
      schedule: [7, 11, 0].map((kw, i) => ({ timestamp: at(i, 0), ev_ev_101_kw: kw })),
    };
  }
  // The first site's battery: 5 kW of charge for 30 s, starting in 30 s.
  return {
    scheduleId: 'fleet-1',
    schedule: [5, 5, 0].map((kw, i) => ({
      timestamp: at(i, 30),
      battery_charge_kw: kw,
      battery_discharge_kw: 0,
    })),
  };
}

/** An MQTT broker in this process (aedes), on 127.0.0.1:port. */
export async function startBroker(port: number): Promise<{ port: number; close(): Promise<void> }> {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  let bound: number;
  try {
    bound = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw err;
  }
  return {
    port: bound,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The fleet's central client (FleetCentral): publishes one schedule to each site of `sites`
 * when its presence says online, and prints each ack as
 * `<time>  -  fleet  <siteId>  ack schedule <id> <status>[: ...]`.
 */
export async function startCentral(
  url: string,
  sites: string[],
  io: {
    core: typeof Core;
    stopped: () => boolean;
    /** Prints one line of the site (or `central`). */
    say: (siteId: string, text: string) => void;
  },
): Promise<{ close(): Promise<void> }> {
  const { FleetCentral } = io.core;
  const { say, stopped } = io;
  const central = new FleetCentral({
    url,
    mqtt: { clientId: `qe-demo-central-${process.pid}`, reconnectPeriod: 1000 },
  });
  const sent = new Set<string>();
  central.on('presence', (siteId, presence) => {
    if (presence.status !== 'online' || sent.has(siteId) || !sites.includes(siteId)) return;
    sent.add(siteId);
    const { scheduleId, schedule } = fleetSchedule(siteId, Date.now());
    say(siteId, `central publishes schedule ${scheduleId}`);
    central.publishSchedule(siteId, schedule, { scheduleId }).then(
      (ack) => {
        const result = ack.result as { commandCount?: number; assets?: string[] } | undefined;
        const detail =
          ack.status === 'accepted' && result
            ? `: ${result.commandCount} commands for ${(result.assets ?? []).join(', ')}`
            : ack.error
              ? `: ${ack.error.message}`
              : '';
        say(siteId, `ack schedule ${ack.requestId} ${ack.status}${detail}`);
      },
      (err: Error) => {
        if (!stopped()) say(siteId, `no ack for schedule ${scheduleId}: ${err.message}`);
      },
    );
  });
  central.on('malformed', (topic, reason) => say('central', `${topic}: ${reason}`));
  await central.start();
  return { close: () => central.stop() };
}
