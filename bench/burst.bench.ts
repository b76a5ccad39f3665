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
 * Shapes:
 *   - plain:  a site without limits;
 *   - limits: the same 1,000 assets on a site with limits (a connection, 10 feeders, 1,000
 *             chargers), so that every due setpoint is allocated before it leaves.
 * The floor: a bare timer per boundary that calls the same adapter's `dispatch` for 1,000
 * prepared commands: what Node's timers and the adapter cost with no engine at all.
 *
 *   node --import tsx bench/burst.bench.ts [plain|limits] [floor]   (BENCH_RUNS, BURST_IDLE_MS,
 *   BURST_SLOTS, BURST_LEAD_MS: the site's prepareAheadMs, 0 = off)
 *
 * Prints figures; passes or fails nothing.
 */
import { type Command, CommandType } from '../src/commands';
import type { LimitsConfig } from '../src/limits/types';
import { Site } from '../src/site';
import { deadline, fmt, machine, median, nowMs, quantile, runBenchmark, runs, sleep } from './lib';

const ASSETS = 1000;
const SLOTS = Number(process.env.BURST_SLOTS ?? 10);
const IDLE_MS = Number(process.env.BURST_IDLE_MS ?? 5000);
const LEAD = process.env.BURST_LEAD_MS;
const RUNS = runs(3);
const args = process.argv.slice(2);
const SHAPES = (['plain', 'limits'] as const).filter((s) => args.length === 0 || args.includes(s));
const WITH_FLOOR = args.length === 0 || args.includes('floor');

deadline(60 + RUNS * (SHAPES.length + 1) * (SLOTS * (IDLE_MS / 1000 + 1) + 20));

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
}

function summarise(lateness: number[], perBoundary: number[][]): Result {
  return {
    lateness: lateness.sort((a, b) => a - b),
    perBoundaryP99: perBoundary.map((xs) =>
      quantile(
        xs.sort((a, b) => a - b),
        0.99,
      ),
    ),
  };
}

/** Boundaries: the first 2 s from now on a whole second, then one every IDLE_MS. */
function boundaries(): number[] {
  const t0 = Math.ceil(Date.now() / 1000) * 1000 + 2000;
  return Array.from({ length: SLOTS }, (_, k) => t0 + k * IDLE_MS);
}

async function siteRun(shape: 'plain' | 'limits'): Promise<Result> {
  const site = new Site({
    siteId: 'burst',
    ...(shape === 'limits' ? { limits: limitsConfig() } : {}),
    ...(LEAD !== undefined ? { prepareAheadMs: Number(LEAD) } : {}),
    config: { commandTimeoutSeconds: 60, maxRetries: 0, dispatchIntervalSeconds: 60 },
    onError: (e) => console.error(e.message),
  });
  const at = boundaries();
  const slotOf = new Map<number, number>(at.map((t, k) => [t, k]));
  const lateness: number[] = [];
  const perBoundary: number[][] = at.map(() => []);
  const adapter = {
    protocol: 'bench',
    dispatch: (cmd: Command) => {
      const due = cmd.scheduledAt.getTime();
      const late = nowMs() - due;
      lateness.push(late);
      perBoundary[slotOf.get(due) ?? 0]?.push(late);
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
  site.submit(input);
  site.start();
  if (Date.now() >= (at[0] as number))
    throw new Error('submitting took so long that slot 1 passed');
  const end = (at.at(-1) as number) + 3000;
  while (lateness.length < SLOTS * ASSETS && Date.now() < end) await sleep(100);
  await site.stop();
  if (lateness.length < SLOTS * ASSETS)
    throw new Error(`only ${lateness.length} of ${SLOTS * ASSETS} commands reached the adapter`);
  return summarise(lateness, perBoundary);
}

/** The floor: a timer per boundary, and the adapter called for 1,000 prepared commands. */
async function floorRun(): Promise<Result> {
  const at = boundaries();
  const lateness: number[] = [];
  const perBoundary: number[][] = at.map(() => []);
  const adapter = {
    protocol: 'bench',
    dispatch: (cmd: { scheduledAt: Date }, k: number) => {
      const late = nowMs() - cmd.scheduledAt.getTime();
      lateness.push(late);
      perBoundary[k]?.push(late);
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
      for (const c of cmds) adapter.dispatch(c, k);
    }, t - Date.now());
  });
  const end = (at.at(-1) as number) + 3000;
  while (lateness.length < SLOTS * ASSETS && Date.now() < end) await sleep(100);
  for (const t of timers) clearTimeout(t);
  return summarise(lateness, perBoundary);
}

type Figures = Record<'p50' | 'p99' | 'max' | 'worstBoundaryP99', number[]>;
const empty = (): Figures => ({ p50: [], p99: [], max: [], worstBoundaryP99: [] });

function record(into: Figures, r: Result, label: string): void {
  const p50 = quantile(r.lateness, 0.5);
  const p99 = quantile(r.lateness, 0.99);
  const max = quantile(r.lateness, 1);
  const worst = Math.max(...r.perBoundaryP99);
  into.p50.push(p50);
  into.p99.push(p99);
  into.max.push(max);
  into.worstBoundaryP99.push(worst);
  console.log(
    `  ${label}: p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} max ${max.toFixed(2)} ms; p99 per boundary ${r.perBoundaryP99.map((x) => x.toFixed(1)).join(' ')}`,
  );
}

async function main(): Promise<void> {
  console.log(
    `burst: ${ASSETS} commands due in the same ms at ${SLOTS} boundaries ${IDLE_MS} ms apart; ${RUNS} runs; prepareAheadMs ${LEAD ?? 'default'}; ${machine()}`,
  );
  console.log('lateness = adapter dispatch entry - scheduledAt (ms)');
  const figures = new Map<string, Figures>();
  for (let r = 0; r < RUNS; r++) {
    for (const shape of SHAPES) {
      const f = figures.get(shape) ?? empty();
      figures.set(shape, f);
      record(f, await siteRun(shape), `run ${r + 1} site ${shape.padEnd(6)}`);
    }
    if (WITH_FLOOR) {
      const f = figures.get('floor') ?? empty();
      figures.set('floor', f);
      record(f, await floorRun(), `run ${r + 1} floor      `);
    }
  }
  console.log('median over runs (min, max):');
  for (const [name, f] of figures) {
    console.log(`  ${name}`);
    console.log(`    p50  ${fmt(f.p50, 'ms', 2)}`);
    console.log(`    p99  ${fmt(f.p99, 'ms', 2)}   target < 10 ms`);
    console.log(`    max  ${fmt(f.max, 'ms', 2)}`);
    console.log(`    worst boundary's p99  ${fmt(f.worstBoundaryP99, 'ms', 2)}`);
  }
  const floor = figures.get('floor');
  if (floor)
    for (const s of SHAPES) {
      const f = figures.get(s);
      if (f)
        console.log(`  ${s} p99 - floor p99: ${(median(f.p99) - median(floor.p99)).toFixed(2)} ms`);
    }
}

runBenchmark(main);
