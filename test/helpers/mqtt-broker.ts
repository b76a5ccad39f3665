/**
 * A real MQTT broker for tests, on 127.0.0.1, so that MQTT.js clients connect over a real
 * socket: `startBroker()` is aedes in this process (port 0 the first time, then the same
 * port; MQTT 3.1.1 only: aedes does not speak MQTT 5), `startBroker({mosquitto: true})` is
 * Debian's mosquitto (MQTT 5 and 3.1.1) in a child process on a free port. `stop()` closes the
 * broker and every connection (clients see the broker go away; retained messages are lost,
 * like a broker restarted without persistence); `start()` listens again on the same port with
 * a fresh broker.
 *
 * The default kind is the env `QE_MQTT_BROKER`: `aedes` when unset, `mosquitto` in .ci/run's
 * pass 3, where every fleet test runs on Mosquitto (`startBroker({kind})` chooses outright).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

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

export type BrokerKind = 'aedes' | 'mosquitto';

/** The broker kind of `QE_MQTT_BROKER` (default aedes); anything else is an error. */
export function brokerKind(): BrokerKind {
  const k = process.env.QE_MQTT_BROKER ?? 'aedes';
  if (k !== 'aedes' && k !== 'mosquitto')
    throw new Error(`QE_MQTT_BROKER must be aedes or mosquitto, got ${JSON.stringify(k)}`);
  return k;
}

/**
 * The MQTT protocol versions a fleet test runs with: 3.1.1 always; 5 too where the broker
 * speaks it, i.e. on Mosquitto (`QE_MQTT_BROKER=mosquitto`: .ci/run's pass 3, which installs
 * it). `npm test` runs on aedes, which has no MQTT 5, so it needs nothing but npm; the MQTT 5
 * cases (response topic, correlation data, user properties) run in pass 3.
 */
export function mqttVersions(): (4 | 5)[] {
  return brokerKind() === 'mosquitto' ? [4, 5] : [4];
}

export interface BrokerOptions {
  /** Debian's mosquitto instead of aedes: needed for MQTT 5. */
  mosquitto?: boolean;
  /** aedes or mosquitto; default `QE_MQTT_BROKER`'s (`mosquitto: true` wins). */
  kind?: BrokerKind;
}

export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  if (options.mosquitto || (options.kind ?? brokerKind()) === 'mosquitto') return startMosquitto();
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

/** A free TCP port on 127.0.0.1 (asked of the OS, then released for the broker to take). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const addr = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no free port');
  return addr.port;
}

/** Debian installs it in /usr/sbin, which a user's PATH may lack; MOSQUITTO overrides. */
const MOSQUITTO =
  process.env.MOSQUITTO ??
  (existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto');

async function startMosquitto(): Promise<TestBroker> {
  let port = 0;
  let child: ChildProcess | null = null;

  async function launch(): Promise<void> {
    const dir = mkdtempSync(path.join(tmpdir(), 'qe-mosquitto-'));
    const conf = path.join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const p = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const started = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        p.kill();
        reject(new Error(`mosquitto did not start within 5 s: ${log}`));
      }, 5000);
      const exited = (code: number | null) => {
        clearTimeout(t);
        reject(new Error(`mosquitto exited (${code}): ${log}`));
      };
      p.once('error', (err) => {
        clearTimeout(t);
        reject(
          new Error(
            `cannot run ${MOSQUITTO} (${err.message}): install Debian's mosquitto (apt-get install mosquitto) for the MQTT 5 tests`,
          ),
        );
      });
      p.once('exit', exited);
      const onData = (d: Buffer) => {
        log += d.toString();
        if (/ running/.test(log)) {
          clearTimeout(t);
          p.off('exit', exited);
          p.stderr?.off('data', onData);
          p.stderr?.resume();
          resolve();
        }
      };
      p.stderr?.on('data', onData);
    });
    try {
      await started;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    child = p;
    const kill = () => p.kill();
    process.once('exit', kill);
    p.once('exit', () => process.off('exit', kill));
    // Wait until it accepts connections.
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = new Socket();
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
        s.connect(port, '127.0.0.1');
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`mosquitto on port ${port} accepts no connection`);
  }

  async function start(): Promise<void> {
    if (child) return;
    const fixed = port !== 0; // a restart keeps its port
    for (let attempt = 0; ; attempt++) {
      if (!fixed) port = await freePort();
      try {
        await launch();
        return;
      } catch (err) {
        if (attempt >= 2 || /cannot run/.test((err as Error).message)) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async function stop(): Promise<void> {
    const p = child;
    child = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }

  await start();
  return {
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    stop: async () => {
      await stop();
    },
    start,
  };
}
