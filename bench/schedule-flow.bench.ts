/**
 * A schedule through a Node-RED flow: qe-coordinator + qe-schedule -> qe-dispatcher, the
 * optimiser's text (pandas split orient, a day of 15-minute slots) sent to qe-schedule;
 * the time until every command is PENDING in the engine (convert, the message of command
 * JSON, the dispatcher validating and registering each), and the heap it then holds; then
 * saving a site holding those commands to a state file (its time, the longest event-loop
 * stall, the size). No floor of its own: the conversion's floor is in bench/schedule.bench.ts.
 *
 *   node --expose-gc --import tsx bench/schedule-flow.bench.ts [assets...]   (BENCH_RUNS)
 *
 * Prints figures; passes or fails nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStore, Site } from '../src';
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
  runBenchmark,
  runs,
  sleep,
  splitSchedule,
  startServer,
  stopServer,
  until,
} from './lib';

const SLOTS = 96;
const RUNS = runs(3);
deadline(600);

const makeSplit = (assets: number, start: number) => splitSchedule(assets, start, { slots: SLOTS });

const collect = () => (globalThis as { gc?: () => void }).gc?.();

async function oneRun(assets: number): Promise<{ ms: number; commands: number; heapMb: number }> {
  // An hour ahead: nothing falls due while the figure is taken.
  const { text, assetMap } = makeSplit(
    assets,
    Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000,
  );
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    {
      id: 'sch',
      type: 'qe-schedule',
      z: 'f1',
      coordinator: 'coord',
      assetMap: JSON.stringify(assetMap),
      ratedKw: '{}',
      timeZone: 'UTC',
      wires: [['disp']],
    },
    { id: 'disp', type: 'qe-dispatcher', z: 'f1', coordinator: 'coord', wires: [[]] },
  ];
  await loadFlow(loadNodes('qe-coordinator', 'qe-schedule', 'qe-dispatcher'), flow);
  const site = (helper.getNode('coord') as unknown as { site: Site }).site;
  collect();
  const before = process.memoryUsage().heapUsed;
  const t = nowMs();
  helper.getNode('sch').receive({ payload: text } as never);
  await until(() => site.engine.stats().pending > 0, 'commands pending', 120_000, 1);
  const ms = nowMs() - t;
  const commands = site.engine.stats().pending;
  collect();
  const heapMb = (process.memoryUsage().heapUsed - before) / 1e6;
  await helper.unload();
  return { ms, commands, heapMb };
}

/**
 * Saving a site holding that schedule's commands to a state file (what qe-coordinator's
 * "persist" does after changes): how long a save takes, the longest the event loop then
 * waits (a 1-ms interval timer's longest gap), and the file's size.
 */
async function saveRun(assets: number): Promise<{ ms: number; stallMs: number; mb: number }> {
  const { text, assetMap } = makeSplit(
    assets,
    Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-bench-save-'));
  const file = path.join(dir, 'site.json');
  try {
    const site = new Site({ siteId: 'bench', store: new FileStore(file) });
    site.engine.scheduleToCommands(text, { assetMap });
    collect();
    let stallMs = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      stallMs = Math.max(stallMs, now - last);
      last = now;
    }, 1);
    await sleep(20);
    const t = nowMs();
    await site.save();
    const ms = nowMs() - t;
    clearInterval(probe);
    return { ms, stallMs, mb: fs.statSync(file).size / 1e6 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  console.log(`schedule through a flow: ${SLOTS} slots, ${RUNS} runs each; ${machine()}`);
  if (!(globalThis as { gc?: unknown }).gc) {
    console.log('  (no --expose-gc: the heap figures include garbage not yet collected)');
  }
  await startServer();
  try {
    for (const assets of sizes.length > 0 ? sizes : [1000, 10000]) {
      await oneRun(assets); // warm-up
      const ms: number[] = [];
      const heap: number[] = [];
      let commands = 0;
      for (let r = 0; r < RUNS; r++) {
        const res = await oneRun(assets);
        ms.push(res.ms);
        heap.push(res.heapMb);
        commands = res.commands;
      }
      console.log(`\n${assets} assets x ${SLOTS} slots (${commands} commands)`);
      console.log(`  schedule message -> every command PENDING   ${fmt(ms)}`);
      console.log(
        `  heap held by the pending commands           ${fmt(heap, 'MB')}, ${((median(heap) * 1e6) / commands).toFixed(0)} bytes per command`,
      );
      const save: number[] = [];
      const stall: number[] = [];
      let mb = 0;
      for (let r = 0; r < RUNS; r++) {
        const res = await saveRun(assets);
        save.push(res.ms);
        stall.push(res.stallMs);
        mb = res.mb;
      }
      console.log(
        `  ${`saving that state to a file (${mb.toFixed(0)} MB)`.padEnd(44)}${fmt(save)}`,
      );
      console.log(`  ... the longest the event loop waits        ${fmt(stall)}`);
    }
  } finally {
    await stopServer();
  }
}

runBenchmark(main);
