/**
 * ComplianceMonitor: decides, from measurements, whether each asset follows the setpoint in
 * force, and reports only the transitions (a deviation started, the asset complied again).
 * Pure: no I/O, no timers; the clock is injected and every decision is taken when a
 * measurement or a setpoint comes in, or when `evaluate` is called. Sign convention: kW,
 * positive = import (an EV charging, a battery charging), negative = export (discharging).
 *
 * - An EV charger's setpoint is a limit: drawing more than it (beyond the tolerance) for
 *   longer than the grace period is a deviation; drawing less is not (the car decides).
 * - A battery's setpoint is signed: running the wrong way or far from it for longer than the
 *   grace is a deviation, unless its SoC limits keep it from following (then 0 kW is right).
 * - A new setpoint restarts the grace period. A measurement older than the stale time (by
 *   default twice its reporting interval: one missed reading) makes the asset `stale`: not
 *   compliant, not deviating either.
 */

import { type Clock, systemClock } from './clock';

export type ComplianceKind = 'ev-limit' | 'battery';
export type ComplianceState = 'unknown' | 'compliant' | 'pending' | 'deviating' | 'stale';
export type OnDeviation = 'report' | 'reapply';

export interface Setpoint {
  /** Identifies the setpoint (a command id): a different id is a new setpoint. */
  id: string;
  kind: ComplianceKind;
  /** kW: the EV's limit (>= 0), or the battery's signed setpoint (positive = charge). */
  kw: number;
  /** Epoch ms since when it is in force (when it was confirmed); default: when first seen. */
  since?: number;
  /** Battery only: it is at its maximum SoC (cannot charge) / minimum SoC (cannot discharge). */
  atSocMax?: boolean;
  atSocMin?: boolean;
}

export interface Measurement {
  /** Measured power, kW, positive = import/charge. */
  kw: number;
  /** Epoch ms of the measurement. Default: now. */
  at?: number;
  /** How often the asset reports, ms (staleness). Default: the monitor's `intervalMs`. */
  intervalMs?: number;
}

export interface ComplianceOptions {
  clock?: Clock;
  /** Absolute tolerance, kW. Default 0.5. */
  toleranceKw?: number;
  /** Relative tolerance, fraction of the setpoint. Default 0.05. The larger of both applies. */
  tolerancePct?: number;
  /** Grace periods, ms: chargers apply a limit in 5-15 s, batteries in 1-5 s. */
  graceMs?: Partial<Record<ComplianceKind, number>>;
  /** Default reporting interval, ms. Default 10,000. */
  intervalMs?: number;
  /** A measurement older than this many intervals is stale. Default 2. */
  staleFactor?: number;
}

export interface Transition {
  type: 'deviation' | 'compliant';
  assetId: string;
  setpointKw: number;
  measuredKw: number;
  /** Epoch ms: when the deviation began (the last time it was fine, or the setpoint's start). */
  since: number;
  /** For 'compliant': how long the deviation lasted, ms. */
  deviatedForMs?: number;
  /** For 'deviation': what is wrong, in words. */
  reason?: string;
}

export const DEFAULT_GRACE_MS: Readonly<Record<ComplianceKind, number>> = Object.freeze({
  'ev-limit': 15_000,
  battery: 5_000,
});

interface AssetTrack {
  setpoint: Setpoint | null;
  setpointSince: number;
  last: { kw: number; at: number; intervalMs: number } | null;
  /** When it was last seen fine (or its setpoint began). */
  fineSince: number;
  state: ComplianceState;
  /** Open deviation episode: when it began. */
  deviatedAt: number | null;
  reason: string | null;
}

export class ComplianceMonitor {
  private readonly clock: Clock;
  private readonly toleranceKw: number;
  private readonly tolerancePct: number;
  private readonly grace: Record<ComplianceKind, number>;
  private readonly intervalMs: number;
  private readonly staleFactor: number;
  private readonly tracks = new Map<string, AssetTrack>();

  constructor(options: ComplianceOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.toleranceKw = options.toleranceKw ?? 0.5;
    this.tolerancePct = options.tolerancePct ?? 0.05;
    this.grace = { ...DEFAULT_GRACE_MS, ...(options.graceMs ?? {}) };
    this.intervalMs = options.intervalMs ?? 10_000;
    this.staleFactor = options.staleFactor ?? 2;
    for (const [name, v] of [
      ['toleranceKw', this.toleranceKw],
      ['tolerancePct', this.tolerancePct],
      ['graceMs.ev-limit', this.grace['ev-limit']],
      ['graceMs.battery', this.grace.battery],
    ] as const) {
      if (!(Number.isFinite(v) && v >= 0))
        throw new TypeError(`compliance: ${name} must be a number >= 0, got ${String(v)}`);
    }
    if (!(this.intervalMs > 0)) throw new TypeError('compliance: intervalMs must be > 0');
    if (!(this.staleFactor >= 1)) throw new TypeError('compliance: staleFactor must be >= 1');
  }

  private track(assetId: string): AssetTrack {
    let t = this.tracks.get(assetId);
    if (!t) {
      const now = this.clock.now();
      t = {
        setpoint: null,
        setpointSince: now,
        last: null,
        fineSince: now,
        state: 'unknown',
        deviatedAt: null,
        reason: null,
      };
      this.tracks.set(assetId, t);
    }
    return t;
  }

  /** The setpoint in force (null: none, nothing to comply with). A new id restarts the grace. */
  setSetpoint(assetId: string, setpoint: Setpoint | null): Transition | null {
    const t = this.track(assetId);
    const prev = t.setpoint;
    if (setpoint && prev && prev.id === setpoint.id) {
      // Same setpoint: only its SoC-limit state may have changed.
      t.setpoint = setpoint;
      return this.evaluate(assetId);
    }
    t.setpoint = setpoint;
    if (setpoint && !Number.isFinite(setpoint.kw))
      throw new TypeError(`compliance: setpoint of ${assetId} must be a finite number of kW`);
    const now = this.clock.now();
    t.setpointSince = setpoint?.since !== undefined ? Math.min(setpoint.since, now) : now;
    t.fineSince = t.setpointSince;
    return this.evaluate(assetId);
  }

  /** A measurement: decides and returns the transition it causes, if any. */
  measure(assetId: string, m: Measurement): Transition | null {
    if (!Number.isFinite(m.kw))
      throw new TypeError(`compliance: measurement of ${assetId} must be a finite number of kW`);
    const t = this.track(assetId);
    const at = m.at ?? this.clock.now();
    if (t.last && at < t.last.at) return null; // an older reading than one already seen
    t.last = { kw: m.kw, at, intervalMs: m.intervalMs ?? this.intervalMs };
    return this.evaluate(assetId);
  }

  /** Re-decides with what is known (time passed: the grace ran out, the data went stale). */
  evaluate(assetId: string): Transition | null {
    const t = this.tracks.get(assetId);
    if (!t) return null;
    const now = this.clock.now();
    const sp = t.setpoint;
    const last = t.last;
    if (!sp || !last) {
      t.state = 'unknown';
      return this.close(assetId, t, null, now);
    }
    if (now - last.at > last.intervalMs * this.staleFactor) {
      t.state = 'stale';
      return null; // not compliant, but not a new deviation nor an end of one either
    }
    const problem = this.problem(sp, last.kw);
    if (problem === null) {
      t.fineSince = Math.max(t.fineSince, last.at);
      t.state = 'compliant';
      return this.close(assetId, t, last.kw, now);
    }
    t.reason = problem;
    if (t.deviatedAt !== null) {
      t.state = 'deviating';
      return null;
    }
    const since = Math.max(t.fineSince, t.setpointSince);
    if (now - since >= this.grace[sp.kind]) {
      t.state = 'deviating';
      t.deviatedAt = since;
      return {
        type: 'deviation',
        assetId,
        setpointKw: sp.kw,
        measuredKw: last.kw,
        since,
        reason: problem,
      };
    }
    t.state = 'pending';
    return null;
  }

  /** Ends an open episode: 'compliant' when the asset is fine again, silently otherwise. */
  private close(
    assetId: string,
    t: AssetTrack,
    measuredKw: number | null,
    now: number,
  ): Transition | null {
    if (t.deviatedAt === null) return null;
    const since = t.deviatedAt;
    t.deviatedAt = null;
    t.reason = null;
    if (measuredKw === null || !t.setpoint) return null;
    return {
      type: 'compliant',
      assetId,
      setpointKw: t.setpoint.kw,
      measuredKw,
      since,
      deviatedForMs: now - since,
    };
  }

  /** What is wrong with `kw` under `sp`, or null when it complies. */
  private problem(sp: Setpoint, kw: number): string | null {
    const tol = (target: number) =>
      Math.max(this.toleranceKw, this.tolerancePct * Math.abs(target));
    const f = (x: number) => `${Math.round(x * 100) / 100} kW`;
    if (sp.kind === 'ev-limit') {
      return kw > sp.kw + tol(sp.kw) ? `${f(kw)} > ${f(sp.kw)} limit` : null;
    }
    // A battery at an SoC limit cannot follow that way: holding 0 kW is right.
    const socLimited = (sp.kw > 0 && sp.atSocMax === true) || (sp.kw < 0 && sp.atSocMin === true);
    const target = socLimited ? 0 : sp.kw;
    const band = tol(target);
    if (target !== 0 && Math.sign(kw) === -Math.sign(target) && Math.abs(kw) > band)
      return `${f(kw)} runs the wrong way (setpoint ${f(sp.kw)})`;
    if (Math.abs(kw - target) > band)
      return `${f(kw)} is far from ${socLimited ? `0 kW (SoC limit; setpoint ${f(sp.kw)})` : `setpoint ${f(sp.kw)}`}`;
    return null;
  }

  /** The asset's state now (re-decided for staleness). */
  stateOf(assetId: string): ComplianceState {
    const t = this.tracks.get(assetId);
    if (!t) return 'unknown';
    if (t.last && this.clock.now() - t.last.at > t.last.intervalMs * this.staleFactor)
      return 'stale';
    return t.state;
  }

  /** The open deviation of an asset, if any: its reason and since when. */
  deviationOf(assetId: string): { since: number; reason: string } | null {
    const t = this.tracks.get(assetId);
    return t && t.deviatedAt !== null ? { since: t.deviatedAt, reason: t.reason ?? '' } : null;
  }

  /** Forgets an asset. */
  forget(assetId: string): void {
    this.tracks.delete(assetId);
  }

  get size(): number {
    return this.tracks.size;
  }
}
