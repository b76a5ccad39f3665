/**
 * A real MQTT broker for tests: aedes in this process, served over TCP on 127.0.0.1 (port 0
 * the first time, then the same port), so that MQTT.js clients connect over a real socket.
 * `stop()` closes the broker and every connection (clients see the broker go away; retained
 * messages are lost, like a broker restarted without persistence); `start()` listens again on
 * the same port with a fresh broker.
 */

import { createServer, type Server, type Socket } from 'node:net';

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

export async function startBroker(): Promise<TestBroker> {
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
