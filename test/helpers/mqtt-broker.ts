/**
 * A real MQTT broker for tests: aedes in this process, served over TCP on 127.0.0.1 (port 0
 * the first time, then the same port), so that MQTT.js clients connect over a real socket.
 * `stop()` closes the broker and every connection (clients see the broker go away; retained
 * messages are lost, like a broker restarted without persistence); `start()` listens again on
 * the same port with a fresh broker.
 *
 * `startBroker({kind: 'mosquitto'})` runs Mosquitto instead, as a child process
 * (test/helpers/mosquitto.ts), with the same interface; the default kind is the env
 * `QE_MQTT_BROKER` (`aedes` when unset, so that `npm test` needs nothing installed; .ci/run's
 * pass 3 sets `mosquitto`).
 */

import { createServer, type Server, type Socket } from 'node:net';
import { startMosquitto } from './mosquitto';

export type BrokerKind = 'aedes' | 'mosquitto';

/** The broker kind of `QE_MQTT_BROKER` (default aedes); anything else is an error. */
export function brokerKind(): BrokerKind {
  const k = process.env.QE_MQTT_BROKER ?? 'aedes';
  if (k !== 'aedes' && k !== 'mosquitto')
    throw new Error(`QE_MQTT_BROKER must be aedes or mosquitto, got ${JSON.stringify(k)}`);
  return k;
}

export interface TestBroker {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

interface AedesLike {
  handle: (socket: Socket) => void;
  close(cb?: () => void): void;
}

async function newAedes(): Promise<AedesLike> {
  // aedes 1.x is an ES module: a dynamic import loads it from CommonJS on every Node 20.
  const { Aedes } = await import('aedes');
  return (await Aedes.createBroker()) as unknown as AedesLike;
}

export async function startBroker(opts: { kind?: BrokerKind } = {}): Promise<TestBroker> {
  if ((opts.kind ?? brokerKind()) === 'mosquitto') return startMosquitto();
  let port = 0;
  let broker: AedesLike | null = null;
  let server: Server | null = null;
  const sockets = new Set<Socket>();

  async function start(): Promise<void> {
    if (server) return;
    const b = await newAedes();
    const s = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      b.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('broker: no TCP address');
    port = addr.port;
    broker = b;
    server = s;
  }

  async function stop(): Promise<void> {
    const s = server;
    const b = broker;
    server = null;
    broker = null;
    if (!s || !b) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await new Promise<void>((resolve) => b.close(() => resolve()));
    await closed;
  }

  await start();
  return {
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    stop,
    start,
  };
}
