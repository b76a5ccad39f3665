/**
 * The engine's hand-out and dispatch (layer of DispatchEngine, src/engine.ts): what is due
 * (`getPendingCommands`, the slot boundary's hot path; `prepareDue`, selecting it ahead;
 * `nextWakeAt`), sending an attempt (`markDispatched`, `dispatchCommand`, `runAttempt`), the
 * device's answers, timeouts, retries with backoff, and cancellation.
 */

import type { Adapter, AdapterResult } from './adapters/registry';
import { runSync, type Steps } from './chunks';
import { type Command, CommandStatus, isFinal } from './commands';
import type { ResponseOptions, TimeInput } from './engine-config';
import { EngineCore } from './engine-core';
import { errorText, inFlight, REFUSED, responseOptions } from './engine-rules';
import { dueBefore, type HeapEntry, liveDue, readyOrder, type Tracked } from './engine-slots';
import { EventType } from './event-bus';
import { objectArray } from './heap';
import type { PlanCursor } from './plans';
import { silenceDeadline } from './silence';

/** Heap entries `prepareDueSteps` takes out between two checkpoints. */
export const PREPARE_CHUNK = 64;

/** "attempt n of m", made once per pair (the handout's history reason, no string a command). */
const attemptTexts: string[][] = [];
function attemptText(n: number, of: number): string {
  if (n > 16 || of > 16) return `attempt ${n} of ${of}`;
  let row = attemptTexts[n];
  if (row === undefined) {
    row = [];
    attemptTexts[n] = row;
  }
  let text = row[of];
  if (text === undefined) {
    text = `attempt ${n} of ${of}`;
    row[of] = text;
  }
  return text;
}

/** The command is still on that attempt, awaiting its answer. */
function onAttempt(cmd: Command, attempt: number): boolean {
  return inFlight(cmd.status) && cmd.attempts === attempt;
}

function isThenable<T>(x: unknown): x is PromiseLike<T> {
  return (
    x !== null &&
    (typeof x === 'object' || typeof x === 'function') &&
    typeof (x as { then?: unknown }).then === 'function'
  );
}

/** The last deadline handed out (`dispatchTracked`), shared by the next of the same ms. */
let lastDeadlineMs = Number.NaN;
let lastDeadline = new Date(0);

/** What `runAttempt` chains an answer given at once to. */
const resolved = Promise.resolve();

const dueOrder = (a: HeapEntry, b: HeapEntry): number =>
  dueBefore(a, b) ? -1 : dueBefore(b, a) ? 1 : 0;

/** Stale due-heap entries `nextWakeAt` pops one by one before it filters the heap instead. */
const STALE_POPS = 256;

export abstract class EngineDispatch extends EngineCore {
  /** See DispatchEngine.checkSilence (src/engine-submit.ts); called by the handout. */
  abstract checkSilence(now?: TimeInput): Command[];

  // ---------------------------------------------------------------- due commands

  /**
   * Commands due at `now` (default: the clock), highest priority first, then oldest first.
   * On the way, commands whose slot has ended are cancelled (expired) and commands of held
   * assets (FAULTED, UNAVAILABLE) are set aside until the asset's state changes.
   * The returned commands stay PENDING until dispatched.
   */
  getPendingCommands(now?: TimeInput): Command[] {
    const t = this.now(now);
    this.checkSilence(t);
    const ready: HeapEntry[] = [];
    // Prepared ahead (`prepareDue`): already selected and in order; they stay prepared
    // (PENDING) until dispatched, as heap entries stay in the heap.
    if (this.prepared.length > 0) {
      const keep: HeapEntry[] = [];
      const list = this.prepared;
      for (let i = 0; i < list.length; i++) {
        const e = list[i] as HeapEntry;
        if (!liveDue(e)) continue;
        const slot = e.tracked as Tracked;
        if (e.at > t) {
          keep.push(e);
          continue;
        }
        if (this.expireIfEnded(slot, t)) continue;
        if (this.holdIfNeeded(slot)) continue;
        ready.push(e);
        keep.push(e);
      }
      this.prepared = keep;
    }
    const fromPrepared = ready.length;
    for (;;) {
      const top = this.due.peek();
      if (!top || top.at > t) break;
      this.due.pop();
      const slot = top.tracked;
      if (slot === null) {
        // An asset's next planned row is due: it becomes a command now, handed out below.
        const c = top.cursor as PlanCursor;
        if (top.token === c.token && c.next < c.end) this.book.materialise(c, c.next);
        continue;
      }
      if (top.token !== slot.dueToken || slot.cmd.status !== CommandStatus.PENDING) continue;
      if (this.expireIfEnded(slot, t)) continue;
      if (this.holdIfNeeded(slot)) continue;
      ready.push(top);
    }
    for (let i = fromPrepared; i < ready.length; i++) this.due.push(ready[i] as HeapEntry);
    // Prepared entries of one due time are in order already (the common burst: no sort).
    const first = ready[0];
    const last = ready[ready.length - 1];
    if (fromPrepared < ready.length || (first && last && first.at !== last.at))
      ready.sort(readyOrder);
    const out: Command[] = new Array(ready.length);
    for (let i = 0; i < ready.length; i++)
      out[i] = ((ready[i] as HeapEntry).tracked as Tracked).cmd;
    return out;
  }

  /**
   * Whether a command that `getPendingCommands` handed out may still leave at `now` (a
   * handout in slices checks each command again after a turn of the event loop): it is still
   * PENDING and not moved to a later attempt since. One whose slot ended meanwhile is cancelled
   * (expired) and one whose asset is now held is set aside, as `getPendingCommands` does.
   */
  stillDue(command: Command, now?: TimeInput): boolean {
    const slot = this.tracked.get(command.id);
    if (!slot || slot.cmd !== command || command.status !== CommandStatus.PENDING) return false;
    const t = this.now(now);
    if (command.nextAttemptAt !== null && command.nextAttemptAt.getTime() > t) return false;
    if (this.expireIfEnded(slot, t)) return false;
    return !this.holdIfNeeded(slot);
  }

  /**
   * Prepares what will be due by `until` (epoch ms), ahead of its time, so that the handout
   * at the boundary (`getPendingCommands`) has only to check and hand out: the pending
   * commands due by then are selected (taken out of the due heap, in the order they will be
   * handed out) and returned, oldest due first. Nothing changes state: each is still checked
   * at its time (its slot ended, its asset held, a newer schedule superseded it, a retry or a
   * release moved it: a prepared command that changed is skipped and, where it is due again,
   * found again). Calling it again adds what became due by `until` since. Returns the commands
   * prepared (every one still prepared, not only the new ones). Planned rows due by then
   * are made into their commands here (see `PlanBook.materialise`), not at the boundary.
   */
  prepareDue(until: TimeInput): Command[] {
    return runSync(this.prepareDueSteps(until));
  }

  /**
   * `prepareDue` as steps (src/chunks.ts), for `runSliced`: it yields every PREPARE_CHUNK
   * heap entries (a planned row made into its command costs ~15 µs: a 10,000-asset boundary
   * is ~150 ms of work). Between steps the engine is consistent: what was taken out of the
   * heap is in the prepared list, in handout order, so a boundary, a submit or a cancel may
   * run in between; a step that is abandoned (never resumed) leaves nothing behind.
   */
  *prepareDueSteps(until: TimeInput): Steps<Command[]> {
    const t = this.now(until);
    this.prepared = this.prepared.filter(liveDue);
    let inOrder = true;
    let n = 0;
    for (;;) {
      const top = this.due.peek();
      if (!top || top.at > t) break;
      this.due.pop();
      if (liveDue(top)) {
        if (top.tracked === null) {
          // A planned row due by then: made into its command now, which is queued at the
          // same time and taken out of the heap by this loop.
          const c = top.cursor as PlanCursor;
          this.book.materialise(c, c.next);
        } else {
          // Popped in due order; only an entry due before what an earlier step prepared (a
          // command submitted since, due sooner) puts the list out of order.
          const list = this.prepared;
          const last = list[list.length - 1];
          if (last !== undefined && dueBefore(top, last)) inOrder = false;
          list.push(top);
        }
      }
      if (++n % PREPARE_CHUNK === 0) {
        if (!inOrder) this.prepared.sort(dueOrder);
        inOrder = true;
        yield;
      }
    }
    // Without what left or changed between the steps (a boundary, a cancel).
    const list = this.prepared.filter(liveDue);
    if (!inOrder) list.sort(dueOrder);
    this.prepared = list;
    return list.map((e) => (e.tracked as Tracked).cmd);
  }

  /**
   * The earliest time at which something is due or times out, or the optimiser's silence
   * begins (epoch ms), or null.
   */
  nextWakeAt(): number | null {
    let top = this.due.peek();
    let popped = 0;
    while (top && !liveDue(top)) {
      if (++popped > STALE_POPS) {
        // Many stale entries on top (a replaced plan's cursors, cut at once): one pass over
        // the heap drops them all, cheaper than popping each.
        this.due.retain(liveDue);
        top = this.due.peek();
        break;
      }
      this.due.pop();
      top = this.due.peek();
    }
    // The prepared (in due order): the first live one is the earliest.
    const p = this.prepared;
    let stale = 0;
    while (stale < p.length && !liveDue(p[stale] as HeapEntry)) stale++;
    if (stale > 0) p.splice(0, stale);
    const firstPrepared = p[0];
    let dl = this.deadlines.peek();
    while (
      dl &&
      (dl.token !== (dl.tracked as Tracked).deadlineToken ||
        !inFlight((dl.tracked as Tracked).cmd.status))
    ) {
      this.deadlines.pop();
      dl = this.deadlines.peek();
    }
    const silence = silenceDeadline(this.lastSchedule, this.config.silenceSeconds);
    let at = silence ?? Number.POSITIVE_INFINITY;
    if (top) at = Math.min(at, top.at);
    if (firstPrepared) at = Math.min(at, firstPrepared.at);
    if (dl) at = Math.min(at, dl.at);
    return at === Number.POSITIVE_INFINITY ? null : at;
  }

  // ---------------------------------------------------------------- dispatch and answers

  /**
   * Sends one attempt of a PENDING command through `adapter` (default: the registry's
   * adapter for its asset). Marks it DISPATCHED, then applies the adapter's answer, if it
   * gives one; an adapter that answers later calls `handleResponse`. A command for an asset
   * that no adapter serves FAILS with an error saying so. Resolves to the command's status.
   */
  async dispatchCommand(
    command: Command | string,
    adapter?: Adapter | null,
  ): Promise<CommandStatus> {
    const slot = this.trackedOf(command);
    const cmd = slot.cmd;
    const now = this.clock.now();
    if (cmd.status !== CommandStatus.PENDING) return cmd.status;
    if (this.expireIfEnded(slot, now)) return cmd.status;
    if (this.holdIfNeeded(slot)) return cmd.status;
    const a = adapter === undefined ? this.adapterRegistry.get(cmd.assetId) : adapter;
    if (!a) {
      cmd.lastError = `no adapter serves asset ${cmd.assetId}: add an adapter for it (registered assets: ${
        this.adapterRegistry.assets().join(', ') || 'none'
      })`;
      this.finish(slot, CommandStatus.FAILED, now, cmd.lastError);
      return cmd.status;
    }
    this.dispatchTracked(slot, now);
    await this.runAttempt(cmd, a);
    return cmd.status;
  }

  /**
   * Runs the attempt in flight of a DISPATCHED command through `adapter` and applies its
   * answer (when the command is still on that attempt). A thrown error is a failure: final
   * when it says so (`AdapterError` with `final`), else retried. Resolves to the adapter's
   * answer, or undefined when it answers later through `handleResponse`. Hosts that marked a
   * command dispatched themselves (a Node-RED wire) call this where the command arrives.
   *
   * The burst's hot path (issue 17): no async frame. An answer given at once (not a promise)
   * is applied one microtask later, as an `await` of it did (see `applyAnswer`); a promise is
   * awaited (`awaitAnswer`); a thrown error is applied at once. Never throws: an error (an
   * unknown command) is the promise's rejection.
   */
  runAttempt(command: Command | string, adapter: Adapter): Promise<AdapterResult | undefined> {
    try {
      return this.attemptThrough(command, adapter);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private attemptThrough(
    command: Command | string,
    adapter: Adapter,
  ): Promise<AdapterResult | undefined> {
    const slot = this.trackedOf(command);
    const cmd = slot.cmd;
    const attempt = cmd.attempts;
    // Wherever it waited (a queue, a wire, a delay node), nothing leaves for a slot that ended.
    const now = this.clock.now();
    if (onAttempt(cmd, attempt) && cmd.validUntil !== null && cmd.validUntil.getTime() <= now) {
      const error = `its slot ended at ${cmd.validUntil.toISOString()} before it reached the adapter`;
      this.finish(slot, CommandStatus.CANCELLED, now, `expired: ${error}`);
      return Promise.resolve({ success: false, expired: true, error });
    }
    let result: Promise<AdapterResult | undefined> | AdapterResult | undefined;
    try {
      result = adapter.dispatch(cmd);
    } catch (err) {
      return Promise.resolve(this.applyFailure(cmd, attempt, err));
    }
    if (isThenable(result)) return this.awaitAnswer(cmd, attempt, result);
    // Applied by the reaction registered with it: reactions run in the order registered, so
    // the n-th `applyAnswer` takes the n-th answer queued.
    const q = this.answers;
    q.push(cmd, attempt, result);
    return resolved.then(this.applyAnswer);
  }

  /** Answers given at once, waiting for their microtask: command, attempt, answer, ... */
  private readonly answers: unknown[] = objectArray();
  private answersHead = 0;

  /** Applies the oldest queued answer (see `attemptThrough`) and resolves to it. */
  private readonly applyAnswer = (): AdapterResult | undefined => {
    const q = this.answers;
    const i = this.answersHead;
    const cmd = q[i] as Command;
    const attempt = q[i + 1] as number;
    const result = q[i + 2] as AdapterResult | undefined;
    q[i] = undefined;
    q[i + 2] = undefined;
    if (i + 3 >= q.length) {
      q.length = 0;
      this.answersHead = 0;
    } else {
      this.answersHead = i + 3;
    }
    if (result && onAttempt(cmd, attempt))
      this.handleResponse(cmd, result.success, result.error, responseOptions(result));
    return result;
  };

  /** An adapter's answer that is a promise: awaited, then applied. */
  private async awaitAnswer(
    cmd: Command,
    attempt: number,
    answer: PromiseLike<AdapterResult | undefined>,
  ): Promise<AdapterResult | undefined> {
    let result: AdapterResult | undefined;
    try {
      result = await answer;
    } catch (err) {
      return this.applyFailure(cmd, attempt, err);
    }
    if (result && onAttempt(cmd, attempt))
      this.handleResponse(cmd, result.success, result.error, responseOptions(result));
    return result;
  }

  /** An adapter's thrown error or rejection as the attempt's failure, applied. */
  private applyFailure(cmd: Command, attempt: number, err: unknown): AdapterResult {
    const failure: AdapterResult = { success: false, error: errorText(err) };
    const e = err as { final?: unknown; timedOut?: unknown; expired?: unknown } | null;
    if (e?.final === true) failure.final = true;
    if (e?.timedOut === true) failure.timedOut = true;
    if (e?.expired === true) failure.expired = true;
    if (onAttempt(cmd, attempt))
      this.handleResponse(cmd, false, failure.error, responseOptions(failure));
    return failure;
  }

  /**
   * Marks a PENDING command DISPATCHED without calling an adapter: for hosts that deliver
   * the command themselves (a Node-RED wire) and report the answer with `handleResponse`.
   */
  markDispatched(command: Command | string): Command {
    return this.dispatchTracked(this.trackedOf(command), this.clock.now());
  }

  protected dispatchTracked(slot: Tracked, now: number): Command {
    const cmd = slot.cmd;
    cmd.attempts++;
    cmd.nextAttemptAt = null;
    cmd.holdReason = null;
    const deadline = now + cmd.timeoutSeconds * 1000;
    // The commands handed out in one ms share their deadline's Date, as a submission's share
    // their times (`InternCache`: nothing changes a command's Date in place).
    if (deadline !== lastDeadlineMs) {
      lastDeadline = new Date(deadline);
      lastDeadlineMs = deadline;
    }
    cmd.deadline = lastDeadline;
    this.move(slot, CommandStatus.DISPATCHED, now, attemptText(cmd.attempts, cmd.maxRetries + 1));
    slot.dueToken = ++this.token;
    slot.deadlineToken = ++this.token;
    this.deadlines.push({
      at: deadline,
      priority: 0,
      seq: ++this.seq,
      tracked: slot,
      cursor: null,
      token: slot.deadlineToken,
    });
    this.emit(EventType.COMMAND_DISPATCHED, cmd);
    return cmd;
  }

  /**
   * Applies the device's answer to the attempt in flight. Success: ACKNOWLEDGED, then
   * COMPLETED unless `completed: false` (a later success confirms it). Failure: retried
   * after a backoff while attempts remain and the slot lasts, unless `final` (the device
   * refused: FAILED at once). Returns false when there is no attempt in flight to answer
   * (unknown id, already finished, or an answer that came after its attempt timed out).
   */
  handleResponse(
    command: Command | string,
    success: boolean,
    error?: string | null,
    options: ResponseOptions = {},
  ): boolean {
    const slot = this.tracked.get(typeof command === 'string' ? command : command.id);
    if (!slot) return false;
    const cmd = slot.cmd;
    if (!inFlight(cmd.status)) return false;
    const now = this.clock.now();
    if (success) {
      if (cmd.status === CommandStatus.DISPATCHED) {
        this.move(slot, CommandStatus.ACKNOWLEDGED, now);
        this.emit(EventType.COMMAND_ACKNOWLEDGED, cmd);
        if (options.completed === false) return true;
      } else if (options.completed === false) {
        return true;
      }
      this.finish(slot, CommandStatus.COMPLETED, now);
      return true;
    }
    cmd.lastError = error ? String(error) : 'failed (no reason given)';
    if (options.expired) {
      this.finish(slot, CommandStatus.CANCELLED, now, `expired: ${cmd.lastError}`);
      return true;
    }
    if (options.final) {
      this.finish(slot, CommandStatus.FAILED, now, `${REFUSED}${cmd.lastError}`);
      return true;
    }
    this.retryOrGiveUp(slot, now, options.timedOut === true);
    return true;
  }

  /** Confirms an ACKNOWLEDGED command (a read-back matched): COMPLETED. */
  complete(command: Command | string): boolean {
    return this.handleResponse(command, true);
  }

  /**
   * Attempts whose deadline has passed at `now`: each is retried after a backoff while
   * attempts remain and its slot lasts, otherwise TIMED_OUT. Returns those commands.
   */
  checkTimeouts(now?: TimeInput): Command[] {
    const t = this.now(now);
    const out: Command[] = [];
    for (;;) {
      const top = this.deadlines.peek();
      if (!top || top.at > t) break;
      this.deadlines.pop();
      const slot = top.tracked as Tracked;
      if (top.token !== slot.deadlineToken || !inFlight(slot.cmd.status)) continue;
      slot.cmd.lastError = `no answer within ${slot.cmd.timeoutSeconds} s (attempt ${slot.cmd.attempts})`;
      this.retryOrGiveUp(slot, t, true);
      out.push(slot.cmd);
    }
    return out;
  }

  /** Seconds to wait before retry number `n` (1 = the first retry). */
  backoffSeconds(n: number): number {
    const { retryBaseSeconds, retryBackoffFactor, retryMaxSeconds } = this.config;
    return Math.min(retryBaseSeconds * retryBackoffFactor ** (n - 1), retryMaxSeconds);
  }

  protected retryOrGiveUp(slot: Tracked, now: number, timedOut: boolean): void {
    const cmd = slot.cmd;
    slot.deadlineToken = ++this.token;
    cmd.deadline = null;
    let why = `no attempt left (${cmd.attempts} of ${cmd.maxRetries + 1})`;
    if (cmd.attempts <= cmd.maxRetries) {
      const delay = this.backoffSeconds(cmd.attempts);
      const next = now + delay * 1000;
      if (cmd.validUntil === null || next < cmd.validUntil.getTime()) {
        cmd.nextAttemptAt = new Date(next);
        this.move(slot, CommandStatus.PENDING, now, `retry in ${delay} s: ${cmd.lastError}`);
        this.enqueue(slot, next);
        return;
      }
      why = `no retry: the slot ends at ${cmd.validUntil.toISOString()}, before the next attempt`;
    }
    this.finish(
      slot,
      timedOut ? CommandStatus.TIMED_OUT : CommandStatus.FAILED,
      now,
      `${cmd.lastError}; ${why}`,
    );
  }

  // ---------------------------------------------------------------- cancellation

  /** Cancels one unfinished command. True if it was cancelled. */
  cancel(command: Command | string, reason = 'cancelled'): boolean {
    const id = typeof command === 'string' ? command : command.id;
    const slot = this.trackedOrPlanned(id);
    if (!slot || isFinal(slot.cmd.status)) return false;
    this.finish(slot, CommandStatus.CANCELLED, this.clock.now(), reason);
    return true;
  }

  /**
   * Cancels PENDING commands (held ones too), of one asset or all; with `includeInFlight`
   * also those awaiting an answer. Returns the cancelled commands.
   */
  cancelPending(
    filter: { assetId?: string; includeInFlight?: boolean } = {},
    reason = 'cancelled',
  ): Command[] {
    this.settleCuts(); // its cancellations after those of the rows cut before
    const out: Command[] = [];
    const now = this.clock.now();
    const assetIds =
      filter.assetId === undefined
        ? [...new Set([...this.active.keys(), ...this.book.assetIds()])]
        : [filter.assetId];
    const budget = this.book.budget(this.book.rowsOf(assetIds));
    for (const assetId of assetIds) {
      for (const slot of [...(this.active.get(assetId) ?? [])]) {
        const s = slot.cmd.status;
        if (s === CommandStatus.PENDING || (filter.includeInFlight && inFlight(s))) {
          this.finish(slot, CommandStatus.CANCELLED, now, reason);
          out.push(slot.cmd);
        }
      }
      // Planned rows too; those beyond what the finished commands keep are made for `out` only.
      this.book.cancelAsset(assetId, reason, now, budget, out);
    }
    return out;
  }
}
