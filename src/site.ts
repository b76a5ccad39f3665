/**
 * Site: everything one site coordinates, in one object. It owns the EventBus, the
 * DispatchEngine, the AdapterRegistry and the asset state machines; it runs the dispatch
 * loop on timers (a timer set to the next due time or deadline, not a poll) and persists its
 * state. The Node-RED `qe-coordinator` node is a thin wrapper around one Site, and
 * TypeScript users can run one directly.
 */

import type { AdapterHost, AssetKind, AssetMeasurement } from './adapters/host';
import { type Adapter, AdapterRegistry } from './adapters/registry';
import { AssetTable } from './assets';
import type { SliceOptions } from './chunks';
import { type Clock, systemClock } from './clock';
import { type Command, type CommandInput, CommandStatus, CommandType, isFinal } from './commands';
import {
  ComplianceMonitor,
  type ComplianceOptions,
  type ComplianceState,
  type Setpoint,
  type Transition,
} from './compliance';
import {
  type Conversion,
  type ConvertOptions,
  convertScheduleAsync,
  withScheduleId,
} from './convert';
import {
  DispatchEngine,
  type EngineConfig,
  type EngineJSON,
  type PersistChange,
  type PlanSubmission,
} from './engine';
import { EventBus, EventType } from './event-bus';
import type { SchedulePlan, StoredPlan } from './plans';
import { problemAt, type RestoreProblem, restoreEntries, shown } from './restore';
import { parseScheduleAsync } from './schedule';
import { type LimiterJSON, SiteLimiter } from './site-limits';
import {
  BATTERY_DEFINITION,
  EV_CHARGER_DEFINITION,
  StateMachine,
  type StateMachineDefinition,
} from './state-machine';
import { PartialRestoreError, type StateStore, StoreCorruptError } from './store';
import { warm } from './warm';

/** How long before a due time the loop prepares it by default, ms (`prepareAheadMs`). */
export const DEFAULT_PREPARE_AHEAD_MS = 250;

/**
 * The prepare step starts at least this many times as long before its due time as the last
 * one took (clock ms), so that a slow one (a large site's allocation, a loaded machine) ends
 * before the boundary instead of delaying it; at most MAX_PREPARE_AHEAD_MS before.
 */
export const PREPARE_MARGIN = 3;
export const MAX_PREPARE_AHEAD_MS = 5000;

/** A save waits at least this many times as long as the last one took: at most ~1/5 of the time saving. */
export const SAVE_PACING = 4;

/** Timer functions, injectable (fake timers in tests). Defaults to the globals. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const globalTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Receives due commands: the Node-RED dispatcher sends them on its output. */
export interface DueCommandSink {
  /** The command is DISPATCHED: deliver it to its adapter. */
  deliver(command: Command): void;
  /** The command FAILED before delivery (no adapter serves its asset). */
  undeliverable(command: Command, error: string): void;
}

export type { AssetKind } from './adapters/host';

export interface SiteOptions {
  siteId: string;
  config?: Partial<EngineConfig>;
  clock?: Clock;
  timers?: Timers;
  /** Where to persist commands and asset states; none: nothing is persisted. */
  store?: StateStore | null;
  /**
   * Delay between a change and its persistence (coalesces bursts). Default 200 ms; at least
   * SAVE_PACING times as long as the last save took, so that a large site (80 MB of state for
   * 160,000 pending commands, ~0.5 s a save) does not spend its time saving.
   */
  saveDelayMs?: number;
  /**
   * With no dispatcher sink attached, dispatch due commands straight through the adapters in
   * the registry (`engine.dispatchCommand`). Default false: wait for a sink.
   */
  autoDispatch?: boolean;
  /** Problems that have no caller to throw to: persistence, subscribers. Default console.error. */
  onError?: (error: Error) => void;
  /** Tolerances and grace periods of the compliance check (measurements vs setpoints). */
  compliance?: Omit<ComplianceOptions, 'clock'>;
  /**
   * The site's circuits, how its assets hang off them, and its meters (`LimitsConfig`,
   * validated: a LimitsConfigError names the field). None: setpoints go out as asked.
   */
  limits?: unknown;
  /**
   * How long before the next due time the loop prepares it, ms (default 250; 0: off): the
   * commands due then are selected (`engine.prepareDue`) and, on a site with limits,
   * allocated, so that at the boundary they are only checked and handed out. Earlier when
   * the last prepare step took long (PREPARE_MARGIN times as long as it took, up to 5 s).
   */
  prepareAheadMs?: number;
}

export interface SiteJSON {
  format: 'qubit-energy/site';
  version: 1;
  siteId: string;
  engine: EngineJSON;
  /** Which dispatcher submitted each unfinished command. */
  owners: Record<string, string>;
  /** Which dispatcher submitted each plan with rows left (absent in older documents). */
  planOwners?: Record<string, string>;
  /** The dynamic caps in force (a site with limits). */
  limits?: LimiterJSON;
}

export class Site implements AdapterHost {
  readonly siteId: string;
  readonly eventBus: EventBus;
  readonly adapterRegistry: AdapterRegistry;
  readonly engine: DispatchEngine;
  readonly clock: Clock;
  private readonly timers: Timers;
  private readonly store: StateStore | null;
  private readonly saveDelayMs: number;
  private readonly autoDispatch: boolean;
  private readonly onError: (error: Error) => void;
  /** The one table of per-asset facts: adapters, state machines, capabilities. */
  readonly assets: AssetTable;
  /** Decides from measurements whether each asset follows its setpoint in force. */
  readonly compliance: ComplianceMonitor;
  /** Keeps setpoints within the circuits' limits; null for a site without limits. */
  readonly limiter: SiteLimiter | null;
  /** Set when the saved state could not be read nor moved aside: then never overwrite it. */
  private persistBlocked = false;
  /** The store journals changes (StateStore.journal): no whole saves after each burst. */
  private readonly journaling: boolean;
  private readonly sinks = new Map<string, DueCommandSink>();
  private readonly sinkIds = new WeakMap<DueCommandSink, string>();
  private readonly owners = new Map<string, string>();
  /** Which dispatcher submitted each plan (`submitPlan`), by schedule id. */
  private readonly planOwners = new Map<string, string>();
  /**
   * Per asset seen by the compliance check: its COMPLETED setpoints that may be in force (a
   * short list, pruned as they end), so that a measurement does not scan the engine.
   */
  private readonly completedSetpoints = new Map<string, Command[]>();
  /** Who wants each measurement (`onMeasured`): the fleet's telemetry, the editor's timeline. */
  private readonly measuredListeners = new Set<(assetId: string, m: AssetMeasurement) => void>();
  private timer: unknown = null;
  private timerAt: number | null = null;
  /** The prepare step's timer (`prepareAheadMs` before timerAt), and the time it prepares. */
  private prepareTimer: unknown = null;
  private prepareFor: number | null = null;
  /** The due time last prepared, or null; cleared by what may add due commands. */
  private preparedFor: number | null = null;
  /** The due time of the last prepare step (not cleared): it warmed the handout for it. */
  private preparedAt: number | null = null;
  /** How long the last prepare step took (clock ms): the next starts PREPARE_MARGIN times as early. */
  private lastPrepareMs = 0;
  readonly prepareAheadMs: number;
  private saveTimer: unknown = null;
  /** How long the last save took (clock ms): the next waits SAVE_PACING times as long. */
  private lastSaveMs = 0;
  private saving = false;
  /** A change came while a save was running: schedule the next one when it ends. */
  private saveAgain = false;
  private running = false;
  private stopped = false;
  private readonly offBus: () => void;
  /**
   * The error met while loading the saved state, if any: the site started empty, or, for a
   * PartialRestoreError, without the entries it lists (and restored all the others).
   */
  readonly loadError: Error | null = null;

  constructor(options: SiteOptions) {
    if (typeof options.siteId !== 'string' || options.siteId.trim() === '') {
      throw new TypeError('site: siteId must be a non-empty string');
    }
    this.siteId = options.siteId;
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? globalTimers;
    this.store = options.store ?? null;
    this.saveDelayMs = options.saveDelayMs ?? 200;
    this.autoDispatch = options.autoDispatch ?? false;
    const lead = options.prepareAheadMs ?? DEFAULT_PREPARE_AHEAD_MS;
    if (typeof lead !== 'number' || !Number.isFinite(lead) || lead < 0 || lead > 60_000) {
      throw new TypeError(
        `site: prepareAheadMs must be a number of ms from 0 (off) to 60000, got ${JSON.stringify(lead)}`,
      );
    }
    this.prepareAheadMs = lead;
    this.onError = options.onError ?? ((e) => console.error(`site ${this.siteId}:`, e.message));
    this.eventBus = new EventBus({
      clock: this.clock,
      onError: (err, event) =>
        this.onError(
          new Error(
            `a subscriber to ${event.type} failed: ${err instanceof Error ? err.message : String(err)}`,
          ),
        ),
    });
    this.assets = new AssetTable();
    this.compliance = new ComplianceMonitor({ ...(options.compliance ?? {}), clock: this.clock });
    this.adapterRegistry = new AdapterRegistry(this.assets);
    const deps = {
      eventBus: this.eventBus,
      adapterRegistry: this.adapterRegistry,
      clock: this.clock,
      config: options.config ?? {},
    };
    let engine: DispatchEngine | null = null;
    let savedLimits: unknown;
    if (this.store) {
      try {
        const doc = this.store.load();
        if (doc !== undefined) {
          const site = doc as Partial<SiteJSON>;
          if (
            site.format !== 'qubit-energy/site' ||
            site.version !== 1 ||
            typeof site.engine !== 'object'
          ) {
            throw new TypeError(
              `not a site state document (format ${JSON.stringify(site.format)})`,
            );
          }
          // Entry by entry: a bad one is left out and reported, the others are restored.
          const problems: RestoreProblem[] = [];
          const report = (p: RestoreProblem) => problems.push(p);
          engine = DispatchEngine.restore(site.engine, deps, report);
          savedLimits = site.limits;
          for (const [id, owner] of restoreEntries(site.owners, 'owners', report)) {
            if (typeof owner !== 'string') {
              report(problemAt('owners', id, `must be a dispatcher id, got ${shown(owner)}`));
            } else if (engine.getCommand(id)) {
              this.owners.set(id, owner);
            }
          }
          for (const [id, owner] of restoreEntries(site.planOwners, 'planOwners', report)) {
            if (typeof owner !== 'string')
              report(problemAt('planOwners', id, `must be a dispatcher id, got ${shown(owner)}`));
            else if (engine.hasPlan(id)) this.planOwners.set(id, owner);
          }
          for (const p of this.store.problems ?? []) problems.push(p);
          for (const w of this.store.warnings ?? [])
            this.onError(new Error(`saved state in ${this.store.location}: ${w}`));
          if (problems.length > 0) {
            this.loadError = new PartialRestoreError(
              this.store.location,
              problems,
              this.store.keepCopy?.() ?? null,
            );
          }
        }
      } catch (err) {
        const e =
          err instanceof StoreCorruptError
            ? err
            : this.store.setAside
              ? this.store.setAside(
                  `saved state in ${this.store.location} cannot be restored: ${(err as Error).message}`,
                )
              : new Error(
                  `saved state in ${this.store.location} cannot be restored: ${(err as Error).message}`,
                );
        if (!(e instanceof StoreCorruptError && e.movedTo !== null)) {
          this.persistBlocked = true;
          e.message += '; nothing will be saved until it is fixed (the file is left as it is)';
        }
        this.loadError = e;
        engine = null;
      }
    }
    this.engine = engine ?? new DispatchEngine(deps);
    this.journaling = typeof this.store?.journal === 'function' && !this.persistBlocked;
    this.limiter =
      options.limits === undefined || options.limits === null
        ? null
        : new SiteLimiter(options.limits, {
            clock: this.clock,
            engine: this.engine,
            eventBus: this.eventBus,
          });
    if (this.limiter && savedLimits !== undefined) {
      for (const p of this.limiter.restore(savedLimits)) this.onError(new Error(p));
    }
    // Persistence needs to know that something changed, not the events' JSON: the cheap hooks.
    // A finished command is never handed out again: forget its owner at once (no scans).
    const offChanges = this.engine.onCommandChange((cmd) => {
      this.limiter?.touch();
      if (isFinal(cmd.status)) {
        if (this.owners.delete(cmd.id)) this.journalOwner(cmd.id);
        const sid = cmd.scheduleId;
        if (sid !== null && this.planOwners.has(sid) && !this.engine.hasPlan(sid)) {
          this.planOwners.delete(sid);
          this.journalPlanOwner(sid);
        }
      }
      if (cmd.status === CommandStatus.COMPLETED) this.noteCompleted(cmd);
      if (this.limiter && isFinal(cmd.status)) {
        this.limiter.commandFinished(cmd);
        this.arm();
      }
      if (!this.journaling) this.scheduleSave();
    });
    const offStates = this.eventBus.subscribe(EventType.STATE_CHANGED, () => {
      if (!this.journaling) this.scheduleSave();
    });
    const offWake = this.engine.onWake(() => {
      this.preparedFor = null; // something new may be due: prepare again
      if (!this.journaling) this.scheduleSave();
      this.arm();
    });
    const offPersist = this.journaling
      ? this.engine.onPersist((change) => this.journalChange(change))
      : () => {};
    // A restore changed what it restored (expired, timed out): a snapshot records that.
    if (this.journaling && engine !== null) this.scheduleSave();
    this.offBus = () => {
      offChanges();
      offStates();
      offWake();
      offPersist();
    };
  }

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
    const added = this.engine.submit(commands);
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
    const done = this.engine.submitPlan(plan);
    if (owner !== undefined && done.count > 0) {
      this.planOwners.set(done.scheduleId, owner);
      this.journalPlanOwner(done.scheduleId);
    }
    this.preparedFor = null; // its rows may be due at the next boundary: prepare again
    this.arm(true);
    return done;
  }

  /** Runs one round now: time out late attempts, hand out what is due. */
  async runOnce(): Promise<void> {
    const now = this.clock.now();
    this.engine.checkTimeouts(now);
    this.limiter?.tick();
    const due = this.engine.getPendingCommands(now);
    // Every rate setpoint of a steered asset leaves with at most what fits.
    this.limiter?.beforeDispatch(due);
    let waiting = false;
    const first = this.sinks.values().next().value as DueCommandSink | undefined;
    for (const cmd of due) {
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
          await this.engine.dispatchCommand(cmd);
        } else {
          waiting = true;
        }
        continue;
      }
      if (!this.adapterRegistry.has(cmd.assetId)) {
        await this.engine.dispatchCommand(cmd, null); // FAILS, saying no adapter serves it
        sink.undeliverable(cmd, cmd.lastError ?? `no adapter serves asset ${cmd.assetId}`);
        continue;
      }
      this.engine.markDispatched(cmd);
      if (entry) entry.dispatcher = this.sinkIds.get(sink) ?? null;
      sink.deliver(cmd);
    }
    // Due commands with nobody to take them: look again after the interval, not at once.
    this.arm(false, waiting ? now + this.engine.config.dispatchIntervalSeconds * 1000 : undefined);
  }

  /** Sets the timer to the next due time or deadline (at most dispatchIntervalSeconds away). */
  private arm(force = false, notBefore?: number): void {
    if (!this.running || this.stopped) return;
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
    } else {
      this.timer = this.timers.setTimeout(run, at - now);
    }
    if (at === dueAt) this.armPrepare(at, now);
  }

  /**
   * Sets the prepare step for the run at `at`: `prepareAheadMs` before it (at once when that
   * is past), unless `at` is prepared already and nothing new became due since.
   */
  private armPrepare(at: number, now: number): void {
    if (this.prepareAheadMs === 0 || at <= now) return;
    if (this.preparedFor === at || this.prepareFor === at) return;
    this.cancelPrepare();
    this.prepareFor = at;
    this.prepareTimer = this.timers.setTimeout(
      () => {
        this.prepareTimer = null;
        this.prepareFor = null;
        // The run moved (a submit, a cancel): its own prepare step is set.
        if (this.timerAt !== at) return;
        try {
          this.prepare(at);
        } catch (err) {
          this.onError(err instanceof Error ? err : new Error(String(err)));
        }
      },
      Math.max(0, at - this.prepareLeadMs - now),
    );
  }

  /** How long before a due time its prepare step starts (ms): see PREPARE_MARGIN. */
  get prepareLeadMs(): number {
    const lead = Math.max(this.prepareAheadMs, PREPARE_MARGIN * this.lastPrepareMs);
    return Math.min(lead, Math.max(this.prepareAheadMs, MAX_PREPARE_AHEAD_MS));
  }

  private cancelPrepare(): void {
    if (this.prepareTimer !== null) this.timers.clearTimeout(this.prepareTimer);
    this.prepareTimer = null;
    this.prepareFor = null;
  }

  /**
   * The prepare step before the run at `at` (the loop calls it `prepareAheadMs` ahead): the
   * commands due by then are selected in their handout order (`engine.prepareDue`) and, on a
   * site with limits, their rate setpoints allocated as of `at` (`limiter.prepare`). Nothing
   * leaves and nothing changes state: at `at` each is checked again, and the allocation is
   * used only if nothing it depends on changed since. Returns the commands prepared.
   */
  prepare(at: number): Command[] {
    const started = this.clock.now();
    const due = this.engine.prepareDue(at);
    this.limiter?.prepare(due, at);
    // Prunes the entries of what finished since the last run (not at the boundary).
    this.engine.nextWakeAt();
    // The handout's code compiled again before it runs (src/warm.ts); a scratch site's own.
    // Once per boundary: a step run again (a reading, a new schedule) finds it warm.
    const warmed = this.preparedAt === at;
    this.preparedFor = at;
    this.preparedAt = at;
    if (due.length > 0 && !warmed)
      warm((options) => new Site(options)).catch((err) =>
        this.onError(new Error(`warming the dispatch path failed: ${(err as Error).message}`)),
      );
    this.lastPrepareMs = Math.max(0, this.clock.now() - started);
    return due;
  }

  private cancelTimer(): void {
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

  // ------------------------------------------------------------ the adapters' host port

  get staleStateSeconds(): number {
    return this.engine.config.staleStateSeconds;
  }

  serve(
    adapter: Adapter,
    assetIds: readonly string[],
    kind: AssetKind | StateMachineDefinition,
    owner: string,
  ): void {
    const done: string[] = [];
    try {
      for (const assetId of assetIds) {
        this.adapterRegistry.register(assetId, adapter);
        done.push(assetId);
      }
      for (const assetId of assetIds) this.ensureStateMachine(assetId, kind, owner);
    } catch (err) {
      for (const a of done) this.adapterRegistry.unregister(a, adapter);
      throw err;
    }
  }

  unserve(adapter: Adapter, assetIds: readonly string[], owner: string, removed: boolean): void {
    for (const assetId of assetIds) {
      this.adapterRegistry.unregister(assetId, adapter);
      if (removed) this.releaseStateMachine(assetId, owner);
    }
  }

  stateMachine(assetId: string): StateMachine | undefined {
    return this.getStateMachine(assetId);
  }

  respond(
    commandId: string,
    success: boolean,
    error?: string | null,
    options?: { final?: boolean; completed?: boolean; timedOut?: boolean },
  ): boolean {
    return this.engine.handleResponse(commandId, success, error, options);
  }

  reapply(assetId: string, reason: string, options?: { appliedSince?: number }): Command[] {
    return this.engine.reapply(assetId, reason, options);
  }

  activeCommands(assetId: string): Command[] {
    return this.engine.getActiveCommands(assetId);
  }

  /**
   * A measurement of the asset's power, checked against its setpoint in force (the latest
   * COMPLETED setpoint command): publishes ASSET_DEVIATION when it has not followed for
   * longer than the grace period, ASSET_COMPLIANT when it follows again; with `onDeviation:
   * 'reapply'`, re-applies the setpoint once per deviation episode; `deviated` (the
   * adapter's own answer) is called once per episode too.
   */
  measured(assetId: string, m: AssetMeasurement): ComplianceState {
    for (const listener of this.measuredListeners) {
      try {
        listener(assetId, m);
      } catch (err) {
        this.onError(
          new Error(`a listener to measurements of ${assetId} failed: ${(err as Error).message}`),
        );
      }
    }
    const now = this.clock.now();
    const cmd = this.setpointInForce(assetId, now);
    // Either may decide a transition (a setpoint that changed, or the new reading).
    const t1 = this.compliance.setSetpoint(assetId, cmd ? setpointOf(cmd, m) : null);
    if (t1) this.publishCompliance(t1, m);
    const t2 = this.compliance.measure(assetId, {
      kw: m.kw,
      ...(m.at !== undefined ? { at: m.at } : {}),
      ...(m.intervalMs !== undefined ? { intervalMs: m.intervalMs } : {}),
    });
    if (t2) this.publishCompliance(t2, m);
    return this.compliance.stateOf(assetId);
  }

  /**
   * Calls `listener` with every measurement an adapter reports (`measured`), before the
   * compliance check; one that throws is reported through onError. Returns the unsubscribe.
   */
  onMeasured(listener: (assetId: string, m: AssetMeasurement) => void): () => void {
    this.measuredListeners.add(listener);
    return () => {
      this.measuredListeners.delete(listener);
    };
  }

  private noteCompleted(cmd: Command): void {
    const list = this.completedSetpoints.get(cmd.assetId);
    if (!list || !SETPOINT_TYPES.has(cmd.type)) return; // not checked (yet): nothing to keep
    list.push(cmd);
    if (list.length > 16) {
      list.sort((a, b) => a.scheduledAt.getTime() - b.scheduledAt.getTime());
      list.splice(0, list.length - 16);
    }
  }

  /**
   * `engine.getCommandInForce` from the asset's short list (filled by COMPLETED commands; on
   * the asset's first measurement from the engine, once).
   */
  private setpointInForce(assetId: string, now: number): Command | undefined {
    let list = this.completedSetpoints.get(assetId);
    if (!list) {
      const first = this.engine.getCommandInForce(assetId, now);
      list = first ? [first] : [];
      this.completedSetpoints.set(assetId, list);
      return first;
    }
    let best: Command | undefined;
    let ended = 0;
    for (const c of list) {
      if (c.validUntil !== null && c.validUntil.getTime() <= now) {
        ended++;
        continue;
      }
      if (c.status !== CommandStatus.COMPLETED || c.scheduledAt.getTime() > now) continue;
      if (!best || c.scheduledAt.getTime() > best.scheduledAt.getTime()) best = c;
    }
    if (ended > 0) {
      const keep = list.filter((c) => c.validUntil === null || c.validUntil.getTime() > now);
      this.completedSetpoints.set(assetId, keep);
    }
    return best;
  }

  private publishCompliance(t: Transition, m: AssetMeasurement): void {
    const since = new Date(t.since).toISOString();
    if (t.type === 'deviation') {
      this.eventBus.publish(EventType.ASSET_DEVIATION, {
        assetId: t.assetId,
        setpointKw: t.setpointKw,
        measuredKw: t.measuredKw,
        since,
        reason: t.reason ?? '',
      });
      if (m.onDeviation === 'reapply') {
        try {
          this.reapply(t.assetId, `deviation: ${t.reason ?? ''}`);
        } catch (err) {
          this.onError(
            new Error(
              `re-applying the setpoint of ${t.assetId} after a deviation failed: ${(err as Error).message}`,
            ),
          );
        }
      }
      if (m.deviated) {
        try {
          m.deviated(t.reason ?? '');
        } catch (err) {
          this.onError(
            new Error(
              `the adapter's answer to a deviation of ${t.assetId} failed: ${(err as Error).message}`,
            ),
          );
        }
      }
    } else {
      this.eventBus.publish(EventType.ASSET_COMPLIANT, {
        assetId: t.assetId,
        setpointKw: t.setpointKw,
        measuredKw: t.measuredKw,
        since,
        deviatedForMs: t.deviatedForMs ?? 0,
      });
    }
  }

  setCapability(assetId: string, name: string, value: unknown): void {
    if (value === undefined) {
      const e = this.assets.get(assetId);
      if (!e) return;
      e.capabilities.delete(name);
      this.assets.prune(assetId);
      return;
    }
    this.assets.ensure(assetId).capabilities.set(name, value);
  }

  capability(assetId: string, name: string): unknown {
    return this.assets.get(assetId)?.capabilities.get(name);
  }

  // ------------------------------------------------------------ state machines

  /**
   * The asset's state machine, made on first use from a preset or a definition and
   * registered with the engine (so that its FAULTED / UNAVAILABLE states hold commands).
   * Asking again with the same kind returns the same machine; another kind throws.
   */
  ensureStateMachine(
    assetId: string,
    kind: AssetKind | StateMachineDefinition,
    user = '',
  ): StateMachine {
    const kindKey = typeof kind === 'string' ? kind : `custom:${JSON.stringify(kind.states)}`;
    const existing = this.assets.get(assetId);
    if (existing?.machine && existing.machineKind !== null) {
      const k = existing.machineKind;
      if (k !== kindKey) {
        throw new Error(
          `asset ${assetId} already has a ${k.startsWith('custom') ? 'custom' : k} state machine; one asset, one kind`,
        );
      }
      existing.machineUsers.add(user);
      return existing.machine;
    }
    const def =
      kind === 'ev-charger'
        ? EV_CHARGER_DEFINITION
        : kind === 'battery'
          ? BATTERY_DEFINITION
          : typeof kind === 'object'
            ? kind
            : null;
    if (!def)
      throw new TypeError(
        `unknown asset kind ${JSON.stringify(kind)}: use ev-charger, battery or a definition`,
      );
    const machine = new StateMachine({
      ...def,
      assetId,
      eventBus: this.eventBus,
      clock: this.clock,
    });
    this.engine.registerStateMachine(machine);
    const entry = this.assets.ensure(assetId);
    entry.machineKind = kindKey;
    entry.machineUsers.add(user);
    return machine;
  }

  getStateMachine(assetId: string): StateMachine | undefined {
    return this.assets.get(assetId)?.machine ?? undefined;
  }

  /**
   * `user` no longer uses the asset's machine (its node was removed). When nobody does, the
   * machine is forgotten and its held commands are released. True if it was forgotten.
   */
  releaseStateMachine(assetId: string, user = ''): boolean {
    const e = this.assets.get(assetId);
    if (!e?.machine || e.machineKind === null) return false;
    e.machineUsers.delete(user);
    if (e.machineUsers.size > 0) return false;
    return this.removeStateMachine(assetId);
  }

  /** Forgets an asset's machine, whoever uses it; its held commands are released. */
  removeStateMachine(assetId: string): boolean {
    const e = this.assets.get(assetId);
    if (!e?.machine || e.machineKind === null) return false;
    return this.engine.unregisterStateMachine(assetId, e.machine);
  }

  // ------------------------------------------------------------ persistence

  // ------------------------------------------------------------ limits

  /**
   * A meter reading of uncontrolled load (`MeterReading`): recorded, then setpoints
   * re-allocated. Throws a MeterReadingError naming the field, or an Error for a site
   * without limits.
   */
  measure(reading: unknown): Command[] {
    const made = this.needLimiter().measure(reading);
    this.preparedFor = null;
    this.arm(true);
    return made;
  }

  /**
   * `engine.receiveSchedule`, and the schedule's own import limits (its `limitColumn`) become
   * the site's schedule limits (replacing the previous schedule's) when the site has limits.
   */
  receiveSchedule(schedule: unknown, options: Omit<ConvertOptions, 'now'>): Conversion {
    const conversion = this.engine.receiveSchedule(schedule, options);
    if (this.limiter) this.limiter.setScheduleLimits(conversion.scheduleId, conversion.limits);
    this.preparedFor = null;
    this.arm(true);
    return conversion;
  }

  /**
   * `receiveSchedule` in slices of a few milliseconds (`parseScheduleAsync`,
   * `convertScheduleAsync`), the event loop served between them: the same conversion, or the
   * same ScheduleError as a rejection. The schedule id is taken when the conversion is done,
   * so a schedule received meanwhile does not get the same revision. A site stopped meanwhile
   * rejects it and changes nothing.
   */
  async receiveScheduleAsync(
    schedule: unknown,
    options: Omit<ConvertOptions, 'now'>,
    slicing: SliceOptions = {},
  ): Promise<Conversion> {
    const engine = this.engine;
    const parsed = await parseScheduleAsync(schedule, options, slicing);
    const base = options.scheduleId ?? parsed.scheduleId ?? undefined;
    const converted = await convertScheduleAsync(
      parsed,
      engine.conversionOptions(options, engine.uniqueScheduleId(base)),
      slicing,
    );
    // The id is taken now, synchronously with acceptConversion: another schedule may have
    // taken the one it was converted under meanwhile. (acceptConversion makes no commands.)
    const id = engine.uniqueScheduleId(base);
    const conversion = id === undefined ? converted : withScheduleId(converted, id);
    if (this.stopped) {
      throw new Error(
        `site ${this.siteId} stopped while the schedule was converted; nothing changed`,
      );
    }
    engine.acceptConversion(conversion);
    if (this.limiter) this.limiter.setScheduleLimits(conversion.scheduleId, conversion.limits);
    this.arm(true);
    return conversion;
  }

  /** Sets or clears a dynamic cap (`DynamicCap`), then re-allocates. Throws a CapError. */
  setCap(cap: unknown): Command[] {
    const made = this.needLimiter().setCap(cap);
    this.preparedFor = null;
    if (this.journaling) this.journalChange(this.limitsChange);
    else this.scheduleSave();
    this.arm(true);
    return made;
  }

  /** What the asset may draw when the gateway is gone, kW, from the site's limits. */
  failsafeKw(assetId: string): number | undefined {
    return this.limiter?.failsafeKw(assetId);
  }

  private needLimiter(): SiteLimiter {
    if (!this.limiter) {
      throw new Error(
        `site ${this.siteId} has no limits: give it circuits, assets and meters (the coordinator's Limits) first`,
      );
    }
    return this.limiter;
  }

  toJSON(): SiteJSON {
    const owners: Record<string, string> = {};
    for (const [id, o] of this.owners) if (this.engine.getCommand(id)) owners[id] = o;
    return {
      format: 'qubit-energy/site',
      version: 1,
      siteId: this.siteId,
      engine: this.engine.toJSON(),
      owners,
      ...(this.planOwners.size > 0 ? { planOwners: Object.fromEntries(this.planOwners) } : {}),
      ...(this.limiter ? { limits: this.limiter.toJSON() } : {}),
    };
  }

  /** The `limits` entry of the journal. */
  private readonly limitsChange: PersistChange = {
    key: 'limits',
    value: () => this.limiter?.toJSON(),
  };

  /** Hands a change to a journaling store; a snapshot when the journal asks for one. */
  private journalChange(change: PersistChange): void {
    if (!this.journaling || this.stopped || !this.store?.journal) return;
    if (this.store.journal(change)) this.scheduleSave();
  }

  /** The `o:<commandId>` entry: the command's owner (undefined once it has none). */
  private journalOwner(id: string): void {
    if (!this.journaling) return;
    this.journalChange({
      key: `o:${id}`,
      value: () => (this.engine.getCommand(id) ? this.owners.get(id) : undefined),
    });
  }

  /** The `po:<scheduleId>` entry: the dispatcher of a plan (undefined once it has none). */
  private journalPlanOwner(scheduleId: string): void {
    if (!this.journaling) return;
    this.journalChange({ key: `po:${scheduleId}`, value: () => this.planOwners.get(scheduleId) });
  }

  private scheduleSave(): void {
    if (!this.store || this.persistBlocked || this.saveTimer !== null || this.stopped) return;
    if (this.saving) {
      // Paced once this save has ended and its duration is known.
      this.saveAgain = true;
      return;
    }
    this.saveTimer = this.timers.setTimeout(
      () => {
        this.saveTimer = null;
        this.save().catch(() => {});
      },
      Math.max(this.saveDelayMs, SAVE_PACING * this.lastSaveMs),
    );
  }

  /** Writes the state now (when a store is configured). Errors are reported and rethrown. */
  async save(): Promise<void> {
    if (!this.store || this.persistBlocked) return;
    const started = this.clock.now();
    this.saving = true;
    try {
      await this.store.save(this.toJSON());
      this.lastSaveMs = Math.max(0, this.clock.now() - started);
    } catch (err) {
      const e = new Error(`cannot save state to ${this.store.location}: ${(err as Error).message}`);
      this.onError(e);
      throw e;
    } finally {
      this.saving = false;
      if (this.saveAgain) {
        this.saveAgain = false;
        this.scheduleSave();
      }
    }
  }

  /**
   * Stops the loop and every timer, saves the state one last time (a journaling store: writes
   * what is pending and closes its segment, no whole save). Idempotent.
   */
  async stop(): Promise<void> {
    this.cancelTimer();
    if (this.saveTimer !== null) this.timers.clearTimeout(this.saveTimer);
    this.timer = null;
    this.timerAt = null;
    this.saveTimer = null;
    const wasStopped = this.stopped;
    this.stopped = true;
    this.running = false;
    if (!wasStopped) {
      this.offBus();
      if (this.journaling) {
        try {
          await this.store?.close?.();
        } catch (err) {
          this.onError(
            new Error(
              `cannot write the journal in ${this.store?.location}: ${(err as Error).message}`,
            ),
          );
        }
      } else await this.save().catch(() => {});
    }
  }
}

const SETPOINT_TYPES: ReadonlySet<CommandType> = new Set([
  CommandType.SET_CHARGE_RATE,
  CommandType.SET_DISCHARGE_RATE,
  CommandType.SET_POWER_LIMIT,
]);

/**
 * The setpoint a command in force means for the compliance check, or null when it means
 * none there (a battery's power limit is a cap, not a setpoint; an EV is never told to export).
 */
function setpointOf(cmd: Command, m: AssetMeasurement): Setpoint | null {
  let doneAt = 0;
  for (let i = cmd.history.length - 1; i >= 0; i--) {
    const h = cmd.history[i];
    if (h?.status === CommandStatus.COMPLETED) {
      doneAt = h.at.getTime();
      break;
    }
  }
  const since = Math.max(cmd.scheduledAt.getTime(), doneAt);
  let kw: number;
  if (m.kind === 'ev-limit') {
    if (cmd.type === CommandType.SET_DISCHARGE_RATE) return null;
    kw = cmd.valueKw;
  } else if (cmd.type === CommandType.SET_CHARGE_RATE) kw = cmd.valueKw;
  else if (cmd.type === CommandType.SET_DISCHARGE_RATE) kw = -cmd.valueKw;
  else return null;
  return {
    id: cmd.id,
    kind: m.kind,
    kw,
    since,
    ...(m.atSocMax !== undefined ? { atSocMax: m.atSocMax } : {}),
    ...(m.atSocMin !== undefined ? { atSocMin: m.atSocMin } : {}),
  };
}
