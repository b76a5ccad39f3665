/**
 * The site as a timeline, for a picture of it (the editor's sidebar tab): a compact snapshot
 * of a Site (its assets and their states over time, its commands with status, times, values
 * and history, the power measured while someone watches) and a feed of deltas after it.
 *
 * The feed costs nothing while nobody watches: it listens to the site only while leased (a
 * snapshot or a renewal within `leaseMs`), and publishes at most one delta every
 * `throttleMs`, in which the changes of that time are coalesced (a command's latest state, an
 * asset's latest measurement). Clock and timers are injected; nothing here knows Node-RED.
 */

import { runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import { type Clock, systemClock } from './clock';
import { type Command, CommandStatus } from './commands';
import { EventType, type StateChange } from './event-bus';
import type { Site } from './site';
import { globalTimers, type Timers } from './site-options';

/** How a command shows: its status, with `held` for a PENDING command held back by its asset. */
export type TimelineStatus =
  | 'pending'
  | 'held'
  | 'dispatched'
  | 'completed'
  | 'failed'
  | 'timed_out'
  | 'cancelled';

export const TIMELINE_STATUSES: readonly TimelineStatus[] = [
  'pending',
  'held',
  'dispatched',
  'completed',
  'failed',
  'timed_out',
  'cancelled',
];

/** One command, compact: times are epoch ms. */
export interface TimelineCommand {
  id: string;
  assetId: string;
  type: string;
  kw: number;
  /** Start of its slot. */
  at: number;
  /** End of its slot, or null: until replaced. */
  until: number | null;
  status: TimelineStatus;
  attempts: number;
  error: string | null;
  /** Its status changes, oldest first: [epoch ms, status, reason?]. */
  history: [number, string, string?][];
}

export interface TimelineAsset {
  id: string;
  /** The state of its machine now, or null (no machine). */
  state: string | null;
  /** Its state changes that the machine remembers, oldest first: [epoch ms, state]. */
  states: [number, string][];
}

export interface TimelineSnapshot {
  kind: 'snapshot';
  siteId: string;
  now: number;
  /** The last delta published before it: later deltas have a greater `seq`. */
  seq: number;
  assets: TimelineAsset[];
  commands: TimelineCommand[];
  /** Measured power per asset, kW, oldest first: [epoch ms, kW] (kept while leased). */
  measurements: Record<string, [number, number][]>;
}

export interface TimelineDelta {
  kind: 'delta';
  siteId: string;
  now: number;
  seq: number;
  /** Commands that changed or are new, in their latest form. */
  commands: TimelineCommand[];
  /** State changes, in order: [assetId, epoch ms, state]. */
  states: [string, number, string][];
  /** The latest measurement of each asset measured meanwhile: [assetId, epoch ms, kW]. */
  measurements: [string, number, number][];
  /**
   * Set when more than `maxCommands` commands changed at once (a large schedule arrived):
   * `commands` is then empty, and the watcher should ask for a snapshot again.
   */
  resync?: true;
}

export function timelineStatus(cmd: Command): TimelineStatus {
  switch (cmd.status) {
    case CommandStatus.PENDING:
      return cmd.holdReason ? 'held' : 'pending';
    case CommandStatus.DISPATCHED:
    case CommandStatus.ACKNOWLEDGED:
      return 'dispatched';
    case CommandStatus.COMPLETED:
      return 'completed';
    case CommandStatus.FAILED:
      return 'failed';
    case CommandStatus.TIMED_OUT:
      return 'timed_out';
    default:
      return 'cancelled';
  }
}

export function timelineCommand(cmd: Command): TimelineCommand {
  return {
    id: cmd.id,
    assetId: cmd.assetId,
    type: cmd.type,
    kw: cmd.valueKw,
    at: cmd.scheduledAt.getTime(),
    until: cmd.validUntil === null ? null : cmd.validUntil.getTime(),
    status: timelineStatus(cmd),
    attempts: cmd.attempts,
    error: cmd.lastError,
    history: cmd.history.map((h) =>
      h.reason === undefined ? [h.at.getTime(), h.status] : [h.at.getTime(), h.status, h.reason],
    ),
  };
}

/** The site now, as a timeline snapshot (`measurements` and `seq` from a feed, if any). */
export function buildSnapshot(
  site: Site,
  now: number,
  measurements: Record<string, [number, number][]> = {},
  seq = 0,
): TimelineSnapshot {
  return runSync(snapshotSteps(site, now, measurements, seq));
}

/** `buildSnapshot` as a loop that yields every 1,024 commands (see chunks.ts). */
function* snapshotSteps(
  site: Site,
  now: number,
  measurements: Record<string, [number, number][]>,
  seq: number,
): Steps<TimelineSnapshot> {
  const all = site.engine.getCommands();
  const commands: TimelineCommand[] = new Array(all.length);
  for (let i = 0; i < all.length; i++) {
    commands[i] = timelineCommand(all[i] as Command);
    if ((i & 1023) === 1023) yield;
  }
  const assets = new Map<string, TimelineAsset>();
  for (const e of site.assets.values()) {
    const m = e.machine;
    assets.set(e.assetId, {
      id: e.assetId,
      state: m ? m.currentState : null,
      states: m ? m.history.map((h) => [h.at.getTime(), h.to]) : [],
    });
  }
  for (const c of commands) {
    if (!assets.has(c.assetId)) assets.set(c.assetId, { id: c.assetId, state: null, states: [] });
  }
  for (const id of Object.keys(measurements)) {
    if (!assets.has(id)) assets.set(id, { id, state: null, states: [] });
  }
  return {
    kind: 'snapshot',
    siteId: site.siteId,
    now,
    seq,
    assets: [...assets.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    commands,
    measurements,
  };
}

export interface TimelineFeedOptions {
  /** Receives each delta (the Node-RED wiring: `RED.comms.publish`). */
  publish: (delta: TimelineDelta) => void;
  clock?: Clock;
  timers?: Timers;
  /** At most one delta this often, ms. Default 250. */
  throttleMs?: number;
  /** Without a snapshot or renewal for this long, ms, the feed stops. Default 30,000. */
  leaseMs?: number;
  /** Measurements kept per asset for the snapshot. Default 96. */
  keepMeasurements?: number;
  /** More changed commands than this in one delta: send `resync` instead. Default 5,000. */
  maxCommands?: number;
}

/** Counters of a feed, for tests and benchmarks. */
export interface TimelineFeedStats {
  /** Changes seen while leased (commands, states, measurements). */
  changes: number;
  /** Deltas published. */
  published: number;
}

export class TimelineFeed {
  private readonly site: Site;
  private readonly publish: (delta: TimelineDelta) => void;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly throttleMs: number;
  private readonly leaseMs: number;
  private readonly keep: number;
  private readonly maxCommands: number;
  private leaseUntil = 0;
  private leaseTimer: unknown = null;
  private flushTimer: unknown = null;
  private off: (() => void) | null = null;
  private seq = 0;
  private readonly commands = new Map<string, Command>();
  private states: [string, number, string][] = [];
  private readonly lastMeasured = new Map<string, [number, number]>();
  private readonly measurements = new Map<string, [number, number][]>();
  readonly stats: TimelineFeedStats = { changes: 0, published: 0 };

  constructor(site: Site, options: TimelineFeedOptions) {
    this.site = site;
    this.publish = options.publish;
    this.clock = options.clock ?? site.clock ?? systemClock;
    this.timers = options.timers ?? globalTimers;
    this.throttleMs = positive(options.throttleMs ?? 250, 'throttleMs');
    this.leaseMs = positive(options.leaseMs ?? 30_000, 'leaseMs');
    this.keep = positive(options.keepMeasurements ?? 96, 'keepMeasurements');
    this.maxCommands = positive(options.maxCommands ?? 5000, 'maxCommands');
  }

  /** True while leased: the feed listens to the site and publishes deltas. */
  get active(): boolean {
    return this.off !== null;
  }

  /** The site now; starts (or extends) the lease. */
  snapshot(): TimelineSnapshot {
    this.lease();
    const m: Record<string, [number, number][]> = {};
    for (const [id, list] of this.measurements) m[id] = list.slice();
    return buildSnapshot(this.site, this.clock.now(), m, this.seq);
  }

  /**
   * `snapshot()` built in slices of a few ms. The lease starts first, so a command that
   * changes while it is built is also in a delta after the snapshot's `seq`.
   */
  snapshotAsync(slicing: SliceOptions = {}): Promise<TimelineSnapshot> {
    this.lease();
    const m: Record<string, [number, number][]> = {};
    for (const [id, list] of this.measurements) m[id] = list.slice();
    return runSliced(snapshotSteps(this.site, this.clock.now(), m, this.seq), slicing);
  }

  /** Extends the lease if the feed is active; false when it is not (ask for a snapshot). */
  renew(): boolean {
    if (!this.active) return false;
    this.lease();
    return true;
  }

  /** Stops listening and publishing at once (the node closes). */
  stop(): void {
    this.detach();
  }

  private lease(): void {
    this.leaseUntil = this.clock.now() + this.leaseMs;
    if (!this.off) this.attach();
    if (this.leaseTimer === null) this.armLease();
  }

  private armLease(): void {
    const wait = Math.max(0, this.leaseUntil - this.clock.now());
    this.leaseTimer = this.timers.setTimeout(() => {
      this.leaseTimer = null;
      if (this.clock.now() >= this.leaseUntil) this.detach();
      else this.armLease();
    }, wait);
  }

  private attach(): void {
    const site = this.site;
    const offCommands = site.engine.onCommandChange((cmd) => {
      this.commands.set(cmd.id, cmd);
      this.changed();
    });
    const offStates = site.eventBus.subscribe(EventType.STATE_CHANGED, (e) => {
      const s = e.payload as StateChange;
      this.states.push([s.assetId, new Date(e.timestamp).getTime(), s.to_state]);
      // A fault holds the asset's pending commands, a recovery releases them: show it.
      for (const c of site.engine.getActiveCommands(s.assetId)) this.commands.set(c.id, c);
      this.changed();
    });
    const offMeasured = site.onMeasured((assetId, m) => {
      const point: [number, number] = [m.at ?? this.clock.now(), m.kw];
      this.lastMeasured.set(assetId, point);
      let list = this.measurements.get(assetId);
      if (!list) {
        list = [];
        this.measurements.set(assetId, list);
      }
      list.push(point);
      if (list.length > this.keep * 2) list.splice(0, list.length - this.keep);
      this.changed();
    });
    this.off = () => {
      offCommands();
      offStates();
      offMeasured();
    };
  }

  private detach(): void {
    this.off?.();
    this.off = null;
    if (this.leaseTimer !== null) this.timers.clearTimeout(this.leaseTimer);
    if (this.flushTimer !== null) this.timers.clearTimeout(this.flushTimer);
    this.leaseTimer = null;
    this.flushTimer = null;
    this.commands.clear();
    this.states = [];
    this.lastMeasured.clear();
    this.measurements.clear();
  }

  private changed(): void {
    this.stats.changes++;
    if (this.flushTimer !== null) return;
    this.flushTimer = this.timers.setTimeout(() => {
      this.flushTimer = null;
      this.flush();
    }, this.throttleMs);
  }

  private flush(): void {
    const now = this.clock.now();
    if (now >= this.leaseUntil) {
      this.detach();
      return;
    }
    const tooMany = this.commands.size > this.maxCommands;
    const delta: TimelineDelta = {
      kind: 'delta',
      siteId: this.site.siteId,
      now,
      seq: ++this.seq,
      commands: tooMany ? [] : [...this.commands.values()].map(timelineCommand),
      states: this.states,
      measurements: [...this.lastMeasured].map(([id, [at, kw]]) => [id, at, kw]),
      ...(tooMany ? { resync: true as const } : {}),
    };
    this.commands.clear();
    this.states = [];
    this.lastMeasured.clear();
    this.stats.published++;
    this.publish(delta);
  }
}

function positive(v: number, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new RangeError(`timeline: ${name} must be a number > 0, got ${String(v)}`);
  }
  return v;
}
