/**
 * SiteLimiter: keeps a site's setpoints within its circuits' limits, between the engine and
 * the devices. It owns the site's validated limits (`src/limits/`), the meter readings and
 * the limit sources, and applies the allocator:
 * - as rate setpoints are about to leave (`beforeDispatch`, from Site's loop): each gets at
 *   most what fits; the asked value stays on the command (`askedKw`, `limitedBy`). Site has it
 *   decided ahead of the boundary (`prepare`), and it is only carried out there when nothing
 *   it depends on changed since (`touch` and every input bump a version);
 * - when a reading, a cap, a schedule's limit, a meter's staleness or a finished command
 *   changes what fits (`rebalance`): a setpoint that must come down goes out at once as a
 *   tracked command (`engine.reallocate`), one that may go up goes out at most once every
 *   `minIntervalS` and only when it moves by `hysteresisKw` or more. Break before make: an
 *   increase only takes what fits while every other device may still be on its old value.
 * It publishes SETPOINT_LIMITED for each setpoint it changed and LIMITS_CHANGED when the
 * limits in force (with their sources) or the stale meters change. Time comes from the clock;
 * Site calls `tick` when `nextWakeAt` comes (a cap expires, a meter goes stale).
 */

import type { Clock } from './clock';
import { type Command, CommandType, isFinal } from './commands';
import type { DispatchEngine } from './engine';
import { type EventBus, EventType, type LimitsChanged } from './event-bus';
import { allocate } from './limits/allocator';
import { validateLimits } from './limits/circuits';
import { failsafeShares } from './limits/failsafe';
import { MeterReadings } from './limits/meters';
import { planChanges } from './limits/plan';
import { LimitSources } from './limits/sources';
import type {
  Allocation,
  AllocationRequest,
  DynamicCap,
  LimitInForce,
  SiteLimits,
} from './limits/types';

/** What the limiter saves with the site: the dynamic caps and the schedule's limits. */
export interface LimiterJSON {
  caps: DynamicCap[];
}

const WAITING = 'waiting for other assets to come down first';

/** kW signed of a rate command: + charge, - discharge. */
function signedKw(cmd: Command, kw = cmd.valueKw): number {
  return cmd.type === CommandType.SET_DISCHARGE_RATE ? -kw : kw;
}

/** `v` moved towards zero so that it does not pass `target` (same sign as target). */
function within(target: number, v: number): number {
  return target >= 0 ? Math.min(Math.max(v, 0), target) : Math.max(Math.min(v, 0), target);
}

/** What one allocation decided (`decide`), carried out by `apply`, now or at the boundary. */
interface Decision {
  reason: string;
  dueBy: Map<string, Command>;
  /** Whether increases were paced when it was decided. */
  pacing: boolean;
  leaving: { t: Allocation; cmd: Command; kw: number; boundBy: string | null }[];
  sends: { t: Allocation; kw: number; up: boolean; limitedBy: string | null }[];
  increased: boolean;
  paced: boolean;
}

export interface SiteLimiterDeps {
  clock: Clock;
  engine: DispatchEngine;
  eventBus: EventBus;
}

export class SiteLimiter {
  readonly limits: SiteLimits;
  readonly meters: MeterReadings;
  readonly sources: LimitSources;
  private readonly clock: Clock;
  private readonly engine: DispatchEngine;
  private readonly bus: EventBus;
  private readonly minIntervalMs: number;
  private readonly hysteresisKw: number;
  private readonly shares: Map<string, number>;
  private lastIncreaseAt = Number.NEGATIVE_INFINITY;
  /** A rebalance is owed at this time (an increase that waits for its interval), or null. */
  private owedAt: number | null = null;
  /** When the last allocation ran: `tick` looks for changes by the clock since then. */
  private lastAllocatedAt = Number.NEGATIVE_INFINITY;
  private lastPublished = '';
  /** Bumped by every change the allocation depends on: a prepared one must match it. */
  private version = 0;
  /** The allocation decided ahead of the next boundary (`prepare`), or null. */
  private prepared: { decision: Decision; version: number } | null = null;

  constructor(config: unknown, deps: SiteLimiterDeps) {
    this.limits = validateLimits(config);
    this.clock = deps.clock;
    this.engine = deps.engine;
    this.bus = deps.eventBus;
    this.meters = new MeterReadings(this.limits);
    this.sources = new LimitSources(this.limits);
    this.minIntervalMs = (this.limits.config.minIntervalS ?? 5) * 1000;
    this.hysteresisKw = this.limits.config.hysteresisKw ?? 0.1;
    this.shares = failsafeShares(this.limits);
  }

  /** Whether the limits steer this asset. */
  has(assetId: string): boolean {
    return this.limits.assets.has(assetId);
  }

  /** What the asset may draw when the gateway is gone, kW (its failsafe share). */
  failsafeKw(assetId: string): number | undefined {
    return this.shares.get(assetId);
  }

  /** Records a meter reading (throws a MeterReadingError naming the field) and re-allocates. */
  measure(reading: unknown): Command[] {
    const now = this.clock.now();
    this.meters.record(reading, now);
    this.version++;
    const meter = (reading as { meter?: unknown }).meter;
    return this.rebalance(`meter ${String(meter)}`);
  }

  /** Sets (or, with `clear: true`, removes) a dynamic cap (throws a CapError) and re-allocates. */
  setCap(cap: unknown): Command[] {
    this.sources.setCap(cap, this.clock.now());
    this.version++;
    const c = cap as { id?: unknown; source?: unknown };
    return this.rebalance(`cap ${String(c.id)}${c.source ? ` (${String(c.source)})` : ''}`);
  }

  /** The schedule's own import limit on the root, per slot; replaces the previous schedule's. */
  setScheduleLimits(
    scheduleId: string,
    slots: { from: number; until: number | null; importKw: number }[],
  ): Command[] {
    this.sources.setScheduleLimits(scheduleId, slots);
    this.version++;
    return this.rebalance(`schedule ${scheduleId}`);
  }

  /** Every limit in force now, and where it came from. */
  inForce(): LimitInForce[] {
    return this.sources.inForce(this.clock.now());
  }

  /** When the limiter must look again (a cap expires, a meter goes stale, an owed increase). */
  nextWakeAt(): number | null {
    const now = this.clock.now();
    const times = [this.sources.nextChangeAt(now), this.meters.nextStaleAt(now), this.owedAt];
    let at: number | null = null;
    for (const t of times) if (t !== null && (at === null || t < at)) at = t;
    return at;
  }

  /** Site's timer came: re-allocate when something changed by the clock. */
  tick(): Command[] {
    // Changes by the clock since the last allocation (a cap expired, a meter went stale): the
    // times as seen from then, since seen from now they are past and no longer "next".
    const now = this.clock.now();
    const since = this.lastAllocatedAt;
    const times = [this.sources.nextChangeAt(since), this.meters.nextStaleAt(since), this.owedAt];
    if (!times.some((t) => t !== null && t <= now)) return [];
    this.owedAt = null;
    this.version++;
    return this.rebalance('time');
  }

  /** A command finished: a confirmed decrease may make room for an owed increase. */
  commandFinished(cmd: Command): void {
    if (!isFinal(cmd.status) || !this.has(cmd.assetId)) return;
    if (cmd.type !== CommandType.SET_CHARGE_RATE && cmd.type !== CommandType.SET_DISCHARGE_RATE)
      return;
    this.version++;
    const at = Math.max(this.clock.now(), this.lastIncreaseAt + this.minIntervalMs);
    if (this.owedAt === null || at < this.owedAt) this.owedAt = at;
  }

  /**
   * Limits the due rate setpoints of steered assets to what fits, in place (the engine's
   * `limitSetpoint`), and brings down other assets where the new ones need room.
   */
  beforeDispatch(due: readonly Command[]): void {
    const mine = this.steered(due);
    const now = this.clock.now();
    const ready = this.takePrepared(mine, now);
    if (mine.length === 0) return;
    this.apply(ready ?? this.decide('dispatch', mine, now), now);
  }

  /** Re-allocates every steered asset now; returns the commands it made. */
  rebalance(reason: string): Command[] {
    return this.allocateAndSend(reason, []);
  }

  private allocateAndSend(reason: string, due: readonly Command[]): Command[] {
    return this.apply(this.decide(reason, due, this.clock.now()), this.clock.now());
  }

  /**
   * Allocates ahead of a slot boundary (Site's prepare step, `prepareAheadMs` before it): what
   * `beforeDispatch(due)` would decide at `at`, kept until the boundary. There, `beforeDispatch`
   * applies it as it is when nothing changed since (no reading, cap, schedule limit, finished
   * command nor change of any command; the same due setpoints; the same pacing), and
   * allocates again otherwise. Returns whether there was anything to allocate.
   */
  prepare(due: readonly Command[], at: number): boolean {
    const mine = this.steered(due);
    this.prepared = null;
    if (mine.length === 0) return false;
    this.prepared = { decision: this.decide('dispatch', mine, at), version: this.version };
    return true;
  }

  /**
   * Something that the allocation depends on changed (Site calls it on every command change):
   * an allocation prepared ahead is no longer used.
   */
  touch(): void {
    this.version++;
  }

  /** Whether an allocation prepared ahead is held (for tests and status). */
  get hasPrepared(): boolean {
    return this.prepared !== null;
  }

  private steered(due: readonly Command[]): Command[] {
    // Every one: a new slot's setpoint, a retry, a re-apply after a reboot, and the limiter's
    // own commands (what fits may have changed while they waited: a hold, a backoff).
    return due.filter(
      (c) =>
        this.has(c.assetId) &&
        (c.type === CommandType.SET_CHARGE_RATE || c.type === CommandType.SET_DISCHARGE_RATE),
    );
  }

  /** The prepared allocation, if it still holds for exactly these due setpoints at `now`. */
  private takePrepared(mine: readonly Command[], now: number): Decision | null {
    const p = this.prepared;
    this.prepared = null;
    if (!p || p.version !== this.version) return null;
    const d = p.decision;
    if (d.dueBy.size !== mine.length) return null;
    for (const c of mine) if (d.dueBy.get(c.assetId) !== c) return null;
    if (this.isPacing(now) !== d.pacing) return null;
    return d;
  }

  private isPacing(now: number): boolean {
    return now < this.lastIncreaseAt + this.minIntervalMs;
  }

  /** What the allocation at `now` decides for `due` (the setpoints leaving): no side effect. */
  private decide(reason: string, due: readonly Command[], now: number): Decision {
    const dueBy = new Map(due.map((c) => [c.assetId, c]));
    const requests: AllocationRequest[] = [];
    const committed = new Map<string, number>();
    const latest = new Map<string, Command>();
    for (const assetId of this.limits.assets.keys()) {
      const s = this.engine.rateSetpoints(assetId, now);
      if (s.plan && !isFinal(s.plan.status)) latest.set(assetId, s.plan);
      const leaving = dueBy.get(assetId);
      const plan = leaving ?? s.plan;
      requests.push({ assetId, kw: plan ? signedKw(plan, plan.askedKw ?? plan.valueKw) : 0 });
      // What the device may be doing: the highest of what it last took and what is on its way.
      let c: number | null = s.last ? signedKw(s.last) : null;
      for (const f of s.inFlight) c = c === null ? signedKw(f) : Math.max(c, signedKw(f));
      committed.set(assetId, c ?? 0);
    }
    const loads = this.meters.loads(now);
    const effective = this.sources.effective(now);
    const targets = allocate(this.limits, requests, loads, effective);
    const changes = planChanges(
      this.limits,
      targets,
      committed,
      loads,
      effective,
      this.hysteresisKw,
    );
    const pacing = this.isPacing(now);
    const decision: Decision = {
      reason,
      dueBy,
      pacing,
      leaving: [],
      sends: [],
      increased: false,
      paced: false,
    };
    for (const t of targets) {
      const before = committed.get(t.assetId) ?? 0;
      const leaving = dueBy.get(t.assetId);
      if (leaving) {
        // Leaving anyway: what fits now, never above its target.
        const planned = changes.get(t.assetId);
        const kw = within(t.kw, planned ?? before);
        const boundBy = kw !== t.kw ? WAITING : t.boundBy;
        decision.leaving.push({ t, cmd: leaving, kw, boundBy });
        // It goes out anyway (not paced), but counts as an increase for the pacing.
        if (Math.abs(kw) > Math.abs(before)) decision.increased = true;
        continue;
      }
      // Nothing to send (within the hysteresis, or no room until decreases are confirmed:
      // `commandFinished` asks again then).
      const kw = changes.get(t.assetId);
      if (kw === undefined) continue;
      // Already on its way with this value: not again.
      const last = latest.get(t.assetId);
      if (last && signedKw(last) === kw) continue;
      const up = Math.abs(kw) > Math.abs(before);
      if (up && pacing) {
        decision.paced = true;
        continue;
      }
      decision.sends.push({ t, kw, up, limitedBy: kw !== t.kw ? WAITING : t.boundBy });
    }
    return decision;
  }

  /** Carries out a decision at `now`: limits the leaving setpoints, sends the others' changes. */
  private apply(d: Decision, now: number): Command[] {
    this.lastAllocatedAt = now;
    let increased = d.increased;
    for (const x of d.leaving) {
      this.engine.limitSetpoint(x.cmd, Math.abs(x.kw), x.kw === x.t.askedKw ? null : x.boundBy);
      if (x.kw !== x.t.askedKw) this.publishLimited(x.t, x.cmd, x.kw, x.boundBy, d.reason);
    }
    const made = this.engine.reallocate(
      d.sends.map((x) => ({ assetId: x.t.assetId, kw: x.kw, limitedBy: x.limitedBy })),
      d.reason,
    );
    const byAsset = new Map(made.map((c) => [c.assetId, c]));
    for (const x of d.sends) {
      const cmd = byAsset.get(x.t.assetId);
      if (!cmd) continue;
      if (x.up) increased = true;
      if (x.kw !== x.t.askedKw) this.publishLimited(x.t, cmd, x.kw, x.limitedBy, d.reason);
    }
    if (increased) this.lastIncreaseAt = now;
    // An increase held back by the pacing: look again when the interval is over.
    if (d.paced) {
      const at = this.lastIncreaseAt + this.minIntervalMs;
      if (this.owedAt === null || at < this.owedAt) this.owedAt = at;
    }
    this.publishLimits(now);
    return made;
  }

  private publishLimited(
    t: Allocation,
    cmd: Command,
    kw: number,
    boundBy: string | null,
    reason: string,
  ): void {
    if (!this.bus.hasSubscribers(EventType.SETPOINT_LIMITED)) return;
    this.bus.publish(EventType.SETPOINT_LIMITED, {
      assetId: t.assetId,
      commandId: cmd.id,
      askedKw: t.askedKw,
      kw,
      boundBy,
      reason,
    });
  }

  /**
   * The next `publishLimits` publishes even when nothing changed: for the warm-up's scratch
   * site (src/warm.ts), whose limits never change, so that the publishing code has run there
   * as it does at a real site's first allocation (else it deoptimised the allocation's use
   * at a real site's first boundary, for want of type feedback).
   */
  forgetPublished(): void {
    this.lastPublished = '';
  }

  /** Publishes LIMITS_CHANGED when the limits in force or the stale meters changed. */
  publishLimits(now = this.clock.now()): void {
    const payload: LimitsChanged = {
      limits: this.sources.inForce(now),
      staleMeters: this.meters.stale(now),
    };
    const key = JSON.stringify(payload);
    if (key === this.lastPublished) return;
    this.lastPublished = key;
    this.bus.publish(EventType.LIMITS_CHANGED, payload);
  }

  toJSON(): LimiterJSON {
    return { caps: this.sources.capList() };
  }

  /** Restores saved caps that have not expired; returns the problems (one per bad cap). */
  restore(json: unknown): string[] {
    const problems: string[] = [];
    const caps = (json as Partial<LimiterJSON> | null)?.caps;
    if (!Array.isArray(caps)) return problems;
    const now = this.clock.now();
    caps.forEach((cap, i) => {
      if (typeof cap?.expiresAt === 'number' && cap.expiresAt <= now) return;
      try {
        this.sources.setCap(cap, now);
      } catch (err) {
        problems.push(`limits.caps[${i}]: ${(err as Error).message}`);
      }
    });
    return problems;
  }
}
