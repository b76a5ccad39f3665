/**
 * The planned rows a supersession cut with `PlanBook.cutLater` (src/plan-book.ts) and not yet
 * made into their CANCELLED commands: a queue of cursor ranges, in the order the cut met them,
 * made into what `PlanBook.cancelRows` makes of them (a CANCELLED command kept, or only its
 * COMMAND_CANCELLED event for the rows the finished list would drop at once) by `settleSome`,
 * a few rows at a time. Also the CANCELLED form of a planned row, shared by both ways.
 */

import { type Command, type CommandHistoryEntry, CommandStatus, commandToJSON } from './commands';
import { EventType } from './event-bus';
import type { PlanHost } from './plan-book';
import type { PlanCursor } from './plans';

/** Rows `from` to `end` of a cursor cut by `cutLater`. */
export interface Cut {
  /** The cursor (cut since: `end` and `endMs` are as they were then). */
  readonly c: PlanCursor;
  readonly endMs: number;
  readonly from: number;
  readonly end: number;
  /** How many of its first rows are only heard of (the finished list would drop them). */
  skip: number;
  readonly reason: string;
  readonly now: number;
}

export class CutQueue {
  private readonly cuts: Cut[] = [];
  private head = 0;
  /** The next row of `cuts[head]` to make. */
  private row = 0;
  private settling = false;

  constructor(private readonly host: Pick<PlanHost, 'eventBus' | 'has' | 'trackCancelled'>) {}

  /** Where the next cut goes (for `share`). */
  get length(): number {
    return this.cuts.length;
  }

  push(cut: Cut): void {
    this.cuts.push(cut);
  }

  /**
   * Gives the cuts from `first` on (one operation's) their `skip`: `skipOf(rows)` of their
   * rows, the first ones in order.
   */
  share(first: number, skipOf: (rows: number) => number): void {
    let rows = 0;
    for (let i = first; i < this.cuts.length; i++) {
      const q = this.cuts[i] as Cut;
      rows += q.end - q.from;
    }
    let skip = skipOf(rows);
    for (let i = first; i < this.cuts.length && skip > 0; i++) {
      const q = this.cuts[i] as Cut;
      q.skip = Math.min(skip, q.end - q.from);
      skip -= q.skip;
    }
  }

  /** Whether rows are still to be made. */
  get unsettled(): boolean {
    return this.head < this.cuts.length;
  }

  /**
   * Makes up to about `rows` rows, in order; returns whether some are left. A call made while
   * it runs (from a listener) does nothing.
   */
  settleSome(rows: number): boolean {
    if (this.settling) return this.unsettled;
    this.settling = true;
    try {
      let budget = rows;
      while (this.head < this.cuts.length && budget > 0) {
        const cut = this.cuts[this.head] as Cut;
        const from = Math.max(cut.from, this.row);
        const to = Math.min(cut.end, from + budget);
        this.make(cut, from, to);
        budget -= to - from;
        if (to >= cut.end) {
          this.cuts[this.head++] = undefined as unknown as Cut;
          this.row = 0;
        }
      }
      if (this.head >= this.cuts.length) {
        this.cuts.length = 0;
        this.head = 0;
      }
      return this.unsettled;
    } finally {
      this.settling = false;
    }
  }

  /** Rows `from` to `to` of a cut: the first `cut.skip` rows of it only heard of. */
  private make(cut: Cut, from: number, to: number): void {
    const { skip, reason } = cut;
    // The cursor as it was when cut: its end and endMs make the last row's validUntil.
    const c: PlanCursor = { ...cut.c, end: cut.end, endMs: cut.endMs };
    const plan = c.plan;
    const bus = this.host.eventBus;
    const emit = bus.hasSubscribers(EventType.COMMAND_CANCELLED);
    const skipEnd = cut.from + skip;
    let r = from;
    if (!emit) r = Math.max(r, Math.min(skipEnd, to));
    let history: readonly CommandHistoryEntry[] | undefined;
    for (; r < to; r++) {
      // Counted before its listeners run: one that throws never has a row made twice.
      this.row = r + 1;
      const cmd = plan.command(c, r);
      history ??= cancelledHistory(cmd.history, cut.now, reason);
      cancelled(cmd, history, reason);
      if (r < skipEnd) bus.publish(EventType.COMMAND_CANCELLED, commandToJSON(cmd));
      else if (!this.host.has(cmd.id)) this.host.trackCancelled(cmd);
    }
    this.row = to;
  }
}

/**
 * The history of a planned row cancelled at `now`: its first entry (`base`, the plan's, the
 * same for every row) and the CANCELLED one, as `transition` would make them; frozen, so that
 * every row cut in one go shares it (a later write copies it, as for `base`).
 */
export function cancelledHistory(
  base: readonly CommandHistoryEntry[],
  now: number,
  reason: string,
): readonly CommandHistoryEntry[] {
  const entry: CommandHistoryEntry = { status: CommandStatus.CANCELLED, at: new Date(now), reason };
  return Object.freeze([...base, Object.freeze(entry)]);
}

/** A PENDING row's command made CANCELLED with `history` (what `finish` leaves it as). */
export function cancelled(
  cmd: Command,
  history: readonly CommandHistoryEntry[],
  reason: string,
): void {
  cmd.status = CommandStatus.CANCELLED;
  cmd.history = history as CommandHistoryEntry[];
  cmd.lastError = reason;
}
