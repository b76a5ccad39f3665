/**
 * The fault campaign: Node-RED as a real process with `persist` on, a schedule of many short
 * slots for two simulated chargers (OCPP 1.6 and 2.0.1, reconnecting without BootNotification
 * as after a blip) and a simulated Modbus battery, and faults at seeded random points, one a
 * slot: kill -9 of Node-RED (started again at once), charger reboots (profiles forgotten),
 * network drops without reboot, battery restarts (setpoint back to 0). The devices record
 * what they received and held; `analysis.ts` counts lost and stale setpoints and the time
 * from each fault until the device holds the setpoint in force, and the test prints them.
 * The coordinator persists through its journal; its command events are logged, and a command
 * answered before a kill -9 and sent again after it counts as duplicated (analysis.ts).
 * It asserts: nothing lost while Node-RED is up, nothing stale, nothing duplicated, every
 * fault recovered.
 * QE_FAULT_SEED sets the seed (printed), QE_FAULT_KILLS the number of kill -9 (default 10).
 */
import should from 'should';
import { BatterySimulator } from '../../src/sim/battery';
import { ChargePointSimulator } from '../../src/sim/charge-point';
import { freePort, NodeRedProcess } from '../helpers/node-red-process';
import {
  analyse,
  type CommandEvent,
  duplicates,
  type Fault,
  type Held,
  type Interval,
  type Received,
  spread,
} from './analysis';

const SLOT_MS = 8000;
/** Nothing counts as lost unless Node-RED and the device were up this long before its end. */
const GRACE_MS = 5000;
/**
 * Between a send and its receipt: loopback, and on a busy machine the wait of either process
 * to be scheduled. A receipt later than this after its slot ended counts as stale.
 */
const TOLERANCE_MS = 250;
const KILLS = Number(process.env.QE_FAULT_KILLS ?? 10);
/** Marks a logged command event in Node-RED's output. */
const EVENT_MARK = 'QE-COMMAND-EVENT ';
const SEED = Number(process.env.QE_FAULT_SEED ?? Date.now() % 1_000_000);

/** A small seeded PRNG (mulberry32), so that a failing campaign can be run again. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

type FaultKind =
  | 'kill-9'
  | 'reboot CP001'
  | 'reboot CP002'
  | 'drop CP001'
  | 'drop CP002'
  | 'battery restart';

function flows(ocppPort: number, modbusPort: number): unknown[] {
  return [
    { id: 'tab', type: 'tab', label: 'fault campaign' },
    {
      id: 'coord',
      type: 'qe-coordinator',
      siteId: 'fault',
      commandTimeoutSeconds: 3,
      maxRetries: 5,
      retryBackoffFactor: 2,
      retryBaseSeconds: 0.5,
      retryMaxSeconds: 2,
      staleStateSeconds: 3,
      dispatchIntervalSeconds: 1,
      deadbandKw: 0.001,
      horizonEnd: 'hold',
      fallbackKw: '{}',
      persist: true,
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
      callTimeoutSeconds: 2,
      maxBadMessages: 5,
      authorize: 'accept',
    },
    {
      id: 'bus',
      type: 'qe-modbus-connection',
      transport: 'tcp',
      host: '127.0.0.1',
      port: modbusPort,
      timeoutMs: 500,
      queueLimit: 200,
    },
    { id: 'in', type: 'http in', z: 'tab', url: '/schedule', method: 'post', wires: [['sched']] },
    {
      id: 'sched',
      type: 'qe-schedule',
      z: 'tab',
      coordinator: 'coord',
      assetMap: JSON.stringify({
        ev_001: 'ast_ev_001',
        ev_002: 'ast_ev_002',
        battery: 'ast_batt_001',
      }),
      ratedKw: '{}',
      timeZone: 'UTC',
      ignoreUnmapped: false,
      wires: [['disp', 'reply']],
    },
    { id: 'reply', type: 'http response', z: 'tab', statusCode: '202', wires: [] },
    {
      // The command events, logged as they come out (Node-RED's log goes to its stdout, a
      // pipe: written synchronously, so what was logged before a kill -9 is read).
      id: 'events',
      type: 'qe-events',
      z: 'tab',
      coordinator: 'coord',
      eventTypes: ['COMMAND_DISPATCHED', 'COMMAND_ACKNOWLEDGED', 'COMMAND_COMPLETED'],
      assetFilter: '',
      wires: [['event-log'], ['event-log'], ['event-log']],
    },
    {
      // Its name must not be a node id: Node-RED would take it for a reference to that node.
      id: 'event-log',
      type: 'function',
      z: 'tab',
      name: 'command events',
      func: `node.log('${EVENT_MARK}' + JSON.stringify({ at: Date.now(), type: msg.topic, id: msg.payload.id, reapplyOf: msg.payload.reapplyOf })); return null;`,
      outputs: 0,
      wires: [],
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
        { identity: 'CP001', assetId: 'ast_ev_001', ratedKw: 22, connectorId: 1, unit: 'W' },
        { identity: 'CP002', assetId: 'ast_ev_002', ratedKw: 22, evseId: 1, unit: 'W' },
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
          assetId: 'ast_batt_001',
          unitId: 1,
          profile: 'generic',
          ratedChargeKw: 50,
          ratedDischargeKw: 50,
          pollSeconds: 1,
          watchdogSeconds: 0,
        },
      ],
      wires: [[], []],
    },
  ];
}

/** The limit (W) that a SetChargingProfile carries. */
function limitOf(params: unknown): number | null {
  const m = JSON.stringify(params).match(/"limit":([\d.]+)/);
  return m ? Number(m[1]) : null;
}

describe('fault campaign: Node-RED killed, chargers rebooted and dropped, battery restarted', function () {
  // One fault a slot from slot 1; the last slot has none, so that the last fault is over.
  const slotsCount = KILLS + 11;
  this.timeout(slotsCount * SLOT_MS + 120_000);
  let red: NodeRedProcess | null = null;
  const chargers: ChargePointSimulator[] = [];
  let battery: BatterySimulator | null = null;

  after(async () => {
    await Promise.all(chargers.map((c) => c.stop().catch(() => {})));
    await battery?.close();
    await red?.dispose();
  });

  it(`keeps every device on the setpoint in force (seed ${SEED}, ${KILLS} kill -9)`, async () => {
    const random = prng(SEED);
    const ocppPort = await freePort();
    const modbusPort = await freePort();
    red = new NodeRedProcess({ flows: flows(ocppPort, modbusPort) });
    const nodeRed = red;
    battery = new BatterySimulator({ port: modbusPort, unitIds: [1], tickMs: 0 });
    await battery.start();
    const sim = battery;
    const nodeRedUp: Interval[] = [];
    let upSince: number | null = null;
    const startRed = async () => {
      await nodeRed.start();
      upSince = Date.now();
    };
    await startRed();

    // Chargers: reconnect quickly, and resume without BootNotification (as after a blip).
    const ids = ['CP001', 'CP002'] as const;
    const connected: Record<string, Interval[]> = { CP001: [], CP002: [] };
    const since: Record<string, number | null> = { CP001: null, CP002: null };
    const received: Record<string, Received[]> = { CP001: [], CP002: [] };
    for (const [i, identity] of ids.entries()) {
      const cp = new ChargePointSimulator({
        endpoint: `ws://127.0.0.1:${ocppPort}/ocpp`,
        identity,
        protocol: i === 0 ? 'ocpp1.6' : 'ocpp2.0.1',
        evMaxKw: 22,
        meterIntervalMs: 0,
        bootOnReconnect: false,
        backoff: { initialDelay: 200, maxDelay: 1000, factor: 2, randomisationFactor: 0 },
      });
      cp.on('warning', () => {});
      cp.on('connected', () => {
        since[identity] = Date.now();
      });
      cp.on('disconnected', () => {
        const s = since[identity] ?? null;
        if (s !== null) connected[identity]?.push([s, Date.now()]);
        since[identity] = null;
      });
      cp.on('call', (method: string, params: unknown) => {
        const w = method === 'SetChargingProfile' ? limitOf(params) : null;
        if (w !== null) received[identity]?.push({ at: Date.now(), value: w });
      });
      chargers.push(cp);
      await cp.start();
      await cp.plugIn();
    }

    // The schedule: unique values per slot, so that a value names its slot.
    const t0 = Math.ceil((Date.now() + 3000) / 1000) * 1000;
    const slots = Array.from({ length: slotsCount }, (_, k) => ({
      start: t0 + k * SLOT_MS,
      end: t0 + (k + 1) * SLOT_MS,
      ev1: 5 + 0.5 * k,
      ev2: 16 - 0.5 * k,
      batt: (k % 2 === 0 ? 1 : -1) * (10 + k),
    }));
    const body = {
      columns: ['ev_001_kw', 'ev_002_kw', 'battery_charge_kw', 'battery_discharge_kw'],
      index: slots.map((s) => new Date(s.start).toISOString()),
      data: slots.map((s) => [s.ev1, s.ev2, Math.max(0, s.batt), Math.max(0, -s.batt)]),
    };
    const res = await fetch(`${nodeRed.base}/schedule`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    should(res.status).equal(202, nodeRed.tail());

    // One fault a slot (from slot 1), in a seeded order, at a seeded point of the slot.
    const kinds: FaultKind[] = [
      ...Array<FaultKind>(KILLS).fill('kill-9'),
      'reboot CP001',
      'reboot CP002',
      'reboot CP001',
      'drop CP001',
      'drop CP002',
      'drop CP002',
      'battery restart',
      'battery restart',
      'battery restart',
    ];
    for (let i = kinds.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [kinds[i], kinds[j]] = [kinds[j] as FaultKind, kinds[i] as FaultKind];
    }
    const faults: (Fault & { device: string })[] = [];
    const batteryUp: Interval[] = [];
    let batterySince = Date.now();
    for (const [n, kind] of kinds.entries()) {
      const slot = slots[n + 1];
      if (!slot) break;
      await sleep(slot.start + 300 + random() * (SLOT_MS - 600) - Date.now());
      const at = Date.now();
      if (kind === 'kill-9') {
        await nodeRed.kill('SIGKILL');
        if (upSince !== null) nodeRedUp.push([upSince, Date.now()]);
        upSince = null;
        await startRed();
        // Back when Node-RED runs and every device is connected to it again.
        const back = await Promise.race([
          (async () => {
            while (ids.some((id) => since[id] === null || (since[id] as number) < at))
              await sleep(20);
            return Date.now();
          })(),
          sleep(20_000).then(() => Date.now()),
        ]);
        faults.push({ kind, at, backAt: back, device: 'all' });
      } else if (kind.startsWith('reboot') || kind.startsWith('drop')) {
        const identity = kind.split(' ')[1] as string;
        const cp = chargers[ids.indexOf(identity as (typeof ids)[number])] as ChargePointSimulator;
        if (kind.startsWith('reboot')) await cp.reboot({ downMs: 500 });
        else await cp.dropConnection({ reconnectAfterMs: 1000 });
        while (since[identity] === null || (since[identity] as number) < at) await sleep(20);
        faults.push({ kind, at, backAt: since[identity] as number, device: identity });
      } else {
        batteryUp.push([batterySince, Date.now()]);
        await sim.restart({ downMs: 1000 });
        batterySince = Date.now();
        faults.push({ kind, at, backAt: batterySince, device: 'battery' });
      }
    }
    await sleep((slots.at(-1)?.end ?? 0) - Date.now());
    const end = Date.now();
    if (upSince !== null) nodeRedUp.push([upSince, end]);
    batteryUp.push([batterySince, end]);
    for (const id of ids) if (since[id] !== null) connected[id]?.push([since[id] as number, end]);

    // Both up: the intersections of Node-RED's and the device's intervals.
    const both = (a: Interval[], b: Interval[]): Interval[] =>
      a.flatMap(([a0, a1]) =>
        b
          .map(([b0, b1]): Interval => [Math.max(a0, b0), Math.min(a1, b1)])
          .filter(([x, y]) => x < y),
      );
    const report: string[] = [];
    const figures = [
      ...ids.map((id, i) => {
        const cp = chargers[i] as ChargePointSimulator;
        const key = i === 0 ? 'ev1' : 'ev2';
        return {
          device: id,
          ...analyse({
            slots: slots.map((s) => ({ start: s.start, end: s.end, value: s[key] * 1000 })),
            held: cp.limitHistory.map((h): Held => ({ at: h.at, value: h.limitW })),
            received: received[id] ?? [],
            up: both(nodeRedUp, connected[id] ?? []),
            faults: faults.filter((f) => f.device === id || f.device === 'all'),
            graceMs: GRACE_MS,
            toleranceMs: TOLERANCE_MS,
          }),
        };
      }),
      {
        device: 'battery',
        ...analyse({
          slots: slots.map((s) => ({ start: s.start, end: s.end, value: s.batt })),
          held: sim.setpointHistory(1).map((h): Held => ({ at: h.at, value: h.requestedKw })),
          // Writes of the setpoint register (int32 W at 100 in the generic map), not of the
          // mode register, which is written first and leaves the old setpoint in the history.
          received: sim
            .writes(1)
            .filter((w) => w.address === 100 && w.values.length === 2)
            .map(
              (w): Received => ({
                at: w.at,
                value: (((w.values[0] ?? 0) << 16) | (w.values[1] ?? 0)) / 1000,
              }),
            ),
          up: both(nodeRedUp, batteryUp),
          faults: faults.filter((f) => f.device === 'battery' || f.device === 'all'),
          graceMs: GRACE_MS,
          toleranceMs: TOLERANCE_MS,
        }),
      },
    ];
    report.push(
      `fault campaign, seed ${SEED}: ${slotsCount} slots of ${SLOT_MS / 1000} s, faults ${kinds.join(', ')}`,
    );
    for (const f of figures) {
      const byKind = new Map<string, (number | null)[]>();
      for (const r of f.recoveries) byKind.set(r.kind, [...(byKind.get(r.kind) ?? []), r.ms]);
      report.push(
        `  ${f.device}: lost ${f.lost.length} (slots ${f.lost.join(', ') || '-'}), stale ${f.stale.length}${
          f.stale.length
            ? ` (${f.stale.map((s) => `slot ${s.slot} +${s.lateMs} ms`).join(', ')})`
            : ''
        } (the latest receipt within the tolerance: +${f.latestMs} ms); held the setpoint in force again after`,
        ...[...byKind].map(([k, v]) => `    ${k}: ${spread(v)}`),
      );
      // Where a recovery took longer than the target: what happened around it.
      const where = (t: number) => {
        const k = slots.findIndex((s) => s.start <= t && t < s.end);
        return `slot ${k} +${((t - (slots[k]?.start ?? t)) / 1000).toFixed(2)} s`;
      };
      for (const r of f.recoveries.filter((x) => x.ms === null || x.ms > GRACE_MS)) {
        const from = r.at - 1000;
        const to = r.backAt + (r.ms ?? 20_000);
        const got = (f.device === 'battery' ? [] : (received[f.device] ?? []))
          .filter((x) => x.at >= from && x.at <= to)
          .map((x) => `${x.value} at ${where(x.at)}`);
        report.push(
          `    slow: ${r.kind} at ${where(r.at)}, back at ${where(r.backAt)}, held after ${r.ms} ms; received ${got.join(', ') || 'nothing'}`,
        );
      }
    }
    // Duplicates: answered before a kill -9, sent again after it (see analysis.ts).
    const events: CommandEvent[] = nodeRed.log
      .split('\n')
      .filter((l) => l.includes(EVENT_MARK))
      .map((l) => JSON.parse(l.slice(l.indexOf(EVENT_MARK) + EVENT_MARK.length)) as CommandEvent);
    const kills = faults.filter((f) => f.kind === 'kill-9').map((f) => f.at);
    const dups = duplicates(events, kills);
    const answered = new Set(events.filter((e) => e.type !== 'COMMAND_DISPATCHED').map((e) => e.id))
      .size;
    report.push(
      `  commands: ${new Set(events.map((e) => e.id)).size} sent, ${answered} answered, ${events.filter((e) => e.reapplyOf).length} re-apply sends; duplicated (answered before a kill -9, sent again after it) ${dups.length}${
        dups.length
          ? `: ${dups.map((d) => `${d.id} answered ${d.restartAt - d.answeredAt} ms before the kill`).join(', ')}`
          : ''
      }`,
    );
    console.log(report.join('\n'));
    should(answered).be.above(
      slotsCount,
      `too few answers logged to count duplicates\n${report.join('\n')}`,
    );
    should(dups).eql(
      [],
      `commands sent again after a restart although answered\n${report.join('\n')}`,
    );
    for (const f of figures) {
      should(f.lost).eql([], `${f.device}: slots lost while Node-RED was up\n${report.join('\n')}`);
      should(f.stale).eql([], `${f.device}: stale setpoints\n${report.join('\n')}`);
      should(f.recoveries.filter((r) => r.ms === null)).eql(
        [],
        `${f.device}: faults never recovered from\n${report.join('\n')}`,
      );
    }
  });
});
