/**
 * Dispatch lateness: 10,000 pending commands in a Node-RED flow (qe-coordinator +
 * qe-dispatcher wired to a node that records arrivals and completes each command, as an
 * adapter flow does). Real time, no fake timers. For each command: how late it leaves the
 * dispatcher after its scheduledAt (COMMAND_DISPATCHED, published just before the
 * dispatcher sends it) and how late it reaches the next node. p50, p99, max per run; the
 * figures are the median (min, max) over runs.
 *
 * Two shapes of the same 10,000 pending commands:
 *   - burst: 1,000 assets x 10 boundaries 1 s apart: 1,000 commands due at the same instant;
 *   - day:   105 assets x 96 slots (a day of 15-minute slots, played at 100 ms a slot):
 *            105 due at each boundary, 10,080 pending at the start.
 * The floor for each shape: a bare Node-RED node in the same flow that sets a timer for each
 * boundary and sends the same number of prepared messages (a command's JSON as payload) to
 * the same recording node: what Node-RED's timers and `send` cost with no dispatcher at all.
 * The seed polled every 5 s: a command then waited up to 5 s (uniform over the poll phase:
 * p50 2.5 s, p99 4.95 s).
 *
 *   node --import tsx bench/dispatch-lateness.bench.ts [burst|day]   (BENCH_RUNS)
 *
 * Prints figures; passes or fails nothing.
 */
import type { Node } from 'node-red';
import { type CommandJSON, EventType, type Site } from '../src';
import {
  bareNode,
  COORDINATOR,
  deadline,
  fmt,
  helper,
  loadFlow,
  loadNodes,
  machine,
  median,
  nowMs,
  quantile,
  runBenchmark,
  runs,
  sleep,
  startServer,
  stopServer,
  until,
} from './lib';

interface Shape {
  name: string;
  assets: number;
  boundaries: number;
  gapMs: number;
}

const SHAPES: Shape[] = [
  { name: 'burst', assets: 1000, boundaries: 10, gapMs: 1000 },
  { name: 'day', assets: 105, boundaries: 96, gapMs: 100 },
];
const RUNS = runs(3);

const chosen = SHAPES.filter((s) => process.argv.length <= 2 || process.argv.includes(s.name));
deadline(60 + chosen.reduce((t, s) => t + 2 * RUNS * ((s.boundaries * s.gapMs) / 1000 + 15), 0));

interface RunResult {
  dispatched: number[]; // sorted lateness when the message leaves the node, ms
  arrived: number[]; // sorted lateness at the next node, ms
}

interface Planned {
  id: string;
  assetId: string;
  at: number;
  input: object;
}

function plan(shape: Shape): { t0: number; commands: Planned[] } {
  const t0 = Math.ceil(Date.now() / 1000) * 1000 + 2000;
  const commands: Planned[] = [];
  for (let k = 0; k < shape.boundaries; k++) {
    for (let a = 0; a < shape.assets; a++) {
      const id = `c${a}-${k}`;
      const at = t0 + k * shape.gapMs;
      const input = {
        id,
        assetId: `a${a}`,
        type: 'SET_CHARGE_RATE',
        valueKw: (a + k) % 23,
        scheduledAt: at,
        validUntil: at + shape.gapMs,
      };
      commands.push({ id, assetId: `a${a}`, at, input });
    }
  }
  return { t0, commands };
}

/** Ours: qe-coordinator + qe-dispatcher -> recorder. */
async function oursRun(shape: Shape): Promise<RunResult> {
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    { id: 'disp', type: 'qe-dispatcher', z: 'f1', coordinator: 'coord', wires: [['rec']] },
    { id: 'rec', type: 'helper', z: 'f1' },
  ];
  await loadFlow(loadNodes('qe-coordinator', 'qe-dispatcher'), flow);
  const site = (helper.getNode('coord') as unknown as { site: Site }).site;
  const adapter = { protocol: 'bench', dispatch: () => undefined };
  for (let a = 0; a < shape.assets; a++) site.adapterRegistry.register(`a${a}`, adapter);

  const { t0, commands } = plan(shape);
  const scheduledAt = new Map(commands.map((c) => [c.id, c.at]));
  const dispatched: number[] = [];
  const arrived: number[] = [];
  site.eventBus.subscribe(EventType.COMMAND_DISPATCHED, (e) => {
    const at = scheduledAt.get(e.payload.id);
    if (at !== undefined) dispatched.push(nowMs() - at);
  });
  helper.getNode('rec').on('input', (m: Record<string, unknown>) => {
    const msg = m as { commandId: string };
    const at = scheduledAt.get(msg.commandId);
    if (at !== undefined) arrived.push(nowMs() - at);
    site.engine.handleResponse(msg.commandId, true, null);
  });

  helper.getNode('disp').receive({ payload: commands.map((c) => c.input) } as never);
  await until(
    () => site.engine.stats().pending === commands.length,
    'all commands pending',
    10_000,
    1,
  );
  if (Date.now() >= t0) throw new Error('submitting took so long that the first slot passed');
  await until(
    () => arrived.length === commands.length,
    `${commands.length} arrivals`,
    shape.boundaries * shape.gapMs + 15_000,
    20,
  );
  await helper.unload();
  await sleep(50);
  return { dispatched: dispatched.sort((a, b) => a - b), arrived: arrived.sort((a, b) => a - b) };
}

/** The floor: a timer per boundary, and prepared messages sent one by one. */
async function floorRun(shape: Shape): Promise<RunResult> {
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    { id: 'src', type: 'bench-floor', z: 'f1', wires: [['rec']] },
    { id: 'rec', type: 'helper', z: 'f1' },
  ];
  await loadFlow([bareNode], flow);
  const node = helper.getNode('src') as unknown as Node;
  const { t0, commands } = plan(shape);
  // The messages are ready before the boundary, payloads included: only sending is left.
  const byBoundary: {
    at: number;
    msgs: { topic: string; payload: CommandJSON; commandId: string }[];
  }[] = [];
  for (const c of commands) {
    let b = byBoundary.at(-1);
    if (!b || b.at !== c.at) {
      b = { at: c.at, msgs: [] };
      byBoundary.push(b);
    }
    const payload = {
      ...(c.input as object),
      scheduledAt: new Date(c.at).toISOString(),
      validUntil: new Date(c.at + shape.gapMs).toISOString(),
      status: 'DISPATCHED',
      history: [],
    } as unknown as CommandJSON;
    b.msgs.push({ topic: c.assetId, payload, commandId: c.id });
  }
  const scheduledAt = new Map(commands.map((c) => [c.id, c.at]));
  const dispatched: number[] = [];
  const arrived: number[] = [];
  helper.getNode('rec').on('input', (m: Record<string, unknown>) => {
    const at = scheduledAt.get((m as { commandId: string }).commandId);
    if (at !== undefined) arrived.push(nowMs() - at);
  });
  if (Date.now() >= t0) throw new Error('preparing took so long that the first slot passed');
  for (const b of byBoundary) {
    setTimeout(() => {
      for (const msg of b.msgs) {
        dispatched.push(nowMs() - b.at);
        node.send(msg as never);
      }
    }, b.at - Date.now());
  }
  await until(
    () => arrived.length === commands.length,
    `${commands.length} arrivals`,
    shape.boundaries * shape.gapMs + 15_000,
    20,
  );
  await helper.unload();
  await sleep(50);
  return { dispatched: dispatched.sort((a, b) => a - b), arrived: arrived.sort((a, b) => a - b) };
}

type Figures = Record<'d50' | 'd99' | 'dmax' | 'a50' | 'a99' | 'amax', number[]>;

function record(into: Figures, res: RunResult, label: string): void {
  const q = (xs: number[], p: number) => quantile(xs, p);
  into.d50.push(q(res.dispatched, 0.5));
  into.d99.push(q(res.dispatched, 0.99));
  into.dmax.push(q(res.dispatched, 1));
  into.a50.push(q(res.arrived, 0.5));
  into.a99.push(q(res.arrived, 0.99));
  into.amax.push(q(res.arrived, 1));
  console.log(
    `  ${label}: leaves p50 ${q(res.dispatched, 0.5).toFixed(2)} p99 ${q(res.dispatched, 0.99).toFixed(2)} max ${q(res.dispatched, 1).toFixed(2)} ms; ` +
      `arrives p50 ${q(res.arrived, 0.5).toFixed(2)} p99 ${q(res.arrived, 0.99).toFixed(2)} max ${q(res.arrived, 1).toFixed(2)} ms`,
  );
}

const empty = (): Figures => ({ d50: [], d99: [], dmax: [], a50: [], a99: [], amax: [] });

async function main(): Promise<void> {
  console.log(`dispatch lateness: ${RUNS} runs of each shape; ${machine()}`);
  await startServer();
  try {
    for (const shape of chosen) {
      const n = shape.assets * shape.boundaries;
      console.log(
        `\n${shape.name}: ${shape.assets} assets x ${shape.boundaries} boundaries ${shape.gapMs} ms apart = ${n} pending, ${shape.assets} due at each boundary`,
      );
      const ours = empty();
      const floor = empty();
      // Alternate, so that both see the same machine over time.
      for (let r = 0; r < RUNS; r++) {
        record(ours, await oursRun(shape), `run ${r + 1} qe-dispatcher`);
        record(floor, await floorRun(shape), `run ${r + 1} bare node  `);
      }
      const f = (p: Figures, k: keyof Figures) => fmt(p[k], 'ms', 2);
      const x = (k: keyof Figures) => `${(median(ours[k]) / median(floor[k])).toFixed(2)}x`;
      console.log(`  lateness after scheduledAt, median over runs (min, max):`);
      for (const [k, label] of [
        ['d50', 'leaves the node  p50'],
        ['d99', '                 p99'],
        ['dmax', '                 max'],
        ['a50', 'reaches the next p50'],
        ['a99', '                 p99'],
        ['amax', '                 max'],
      ] as const) {
        console.log(
          `    ${label}  qe-dispatcher ${f(ours, k)}   bare node ${f(floor, k)}   ratio ${x(k)}`,
        );
      }
    }
  } finally {
    await stopServer();
  }
  console.log(
    '\nseed design (poll every 5 s): p50 2500 ms, p99 4950 ms, max 5000 ms (uniform over the poll phase)',
  );
}

runBenchmark(main);
