/**
 * PlanBook: the engine's submitted plans (see src/plans.ts) and their rows not yet made into
 * commands. It decides when a row becomes a command (due, read, caught up to a time), cuts
 * plans short (supersession, cancellation; with `cutLater` the cut rows' commands are made
 * afterwards, in order, by `settleSome`), counts the planned rows (PENDING commands in every
 * figure of the engine), persists plans (`p:<scheduleId>` records, the `plans` of EngineJSON)
 * and restores them. The engine owns the commands: a row becomes one through `PlanHost`.
 */

import { CHUNK, runSync, type Steps } from './chunks';
import { type Command, type CommandHistoryEntry, commandToJSON } from './commands';
import { type EventBus, EventType } from './event-bus';
import { CutQueue, cancelled, cancelledHistory } from './plan-cuts';
import { planJsonPieces } from './plan-json';
import { type PlanCursor, type PlanJSON, readPlanSteps, type StoredPlan } from './plans';
import { problemAt, type RestoreProblem, shown } from './restore';

/** A record for persistence (`onPersist`): `value()` is the JSON to keep, undefined: delete. */
export interface PersistChange {
  key: string;
  value(): unknown;
  /**
   * Optional, for a large value (a plan): the JSON text of `value()` as of this call, in
   * pieces made as they are pulled (a journal writes it over several turns; a change after
   * the call does not alter it); null when `value()` is undefined.
   */
  json?(): Iterator<string, void, void> | null;
}

/** What the book needs of the engine. */
export interface PlanHost {
  readonly eventBus: EventBus;
  /** Whether a command of that id is tracked. */
  has(id: string): boolean;
  /** A row made into a PENDING command: tracked, due at its time, with sequence `seq`. */
  track(cmd: Command, seq: number): void;
  /**
   * A row made into its CANCELLED command (status, history and lastError already set, see
   * `cancelled`): tracked as a finished command, as `finish` would leave it.
   */
  trackCancelled(cmd: Command): void;
  /** Puts the cursor's next row into the due heap under a new token (`c.token`). */
  queue(c: PlanCursor): void;
  /** A new token: a cursor that takes it has no live entry in the due heap any more. */
  newToken(): number;
  /** Reserves `n` sequence numbers (the submission order of the rows); returns the first. */
  reserveSeq(n: number): number;
}

export class PlanBook {
  private readonly plans = new Map<string, StoredPlan>();
  /** Per asset, the cursors of the plans with rows left for it. */
  private readonly cursorsOf = new Map<string, Set<PlanCursor>>();
  private readonly listeners = new Set<(change: PersistChange) => void>();
  /** Rows planned and not yet made into commands. */
  planned = 0;
  /**
   * When set (`cutLater`), `supersede` cuts the cursors at once and queues the cut rows in
   * `cuts`: their CANCELLED commands, changes and events are made later, in order.
   */
  private deferring = false;
  private readonly cuts: CutQueue;
  /** `supersede`'s reason, made once per schedule id. */
  private reasonOf = '';
  private reason = '';

  constructor(
    private readonly host: PlanHost,
    private readonly maxFinished: () => number,
  ) {
    this.cuts = new CutQueue(host);
  }

  get(scheduleId: string): StoredPlan | undefined {
    return this.plans.get(scheduleId);
  }

  get size(): number {
    return this.plans.size;
  }

  /** The assets with planned rows. */
  assetIds(): IterableIterator<string> {
    return this.cursorsOf.keys();
  }

  /**
   * Whether `plan` was registered before with the same rows (a re-delivery: true), as a plan
   * still kept or as commands among `tracked`; with other rows, a TypeError.
   */
  isRedelivery(plan: StoredPlan, tracked: Iterable<{ cmd: Command }>): boolean {
    const id = plan.scheduleId;
    const known = this.plans.get(id);
    if (known) {
      if (known.sameRows(plan)) return true;
      throw new TypeError(
        `plan: schedule ${id} is already registered with other content; give it a new schedule id`,
      );
    }
    for (const { cmd } of tracked) {
      if (cmd.scheduleId !== id || cmd.reapplyOf !== undefined) continue;
      const c = plan.byAsset.get(cmd.assetId);
      const r = c && cmd.source ? plan.rowOfSlot(c, cmd.source.slot) : -1;
      if (c && r >= 0 && plan.rowId(c, r) === cmd.id) {
        const row = plan.command(c, r);
        if (row.type === cmd.type && row.valueKw === (cmd.askedKw ?? cmd.valueKw)) return true;
      }
      throw new TypeError(
        `plan: command ${cmd.id} of schedule ${id} is already registered with other content; give the schedule a new id`,
      );
    }
    return false;
  }

  /** COMMAND_CREATED for every row of a new plan, made from the row, when someone listens. */
  announce(plan: StoredPlan): void {
    const bus = this.host.eventBus;
    if (!bus.hasSubscribers(EventType.COMMAND_CREATED)) return;
    for (const c of plan.cursors)
      for (let r = c.next; r < c.end; r++)
        bus.publish(EventType.COMMAND_CREATED, commandToJSON(plan.command(c, r)));
  }

  /**
   * What `add` can make ahead without changing anything (`engine.stagePlan`, in slices): each
   * cursor's set for `cursorsOf`, used by `add` when its asset has none yet.
   */
  *stage(plan: StoredPlan): Steps<void> {
    const sets: Set<PlanCursor>[] = [];
    for (let i = 0; i < plan.cursors.length; i++) {
      sets.push(new Set([plan.cursors[i] as PlanCursor]));
      if (i % CHUNK === CHUNK - 1) yield;
    }
    plan.staged = sets;
  }

  /**
   * Starts keeping `plan`: its cursors go into the due heap (and its record to the journal,
   * unless `persist` is false: a restore). Returns, per cursor with rows left (in order), its
   * asset's set of cursors, which `supersede` can be given.
   */
  add(plan: StoredPlan, persist = true): Set<PlanCursor>[] {
    this.plans.set(plan.scheduleId, plan);
    plan.seqBase = this.host.reserveSeq(plan.slot.length);
    const staged = plan.staged;
    plan.staged = undefined;
    const sets: Set<PlanCursor>[] = [];
    for (let i = 0; i < plan.cursors.length; i++) {
      const c = plan.cursors[i] as PlanCursor;
      if (c.next >= c.end) {
        plan.closed++;
        continue;
      }
      let set = this.cursorsOf.get(c.assetId);
      if (set) set.add(c);
      else {
        const made = staged?.[i];
        set = made?.has(c) ? made : new Set([c]);
        this.cursorsOf.set(c.assetId, set);
      }
      sets.push(set);
      this.planned += c.end - c.next;
      this.host.queue(c);
    }
    if (persist) this.persist(plan);
    return sets;
  }

  /** `c` has no rows left: out of the book (`set`: its asset's set of cursors, if known). */
  private close(c: PlanCursor, set = this.cursorsOf.get(c.assetId)): void {
    c.token = this.host.newToken();
    if (!set?.delete(c)) return;
    if (set.size === 0) this.cursorsOf.delete(c.assetId);
    const plan = c.plan;
    if (plan.cursors.length === ++plan.closed) {
      this.plans.delete(plan.scheduleId);
      this.persist(plan);
    }
  }

  /**
   * Makes the rows of `c` up to `upto` into tracked commands, due at their times. (The
   * command is what the row says, made again the same way after a restart: no `p:` record.)
   */
  materialise(c: PlanCursor, upto: number): void {
    const plan = c.plan;
    const last = Math.min(upto, c.end - 1);
    for (let r = c.next; r <= last; r++) {
      const cmd = plan.command(c, r);
      this.planned--;
      c.next = r + 1;
      if (this.host.has(cmd.id)) continue; // submitted by hand under the same id: that one
      this.host.track(cmd, plan.seqBase + r);
    }
    if (c.next < c.end) this.host.queue(c);
    else this.close(c);
  }

  /** Makes the rows of an asset due at or before `t` into commands. */
  catchUp(assetId: string, t: number): void {
    for (const c of [...(this.cursorsOf.get(assetId) ?? [])]) {
      let r = c.next;
      while (r < c.end && c.plan.timeOf(r) <= t) r++;
      if (r > c.next) this.materialise(c, r - 1);
    }
  }

  /** Makes every planned row (of one asset, of one schedule) into a command. */
  materialiseAll(assetId?: string, scheduleId?: string): void {
    if (this.planned === 0) return;
    const cursors =
      assetId !== undefined
        ? [...(this.cursorsOf.get(assetId) ?? [])]
        : scheduleId !== undefined
          ? (this.plans.get(scheduleId)?.cursors ?? [])
          : [...this.plans.values()].flatMap((p) => p.cursors);
    for (const c of cursors) {
      if (scheduleId !== undefined && c.plan.scheduleId !== scheduleId) continue;
      if (c.next < c.end) this.materialise(c, c.end - 1);
    }
  }

  /** Makes the planned row of command id `id` (and those before it) into commands. */
  materialiseId(id: string): boolean {
    for (const plan of this.plans.values()) {
      const sid = plan.scheduleId;
      if (!id.startsWith(sid) || id.charAt(sid.length) !== ':') continue;
      const rest = id.slice(sid.length + 1);
      const k = rest.lastIndexOf(':');
      const c = plan.byAsset.get(rest.slice(0, k));
      if (!c || c.next >= c.end) continue;
      const tail = rest.slice(k + 1);
      const slot = tail === 'end' ? plan.times.length - 1 : Number(tail);
      if (tail !== 'end' && String(slot) !== tail) continue;
      const r = plan.rowOfSlot(c, slot);
      if (r < 0) continue;
      this.materialise(c, r);
      return true;
    }
    return false;
  }

  /**
   * How many of `rows` cancelled in one operation are never kept: the first ones, which the
   * finished commands (maxFinishedCommands) would drop within that same operation anyway.
   */
  budget(rows: number): { skip: number } {
    return { skip: Math.max(0, rows - this.maxFinished()) };
  }

  /** The rows of `assetIds` that a schedule other than `scheduleId` plans from `start` on. */
  rowsFrom(assetIds: readonly string[], scheduleId: string | null, start: number): number {
    let rows = 0;
    for (const a of assetIds)
      for (const c of this.cursorsOf.get(a) ?? [])
        if (c.plan.scheduleId !== scheduleId) rows += c.end - c.plan.firstAtOrAfter(c, start);
    return rows;
  }

  /**
   * Cancels the planned rows of `c` from row `from` on. Each is a CANCELLED command kept
   * among the finished ones, except the first `budget.skip`: those only get their
   * COMMAND_CANCELLED event (made from the row, no object kept) and, with `out`, a command
   * returned to the caller.
   */
  cancelRows(
    c: PlanCursor,
    from: number,
    reason: string,
    now: number,
    budget: { skip: number },
    out?: Command[],
    set?: Set<PlanCursor>,
  ): void {
    const plan = c.plan;
    const end = c.end;
    if (this.deferring && !out) {
      // The cursor is cut now; its rows become commands later (src/plan-cuts.ts, from the
      // cursor as it was). `cutLater` shares out the skip.
      this.planned -= end - from;
      if (end > from) this.cuts.push({ c, from, end, endMs: c.endMs, skip: 0, reason, now });
      c.end = Math.min(c.end, from);
      if (c.next >= c.end) this.close(c, set);
      else this.persist(plan);
      return;
    }
    const bus = this.host.eventBus;
    const emit = bus.hasSubscribers(EventType.COMMAND_CANCELLED);
    let r = from;
    if (!emit && !out) {
      // Rows that would be dropped at once and that nobody hears of: no command made.
      const skipped = Math.min(budget.skip, end - r);
      budget.skip -= skipped;
      this.planned -= skipped;
      r += skipped;
    }
    // Every row cut here gets the same two history entries: made once, shared (frozen).
    let history: readonly CommandHistoryEntry[] | undefined;
    for (; r < end; r++) {
      const cmd = plan.command(c, r);
      this.planned--;
      history ??= cancelledHistory(cmd.history, now, reason);
      if (budget.skip > 0) {
        budget.skip--;
        cancelled(cmd, history, reason);
        if (emit) bus.publish(EventType.COMMAND_CANCELLED, commandToJSON(cmd));
        out?.push(cmd);
        continue;
      }
      if (this.host.has(cmd.id)) continue;
      cancelled(cmd, history, reason);
      this.host.trackCancelled(cmd);
      out?.push(cmd);
    }
    c.end = Math.min(c.end, from);
    if (c.next >= c.end) this.close(c);
    else this.persist(plan);
  }

  /**
   * Runs `cut` (a supersession) with the cut rows queued, not made: the cursors are cut, the
   * rows leave `planned` and the plans' records change now; each row's CANCELLED command, its
   * change and its COMMAND_CANCELLED are made by `settleSome`, in the order `cut` would have
   * made them.
   */
  cutLater(cut: () => void): void {
    const first = this.cuts.length;
    this.deferring = true;
    try {
      cut();
    } finally {
      this.deferring = false;
      // One budget for the rows cut in this operation, as `budget(rowsFrom(...))` gives,
      // counted from what was cut (no pass over the cursors before it).
      this.cuts.share(first, (rows) => this.budget(rows).skip);
    }
  }

  /** Whether rows cut by `cutLater` are still to be made into their commands. */
  get unsettled(): boolean {
    return this.cuts.unsettled;
  }

  /**
   * Makes up to about `rows` of the rows cut by `cutLater` into what `cancelRows` makes of
   * them; returns whether some are left. A call made while it runs (from a listener) does
   * nothing.
   */
  settleSome(rows: number): boolean {
    return this.cuts.settleSome(rows);
  }

  /**
   * Schedule `scheduleId` takes over asset `assetId` from `start`: other plans' rows from
   * then on are cancelled, and the row each keeps last stops at `start`.
   */
  supersede(
    assetId: string,
    scheduleId: string,
    start: number,
    now: number,
    budget: { skip: number },
    set = this.cursorsOf.get(assetId),
  ): void {
    if (!set) return;
    if (this.reasonOf !== scheduleId) {
      this.reasonOf = scheduleId;
      this.reason = `superseded by schedule ${scheduleId}`;
    }
    const reason = this.reason;
    // Cutting later calls no listener of commands: the only cursor that can leave the set
    // in the loop is the one it is at (closed), so no copy of it is needed.
    for (const c of this.deferring ? set : [...set]) {
      if (c.plan.scheduleId === scheduleId) continue;
      this.cancelRows(c, c.plan.firstAtOrAfter(c, start), reason, now, budget, undefined, set);
      if (c.next >= c.end) continue;
      const r = c.end - 1;
      const u = c.plan.until[r] as number;
      const vu = !Number.isNaN(c.endMs) ? c.endMs : u < 0 ? null : (c.plan.times[u] as number);
      if (vu === null || vu > start) {
        c.endMs = start;
        this.persist(c.plan);
      }
    }
  }

  /** Cancels every planned row of an asset (`cancelPending`). */
  cancelAsset(
    assetId: string,
    reason: string,
    now: number,
    budget: { skip: number },
    out: Command[],
  ): void {
    for (const c of [...(this.cursorsOf.get(assetId) ?? [])])
      this.cancelRows(c, c.next, reason, now, budget, out);
  }

  /** Planned rows of these assets. */
  rowsOf(assetIds: readonly string[]): number {
    let rows = 0;
    for (const a of assetIds) for (const c of this.cursorsOf.get(a) ?? []) rows += c.end - c.next;
    return rows;
  }

  // ------------------------------------------------------------ persistence

  /** See `DispatchEngine.onPersist`. */
  onPersist(listener: (change: PersistChange) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  persist(plan: StoredPlan): void {
    if (this.listeners.size === 0) return;
    const kept = () => this.plans.get(plan.scheduleId) === plan;
    const change: PersistChange = {
      key: `p:${plan.scheduleId}`,
      value: () => (kept() ? plan.toJSON() : undefined),
      json: () => (kept() ? planJsonPieces(plan) : null),
    };
    for (const l of [...this.listeners]) l(change);
  }

  toJSON(): PlanJSON[] {
    return [...this.plans.values()].map((p) => p.toJSON());
  }

  /**
   * The plans of a saved document: each checked (a bad one is left out and reported), its
   * cursors moved past the rows already made into commands (`commands`, restored before).
   * Returns the schedule ids restored.
   */
  restore(
    list: unknown,
    commands: readonly Command[],
    onProblem: (problem: RestoreProblem) => void,
  ): string[] {
    return runSync(this.restoreSteps(list, commands, onProblem));
  }

  /** `restore` with checkpoints (src/chunks.ts): a plan's rows are read in chunks. */
  *restoreSteps(
    list: unknown,
    commands: readonly Command[],
    onProblem: (problem: RestoreProblem) => void,
  ): Steps<string[]> {
    if (list === undefined) return [];
    if (!Array.isArray(list)) {
      onProblem(problemAt('plans', '', `must be an array, got ${shown(list)}`));
      return [];
    }
    const read = new Map<string, StoredPlan>();
    for (let i = 0; i < list.length; i++) {
      try {
        const plan = yield* readPlanSteps(list[i], `plans[${i}]`);
        if (read.has(plan.scheduleId) || this.plans.has(plan.scheduleId))
          throw new TypeError(`plans[${i}]: schedule ${plan.scheduleId} appears twice`);
        read.set(plan.scheduleId, plan);
      } catch (err) {
        onProblem(problemAt('plans', String(i), (err as Error).message));
      }
      yield;
    }
    const moved = new Set<StoredPlan>();
    let n = 0;
    for (const cmd of commands) {
      if (++n % CHUNK === 0) yield;
      const plan = cmd.scheduleId === null ? undefined : read.get(cmd.scheduleId);
      const c = plan?.byAsset.get(cmd.assetId);
      if (!plan || !c || !cmd.source || cmd.reapplyOf !== undefined) continue;
      const r = plan.rowOfSlot(c, cmd.source.slot, c.first);
      if (r >= c.next) {
        c.next = r + 1;
        moved.add(plan);
      }
    }
    // For a restore's listener (DispatchEngine.restore): a plan whose cursors moved is
    // recorded as it is now (rows of commands trimmed since are not made again after the next
    // restart); one used up is removed; the others are as their records say.
    for (const plan of read.values()) {
      if (plan.rowsLeft() > 0) this.add(plan, moved.has(plan));
      else this.persist(plan);
    }
    return [...read.keys()];
  }
}
