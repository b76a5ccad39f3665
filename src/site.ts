/**
 * Site: everything one site coordinates, in one object. It owns the EventBus, the
 * DispatchEngine, the AdapterRegistry and the asset state machines; it runs the dispatch
 * loop on timers (a timer set to the next due time or deadline, not a poll) and persists its
 * state. The Node-RED `qe-coordinator` node is a thin wrapper around one Site, and
 * TypeScript users can run one directly.
 *
 * This file is the public class and its entry point: the adapters' host port, state
 * machines, limits and receiving schedules. It is layered on SitePersist (src/site-persist.ts:
 * state, construction, persistence) and SiteLoop (src/site-loop.ts: the dispatch loop and its
 * prepare step); the saved state is loaded by src/site-restore.ts, measurements are checked
 * by src/site-compliance.ts, options and constants are in src/site-options.ts.
 */

import type { AdapterHost, AssetKind, AssetMeasurement } from './adapters/host';
import type { Adapter } from './adapters/registry';
import type { SliceOptions } from './chunks';
import type { Command } from './commands';
import type { ComplianceState } from './compliance';
import {
  type Conversion,
  type ConvertOptions,
  convertScheduleAsync,
  withScheduleId,
} from './convert';
import { parseScheduleAsync } from './schedule';
import type { SiteLimiter } from './site-limits';
import { SiteLoop } from './site-loop';
import type { SiteOptions } from './site-options';
import {
  BATTERY_DEFINITION,
  EV_CHARGER_DEFINITION,
  StateMachine,
  type StateMachineDefinition,
} from './state-machine';

export type { AssetKind } from './adapters/host';
export {
  DEFAULT_PREPARE_AHEAD_MS,
  type DueCommandSink,
  MAX_PREPARE_AHEAD_MS,
  PREPARE_MARGIN,
  SAVE_PACING,
  type SiteJSON,
  type SiteOptions,
  type Timers,
} from './site-options';

export class Site extends SiteLoop implements AdapterHost {
  /**
   * A Site that loads its saved state in slices (`load: 'in-slices'`: the event loop served
   * meanwhile), once it is loaded; `loadError` says what went wrong, if anything.
   */
  static async open(options: SiteOptions): Promise<Site> {
    const site = new Site({ ...options, load: 'in-slices' });
    await site.loaded;
    return site;
  }

  protected scratchSite(): (options: SiteOptions) => Site {
    return (options) => new Site(options);
  }

  // ------------------------------------------------------------ the adapters' host port

  /**
   * A measurement of the asset's power, checked against its setpoint in force (the latest
   * COMPLETED setpoint command): publishes ASSET_DEVIATION when it has not followed for
   * longer than the grace period, ASSET_COMPLIANT when it follows again; with `onDeviation:
   * 'reapply'`, re-applies the setpoint once per deviation episode; `deviated` (the
   * adapter's own answer) is called once per episode too.
   */
  measured(assetId: string, m: AssetMeasurement): ComplianceState {
    return this.measurements.measured(assetId, m);
  }

  /**
   * Calls `listener` with every measurement an adapter reports (`measured`), before the
   * compliance check; one that throws is reported through onError. Returns the unsubscribe.
   */
  onMeasured(listener: (assetId: string, m: AssetMeasurement) => void): () => void {
    return this.measurements.onMeasured(listener);
  }

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
    if (this.loadingNow) {
      // Made once the saved state is there (the setpoints in force are in it).
      this.reapplyAfterLoad.push(() => this.engine.reapply(assetId, reason, options));
      return [];
    }
    return this.engine.reapply(assetId, reason, options);
  }

  activeCommands(assetId: string): Command[] {
    return this.engine.getActiveCommands(assetId);
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

  // ------------------------------------------------------------ limits

  /**
   * A meter reading of uncontrolled load (`MeterReading`): recorded, then setpoints
   * re-allocated. Throws a MeterReadingError naming the field, or an Error for a site
   * without limits.
   */
  measure(reading: unknown): Command[] {
    this.notWhileLoading('a meter reading');
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
    this.notWhileLoading('receiveSchedule');
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
    if (this.loadingNow) await this.loaded; // the schedule ids in use are in the saved state
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
    this.notWhileLoading('a cap');
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
}
