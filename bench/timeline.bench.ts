/**
 * The timeline of the editor's sidebar tab (src/timeline.ts): what a busy site sends to an
 * editor, and what it costs with no editor open.
 *
 * - Snapshot: a site of 2,000 assets x 96 slots (192,000 commands), built and serialised as
 *   the admin endpoint does (time, bytes).
 * - Live: a site whose dispatcher answers at once; commands arrive in bursts (BURST every
 *   10 ms for SECONDS), each created, dispatched and completed (its changes: one a status).
 *   Run with no lease (nobody watches: publishes must be 0) and with one (the throttle of
 *   250 ms): changes seen per second, deltas and bytes per second sent to the editor, and the
 *   process CPU time per 1,000 commands of each.
 *
 *   node --import tsx bench/timeline.bench.ts   (BENCH_RUNS, BENCH_SECONDS, BENCH_BURST)
 *
 * Prints figures; passes or fails nothing.
 */
import { type Command, Site, type TimelineDelta, TimelineFeed } from '../src';
import { buildSnapshot } from '../src/timeline';
import { deadline, fmt, machine, median, runBenchmark, runs, sleep } from './lib';

const RUNS = runs(3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const BURST = Number(process.env.BENCH_BURST ?? 20);
const ASSETS = 2000;
const SLOTS = 96;

deadline(240);

function snapshotRun(): { buildMs: number; jsonMs: number; bytes: number; commands: number } {
  const site = new Site({
    siteId: 'bench',
    config: { maxFinishedCommands: 0 },
    onError: () => {},
  });
  const start = Date.now() + 60_000;
  const inputs = [];
  for (let a = 0; a < ASSETS; a++) {
    for (let s = 0; s < SLOTS; s++) {
      inputs.push({
        assetId: `ast_${a}`,
        type: 'SET_CHARGE_RATE' as const,
        valueKw: (a + s) % 11,
        scheduledAt: start + s * 900_000,
        validUntil: start + (s + 1) * 900_000,
      });
    }
  }
  site.submit(inputs, 'bench');
  const t0 = performance.now();
  const snap = buildSnapshot(site, Date.now());
  const t1 = performance.now();
  const json = JSON.stringify(snap);
  const t2 = performance.now();
  void site.stop();
  return { buildMs: t1 - t0, jsonMs: t2 - t1, bytes: json.length, commands: snap.commands.length };
}

interface LiveResult {
  commands: number;
  changes: number;
  deltas: number;
  bytes: number;
  cpuMs: number;
  seconds: number;
}

async function liveRun(watched: boolean): Promise<LiveResult> {
  const site = new Site({
    siteId: 'bench',
    config: { maxFinishedCommands: 20_000 },
    onError: (e) => console.error(e.message),
  });
  site.attachDispatcher('d', {
    deliver: (cmd: Command) => queueMicrotask(() => site.respond(cmd.id, true)),
    undeliverable: () => {},
  });
  site.start();
  let deltas = 0;
  let bytes = 0;
  const feed = new TimelineFeed(site, {
    publish: (d: TimelineDelta) => {
      deltas++;
      bytes += JSON.stringify(d).length; // what RED.comms sends, roughly
    },
  });
  if (watched) feed.snapshot();
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  while (performance.now() < end) {
    const burst = [];
    for (let i = 0; i < BURST; i++, n++) {
      burst.push({
        assetId: `ast_${n % ASSETS}`,
        type: 'SET_CHARGE_RATE' as const,
        valueKw: n % 11,
      });
    }
    site.submit(burst, 'd');
    await sleep(10);
  }
  await sleep(400); // the last answers and the last delta
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  const changes = feed.stats.changes;
  feed.stop();
  await site.stop();
  return { commands: n, changes, deltas, bytes, cpuMs: (cpu.user + cpu.system) / 1000, seconds };
}

runBenchmark(async () => {
  console.log(`timeline benchmark on ${machine()}`);
  const snaps = [];
  for (let i = 0; i < RUNS; i++) snaps.push(snapshotRun());
  const s0 = snaps[0] as ReturnType<typeof snapshotRun>;
  console.log(
    `snapshot of ${ASSETS} assets x ${SLOTS} slots (${s0.commands} commands): build ${fmt(
      snaps.map((s) => s.buildMs),
    )}, JSON ${fmt(snaps.map((s) => s.jsonMs))}, ${(s0.bytes / 1e6).toFixed(1)} MB`,
  );
  const off: LiveResult[] = [];
  const on: LiveResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    off.push(await liveRun(false));
    on.push(await liveRun(true));
  }
  const per1k = (rs: LiveResult[]) => rs.map((r) => (r.cpuMs / r.commands) * 1000);
  const o = off[0] as LiveResult;
  console.log(
    `live: ${BURST} commands every 10 ms for ${SECONDS} s (~${Math.round(o.commands / SECONDS)} commands/s asked; each is created, dispatched, completed)`,
  );
  console.log(
    `  no editor: ${off.reduce((a, r) => a + r.deltas, 0)} deltas published, ${off.reduce(
      (a, r) => a + r.changes,
      0,
    )} changes looked at; CPU ${fmt(per1k(off))} per 1,000 commands`,
  );
  console.log(
    `  editor open (throttle 250 ms): changes ${fmt(
      on.map((r) => r.changes / r.seconds),
      '/s',
      0,
    )}, deltas ${fmt(
      on.map((r) => r.deltas / r.seconds),
      '/s',
      1,
    )}, sent ${fmt(
      on.map((r) => r.bytes / r.seconds / 1024),
      'KiB/s',
      0,
    )}; CPU ${fmt(per1k(on))} per 1,000 commands (${(median(per1k(on)) / median(per1k(off))).toFixed(2)}x no editor)`,
  );
});
