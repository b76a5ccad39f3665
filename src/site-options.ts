/**
 * A Site's options and document (src/site.ts): `SiteOptions`, `SiteJSON`, the injectable
 * `Timers`, the `DueCommandSink` a dispatcher attaches, and the loop's and saves' pacing
 * constants. Re-exported by src/site.ts, the entry point.
 */

import type { SliceOptions } from './chunks';
import type { Clock } from './clock';
import type { Command } from './commands';
import type { ComplianceOptions } from './compliance';
import type { EngineConfig, EngineJSON } from './engine';
import type { LimiterJSON } from './site-limits';
import type { StateStore } from './store';

/** How long before a due time the loop prepares it by default, ms (`prepareAheadMs`). */
export const DEFAULT_PREPARE_AHEAD_MS = 250;

/**
 * The prepare step starts at least this many times as long before its due time as the last
 * one took (clock ms), so that a slow one (a large site's allocation, a loaded machine) ends
 * before the boundary instead of delaying it; at most MAX_PREPARE_AHEAD_MS before.
 */
export const PREPARE_MARGIN = 3;
export const MAX_PREPARE_AHEAD_MS = 5000;

/**
 * The handout at a boundary (`Site.runOnce`) goes in slices with a turn of the event loop
 * (`setImmediate`) between them, in order, so that sockets are read in between. A slice is
 * sized from what the last one cost per command, measured on the clock from its start until
 * the next one starts (its own work, and what its commands cost their dispatchers and adapters
 * before then): about HANDOUT_SLICE_MS of work. The first slice of a handout takes up to
 * HANDOUT_SLICE_MIN commands at once (issue 17's burst: 1,000 due in the same millisecond
 * leave together), fewer only when the cost measured says they would take over
 * HANDOUT_FIRST_MS.
 */
export const HANDOUT_SLICE_MIN = 1000;
export const HANDOUT_SLICE_MS = 10;
export const HANDOUT_FIRST_MS = 50;

/** A save waits at least this many times as long as the last one took: at most ~1/5 of the time saving. */
export const SAVE_PACING = 4;

/** Timer functions, injectable (fake timers in tests). Defaults to the globals. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const globalTimers: Timers = {
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
   * the registry (`engine.dispatchCommand`), the attempts of one round side by side. Default
   * false: wait for a sink.
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
  /**
   * How the saved state (`store`) is loaded. `'at-once'` (the default): in the constructor,
   * in one turn of the event loop (seconds for 160,000 pending commands). `'in-slices'`:
   * after it, in slices of a few ms (the files read as asynchronous I/O, parsed in pieces,
   * the engine restored in steps), the event loop served between them; until `site.loaded`
   * settles the engine is empty, the loop waits, operations given to `inOrder` and the async
   * forms (`submitPlanAsync`, `receiveScheduleAsync`) wait, re-applies asked for are made
   * after it, and the synchronous `submit`, `submitPlan`, `receiveSchedule`, `measure` and
   * `setCap` throw. `Site.open` makes a site that loads in slices and waits for it.
   */
  load?: 'at-once' | 'in-slices';
  /** The slices of a load `'in-slices'` (default 8 ms). */
  loadSlicing?: SliceOptions;
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

/**
 * The options a Site checks before it makes anything: `prepareAheadMs` (returned, with its
 * default) and `load`. Throws a TypeError that names the option and the value given.
 */
export function checkedSiteOptions(options: SiteOptions): { lead: number; inSlices: boolean } {
  if (typeof options.siteId !== 'string' || options.siteId.trim() === '') {
    throw new TypeError('site: siteId must be a non-empty string');
  }
  const lead = options.prepareAheadMs ?? DEFAULT_PREPARE_AHEAD_MS;
  if (typeof lead !== 'number' || !Number.isFinite(lead) || lead < 0 || lead > 60_000) {
    throw new TypeError(
      `site: prepareAheadMs must be a number of ms from 0 (off) to 60000, got ${JSON.stringify(lead)}`,
    );
  }
  const inSlices = options.load === 'in-slices';
  if (options.load !== undefined && options.load !== 'at-once' && !inSlices) {
    throw new TypeError(
      `site: load must be 'at-once' or 'in-slices', got ${JSON.stringify(options.load)}`,
    );
  }
  return { lead, inSlices };
}
