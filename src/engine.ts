/**
 * DispatchEngine: holds the commands of a site and moves them through their lifecycle:
 * which are due, dispatch through an adapter, the device's answer, retries with backoff,
 * timeouts, holds for faulted or unavailable assets, supersession by newer schedules,
 * expiry of setpoints whose slot has ended. Time comes from an injected clock. A schedule
 * submitted as a plan stays columns (src/plan-book.ts) until each row falls due or is read.
 *
 * Due commands and attempt deadlines sit in heaps, so selecting what is due costs
 * O(k log n) for k due commands, not a scan of every pending one. A host can have what will
 * be due selected ahead of its time (`prepareDue`), so that at the slot boundary it is only
 * checked and handed out.
 *
 * This file is the public class and its entry point: re-applying and the limits' hooks,
 * change/persist/wake listeners, state machines and holds, queries, persistence. It is
 * layered on EngineCore (src/engine-core.ts: state and shared bookkeeping), EngineDispatch
 * (src/engine-dispatch.ts: hand-out, dispatch, answers, retries, timeouts, cancellation) and
 * EngineSubmission (src/engine-submit.ts: schedules, submission, plans, silence); cold parts
 * are functions in engine-reapply.ts, engine-queries.ts and engine-persist.ts.
 */

import { runSync, type Steps } from './chunks';
import { type Command, CommandStatus } from './commands';
import type {
  CommandFilter,
  EngineJSON,
  EngineStats,
  RateSetpoints,
  TimeInput,
} from './engine-config';
import type { EngineDeps } from './engine-core';
import { engineToJSON, type PersistHost, restoreSteps } from './engine-persist';
import { commandInForce, commandsMatching, heldOf, inFlightOf, statsOf } from './engine-queries';
import {
  type ReapplyHost,
  rateSetpointsOf,
  reallocateRates,
  reapplyInForce,
} from './engine-reapply';
import { EngineSubmission } from './engine-submit';
import type { PersistChange } from './plan-book';
import { type RestoreProblem, reportToConsole } from './restore';
import { HOLD_STATES, type StateMachine } from './state-machine';

export type {
  CommandFilter,
  EngineJSON,
  EngineMetaJSON,
  EngineStats,
  PlanSubmission,
  RateSetpoints,
  ResponseOptions,
  TimeInput,
} from './engine-config';
export { DEFAULT_CONFIG, type EngineConfig, resolveConfig } from './engine-config';

export type { EngineDeps } from './engine-core';
export { REAPPLY_MIN_REMAINING_MS } from './engine-rules';
export type { PersistChange } from './plan-book';

export class DispatchEngine extends EngineSubmission {
  /** The engine as host of its re-apply logic (src/engine-reapply.ts). */
  private readonly reapplyHost: ReapplyHost;

  constructor(deps: EngineDeps = {}) {
    super(deps);
    this.reapplyHost = {
      book: this.book,
      tracked: this.tracked,
      active: this.active,
      lastSetpoint: this.lastSetpoint,
      now: () => this.clock.now(),
      persistCommand: (id) => this.persistCommand(id),
      enqueue: (slot, at) => this.enqueue(slot, at),
      register: (fresh, now) => this.register(fresh, now, false),
    };
  }

  // ---------------------------------------------------------------- re-applying

  /**
   * Re-applies the setpoint in force to an asset whose device may have lost it: it connected,
   * booted or restarted, or the host was redeployed or restarted. For each kind of setpoint (a
   * rate: SET_CHARGE_RATE / SET_DISCHARGE_RATE; a cap: SET_POWER_LIMIT) the one in force is the
   * latest whose slot has begun and not ended, whatever became of it, unless it was cancelled
   * or its device refused it:
   * - PENDING (due, held, or waiting for a retry): it goes out now, without waiting for the
   *   retry's backoff (a held one stays held until its asset is released);
   * - in flight: nothing new (its answer or its deadline decides, as for any attempt);
   * - finished (COMPLETED, or FAILED / TIMED_OUT after its attempts): a new command with its
   *   setpoint, due now, valid as long as it is, with `reapplyOf` its id: tracked like any
   *   command (events, holds, retries, timeouts, persistence) and superseding nothing.
   * So a re-apply already on its way is not doubled. Nor is a setpoint re-applied that
   * COMPLETED at or after `appliedSince` (epoch ms: e.g. when the device's current connection
   * opened), which the device already holds, or whose slot ends within
   * REAPPLY_MIN_REMAINING_MS (1 s): the next slot's command is about to go, and this one would
   * reach the device as its slot ends. Returns the commands that carry the setpoints in force
   * (empty when nothing is in force).
   */
  reapply(assetId: string, reason: string, options: { appliedSince?: number } = {}): Command[] {
    return reapplyInForce(this.reapplyHost, assetId, reason, options);
  }

  /**
   * The rate setpoints (SET_CHARGE_RATE / SET_DISCHARGE_RATE) of an asset at `now`, for the
   * site's limits: `plan`, the one in force by `reapply`'s rule (latest begun and not ended,
   * not cancelled nor refused, whatever its status); `inFlight`, those on their way to the
   * device; `last`, the latest finished one in force (the device may hold it).
   */
  rateSetpoints(assetId: string, now: number): RateSetpoints {
    return rateSetpointsOf(this.reapplyHost, assetId, now);
  }

  /**
   * Sets what a PENDING rate command will apply, kW, because the site's limits allow less (or,
   * again, all) of what its schedule asked: `askedKw` keeps the asked value, `limitedBy` the
   * limit that bound it. Returns false when the command is not PENDING (nothing changed).
   */
  limitSetpoint(command: Command | string, valueKw: number, limitedBy: string | null): boolean {
    const cmd = this.trackedOf(command).cmd;
    if (cmd.status !== CommandStatus.PENDING) return false;
    const asked = cmd.askedKw ?? cmd.valueKw;
    cmd.valueKw = valueKw;
    if (limitedBy === null || valueKw === asked) {
      delete cmd.askedKw;
      delete cmd.limitedBy;
    } else {
      cmd.askedKw = asked;
      cmd.limitedBy = limitedBy;
    }
    this.changed(cmd);
    return true;
  }

  /**
   * Re-applies rate setpoints in force with other values, kW signed (+ charge, - a battery's
   * discharge), because the site's limits changed: for each, a new tracked command like
   * `reapply`'s (`<id>~n`, due now, valid as long as the one in force), carrying the asked
   * value and `limitedBy`; registered together. An asset whose rate setpoint in force is
   * missing or still PENDING (it will be limited as it leaves) gets none. Returns the new
   * commands.
   */
  reallocate(
    changes: readonly { assetId: string; kw: number; limitedBy: string | null }[],
    reason: string,
  ): Command[] {
    return reallocateRates(this.reapplyHost, changes, reason);
  }

  // ---------------------------------------------------------------- listeners

  /**
   * Calls `listener` (once per burst, in a microtask) whenever what is due or what times out
   * changes: a host's timer should then look at `nextWakeAt()` again. Returns unsubscribe.
   */
  onWake(listener: () => void): () => void {
    this.wakeListeners.add(listener);
    return () => {
      this.wakeListeners.delete(listener);
    };
  }

  /**
   * Calls `listener` with each command whose status changes (and each new one, and each one
   * held back by its asset or released), synchronously
   * and without building an event: cheap, for hosts that only need to know that something
   * changed (persistence, status displays). Returns unsubscribe.
   */
  onCommandChange(listener: (cmd: Command) => void): () => void {
    this.changeListeners.add(listener);
    return () => {
      this.changeListeners.delete(listener);
    };
  }

  /**
   * Calls `listener` with each change of the state that `toJSON` persists, as it happens:
   * `c:<commandId>` for a command that is new, changed or (value undefined) trimmed, `meta`
   * for the asset states, schedule revisions and last schedule (value an EngineMetaJSON).
   * For journals: `value()` gives the entry's JSON at the time it is called. Returns
   * unsubscribe.
   */
  onPersist(listener: (change: PersistChange) => void): () => void {
    this.persistListeners.add(listener);
    // Plans: `p:<scheduleId>` whenever a plan is registered, cut short (supersession,
    // cancellation) or used up, value() the rows still planned, undefined when none is left.
    // Making a due row into a command writes no `p:` record: the command is what the row
    // says, made again the same way after a restart (a restored command of the plan moves
    // its cursor past it); its changes from then on are `c:` records.
    const offBook = this.book.onPersist(listener);
    return () => {
      this.persistListeners.delete(listener);
      offBook();
    };
  }

  // ---------------------------------------------------------------- state machines and holds

  /**
   * Lets the engine consult `machine` for holds: commands for its asset are held while it is
   * FAULTED or UNAVAILABLE and released when it leaves those states. A state restored from
   * persistence is applied to it. Replaces a machine registered before for the same asset.
   */
  registerStateMachine(machine: StateMachine): void {
    this.unregisterStateMachine(machine.assetId);
    const off = machine.onChange((change) => {
      this.persistMeta();
      if (!HOLD_STATES.has(change.to_state)) this.release(change.assetId);
    });
    const entry = this.assets.ensure(machine.assetId);
    entry.machine = machine;
    entry.offMachine = off;
    const restored = this.restoredStates.get(machine.assetId);
    this.persistMeta();
    if (restored !== undefined) {
      this.restoredStates.delete(machine.assetId);
      if (machine.states.includes(restored) && restored !== machine.currentState) {
        machine.forceState(restored, 'restored from persistence');
      }
    }
  }

  /** Stops consulting the asset's machine; its held commands are released. */
  unregisterStateMachine(assetId: string, machine?: StateMachine): boolean {
    const e = this.assets.get(assetId);
    if (!e?.machine || (machine !== undefined && e.machine !== machine)) return false;
    e.offMachine?.();
    e.machine = null;
    e.offMachine = null;
    e.machineKind = null;
    e.machineUsers.clear();
    this.assets.prune(assetId);
    this.persistMeta();
    this.release(assetId);
    return true;
  }

  getStateMachine(assetId: string): StateMachine | undefined {
    return this.assets.get(assetId)?.machine ?? undefined;
  }

  /** Whether the asset's state was last set or confirmed more than staleStateSeconds ago. */
  isStateStale(assetId: string, now?: TimeInput): boolean {
    const m = this.assets.get(assetId)?.machine;
    if (!m) return false;
    return this.now(now) - m.updatedAt > this.config.staleStateSeconds * 1000;
  }

  // ---------------------------------------------------------------- inspection

  /** The command of that id (a planned row is made into its command on the way). */
  getCommand(id: string): Command | undefined {
    this.settleCuts();
    return this.trackedOrPlanned(id)?.cmd;
  }

  getCommands(filter: CommandFilter = {}): Command[] {
    this.settleCuts();
    return commandsMatching(this.tracked, this.book, filter);
  }

  /** The commands of an asset awaiting an answer (never a planned row: no row is made). */
  getInFlightCommands(assetId: string): Command[] {
    return inFlightOf(this.active.get(assetId));
  }

  /**
   * The unfinished commands of an asset (from the engine's index: no scan). Its planned rows
   * are made into their commands: for a count of those in flight, `getInFlightCommands`.
   */
  getActiveCommands(assetId: string): Command[] {
    this.book.materialiseAll(assetId);
    return [...(this.active.get(assetId) ?? [])].map((s) => s.cmd);
  }

  /**
   * The setpoint in force for an asset at `now`: its latest COMPLETED SET_CHARGE_RATE,
   * SET_DISCHARGE_RATE or SET_POWER_LIMIT whose slot has begun and not ended, or undefined.
   */
  getCommandInForce(assetId: string, now?: TimeInput): Command | undefined {
    this.settleCuts(); // the finished list as it is once every cut row is kept
    return commandInForce(this.tracked, assetId, this.now(now));
  }

  /** Commands of an asset that are held back, oldest first. */
  getHeldCommands(assetId?: string): Command[] {
    return heldOf(this.held, assetId);
  }

  stats(): EngineStats {
    this.settleCuts();
    return statsOf(this.counts, this.heldCount, this.tracked.size, this.book.planned);
  }

  /** Convenience for a polling host: time out late attempts, then dispatch what is due. */
  async tick(now?: TimeInput): Promise<Command[]> {
    const t = this.now(now);
    this.checkTimeouts(t);
    const due = this.getPendingCommands(t);
    await Promise.all(due.map((c) => this.dispatchCommand(c)));
    return due;
  }

  // ---------------------------------------------------------------- persistence

  /** Everything needed to carry on after a restart, as JSON-safe data. */
  toJSON(): EngineJSON {
    this.settleCuts();
    return engineToJSON(this.persistHost());
  }

  /**
   * Rebuilds an engine from `toJSON()` output. At the restore time: PENDING commands whose
   * slot has ended are cancelled (expired), never sent late; an attempt that was in flight
   * counts as timed out (retried if attempts and the slot remain); finished commands are kept
   * for inspection. Asset states are applied to state machines as they are registered.
   *
   * One bad entry never costs the others: an entry that cannot be restored (a command with a
   * value out of bounds, a missing field, a duplicate id; an asset state that is not a name)
   * is left out and reported to `onProblem` (which entry, why; default console.error), and
   * everything else is restored. Only a document that is not an engine's state at all (not
   * an object, another format or version) throws a TypeError.
   *
   * `onChange` gets, as `onPersist` gives them, the entries the restore itself changed
   * (commands expired, timed out, trimmed or released from a hold; plans whose cursors
   * moved past commands made of their rows, or used up), then
   * `meta`: a journal that records them holds what the engine holds, without a whole save.
   */
  static restore(
    json: unknown,
    deps: EngineDeps = {},
    onProblem: (problem: RestoreProblem) => void = reportToConsole,
    onChange?: (change: PersistChange) => void,
  ): DispatchEngine {
    const engine = new DispatchEngine(deps);
    runSync(engine.restoreSteps(json, onProblem, onChange));
    return engine;
  }

  /**
   * `DispatchEngine.restore` into this engine, which holds no commands nor plans yet, in
   * steps (src/chunks.ts; a Site that loads its saved state in slices while it serves).
   * Nothing is published for what the restore itself changes (a new engine's restore has no
   * subscribers either). A state machine registered before the restore ended takes its
   * restored state, unless it has changed since it was made (a device spoke meanwhile).
   * Throws, before changing anything, what `restore` throws, and an Error when the engine
   * holds commands or plans already.
   */
  *restoreSteps(
    json: unknown,
    onProblem: (problem: RestoreProblem) => void = reportToConsole,
    onChange?: (change: PersistChange) => void,
  ): Steps<void> {
    if (this.tracked.size > 0 || this.book.size > 0)
      throw new Error('restore: the engine holds commands or plans already');
    const off = onChange ? this.onPersist(onChange) : null;
    try {
      const steps = restoreSteps(this.persistHost(), json, onProblem);
      for (;;) {
        this.quiet = true;
        let r: IteratorResult<void, void>;
        try {
          r = steps.next();
        } finally {
          this.quiet = false;
        }
        if (r.done) break;
        yield;
      }
    } finally {
      off?.();
    }
    onChange?.(this.metaChange);
    for (const [assetId, state] of [...this.restoredStates]) {
      const machine = this.getStateMachine(assetId);
      if (!machine) continue;
      this.restoredStates.delete(assetId);
      if (machine.history.length === 0 && machine.states.includes(state)) {
        if (state !== machine.currentState) machine.forceState(state, 'restored from persistence');
      } else this.persistMeta();
    }
  }

  /** The engine as its persistence's host (src/engine-persist.ts). */
  private persistHost(): PersistHost {
    return {
      clock: this.clock,
      book: this.book,
      tracked: this.tracked,
      counts: this.counts,
      finished: this.finished,
      restoredStates: this.restoredStates,
      scheduleIds: this.scheduleIds,
      metaJSON: () => this.metaJSON(),
      setLastSchedule: (last) => {
        this.lastSchedule = last;
      },
      noteFinishedSetpoint: (cmd) => this.noteFinishedSetpoint(cmd),
      addActive: (slot) => this.addActive(slot),
      expireIfEnded: (slot, now) => this.expireIfEnded(slot, now),
      enqueue: (slot, at) => this.enqueue(slot, at),
      retryOrGiveUp: (slot, now, timedOut) => this.retryOrGiveUp(slot, now, timedOut),
      trimFinished: () => this.trimFinished(),
      persistCommand: (id) => this.persistCommand(id),
    };
  }
}
