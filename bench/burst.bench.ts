/**
 * The burst (issue 17): 1,000 assets with a command each due in the same millisecond, at 10
 * slot boundaries with idle seconds between them (default 5 s: long enough for V8 to age the
 * dispatch path's code and for the process to go quiet). Real clock, real timers, one Site
 * (no Node-RED), its due commands handed to a sink that runs each attempt through the
 * adapter at once (`engine.runAttempt`, as a device node does where the command arrives).
 *
 * Measured per command: from its due time (`scheduledAt`, epoch ms) to the entry of the
 * adapter's `dispatch` (a test adapter that records the time and answers success): the
 * moment an OCPP or Modbus adapter would start building and writing its frame. p50, p99 and
 * max over every command of a run; the figures are the median (min, max) over runs.
 *
 * Shapes, each with the prepare step (`prepareAheadMs` 250, the default) and without (0):
 *   - plain:  a site without limits;
 *   - limits: the same 1,000 assets on a site with limits (a connection, 10 feeders, 1,000
 *             chargers), so that every due setpoint is allocated before it leaves.
 * The floor: a bare timer per boundary that calls the same adapter's `dispatch` for 1,000
 * prepared commands: what Node's timers and the adapter cost with no engine at all.
 * Beside the lateness, the CPU time the process spent from 30 ms before each boundary to its
 * last command's dispatch (process.cpuUsage, all threads: GC and compiler included), median
 * over the boundaries: on a loaded machine it says more about the work than the wall clock.
 *
 * Per boundary (BURST_DETAIL=0 to leave out), where its lateness went: how late the run
 * started (the site's `runOnce` entered, or the floor's timer callback, minus the due time:
 * timers and the OS), the run to the last command's dispatch (wall), the CPU as above (all
 * threads: a CPU above the wall time is the compiler or GC threads at work, a wall time well
 * above the CPU is the OS running something else), the GC pauses inside the window and in the
 * second before it (PerformanceObserver 'gc': s scavenge, M mark-compact, i incremental
 * marking, w weak callbacks), V8's young generation used 30 ms before and after the burst and
 * its size (a scavenge comes when it is full), and the boundary's p99.
 *
 *   npm run build && node --import tsx bench/burst.bench.ts [plain|limits|on|off|floor ...]
 *   (BENCH_RUNS default 3, BURST_IDLE_MS default 5000, BURST_SLOTS default 10,
 *   BURST_LEAD_MS default 250: prepareAheadMs when on)
 *
 * Prints figures; passes or fails nothing.
 */
// The build (`npm run build`), as users run it: tsx's transform names every closure it makes
// (a call per closure, `__name`), which the dispatch path would pay here and not in production.

import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { type Command, CommandType, Site } from '../dist';
import type { LimitsConfig } from '../src/limits/types';
import { deadline, fmt, machine, median, nowMs, quantile, runBenchmark, runs, sleep } from './lib';

const ASSETS = 1000;
const SLOTS = Number(process.env.BURST_SLOTS ?? 10);
const IDLE_MS = Number(process.env.BURST_IDLE_MS ?? 5000);
const RUNS = runs(3);
/** The prepare step's lead when on (the site's `prepareAheadMs`). */
const LEAD_MS = Number(process.env.BURST_LEAD_MS ?? 250);
const args = process.argv.slice(2);
function pick<T extends string>(all: readonly T[]): T[] {
  const chosen = all.filter((x) => args.includes(x));
  return chosen.length > 0 ? chosen : [...all];
}
const SHAPES = pick(['plain', 'limits'] as const);
const LEADS = pick(['on', 'off'] as const);
const WITH_FLOOR = args.length === 0 || args.includes('floor');
/** Per boundary figures printed (BURST_DETAIL=0 for the summary only). */
const DETAIL = process.env.BURST_DETAIL !== '0';
const VARIANTS = SHAPES.flatMap((shape) => LEADS.map((lead) => ({ shape, lead })));

deadline(60 + RUNS * (VARIANTS.length + 1) * (SLOTS * (IDLE_MS / 1000 + 1) + 20));

function limitsConfig(): LimitsConfig {
  const circuits: LimitsConfig['circuits'] = [{ id: 'grid', importKw: 20_000 }];
  const assets: LimitsConfig['assets'] = [];
  for (let f = 0; f < 10; f++) circuits.push({ id: `f${f}`, parent: 'grid', importKw: 1500 });
  for (let a = 0; a < ASSETS; a++)
    assets.push({
      assetId: `a${a}`,
      kind: 'ev',
      circuit: `f${a % 10}`,
      ratingKw: 22,
      phases: 'L1L2L3',
    });
  return { circuits, assets, meters: [], minIntervalS: 0, hysteresisKw: 0.1 };
}

interface Result {
  lateness: number[]; // sorted, ms
  perBoundaryP99: number[];
  /** CPU ms from 30 ms before each boundary to its last dispatch. */
  cpu: number[];
  /** Per prepare step: its CPU ms, and how long before its boundary it ended (ms). */
  prepareCpu: number[];
  prepareEndedBefore: number[];
  /** Per boundary: where its lateness went (see `Boundary`). */
  boundaries: Boundary[];
}

/**
 * One boundary, taken apart: when the run's timer callback started (`timer`, ms after the
 * due time), how long from there to the last command's dispatch (`handout`), the CPU time
 * from 30 ms before the boundary to its last dispatch (`cpu`), the GC pauses inside that
 * window (`gcIn`: count and ms, by kind) and in the second before it (`gcBefore`), and p99.
 */
interface Boundary {
  timer: number;
  handout: number;
  cpu: number;
  gcIn: { count: number; ms: number; kinds: string };
  gcBefore: { count: number; ms: number };
  /** The young generation (V8's new space), KB: used 30 ms before, used after, its size. */
  young: { before: number; after: number; size: number };
  p99: number;
}

/** V8's new space now: used and size, KB. */
function newSpace(): { used: number; size: number } {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  return { used: (s?.space_used_size ?? 0) / 1024, size: (s?.space_size ?? 0) / 1024 };
}

/** GC pauses (epoch ms start, duration, kind) seen by a PerformanceObserver. */
const gcLog: { at: number; ms: number; kind: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
    gcLog.push({ at: performance.timeOrigin + e.startTime, ms: e.duration, kind });
  }
});
gcObserver.observe({ entryTypes: ['gc'] });
/** perf_hooks' NODE_PERFORMANCE_GC_* kinds: scavenge, mark-compact, incremental, weak callbacks. */
const GC_KIND: Record<number, string> = { 1: 's', 2: 'M', 4: 'i', 8: 'w' };

function gcBetween(from: number, to: number): { count: number; ms: number; kinds: string } {
  let count = 0;
  let ms = 0;
  let kinds = '';
  for (const g of gcLog) {
    if (g.at + g.ms < from || g.at > to) continue;
    count++;
    ms += g.ms;
    kinds += GC_KIND[g.kind] ?? '?';
  }
  return { count, ms, kinds };
}

/** Boundaries: the first 2 s from now on a whole second, then one every IDLE_MS. */
function boundaries(): number[] {
  const t0 = Math.ceil(Date.now() / 1000) * 1000 + 2000;
  return Array.from({ length: SLOTS }, (_, k) => t0 + k * IDLE_MS);
}

/** An empty array that holds doubles (V8's PACKED_DOUBLE_ELEMENTS) before its first push. */
function doubles(): number[] {
  const a = [0.5];
  a.pop();
  return a;
}

/**
 * Records the lateness of each command at the adapter, per boundary, the CPU time from 30 ms
 * before each boundary to its last command, and when each boundary's run started (`ran`).
 */
function recorder(at: number[]) {
  // Arrays of doubles from the start: a new `[]`'s first double at a boundary changed its
  // kind and deoptimised the bench's own adapter code (inlined with the handout) there.
  const lateness: number[] = doubles();
  const perBoundary: number[][] = at.map(() => doubles());
  const from: (NodeJS.CpuUsage | null)[] = at.map(() => null);
  const cpu: number[] = at.map(() => Number.NaN);
  const started: number[] = at.map(() => Number.NaN);
  const ended: number[] = at.map(() => Number.NaN);
  const youngBefore: number[] = at.map(() => Number.NaN);
  const youngAfter: { used: number; size: number }[] = at.map(() => ({
    used: Number.NaN,
    size: Number.NaN,
  }));
  const timers = at.map((t, k) =>
    setTimeout(
      () => {
        youngBefore[k] = newSpace().used;
        from[k] = process.cpuUsage();
      },
      t - 30 - Date.now(),
    ),
  );
  return {
    count: () => lateness.length,
    /** The boundary's run (timer callback) started now: the first call at or after `at[k]`. */
    ran(now: number) {
      for (let k = 0; k < at.length; k++) {
        if (Number.isNaN(started[k]) && now >= (at[k] as number) && perBoundary[k]?.length === 0) {
          started[k] = now;
          return;
        }
      }
    },
    arrived(k: number, dueAt: number) {
      const now = nowMs();
      const late = now - dueAt;
      lateness.push(late);
      const mine = perBoundary[k] as number[];
      if (mine.length === 0 && Number.isNaN(started[k])) started[k] = now; // no run recorded
      mine.push(late);
      const f = from[k];
      if (mine.length === ASSETS) {
        ended[k] = now;
        youngAfter[k] = newSpace();
        if (f) {
          const d = process.cpuUsage(f);
          cpu[k] = (d.user + d.system) / 1000;
        }
      }
    },
    result(): Result {
      for (const t of timers) clearTimeout(t);
      const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
      const perBoundaryP99 = perBoundary.map((xs) => quantile(sorted(xs), 0.99));
      return {
        lateness: sorted(lateness),
        perBoundaryP99,
        cpu: cpu.filter((x) => !Number.isNaN(x)),
        prepareCpu: [],
        prepareEndedBefore: [],
        boundaries: at.map((t, k) => ({
          timer: (started[k] as number) - t,
          handout: (ended[k] as number) - (started[k] as number),
          cpu: cpu[k] as number,
          gcIn: gcBetween(t - 30, ended[k] as number),
          gcBefore: gcBetween(t - 1000, t - 30),
          young: {
            before: youngBefore[k] as number,
            after: (youngAfter[k] as { used: number }).used,
            size: (youngAfter[k] as { size: number }).size,
          },
          p99: perBoundaryP99[k] as number,
        })),
      };
    },
  };
}

async function waitFor(count: () => number, at: number[]): Promise<void> {
  const end = (at.at(-1) as number) + 3000;
  while (count() < SLOTS * ASSETS && Date.now() < end) await sleep(100);
  if (count() < SLOTS * ASSETS)
    throw new Error(`only ${count()} of ${SLOTS * ASSETS} commands reached the adapter`);
}

/** The site measured now, and what its prepare steps and runs report to. */
let watched: {
  site: Site;
  prepared: (dueAt: number, cpu: NodeJS.CpuUsage) => void;
  ran: () => void;
} | null = null;

/**
 * Site's `prepareInSlices` and `runOnce` wrapped once, on its prototype, for the site watched:
 * the bench must not give the site it measures own properties (a map of its own in V8, so
 * that the code the warm-up optimised on its scratch site would not fit it: a "wrong map"
 * deoptimisation at its first boundary that a real site does not have).
 */
function watch(): void {
  const proto = Site.prototype;
  const prepare = proto.prepareInSlices;
  proto.prepareInSlices = async function (this: Site, dueAt: number) {
    const w = watched?.site === this ? watched : null;
    const c0 = process.cpuUsage();
    const out = await prepare.call(this, dueAt);
    w?.prepared(dueAt, process.cpuUsage(c0));
    return out;
  };
  const runOnce = proto.runOnce;
  proto.runOnce = function (this: Site) {
    if (watched?.site === this) watched.ran();
    return runOnce.call(this);
  };
}
watch();

async function siteRun(shape: 'plain' | 'limits', lead: 'on' | 'off'): Promise<Result> {
  const site = new Site({
    siteId: 'burst',
    ...(shape === 'limits' ? { limits: limitsConfig() } : {}),
    prepareAheadMs: lead === 'on' ? LEAD_MS : 0,
    config: { commandTimeoutSeconds: 60, maxRetries: 0, dispatchIntervalSeconds: 60 },
    onError: (e) => console.error(e.message),
  });
  const at = boundaries();
  const slotOf = new Map<number, number>(at.map((t, k) => [t, k]));
  const rec = recorder(at);
  const adapter = {
    protocol: 'bench',
    dispatch: (cmd: Command) => {
      const due = cmd.scheduledAt.getTime();
      rec.arrived(slotOf.get(due) ?? 0, due);
      return { success: true };
    },
  };
  for (let a = 0; a < ASSETS; a++) site.adapterRegistry.register(`a${a}`, adapter);
  site.attachDispatcher('bench', {
    deliver: (cmd) => {
      site.engine.runAttempt(cmd, adapter).catch((e) => console.error(e));
    },
    undeliverable: (_cmd, error) => console.error(error),
  });
  const input = [];
  for (let k = 0; k < SLOTS; k++) {
    for (let a = 0; a < ASSETS; a++) {
      input.push({
        assetId: `a${a}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 4 + ((a + k) % 15),
        scheduledAt: at[k] as number,
        validUntil: (at[k] as number) + IDLE_MS,
      });
    }
  }
  // The prepare step (Site.prepareInSlices, called by the loop): what it costs (CPU from its
  // start to its end, slices and what ran between them), when it ends. The run at each
  // boundary: when its timer callback started. (Through `watched`, see `watch`.)
  const prepareCpu: number[] = [];
  const prepareEndedBefore: number[] = [];
  watched = {
    site,
    prepared(dueAt, c) {
      prepareCpu.push((c.user + c.system) / 1000);
      prepareEndedBefore.push(dueAt - nowMs());
    },
    ran: () => rec.ran(nowMs()),
  };
  site.submit(input);
  site.start();
  if (Date.now() >= (at[0] as number))
    throw new Error('submitting took so long that slot 1 passed');
  try {
    await waitFor(rec.count, at);
  } finally {
    await site.stop();
  }
  return { ...rec.result(), prepareCpu, prepareEndedBefore };
}

/** The floor: a timer per boundary, and the adapter called for 1,000 prepared commands. */
async function floorRun(): Promise<Result> {
  const at = boundaries();
  const rec = recorder(at);
  const adapter = {
    protocol: 'bench',
    dispatch: (cmd: { scheduledAt: Date }, k: number) => {
      rec.arrived(k, cmd.scheduledAt.getTime());
      return { success: true };
    },
  };
  const timers = at.map((t, k) => {
    const cmds = Array.from({ length: ASSETS }, (_, a) => ({
      id: `c${a}-${k}`,
      assetId: `a${a}`,
      scheduledAt: new Date(t),
    }));
    return setTimeout(() => {
      rec.ran(nowMs());
      for (const c of cmds) adapter.dispatch(c, k);
    }, t - Date.now());
  });
  try {
    await waitFor(rec.count, at);
  } finally {
    for (const t of timers) clearTimeout(t);
  }
  return rec.result();
}

type Figures = Record<
  'p50' | 'p99' | 'max' | 'worstBoundaryP99' | 'cpu' | 'boundaryP99s',
  number[]
> & { detail: Boundary[] };
const empty = (): Figures => ({
  detail: [],
  p50: [],
  p99: [],
  max: [],
  worstBoundaryP99: [],
  cpu: [],
  boundaryP99s: [],
});

function record(into: Figures, r: Result, label: string): void {
  const p50 = quantile(r.lateness, 0.5);
  const p99 = quantile(r.lateness, 0.99);
  const max = quantile(r.lateness, 1);
  const cpu = median(r.cpu);
  into.p50.push(p50);
  into.p99.push(p99);
  into.max.push(max);
  into.worstBoundaryP99.push(Math.max(...r.perBoundaryP99));
  into.cpu.push(cpu);
  into.boundaryP99s.push(...r.perBoundaryP99);
  const prep =
    r.prepareCpu.length > 0
      ? `; prepare step CPU ${median(r.prepareCpu).toFixed(1)} ms, ended ${Math.min(...r.prepareEndedBefore).toFixed(0)}-${Math.max(...r.prepareEndedBefore).toFixed(0)} ms before`
      : '';
  console.log(
    `  ${label}: p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} max ${max.toFixed(2)} ms; CPU at a boundary ${cpu.toFixed(1)} ms${prep}; p99 per boundary ${r.perBoundaryP99.map((x) => x.toFixed(1)).join(' ')}`,
  );
  if (DETAIL) {
    into.detail.push(...r.boundaries);
    console.log(
      '      boundary: run started late | run to last dispatch | CPU | GC in window (n ms kinds) | GC in the 1 s before | young gen KB used before/after/size | p99 (ms)',
    );
    for (const [k, b] of r.boundaries.entries())
      console.log(
        `      ${String(k + 1).padStart(2)}: ${b.timer.toFixed(1).padStart(5)} | ${b.handout.toFixed(1).padStart(5)} | ${b.cpu.toFixed(1).padStart(5)} | ${b.gcIn.count} ${b.gcIn.ms.toFixed(1)} ${b.gcIn.kinds || '-'} | ${b.gcBefore.count} ${b.gcBefore.ms.toFixed(1)} | ${b.young.before.toFixed(0)}/${b.young.after.toFixed(0)}/${b.young.size.toFixed(0)} | ${b.p99.toFixed(1)}`,
      );
  }
}

async function main(): Promise<void> {
  console.log(
    `burst: ${ASSETS} commands due in the same ms at ${SLOTS} boundaries ${IDLE_MS} ms apart; ${RUNS} runs; prepare on = prepareAheadMs ${LEAD_MS}; ${machine()}`,
  );
  console.log('lateness = adapter dispatch entry - scheduledAt (ms)');
  const figures = new Map<string, Figures>();
  const into = (name: string) => {
    const f = figures.get(name) ?? empty();
    figures.set(name, f);
    return f;
  };
  // Alternate, so that every variant sees the same machine over time.
  for (let r = 0; r < RUNS; r++) {
    for (const { shape, lead } of VARIANTS) {
      const name = `${shape}, prepare ${lead}`;
      record(into(name), await siteRun(shape, lead), `run ${r + 1} ${name.padEnd(18)}`);
    }
    if (WITH_FLOOR) record(into('floor'), await floorRun(), `run ${r + 1} ${'floor'.padEnd(18)}`);
  }
  console.log('median over runs (min, max):');
  for (const [name, f] of figures) {
    console.log(`  ${name}`);
    console.log(`    p50  ${fmt(f.p50, 'ms', 2)}`);
    console.log(`    p99  ${fmt(f.p99, 'ms', 2)}   target < 10 ms`);
    console.log(`    max  ${fmt(f.max, 'ms', 2)}`);
    console.log(`    worst boundary's p99  ${fmt(f.worstBoundaryP99, 'ms', 2)}`);
    console.log(`    CPU at a boundary  ${fmt(f.cpu, 'ms', 1)}`);
    const under = f.boundaryP99s.filter((x) => x < 10).length;
    const d = f.detail;
    const gcIn = d.filter((b) => b.gcIn.count > 0);
    console.log(
      `    per boundary, median (max): run started late ${median(d.map((b) => b.timer)).toFixed(1)} (${Math.max(...d.map((b) => b.timer)).toFixed(1)}) ms; run to last dispatch ${median(d.map((b) => b.handout)).toFixed(1)} (${Math.max(...d.map((b) => b.handout)).toFixed(1)}) ms; GC in the window at ${gcIn.length} of ${d.length}, ${gcIn.reduce((a, b) => a + b.gcIn.ms, 0).toFixed(1)} ms in all`,
    );
    console.log(
      `    every boundary's p99: median ${median(f.boundaryP99s).toFixed(1)} ms; under 10 ms at ${under} of ${f.boundaryP99s.length}`,
    );
  }
}

runBenchmark(main);
