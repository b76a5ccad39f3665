/**
 * Schedule benchmark: parse + conversion of a day of 15-minute slots (96) for 1,000 and
 * 10,000 assets, from the text the optimiser writes (pandas split orient), beside
 * JSON.parse of the same text (the floor): in steady state (after untimed runs), and the first
 * conversion in a fresh process (cold code). Prints figures; passes or fails nothing.
 *
 *   npm run bench   (or: node --expose-gc --import tsx bench/schedule.bench.ts [assets...])
 */
import { spawnSync } from 'node:child_process';
import { convertSchedule } from '../src/convert';
import { DispatchEngine } from '../src/engine';

const SLOTS = 96;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const START = Date.parse('2025-06-02T00:00:00Z');

/** A realistic EV schedule: each vehicle changes its setpoint every few slots. */
function makeSplit(assets: number): { text: string; assetMap: Record<string, string> } {
  const columns: string[] = [];
  const assetMap: Record<string, string> = {};
  for (let a = 0; a < assets; a++) {
    columns.push(`ev_ev_${a}_kw`);
    assetMap[`ev_${a}`] = `ast_ev_${a}`;
  }
  columns.push('total_ev_kw', 'price_per_kwh');
  const index: string[] = [];
  const data: number[][] = [];
  for (let s = 0; s < SLOTS; s++) {
    index.push(new Date(START + s * 900_000).toISOString());
    const row: number[] = [];
    let total = 0;
    for (let a = 0; a < assets; a++) {
      // Changes every 4 to 9 slots, between 0 and 22 kW in steps of 0.1.
      const phase = Math.floor(s / (4 + (a % 6)));
      const v = Math.round((((a * 37 + phase * 53) % 221) / 10) * 10) / 10;
      row.push(v);
      total += v;
    }
    row.push(Math.round(total * 10) / 10, 0.2 + (s % 8) / 100);
    data.push(row);
  }
  return { text: JSON.stringify({ columns, index, data }), assetMap };
}

/** A full collection, when node runs with --expose-gc. */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function time(fn: () => unknown): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function fmt(xs: number[]): string {
  return `${median(xs).toFixed(1).padStart(8)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
}

const WARMUP = 20;
const COLD_PROCESSES = 3;

/** The first conversion in a fresh process (nothing compiled yet), printed as JSON. */
function coldChild(assets: number): void {
  const { text, assetMap } = makeSplit(assets);
  const floor = time(() => JSON.parse(text));
  const ours = time(() => convertSchedule(text, { assetMap, now: START }).changes.count);
  console.log(JSON.stringify({ floor, ours }));
}

function cold(assets: number): { floor: number[]; ours: number[] } {
  const floor: number[] = [];
  const ours: number[] = [];
  for (let i = 0; i < COLD_PROCESSES; i++) {
    const r = spawnSync(
      process.execPath,
      [...process.execArgv, __filename, '--cold', String(assets)],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    const res = JSON.parse(line) as { floor: number; ours: number };
    floor.push(res.floor);
    ours.push(res.ours);
  }
  return { floor, ours };
}

function main(): void {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  console.log(
    `schedule benchmark: ${SLOTS} slots, ${RUNS} runs each after ${WARMUP} untimed, median (min, max); node ${process.version}`,
  );
  for (const assets of sizes.length > 0 ? sizes : [1000, 10000]) {
    const { text, assetMap } = makeSplit(assets);
    let commands = 0;
    const floor: number[] = [];
    const ours: number[] = [];
    const objects: number[] = [];
    const engine: number[] = [];
    // One series at a time, each from a collected heap and after untimed runs (the code is
    // compiled and optimised by then: at 1,000 assets the first ~15 runs are slower): the
    // garbage of an engine holding 161,676 commands would otherwise be collected during
    // whatever runs next. (Not a collection before every run: V8 then drops compiled code,
    // and the figure would be of cold code; the cold figure is measured on its own below.)
    const series = (into: number[], fn: () => unknown) => {
      collect();
      for (let r = 0; r < WARMUP; r++) fn();
      for (let r = 0; r < RUNS; r++) into.push(time(fn));
    };
    series(floor, () => JSON.parse(text));
    series(ours, () => {
      commands = convertSchedule(text, { assetMap, now: START }).changes.count;
    });
    series(objects, () => convertSchedule(text, { assetMap, now: START }).commands.length);
    series(engine, () => {
      const e = new DispatchEngine({ clock: { now: () => START } });
      e.scheduleToCommands(text, { assetMap });
    });
    const first = cold(assets);
    const x = (xs: number[], f = floor) => `ratio ${(median(xs) / median(f)).toFixed(2)}x`;
    console.log(
      `\n${assets} assets x ${SLOTS} slots: ${(text.length / 1e6).toFixed(1)} MB of JSON, ${commands} commands`,
    );
    console.log(`  JSON.parse (floor)                 ${fmt(floor)}`);
    console.log(`  parse + convert (the change plan)  ${fmt(ours)}   ${x(ours)}`);
    console.log(
      `  ... and the Command objects        ${fmt(objects)}   ${x(objects)} (conversion.commands read)`,
    );
    console.log(
      `  engine.scheduleToCommands          ${fmt(engine)}   ${x(engine)} (convert + submit to a new engine)`,
    );
    console.log(
      `  first conversion in a new process  ${fmt(first.ours)}   ${x(first.ours, first.floor)} (JSON.parse there ${fmt(first.floor)}; ${COLD_PROCESSES} processes)`,
    );
  }
}

if (process.argv[2] === '--cold') coldChild(Number(process.argv[3]));
else main();
