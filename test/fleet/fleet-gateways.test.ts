/**
 * A fleet end to end (issue 15): three Node-RED gateways as real processes, each a site with
 * a qe-coordinator, two simulated OCPP chargers (src/sim/charge-point.ts) and a simulated
 * Modbus battery (src/sim/battery.ts), steered by qe-fleet-broker + qe-fleet -> qe-dispatcher
 * -> qe-ocpp / qe-modbus; one broker (aedes in `npm test`, Mosquitto in .ci/run's pass 3:
 * QE_MQTT_BROKER) and a FleetCentral in this process. Checked, in order: schedules to all
 * three are acknowledged `accepted` and reach the devices; a bad one is `rejected` with its
 * error; the same schedule id again is `duplicate` and nothing is dispatched again; the broker
 * stopped for 30 s: dispatch goes on (a slot boundary inside the outage reaches the devices
 * while the broker is down), the retained presence and asset states are there again after,
 * and the events of the outage reach the central client after; a gateway killed -9: its last
 * will says `offline` at once (its socket closes); a gateway frozen (SIGSTOP, its socket open
 * and silent): within 1.5x its keep-alive (5 s) and a margin. The gateways reach the broker
 * through a TCP relay of the test, so that after the outage the central client is subscribed
 * before they are back (see there). Every process it started is stopped in `after`.
 */
import mqtt, { type MqttClient } from 'mqtt';
import should from 'should';
import { FleetCentral } from '../../src/fleet/central';
import type { Ack, AssetStatus, FleetEvent, Presence } from '../../src/fleet/contract';
import { BatterySimulator } from '../../src/sim/battery';
import { ChargePointSimulator } from '../../src/sim/charge-point';
import { brokerKind, startBroker, type TestBroker } from '../helpers/mqtt-broker';
import { freePort, NodeRedProcess } from '../helpers/node-red-process';
import { relay } from '../helpers/tcp-relay';

const KEEPALIVE_S = 5;
const OUTAGE_MS = 30_000;
const SITES = ['north', 'south', 'west'] as const;
type SiteName = (typeof SITES)[number];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function until(cond: () => boolean, what: string, ms: number, log = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}\n${log()}`);
    await sleep(50);
  }
}

function flows(
  site: string,
  brokerUrl: string,
  mqttVersion: '4' | '5',
  ocppPort: number,
  modbusPort: number,
): unknown[] {
  return [
    { id: 'tab', type: 'tab', label: `fleet site ${site}` },
    {
      id: 'coord',
      type: 'qe-coordinator',
      siteId: site,
      commandTimeoutSeconds: 5,
      maxRetries: 3,
      retryBackoffFactor: 2,
      retryBaseSeconds: 0.5,
      retryMaxSeconds: 2,
      staleStateSeconds: 60,
      dispatchIntervalSeconds: 1,
      deadbandKw: 0.001,
      horizonEnd: 'hold',
      fallbackKw: '{}',
      persist: false,
    },
    {
      id: 'broker',
      type: 'qe-fleet-broker',
      url: brokerUrl,
      clientId: '',
      protocolVersion: mqttVersion,
      keepalive: KEEPALIVE_S,
      prefix: 'qe/v1',
    },
    {
      id: 'central',
      type: 'qe-ocpp-server',
      mode: 'port',
      host: '127.0.0.1',
      port: ocppPort,
      path: '/ocpp',
      protocols: 'both',
      security: 'none',
      allowUnknown: false,
      heartbeatSeconds: 300,
      callTimeoutSeconds: 3,
      maxBadMessages: 5,
      authorize: 'accept',
    },
    {
      id: 'bus',
      type: 'qe-modbus-connection',
      transport: 'tcp',
      host: '127.0.0.1',
      port: modbusPort,
      timeoutMs: 1000,
      queueLimit: 200,
    },
    {
      id: 'fleet',
      type: 'qe-fleet',
      z: 'tab',
      coordinator: 'coord',
      broker: 'broker',
      assetMap: JSON.stringify({ v1: 'ev1', v2: 'ev2', battery: 'bess' }),
      ratedKw: '{}',
      timeZone: 'UTC',
      ignoreUnmapped: false,
      eventTypes: ['COMMAND_CREATED', 'COMMAND_DISPATCHED', 'COMMAND_COMPLETED'],
      wires: [['disp'], []],
    },
    {
      id: 'disp',
      type: 'qe-dispatcher',
      z: 'tab',
      coordinator: 'coord',
      wires: [['ocpp', 'modbus']],
    },
    {
      id: 'ocpp',
      type: 'qe-ocpp',
      z: 'tab',
      coordinator: 'coord',
      server: 'central',
      chargers: [
        { identity: `${site}-cp1`, assetId: 'ev1', ratedKw: 11, connectorId: 1, unit: 'W' },
        { identity: `${site}-cp2`, assetId: 'ev2', ratedKw: 11, evseId: 1, unit: 'W' },
      ],
      wires: [[], []],
    },
    {
      id: 'modbus',
      type: 'qe-modbus',
      z: 'tab',
      coordinator: 'coord',
      connection: 'bus',
      batteries: [
        {
          assetId: 'bess',
          unitId: 1,
          profile: 'generic',
          ratedChargeKw: 30,
          ratedDischargeKw: 30,
          pollSeconds: 1,
        },
      ],
      wires: [[], []],
    },
  ];
}

/** A split-JSON schedule: rows of [ev1, ev2, battery] kW from each time in `at`. */
function split(at: number[], rows: [number, number, number][]) {
  return {
    columns: ['ev_v1_kw', 'ev_v2_kw', 'battery_charge_kw', 'battery_discharge_kw'],
    index: at.map((t) => new Date(t).toISOString()),
    data: rows.map(([a, b, c]) => [a, b, c, 0]),
  };
}

interface Gateway {
  red: NodeRedProcess;
  chargers: [ChargePointSimulator, ChargePointSimulator];
  battery: BatterySimulator;
}

describe('fleet end to end: three Node-RED gateways, one broker, a central client', function () {
  this.timeout(180_000);
  let broker: TestBroker;
  let central: FleetCentral;
  let centralClient: MqttClient;
  let front: Awaited<ReturnType<typeof relay>>;
  const gw = {} as Record<SiteName, Gateway>;
  const events: { siteId: string; event: FleetEvent; receivedAt: number }[] = [];
  const presence: { siteId: string; presence: Presence; receivedAt: number }[] = [];
  const logs = () => SITES.map((s) => `--- ${s}\n${gw[s]?.red.tail(15) ?? ''}`).join('\n');

  /** What the devices of a site hold now: charger limits in kW, the battery's setpoint. */
  const held = (s: SiteName) => {
    const g = gw[s];
    const now = Date.now();
    return [
      (g.chargers[0].limitAt(now) ?? Number.NaN) / 1000,
      (g.chargers[1].limitAt(now) ?? Number.NaN) / 1000,
      g.battery.state(1).requestedKw,
    ];
  };
  const holdsAll = (kw: number[]) => () => SITES.every((s) => held(s).join() === kw.join());

  before(async () => {
    broker = await startBroker();
    front = await relay(() => broker.port);
    await Promise.all(
      SITES.map(async (s, i) => {
        const ocppPort = await freePort();
        const modbusPort = await freePort();
        const battery = new BatterySimulator({ port: modbusPort, unitIds: [1], tickMs: 0 });
        await battery.start();
        const red = new NodeRedProcess({
          // aedes speaks MQTT 3.1.1 only; on Mosquitto the first site uses MQTT 5.
          flows: flows(
            s,
            `mqtt://127.0.0.1:${front.port}`,
            i === 0 && brokerKind() === 'mosquitto' ? '5' : '4',
            ocppPort,
            modbusPort,
          ),
        });
        const mk = (n: 1 | 2) => {
          const cp = new ChargePointSimulator({
            endpoint: `ws://127.0.0.1:${ocppPort}/ocpp`,
            identity: `${s}-cp${n}`,
            protocol: n === 1 ? 'ocpp1.6' : 'ocpp2.0.1',
            evMaxKw: 11,
            phases: 3,
            meterIntervalMs: 0,
            backoff: { initialDelay: 200, maxDelay: 1000, factor: 2, randomisationFactor: 0 },
          });
          cp.on('warning', () => {});
          return cp;
        };
        gw[s] = { red, chargers: [mk(1), mk(2)], battery };
        await red.start();
        await Promise.all(gw[s].chargers.map((c) => c.start()));
      }),
    );
    centralClient = mqtt.connect(broker.url, { reconnectPeriod: 200 });
    central = new FleetCentral({ client: centralClient });
    central.on('event', (siteId, event) => events.push({ siteId, event, receivedAt: Date.now() }));
    central.on('presence', (siteId, p) =>
      presence.push({ siteId, presence: p, receivedAt: Date.now() }),
    );
    await central.start();
    await until(
      () => SITES.every((s) => central.sites().get(s)?.status === 'online'),
      'the three gateways online at the central client',
      30_000,
      logs,
    );
  });

  after(async () => {
    await central?.stop().catch(() => {});
    await centralClient?.endAsync(true);
    await Promise.all(
      SITES.map(async (s) => {
        const g = gw[s];
        if (!g) return;
        await Promise.all(g.chargers.map((c) => c.stop().catch(() => {})));
        await g.battery.close().catch(() => {});
        await g.red.dispose();
      }),
    );
    await front?.close();
    await broker?.stop();
  });

  const hour = 3_600_000;
  const firstId = (s: string) => `day-1-${s}`;

  it('schedules to all three: acknowledged `accepted`, and the devices get their setpoints', async () => {
    const t0 = Date.now() - 1000;
    const acks = await Promise.all(
      SITES.map((s) =>
        central.publishSchedule(
          s,
          split(
            [t0, t0 + hour],
            [
              [7, 6, 5],
              [7, 6, 5],
            ],
          ),
          {
            scheduleId: firstId(s),
            timeoutMs: 10_000,
          },
        ),
      ),
    );
    for (const [i, a] of acks.entries()) {
      should(a.status).equal('accepted', JSON.stringify(a));
      should(a.requestId).equal(firstId(SITES[i] as string));
    }
    await until(
      holdsAll([7, 6, 5]),
      'every site holds 7 / 6 / 5 kW',
      20_000,
      () => `${SITES.map((s) => held(s).join('/')).join(' ')}\n${logs()}`,
    );
  });

  it('a bad schedule: `rejected`, with the row and column in its error; the devices keep theirs', async () => {
    const t0 = Date.now() - 1000;
    const ack: Ack = await central.publishSchedule(
      'north',
      split(
        [t0, t0 + hour],
        [
          [7, -5, 5],
          [7, 6, 5],
        ],
      ),
      {
        scheduleId: 'bad-1',
        timeoutMs: 10_000,
      },
    );
    should(ack.status).equal('rejected');
    should(ack.requestId).equal('bad-1');
    should(ack.error?.message).match(/row 0 .*ev_v2_kw.*-5 kW is negative/);
    await sleep(1500);
    should(held('north')).eql([7, 6, 5]);
  });

  it('the same schedule id again: `duplicate`, and nothing is made or dispatched again', async () => {
    const created = () =>
      events.filter((e) => e.siteId === 'south' && e.event.type === 'COMMAND_CREATED').length;
    const limits = () => gw.south.chargers.map((c) => c.limitHistory.length);
    const writes = () => gw.south.battery.setpointHistory(1).length;
    const before = { created: created(), limits: limits(), writes: writes() };
    should(before.created).be.above(0);
    const t0 = Date.now() - 1000;
    const ack = await central.publishSchedule(
      'south',
      split(
        [t0, t0 + hour],
        [
          [1, 1, 1],
          [1, 1, 1],
        ],
      ),
      {
        scheduleId: firstId('south'),
        timeoutMs: 10_000,
      },
    );
    should(ack.status).equal('duplicate');
    should(ack.requestId).equal(firstId('south'));
    await sleep(3000);
    should({ created: created(), limits: limits(), writes: writes() }).eql(before);
    should(held('south')).eql([7, 6, 5]);
  });

  it('the broker down for 30 s: dispatch goes on, retained states and buffered events come after', async () => {
    const t0 = Date.now() - 1000;
    const boundary = Date.now() + 12_000;
    const acks = await Promise.all(
      SITES.map((s) =>
        central.publishSchedule(
          s,
          split(
            [t0, boundary, boundary + hour],
            [
              [8, 8, 4],
              [4, 3, 2],
              [4, 3, 2],
            ],
          ),
          { scheduleId: `outage-${s}`, timeoutMs: 10_000 },
        ),
      ),
    );
    should(acks.map((a) => a.status)).eql(['accepted', 'accepted', 'accepted']);
    await until(holdsAll([8, 8, 4]), 'every site holds 8 / 8 / 4 kW', 8_000, logs);
    const stoppedAt = Date.now();
    front.open = false;
    await broker.stop();
    // The slot boundary falls inside the outage, with time to spare either side.
    should(boundary).be.above(stoppedAt + 2000);
    should(boundary).be.below(stoppedAt + OUTAGE_MS - 10_000);
    await until(
      holdsAll([4, 3, 2]),
      'the new slot at every site while the broker is down',
      OUTAGE_MS - 8000,
      () => SITES.map((s) => held(s).join('/')).join(' '),
    );
    const dispatchedAt = Date.now();
    should(dispatchedAt).be.below(stoppedAt + OUTAGE_MS);
    await sleep(stoppedAt + OUTAGE_MS - Date.now());
    const restartedAt = Date.now();
    await broker.start();
    // The central client subscribes again before the gateways can come back (the relay opens
    // once it has): MQTT hands a QoS 1 message only to the subscriptions that exist when it
    // is published, and a broker restarted without persistence has none. Subscriptions are
    // answered in order: once this probe's is, the central's of its reconnect is too.
    await until(() => centralClient.connected, 'the central client connected again', 10_000);
    await centralClient.subscribeAsync('qe/v1/_probe', { qos: 1 });
    front.open = true;

    // A new subscriber sees the retained presence and asset states: republished on reconnect.
    const retained = new Map<string, unknown>();
    const probe = mqtt.connect(broker.url, { reconnectPeriod: 0 });
    try {
      probe.on('message', (topic, payload, packet) => {
        if (packet.retain) retained.set(topic, JSON.parse(payload.toString()));
      });
      await new Promise<void>((resolve, reject) => {
        probe.once('connect', () => resolve());
        probe.once('error', reject);
      });
      const want = SITES.flatMap((s) =>
        ['ev1', 'ev2', 'bess'].map((a) => `qe/v1/${s}/assets/${a}`),
      );
      const fresh = () =>
        want.every((t) => {
          const a = retained.get(t) as AssetStatus | undefined;
          return a?.setpoint !== null && a?.setpoint !== undefined && Date.parse(a.at) >= stoppedAt;
        }) &&
        SITES.every(
          (s) => (retained.get(`qe/v1/${s}/presence`) as Presence | undefined)?.status === 'online',
        );
      const deadline = Date.now() + 20_000;
      while (!fresh() && Date.now() < deadline) {
        // Subscribing again gets the retained messages as they are now.
        retained.clear();
        await probe.subscribeAsync(['qe/v1/+/assets/+', 'qe/v1/+/presence'], { qos: 1 });
        await sleep(500);
        await probe.unsubscribeAsync(['qe/v1/+/assets/+', 'qe/v1/+/presence']);
      }
      should(fresh()).be.true(
        `retained after the restart: ${JSON.stringify([...retained.entries()])}`,
      );
      for (const s of SITES) {
        const kw = ['ev1', 'ev2', 'bess'].map(
          (a) => (retained.get(`qe/v1/${s}/assets/${a}`) as AssetStatus).setpoint?.kw,
        );
        should(kw).eql([4, 3, 2]);
      }
    } finally {
      await probe.endAsync();
    }

    // The events of the outage (the new slot's commands dispatched and completed) arrive after.
    await until(
      () =>
        SITES.every((s) =>
          events.some(
            (e) =>
              e.siteId === s &&
              e.event.type === 'COMMAND_COMPLETED' &&
              Date.parse(e.event.timestamp) > stoppedAt &&
              Date.parse(e.event.timestamp) < restartedAt &&
              e.receivedAt >= restartedAt,
          ),
        ),
      'events of the outage at the central client, from every site',
      20_000,
      logs,
    );
    console.log(
      `      broker down ${((restartedAt - stoppedAt) / 1000).toFixed(1)} s; new slot at every device ${((dispatchedAt - boundary) / 1000).toFixed(1)} s after its start, broker still down; ${events.filter((e) => Date.parse(e.event.timestamp) > stoppedAt && Date.parse(e.event.timestamp) < restartedAt).length} events of the outage delivered after`,
    );
  });

  it('a gateway killed -9: its last will says `offline` at once (its socket closes)', async () => {
    const from = presence.length;
    await gw.west.red.kill('SIGKILL');
    const killedAt = Date.now();
    const bound = 1.5 * KEEPALIVE_S * 1000 + 3000;
    await until(
      () =>
        presence.slice(from).some((p) => p.siteId === 'west' && p.presence.status === 'offline'),
      `west offline at the central client within ${bound} ms`,
      bound,
    );
    const at = presence.slice(from).find((p) => p.siteId === 'west')?.receivedAt ?? 0;
    console.log(`      last will of the gateway killed -9 after ${at - killedAt} ms`);
  });

  it('a gateway frozen (SIGSTOP: its socket stays open, silent): offline within 1.5x its keep-alive', async () => {
    const from = presence.length;
    const pid = gw.south.red.pid as number;
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    try {
      // The broker closes a silent client 1.5x its keep-alive (7.5 s) after its last packet and
      // publishes its will; as much again of margin for the broker's own timer and a busy
      // machine (seen: aedes 6.8-7.3 s, Mosquitto 2.0.11 10.1-10.7 s after the freeze).
      const bound = 2 * 1.5 * KEEPALIVE_S * 1000;
      await until(
        () =>
          presence.slice(from).some((p) => p.siteId === 'south' && p.presence.status === 'offline'),
        `south offline at the central client within ${bound} ms`,
        bound,
      );
      const at = presence.slice(from).find((p) => p.siteId === 'south')?.receivedAt ?? 0;
      console.log(
        `      last will of the frozen gateway after ${at - stoppedAt} ms (keep-alive ${KEEPALIVE_S} s)`,
      );
      // The third one stays online.
      should(
        [...central.sites().values()].filter((p) => p.status === 'online').map((p) => p.siteId),
      ).eql(['north']);
    } finally {
      await gw.south.red.kill('SIGKILL'); // a stopped process takes SIGKILL; `after` cleans up
    }
  });
});
