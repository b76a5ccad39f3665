/**
 * The base of a Site (src/site.ts): its state, its construction (the saved state loaded
 * through src/site-restore.ts, the limiter, the engine's change hooks) and its persistence:
 * the journal's entries (owners, plan owners, limits), whole saves paced by SAVE_PACING,
 * `toJSON`, `save` and `stop`. Layered: SitePersist, then SiteLoop (src/site-loop.ts, the
 * dispatch loop) and the public Site, so that the loop's handout uses the state directly.
 */

import { AdapterRegistry } from './adapters/registry';
import { AssetTable } from './assets';
import { BigMap } from './big-map';
import {
  eachInSteps,
  runSliced,
  runSync,
  type SliceOptions,
  type Steps,
  whileLive,
} from './chunks';
import { type Clock, systemClock } from './clock';
import { CommandStatus, isFinal } from './commands';
import { ComplianceMonitor } from './compliance';
import { DispatchEngine, type PersistChange } from './engine';
import { EventBus, EventType } from './event-bus';
import { InOrder } from './in-order';
import { SiteCompliance } from './site-compliance';
import { SiteLimiter } from './site-limits';
import {
  checkedSiteOptions,
  type DueCommandSink,
  globalTimers,
  SAVE_PACING,
  type SiteJSON,
  type SiteOptions,
  type Timers,
} from './site-options';
import { type LoadedSite, loadSite, loadSiteInSlices } from './site-restore';
import type { StateStore } from './store';

export abstract class SitePersist {
  /** Sets the loop's timer (src/site-loop.ts). */
  protected abstract arm(force?: boolean, notBefore?: number): void;
  /** Clears the loop's timers (src/site-loop.ts). */
  protected abstract cancelTimer(): void;

  readonly siteId: string;
  readonly eventBus: EventBus;
  readonly adapterRegistry: AdapterRegistry;
  readonly engine: DispatchEngine;
  readonly clock: Clock;
  protected readonly timers: Timers;
  protected readonly store: StateStore | null;
  protected readonly saveDelayMs: number;
  protected readonly autoDispatch: boolean;
  protected readonly onError: (error: Error) => void;
  /** The one table of per-asset facts: adapters, state machines, capabilities. */
  readonly assets: AssetTable;
  /** Decides from measurements whether each asset follows its setpoint in force. */
  readonly compliance: ComplianceMonitor;
  /** Keeps setpoints within the circuits' limits; null for a site without limits. */
  readonly limiter: SiteLimiter | null;
  /** Set when the saved state could not be read nor moved aside: then never overwrite it. */
  protected persistBlocked = false;
  /** The store journals changes (StateStore.journal): no whole saves after each burst. */
  protected journaling: boolean;
  /**
   * The saved state is being loaded in slices (`load: 'in-slices'`): the engine is empty,
   * the loop waits, changes to journal and saves wait for the load (`loaded`).
   */
  protected loadingNow = false;
  /**
   * Plans read in slices and the operations ordered after them (src/site-loop.ts
   * `inOrder`); a load in slices is the first of them.
   */
  protected readonly queue = new InOrder();
  /** Entries to journal that came while loading, by key: journaled once it is done. */
  private heldChanges: Map<string, PersistChange> | null = null;
  /** A save was asked for while loading. */
  private saveAfterLoad = false;
  /** Re-applies asked for while loading (src/site.ts `reapply`): made once it is done. */
  protected reapplyAfterLoad: (() => void)[] = [];
  protected readonly sinks = new Map<string, DueCommandSink>();
  protected readonly sinkIds = new WeakMap<DueCommandSink, string>();
  protected readonly owners = new Map<string, string>();
  /** Which dispatcher submitted each plan (`submitPlan`), by schedule id. */
  protected readonly planOwners = new Map<string, string>();
  /** The compliance check's side of measurements (src/site-compliance.ts). */
  protected readonly measurements: SiteCompliance;
  protected timer: unknown = null;
  protected timerAt: number | null = null;
  /** The prepare step's timer (`prepareAheadMs` before timerAt), and the time it prepares. */
  protected prepareTimer: unknown = null;
  protected prepareFor: number | null = null;
  /** The due time last prepared, or null; cleared by what may add due commands. */
  protected preparedFor: number | null = null;
  /** The due time of the last prepare step (not cleared): it warmed the handout for it. */
  protected preparedAt: number | null = null;
  /** How long the last prepare step took (clock ms): the next starts PREPARE_MARGIN times as early. */
  protected lastPrepareMs = 0;
  readonly prepareAheadMs: number;
  protected saveTimer: unknown = null;
  /** How long the last save took (clock ms): the next waits SAVE_PACING times as long. */
  protected lastSaveMs = 0;
  protected saving = false;
  /**
   * A journaling store's next save is the whole document (`toJSON`): a load failed (in
   * part), its files hold what was not restored. Otherwise the journal compacts its own files.
   */
  protected wholeSaveDue = false;
  /** A change came while a save was running: schedule the next one when it ends. */
  protected saveAgain = false;
  protected running = false;
  protected stopped = false;
  protected readonly offBus: () => void;
  private lastLoadError: Error | null = null;
  /**
   * Settles once the saved state is loaded (or there is none, or it could not be): at once
   * for a site that loads in its constructor (the default), after the slices of one that
   * loads `'in-slices'`. Never rejects: a failure is `loadError`, and reported.
   */
  readonly loaded: Promise<void>;

  constructor(options: SiteOptions) {
    const { lead, inSlices } = checkedSiteOptions(options);
    this.siteId = options.siteId;
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? globalTimers;
    this.store = options.store ?? null;
    this.saveDelayMs = options.saveDelayMs ?? 200;
    this.autoDispatch = options.autoDispatch ?? false;
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
    let restoreChanges: LoadedSite['changes'] | null = null;
    if (this.store && !inSlices) {
      const loaded = loadSite(this.store, deps, this.owners, this.planOwners, this.onError);
      engine = loaded.engine;
      savedLimits = loaded.savedLimits;
      restoreChanges = loaded.changes;
      this.lastLoadError = loaded.loadError;
      if (loaded.persistBlocked) this.persistBlocked = true;
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
    this.measurements = new SiteCompliance({
      engine: this.engine,
      eventBus: this.eventBus,
      compliance: this.compliance,
      clock: this.clock,
      onError: (e) => this.onError(e),
    });
    // Persistence needs to know that something changed, not the events' JSON: the cheap hooks.
    // A finished command is never handed out again: forget its owner at once (no scans).
    const offChanges = this.engine.onCommandChange((cmd) => {
      // While loading in slices, the only changes are the restore's own (as at once, before
      // this hook was added).
      if (this.loadingNow) return;
      this.limiter?.touch();
      if (isFinal(cmd.status)) {
        if (this.owners.delete(cmd.id)) this.journalOwner(cmd.id);
        const sid = cmd.scheduleId;
        if (sid !== null && this.planOwners.has(sid) && !this.engine.hasPlan(sid)) {
          this.planOwners.delete(sid);
          this.journalPlanOwner(sid);
        }
      }
      if (cmd.status === CommandStatus.COMPLETED) this.measurements.noteCompleted(cmd);
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
    if (inSlices && this.store) {
      this.loadingNow = true;
      this.heldChanges = new BigMap();
      this.loaded = this.loadInSlices(this.store, options.loadSlicing);
      // Operations given to `inOrder` (and plans registered in slices) wait for the load.
      void this.queue.run(() => this.loaded);
    } else {
      this.loaded = Promise.resolve();
      runSync(
        this.afterLoadSteps(engine !== null, restoreChanges, savedLimits !== undefined, null),
      );
    }
    this.offBus = () => {
      offChanges();
      offStates();
      offWake();
      offPersist();
    };
  }

  /**
   * The error met while loading the saved state, if any: the site started empty, or, for a
   * PartialRestoreError, without the entries it lists (and restored all the others). Null
   * until a load in slices has ended (`loaded`).
   */
  get loadError(): Error | null {
    return this.lastLoadError;
  }

  /** Throws when the saved state is still being loaded: `what` cannot be done before. */
  protected notWhileLoading(what: string): void {
    if (!this.loadingNow) return;
    throw new Error(
      `site ${this.siteId} is still loading its saved state: ${what} waits until site.loaded has settled (inOrder and the async forms wait by themselves)`,
    );
  }

  /** The saved state is still being loaded (`load: 'in-slices'`, until `loaded` settles). */
  get loading(): boolean {
    return this.loadingNow;
  }

  /**
   * What follows a load: a restore changed what it restored (expired, timed out, trimmed),
   * journaled as records (written over the next turns), so that the journal's files hold
   * the restored state and its first snapshot is compacted from them like any other (no
   * document built here); then `held`, the changes held while a load in slices ran. A load
   * that failed (in part) leaves entries in the files that the restore left out: the first
   * save is the whole document. In steps: a restore 4 slots late expires 40,000 commands,
   * whose records handed to the journal in one turn held the loop ~70 ms (issue 17).
   */
  private *afterLoadSteps(
    restored: boolean,
    restoreChanges: LoadedSite['changes'] | null,
    hadLimits: boolean,
    held: Map<string, PersistChange> | null,
  ): Steps<void> {
    const journal = (change: PersistChange) => this.journalNow(change);
    if (this.lastLoadError !== null) this.wholeSaveDue = true;
    else if (this.journaling && restored && restoreChanges !== null) {
      yield* eachInSteps(restoreChanges.engine, journal);
      yield* eachInSteps(restoreChanges.owners, (id) => journal(this.ownerChange(id)));
      for (const id of restoreChanges.planOwners) journal(this.planOwnerChange(id));
      if (this.limiter || hadLimits) journal(this.limitsChange);
    }
    if (this.journaling && restored) this.scheduleSave();
    if (held !== null) yield* eachInSteps(held.values(), journal);
  }

  /**
   * The load of `load: 'in-slices'` (src/site-restore.ts `loadSiteInSlices`), then what
   * waited for it: the changes to journal, the limits, the re-applies, the loop, a save. A
   * site stopped meanwhile stops loading and never saves (its state is not all there).
   */
  private async loadInSlices(store: StateStore, slicing: SliceOptions | undefined): Promise<void> {
    let result: LoadedSite | null = null;
    try {
      result = await loadSiteInSlices(
        store,
        this.engine,
        this.owners,
        this.planOwners,
        this.onError,
        () => this.stopped,
        slicing,
      );
    } catch (err) {
      // Not expected (the load reports its failures as loadError): nothing is written.
      this.onError(new Error(`cannot load the saved state: ${(err as Error).message}`));
    }
    if (result === null) {
      this.loadingNow = false;
      this.heldChanges = null;
      this.persistBlocked = true;
      this.journaling = false;
      return;
    }
    this.lastLoadError = result.loadError;
    if (result.persistBlocked) {
      this.persistBlocked = true;
      this.journaling = false;
    }
    // What waited for the load; one part that throws is reported, the others still run.
    const then = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        this.onError(
          new Error(`after loading the saved state, ${what}: ${(err as Error).message}`),
        );
      }
    };
    const { savedLimits } = result;
    if (this.limiter && savedLimits !== undefined) {
      then('the limits', () => {
        for (const p of this.limiter?.restore(savedLimits) ?? []) this.onError(new Error(p));
      });
    }
    this.measurements.forgetSetpoints();
    // The records of the load, in slices while the site still counts as loading (nothing
    // else runs; what changes meanwhile is held, and journaled after them).
    const held = this.heldChanges ?? new BigMap<string, PersistChange>();
    this.heldChanges = new BigMap();
    const { engine, changes } = result;
    await runSliced(
      whileLive(
        this.afterLoadSteps(engine !== null, changes, savedLimits !== undefined, held),
        () => !this.stopped,
      ),
      slicing,
    ).catch((err) =>
      this.onError(
        new Error(`after loading the saved state, journaling: ${(err as Error).message}`),
      ),
    );
    this.loadingNow = false;
    const late = this.heldChanges;
    this.heldChanges = null;
    then('journaling', () => {
      for (const change of late.values()) this.journalChange(change);
      if (this.saveAfterLoad || (!this.journaling && held.size + late.size > 0))
        this.scheduleSave();
    });
    this.saveAfterLoad = false;
    const reapplies = this.reapplyAfterLoad;
    this.reapplyAfterLoad = [];
    for (const r of reapplies) then('a re-apply', r);
    this.preparedFor = null;
    then('the loop', () => this.arm(true));
  }

  // ------------------------------------------------------------ persistence

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
  protected readonly limitsChange: PersistChange = {
    key: 'limits',
    value: () => this.limiter?.toJSON(),
  };

  /**
   * Hands a change to a journaling store (held while a load in slices runs); a snapshot when
   * the journal asks for one.
   */
  protected journalChange(change: PersistChange): void {
    if (this.heldChanges !== null) {
      this.heldChanges.set(change.key, change);
      return;
    }
    this.journalNow(change);
  }

  /** `journalChange`, never held. */
  private journalNow(change: PersistChange): void {
    if (!this.journaling || this.stopped || !this.store?.journal) return;
    if (this.store.journal(change)) this.scheduleSave();
  }

  /** The `o:<commandId>` entry: the command's owner (undefined once it has none). */
  protected journalOwner(id: string): void {
    if (this.journaling) this.journalChange(this.ownerChange(id));
  }

  private ownerChange(id: string): PersistChange {
    return {
      key: `o:${id}`,
      value: () => (this.engine.getCommand(id) ? this.owners.get(id) : undefined),
    };
  }

  /** The `po:<scheduleId>` entry: the dispatcher of a plan (undefined once it has none). */
  protected journalPlanOwner(scheduleId: string): void {
    if (this.journaling) this.journalChange(this.planOwnerChange(scheduleId));
  }

  private planOwnerChange(scheduleId: string): PersistChange {
    return { key: `po:${scheduleId}`, value: () => this.planOwners.get(scheduleId) };
  }

  protected scheduleSave(): void {
    if (this.loadingNow) {
      this.saveAfterLoad = true;
      return;
    }
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

  /**
   * Writes the state now (when a store is configured): a journaling store that can compact
   * builds its snapshot from its own files, in slices (no document built here); otherwise
   * the whole document. Errors are reported and rethrown.
   */
  async save(): Promise<void> {
    if (this.loadingNow) await this.loaded;
    if (!this.store || this.persistBlocked) return;
    const started = this.clock.now();
    this.saving = true;
    try {
      this.engine.settleCuts(); // a snapshot after every record of the cut rows
      if (this.journaling && !this.wholeSaveDue && this.store.compact) await this.store.compact();
      else {
        await this.store.save(this.toJSON());
        this.wholeSaveDue = false;
      }
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
    // A load under way stops at its next slice; nothing is saved over the state it read.
    if (this.loadingNow) await this.loaded;
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
