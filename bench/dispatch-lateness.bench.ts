/**
 * Dispatch lateness: 10,000 pending commands in a Node-RED flow (qe-coordinator +
 * qe-dispatcher wired to a node that records arrivals and completes each command, as an
 * adapter flow does), slot starts spread over the next seconds (1,000 assets x 10 boundaries
 * 1 s apart, all in the future). Real time, no fake timers. For each command: how late it
 * leaves the dispatcher after its scheduledAt (COMMAND_DISPATCHED, published just before the
 * dispatcher sends it) and how late it reaches the next node. p50, p99, max per run; the
 * figures are the median (min, max) over runs. The seed polled every 5 s: a command then
 * waits up to 5 s (uniform over the poll phase: p50 2.5 s, p99 4.95 s).
 *
 *   node --import tsx bench/dispatch-lateness.bench.ts        (BENCH_RUNS, BENCH_ASSETS, BENCH_BOUNDARIES)
 *
 * Prints figures; passes or fails nothing.
 */
import { EventType, type Site } from '../src';
import {
  COORDINATOR,
  deadline,
  fmt,
  helper,
  loadFlow,
  loadNodes,
  machine,
  nowMs,
  quantile,
  runs,
  sleep,
  startServer,
  stopServer,
  until,
} from './lib';

const ASSETS = Number(process.env.BENCH_ASSETS ?? 1000);
const BOUNDARIES = Number(process.env.BENCH_BOUNDARIES ?? 10);
const GAP_MS = 1000;
const RUNS = runs(3);
const TOTAL = ASSETS * BOUNDARIES;

deadline(60 + RUNS * (BOUNDARIES * (GAP_MS / 1000) + 20));

interface RunResult {
  dispatched: number[]; // sorted lateness at COMMAND_DISPATCHED, ms
  arrived: number[]; // sorted lateness at the next node, ms
}

async function oneRun(): Promise<RunResult> {
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    { id: 'disp', type: 'qe-dispatcher', z: 'f1', coordinator: 'coord', wires: [['rec']] },
    { id: 'rec', type: 'helper', z: 'f1' },
  ];
  await loadFlow(loadNodes('qe-coordinator', 'qe-dispatcher'), flow);
  const site = (helper.getNode('coord') as unknown as { site: Site }).site;
  // A custom adapter serves the assets (the flow after the dispatcher is the adapter).
  const adapter = { protocol: 'bench', dispatch: () => undefined };
  for (let a = 0; a < ASSETS; a++) site.adapterRegistry.register(`a${a}`, adapter);

  const scheduledAt = new Map<string, number>();
  const dispatched: number[] = [];
  const arrived: number[] = [];
  site.eventBus.subscribe(EventType.COMMAND_DISPATCHED, (e) => {
    const at = scheduledAt.get(e.payload.id);
    if (at !== undefined) dispatched.push(nowMs() - at);
  });
  const rec = helper.getNode('rec');
  rec.on('input', (m: Record<string, unknown>) => {
    const msg = m as { commandId: string };
    const at = scheduledAt.get(msg.commandId);
    if (at !== undefined) arrived.push(nowMs() - at);
    site.engine.handleResponse(msg.commandId, true, null);
  });

  // The first boundary 2 s ahead, on a whole second.
  const t0 = Math.ceil(Date.now() / 1000) * 1000 + 2000;
  const input = [];
  for (let k = 0; k < BOUNDARIES; k++) {
    for (let a = 0; a < ASSETS; a++) {
      const id = `c${a}-${k}`;
      const at = t0 + k * GAP_MS;
      scheduledAt.set(id, at);
      input.push({
        id,
        assetId: `a${a}`,
        type: 'SET_CHARGE_RATE',
        valueKw: (a + k) % 23,
        scheduledAt: at,
        validUntil: at + GAP_MS,
      });
    }
  }
  const submitStart = nowMs();
  helper.getNode('disp').receive({ payload: input } as never);
  await until(() => site.engine.stats().pending === TOTAL, 'all commands pending', 10_000, 1);
  const submitMs = nowMs() - submitStart;
  if (Date.now() >= t0) throw new Error(`submitting took ${submitMs} ms: the first slot passed`);
  await until(
    () => arrived.length === TOTAL,
    `${TOTAL} arrivals`,
    BOUNDARIES * GAP_MS + 15_000,
    20,
  );
  await helper.unload();
  await sleep(50);
  return {
    dispatched: dispatched.sort((a, b) => a - b),
    arrived: arrived.sort((a, b) => a - b),
  };
}

async function main(): Promise<void> {
  console.log(
    `dispatch lateness: ${ASSETS} assets x ${BOUNDARIES} boundaries ${GAP_MS} ms apart = ${TOTAL} pending commands, ${RUNS} runs; ${machine()}`,
  );
  await startServer();
  const p = { d50: [], d99: [], dmax: [], a50: [], a99: [], amax: [] } as Record<string, number[]>;
  try {
    for (let r = 0; r < RUNS; r++) {
      const res = await oneRun();
      p.d50?.push(quantile(res.dispatched, 0.5));
      p.d99?.push(quantile(res.dispatched, 0.99));
      p.dmax?.push(quantile(res.dispatched, 1));
      p.a50?.push(quantile(res.arrived, 0.5));
      p.a99?.push(quantile(res.arrived, 0.99));
      p.amax?.push(quantile(res.arrived, 1));
      console.log(
        `  run ${r + 1}: dispatched p50 ${quantile(res.dispatched, 0.5).toFixed(2)} p99 ${quantile(res.dispatched, 0.99).toFixed(2)} max ${quantile(res.dispatched, 1).toFixed(2)} ms; ` +
          `arrived p50 ${quantile(res.arrived, 0.5).toFixed(2)} p99 ${quantile(res.arrived, 0.99).toFixed(2)} max ${quantile(res.arrived, 1).toFixed(2)} ms`,
      );
    }
  } finally {
    await stopServer();
  }
  const f = (k: string) => fmt(p[k] ?? [], 'ms', 2);
  console.log('\nlateness after scheduledAt, median over runs (min, max):');
  console.log(`  leaves the dispatcher (COMMAND_DISPATCHED)  p50 ${f('d50')}`);
  console.log(`                                              p99 ${f('d99')}`);
  console.log(`                                              max ${f('dmax')}`);
  console.log(`  reaches the next node in the flow           p50 ${f('a50')}`);
  console.log(`                                              p99 ${f('a99')}`);
  console.log(`                                              max ${f('amax')}`);
  console.log(
    '  seed design (poll every 5 s)                p50 2500 ms, p99 4950 ms, max 5000 ms (uniform over the poll phase)',
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
