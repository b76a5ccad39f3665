/**
 * Mosquitto (Debian's `mosquitto`, 2.x) as a child process for the fleet tests: a config file
 * in a temporary directory (one listener on 127.0.0.1 and a free port, anonymous clients,
 * no persistence; MQTT 3.1.1 and 5 both, as mosquitto 2 serves them by default), started
 * and waited for until it accepts TCP connections, stopped by its pid (SIGTERM, awaited) and
 * started again on the same port. test/helpers/mqtt-broker.ts picks it with
 * `startBroker({kind: 'mosquitto'})` or `QE_MQTT_BROKER=mosquitto`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/sim/battery';

export interface MosquittoBroker {
  url: string;
  port: number;
  /** The running process's pid (undefined while stopped). */
  readonly pid: number | undefined;
  /** Everything mosquitto printed so far. */
  readonly log: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Whether a `mosquitto` binary is on PATH (or at /usr/sbin, where Debian puts it). */
export function mosquittoPath(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto']) if (fs.existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  const found = r.stdout.trim();
  return r.status === 0 && found ? found : null;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMosquitto(opts: { port?: number } = {}): Promise<MosquittoBroker> {
  const bin = mosquittoPath();
  if (!bin)
    throw new Error(
      'QE_MQTT_BROKER=mosquitto but no mosquitto binary found: apt-get install -y mosquitto',
    );
  const port = opts.port ?? (await freePort());
  const config = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  let dir = '';

  const start = async (): Promise<void> => {
    if (child) throw new Error('mosquitto is already running');
    // A fresh directory each start, removed by stop(): nothing is left behind.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-mosquitto-'));
    const conf = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(conf, config);
    const c = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    const append = (d: Buffer) => {
      log += d.toString();
    };
    c.stdout?.on('data', append);
    c.stderr?.on('data', append);
    exited = new Promise((resolve) =>
      c.once('exit', () => {
        if (child === c) child = null;
        resolve();
      }),
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child !== c) throw new Error(`mosquitto exited while starting:\n${log}`);
      if (await accepts(port)) return;
      if (Date.now() > deadline) {
        // Killed, so that a failed start leaves no process behind.
        await stop();
        throw new Error(`mosquitto did not accept connections on ${port} within 10 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (c) {
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = '';
  };

  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    get log() {
      return log;
    },
    stop,
    start,
  };
}
