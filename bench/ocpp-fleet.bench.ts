/**
 * OCPP fleet: simulated OCPP 1.6 chargers (ChargePointSimulator, many per process) in a
 * separate process (bench/fleet-sims.ts), connected to a qe-ocpp-server in Node-RED
 * (node-red-node-test-helper: qe-coordinator + qe-dispatcher -> qe-ocpp), at 100, 500, 1,000
 * and 2,000 chargers. At a slot boundary every charger gets a new setpoint: the time from the
 * slot start (scheduledAt) until the last SetChargingProfile is answered (the last result
 * leaves qe-ocpp). The floor: the same calls (same params, strict mode as ours) made at the
 * same moment by a bare ocpp-rpc RPCServer to the same simulated fleet. Also the parent's
 * memory per connected charger above its idle baseline (after gc), and CPU time per setpoint
 * (process.cpuUsage from the submit to the last answer).
 *
 *   node --expose-gc --import tsx bench/ocpp-fleet.bench.ts [sizes...]     (BENCH_RUNS)
 *
 * Everything binds to 127.0.0.1, every wait is bounded, the children are killed at the end
 * (also on error). Prints figures; passes or fails nothing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { RPCServer } from 'ocpp-rpc';
import { commandToCall } from '../src/adapters/ocpp/translate';
import { DispatchEngine } from '../src/engine';
import type { Site } from '../src/site';
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

const SIZES = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const sizes = SIZES.length > 0 ? SIZES : [100, 500, 1000, 2000];
const RUNS = runs(9);
const RATED_KW = 22;
const LEAD_MS = 1000; // the boundary is this far after the submit

// ------------------------------------------------------------ open files

/** Thousands of sockets: make sure the limit allows them, else run again under a higher one. */
function ensureOpenFiles(): void {
  const need = Math.max(...sizes) * 2 + 1024;
  const soft = Number(spawnSync('bash', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  if (!(soft < need)) return;
  if (process.env.QE_BENCH_REEXEC) {
    console.error(`open-file limit ${soft} is below ${need}: continuing, large sizes may fail`);
    return;
  }
  console.error(`open-file limit ${soft} < ${need}: running again under ulimit -n ${need}`);
  const args = [...process.execArgv, ...process.argv.slice(1)].map((a) => `'${a}'`).join(' ');
  const r = spawnSync(
    'bash',
    ['-c', `ulimit -n ${need} 2>/dev/null || ulimit -n $(ulimit -Hn); exec node ${args}`],
    { stdio: 'inherit', env: { ...process.env, QE_BENCH_REEXEC: '1' } },
  );
  process.exit(r.status ?? 1);
}

// ------------------------------------------------------------ the simulated fleet

const children = new Set<ChildProcess>();

function killChildren(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  children.clear();
}
process.on('exit', killChildren);

/** When each fleet process started connecting (its first handshake), by process. */
const connectingAt = new WeakMap<ChildProcess, number>();

/**
 * Starts `count` simulated chargers in a child process; resolves once all have booted. The
 * child says when it starts connecting (after starting node and loading the simulator):
 * `connectingAt` keeps that time.
 */
function startFleet(url: string, count: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'fleet-sims.ts'), url, String(count)],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  children.add(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${count} chargers did not boot within 120 s`)),
      120_000,
    );
    child.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'connecting') {
        connectingAt.set(child, Date.now());
        return;
      }
      clearTimeout(timer);
      if (m.type === 'ready') resolve(child);
      else reject(new Error(`fleet: ${m.message}`));
    });
    child.on('exit', (code) => {
      children.delete(child);
      clearTimeout(timer);
      reject(new Error(`fleet process exited (${code})`));
    });
  });
}

async function stopFleet(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.send({ type: 'stop' });
  const t = setTimeout(() => child.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(t);
  children.delete(child);
}

const identity = (i: number) => `CP${String(i + 1).padStart(5, '0')}`;

// ------------------------------------------------------------ memory and cpu

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function mem(): { heap: number; rss: number } {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface SizeResult {
  updateMs: number[];
  cpuUsPerSetpoint: number[];
  heapPerCharger: number;
  rssPerCharger: number;
  /** Spawning the fleet process until every charger is up. */
  connectMs: number;
  /** The fleet's first handshake until every charger is up. */
  connectOnlyMs: number;
}

// ------------------------------------------------------------ ours: Node-RED

async function ours(n: number): Promise<SizeResult> {
  const chargers = Array.from({ length: n }, (_, i) => ({
    identity: identity(i),
    assetId: `ev${i}`,
    ratedKw: RATED_KW,
  }));
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    ocppServer({ callTimeoutSeconds: 30 }),
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
  const srv = helper.getNode('srv') as unknown as { ready: Promise<void>; port: number | null };
  await srv.ready;
  if (srv.port === null) throw new Error('the OCPP server did not start');
  const site = (helper.getNode('coord') as unknown as { site: Site }).site;
  let results = 0;
  let failures = 0;
  let lastAt = 0;
  helper.getNode('results').on('input', (msg: Record<string, unknown>) => {
    results++;
    if (!(msg.payload as { success: boolean }).success) failures++;
    lastAt = nowMs();
  });

  await sleep(200);
  const idle = mem();
  const t0 = Date.now();
  const fleet = await startFleet(`ws://127.0.0.1:${srv.port}/ocpp`, n);
  try {
    await until(
      () => chargers.every((c) => site.getStateMachine(c.assetId)?.currentState === 'AVAILABLE'),
      'every charger AVAILABLE',
      60_000,
      20,
    );
    const connectMs = Date.now() - t0;
    const connectOnlyMs = Date.now() - (connectingAt.get(fleet) ?? t0);
    await sleep(500);
    const loaded = mem();
    const updateMs: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const before = results;
      const at = Date.now() + LEAD_MS;
      const input = chargers.map((c, i) => ({
        id: `r${r}-${i}`,
        assetId: c.assetId,
        type: 'SET_CHARGE_RATE',
        valueKw: 4 + ((i + r) % 17),
        scheduledAt: at,
        validUntil: at + 900_000,
      }));
      const c0 = cpuMs();
      helper.getNode('disp').receive({ payload: input } as never);
      await until(() => results - before === n, `${n} answers`, 60_000, 2);
      cpu.push(((cpuMs() - c0) / n) * 1000);
      updateMs.push(lastAt - at);
      if (failures > 0) throw new Error(`${failures} setpoints failed`);
      await sleep(300);
    }
    return {
      updateMs,
      cpuUsPerSetpoint: cpu,
      heapPerCharger: (loaded.heap - idle.heap) / n,
      rssPerCharger: (loaded.rss - idle.rss) / n,
      connectMs,
      connectOnlyMs,
    };
  } finally {
    await stopFleet(fleet);
    await helper.unload();
  }
}

// ------------------------------------------------------------ the floor: bare ocpp-rpc

interface BareClient {
  identity: string;
  handle(m: string | ((x: { method: string }) => unknown), h?: () => unknown): void;
  call(method: string, params: unknown): Promise<unknown>;
}

async function floor(n: number): Promise<SizeResult> {
  const rpc = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true, callTimeoutMs: 30_000 });
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
  // The same params our adapter sends (commandToCall), for a command of each charger.
  const engine = new DispatchEngine({});
  await sleep(200);
  const idle = mem();
  const t0 = Date.now();
  const fleet = await startFleet(`ws://127.0.0.1:${port}/ocpp`, n);
  try {
    await until(() => clients.size === n, 'every charger connected', 60_000, 20);
    const connectMs = Date.now() - t0;
    const connectOnlyMs = Date.now() - (connectingAt.get(fleet) ?? t0);
    await sleep(500);
    const loaded = mem();
    const updateMs: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const at = Date.now() + LEAD_MS;
      const c0 = cpuMs();
      const done = await new Promise<number>((resolve, reject) => {
        setTimeout(
          () => {
            let left = n;
            let last = 0;
            for (let i = 0; i < n; i++) {
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
                last = nowMs();
                if (--left === 0) resolve(last);
              }, reject);
            }
          },
          Math.max(0, at - Date.now()),
        );
      });
      cpu.push(((cpuMs() - c0) / n) * 1000);
      updateMs.push(done - at);
      await sleep(300);
    }
    return {
      updateMs,
      cpuUsPerSetpoint: cpu,
      heapPerCharger: (loaded.heap - idle.heap) / n,
      rssPerCharger: (loaded.rss - idle.rss) / n,
      connectMs,
      connectOnlyMs,
    };
  } finally {
    await stopFleet(fleet);
    await rpc.close({ force: true, awaitPending: false }).catch(() => {});
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  }
}

// ------------------------------------------------------------ main

async function main(): Promise<void> {
  ensureOpenFiles();
  deadline(120 + sizes.reduce((s, n) => s + 60 + n * 0.05 * RUNS, 0), killChildren);
  if (!(globalThis as { gc?: unknown }).gc)
    console.log('(run with --expose-gc for the memory figures)');
  console.log(
    `OCPP fleet: OCPP 1.6 simulated chargers in a child process, ${RUNS} boundaries per size, median (min, max); ${machine()}`,
  );
  await startServer();
  const rows: string[] = [];
  try {
    for (const n of sizes) {
      const f = await floor(n);
      const o = await ours(n);
      const perCharger = (x: number[]) => x.map((v) => (v / n) * 1000);
      console.log(
        `\n${n} chargers (spawn + connect + boot: ours ${o.connectMs} ms, floor ${f.connectMs} ms; from the first handshake: ours ${o.connectOnlyMs} ms, floor ${f.connectOnlyMs} ms)`,
      );
      console.log(`  update, bare ocpp-rpc (floor)   ${fmt(f.updateMs)}`);
      console.log(
        `  update, Node-RED (ours)         ${fmt(o.updateMs)}   ratio ${ratio(o.updateMs, f.updateMs)}`,
      );
      console.log(
        `  per charger: ours ${fmt(perCharger(o.updateMs), 'us', 0)}, floor ${fmt(perCharger(f.updateMs), 'us', 0)}`,
      );
      console.log(
        `  CPU per setpoint: ours ${fmt(o.cpuUsPerSetpoint, 'us', 0)}, floor ${fmt(f.cpuUsPerSetpoint, 'us', 0)}`,
      );
      console.log(
        `  memory per charger above idle: ours heap ${(o.heapPerCharger / 1024).toFixed(1)} KB, rss ${(o.rssPerCharger / 1024).toFixed(1)} KB; floor heap ${(f.heapPerCharger / 1024).toFixed(1)} KB, rss ${(f.rssPerCharger / 1024).toFixed(1)} KB`,
      );
      rows.push(
        `| ${n} | ${median(o.updateMs).toFixed(0)} | ${median(f.updateMs).toFixed(0)} | ${ratio(o.updateMs, f.updateMs)} | ${median(o.cpuUsPerSetpoint).toFixed(0)} | ${median(f.cpuUsPerSetpoint).toFixed(0)} | ${(o.heapPerCharger / 1024).toFixed(1)} / ${(o.rssPerCharger / 1024).toFixed(1)} | ${(f.heapPerCharger / 1024).toFixed(1)} / ${(f.rssPerCharger / 1024).toFixed(1)} |`,
      );
    }
  } finally {
    killChildren();
    await stopServer();
  }
  console.log(
    '\n| chargers | update ms (ours) | floor ms | ratio | CPU us/setpoint (ours) | floor | KB/charger heap / rss (ours) | floor |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

runBenchmark(main, killChildren);
