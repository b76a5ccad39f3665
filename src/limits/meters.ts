/**
 * Readings of the meters of uncontrolled load: `MeterReadings` checks each reading (errors
 * name the field), keeps the latest per meter, and says what load each circuit carries now
 * (`loads`), counting a stale meter as its worst case. Pure: time comes in as epoch ms.
 *
 * How a reading counts:
 * - A reading in A per phase counts on each phase as given. A kW total is spread evenly over
 *   the three phases: fine for a balanced load, but a single-phase load read as a kW total
 *   hides the phase it sits on; read such meters per phase (`a`, or `kw` as [L1, L2, L3]).
 * - A circuit's load includes the loads of the circuits below it (a feeder's load is also
 *   on its parent); A are converted between circuits of different voltage through kW.
 * - Negative readings (PV, generation) count as negative for import: they free import
 *   capacity. For export limits only generation counts (`generationA`, `generationKw`):
 *   consumption is never credited against an export limit (it may stop at any moment).
 * - A meter never read, or silent for `staleAfterS` or longer, counts as its worst case for
 *   import (see `meterWorstCase`), and keeps the generation of its last reading for export.
 */

import { meterWorstCase } from './circuits';
import type { CircuitLoad, MeterReading, ResolvedCircuit, SiteLimits } from './types';

export class MeterReadingError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'MeterReadingError';
  }
}

/** A reading may carry a time at most this far ahead of `now` (clock skew), ms. */
export const MAX_FUTURE_MS = 5000;

interface Latest {
  at: number;
  /** kW per phase on the meter's circuit, signed. */
  phaseKw: [number, number, number];
  kw: number;
}

const KEYS = ['meter', 'kw', 'a', 'at'];
const show = (v: unknown): string =>
  typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? 'undefined');

function fail(field: string, what: string): never {
  throw new MeterReadingError(`${field} ${what}`, field);
}

function triple(v: unknown, field: string, unit: string): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3)
    fail(field, `must be three numbers [L1, L2, L3] (${unit}), got ${show(v)}`);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x))
      fail(`${field}[${i}]`, `must be a finite number (${unit}), got ${show(x)}`);
  });
  return v as [number, number, number];
}

export class MeterReadings {
  private readonly latest = new Map<string, Latest>();

  constructor(private readonly limits: SiteLimits) {}

  /** Checks and stores a reading; throws a MeterReadingError naming the field. */
  record(reading: unknown, now: number): MeterReading {
    if (!reading || typeof reading !== 'object' || Array.isArray(reading))
      fail('reading', `must be an object {meter, kw | a, at?}, got ${show(reading)}`);
    const r = reading as Record<string, unknown>;
    for (const k of Object.keys(r))
      if (!KEYS.includes(k)) fail(`reading.${k}`, `is not a known key (known: ${KEYS.join(', ')})`);
    const known = [...this.limits.meters.keys()];
    if (typeof r.meter !== 'string' || !this.limits.meters.has(r.meter))
      fail(
        'reading.meter',
        `${show(r.meter)} is not a meter id (known: ${known.length > 0 ? known.join(', ') : 'none'})`,
      );
    const meter = this.limits.meters.get(r.meter) as NonNullable<
      ReturnType<typeof this.limits.meters.get>
    >;
    if ((r.kw === undefined) === (r.a === undefined))
      fail('reading', 'must have exactly one of kw (total or per phase) and a (per phase)');
    let at = now;
    if (r.at !== undefined) {
      const t = typeof r.at === 'string' ? Date.parse(r.at) : r.at;
      if (typeof t !== 'number' || !Number.isFinite(t))
        fail('reading.at', `must be epoch ms or an ISO 8601 time, got ${show(r.at)}`);
      at = t;
    }
    if (at > now + MAX_FUTURE_MS)
      fail('reading.at', `is ${((at - now) / 1000).toFixed(1)} s in the future (clock skew?)`);
    const prev = this.latest.get(meter.id);
    if (prev && at < prev.at)
      fail(
        'reading.at',
        `is older than the latest reading of ${meter.id} (${new Date(at).toISOString()} < ${new Date(prev.at).toISOString()})`,
      );
    const v = (this.limits.circuits.get(meter.circuit) as ResolvedCircuit).voltageV;
    let phaseKw: [number, number, number];
    if (r.a !== undefined) {
      const a = triple(r.a, 'reading.a', 'A');
      phaseKw = [(a[0] * v) / 1000, (a[1] * v) / 1000, (a[2] * v) / 1000];
    } else if (typeof r.kw === 'number') {
      if (!Number.isFinite(r.kw))
        fail('reading.kw', `must be a finite number (kW), got ${show(r.kw)}`);
      phaseKw = [r.kw / 3, r.kw / 3, r.kw / 3];
    } else {
      phaseKw = [...triple(r.kw, 'reading.kw', 'kW')];
    }
    this.latest.set(meter.id, { at, phaseKw, kw: phaseKw[0] + phaseKw[1] + phaseKw[2] });
    return { ...(r as unknown as MeterReading), at };
  }

  /** Whether a meter counts as its worst case at `now`: never read, or silent for staleAfterS or longer. */
  isStale(meterId: string, now: number): boolean {
    const m = this.limits.meters.get(meterId);
    if (!m) return false;
    const l = this.latest.get(meterId);
    return !l || now >= l.at + m.staleAfterS * 1000;
  }

  /** Meters that count as their worst case at `now`. */
  stale(now: number): string[] {
    return [...this.limits.meters.keys()].filter((id) => this.isStale(id, now));
  }

  /** When the next meter goes stale (epoch ms), so that a host re-allocates then; null if none will. */
  nextStaleAt(now: number): number | null {
    let next: number | null = null;
    for (const [id, l] of this.latest) {
      const t = l.at + (this.limits.meters.get(id)?.staleAfterS as number) * 1000;
      if (t > now && (next === null || t < next)) next = t;
    }
    return next;
  }

  /** The latest reading's time of a meter, or undefined. */
  lastAt(meterId: string): number | undefined {
    return this.latest.get(meterId)?.at;
  }

  /** Per circuit (every circuit of the tree): the uncontrolled load on it and below it. */
  loads(now: number): Map<string, CircuitLoad> {
    const out = new Map<string, CircuitLoad>();
    const phaseKw = new Map<string, number[]>();
    const genKw = new Map<string, number[]>();
    const totalKw = new Map<string, number>();
    for (const cid of this.limits.order) {
      phaseKw.set(cid, [0, 0, 0]);
      genKw.set(cid, [0, 0, 0]);
      totalKw.set(cid, 0);
      out.set(cid, { a: [0, 0, 0], kw: 0, stale: [], generationA: [0, 0, 0], generationKw: 0 });
    }
    for (const m of this.limits.meters.values()) {
      const l = this.latest.get(m.id);
      const stale = this.isStale(m.id, now);
      const load = stale ? meterWorstCase(m, this.limits) : (l as Latest);
      const path = (this.limits.circuits.get(m.circuit) as ResolvedCircuit).path;
      for (const cid of path) {
        const p = phaseKw.get(cid) as number[];
        const g = genKw.get(cid) as number[];
        for (let i = 0; i < 3; i++) {
          p[i] = (p[i] as number) + (load.phaseKw[i] as number);
          if (l) g[i] = (g[i] as number) + Math.max(0, -(l.phaseKw[i] as number));
        }
        totalKw.set(cid, (totalKw.get(cid) as number) + load.kw);
        if (stale) (out.get(cid) as CircuitLoad).stale.push(m.id);
      }
    }
    for (const cid of this.limits.order) {
      const k = 1000 / (this.limits.circuits.get(cid) as ResolvedCircuit).voltageV;
      const o = out.get(cid) as CircuitLoad;
      const p = phaseKw.get(cid) as number[];
      const g = genKw.get(cid) as number[];
      o.a = [(p[0] as number) * k, (p[1] as number) * k, (p[2] as number) * k];
      o.kw = totalKw.get(cid) as number;
      o.generationA = [(g[0] as number) * k, (g[1] as number) * k, (g[2] as number) * k];
      o.generationKw = (g[0] as number) + (g[1] as number) + (g[2] as number);
    }
    return out;
  }
}
