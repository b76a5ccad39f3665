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
 */

import { type Adapter, AdapterRegistry, type AdapterResult } from './adapters/registry';
import type { AssetTable } from './assets';
import { type Clock, systemClock, toMillis } from './clock';
import {
  type Command,
  type CommandInput,
  CommandStatus,
  CommandType,
  commandToJSON,
  createCommand,
  InternCache,
  isFinal,
  transition,
} from './commands';
import { type Conversion, type ConvertOptions, convertSchedule } from './convert';
import {
  type CommandFilter,
  type EngineConfig,
  type EngineJSON,
  type EngineMetaJSON,
  type EngineStats,
  type PlanSubmission,
  type RateSetpoints,
  type ResponseOptions,
  resolveConfig,
  type TimeInput,
} from './engine-config';
import { engineToJSON, type PersistHost, restoreInto } from './engine-persist';
import { commandInForce, commandsMatching, heldOf, inFlightOf, statsOf } from './engine-queries';
import {
  type ReapplyHost,
  rateSetpointsOf,
  reallocateRates,
  reapplyInForce,
} from './engine-reapply';
import {
  type CommandEventType,
  EVENT_FOR,
  errorText,
  inFlight,
  REFUSED,
  responseOptions,
  sameContent,
} from './engine-rules';
import { type HeapEntry, noteFinishedSetpoint, type Tracked } from './engine-slots';
import { EventBus, EventType } from './event-bus';
import { Heap } from './heap';
import { type PersistChange, PlanBook, type PlanHost } from './plan-book';
import {
  isConversion,
  type PlanCursor,
  planOfConversion,
  readPlan,
  type SchedulePlan,
  StoredPlan,
} from './plans';
import { type RestoreProblem, reportToConsole } from './restore';
import { parseSchedule } from './schedule';
import { ScheduleIds } from './schedule-ids';
import {
  isSilenceFallback,
  type LastSchedule,
  lastScheduleToJSON,
  silenceCommands,
  silenceDeadline,
} from './silence';
import { HOLD_STATES, type StateMachine } from './state-machine';

export { DEFAULT_CONFIG, type EngineConfig, resolveConfig } from './engine-config';
export { REAPPLY_MIN_REMAINING_MS } from './engine-rules';

export interface EngineDeps {
  eventBus?: EventBus;
  adapterRegistry?: AdapterRegistry;
  config?: Partial<EngineConfig>;
  clock?: Clock;
}

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
export type { PersistChange } from './plan-book';

export class DispatchEngine {
  readonly eventBus: EventBus;
  readonly adapterRegistry: AdapterRegistry;
  readonly config: EngineConfig;
  readonly clock: Clock;

  private readonly tracked = new Map<string, Tracked>();
  /** Unfinished commands per asset. */
  private readonly active = new Map<string, Set<Tracked>>();
  private readonly held = new Map<string, Set<Tracked>>();
  private readonly due = new Heap<HeapEntry>(dueBefore);
  /**
   * Entries taken out of `due` ahead of their time by `prepareDue`, in `dueBefore` order:
   * handed out from here at their time. Stale ones (token or status changed) are skipped.
   */
  private prepared: HeapEntry[] = [];
  private readonly deadlines = new Heap<HeapEntry>(
    (a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq),
  );
  private readonly finished: string[] = [];
  private finishedHead = 0;
  /** The site's per-asset facts (the registry's table): state machines live there. */
  private readonly assets: AssetTable;
  private readonly restoredStates = new Map<string, string>();
  private readonly scheduleIds = new ScheduleIds();
  /** Submitted plans: their rows not yet made into commands are PENDING in every count. */
  private readonly book: PlanBook;
  /** The engine as host of its re-apply logic (src/engine-reapply.ts). */
  private readonly reapplyHost: ReapplyHost;
  /** The last schedule received (`receiveSchedule`): its silence is counted from then. */
  private lastSchedule: LastSchedule | null = null;
  /** Per asset and kind of setpoint, the latest finished (not cancelled) setpoint command. */
  private readonly lastSetpoint = new Map<string, Command>();
  private readonly counts: Record<CommandStatus, number> = {
    PENDING: 0,
    DISPATCHED: 0,
    ACKNOWLEDGED: 0,
    COMPLETED: 0,
    FAILED: 0,
    TIMED_OUT: 0,
    CANCELLED: 0,
  };
  private heldCount = 0;
  private readonly wakeListeners = new Set<() => void>();
  private readonly changeListeners = new Set<(cmd: Command) => void>();
  private readonly persistListeners = new Set<(change: PersistChange) => void>();
  private readonly metaChange: PersistChange = { key: 'meta', value: () => this.metaJSON() };
  private wakeQueued = false;
  private seq = 0;
  private token = 0;
  private idCounter = 0;

  constructor(deps: EngineDeps = {}) {
    this.clock = deps.clock ?? systemClock;
    this.config = resolveConfig(deps.config);
    this.eventBus = deps.eventBus ?? new EventBus({ clock: this.clock });
    this.adapterRegistry = deps.adapterRegistry ?? new AdapterRegistry();
    this.assets = this.adapterRegistry.table;
    this.book = new PlanBook(this.planHost(), () => this.config.maxFinishedCommands);
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

  private now(t?: TimeInput): number {
    return t === undefined ? this.clock.now() : toMillis(t, 'now');
  }

  // ---------------------------------------------------------------- schedules and submission

  /**
   * Converts a schedule (any accepted format) with the engine's deadband, horizon, retry and
   * timeout settings, publishes SCHEDULE_RECEIVED and submits the commands (superseding older
   * schedules' commands for the same assets). Returns the registered commands. The schedule
   * id is chosen as `receiveSchedule` says: one already used becomes the next revision.
   * Makes every command object at once (as `submit` does): for a big schedule,
   * `submitPlan(receiveSchedule(...))` keeps it as numbers until each command is due.
   */
  scheduleToCommands(schedule: unknown, options: Omit<ConvertOptions, 'now'>): Command[] {
    const conversion = this.receiveSchedule(schedule, options);
    return this.register(conversion.commands, this.clock.now());
  }

  /**
   * Everything `scheduleToCommands` does before it registers the commands, for hosts that
   * submit them later (the qe-schedule node sends them over a wire to a dispatcher): converts
   * the schedule with the engine's settings under a schedule id not used before in this
   * engine (`options.scheduleId`, else the id the schedule carries, else a new one; an id
   * already used becomes the next revision, `id#2`, as `uniqueScheduleId` says), records the
   * id and publishes SCHEDULE_RECEIVED. A bad schedule throws a ScheduleError and changes
   * nothing.
   */
  receiveSchedule(schedule: unknown, options: Omit<ConvertOptions, 'now'>): Conversion {
    // Parsed first, for the id it carries; the conversion takes the parsed schedule as it is.
    const parsed = parseSchedule(schedule, options);
    const scheduleId = this.uniqueScheduleId(options.scheduleId ?? parsed.scheduleId ?? undefined);
    const conversion = convertSchedule(parsed, this.conversionOptions(options, scheduleId));
    return this.acceptConversion(conversion);
  }

  /** What `receiveSchedule` converts with: the engine's settings, `options`, the id, now. */
  conversionOptions(
    options: Omit<ConvertOptions, 'now'>,
    scheduleId: string | undefined,
  ): ConvertOptions {
    return {
      deadbandKw: this.config.deadbandKw,
      horizonEnd: this.config.horizonEnd,
      maxRetries: this.config.maxRetries,
      timeoutSeconds: this.config.commandTimeoutSeconds,
      ...options,
      ...(scheduleId === undefined ? {} : { scheduleId }),
      now: this.clock.now(),
    };
  }

  /**
   * The end of `receiveSchedule`, for a conversion made elsewhere with this engine's settings
   * under an id from `uniqueScheduleId` taken just before (Site's `receiveScheduleAsync`
   * converts in slices): records the id, publishes SCHEDULE_RECEIVED. Changes nothing and
   * throws if one of its command ids is already registered.
   */
  acceptConversion(conversion: Conversion): Conversion {
    // Its ids are `<scheduleId>:...`: taken if any command or plan of that id is registered
    // (checked without making the conversion's commands).
    const sid = conversion.scheduleId;
    for (const { cmd } of this.tracked.values()) {
      if (cmd.scheduleId === sid && cmd.id.startsWith(`${sid}:`))
        throw new TypeError(`command id ${cmd.id} is already registered`);
    }
    if (this.book.get(sid)) throw new TypeError(`schedule ${sid} is already registered`);
    this.noteScheduleId(conversion.scheduleId);
    // A new schedule ends any silence, and the next is counted from now.
    this.lastSchedule = {
      scheduleId: conversion.scheduleId,
      at: this.clock.now(),
      assets: conversion.changes.assets.map((a) => ({ assetId: a.assetId, kind: a.kind })),
      silentAt: null,
    };
    this.persistMeta();
    this.eventBus.publish(EventType.SCHEDULE_RECEIVED, conversion.summary);
    this.wake();
    return conversion;
  }

  /**
   * A schedule id not used before in this engine (see `ScheduleIds.unique`): `base` the first
   * time, then `base#2`, `base#3`. Undefined stays undefined.
   */
  uniqueScheduleId(base: string | undefined): string | undefined {
    return this.scheduleIds.unique(base);
  }

  /**
   * Whether schedule id `id` was already used in this engine (persisted with its state). A
   * fleet gateway answers such a schedule `duplicate` instead of making a new revision.
   */
  hasScheduleId(id: string): boolean {
    return this.scheduleIds.has(id);
  }

  /** Records that schedule id `id` is in use (the next `uniqueScheduleId` gives a revision). */
  reserveScheduleId(id: string): void {
    this.noteScheduleId(id);
  }

  /** Notes a schedule id in use; a new revision is a change of the `meta` entry. */
  private noteScheduleId(id: string): void {
    if (this.scheduleIds.note(id)) this.persistMeta();
  }

  /**
   * Registers commands made elsewhere: by `convertSchedule`, by hand
   * (`{assetId, type, valueKw, scheduledAt?, priority?}`), or in JSON form. Every element is
   * validated before any is registered: a bad one throws (naming its index) and changes
   * nothing. A command whose id is already registered with the same content is a re-delivery
   * and is skipped; with other content it is an error. Commands of a schedule supersede the
   * unfinished commands of other schedules for the same assets from that schedule's first
   * slot on. Returns the registered commands, in input order. Every command is an object from
   * now on: a big converted schedule is cheaper as a plan (`submitPlan`).
   */
  submit(input: Command | CommandInput | readonly (Command | CommandInput)[]): Command[] {
    const list = Array.isArray(input) ? input : [input];
    const now = this.clock.now();
    const prepared: Command[] = [];
    const seen = new Set<string>();
    const defaults = {
      now,
      maxRetries: this.config.maxRetries,
      timeoutSeconds: this.config.commandTimeoutSeconds,
      newId: () => this.newCommandId(now),
      shared: new InternCache(),
    };
    list.forEach((item, i) => {
      const cmd = createCommand(item, defaults, Array.isArray(input) ? i : undefined);
      if (seen.has(cmd.id)) {
        throw new TypeError(`command [${i}]: id ${cmd.id} appears twice in the input`);
      }
      seen.add(cmd.id);
      const existing = this.tracked.get(cmd.id);
      if (existing) {
        if (!sameContent(existing.cmd, cmd)) {
          throw new TypeError(
            `command ${Array.isArray(input) ? `[${i}] ` : ''}id ${cmd.id} is already registered with other content (asset, type, value or time); give it a new id`,
          );
        }
        return;
      }
      prepared.push(cmd);
    });
    return this.register(prepared, now);
  }

  /** Registers validated commands with new ids: supersession, indexes, COMMAND_CREATED. */
  private register(prepared: Command[], now: number, supersede = true): Command[] {
    // Supersession: per schedule, from its first slot on, for its assets.
    const perSchedule = new Map<string, { start: number; assets: Set<string> }>();
    for (const c of prepared) {
      if (c.scheduleId === null || !supersede) continue;
      const e = perSchedule.get(c.scheduleId);
      const t = c.scheduledAt.getTime();
      if (!e) perSchedule.set(c.scheduleId, { start: t, assets: new Set([c.assetId]) });
      else {
        if (t < e.start) e.start = t;
        e.assets.add(c.assetId);
      }
    }
    for (const [scheduleId, { start, assets }] of perSchedule) {
      this.noteScheduleId(scheduleId);
      this.supersedeAll([...assets], scheduleId, start, now);
    }
    const emit = this.eventBus.hasSubscribers(EventType.COMMAND_CREATED);
    for (const cmd of prepared) {
      const slot: Tracked = { cmd, dueToken: 0, deadlineToken: 0 };
      this.tracked.set(cmd.id, slot);
      this.counts.PENDING++;
      this.addActive(slot);
      this.enqueue(slot, cmd.scheduledAt.getTime());
      if (emit) this.eventBus.publish(EventType.COMMAND_CREATED, commandToJSON(cmd));
      this.changed(cmd);
    }
    return prepared;
  }

  private newCommandId(now: number): string {
    this.idCounter = (this.idCounter + 1) % 1_000_000;
    return `cmd-${now.toString(36)}-${this.idCounter.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  }

  private supersede(
    assetId: string,
    scheduleId: string,
    start: number,
    now: number,
    budget = { skip: 0 },
  ): void {
    for (const slot of [...(this.active.get(assetId) ?? [])]) {
      const c = slot.cmd;
      if (c.scheduleId === null || c.scheduleId === scheduleId) continue;
      if (c.scheduledAt.getTime() >= start) {
        this.finish(slot, CommandStatus.CANCELLED, now, `superseded by schedule ${scheduleId}`);
      } else if (c.validUntil === null || c.validUntil.getTime() > start) {
        c.validUntil = new Date(start);
        this.persistCommand(c.id);
      }
    }
    this.book.supersede(assetId, scheduleId, start, now, budget);
    // A silence's fallback that already went out ends too: the new schedule is in force.
    for (const kind of ['rate', 'cap']) {
      const c = this.lastSetpoint.get(`${assetId}\u0000${kind}`);
      if (!c || !isSilenceFallback(c) || c.scheduleId === scheduleId) continue;
      const end = Math.max(start, now);
      if (c.validUntil === null || c.validUntil.getTime() > end) {
        c.validUntil = new Date(end);
        this.persistCommand(c.id);
      }
    }
  }

  // ---------------------------------------------------------------- plans

  /**
   * Registers a converted schedule as its plan (a `Conversion`, or a `SchedulePlan` such as
   * `planOfConversion` makes and a qe-schedule node sends): the rows are kept as numbers and
   * each becomes a command only when it is due for its asset, or when something reads it
   * (`getCommand`, `getCommands`, `getActiveCommands`, ...). Otherwise as `submit` of the
   * conversion's commands: the same ids, events (COMMAND_CREATED for each row, made from the
   * row, when someone subscribes), supersession of other schedules' commands and rows for its
   * assets from its first slot on, and order in which due commands are handed out. Costs
   * O(assets) plus a copy of the columns. A schedule id already registered with the same rows
   * is a re-delivery (`duplicate`, nothing changes); with other rows, a TypeError.
   */
  submitPlan(input: Conversion | SchedulePlan | StoredPlan): PlanSubmission {
    // A StoredPlan (from `readPlanInChunks`, checked already) is taken as it is: use it once.
    const plan =
      input instanceof StoredPlan
        ? input
        : readPlan(isConversion(input) ? planOfConversion(input) : input, 'plan');
    const id = plan.scheduleId;
    if (this.book.isRedelivery(plan, this.tracked.values()))
      return { scheduleId: id, count: 0, duplicate: true };
    const count = plan.rowsLeft();
    if (count === 0) return { scheduleId: id, count: 0, duplicate: false };
    const now = this.clock.now();
    this.noteScheduleId(id);
    let start = Number.POSITIVE_INFINITY;
    for (const c of plan.cursors) if (c.next < c.end) start = Math.min(start, plan.timeOf(c.next));
    const assets = plan.cursors.filter((c) => c.next < c.end).map((c) => c.assetId);
    this.supersedeAll(assets, id, start, now);
    this.book.add(plan);
    this.book.announce(plan);
    this.wake();
    return { scheduleId: id, count, duplicate: false };
  }

  /** Whether the plan of schedule `scheduleId` still has rows not made into commands. */
  hasPlan(scheduleId: string): boolean {
    return this.book.get(scheduleId) !== undefined;
  }

  /** The tracked command of that id, a planned row made into it if need be. */
  private trackedOrPlanned(id: string): Tracked | undefined {
    const t = this.tracked.get(id);
    if (t || !this.book.materialiseId(id)) return t;
    return this.tracked.get(id);
  }

  /** A new PENDING command into the indexes (not the due heap). */
  private adopt(cmd: Command): Tracked {
    const slot: Tracked = { cmd, dueToken: 0, deadlineToken: 0 };
    this.tracked.set(cmd.id, slot);
    this.counts.PENDING++;
    this.addActive(slot);
    return slot;
  }

  /** The engine as its plans' host: rows become tracked commands and due-heap entries. */
  private planHost(): PlanHost {
    return {
      eventBus: this.eventBus,
      has: (id) => this.tracked.has(id),
      track: (cmd, seq) => {
        this.enqueue(this.adopt(cmd), cmd.scheduledAt.getTime(), seq);
        this.changed(cmd);
      },
      trackCancelled: (cmd, now, reason) =>
        this.finish(this.adopt(cmd), CommandStatus.CANCELLED, now, reason),
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

  /** `supersede` for several assets, planned rows cancelled within one budget. */
  private supersedeAll(
    assetIds: readonly string[],
    scheduleId: string,
    start: number,
    now: number,
  ): void {
    const budget = this.book.budget(this.book.rowsFrom(assetIds, scheduleId, start));
    for (const a of assetIds) this.supersede(a, scheduleId, start, now, budget);
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
      for (const e of this.prepared) {
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
    const t = this.now(until);
    const added: HeapEntry[] = [];
    for (;;) {
      const top = this.due.peek();
      if (!top || top.at > t) break;
      this.due.pop();
      if (!liveDue(top)) continue;
      if (top.tracked === null) {
        // A planned row due by then: made into its command now, which is queued at the
        // same time and taken out of the heap by this loop.
        const c = top.cursor as PlanCursor;
        this.book.materialise(c, c.next);
        continue;
      }
      added.push(top);
    }
    let list = this.prepared.filter(liveDue);
    if (added.length > 0) {
      list = list.length === 0 ? added : list.concat(added);
      list.sort((a, b) => (dueBefore(a, b) ? -1 : dueBefore(b, a) ? 1 : 0));
    }
    this.prepared = list;
    return list.map((e) => (e.tracked as Tracked).cmd);
  }

  /**
   * When the optimiser is silent at `now` (`silenceSeconds` set, and no schedule received
   * for that long since the last one): registers, once per silence, a fallback command due
   * now for each asset of the last schedule (the setpoint of `horizonEnd.fallbackKw`),
   * superseding what is pending for those assets, and publishes OPTIMISER_SILENT. Called
   * by `getPendingCommands`; `nextWakeAt` includes the moment. Returns the new commands.
   */
  checkSilence(now?: TimeInput): Command[] {
    const t = this.now(now);
    const last = this.lastSchedule;
    const deadline = silenceDeadline(last, this.config.silenceSeconds);
    if (last === null || deadline === null || t < deadline) return [];
    last.silentAt = t;
    this.persistMeta();
    const h = this.config.horizonEnd;
    const fresh = (
      h === 'hold'
        ? []
        : silenceCommands(last, h.fallbackKw, t, {
            maxRetries: this.config.maxRetries,
            timeoutSeconds: this.config.commandTimeoutSeconds,
          })
    ).filter((c) => !this.tracked.has(c.id));
    if (fresh.length > 0)
      this.supersedeAll(
        fresh.map((c) => c.assetId),
        fresh[0]?.scheduleId as string,
        t,
        t,
      );
    for (const c of fresh) {
      // The stale plan's setpoint that went out ends now: the fallback is in force.
      const done = this.lastSetpoint.get(`${c.assetId}\u0000rate`);
      if (done && (done.validUntil === null || done.validUntil.getTime() > t))
        done.validUntil = new Date(t);
    }
    this.register(fresh, t, false);
    this.eventBus.publish(EventType.OPTIMISER_SILENT, {
      scheduleId: last.scheduleId,
      receivedAt: new Date(last.at).toISOString(),
      silentForSeconds: Math.round((t - last.at) / 1000),
      assets: last.assets.map((a) => a.assetId),
      commandIds: fresh.map((c) => c.id),
    });
    this.wake();
    return fresh;
  }

  private expireIfEnded(slot: Tracked, now: number): boolean {
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

  private holdIfNeeded(slot: Tracked): boolean {
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

  private release(assetId: string): void {
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

  private changed(cmd: Command): void {
    // Called for every change of every command: no copy of the set (a listener removed
    // while others run is simply not called again).
    for (const l of this.changeListeners) l(cmd);
    this.persistCommand(cmd.id);
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

  private persistCommand(id: string): void {
    if (this.persistListeners.size === 0) return;
    const change: PersistChange = {
      key: `c:${id}`,
      value: () => {
        const t = this.tracked.get(id);
        return t ? commandToJSON(t.cmd) : undefined;
      },
    };
    for (const l of this.persistListeners) l(change);
  }

  private persistMeta(): void {
    for (const l of this.persistListeners) l(this.metaChange);
  }

  /** The `meta` entry: what `toJSON` holds besides the commands. */
  private metaJSON(): EngineMetaJSON {
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

  private wake(): void {
    if (this.wakeQueued || this.wakeListeners.size === 0) return;
    this.wakeQueued = true;
    queueMicrotask(() => {
      this.wakeQueued = false;
      for (const l of [...this.wakeListeners]) l();
    });
  }

  private enqueue(slot: Tracked, at: number, seq = ++this.seq): void {
    this.wake();
    slot.dueToken = ++this.token;
    const token = slot.dueToken;
    this.due.push({ at, priority: slot.cmd.priority, seq, tracked: slot, cursor: null, token });
    if (this.due.size > 1024 && this.due.size > 3 * (this.counts.PENDING + this.book.planned + 1)) {
      this.due.retain((e) => liveDue(e));
    }
  }

  /**
   * The earliest time at which something is due or times out, or the optimiser's silence
   * begins (epoch ms), or null.
   */
  nextWakeAt(): number | null {
    let top = this.due.peek();
    while (top && !liveDue(top)) {
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
   */
  async runAttempt(
    command: Command | string,
    adapter: Adapter,
  ): Promise<AdapterResult | undefined> {
    const slot = this.trackedOf(command);
    const cmd = slot.cmd;
    const attempt = cmd.attempts;
    const current = () => inFlight(cmd.status) && cmd.attempts === attempt;
    // Wherever it waited (a queue, a wire, a delay node), nothing leaves for a slot that ended.
    const now = this.clock.now();
    if (current() && cmd.validUntil !== null && cmd.validUntil.getTime() <= now) {
      const error = `its slot ended at ${cmd.validUntil.toISOString()} before it reached the adapter`;
      this.finish(slot, CommandStatus.CANCELLED, now, `expired: ${error}`);
      return { success: false, expired: true, error };
    }
    let result: AdapterResult | undefined;
    try {
      result = await adapter.dispatch(cmd);
    } catch (err) {
      const failure: AdapterResult = { success: false, error: errorText(err) };
      const e = err as { final?: unknown; timedOut?: unknown; expired?: unknown } | null;
      if (e?.final === true) failure.final = true;
      if (e?.timedOut === true) failure.timedOut = true;
      if (e?.expired === true) failure.expired = true;
      if (current()) this.handleResponse(cmd, false, failure.error, responseOptions(failure));
      return failure;
    }
    if (result && current()) {
      this.handleResponse(cmd, result.success, result.error, responseOptions(result));
    }
    return result;
  }

  /**
   * Marks a PENDING command DISPATCHED without calling an adapter: for hosts that deliver
   * the command themselves (a Node-RED wire) and report the answer with `handleResponse`.
   */
  markDispatched(command: Command | string): Command {
    return this.dispatchTracked(this.trackedOf(command), this.clock.now());
  }

  private dispatchTracked(slot: Tracked, now: number): Command {
    const cmd = slot.cmd;
    cmd.attempts++;
    cmd.nextAttemptAt = null;
    cmd.holdReason = null;
    const deadline = now + cmd.timeoutSeconds * 1000;
    cmd.deadline = new Date(deadline);
    this.move(
      slot,
      CommandStatus.DISPATCHED,
      now,
      `attempt ${cmd.attempts} of ${cmd.maxRetries + 1}`,
    );
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

  private retryOrGiveUp(slot: Tracked, now: number, timedOut: boolean): void {
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
    return this.trackedOrPlanned(id)?.cmd;
  }

  getCommands(filter: CommandFilter = {}): Command[] {
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
    return commandInForce(this.tracked, assetId, this.now(now));
  }

  /** Commands of an asset that are held back, oldest first. */
  getHeldCommands(assetId?: string): Command[] {
    return heldOf(this.held, assetId);
  }

  stats(): EngineStats {
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
   */
  static restore(
    json: unknown,
    deps: EngineDeps = {},
    onProblem: (problem: RestoreProblem) => void = reportToConsole,
  ): DispatchEngine {
    const engine = new DispatchEngine(deps);
    restoreInto(engine.persistHost(), json, onProblem);
    return engine;
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
    };
  }

  // ---------------------------------------------------------------- internals

  private trackedOf(command: Command | string): Tracked {
    const id = typeof command === 'string' ? command : command.id;
    const slot = this.trackedOrPlanned(id);
    if (!slot) throw new RangeError(`unknown command ${id}: submit it to the engine first`);
    return slot;
  }

  private addActive(slot: Tracked): void {
    let set = this.active.get(slot.cmd.assetId);
    if (!set) {
      set = new Set();
      this.active.set(slot.cmd.assetId, set);
    }
    set.add(slot);
  }

  private move(slot: Tracked, to: CommandStatus, now: number, reason?: string): void {
    const from = slot.cmd.status;
    transition(slot.cmd, to, now, reason);
    this.counts[from]--;
    this.counts[to]++;
    this.changed(slot.cmd);
  }

  private finish(slot: Tracked, to: CommandStatus, now: number, reason?: string): void {
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
  private noteFinishedSetpoint(cmd: Command): void {
    noteFinishedSetpoint(this.lastSetpoint, cmd);
  }

  private trimFinished(): void {
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

  private emit(type: CommandEventType, cmd: Command): void {
    if (this.eventBus.hasSubscribers(type)) this.eventBus.publish(type, commandToJSON(cmd));
  }
}

/** Whether a due-heap entry still counts (stale ones are skipped). */
function liveDue(e: HeapEntry): boolean {
  if (e.tracked === null) {
    const c = e.cursor as PlanCursor;
    return e.token === c.token && c.next < c.end;
  }
  return e.token === e.tracked.dueToken && e.tracked.cmd.status === CommandStatus.PENDING;
}

function dueBefore(a: HeapEntry, b: HeapEntry): boolean {
  return (
    a.at < b.at ||
    (a.at === b.at && (a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq)))
  );
}

/** Order of due commands handed out: highest priority first, then the oldest. */
function readyOrder(a: HeapEntry, b: HeapEntry): number {
  return b.priority - a.priority || a.at - b.at || a.seq - b.seq;
}
