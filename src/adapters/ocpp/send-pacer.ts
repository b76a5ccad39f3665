/**
 * SendPacer: the central system's outgoing calls in slices of a turn of the event loop. A call
 * costs the central system about 30–80 µs on the 2-core bench machine (ocpp-rpc's schema
 * check and JSON, a WebSocket frame, one socket write each), so the thousands of setpoints of
 * a slot start, sent as they arrive, held the event loop for 50–90 ms in one check phase
 * (bench/ocpp-10k.bench.ts, docs/PERFORMANCE.md). Here a call goes out at once while the
 * calls of this turn have taken less than `budgetMs` (measured from the first of them) and
 * none waits; the rest wait, in the order they came, for the next turns (`setImmediate`),
 * each sending about `budgetMs` of them, with the sockets read (answers, events) in between.
 * The first call of a turn always goes: budget 0 is one call a turn, Infinity no pacing.
 */

/** Sends in a turn of the event loop for at most about this long before the rest wait, ms. */
export const DEFAULT_SEND_SLICE_MS = 8;

export class SendPacer {
  /** Sends waiting for a turn, oldest first, from `head` on. */
  private queue: ((() => void) | undefined)[] = [];
  private head = 0;
  /** When this turn's first send started (`now`), or -1: none yet. */
  private windowStart = -1;
  /** A turn is asked for (`defer`): it ends this one's window and sends what waits. */
  private scheduled = false;

  constructor(
    private readonly budgetMs: number,
    private readonly now: () => number = () => performance.now(),
    private readonly defer: (fn: () => void) => void = (fn) => setImmediate(fn),
  ) {}

  /** Sends waiting for a later turn. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /**
   * Runs `send` now when this turn has room and nothing waits; else in a later turn, after
   * everything that waits. Resolves or rejects as `send` does (a throw too).
   */
  run<T>(send: () => Promise<T>): Promise<T> {
    if (this.budgetMs === Number.POSITIVE_INFINITY) return send();
    if (this.waiting === 0 && this.room()) return send();
    return new Promise<T>((resolve, reject) => {
      this.queue.push(() => {
        try {
          send().then(resolve, reject);
        } catch (err) {
          reject(err);
        }
      });
      this.schedule();
    });
  }

  /** Whether a send may start now; the first of a turn opens its window (and asks for its end). */
  private room(): boolean {
    const t = this.now();
    if (this.windowStart < 0) {
      this.windowStart = t;
      this.schedule();
      return true;
    }
    return t - this.windowStart < this.budgetMs;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => this.turn());
  }

  /** A new turn: a new window, and what waits goes out while it has room. */
  private turn(): void {
    this.scheduled = false;
    this.windowStart = -1;
    while (this.head < this.queue.length && this.room()) {
      const send = this.queue[this.head] as () => void;
      this.queue[this.head++] = undefined;
      send();
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
