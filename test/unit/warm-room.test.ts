/**
 * `makeRoom` (src/warm.ts): the young generation emptied ahead of a handout that would not fit
 * in what is left of it, or would cross the share at which V8 posts a scavenge task (a
 * scavenge brought forward), nothing done when it fits.
 */
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import should from 'should';
import { HANDOUT_BYTES, makeRoom, SCAVENGE_TASK_TRIGGER } from '../../src/warm';
import { until } from '../helpers/wait';

const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
const left = () => young()?.space_available_size ?? 0;
let garbage: unknown = null;

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

  it('also when the handout fits but would cross the share at which V8 posts a scavenge task', () => {
    // Used past SCAVENGE_TASK_TRIGGER less a little: what is left holds the handout, the
    // share before the task does not.
    const y = young();
    if (!y) throw new Error('no new_space');
    const capacity = y.space_used_size + y.space_available_size;
    const full = () => left() < (1 - SCAVENGE_TASK_TRIGGER + 0.03) * capacity;
    if (full()) makeRoom(1_000_000); // start from an emptied young generation
    while (!full()) garbage = new Array(126);
    garbage = null;
    const commands = Math.floor((0.9 * left()) / HANDOUT_BYTES);
    should(commands).be.above(0);
    should(makeRoom(commands)).be.above(0);
    should(makeRoom(10)).equal(0); // then a small one fits
  });
});
