/**
 * Event-loop stalls (issue 17: nothing may hold Node-RED's event loop more than 50 ms at a
 * time). A probe (a 1-ms interval timer) records the longest gap between its ticks while an
 * operation runs: that gap is the longest the operation held the loop.
 *
 * - A schedule of ASSETS x 96 slots (pandas split orient, as JSON text): its floor, the
 *   `JSON.parse` of the text (one piece, not split); the sync conversion
 *   (`site.receiveSchedule`); the same in slices (`convertScheduleAsync`,
 *   `site.receiveScheduleAsync`); through a real Node-RED flow, qe-coordinator +
 *   qe-schedule -> qe-dispatcher, from the message until the plan is registered, with
 *   `persist` off and on; and that flow's steps one by one (parse, convert, the plan's
 *   columns, the dispatcher's read, its registration into an empty site and as a
 *   replacement; the replacement also as `site.submitPlanAsync` makes it, the superseded
 *   rows' CANCELLED commands in slices after the commit), so that the longest turn of each
 *   shows where the time is.
 * - Other operations on a site holding that schedule's commands, each synchronous, so its
 *   time is its stall: `engine.getCommands()`, `site.toJSON()` (a whole save), the
 *   timeline's full snapshot of 2,000 x 96; and that snapshot as the admin endpoint now
 *   makes it, in slices.
 *
 * - The journal (src/journal.ts): writing the `p:` record of a plan of ASSETS x 96 slots,
 *   a new value every slot (from `journal()` until it is written), and a snapshot (`site.save`) of a site holding
 *   160,000 pending commands, both on a JournalStore in a temporary directory; a restart
 *   on those files: loaded at once (a new site's constructor, one turn: its CPU), its first
 *   save and the records of what the restore changed; loaded in slices (`Site.open`, as the
 *   qe-coordinator loads), its longest turn. The same for the plan's journal (its rows
 *   still planned: the site's clock is now).
 *
 *   node --expose-gc --import tsx bench/stalls.bench.ts [assets] [flow]   (BENCH_RUNS;
 *   STALLS_PART=journal runs the journal's part alone)
 *
 * `flow`: only the flow and its steps.
 *
 * Prints figures; passes or fails nothing.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runSliced } from '../src/chunks';
import { CommandType } from '../src/commands';
import { commandsAsync, convertScheduleAsync } from '../src/convert';
import type { PersistChange } from '../src/engine';
import { JournalStore } from '../src/journal';
import { stringifySteps } from '../src/json-chunks';
import { planOfConversionAsync, readPlanInChunks } from '../src/plans';
import { parseScheduleAsync } from '../src/schedule';
import { Site } from '../src/site';
import { buildSnapshot, TimelineFeed } from '../src/timeline';
import {
  COORDINATOR,
  deadline,
  fmt,
  helper,
  loadFlow,
  loadNodes,
  machine,
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
deadline(900);

const collect = () => (globalThis as { gc?: () => void }).gc?.();

/** An hour ahead (nothing falls due), every value changing every 4 to 9 slots or every slot. */
const makeSplit = (assets: number, everySlot = false) =>
  splitSchedule(assets, Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000, {
    slots: SLOTS,
    everySlot,
  });

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * CPU time of the main thread alone, ms (Linux: its schedstat, in ns), or NaN elsewhere:
 * a worker thread's and the GC helpers' time are not the event loop's.
 */
const mainSchedstat = `/proc/self/task/${process.pid}/schedstat`;
const mainSched = (): [number, number] => {
  try {
    const [cpu, wait] = fs.readFileSync(mainSchedstat, 'utf8').split(' ');
    return [Number(cpu) / 1e6, Number(wait) / 1e6];
  } catch {
    return [Number.NaN, Number.NaN];
  }
};
const mainCpuMs = (): number => mainSched()[0];

/**
 * The longest gap between ticks of a 1-ms interval while `op` runs (ms, wall clock), the
 * most CPU time the process used within one gap (ms: what the loop was held for, without
 * the time the OS gave other processes on a loaded machine), and op's time.
 */
async function stallOf(op: () => unknown): Promise<{
  stallMs: number;
  cpuMs: number;
  mainMs: number;
  longest: { mainMs: number; waitMs: number };
  ms: number;
}> {
  collect();
  let stallMs = 0;
  let stallCpu = 0;
  let stallMain = 0; // the main thread's CPU within a gap (the journal's part)
  // Within the longest gap: the main thread's CPU and its wait for a core.
  let longest = { mainMs: 0, waitMs: 0 };
  let last = performance.now();
  let lastCpu = cpuMs();
  let [lastMain, lastWait] = mainSched();
  const probe = setInterval(() => {
    const now = performance.now();
    const cpu = cpuMs();
    const [main, wait] = mainSched();
    if (now - last > stallMs) longest = { mainMs: main - lastMain, waitMs: wait - lastWait };
    stallMs = Math.max(stallMs, now - last);
    stallCpu = Math.max(stallCpu, cpu - lastCpu);
    stallMain = Math.max(stallMain, main - lastMain);
    last = now;
    lastCpu = cpu;
    lastMain = main;
    lastWait = wait;
  }, 1);
  await sleep(20);
  stallMs = 0;
  stallCpu = 0;
  stallMain = 0;
  longest = { mainMs: 0, waitMs: 0 };
  last = performance.now();
  lastCpu = cpuMs();
  [lastMain, lastWait] = mainSched();
  const t = performance.now();
  await op();
  const ms = performance.now() - t;
  await sleep(5); // the probe's tick after the last piece of work
  clearInterval(probe);
  return { stallMs, cpuMs: stallCpu, mainMs: stallMain, longest, ms };
}

/** `measure` with the main thread's CPU within a gap too (the journal's figures). */
async function measureMain(name: string, op: () => unknown): Promise<void> {
  const runs: Awaited<ReturnType<typeof stallOf>>[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await stallOf(op));
  reportMain(name, runs);
}

function reportMain(name: string, runs: Awaited<ReturnType<typeof stallOf>>[]): void {
  report(
    name,
    runs.map((r) => r.stallMs),
    runs.map((r) => r.cpuMs),
    runs.map((r) => r.ms),
  );
  console.log(
    `  ${''.padEnd(52)} main thread's CPU within a gap ${fmt(runs.map((r) => r.mainMs))}; in the longest gap it ran ${fmt(runs.map((r) => r.longest.mainMs))}, waited for a core ${fmt(runs.map((r) => r.longest.waitMs))}`,
  );
}

async function measure(name: string, op: () => unknown): Promise<void> {
  const stalls: number[] = [];
  const cpus: number[] = [];
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const { stallMs, cpuMs, ms } = await stallOf(op);
    stalls.push(stallMs);
    cpus.push(cpuMs);
    times.push(ms);
  }
  report(name, stalls, cpus, times);
}

function report(name: string, stalls: number[], cpus: number[], times: number[]): void {
  console.log(
    `  ${name.padEnd(52)} longest stall ${fmt(stalls)}, in CPU ${fmt(cpus)}; total ${fmt(times)}`,
  );
}

/**
 * The flow: qe-coordinator (`persist` off, or on: a journal in a temporary user directory) +
 * qe-schedule -> qe-dispatcher, from the optimiser's text in msg.payload until the plan is
 * registered (every command PENDING).
 */
async function flowRun(text: string, assetMap: Record<string, string>, persist: boolean) {
  const stalls: number[] = [];
  const cpus: number[] = [];
  const times: number[] = [];
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-stalls-'));
  helper.settings({ userDir });
  try {
    for (let r = 0; r < RUNS; r++) {
      const flow = [
        { id: 'f1', type: 'tab', label: 'bench' },
        { ...COORDINATOR, id: `coord${r}`, persist },
        {
          id: 'sch',
          type: 'qe-schedule',
          z: 'f1',
          coordinator: `coord${r}`,
          assetMap: JSON.stringify(assetMap),
          ratedKw: '{}',
          timeZone: 'UTC',
          wires: [['disp']],
        },
        { id: 'disp', type: 'qe-dispatcher', z: 'f1', coordinator: `coord${r}`, wires: [[]] },
      ];
      await loadFlow(loadNodes('qe-coordinator', 'qe-schedule', 'qe-dispatcher'), flow);
      const site = (helper.getNode(`coord${r}`) as unknown as { site: Site }).site;
      const { stallMs, cpuMs, ms } = await stallOf(async () => {
        helper.getNode('sch').receive({ payload: text } as never);
        await until(() => site.engine.stats().pending > 0, 'commands pending', 300_000, 1);
        // With persist on: the journal writes this turn's records in the next ones.
        if (persist) await sleep(300);
      });
      stalls.push(stallMs);
      cpus.push(cpuMs);
      times.push(ms);
      await helper.unload();
    }
  } finally {
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  report(
    `through the flow, persist ${persist ? 'on' : 'off'}: message -> plan registered`,
    stalls,
    cpus,
    times,
  );
}

/**
 * The flow's steps one by one, each measured alone (the longest gap while it runs, and the
 * CPU within it): qe-schedule's parse and convert slices and the plan's columns, then
 * qe-dispatcher's read (`engine.stagePlan` in slices) and its registration
 * (`engine.commitPlan`, one step), into an empty site and as a replacement of the same size.
 */
async function flowSteps(text: string, assetMap: Record<string, string>): Promise<void> {
  const base = { assetMap, now: Date.now(), scheduleId: 'steps' };
  await measure('step: parse (parseScheduleAsync, slices)', () => parseScheduleAsync(text));
  const parsed = await parseScheduleAsync(text);
  await measure('step: convert (convertScheduleAsync of it, slices)', () =>
    convertScheduleAsync(parsed, base),
  );
  const conversion = await convertScheduleAsync(parsed, base);
  await measure('step: the plan (planOfConversionAsync, slices)', () =>
    planOfConversionAsync(conversion),
  );
  const plan = await planOfConversionAsync(conversion);
  await measure('step: dispatcher read (readPlanInChunks, slices)', () => readPlanInChunks(plan));
  const later = await convertScheduleAsync(parsed, { ...base, scheduleId: 'later' });
  const laterPlan = await planOfConversionAsync(later);
  for (const replace of [false, true]) {
    const name = replace ? 'replacing one as big' : 'into an empty site';
    const stalls: number[] = [];
    const cpus: number[] = [];
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const site = new Site({ siteId: 'commit', onError: () => {} });
      if (replace) site.submitPlan(await readPlanInChunks(plan));
      const stored = await runSliced(site.engine.stagePlan(replace ? laterPlan : plan));
      const m = await stallOf(() => site.engine.commitPlan(stored));
      stalls.push(m.stallMs);
      cpus.push(m.cpuMs);
      times.push(m.ms);
      await site.stop();
    }
    report(`step: register (engine.commitPlan), ${name}`, stalls, cpus, times);
  }
  // What site.submitPlanAsync does: the commit with the cut rows made afterwards in slices.
  const stalls: number[] = [];
  const cpus: number[] = [];
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const site = new Site({ siteId: 'commit', onError: () => {} });
    site.submitPlan(await readPlanInChunks(plan));
    const stored = await runSliced(site.engine.stagePlan(laterPlan));
    const m = await stallOf(() => site.submitPlanAsync(stored));
    stalls.push(m.stallMs);
    cpus.push(m.cpuMs);
    times.push(m.ms);
    await site.stop();
  }
  report(
    'step: register replacing one as big, cut rows in slices (submitPlanAsync)',
    stalls,
    cpus,
    times,
  );
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/**
 * The journal's work: the record of a plan of `assets` x 96 slots, every value new each slot
 * (the largest such plan), and a snapshot of a large state.
 */
async function journalStalls(assets: number): Promise<void> {
  const { text, assetMap } = makeSplit(assets, true);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-stalls-journal-'));
  try {
    const planSite = new Site({ siteId: 'plan', onError: () => {} });
    let change: PersistChange | null = null;
    planSite.engine.onPersist((c) => {
      if (c.key.startsWith('p:')) change = c;
    });
    planSite.submitPlan(planSite.receiveSchedule(text, { assetMap, scheduleId: 'big' }));
    const p = change as PersistChange | null;
    if (p === null) throw new Error('no p: record');
    const rows = planSite.engine.stats().pending;
    console.log(`\nthe journal (${dir})`);
    await measureMain('nothing: the probe alone for 500 ms', () => sleep(500));
    const planStore = new JournalStore(path.join(dir, 'plan'));
    await measureMain(`a plan's p: record (${rows} rows) journaled`, async () => {
      planStore.journal(p);
      while (planStore.backlog > 0) await nextTurn();
    });
    await planStore.close();
    console.log(`  (${(planStore.stats.recordBytes / 1e6 / RUNS).toFixed(1)} MB a record)`);

    const t0 = Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000;
    const cmds = [];
    for (let a = 0; a < 10_000; a++)
      for (let s = 0; s < 16; s++)
        cmds.push({
          id: `c${a}-${s}`,
          assetId: `a${a}`,
          type: CommandType.SET_CHARGE_RATE,
          valueKw: (s % 22) + 1,
          scheduledAt: t0 + s * 900_000,
          validUntil: t0 + (s + 1) * 900_000,
        });
    // Snapshots as the site takes them (`compact`): in a worker thread (the default), and
    // on the event loop in slices (`snapshotWorker: false`). The CPU column counts every
    // thread of the process, the worker's too.
    for (const snapshotWorker of [true, false]) {
      const store = new JournalStore(path.join(dir, `snap-${snapshotWorker}`), { snapshotWorker });
      const site = new Site({ siteId: 'snap', store, onError: () => {} });
      site.submit(cmds);
      if (snapshotWorker) {
        // The burst's records (the submit itself, engine work, is before the probe starts).
        const run = await stallOf(async () => {
          while (store.backlog > 0) await nextTurn();
        });
        reportMain(`the records of ${cmds.length} new commands journaled`, [run]);
      } else while (store.backlog > 0) await nextTurn();
      const pending = site.engine.stats().pending;
      const how = snapshotWorker ? 'in a worker' : 'on the loop, in slices';
      await measureMain(`a snapshot (site.save) of ${pending} pending commands, ${how}`, () =>
        site.save(),
      );
      console.log(`  (${(store.stats.snapshotBytes / 1e6 / RUNS).toFixed(1)} MB a snapshot)`);
      await site.stop();
    }
    // A restart on the worker's files: a new site loads them at once (in its constructor,
    // one turn: its CPU, before the probe), then its first save and the records of what the
    // restore changed; and the same files loaded in slices (Site.open, the way the
    // qe-coordinator loads: the probe runs meanwhile). Now, and at the end of the 4th slot
    // (its clock moved: 40,000 commands expire on restore).
    const restartDir = path.join(dir, 'snap-true');
    const keep = () => {
      // The next run restarts from the same state: what the last one wrote undone.
      fs.rmSync(restartDir, { recursive: true, force: true });
      fs.cpSync(`${restartDir}-kept`, restartDir, { recursive: true });
    };
    fs.cpSync(restartDir, `${restartDir}-kept`, { recursive: true });
    for (const [later, at] of [
      ['', 0],
      [', 4 slots in (40,000 expire)', t0 + 4 * 900_000],
    ] as const) {
      const offset = at === 0 ? 0 : at - Date.now();
      const clock = { now: () => Date.now() + offset };
      const restarts: Awaited<ReturnType<typeof stallOf>>[] = [];
      const sliced: Awaited<ReturnType<typeof stallOf>>[] = [];
      const loads: number[] = [];
      let pending = 0;
      // The site loaded at once is gone (not referenced) before the next loads in slices,
      // as after a restart or a redeploy: holding both made a full collection of the first
      // one's heap fall inside the second one's load.
      const restartAtOnce = async () => {
        collect();
        const loadStarted = mainCpuMs();
        const store = new JournalStore(restartDir);
        const site = new Site({ siteId: 'snap', store, clock, onError: () => {} });
        loads.push(mainCpuMs() - loadStarted);
        pending = site.engine.stats().pending;
        restarts.push(
          await stallOf(async () => {
            await site.save();
            while (store.backlog > 0) await nextTurn();
          }),
        );
        await site.stop();
      };
      for (let r = 0; r < RUNS; r++) {
        await restartAtOnce();
        keep();
        let opened: Site | null = null;
        sliced.push(
          await stallOf(async () => {
            opened = await Site.open({
              siteId: 'snap',
              store: new JournalStore(restartDir),
              clock,
              onError: () => {},
            });
          }),
        );
        const o = opened as Site | null;
        if (o === null || o.engine.stats().pending !== pending) throw new Error('not the same');
        await o.stop();
        keep();
      }
      reportMain(`a restart's first save, ${pending} pending${later}`, restarts);
      console.log(
        `  ${''.padEnd(52)} (the load before it, at once: one turn, main thread's CPU ${fmt(loads)})`,
      );
      reportMain(`a restart's load in slices (Site.open), ${pending} pending${later}`, sliced);
    }
    // A restart of a site holding the plan of ASSETS x 96 (its p: record, journaled above),
    // at once (one turn) and in slices.
    const planDir = path.join(dir, 'plan');
    fs.cpSync(planDir, `${planDir}-kept`, { recursive: true });
    const planLoads: number[] = [];
    const planSliced: Awaited<ReturnType<typeof stallOf>>[] = [];
    let planRows = 0;
    const planAtOnce = async () => {
      collect();
      const loadStarted = mainCpuMs();
      const atOnce = new Site({
        siteId: 'plan',
        store: new JournalStore(planDir),
        onError: () => {},
      });
      planLoads.push(mainCpuMs() - loadStarted);
      planRows = atOnce.engine.stats().pending;
      await atOnce.stop();
    };
    for (let r = 0; r < RUNS; r++) {
      await planAtOnce();
      fs.rmSync(planDir, { recursive: true, force: true });
      fs.cpSync(`${planDir}-kept`, planDir, { recursive: true });
      planSliced.push(
        await stallOf(async () => {
          const o = await Site.open({
            siteId: 'plan',
            store: new JournalStore(planDir),
            onError: () => {},
          });
          if (o.engine.stats().pending !== planRows) throw new Error('not the same');
          await o.stop();
        }),
      );
      fs.rmSync(planDir, { recursive: true, force: true });
      fs.cpSync(`${planDir}-kept`, planDir, { recursive: true });
    }
    reportMain(`a restart's load in slices, a plan of ${planRows} rows`, planSliced);
    console.log(`  ${''.padEnd(52)} (at once: one turn, main thread's CPU ${fmt(planLoads)})`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The flow with persist off and on, then its steps one by one. */
async function flowParts(text: string, assetMap: Record<string, string>): Promise<void> {
  await startServer();
  try {
    await flowRun(text, assetMap, false);
    await flowRun(text, assetMap, true);
  } finally {
    await stopServer();
  }
  await flowSteps(text, assetMap);
}

async function main(): Promise<void> {
  const assets = Number(process.argv[2]) > 0 ? Number(process.argv[2]) : 10_000;
  console.log(`event-loop stalls: ${RUNS} runs each; ${machine()}`);
  const { text, assetMap } = makeSplit(assets);
  if (process.env.STALLS_PART === 'journal') return journalStalls(assets);
  console.log(
    `\na schedule of ${assets} assets x ${SLOTS} slots (${(text.length / 1e6).toFixed(1)} MB of JSON)`,
  );
  // What the machine itself adds: the probe with nothing else to do.
  await measure('nothing: the probe alone for 500 ms', () => sleep(500));
  await measure('floor: JSON.parse of the text', () => JSON.parse(text));
  if (process.argv[3] === 'flow') return flowParts(text, assetMap);
  let id = 0;
  await measure('site.receiveSchedule (sync)', () =>
    new Site({ siteId: 'b' }).receiveSchedule(text, { assetMap, scheduleId: `s${id++}` }),
  );
  await measure('convertScheduleAsync (in slices)', () => convertScheduleAsync(text, { assetMap }));
  await measure('... and its commands made in slices (commandsAsync)', async () => {
    const c = await convertScheduleAsync(text, { assetMap });
    return (await commandsAsync(c)).length;
  });
  await measure('site.receiveScheduleAsync (in slices)', () =>
    new Site({ siteId: 'b' }).receiveScheduleAsync(text, { assetMap, scheduleId: `s${id++}` }),
  );
  await flowParts(text, assetMap);

  console.log(`\na site holding those ${assets} x ${SLOTS} schedule's commands`);
  const site = new Site({ siteId: 'big', onError: () => {} });
  site.engine.scheduleToCommands(text, { assetMap });
  console.log(`  (${site.engine.stats().pending} commands pending)`);
  await measure('engine.getCommands() (all of them)', () => site.engine.getCommands().length);
  await measure('site.toJSON() (a whole save, before the file)', () => site.toJSON());
  await measure('JSON.stringify(site.toJSON())', () => JSON.stringify(site.toJSON()).length);

  const small = makeSplit(2000, true); // a command per slot: 192,000

  const tl = new Site({ siteId: 'tl', onError: () => {} });
  tl.engine.scheduleToCommands(small.text, { assetMap: small.assetMap });
  console.log(`  (timeline site: ${tl.engine.stats().pending} commands pending)`);
  await measure('timeline snapshot, 2,000 assets (build)', () => buildSnapshot(tl, Date.now()));
  const snap = JSON.stringify(buildSnapshot(tl, Date.now()));
  await measure(`... and JSON.stringify (${(snap.length / 1e6).toFixed(1)} MB)`, () =>
    JSON.stringify(buildSnapshot(tl, Date.now())),
  );
  // What the admin endpoint now does: both in slices.
  const feed = new TimelineFeed(tl, { publish: () => {} });
  await measure('timeline snapshot in slices: snapshotAsync + stringifySteps', async () => {
    const text = await runSliced(stringifySteps(await feed.snapshotAsync()));
    return text.length;
  });
  feed.stop();
  await journalStalls(assets);
}

runBenchmark(main);
