/**
 * `makeRoom` (src/warm.ts): the young generation emptied ahead of a handout that would not fit
 * in what is left of it (a scavenge brought forward), nothing done when it fits.
 */
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import should from 'should';
import { HANDOUT_BYTES, makeRoom } from '../../src/warm';
import { until } from '../helpers/wait';

const left = () =>
  getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_available_size ?? 0;

describe('makeRoom', () => {
  it('brings a scavenge forward when a handout would not fit in what is left of the young generation', async () => {
    const scavenges: PerformanceEntry[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === 1)
          scavenges.push(e);
    });
    observer.observe({ entryTypes: ['gc'] });
    try {
      // More commands than the whole young generation holds: it never fits.
      const before = left();
      const bytes = makeRoom(1_000_000);
      should(bytes).be.above(before); // what was left, and a little past it
      await until(() => scavenges.length > 0, 'a scavenge reported', { ms: 2000 });
      // Emptied: a small handout fits now, and nothing is allocated for it.
      should(left()).be.above(HANDOUT_BYTES * 10);
      should(makeRoom(10)).equal(0);
      should(makeRoom(0)).equal(0);
    } finally {
      observer.disconnect();
    }
  });
});
