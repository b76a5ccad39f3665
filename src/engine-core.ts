/**
 * The state of a DispatchEngine (src/engine.ts) and the bookkeeping every part of it shares:
 * the indexes of tracked commands (per id, unfinished and held per asset), the due and
 * deadline heaps, the status counts, the plan book; moving a command between statuses and
 * finishing it, queueing it, holding and releasing it, expiring it when its slot ended; the
 * change, persistence and wake notifications. The engine is layered on it: EngineCore, then
 * EngineDispatch (src/engine-dispatch.ts), EngineSubmission (src/engine-submit.ts) and the
 * public DispatchEngine, so that the hot paths use the state without indirection.
 */

import { AdapterRegistry } from './adapters/registry';
import type { AssetTable } from './assets';
import { BigMap } from './big-map';
import { type Clock, systemClock, toMillis } from './clock';
import {
  type Command,
  CommandStatus,
  CommandType,
  commandToJSON,
  isFinal,
  transition,
} from './commands';
import {
  type EngineConfig,
  type EngineMetaJSON,
  resolveConfig,
  type TimeInput,
} from './engine-config';
import { type CommandEventType, EVENT_FOR } from './engine-rules';
import {
  dueBefore,
  type HeapEntry,
  liveDue,
  noteFinishedSetpoint,
  type Tracked,
} from './engine-slots';
import { EventBus } from './event-bus';
import { Heap, objectArray } from './heap';
import { type PersistChange, PlanBook, type PlanHost } from './plan-book';
import { ScheduleIds } from './schedule-ids';
import { type LastSchedule, lastScheduleToJSON } from './silence';
import { HOLD_STATES } from './state-machine';

export interface EngineDeps {
  eventBus?: EventBus;
  adapterRegistry?: AdapterRegistry;
  config?: Partial<EngineConfig>;
  clock?: Clock;
}

/** A change listener called with the command that `Set.forEach` was given as `this`. */
function callWith(this: Command, listener: (cmd: Command) => void): void {
  listener(this);
}

export abstract class EngineCore {
  readonly eventBus: EventBus;
  readonly adapterRegistry: AdapterRegistry;
  readonly config: EngineConfig;
  readonly clock: Clock;

  protected readonly tracked = new BigMap<string, Tracked>();
  /** Unfinished commands per asset. */
  protected readonly active = new Map<string, Set<Tracked>>();
  protected readonly held = new Map<string, Set<Tracked>>();
  protected readonly due = new Heap<HeapEntry>(dueBefore);
  /**
   * Entries taken out of `due` ahead of their time by `prepareDue`, in `dueBefore` order:
   * handed out from here at their time. Stale ones (token or status changed) are skipped.
   */
  protected prepared: HeapEntry[] = objectArray();
  protected readonly deadlines = new Heap<HeapEntry>(
    (a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq),
  );
  protected readonly finished: string[] = [];
  protected finishedHead = 0;
  /** The site's per-asset facts (the registry's table): state machines live there. */
  protected readonly assets: AssetTable;
  protected readonly restoredStates = new Map<string, string>();
  protected readonly scheduleIds = new ScheduleIds();
  /** Submitted plans: their rows not yet made into commands are PENDING in every count. */
  protected readonly book: PlanBook;
  /** The last schedule received (`receiveSchedule`): its silence is counted from then. */
  protected lastSchedule: LastSchedule | null = null;
  /** Per asset and kind of setpoint, the latest finished (not cancelled) setpoint command. */
  protected readonly lastSetpoint = new Map<string, Command>();
  protected readonly counts: Record<CommandStatus, number> = {
    PENDING: 0,
    DISPATCHED: 0,
    ACKNOWLEDGED: 0,
    COMPLETED: 0,
    FAILED: 0,
    TIMED_OUT: 0,
    CANCELLED: 0,
  };
  protected heldCount = 0;
  protected readonly wakeListeners = new Set<() => void>();
  protected readonly changeListeners = new Set<(cmd: Command) => void>();
  protected readonly persistListeners = new Set<(change: PersistChange) => void>();
  protected readonly metaChange: PersistChange = { key: 'meta', value: () => this.metaJSON() };
  protected wakeQueued = false;
  /** Set while a restore's step runs (`restoreSteps`): its changes publish no events. */
  protected quiet = false;
  protected seq = 0;
  protected token = 0;
  protected idCounter = 0;

  constructor(deps: EngineDeps = {}) {
    this.clock = deps.clock ?? systemClock;
    this.config = resolveConfig(deps.config);
    this.eventBus = deps.eventBus ?? new EventBus({ clock: this.clock });
    this.adapterRegistry = deps.adapterRegistry ?? new AdapterRegistry();
    this.assets = this.adapterRegistry.table;
    this.book = new PlanBook(this.planHost(), () => this.config.maxFinishedCommands);
  }

  protected now(t?: TimeInput): number {
    return t === undefined ? this.clock.now() : toMillis(t, 'now');
  }

  /** The tracked command of that id, a planned row made into it if need be. */
  protected trackedOrPlanned(id: string): Tracked | undefined {
    const t = this.tracked.get(id);
    if (t || !this.book.materialiseId(id)) return t;
    return this.tracked.get(id);
  }

  /** A new PENDING command into the indexes (not the due heap). */
  protected adopt(cmd: Command): Tracked {
    if (this.book.unsettled) this.settleCuts(); // tracked after the cut rows, as they were cut
    const slot: Tracked = { cmd, dueToken: 0, deadlineToken: 0 };
    this.tracked.set(cmd.id, slot);
    this.counts.PENDING++;
    this.addActive(slot);
    return slot;
  }

  /** The engine as its plans' host: rows become tracked commands and due-heap entries. */
  protected planHost(): PlanHost {
    return {
      eventBus: this.eventBus,
      has: (id) => this.tracked.has(id),
      track: (cmd, seq) => {
        this.enqueue(this.adopt(cmd), cmd.scheduledAt.getTime(), seq);
        this.changed(cmd);
      },
      trackCancelled: (cmd) => {
        // What `finish` does to a new PENDING command, for one never queued, never among the
        // asset's unfinished or held ones, not a setpoint in force, and not journaled (its
        // row is in the plan's record): tracked, counted, the change and the event.
        this.tracked.set(cmd.id, { cmd, dueToken: 0, deadlineToken: 0, unjournaled: true });
        this.counts.CANCELLED++;
        for (const l of this.changeListeners) l(cmd);
        this.finished.push(cmd.id);
        this.trimFinished();
        this.emit(EVENT_FOR[CommandStatus.CANCELLED], cmd);
      },
      queue: (c) => {
        c.token = ++this.token;
        const plan = c.plan;
        const at = plan.timeOf(c.next);
        const seq = plan.seqBase + c.next;
        this.due.push({
          at,
          priority: plan.priority,
          seq,
          tracked: null,
          cursor: c,
          token: c.token,
        });
        this.wake();
      },
      newToken: () => ++this.token,
      reserveSeq: (n) => {
        const first = this.seq + 1;
        this.seq += n;
        return first;
      },
    };
  }

  protected expireIfEnded(slot: Tracked, now: number): boolean {
    const vu = slot.cmd.validUntil;
    if (vu !== null && vu.getTime() <= now) {
      this.finish(
        slot,
        CommandStatus.CANCELLED,
        now,
        `expired: its slot ended at ${vu.toISOString()} before it was sent`,
      );
      return true;
    }
    return false;
  }

  protected holdIfNeeded(slot: Tracked): boolean {
    const m = this.assets.get(slot.cmd.assetId)?.machine;
    if (!m || !HOLD_STATES.has(m.currentState)) return false;
    // The command that makes an asset available again must reach it.
    if (slot.cmd.type === CommandType.CHANGE_AVAILABILITY) return false;
    const cmd = slot.cmd;
    cmd.holdReason = `asset ${cmd.assetId} is ${m.currentState}`;
    slot.dueToken = ++this.token; // out of the due heap until released
    let set = this.held.get(cmd.assetId);
    if (!set) {
      set = new Set();
      this.held.set(cmd.assetId, set);
    }
    if (!set.has(slot)) {
      set.add(slot);
      this.heldCount++;
      this.changed(cmd); // held: a change that watchers show (the timeline)
    }
    return true;
  }

  protected release(assetId: string): void {
    const set = this.held.get(assetId);
    if (!set) return;
    this.held.delete(assetId);
    const now = this.clock.now();
    for (const slot of set) {
      this.heldCount--;
      slot.cmd.holdReason = null;
      if (slot.cmd.status !== CommandStatus.PENDING) continue;
      this.changed(slot.cmd); // released: no longer held
      if (this.expireIfEnded(slot, now)) continue;
      this.enqueue(slot, slot.cmd.nextAttemptAt?.getTime() ?? slot.cmd.scheduledAt.getTime());
    }
  }

  /**
   * Makes the rows cut by a commit with `cutsLater` (src/engine-submit.ts `commitPlan`) and
   * not made yet into their CANCELLED commands, changes and events now, so that whatever
   * comes next sees them and is heard of after them. Every query that can return finished
   * commands, and every change of a command (`changed`), calls it first.
   */
  settleCuts(): void {
    if (this.book.unsettled) this.book.settleSome(Number.POSITIVE_INFINITY);
  }

  protected changed(cmd: Command): void {
    if (this.book.unsettled) this.settleCuts(); // the cut rows' changes come first
    // Called for every change of every command: no copy of the set (a listener removed
    // while others run is simply not called again), no iterator (`forEach` with the command
    // as its `this`: no closure either).
    if (this.changeListeners.size > 0) this.changeListeners.forEach(callWith, cmd);
    this.persistCommand(cmd.id);
  }

  protected persistCommand(id: string): void {
    if (this.persistListeners.size === 0 || this.tracked.get(id)?.unjournaled) return;
    const change: PersistChange = {
      key: `c:${id}`,
      value: () => {
        const t = this.tracked.get(id);
        return t ? commandToJSON(t.cmd) : undefined;
      },
    };
    for (const l of this.persistListeners) l(change);
  }

  protected persistMeta(): void {
    for (const l of this.persistListeners) l(this.metaChange);
  }

  /** The `meta` entry: what `toJSON` holds besides the commands. */
  protected metaJSON(): EngineMetaJSON {
    const assetStates: Record<string, string> = {};
    for (const [id, s] of this.restoredStates) assetStates[id] = s;
    for (const e of this.assets.values())
      if (e.machine) assetStates[e.assetId] = e.machine.currentState;
    return {
      assetStates,
      scheduleRevisions: this.scheduleIds.toJSON(),
      lastSchedule: this.lastSchedule === null ? null : lastScheduleToJSON(this.lastSchedule),
    };
  }

  protected wake(): void {
    if (this.wakeQueued || this.wakeListeners.size === 0) return;
    this.wakeQueued = true;
    queueMicrotask(() => {
      this.wakeQueued = false;
      for (const l of [...this.wakeListeners]) l();
    });
  }

  protected enqueue(slot: Tracked, at: number, seq = ++this.seq): void {
    this.wake();
    slot.dueToken = ++this.token;
    const token = slot.dueToken;
    this.due.push({ at, priority: slot.cmd.priority, seq, tracked: slot, cursor: null, token });
    if (this.due.size > 1024 && this.due.size > 3 * (this.counts.PENDING + this.book.planned + 1)) {
      this.due.retain((e) => liveDue(e));
    }
  }

  // ---------------------------------------------------------------- internals

  protected trackedOf(command: Command | string): Tracked {
    const id = typeof command === 'string' ? command : command.id;
    const slot = this.trackedOrPlanned(id);
    if (!slot) throw new RangeError(`unknown command ${id}: submit it to the engine first`);
    return slot;
  }

  protected addActive(slot: Tracked): void {
    let set = this.active.get(slot.cmd.assetId);
    if (!set) {
      set = new Set();
      this.active.set(slot.cmd.assetId, set);
    }
    set.add(slot);
  }

  protected move(slot: Tracked, to: CommandStatus, now: number, reason?: string): void {
    const from = slot.cmd.status;
    transition(slot.cmd, to, now, reason);
    this.counts[from]--;
    this.counts[to]++;
    this.changed(slot.cmd);
  }

  protected finish(slot: Tracked, to: CommandStatus, now: number, reason?: string): void {
    const cmd = slot.cmd;
    this.move(slot, to, now, reason);
    if (reason !== undefined && to !== CommandStatus.COMPLETED && cmd.lastError === null)
      cmd.lastError = reason;
    if (to === CommandStatus.CANCELLED) cmd.lastError = reason ?? 'cancelled';
    slot.dueToken = ++this.token;
    slot.deadlineToken = ++this.token;
    cmd.deadline = null;
    cmd.nextAttemptAt = null;
    const set = this.active.get(cmd.assetId);
    if (set) {
      set.delete(slot);
      if (set.size === 0) this.active.delete(cmd.assetId);
    }
    const h = this.held.get(cmd.assetId);
    if (h?.delete(slot)) {
      this.heldCount--;
      if (h.size === 0) this.held.delete(cmd.assetId);
    }
    cmd.holdReason = null;
    this.noteFinishedSetpoint(cmd);
    this.finished.push(cmd.id);
    this.trimFinished();
    this.emit(EVENT_FOR[to], cmd);
  }

  /** A finished setpoint that a device should hold: not cancelled, not refused by it. */
  protected noteFinishedSetpoint(cmd: Command): void {
    noteFinishedSetpoint(this.lastSetpoint, cmd);
  }

  protected trimFinished(): void {
    const max = this.config.maxFinishedCommands;
    while (this.finished.length - this.finishedHead > max) {
      const id = this.finished[this.finishedHead++] as string;
      const slot = this.tracked.get(id);
      if (slot && isFinal(slot.cmd.status)) {
        this.tracked.delete(id);
        this.counts[slot.cmd.status]--;
        this.persistCommand(id);
      }
    }
    if (this.finishedHead > 4096 && this.finishedHead * 2 > this.finished.length) {
      this.finished.splice(0, this.finishedHead);
      this.finishedHead = 0;
    }
  }

  protected emit(type: CommandEventType, cmd: Command): void {
    if (!this.quiet && this.eventBus.hasSubscribers(type))
      this.eventBus.publish(type, commandToJSON(cmd));
  }
}
