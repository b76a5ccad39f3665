/**
 * Timers driven by a ManualClock, for Site tests without sleeping: `advanceTo(t)` moves the
 * clock to t, firing what is due in time order and letting the promises they start settle.
 */
import type { ManualClock } from '../../src/clock';
import type { Timers } from '../../src/site';

/** Timers driven by the manual clock: `advanceTo()` fires what is due. */
export class FakeTimers implements Timers {
  private seq = 0;
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  constructor(private readonly clock: ManualClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.clock.now() + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.pending.delete(h as number);
  }
  /** Advances the clock to `to`, firing timers in time order. */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      const next = [...this.pending.entries()]
        .filter(([, t]) => t.at <= to)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.pending.delete(next[0]);
      if (next[1].at > this.clock.now()) this.clock.set(next[1].at);
      next[1].fn();
      await flush();
    }
    this.clock.set(to);
    await flush();
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
