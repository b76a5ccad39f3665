/**
 * Schedules kept as plans (issue 17): a day of 15-minute slots for 10,000 assets, values
 * changing every 4 to 9 slots (as bench/schedule-flow.bench.ts).
 * - memory per future command: what an engine holds after `submitPlan`, per command to come,
 *   beside the floor (the plan's typed arrays alone: 16 bytes a row) and beside the same
 *   commands registered as objects (`submit`); heap used plus ArrayBuffers, after a GC;
 * - `submitPlan` time; the first slot boundary (every asset's first row made and handed out);
 *   how many command objects exist after that slot and a replacement schedule;
 * - the longest event-loop stall (a 1-ms interval's longest gap) while a real Node-RED flow
 *   registers it: msg.plan into qe-dispatcher (the engine/wire side), the same commands as a
 *   msg.payload array (the old wire), and the whole qe-schedule -> qe-dispatcher flow from
 *   the optimiser's text (its parse and convert included).
 *
 *   node --expose-gc --import tsx bench/plans.bench.ts [assets]   (BENCH_RUNS)
 *
 * Prints figures; passes or fails nothing.
 */
import {
  commandToJSON,
  convertSchedule,
  DispatchEngine,
  ManualClock,
  planOfConversion,
  readPlanInChunks,
} from '../src';
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

const makeSplit = (assets: number, start: number) => splitSchedule(assets, start, { slots: SLOTS });

const gc = () => (globalThis as { gc?: () => void }).gc?.();
const used = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** The longest gap of a 1-ms interval while `work` runs (and until `done` says so). */
async function longestStall(work: () => void, done: () => boolean): Promise<number> {
  let stall = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  }, 1);
  await sleep(20);
  stall = 0;
  last = performance.now();
  work();
  await until(done, 'registered', 120_000, 1);
  await sleep(20);
  clearInterval(probe);
  return stall;
}

async function engineFigures(assets: number): Promise<void> {
  const start = Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000;
  const { text, assetMap } = makeSplit(assets, start);
  const conv = convertSchedule(text, { assetMap, scheduleId: 'day', now: start - 60_000 });
  const count = conv.changes.count;
  console.log(`\n${assets} assets x ${SLOTS} slots: ${count} commands to come`);
  const perCmd = (b: number) => `${(b / count).toFixed(1)} bytes per command`;

  const floor: number[] = [];
  const plan: number[] = [];
  const objects: number[] = [];
  const submitMs: number[] = [];
  const submitCpu: number[] = [];
  const boundaryCpu: number[] = [];
  const boundaryObjCpu: number[] = [];
  const boundaryMs: number[] = [];
  const boundaryObjMs: number[] = [];
  let made = 0;
  let replaced = 0;
  for (let r = 0; r < RUNS; r++) {
    let b = used();
    let p: unknown = planOfConversion(conv);
    floor.push(used() - b);
    p = null;
    const clock = new ManualClock(start - 60_000);
    let e: DispatchEngine | null = new DispatchEngine({ clock });
    b = used();
    let t = nowMs();
    let cpu = process.cpuUsage();
    e.submitPlan(conv);
    submitCpu.push(process.cpuUsage(cpu).user / 1000);
    submitMs.push(nowMs() - t);
    plan.push(used() - b);
    clock.set(start);
    t = nowMs();
    cpu = process.cpuUsage();
    e.getPendingCommands();
    boundaryCpu.push(process.cpuUsage(cpu).user / 1000);
    boundaryMs.push(nowMs() - t);
    // A replacement a slot later: the rows it supersedes are made only as far as the
    // finished commands keep them (maxFinishedCommands).
    clock.set(start + 900_000);
    const next = convertSchedule(makeSplit(assets, start + 900_000).text, {
      assetMap,
      scheduleId: 'day#2',
      now: start + 900_000,
    });
    e.submitPlan(next);
    made = (e as unknown as { tracked: Map<string, unknown> }).tracked.size;
    replaced = next.changes.count;
    e = null;
    // The same commands as objects (today's `submit`).
    const c2 = new ManualClock(start - 60_000);
    let o: DispatchEngine | null = new DispatchEngine({ clock: c2 });
    const commands = convertSchedule(text, { assetMap, scheduleId: 'day', now: start - 60_000 });
    b = used();
    o.submit(commands.commands);
    objects.push(used() - b);
    c2.set(start);
    t = nowMs();
    cpu = process.cpuUsage();
    o.getPendingCommands();
    boundaryObjCpu.push(process.cpuUsage(cpu).user / 1000);
    boundaryObjMs.push(nowMs() - t);
    o = null;
    void p;
  }
  console.log(`  floor: the plan's typed arrays alone      ${perCmd(median(floor))}`);
  console.log(
    `  engine holding the plan (submitPlan)      ${perCmd(median(plan))} (${fmt(
      plan.map((x) => x / 1e6),
      'MB',
    )})`,
  );
  console.log(
    `  engine holding the commands (submit)      ${perCmd(median(objects))} (${fmt(
      objects.map((x) => x / 1e6),
      'MB',
    )})`,
  );
  console.log(`  submitPlan, wall                          ${fmt(submitMs)}`);
  console.log(`  submitPlan, CPU (user)                    ${fmt(submitCpu)}`);
  console.log(`  first slot boundary, plan: wall           ${fmt(boundaryMs)}`);
  console.log(`  ... CPU (user; ${assets} commands made)     ${fmt(boundaryCpu)}`);
  console.log(`  first slot boundary, commands: wall       ${fmt(boundaryObjMs)}`);
  console.log(`  ... CPU (user)                            ${fmt(boundaryObjCpu)}`);
  console.log(
    `  command objects after a slot and a replacement: ${made} (of ${count + replaced} rows)`,
  );
}

/**
 * The CPU (user) of the longest stretch without the event loop while qe-dispatcher's way
 * registers a plan: its chunked check (`readPlanInChunks`), then `submitPlan` of the result.
 */
async function chunkFigures(assets: number): Promise<void> {
  const start = Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000;
  const { text, assetMap } = makeSplit(assets, start);
  const conv = convertSchedule(text, { assetMap, scheduleId: 'day', now: start - 60_000 });
  const chunk: number[] = [];
  const register: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    const plan = planOfConversion(conv);
    let longest = 0;
    let last = process.cpuUsage().user;
    let probing = true;
    const probe = () => {
      const u = process.cpuUsage().user;
      longest = Math.max(longest, u - last);
      last = u;
      if (probing) setImmediate(probe);
    };
    setImmediate(probe);
    const stored = await readPlanInChunks(plan);
    probing = false;
    const e = new DispatchEngine({ clock: new ManualClock(start - 60_000) });
    const cpu = process.cpuUsage();
    e.submitPlan(stored);
    if (r === 0) continue; // warm-up
    chunk.push(longest / 1000);
    register.push(process.cpuUsage(cpu).user / 1000);
  }
  console.log(`  qe-dispatcher's way, longest chunk, CPU   ${fmt(chunk)}`);
  console.log(`  ... then submitPlan of the checked plan   ${fmt(register)}`);
}

async function flowFigures(assets: number): Promise<void> {
  const start = Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000;
  const { text, assetMap } = makeSplit(assets, start);
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
  const nodes = loadNodes('qe-coordinator', 'qe-schedule', 'qe-dispatcher');
  const stalls = { plan: [] as number[], payload: [] as number[], flow: [] as number[] };
  for (let r = 0; r < RUNS; r++) {
    for (const kind of ['plan', 'payload', 'flow'] as const) {
      await loadFlow(nodes, flow);
      const site = (helper.getNode('coord') as unknown as { site: Site }).site;
      const conv = convertSchedule(text, { assetMap, scheduleId: `s${r}`, now: Date.now() });
      const msg =
        kind === 'plan'
          ? { plan: planOfConversion(conv) }
          : kind === 'payload'
            ? { payload: conv.commands.map(commandToJSON) }
            : { payload: text };
      const target = kind === 'flow' ? 'sch' : 'disp';
      const stall = await longestStall(
        () => helper.getNode(target).receive(msg as never),
        () => site.engine.stats().pending > 0,
      );
      stalls[kind].push(stall);
      await helper.unload();
      gc();
    }
  }
  console.log(`\n  through Node-RED (${assets} assets), the longest event-loop stall:`);
  console.log(`  msg.plan into qe-dispatcher               ${fmt(stalls.plan)}`);
  console.log(`  msg.payload of command JSON (old wire)    ${fmt(stalls.payload)}`);
  console.log(
    `  the optimiser's text into qe-schedule     ${fmt(stalls.flow)} (its parse + convert included)`,
  );
}

async function main(): Promise<void> {
  const assets = Number(process.argv[2]) > 0 ? Number(process.argv[2]) : 10_000;
  console.log(`plans: ${SLOTS} slots, ${RUNS} runs each; ${machine()}`);
  if (!(globalThis as { gc?: unknown }).gc)
    console.log('  (no --expose-gc: heap figures include garbage)');
  await engineFigures(assets);
  await chunkFigures(assets);
  await startServer();
  try {
    await flowFigures(assets);
  } finally {
    await stopServer();
  }
}

runBenchmark(main);
