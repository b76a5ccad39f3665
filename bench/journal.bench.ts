/**
 * Journal benchmark (issue 17): what persistence writes, for SD cards. A site of 2,000
 * chargers with 15-minute slots for a day on a fake clock (a schedule every 15 minutes, each
 * command dispatched, acknowledged, completed), journaled by a JournalStore: bytes per change
 * and per day, beside their floors (the raw facts of the changes; the whole-state saves of
 * FileStore, one per burst of changes). Then a snapshot of a large state (160,000 pending
 * commands): its time and the longest event-loop stall while it runs (the journal compacts
 * its own files in a worker thread), beside what a snapshot of the live site costs at least
 * (building its document, in one turn). Then the same day the way qe-schedule ->
 * qe-dispatcher registers it: every 15 minutes the optimiser's whole next 24 hours (96 slots,
 * every value new) submitted as a plan (`site.submitPlan`), which supersedes the last one:
 * what the plans' `p:` records add (`JOURNAL_PLANS=0` leaves it out). Prints figures; passes
 * or fails nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../src/clock';
import { CommandType } from '../src/commands';
import { JournalStore } from '../src/journal';
import { Site, type Timers } from '../src/site';
import { machine } from './lib';

const CHARGERS = Number(process.env.JOURNAL_CHARGERS) || 2000;
const SLOT_MS = 900_000;
const SLOTS = 96;
const T0 = Date.parse('2025-06-02T00:00:00Z');

/** Timers that fire when `run()` is called (the bench moves its clock itself). */
class StepTimers implements Timers {
  private seq = 0;
  private readonly due = new Map<number, () => void>();
  setTimeout(fn: () => void, _ms: number): unknown {
    const id = ++this.seq;
    this.due.set(id, fn);
    return id;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  run(): void {
    const fns = [...this.due.values()];
    this.due.clear();
    for (const f of fns) f();
  }
}

const turn = () => new Promise<void>((r) => setImmediate(r));
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

async function day(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-journal-bench-'));
  const clock = new ManualClock(T0 - 60_000);
  const timers = new StepTimers();
  const store = new JournalStore(dir);
  const site = new Site({ siteId: 'depot', clock, timers, store });
  const adapter = { protocol: 'bench', dispatch: () => undefined };
  for (let a = 0; a < CHARGERS; a++) site.adapterRegistry.register(`cp${a}`, adapter);
  let changes = 0;
  site.engine.onPersist(() => changes++);
  let facts = 0; // bytes of the raw facts: who, what, when
  let wholeSaves = 0; // bytes FileStore would write: the whole state after each burst
  let stateBytes = 0;
  const burst = async () => {
    await turn();
    timers.run(); // a snapshot the journal asked for
    stateBytes = JSON.stringify(site.toJSON()).length;
    wholeSaves += stateBytes;
  };
  const started = process.hrtime.bigint();
  for (let s = 0; s < SLOTS; s++) {
    const at = T0 + s * SLOT_MS;
    clock.set(at - 60_000);
    // The optimiser's schedule for the next slot.
    const cmds = [];
    for (let a = 0; a < CHARGERS; a++) {
      const c = {
        id: `s${s}-cp${a}`,
        assetId: `cp${a}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: ((a + s) % 22) + 0.5,
        scheduledAt: at,
        validUntil: at + SLOT_MS,
        scheduleId: `day-${s}`,
      };
      cmds.push(c);
      // id, asset, value (4 bytes), time (8), type (1)
      facts += c.id.length + c.assetId.length + 13;
    }
    site.submit(cmds, 'disp-1');
    await burst();
    clock.set(at);
    const due = site.engine.getPendingCommands(at);
    for (const c of due) site.engine.markDispatched(c);
    await burst();
    clock.set(at + 2000);
    for (const c of due) site.engine.handleResponse(c, true, null, { completed: false });
    await burst();
    clock.set(at + 30_000);
    for (const c of due) site.engine.complete(c);
    await burst();
    // Three status changes: id, status (1 byte), time (8).
    for (const c of due) facts += 3 * (c.id.length + 9);
  }
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  await site.stop();
  const st = store.stats;
  const written = st.recordBytes + st.snapshotBytes;
  console.log(
    `a day of ${CHARGERS} chargers x ${SLOTS} slots of 15 min (${CHARGERS * SLOTS} commands, each created, dispatched, acknowledged, completed): ${changes} changes, simulated in ${(wallMs / 1000).toFixed(1)} s`,
  );
  console.log(
    `  journal records       ${mb(st.recordBytes)} in ${st.records} records, ${st.writes} writes: ${(st.recordBytes / st.records).toFixed(0)} bytes per record`,
  );
  console.log(
    `  snapshots             ${mb(st.snapshotBytes)} in ${st.snapshots} snapshots (last state ${mb(stateBytes)})`,
  );
  console.log(
    `  written per day       ${mb(written)}   floor (raw facts) ${mb(facts)} (${(written / facts).toFixed(1)}x); FileStore, a whole save per burst: ${mb(wholeSaves)} (${(wholeSaves / written).toFixed(0)}x the journal)`,
  );
  const tbw = 32 * 1e12 * 0.03; // assumption: a 32 GB card rated ~1,000 P/E cycles -> ~32 TBW; 3% of that, a cheap card without wear figures
  console.log(
    `  a 32 GB SD card (assumed ~1 TB written before wear-out, a cheap card): ${(tbw / written / 365).toFixed(0)} years at this rate; with whole saves ${(tbw / wholeSaves / 365).toFixed(1)} years`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

async function compaction(): Promise<void> {
  const ASSETS = Number(process.env.JOURNAL_ASSETS) || 10_000;
  const PER = 16;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-journal-bench-'));
  const clock = new ManualClock(T0 - 60_000);
  const timers = new StepTimers();
  const store = new JournalStore(dir);
  const site = new Site({ siteId: 'big', clock, timers, store });
  const cmds = [];
  for (let a = 0; a < ASSETS; a++) {
    for (let s = 0; s < PER; s++) {
      cmds.push({
        id: `c${a}-${s}`,
        assetId: `a${a}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: (s % 22) + 1,
        scheduledAt: T0 + s * SLOT_MS,
      });
    }
  }
  // The turns that journal a large schedule: ~8 ms (at most FLUSH_SLICE commands) a turn.
  let maxGap = 0;
  let last = process.hrtime.bigint();
  let watching = true;
  const watch = () => {
    const now = process.hrtime.bigint();
    maxGap = Math.max(maxGap, Number(now - last) / 1e6);
    last = now;
    if (watching) setImmediate(watch);
  };
  let t = process.hrtime.bigint();
  site.submit(cmds);
  const submitMs = Number(process.hrtime.bigint() - t) / 1e6;
  const drainStart = process.hrtime.bigint();
  last = drainStart;
  setImmediate(watch);
  while (store.backlog > 0) await turn();
  const drainMs = Number(process.hrtime.bigint() - drainStart) / 1e6;
  const drainGap = maxGap;
  const journalBytes = store.stats.recordBytes;
  const writes = store.stats.writes;
  maxGap = 0;
  t = process.hrtime.bigint();
  const doc = site.toJSON();
  const buildMs = Number(process.hrtime.bigint() - t) / 1e6;
  await turn();
  maxGap = 0;
  last = process.hrtime.bigint();
  t = process.hrtime.bigint();
  await site.save();
  const saveMs = Number(process.hrtime.bigint() - t) / 1e6;
  watching = false;
  console.log(
    `a large state: ${ASSETS * PER} pending commands (${ASSETS} assets x ${PER} slots), snapshot ${mb(store.stats.snapshotBytes)}`,
  );
  console.log(
    `  journaling the schedule          ${drainMs.toFixed(0)} ms over ${writes} turns (${mb(journalBytes)}, ${(journalBytes / (ASSETS * PER)).toFixed(0)} bytes a command), longest stall ${drainGap.toFixed(0)} ms; floor: registering it (engine.submit) ${submitMs.toFixed(0)} ms in one turn`,
  );
  console.log(
    `  snapshot (site.save)             ${saveMs.toFixed(0)} ms, longest event-loop stall meanwhile ${maxGap.toFixed(0)} ms (compacted from the journal's files in a worker); a snapshot of the live site would first build its document in one turn: ${buildMs.toFixed(0)} ms (doc of ${doc.engine.commands.length} commands)`,
  );
  await site.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A day of whole-day plans, one every 15 minutes, each superseding the last. */
async function dayOfPlans(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-journal-bench-'));
  const clock = new ManualClock(T0 - 60_000);
  const timers = new StepTimers();
  const store = new JournalStore(dir);
  const site = new Site({ siteId: 'depot', clock, timers, store });
  const adapter = { protocol: 'bench', dispatch: () => undefined };
  const assetMap: Record<string, string> = {};
  const columns: string[] = [];
  for (let a = 0; a < CHARGERS; a++) {
    site.adapterRegistry.register(`cp${a}`, adapter);
    assetMap[`cp${a}`] = `cp${a}`;
    columns.push(`ev_cp${a}_kw`);
  }
  let planRows = 0;
  let planFacts = 0; // a row's raw facts: asset index (2), slot (2), value (4)
  const started = process.hrtime.bigint();
  for (let s = 0; s < SLOTS; s++) {
    const at = T0 + s * SLOT_MS;
    clock.set(at - 60_000);
    const index = Array.from({ length: SLOTS }, (_, k) => new Date(at + k * SLOT_MS).toISOString());
    const data = index.map((_, k) => columns.map((_, a) => ((a + s + 3 * k) % 22) + 0.5));
    const conversion = site.receiveSchedule({ columns, index, data }, { assetMap });
    planRows += conversion.changes.count;
    planFacts += conversion.changes.count * 8;
    site.submitPlan(conversion, 'disp-1');
    await turn();
    timers.run();
    clock.set(at);
    const due = site.engine.getPendingCommands(at);
    for (const c of due) site.engine.markDispatched(c);
    await turn();
    clock.set(at + 2000);
    for (const c of due) site.engine.handleResponse(c, true, null, { completed: false });
    await turn();
    clock.set(at + 30_000);
    for (const c of due) site.engine.complete(c);
    await turn();
    timers.run();
  }
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  await site.stop();
  const st = store.stats;
  const written = st.recordBytes + st.snapshotBytes;
  console.log(
    `a day of ${CHARGERS} chargers, a plan of the next 96 slots every 15 min (${planRows} planned rows, ${SLOTS * CHARGERS} of them made into commands and answered), simulated in ${(wallMs / 1000).toFixed(1)} s`,
  );
  console.log(
    `  journal records       ${mb(st.recordBytes)} in ${st.records} records; snapshots ${mb(st.snapshotBytes)} in ${st.snapshots}`,
  );
  console.log(
    `  written per day       ${mb(written)}: ${(written / planRows).toFixed(1)} bytes per planned row; floor (raw facts of the rows, 8 bytes each) ${mb(planFacts)} (${(written / planFacts).toFixed(1)}x)`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  console.log(`journal benchmark; ${machine()}`);
  await day();
  await compaction();
  if (process.env.JOURNAL_PLANS !== '0') await dayOfPlans();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
