/**
 * InOrder: operations run one after the other in the order they were asked for, when some of
 * them take several event-loop turns (a plan registered in slices, `Site.submitPlanAsync`).
 * While nothing waits, an operation runs at once, in the caller's turn, and its result is
 * returned as it is; while one that returned a promise has not settled, the next ones wait
 * for it (and for each other), in order. A failed operation does not stop the ones after it.
 */

export class InOrder {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Operations started or waiting that have not settled yet. */
  get pending(): number {
    return this.waiting;
  }

  /**
   * Runs `op` now when nothing waits (its value or its throw as they are), else once every
   * operation asked for before has settled (a promise of its value).
   */
  run<T>(op: () => T | Promise<T>): T | Promise<T> {
    if (this.waiting === 0) {
      const result = op();
      if (result instanceof Promise) this.follow(result);
      return result;
    }
    const later = this.tail.then(op);
    this.follow(later);
    return later;
  }

  private follow(p: Promise<unknown>): void {
    this.waiting++;
    this.tail = p.then(
      () => {
        this.waiting--;
      },
      () => {
        this.waiting--;
      },
    );
  }
}
