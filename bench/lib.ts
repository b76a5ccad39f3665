/**
 * Shared pieces of the benchmarks: summaries (median, min, max), formatting, and loading our
 * Node-RED nodes (the build, nodes/<type>/<type>.js, as Node-RED loads them) into
 * node-red-node-test-helper. Benchmarks print figures; nothing here passes or fails on a time.
 */
import os from 'node:os';
import type { Node, NodeAPI, NodeInitializer } from 'node-red';
import helper from 'node-red-node-test-helper';

helper.init(require.resolve('node-red'));

export { helper };

/** How many runs each figure is the median of (BENCH_RUNS overrides the benchmark's default). */
export function runs(fallback: number): number {
  const n = Number(process.env.BENCH_RUNS);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The q-quantile (0..1) of a sorted array, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function summary(xs: readonly number[]): Summary {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length };
}

/** `12.3 ms (min 11.0, max 14.2)` */
export function fmt(xs: readonly number[], unit = 'ms', digits = 1): string {
  const s = summary(xs);
  return `${s.median.toFixed(digits)} ${unit} (min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)}, n=${s.runs})`;
}

export function ratio(ours: readonly number[], floor: readonly number[]): string {
  return `${(median(ours) / median(floor)).toFixed(2)}x`;
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} cores (${cpu.trim()}), node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** Epoch ms with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every `everyMs` until it holds; throws after `timeoutMs`. */
export async function until(
  cond: () => boolean,
  what: string,
  timeoutMs: number,
  everyMs = 5,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A node type with no behaviour of its own, `bench-floor`: a benchmark sends through it to
 * measure what Node-RED itself costs (the floor of a node's messages).
 */
export const bareNode: NodeInitializer = (RED: NodeAPI) => {
  function BenchFloor(this: Node, def: object) {
    RED.nodes.createNode(this, def as never);
  }
  RED.nodes.registerType('bench-floor', BenchFloor as never);
};

/** Resolves when the helper node `id` has received `count` messages. */
export function arrivals(id: string, count: number): Promise<void> {
  let n = 0;
  return new Promise<void>((resolve) => {
    helper.getNode(id).on('input', () => {
      if (++n === count) resolve();
    });
  });
}

/** Our nodes, from the build (run `npm run build` first). */
export function loadNodes(...types: string[]): NodeInitializer[] {
  return types.map((t) => require(`../nodes/${t}/${t}.js`).default as NodeInitializer);
}

/**
 * The benchmarks' OCPP central system (qe-ocpp-server, id `srv`): its own port on 127.0.0.1
 * (0: a free one), `/ocpp`, OCPP 1.6, no security; `extra` overrides or adds.
 */
export function ocppServer(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'srv',
    type: 'qe-ocpp-server',
    mode: 'port',
    host: '127.0.0.1',
    port: 0,
    path: '/ocpp',
    protocols: 'ocpp1.6',
    security: 'none',
    ...extra,
  };
}

export const COORDINATOR = {
  id: 'coord',
  type: 'qe-coordinator',
  siteId: 'bench',
  commandTimeoutSeconds: 60,
  maxRetries: 0,
  retryBackoffFactor: 2,
  retryBaseSeconds: 2,
  retryMaxSeconds: 60,
  dispatchIntervalSeconds: 5,
  deadbandKw: 0.001,
  horizonEnd: 'hold',
  fallbackKw: '{}',
  persist: false,
};

/**
 * Loads a flow into the helper's runtime, then takes the helper's sinon spies off
 * Node.prototype (send, status, log, ...) and off the runtime's log (every send and receive
 * logs a metric): they record every call (arguments included) and
 * add a process.nextTick per call, which production Node-RED does not. Without this the
 * figures would include the test harness, and the memory figures its call records.
 */
export async function loadFlow(nodes: NodeInitializer[], flow: object[]): Promise<void> {
  const h = helper as unknown as {
    _NodePrototype: Record<string, unknown>;
    _log: Record<string, unknown>;
  };
  const proto = h._NodePrototype;
  const log = h._log.log;
  const methods = ['log', 'status', 'warn', 'error', 'debug', 'trace', 'send'];
  const originals = methods.map((m) => proto[m]);
  await helper.load(nodes, flow as never);
  h._log.log = log;
  methods.forEach((m, i) => {
    proto[m] = originals[i];
  });
  // A wired node keeps its own reference to `send` (taken when it was made): the spy's.
  const send = originals[methods.indexOf('send')];
  for (const item of flow as { id?: string }[]) {
    const n = item.id ? (helper.getNode(item.id) as unknown as Record<string, unknown>) : null;
    if (n && Object.hasOwn(n, 'send') && (n._wireCount as number) > 0) n.send = send;
  }
}

export function startServer(): Promise<void> {
  return new Promise((resolve) => helper.startServer(() => resolve()));
}

export function stopServer(): Promise<void> {
  return new Promise((resolve) => helper.stopServer(() => resolve()));
}

/** A hard stop for the whole benchmark: no run can hang the machine. */
export function deadline(seconds: number, cleanup?: () => void): NodeJS.Timeout {
  const t = setTimeout(() => {
    console.error(`benchmark: gave up after ${seconds} s (bounded run)`);
    try {
      cleanup?.();
    } finally {
      process.exit(2);
    }
  }, seconds * 1000);
  t.unref();
  return t;
}

/** Runs a benchmark's main: exit 0 when it is done, 1 (after `cleanup`) when it throws. */
export function runBenchmark(main: () => Promise<void>, cleanup?: () => void): void {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      cleanup?.();
      process.exit(1);
    },
  );
}

/**
 * An optimiser's schedule as pandas split JSON text: `assets` chargers (`ev_ev_<a>_kw`, mapped
 * to `ast_ev_<a>`) over `slots` quarter hours from `start`, each value changing every 4 to 9
 * slots between 0 and 22 kW, or every slot (`everySlot`). The benches of schedules through a
 * flow, of plans and of stalls share it, so their figures are of the same schedule.
 */
export function splitSchedule(
  assets: number,
  start: number,
  options: { slots?: number; everySlot?: boolean } = {},
): { text: string; assetMap: Record<string, string> } {
  const slots = options.slots ?? 96;
  const columns: string[] = [];
  const assetMap: Record<string, string> = {};
  for (let a = 0; a < assets; a++) {
    columns.push(`ev_ev_${a}_kw`);
    assetMap[`ev_${a}`] = `ast_ev_${a}`;
  }
  const index: string[] = [];
  const data: number[][] = [];
  for (let s = 0; s < slots; s++) {
    index.push(new Date(start + s * 900_000).toISOString());
    const row: number[] = [];
    for (let a = 0; a < assets; a++) {
      const phase = options.everySlot ? s : Math.floor(s / (4 + (a % 6)));
      row.push(Math.round((((a * 37 + phase * 53) % 221) / 10) * 10) / 10);
    }
    data.push(row);
  }
  return { text: JSON.stringify({ columns, index, data }), assetMap };
}
