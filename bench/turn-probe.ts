/**
 * The event loop's long turns, for a benchmark to cut a CPU profile at them
 * (bench/ocpp-10k.bench.ts, BENCH_GAPS): every gap over 15 ms between the ticks of a 1-ms
 * interval, as [start, end] in µs of the monotonic clock (a `--cpu-prof` / inspector profile's
 * time base) with the main thread's CPU time and run-queue wait in it (µs, from
 * /proc/thread-self/schedstat, Linux: on a loaded machine the wait is other processes'
 * turns), and the garbage collections (start in the same time base, duration µs, kind). Not a
 * benchmark itself. `longestGap`: the same probe kept small, the longest gap only; `stallMeter`
 * and `stallFrom`: the event loop's longest delay (perf_hooks), from now or from a time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

/**
 * Starts the probe; the returned function stops it and writes `{offsetUs, gaps, gcs, ...}` and
 * what `extra()` gives to `file` (`offsetUs`: monotonic µs minus epoch µs, to place epoch times).
 */
export function turnProbe(file: string, extra: () => Record<string, unknown>): () => void {
  const us = () => Number(process.hrtime.bigint() / 1000n);
  const sched = schedUs;
  const perfOffsetUs = us() - performance.now() * 1000;
  const gcs: [number, number, number][] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      gcs.push([
        e.startTime * 1000 + perfOffsetUs,
        e.duration * 1000,
        (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0,
      ]);
  });
  obs.observe({ entryTypes: ['gc'] });
  const gaps: [number, number, number, number][] = [];
  let last = us();
  let [cpu0, wait0] = sched();
  const t = setInterval(() => {
    const now = us();
    const [cpu, wait] = sched();
    if (now - last > 15_000) gaps.push([last, now, cpu - cpu0, wait - wait0]);
    last = now;
    cpu0 = cpu;
    wait0 = wait;
  }, 1);
  return () => {
    clearInterval(t);
    obs.disconnect();
    const offsetUs = us() - Date.now() * 1000;
    writeFileSync(file, JSON.stringify({ offsetUs, ...extra(), gaps, gcs }));
  };
}

/** The main thread's CPU time and run-queue wait so far, µs (Linux; zeros elsewhere). */
function schedUs(): [number, number] {
  try {
    const [cpu = 0, wait = 0] = readFileSync('/proc/thread-self/schedstat', 'utf8')
      .split(' ')
      .map(Number);
    return [cpu / 1000, wait / 1000];
  } catch {
    return [0, 0];
  }
}

/**
 * The longest gap between the ticks of a 1-ms interval from now until the returned function
 * is called, ms, and within it the main thread's CPU time (its own work and the collector's
 * on it) and its wait in the run queue (a core held by another process: on this 2-core
 * machine, the simulators). ~15 µs a tick.
 */
export function longestGap(): () => { gapMs: number; cpuMs: number; waitMs: number } {
  let longest = { gapMs: 0, cpuMs: 0, waitMs: 0 };
  let last = performance.now();
  let [cpu0, wait0] = schedUs();
  const t = setInterval(() => {
    const now = performance.now();
    const [cpu, wait] = schedUs();
    if (now - last > longest.gapMs)
      longest = { gapMs: now - last, cpuMs: (cpu - cpu0) / 1000, waitMs: (wait - wait0) / 1000 };
    last = now;
    cpu0 = cpu;
    wait0 = wait;
  }, 1);
  return () => {
    clearInterval(t);
    return longest;
  };
}

/** The event loop's longest delay from now until the returned function is called, ms. */
export function stallMeter(): () => number {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  return () => {
    h.disable();
    return h.max / 1e6;
  };
}

/**
 * The event loop's longest delay from `at` (epoch ms, a slot start) until the returned
 * function is called, ms: the boundary's own stall, without the registration before it. The
 * meter starts 50 ms early: its first tick counts no delay, so a stall at once would be missed.
 */
export function stallFrom(at: number): () => Stall {
  let stop: (() => number) | null = null;
  let gap: ReturnType<typeof longestGap> | null = null;
  const t = setTimeout(
    () => {
      stop = stallMeter();
      gap = longestGap();
    },
    Math.max(0, at - 50 - Date.now()),
  );
  return () => {
    clearTimeout(t);
    const g = gap?.() ?? { cpuMs: Number.NaN, waitMs: Number.NaN };
    return { stallMs: stop ? stop() : Number.NaN, cpuMs: g.cpuMs, waitMs: g.waitMs };
  };
}

/**
 * A boundary's longest stall (monitorEventLoopDelay), and within the longest gap of a 1-ms
 * probe the main thread's CPU (the package's work and its garbage collection) and its wait
 * for a core (the simulators' processes share the 2 cores), ms.
 */
export interface Stall {
  stallMs: number;
  cpuMs: number;
  waitMs: number;
}
