/**
 * A Site's dispatch loop (layer of Site, src/site.ts): attaching dispatchers, submitting on
 * their behalf (plans also read in slices, `submitPlanAsync`, in order with the operations
 * given to `inOrder`: src/in-order.ts), the timer set to the next due time or deadline
 * (`arm`; a due time's fired BOUNDARY_EARLY_MS early and waited out), the prepare step ahead
 * of it (`prepareInSlices`, the selection in slices; `prepare` in one piece; paced by
 * PREPARE_MARGIN), and the handout at the boundary (`runOnce`: each due command to its
 * dispatcher's sink, or through the adapters, in slices of about HANDOUT_SLICE_MS of work
 * with event-loop turns between; site-options.ts).
 */

import { runSliced, type SliceOptions, type Steps, whileLive } from './chunks';
import { type Clock, systemClock } from './clock';
import type { Command, CommandInput } from './commands';
import type { Conversion } from './convert';
import type { PlanSubmission } from './engine';
import type { SchedulePlan, StoredPlan } from './plans';
import type { Site } from './site';
import {
  type DueCommandSink,
  globalTimers,
  HANDOUT_FIRST_MS,
  HANDOUT_SLICE_MIN,
  HANDOUT_SLICE_MS,
  MAX_PREPARE_AHEAD_MS,
  PREPARE_MARGIN,
  type SiteOptions,
} from './site-options';
import { SitePersist } from './site-persist';
import { heatingUp, heatUp, makeRoom, warm, warmedUp, warmingNow } from './warm';

/** How early the timer of a due time fires (ms): the rest is waited out (`waitUntil`). */
export const BOUNDARY_EARLY_MS = 2;

/**
 * Waits, busy, until `clock` reads `at` or later, for at most `budgetMs` of monotonic time
 * (performance.now); returns whether it got there. For the last ms or two before a boundary,
 * where a timer is not precise enough.
 */
export function waitUntil(clock: Clock, at: number, budgetMs: number): boolean {
  const end = performance.now() + budgetMs;
  for (;;) {
    if (clock.now() >= at) return true;
    if (performance.now() >= end) return false;
  }
}

/** A turn of the event loop: the sockets are read (answers, events) before what follows. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export abstract class SiteLoop extends SitePersist {
  /** The due time of the sliced prepare step under way (`prepareInSlices`), or null. */
  private preparing: number | null = null;
  /** Bumped by every step started and every cancel: a step under way stops when it moved. */
  private prepareToken = 0;
  /** Makes the scratch site that warms the handout's code (src/warm.ts). */
  protected abstract scratchSite(): (options: SiteOptions) => Site;

  // ------------------------------------------------------------ dispatchers and the loop

  /** Starts the dispatch loop. */
  start(): void {
    this.stopped = false;
    this.running = true;
    this.arm(true);
  }

  /**
   * Attaches a sink for due commands (a dispatcher). Commands go to the sink that submitted
   * them, or, when that one is gone (a redeploy, a restart), to the first attached sink.
   * Returns a function that detaches it.
   */
  attachDispatcher(id: string, sink: DueCommandSink): () => void {
    this.sinks.set(id, sink);
    this.sinkIds.set(sink, id);
    this.arm(true);
    return () => {
      if (this.sinks.get(id) === sink) this.sinks.delete(id);
    };
  }

  /** Submits commands (see `engine.submit`) on behalf of dispatcher `owner`, and re-arms. */
  submit(
    commands: Command | CommandInput | readonly (Command | CommandInput)[],
    owner?: string,
  ): Command[] {
    this.notWhileLoading('submit');
    return this.submitted(this.engine.submit(commands), owner);
  }

  /**
   * `submit` with the checking and making of the commands in slices of a few ms
   * (`engine.prepareSteps`), the event loop served between them, then their registration in
   * one step (`engine.commitPrepared`), in order with the plans of `submitPlanAsync` and the
   * operations given to `inOrder`. Until then nothing changes; a bad element rejects with the
   * TypeError `submit` throws, changing nothing. Rejects, changing nothing, when the site was
   * stopped or `signal` aborted before the registration. Resolves to the registered commands.
   */
  submitAsync(
    commands: Command | CommandInput | readonly (Command | CommandInput)[],
    options: { owner?: string; slicing?: SliceOptions; signal?: AbortSignal } = {},
  ): Promise<Command[]> {
    return Promise.resolve(
      this.queue.run(async () => {
        const prepared = await this.readToRegister(
          this.engine.prepareSteps(commands),
          options,
          'commands',
        );
        return this.submitted(this.engine.commitPrepared(prepared), options.owner);
      }),
    );
  }

  /**
   * The reading of `submitAsync` and `submitPlanAsync`: `steps` in slices, then a rejection,
   * nothing registered, when `signal` aborted or the site stopped meanwhile.
   */
  private async readToRegister<T>(
    steps: Steps<T>,
    options: { slicing?: SliceOptions; signal?: AbortSignal },
    what: 'plan' | 'commands',
  ): Promise<T> {
    const read = await runSliced(steps, options.slicing);
    const [it, was] = what === 'plan' ? ['it', 'was'] : ['they', 'were'];
    if (options.signal?.aborted)
      throw new Error(`${what}: aborted before ${it} ${was} registered; nothing changed`);
    if (this.stopped)
      throw new Error(`site ${this.siteId} stopped while the ${what} ${was} read; nothing changed`);
    return read;
  }

  /** What `submit` does once the engine registered the commands. */
  private submitted(added: Command[], owner: string | undefined): Command[] {
    if (owner !== undefined) {
      for (const c of added) {
        this.owners.set(c.id, owner);
        this.journalOwner(c.id);
      }
    }
    this.preparedFor = null; // new commands may be due at the next boundary: prepare again
    this.arm(true);
    return added;
  }

  /**
   * Submits a converted schedule as its plan (see `engine.submitPlan`: its commands are made
   * as they fall due) on behalf of dispatcher `owner`, and re-arms.
   */
  submitPlan(plan: Conversion | SchedulePlan | StoredPlan, owner?: string): PlanSubmission {
    this.notWhileLoading('submitPlan');
    return this.registered(this.engine.submitPlan(plan), owner);
  }

  /** What `submitPlan` does once the engine registered the plan. */
  private registered(done: PlanSubmission, owner: string | undefined): PlanSubmission {
    if (owner !== undefined && done.count > 0) {
      this.planOwners.set(done.scheduleId, owner);
      this.journalPlanOwner(done.scheduleId);
    }
    this.preparedFor = null; // its rows may be due at the next boundary: prepare again
    this.arm(true);
    return done;
  }

  /**
   * `submitPlan` with the reading in slices of a few ms (`engine.stagePlan`: the plan made
   * from a Conversion, checked and copied), the event loop served between them, then the
   * registration in one short step (`engine.commitPlan`: O(assets) plus the rows it
   * supersedes). Until then nothing changes: the commands of the schedules before it stay in
   * force, and a plan that fails its check changes nothing (the rejection is the TypeError
   * that `submitPlan` throws). Plans and the operations given to `inOrder` take effect in the
   * order they were asked for. Rejects, changing nothing, when the site was stopped or
   * `signal` aborted before the registration.
   *
   * The rows it supersedes are cut in the registration step, and their CANCELLED commands,
   * change notices and COMMAND_CANCELLED events are made after it, in slices, before the
   * promise resolves and before the next operation given to `inOrder` (`engine.commitPlan`
   * with `cutsLater`): every query sees them from the registration on, but their events may
   * arrive in the turns right after it. A stop ends the slices; the rest is made when next
   * read.
   */
  submitPlanAsync(
    plan: unknown,
    options: { owner?: string; slicing?: SliceOptions; signal?: AbortSignal } = {},
  ): Promise<PlanSubmission> {
    return Promise.resolve(
      this.queue.run(async () => {
        const stored = await this.readToRegister(this.engine.stagePlan(plan), options, 'plan');
        const done = this.registered(
          this.engine.commitPlan(stored, { cutsLater: true }),
          options.owner,
        );
        await nextTurn(); // the registration's turn ends here, the cut rows' slices follow
        await runSliced(
          this.engine.settleCutsSteps(() => this.stopped),
          options.slicing,
        );
        return done;
      }),
    );
  }

  /**
   * Runs `op` after every plan still being read by `submitPlanAsync` (and every operation
   * given here before it) has taken effect, in the order asked for; at once, in this turn,
   * when none is (its value or throw as they are; else a promise of them). A dispatcher
   * passes its other messages (commands, cancel, reset) through it, so that they act on the
   * plans sent before them.
   */
  inOrder<T>(op: () => T | Promise<T>): T | Promise<T> {
    return this.queue.run(op);
  }

  /** The handout under way (`runOnce`), or null. */
  private handout: Promise<void> | null = null;
  /** What a command of the last slice measured cost, clock ms (0: not measured yet). */
  private handoutCostMs = 0;

  /**
   * Runs one round now: time out late attempts, hand out what is due. A large handout goes
   * in slices of about HANDOUT_SLICE_MS of work (the first up to HANDOUT_SLICE_MIN commands),
   * with a turn of the event loop between them; each command after a turn is checked again
   * (`engine.stillDue`: cancelled or held meanwhile, it stays). A round asked for while one is
   * under way runs when that one is done.
   */
  async runOnce(): Promise<void> {
    // Its error is that round's caller's to see.
    while (this.handout) await this.handout.catch(() => {});
    // Attempts through the adapters (autoDispatch) run side by side: a slow charger holds
    // neither the handout nor the next round; this round resolves when they have answered.
    const attempts: Promise<unknown>[] = [];
    const round = this.handOut(attempts);
    this.handout = round;
    try {
      await round;
    } finally {
      if (this.handout === round) this.handout = null;
    }
    await Promise.all(attempts);
  }

  /** How many commands the next slice takes (at least one). */
  private sliceSize(first: boolean): number {
    const cost = this.handoutCostMs;
    if (first) {
      return cost > 0
        ? Math.max(1, Math.min(HANDOUT_SLICE_MIN, Math.floor(HANDOUT_FIRST_MS / cost)))
        : HANDOUT_SLICE_MIN;
    }
    return cost > 0 ? Math.max(1, Math.floor(HANDOUT_SLICE_MS / cost)) : HANDOUT_SLICE_MIN;
  }

  /** A slice of `n` commands started at `start` and the next starts now: its cost each. */
  private measureSlice(start: number, n: number): void {
    // The clock counts whole ms: a slice that took less counts as 1 ms (an upper bound).
    if (n > 0) this.handoutCostMs = Math.max(1, this.clock.now() - start) / n;
  }

  private async handOut(attempts: Promise<unknown>[]): Promise<void> {
    const now = this.clock.now();
    this.engine.checkTimeouts(now);
    this.limiter?.tick();
    const due = this.engine.getPendingCommands(now);
    // Every rate setpoint of a steered asset leaves with at most what fits.
    this.limiter?.beforeDispatch(due);
    let waiting = false;
    let first = this.sinks.values().next().value as DueCommandSink | undefined;
    let sliceStart = now;
    let inSlice = 0;
    let size = this.sliceSize(true);
    let resumed = false;
    // Indexed, not for-of: code not optimised yet (a boundary after idle seconds) would make
    // an iterator result a command.
    for (let i = 0; i < due.length; i++) {
      const cmd = due[i] as Command;
      if (inSlice >= size) {
        await nextTurn();
        this.measureSlice(sliceStart, inSlice);
        if (this.stopped || !this.running) return;
        first = this.sinks.values().next().value as DueCommandSink | undefined;
        sliceStart = this.clock.now();
        inSlice = 0;
        size = this.sliceSize(false);
        resumed = true;
      }
      // After a turn, what happened meanwhile counts (a cancel, a newer schedule, a hold).
      if (resumed && !this.engine.stillDue(cmd)) continue;
      inSlice++;
      // Its own dispatcher; else (a re-apply, a command restored without one) the one that
      // last delivered to the asset, whose wires reach its adapter; else the first.
      const entry = this.assets.get(cmd.assetId);
      const owner =
        this.owners.get(cmd.id) ??
        (cmd.scheduleId === null ? undefined : this.planOwners.get(cmd.scheduleId)) ??
        entry?.dispatcher ??
        undefined;
      const sink = (owner !== undefined ? this.sinks.get(owner) : undefined) ?? first;
      if (!sink) {
        if (this.autoDispatch) {
          attempts.push(this.engine.dispatchCommand(cmd));
        } else {
          waiting = true;
        }
        continue;
      }
      // The registry's table is `this.assets`: its entry says whether an adapter serves it.
      if ((entry?.adapter ?? null) === null) {
        await this.engine.dispatchCommand(cmd, null); // FAILS, saying no adapter serves it
        resumed = true;
        sink.undeliverable(cmd, cmd.lastError ?? `no adapter serves asset ${cmd.assetId}`);
        continue;
      }
      this.engine.markDispatched(cmd);
      if (entry) entry.dispatcher = this.sinkIds.get(sink) ?? null;
      sink.deliver(cmd);
    }
    // A large last slice: its cost once its commands went through (for the next handout).
    if (inSlice >= 100) {
      const start = sliceStart;
      const n = inSlice;
      setImmediate(() => this.measureSlice(start, n));
    }
    // Due commands with nobody to take them: look again after the interval, not at once.
    const at = this.clock.now();
    this.arm(false, waiting ? at + this.engine.config.dispatchIntervalSeconds * 1000 : undefined);
  }

  /** Sets the timer to the next due time or deadline (at most dispatchIntervalSeconds away). */
  protected arm(force = false, notBefore?: number): void {
    if (!this.running || this.stopped || this.loadingNow) return;
    const now = this.clock.now();
    const interval = this.engine.config.dispatchIntervalSeconds * 1000;
    let at = this.engine.nextWakeAt();
    // Only a run at a due time (or a deadline) is prepared, not one at the interval.
    const dueAt = at;
    const limitsAt = this.limiter?.nextWakeAt() ?? null;
    if (limitsAt !== null && (at === null || limitsAt < at)) at = limitsAt;
    if (at === null || at > now + interval) at = now + interval;
    if (notBefore !== undefined && at < notBefore) at = notBefore;
    if (
      (!force && this.timer !== null && this.timerAt !== null && this.timerAt <= at) ||
      (this.timer !== null && this.timerAt === at)
    ) {
      if (this.timerAt !== null && this.timerAt === dueAt) this.armPrepare(this.timerAt, now);
      return;
    }
    this.cancelTimer();
    this.timerAt = at;
    const run = () => {
      this.timer = null;
      this.timerAt = null;
      this.runOnce().catch((err) =>
        this.onError(err instanceof Error ? err : new Error(String(err))),
      );
    };
    if (at <= now) {
      // Due now: run as soon as the current event (a submit, an answer) is done.
      const handle = setImmediate(run);
      this.timer = { immediate: handle };
    } else if (at === dueAt && at - now > BOUNDARY_EARLY_MS && this.realTime()) {
      // A due time: the timer fires BOUNDARY_EARLY_MS early and the rest is waited out on
      // the clock, so that the handout starts at the due time, not the ms or two after it
      // that a timer's granularity adds; re-armed for what is left if the wait ran out.
      this.timer = this.timers.setTimeout(
        () => {
          if (waitUntil(this.clock, at, BOUNDARY_EARLY_MS + 1)) run();
          else this.timer = this.timers.setTimeout(run, Math.max(0, at - this.clock.now()));
        },
        at - now - BOUNDARY_EARLY_MS,
      );
    } else {
      this.timer = this.timers.setTimeout(run, at - now);
    }
    if (at === dueAt) this.armPrepare(at, now);
  }

  /**
   * Sets the prepare step for the run at `at`: `prepareAheadMs` before it (at once when that
   * is past), unless `at` is prepared already and nothing new became due since.
   */
  protected armPrepare(at: number, now: number): void {
    if (this.prepareAheadMs === 0 || at <= now) return;
    this.heatUp(at);
    if (this.preparedFor === at || this.prepareFor === at || this.preparing === at) return;
    this.cancelPrepare();
    this.prepareFor = at;
    this.prepareTimer = this.timers.setTimeout(
      () => {
        this.prepareTimer = null;
        this.prepareFor = null;
        // The run moved (a submit, a cancel): its own prepare step is set.
        if (this.timerAt !== at) return;
        this.prepareInSlices(at).catch((err) =>
          this.onError(err instanceof Error ? err : new Error(String(err))),
        );
      },
      Math.max(0, at - this.prepareLeadMs - now),
    );
  }

  /**
   * A process's first due time ahead: the scratch site heated up until V8 has optimised the
   * handout (src/warm.ts `heatUp`: rounds of a turn each, from now to shortly before `at`).
   * On the system clock and Node's timers only (a test's manual timers drive every turn).
   */
  private heatUp(at: number): void {
    const withLimits = this.limiter !== undefined && this.limiter !== null;
    if (!this.realTime() || warmedUp(withLimits) || heatingUp(withLimits)) return;
    heatUp(this.scratchSite(), withLimits, this.clock, at).catch((err) =>
      this.onError(new Error(`warming the dispatch path failed: ${(err as Error).message}`)),
    );
  }

  /** The system clock and Node's timers (not a test's manual ones): a boundary fires early. */
  private realTime(): boolean {
    return this.clock === systemClock && this.timers === globalTimers;
  }

  /** How long before a due time its prepare step starts (ms): see PREPARE_MARGIN. */
  get prepareLeadMs(): number {
    const lead = Math.max(this.prepareAheadMs, PREPARE_MARGIN * this.lastPrepareMs);
    return Math.min(lead, Math.max(this.prepareAheadMs, MAX_PREPARE_AHEAD_MS));
  }

  protected cancelPrepare(): void {
    if (this.prepareTimer !== null) this.timers.clearTimeout(this.prepareTimer);
    this.prepareTimer = null;
    this.prepareFor = null;
    // A sliced step under way stops at its next slice (the engine is consistent there).
    this.prepareToken++;
    this.preparing = null;
  }

  /**
   * The prepare step before the run at `at`, in one piece (the loop runs it in slices,
   * `prepareInSlices`, `prepareAheadMs` ahead): the
   * commands due by then are selected in their handout order (`engine.prepareDue`) and, on a
   * site with limits, their rate setpoints allocated as of `at` (`limiter.prepare`). Nothing
   * leaves and nothing changes state: at `at` each is checked again, and the allocation is
   * used only if nothing it depends on changed since. Returns the commands prepared.
   */
  prepare(at: number): Command[] {
    const started = this.clock.now();
    return this.finishPrepare(at, this.engine.prepareDue(at), started);
  }

  /**
   * The prepare step as the loop runs it: the selection (`engine.prepareDueSteps`, where a
   * large plan's rows become commands) in slices of a few ms with event-loop turns between
   * (`runSliced`), then the rest of `prepare`. It stops, leaving the engine consistent, when
   * the run at `at` moves or is cancelled or a newer step starts; a boundary reached before it
   * ends hands out what is due as without it. Resolves to the commands prepared, or null when
   * it stopped. Its time (clock, slices and what ran between them) paces the next one.
   */
  async prepareInSlices(at: number): Promise<Command[] | null> {
    const token = ++this.prepareToken;
    this.preparing = at;
    const started = this.clock.now();
    const live = () => this.prepareToken === token && this.timerAt === at && this.running;
    try {
      const due = await runSliced(whileLive(this.engine.prepareDueSteps(at), live));
      if (due === null || !live()) return null;
      return this.finishPrepare(at, due, started);
    } finally {
      if (this.prepareToken === token) this.preparing = null;
    }
  }

  private finishPrepare(at: number, due: Command[], started: number): Command[] {
    this.limiter?.prepare(due, at);
    // Prunes the entries of what finished since the last run (not at the boundary).
    this.engine.nextWakeAt();
    // The handout's code compiled again before it runs (src/warm.ts); a scratch site's own.
    // Once per boundary: a step run again (a reading, a new schedule) finds it warm.
    const warmed = this.preparedAt === at;
    this.preparedFor = at;
    this.preparedAt = at;
    // In a turn of its own (not on top of the allocation: one turn each), then the young
    // generation emptied if the handout would not fit in what is left of it.
    const withLimits = this.limiter !== undefined && this.limiter !== null;
    // A heat-up under way (the process's first boundaries) is that warm-up.
    if (due.length > 0 && !warmed && !warmingNow())
      nextTurn()
        .then(() => heatingUp(withLimits) ?? warm(this.scratchSite(), withLimits))
        .then(() => makeRoom(due.length))
        .catch((err) =>
          this.onError(new Error(`warming the dispatch path failed: ${(err as Error).message}`)),
        );
    this.lastPrepareMs = Math.max(0, this.clock.now() - started);
    return due;
  }

  protected cancelTimer(): void {
    this.cancelPrepare();
    if (this.timer === null) return;
    const t = this.timer as { immediate?: NodeJS.Immediate };
    if (typeof t === 'object' && t.immediate !== undefined) clearImmediate(t.immediate);
    else this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /** When the loop will next run (epoch ms), or null when it is stopped. */
  get nextRunAt(): number | null {
    return this.timerAt;
  }
}
