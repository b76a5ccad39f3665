/**
 * The event loop's long turns, for a benchmark to cut a CPU profile at them
 * (bench/ocpp-10k.bench.ts, BENCH_GAPS): every gap over 15 ms between the ticks of a 1-ms
 * interval, as [start, end] in µs of the monotonic clock (a `--cpu-prof` / inspector profile's
 * time base) with the main thread's CPU time and run-queue wait in it (µs, from
 * /proc/thread-self/schedstat, Linux: on a loaded machine the wait is other processes'
 * turns), and the garbage collections (start in the same time base, duration µs, kind). Not a
 * benchmark itself.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

/**
 * Starts the probe; the returned function stops it and writes `{offsetUs, gaps, gcs, ...}` and
 * what `extra()` gives to `file` (`offsetUs`: monotonic µs minus epoch µs, to place epoch times).
 */
export function turnProbe(file: string, extra: () => Record<string, unknown>): () => void {
  const us = () => Number(process.hrtime.bigint() / 1000n);
  const sched = (): [number, number] => {
    const [cpu = 0, wait = 0] = readFileSync('/proc/thread-self/schedstat', 'utf8')
      .split(' ')
      .map(Number);
    return [cpu / 1000, wait / 1000];
  };
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
