/**
 * A fleet over one MQTT broker (issue 15): 100 core-library sites (a Site and a FleetGateway
 * each, in this process) of 20 chargers each, one FleetCentral. The chargers are simulated by
 * an adapter that answers at once (no OCPP here: bench/ocpp-fleet.bench.ts measures that).
 * Measured: the time from publishing 100 schedules (one per site, QoS 1) to the last ack, and
 * events per second from the sites' buses through the broker to the central client. The floor
 * is bare MQTT.js on the same broker with the same payloads and QoS: 100 echo subscribers that
 * answer each schedule with an ack of the same size, and 100 clients publishing the same event
 * messages; the ratio is against the target, 1.5x the floor. The broker is Mosquitto when it
 * is installed (QE_MQTT_BROKER=aedes forces the in-process aedes), printed. Prints figures;
 * passes or fails nothing.
 *
 *   node --import tsx bench/fleet.bench.ts        (BENCH_RUNS, default 5)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { EventType } from '../src/event-bus';
import { FleetCentral } from '../src/fleet/central';
import { DEFAULT_PREFIX, eventTopic, siteTopic } from '../src/fleet/contract';
import { FleetGateway } from '../src/fleet/gateway';
import { Site } from '../src/site';
import { startBroker, type TestBroker } from '../test/helpers/mqtt-broker';
import { fmt, machine, median, nowMs, runs, sleep, until } from './lib';

const SITES = 100;
const CHARGERS = 20;
const SLOTS = 96; // a day of 15-minute slots
const EVENTS_PER_SITE = 200;
const prefix = DEFAULT_PREFIX;
const siteId = (i: number) => `bench-${String(i).padStart(3, '0')}`;
const evs = Array.from({ length: CHARGERS }, (_, i) => `v${String(i + 1).padStart(2, '0')}`);

/** A day's schedule in pandas' split orient, starting this minute. */
function schedule(round: number): unknown {
  const start = Math.floor(Date.now() / 60_000) * 60_000;
  return {
    columns: evs.map((v) => `ev_${v}_kw`),
    index: Array.from({ length: SLOTS }, (_, s) => new Date(start + s * 900_000).toISOString()),
    data: Array.from({ length: SLOTS }, (_, s) => evs.map((_v, c) => ((s + c + round) % 23) / 2)),
  };
}

function connect(url: string, clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { clientId, reconnectPeriod: 0 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

/**
 * Mosquitto for the bench: as the tests' (test/helpers/mqtt-broker.ts) but with no limit on
 * the messages queued for a slow client (`max_queued_messages 0`): with the default, 1000, an
 * ack went missing once (Mosquitto drops QoS 1 messages queued beyond it, and the central
 * client, in this busy process, gets 100 acks and 2,000 asset states in one burst a round).
 */
async function benchMosquitto(bin: string): Promise<TestBroker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-bench-mosquitto-'));
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n`,
  );
  const child = spawn(bin, ['-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) break;
    if (i > 200) throw new Error('mosquitto did not start');
    await sleep(25);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    start: async () => {},
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------ the package

interface Ours {
  schedules: number[];
  eventsPerS: number[];
  ackBytes: number;
  close(): Promise<void>;
}

async function ours(broker: TestBroker, n: number): Promise<Ours> {
  const sites: Site[] = [];
  const gateways: FleetGateway[] = [];
  for (let i = 0; i < SITES; i++) {
    const site = new Site({ siteId: siteId(i), autoDispatch: true, onError: () => {} });
    const adapter = { protocol: 'bench', dispatch: () => ({ success: true }) };
    for (const v of evs) site.adapterRegistry.register(`${siteId(i)}-${v}`, adapter);
    site.start();
    const gw = new FleetGateway(site, {
      url: broker.url,
      schedule: { assetMap: Object.fromEntries(evs.map((v) => [v, `${siteId(i)}-${v}`])) },
      eventTypes: [EventType.ASSET_DEVIATION],
      eventBufferLimit: EVENTS_PER_SITE * 2,
    });
    await gw.start();
    sites.push(site);
    gateways.push(gw);
  }
  const central = new FleetCentral({ url: broker.url });
  let events = 0;
  let lastEventAt = 0;
  central.on('event', () => {
    events++;
    lastEventAt = nowMs();
  });
  await central.start();
  await until(
    () => [...central.sites().values()].filter((p) => p.status === 'online').length === SITES,
    'all sites online',
    30_000,
    20,
  );

  const schedules: number[] = [];
  let ackBytes = 0;
  for (let r = 0; r <= n; r++) {
    const payloads = sites.map(() => schedule(r));
    const t0 = nowMs();
    const acks = await Promise.all(
      sites.map((s, i) =>
        central.publishSchedule(s.siteId, payloads[i], {
          scheduleId: `r${r}-${s.siteId}`,
          timeoutMs: 30_000,
        }),
      ),
    );
    const t = nowMs() - t0;
    const bad = acks.filter((a) => a.status !== 'accepted');
    if (bad.length > 0) throw new Error(`not accepted: ${JSON.stringify(bad[0])}`);
    ackBytes = Buffer.byteLength(JSON.stringify(acks[0]));
    if (r > 0) schedules.push(t); // round 0 warms up
    await sleep(200);
  }

  const eventsPerS: number[] = [];
  for (let r = 0; r <= n; r++) {
    events = 0;
    const t0 = nowMs();
    for (const s of sites)
      for (let e = 0; e < EVENTS_PER_SITE; e++)
        s.eventBus.publish(EventType.ASSET_DEVIATION, deviation(s.siteId, e));
    await until(
      () => events >= SITES * EVENTS_PER_SITE,
      'every event at the central client',
      60_000,
      2,
    );
    if (r > 0) eventsPerS.push((SITES * EVENTS_PER_SITE) / ((lastEventAt - t0) / 1000));
  }
  return {
    schedules,
    eventsPerS,
    ackBytes,
    close: async () => {
      await central.stop();
      for (const g of gateways) await g.stop();
      for (const s of sites) await s.stop();
    },
  };
}

function deviation(site: string, e: number) {
  return {
    assetId: `${site}-v01`,
    commandId: `c${e}`,
    setpointKw: 7,
    measuredKw: 3.2,
    deviationKw: -3.8,
    since: new Date().toISOString(),
  } as never;
}

// ------------------------------------------------------------------------ the floor

async function floor(broker: TestBroker, n: number, ackBytes: number, eventBytes: number) {
  const echoes: MqttClient[] = [];
  const ackPad = 'x'.repeat(Math.max(0, ackBytes - 60));
  for (let i = 0; i < SITES; i++) {
    const c = await connect(broker.url, `echo-${i}`);
    await c.subscribeAsync(siteTopic(prefix, siteId(i), 'schedule'), { qos: 1 });
    c.on('message', (topic, payload) => {
      const id = (JSON.parse(payload.toString()) as { scheduleId: string }).scheduleId;
      c.publish(
        `${topic}/ack`,
        JSON.stringify({
          requestId: id,
          status: 'accepted',
          pad: ackPad,
          at: new Date().toISOString(),
        }),
        { qos: 1 },
      );
    });
    echoes.push(c);
  }
  const central = await connect(broker.url, 'bare-central');
  let acks = 0;
  let events = 0;
  let lastEventAt = 0;
  central.on('message', (topic) => {
    if (topic.endsWith('/schedule/ack')) acks++;
    else {
      events++;
      lastEventAt = nowMs();
    }
  });
  await central.subscribeAsync(`${prefix}/+/schedule/ack`, { qos: 1 });
  await central.subscribeAsync(`${prefix}/+/events/#`, { qos: 1 });
  const schedules: number[] = [];
  for (let r = 0; r <= n; r++) {
    acks = 0;
    const t0 = nowMs();
    for (let i = 0; i < SITES; i++)
      central.publish(
        siteTopic(prefix, siteId(i), 'schedule'),
        JSON.stringify({
          scheduleId: `r${r}-${siteId(i)}`,
          schedule: schedule(r),
          sentAt: new Date().toISOString(),
        }),
        { qos: 1 },
      );
    await until(() => acks >= SITES, 'every bare ack', 60_000, 1);
    if (r > 0) schedules.push(nowMs() - t0);
    await sleep(200);
  }
  const eventsPerS: number[] = [];
  const body = 'y'.repeat(eventBytes);
  for (let r = 0; r <= n; r++) {
    events = 0;
    const t0 = nowMs();
    for (let i = 0; i < SITES; i++)
      for (let e = 0; e < EVENTS_PER_SITE; e++)
        echoes[i]?.publish(eventTopic(prefix, siteId(i), EventType.ASSET_DEVIATION), body, {
          qos: 1,
        });
    await until(() => events >= SITES * EVENTS_PER_SITE, 'every bare event', 60_000, 2);
    if (r > 0) eventsPerS.push((SITES * EVENTS_PER_SITE) / ((lastEventAt - t0) / 1000));
  }
  await Promise.all([central, ...echoes].map((c) => c.endAsync()));
  return { schedules, eventsPerS };
}

async function main(): Promise<void> {
  const bin = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto';
  const installed = fs.existsSync(bin);
  const kind = process.env.QE_MQTT_BROKER === 'aedes' || !installed ? 'aedes' : 'mosquitto';
  console.log(`fleet: ${machine()}`);
  console.log(
    `${SITES} sites x ${CHARGERS} chargers (simulated: an adapter that answers at once), one ${kind === 'mosquitto' ? 'mosquitto (max_queued_messages 0)' : 'aedes (in this process)'} broker, one central client; schedules of ${SLOTS} slots`,
  );
  const n = runs(5);
  const broker = kind === 'mosquitto' ? await benchMosquitto(bin) : await startBroker({ kind });
  try {
    const o = await ours(broker, n);
    await o.close();
    const eventBytes = Buffer.byteLength(
      JSON.stringify({
        type: EventType.ASSET_DEVIATION,
        payload: deviation(siteId(0), 0),
        timestamp: new Date().toISOString(),
        sequence: 1,
      }),
    );
    const f = await floor(broker, n, o.ackBytes, eventBytes);
    console.log(`100 schedules published -> last ack: ${fmt(o.schedules)}`);
    console.log(`  floor (bare MQTT.js, echo subscribers): ${fmt(f.schedules)}`);
    console.log(
      `  ratio ${(median(o.schedules) / median(f.schedules)).toFixed(2)}x the floor (target 1.5x)`,
    );
    console.log(
      `events through the broker to the central client: ${fmt(o.eventsPerS, 'events/s', 0)}`,
    );
    console.log(
      `  floor (bare MQTT.js publishes, same size and QoS): ${fmt(f.eventsPerS, 'events/s', 0)}`,
    );
    console.log(
      `  ratio ${(median(f.eventsPerS) / median(o.eventsPerS)).toFixed(2)}x the floor's time per event (target 1.5x)`,
    );
  } finally {
    await broker.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
