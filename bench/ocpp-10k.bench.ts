/**
 * 10,000 chargers (issue 17): simulated OCPP 1.6 chargers (bench/fleet-sims.ts, in child
 * processes) on ONE central system: ours is qe-ocpp-server + qe-ocpp in Node-RED (a Site in
 * qe-coordinator, qe-dispatcher -> qe-ocpp, every charger with a failsafe share, so each holds
 * the station maximum profile and has it refreshed); the floor is a bare ocpp-rpc RPCServer
 * (strict mode, as ours) answering the same chargers, with no package code but the params of
 * the setpoint calls (commandToCall). For each way of connecting (a ramp: `batch:<k>`, k at
 * a time; `burst`, all at once as after a site's power cut; `rate:<r>`, r a second) it prints:
 *
 *   connect  the first handshake until the central side has every connection
 *   boot     the first handshake until every BootNotification was accepted (charger side)
 *   update   at a slot boundary, a setpoint to every charger: the slot start until the last
 *            SetChargingProfile is answered (median of BENCH_RUNS boundaries)
 *   memory   the central process's heap and rss above its idle baseline (after gc), per charger
 *   stall    the event loop's longest delay (perf_hooks monitorEventLoopDelay), while the
 *            fleet connects and boots, over the boundaries (the registration of the commands
 *            2 s before each included), and from each slot start to its last answer
 *   CPU      of the central process per setpoint, also above its idle background (measured
 *            3 s with every charger connected and nothing sent: ours' failsafe refreshes,
 *            heartbeats, pings); and of the simulator processes (/proc), which share the
 *            machine's 2 cores with it
 *
 * beside the floor and the targets (update within 2 s of the slot start and 1.5x the floor;
 * under 50 KB per charger).
 *
 *   node --expose-gc --import tsx bench/ocpp-10k.bench.ts [count] [ramp...]
 *     (default 10000 batch:100; e.g. `10000 burst rate:1000` for a site's reboot, all at once
 *     and paced; BENCH_RUNS boundaries, default 3; BENCH_SIM_PROCS simulator processes,
 *     default 2; BENCH_SIM_NICE=<n> their nice level (they yield the cores to the central
 *     process, as remote chargers would); BENCH_PROFILE=<prefix> writes a CPU profile of the boundaries alone,
 *     `<prefix>-ours.cpuprofile` / `-floor` (BENCH_PROFILE_IDLE=<prefix>: of the idle 3 s,
 *     `<prefix>-idle-<side>.cpuprofile`); BENCH_MODE=path serves ours on a path of Node-RED's
 *     own HTTP server instead of its own port; BENCH_GAPS=<prefix> the event loop's long turns
 *     over the boundaries with the main thread's CPU and the GCs in them, `<prefix>-<side>.json`;
 *     BENCH_SEND_SLICE_MS=8,inf the central system's sendSliceMs per boundary, alternating)
 *
 * File descriptors: one per charger on each side; the simulators are split over processes
 * (a process's limit is `ulimit -n`, 20,000 here) and the central process needs `count` plus
 * a few hundred. Everything binds to 127.0.0.1 (ephemeral ports are enough for 10k), every
 * wait is bounded, the children are killed by pid at the end (also on error), and the whole
 * run has a deadline. Prints figures; passes or fails nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import { RPCServer } from 'ocpp-rpc';
import type { CentralSystem, ChargerEvent } from '../src/adapters/ocpp/central-system';
import { SendPacer } from '../src/adapters/ocpp/send-pacer';
import { commandToCall } from '../src/adapters/ocpp/translate';
import { DispatchEngine } from '../src/engine';
import type { Site } from '../src/site';
import { killChildren, startFleet, stopFleet } from './fleet-procs';
import {
  COORDINATOR,
  deadline,
  fmt,
  helper,
  loadFlow,
  loadNodes,
  machine,
  median,
  nowMs,
  ocppServer,
  ratio,
  runBenchmark,
  runs,
  sleep,
  startServer,
  stopServer,
  until,
} from './lib';
import { type Stall, stallFrom, stallMeter, turnProbe } from './turn-probe';

const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 10_000);
const RAMPS = args.filter((a) => !/^\d+$/.test(a));
const ramps = RAMPS.length > 0 ? RAMPS : ['batch:100'];
const RUNS = runs(3);
const PROCS = Math.max(1, Number(process.env.BENCH_SIM_PROCS) || 2);
const RATED_KW = 22;
const FAILSAFE_KW = 4;
const LEAD_MS = 2000; // the boundary is this far after the submit
const BOOT_TIMEOUT_MS = 300_000;
const TARGET_UPDATE_MS = 2000;
const TARGET_RATIO = 1.5;
const TARGET_KB = 50;
/** How long the background CPU is measured, all connected and nothing sent, ms. */
const IDLE_MS = 3000;
/**
 * When our setpoint counts: `accepted` (SetChargingProfile answered, as the floor's) or
 * `confirmed` (the default of qe-ocpp: also read back with GetCompositeSchedule).
 */
const CONFIRM = process.env.BENCH_CONFIRM === 'confirmed' ? 'confirmed' : 'accepted';
/** BENCH_SIDES=ours (or floor) runs one side alone, e.g. under a profiler. */
const SIDES = (process.env.BENCH_SIDES ?? 'floor,ours').split(',');
const skipped: Result = {
  connectMs: Number.NaN,
  bootMs: Number.NaN,
  retries: Number.NaN,
  connectStallMs: Number.NaN,
  connectCpuUs: Number.NaN,
  updateMs: [Number.NaN],
  updateCpuUs: [Number.NaN],
  idleCpuPct: Number.NaN,
  netCpuUs: [Number.NaN],
  simCpuUs: [Number.NaN],
  updateStallMs: Number.NaN,
  boundaryStallMs: [Number.NaN],
  boundaryStallCpuMs: [Number.NaN],
  boundaryStallWaitMs: [Number.NaN],
  heapKb: Number.NaN,
  rssKb: Number.NaN,
};

const identity = (i: number) => `CP${String(i + 1).padStart(5, '0')}`;

// ------------------------------------------------------------ measuring

function mem(): { heap: number; rss: number } {
  const g = (globalThis as { gc?: () => void }).gc;
  g?.();
  g?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** CPU time (user + system) of other processes, ms, from /proc (clock ticks of 10 ms). */
function procsCpuMs(pids: (number | undefined)[]): number {
  let ticks = 0;
  for (const pid of pids) {
    if (pid === undefined) continue;
    try {
      // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks * 10;
}

interface Result {
  connectMs: number;
  bootMs: number;
  /** Connection attempts the chargers tried again (refused or reset under the burst). */
  retries: number;
  connectStallMs: number;
  /** CPU time of the central process (user + system) per charger, connecting and booting. */
  connectCpuUs: number;
  updateMs: number[];
  /** CPU time of the central process per setpoint, from the submit to the last answer. */
  updateCpuUs: number[];
  /** CPU of the central process with every charger connected and nothing sent, % of a core. */
  idleCpuPct: number;
  /** CPU per setpoint above that background. */
  netCpuUs: number[];
  /** CPU time of the simulator processes per setpoint (all of them, per boundary). */
  simCpuUs: number[];
  updateStallMs: number;
  /** The longest stall of each boundary from its slot start to its last answer, ms. */
  boundaryStallMs: number[];
  /** In each boundary's longest gap: the main thread's CPU, and its wait for a core, ms. */
  boundaryStallCpuMs: number[];
  boundaryStallWaitMs: number[];
  heapKb: number;
  rssKb: number;
}

/**
 * BENCH_PROFILE=<file prefix>: a CPU profile of the central process over the boundaries only
 * (node:inspector), written to `<prefix>-<side>.cpuprofile`. Returns the function that stops
 * and writes it.
 */
async function profileBoundaries(
  side: string,
  prefix = process.env.BENCH_PROFILE,
): Promise<() => Promise<void>> {
  if (!prefix) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(`${prefix}-${side}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  };
}

/** The slot starts of the boundaries (epoch ms), for BENCH_GAPS. */
const slotStarts: number[] = [];

/** BENCH_GAPS=<prefix>: the long turns over the boundaries (bench/turn-probe.ts). */
function gapProbe(side: string): () => void {
  const prefix = process.env.BENCH_GAPS;
  if (!prefix) return () => {};
  return turnProbe(`${prefix}-${side}.json`, () => ({ slotStarts, slices: sliceOf }));
}

/** BENCH_MODE=path: ours serves the chargers on a path of Node-RED's HTTP server. */
const MODE = process.env.BENCH_MODE === 'path' ? 'path' : 'port';

/**
 * BENCH_SEND_SLICE_MS=<ms>[,<ms>...]: the central system's `sendSliceMs` (send-pacer.ts) at
 * boundary r is the r-th of the list, round and round (`inf`: no pacing), so that variants
 * alternate within one run; unset, the node's default.
 */
const SEND_SLICES = (process.env.BENCH_SEND_SLICE_MS ?? '')
  .split(',')
  .filter((x) => x !== '')
  .map((x) => (x === 'inf' ? Number.POSITIVE_INFINITY : Number(x)));
const sliceOf: number[] = [];

/** Connects the fleet; `connected()` is the central side's count. Then the boundaries. */
async function measure(
  side: string,
  url: string,
  ramp: string,
  connected: () => number,
  ready: () => Promise<void>,
  boundary: (r: number) => Promise<{ ms: number; stall: Stall }>,
): Promise<Result> {
  await sleep(300);
  const idle = mem();
  const connectStall = stallMeter();
  const cpu0 = cpuMs();
  let allConnectedAt = 0;
  const watch = setInterval(() => {
    if (allConnectedAt === 0 && connected() === N) allConnectedAt = Date.now();
  }, 5);
  const trace = process.env.BENCH_TRACE
    ? setInterval(
        () => console.error(`  ${new Date().toISOString()} connected ${connected()}`),
        1000,
      )
    : undefined;
  const fleet = await startFleet(url, N, ramp, PROCS, BOOT_TIMEOUT_MS);
  try {
    await until(() => allConnectedAt > 0, 'every charger connected', 30_000, 20);
    clearInterval(watch);
    clearInterval(trace);
    await ready();
    const connectStallMs = connectStall();
    const connectCpuUs = ((cpuMs() - cpu0) / N) * 1000;
    await sleep(500);
    const loaded = mem();
    // The background with every charger connected and no setpoint (ours: the failsafe
    // refreshes, both: heartbeats and pings), CPU ms per ms, to tell a setpoint's own cost.
    const i0 = cpuMs();
    const w0 = nowMs();
    const stopIdleProfile = await profileBoundaries(`idle-${side}`, process.env.BENCH_PROFILE_IDLE);
    await sleep(IDLE_MS);
    await stopIdleProfile();
    const idleCpu = (cpuMs() - i0) / (nowMs() - w0);
    const updateStall = stallMeter();
    const updateMs: number[] = [];
    const updateCpuUs: number[] = [];
    const boundaryStallMs: number[] = [];
    const boundaryStallCpuMs: number[] = [];
    const boundaryStallWaitMs: number[] = [];
    const stopProfile = await profileBoundaries(side);
    const stopGaps = gapProbe(side);
    const netCpuUs: number[] = [];
    const simPids = fleet.procs.map((p) => p.pid);
    const simCpuUs: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const c0 = cpuMs();
      const s0 = procsCpuMs(simPids);
      const t0 = nowMs();
      const b = await boundary(r);
      simCpuUs.push(((procsCpuMs(simPids) - s0) / N) * 1000);
      updateMs.push(b.ms);
      boundaryStallMs.push(b.stall.stallMs);
      boundaryStallCpuMs.push(b.stall.cpuMs);
      boundaryStallWaitMs.push(b.stall.waitMs);
      const used = cpuMs() - c0;
      updateCpuUs.push((used / N) * 1000);
      netCpuUs.push(((used - idleCpu * (nowMs() - t0)) / N) * 1000);
      console.log(
        `  (${side} boundary ${r}${side === 'ours' && SEND_SLICES.length > 0 ? `, sendSliceMs ${sliceOf[r]}` : ''}: update ${ms(b.ms)}, stall from the slot start ${ms(b.stall.stallMs)} (the main thread ran ${ms(b.stall.cpuMs)} of it, waited for a core ${ms(b.stall.waitMs)}), CPU per setpoint ${us(updateCpuUs[r] as number)}, above the idle ${us(netCpuUs[r] as number)}, the simulators ${us(simCpuUs[r] as number)})`,
      );
      await sleep(500);
    }
    await stopProfile();
    stopGaps();
    return {
      connectMs: allConnectedAt - fleet.connectingAt,
      bootMs: fleet.bootedAt - fleet.connectingAt,
      retries: fleet.retries,
      connectStallMs,
      connectCpuUs,
      updateMs,
      updateCpuUs,
      idleCpuPct: idleCpu * 100,
      netCpuUs,
      simCpuUs,
      updateStallMs: updateStall(),
      boundaryStallMs,
      boundaryStallCpuMs,
      boundaryStallWaitMs,
      heapKb: (loaded.heap - idle.heap) / N / 1024,
      rssKb: (loaded.rss - idle.rss) / N / 1024,
    };
  } finally {
    clearInterval(watch);
    clearInterval(trace);
    await stopFleet(fleet);
  }
}

// ------------------------------------------------------------ ours: Node-RED

async function ours(ramp: string): Promise<Result> {
  const chargers = Array.from({ length: N }, (_, i) => ({
    identity: identity(i),
    assetId: `ev${i}`,
    ratedKw: RATED_KW,
    failsafeKw: FAILSAFE_KW,
    confirm: CONFIRM,
  }));
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    ocppServer({ mode: MODE, callTimeoutSeconds: 60 }),
    { id: 'disp', type: 'qe-dispatcher', z: 'f1', coordinator: 'coord', wires: [['ocpp']] },
    {
      id: 'ocpp',
      type: 'qe-ocpp',
      z: 'f1',
      coordinator: 'coord',
      server: 'srv',
      chargers,
      wires: [['results'], []],
    },
    { id: 'results', type: 'helper', z: 'f1' },
  ];
  await loadFlow(loadNodes('qe-coordinator', 'qe-dispatcher', 'qe-ocpp-server', 'qe-ocpp'), flow);
  const srv = helper.getNode('srv') as unknown as {
    ready: Promise<void>;
    port: number | null;
    central: CentralSystem;
  };
  await srv.ready;
  if (MODE === 'port' && srv.port === null) throw new Error('the OCPP server did not start');
  // On a path of Node-RED's own HTTP server (the test helper's) or on the node's own port.
  const base = MODE === 'path' ? helper.url().replace(/^http/, 'ws') : `ws://127.0.0.1:${srv.port}`;
  const site = (helper.getNode('coord') as unknown as { site: Site }).site;
  let connected = 0;
  srv.central.on('charger', (e: ChargerEvent) => {
    if (e.type === 'connected') connected++;
    else if (e.type === 'disconnected') connected--;
  });
  let results = 0;
  let failures = 0;
  let lastAt = 0;
  helper.getNode('results').on('input', (msg: Record<string, unknown>) => {
    results++;
    if (!(msg.payload as { success: boolean }).success) failures++;
    lastAt = nowMs();
  });
  try {
    return await measure(
      'ours',
      `${base}/ocpp`,
      ramp,
      () => connected,
      // Every charger AVAILABLE: the re-apply after the boot has asked its status.
      () =>
        until(
          () =>
            chargers.every((c) => site.getStateMachine(c.assetId)?.currentState === 'AVAILABLE'),
          'every charger AVAILABLE',
          60_000,
          100,
        ),
      async (r) => {
        const before = results;
        const at = Date.now() + LEAD_MS;
        slotStarts.push(at);
        if (SEND_SLICES.length > 0) {
          const ms = SEND_SLICES[r % SEND_SLICES.length] as number;
          sliceOf.push(ms);
          // The pacer is built from the option in the constructor: a new one for this boundary.
          (srv.central as unknown as { pacer: unknown }).pacer = new SendPacer(ms);
        }
        const input = chargers.map((c, i) => ({
          id: `r${r}-${i}`,
          assetId: c.assetId,
          type: 'SET_CHARGE_RATE',
          valueKw: 4 + ((i + r) % 17),
          scheduledAt: at,
          validUntil: at + 900_000,
        }));
        const stall = stallFrom(at);
        helper.getNode('disp').receive({ payload: input } as never);
        await until(() => results - before === N, `${N} answers`, 60_000, 5);
        if (failures > 0) throw new Error(`${failures} setpoints failed`);
        return { ms: lastAt - at, stall: stall() };
      },
    );
  } finally {
    await helper.unload();
  }
}

// ------------------------------------------------------------ the floor: bare ocpp-rpc

interface BareClient {
  identity: string;
  handle(m: string | ((x: { method: string }) => unknown), h?: () => unknown): void;
  call(method: string, params: unknown): Promise<unknown>;
}

async function floor(ramp: string): Promise<Result> {
  const rpc = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true, callTimeoutMs: 60_000 });
  const clients = new Map<string, BareClient>();
  rpc.on('client', (client: BareClient) => {
    clients.set(client.identity, client);
    const now = () => new Date().toISOString();
    client.handle('BootNotification', () => ({
      status: 'Accepted',
      currentTime: now(),
      interval: 300,
    }));
    client.handle('Heartbeat', () => ({ currentTime: now() }));
    client.handle('StatusNotification', () => ({}));
    client.handle(() => ({}));
  });
  const server = http.createServer();
  server.on('upgrade', (req, socket, head) => rpc.handleUpgrade(req, socket as never, head));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const engine = new DispatchEngine({});
  try {
    return await measure(
      'floor',
      `ws://127.0.0.1:${port}/ocpp`,
      ramp,
      () => clients.size,
      async () => {},
      (r) => {
        const at = Date.now() + LEAD_MS;
        const stall = stallFrom(at);
        return new Promise<{ ms: number; stall: Stall }>((resolve, reject) => {
          setTimeout(
            () => {
              let left = N;
              for (let i = 0; i < N; i++) {
                const id = identity(i);
                const [cmd] = engine.submit({
                  id: `f${r}-${i}`,
                  assetId: `ev${i}`,
                  type: 'SET_CHARGE_RATE',
                  valueKw: 4 + ((i + r) % 17),
                  scheduledAt: at,
                } as never);
                const call = commandToCall(
                  cmd as never,
                  { identity: id, assetId: `ev${i}`, ratedKw: RATED_KW },
                  'ocpp1.6',
                  null,
                );
                (clients.get(id) as BareClient).call(call.method, call.params).then((res) => {
                  if ((res as { status?: string }).status !== 'Accepted')
                    reject(new Error(`not accepted: ${JSON.stringify(res)}`));
                  if (--left === 0) resolve({ ms: nowMs() - at, stall: stall() });
                }, reject);
              }
            },
            Math.max(0, at - Date.now()),
          );
        });
      },
    );
  } finally {
    await rpc.close({ force: true, awaitPending: false }).catch(() => {});
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  }
}

// ------------------------------------------------------------ main

/** One side's figures on one line, printed as soon as it is done. */
function brief(r: Result): string {
  return `connect ${ms(r.connectMs)}, boot ${ms(r.bootMs)}, retried ${r.retries}, update ${fmt(r.updateMs, 'ms', 0)}, heap ${kb(r.heapKb)} rss ${kb(r.rssKb)} per charger, CPU ${us(r.connectCpuUs)} per charger connecting, ${us(median(r.updateCpuUs))} per setpoint (${us(median(r.netCpuUs))} above the idle ${r.idleCpuPct.toFixed(1)} % of a core; the simulators ${us(median(r.simCpuUs))}), stalls ${ms(r.connectStallMs)} / ${ms(r.updateStallMs)} (from the slot start: ${fmt(r.boundaryStallMs, 'ms', 0)})`;
}

const kb = (x: number) => `${x.toFixed(1)} KB`;
const ms = (x: number) => `${Math.round(x)} ms`;
const us = (x: number) => `${Math.round(x)} us`;

async function main(): Promise<void> {
  deadline(ramps.length * (2 * (BOOT_TIMEOUT_MS / 1000 + 30 + RUNS * 70) + 30), killChildren);
  if (!(globalThis as { gc?: unknown }).gc)
    console.log('(run with --expose-gc for the memory figures)');
  console.log(
    `OCPP ${N} chargers: OCPP 1.6 simulated chargers in ${PROCS} child processes, ${RUNS} boundaries per ramp, ours counts a setpoint when ${CONFIRM}; ${machine()}`,
  );
  await startServer();
  const rows: string[] = [];
  try {
    for (const ramp of ramps) {
      const f = SIDES.includes('floor') ? await floor(ramp) : skipped;
      if (f !== skipped) console.log(`  (floor, ${ramp}: ${brief(f)})`);
      const o = SIDES.includes('ours') ? await ours(ramp) : skipped;
      const line = (what: string, a: string, b: string, target: string) =>
        console.log(`  ${what.padEnd(26)} ours ${a.padEnd(40)} floor ${b.padEnd(14)} ${target}`);
      console.log(`\n${N} chargers, ramp ${ramp}`);
      line('connect (all connected)', ms(o.connectMs), ms(f.connectMs), '');
      line('boot (all accepted)', ms(o.bootMs), ms(f.bootMs), '');
      line('connection attempts retried', String(o.retries), String(f.retries), '');
      line(
        'update (slot start -> last)',
        `${fmt(o.updateMs, 'ms', 0)} ${ratio(o.updateMs, f.updateMs)}`,
        ms(median(f.updateMs)),
        `target <= ${TARGET_UPDATE_MS} ms and <= ${TARGET_RATIO}x`,
      );
      line(
        'memory per charger',
        `heap ${kb(o.heapKb)}, rss ${kb(o.rssKb)}`,
        `${kb(f.heapKb)}, ${kb(f.rssKb)}`,
        `target heap+rss < ${TARGET_KB} KB`,
      );
      line('CPU per charger, connecting', us(o.connectCpuUs), us(f.connectCpuUs), '');
      line('CPU per setpoint', us(median(o.updateCpuUs)), us(median(f.updateCpuUs)), '');
      line(
        '... above the idle CPU',
        `${us(median(o.netCpuUs))} (idle ${o.idleCpuPct.toFixed(1)} %)`,
        `${us(median(f.netCpuUs))} (idle ${f.idleCpuPct.toFixed(1)} %)`,
        '',
      );
      line("the simulators' CPU per setpoint", us(median(o.simCpuUs)), us(median(f.simCpuUs)), '');
      line('longest stall, connecting', ms(o.connectStallMs), ms(f.connectStallMs), '');
      line('longest stall, updates', ms(o.updateStallMs), ms(f.updateStallMs), '');
      line(
        'stall from the slot start',
        fmt(o.boundaryStallMs, 'ms', 0),
        ms(median(f.boundaryStallMs)),
        'target < 50 ms',
      );
      line(
        "... the main thread's CPU in it / its wait for a core",
        `${fmt(o.boundaryStallCpuMs, 'ms', 0)} / ${ms(median(o.boundaryStallWaitMs))}`,
        `${ms(median(f.boundaryStallCpuMs))} / ${ms(median(f.boundaryStallWaitMs))}`,
        '',
      );
      rows.push(
        `| ${ramp} | ${ms(o.connectMs)} / ${ms(f.connectMs)} | ${ms(o.bootMs)} / ${ms(f.bootMs)} | ${ms(median(o.updateMs))} / ${ms(median(f.updateMs))} (${ratio(o.updateMs, f.updateMs)}) | ${kb(o.heapKb + o.rssKb)} / ${kb(f.heapKb + f.rssKb)} | ${us(o.connectCpuUs)} / ${us(f.connectCpuUs)}; ${us(median(o.updateCpuUs))} / ${us(median(f.updateCpuUs))} | ${ms(o.connectStallMs)} / ${ms(f.connectStallMs)} | ${ms(o.updateStallMs)} / ${ms(f.updateStallMs)} |`,
      );
    }
  } finally {
    killChildren();
    await stopServer();
  }
  console.log(
    '\n| ramp | connect ours / floor | boot | update (ratio) | heap+rss per charger | CPU per charger connecting / per setpoint | stall connecting | stall updates |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

runBenchmark(main, killChildren);
