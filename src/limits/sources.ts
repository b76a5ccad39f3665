/**
 * Where limits come from and which are in force: the static limits of the configuration
 * (source 'config'), dynamic caps from messages (a grid operator's, a flow's; `setCap`,
 * checked, errors name the field), and the schedule's own import limit on the root
 * (`setScheduleLimits`). `effective` picks the most restrictive value of each limit, with
 * the limit in force that gave it. Pure: expiry is judged by the `now` passed in.
 */

import type {
  CircuitLimits,
  DynamicCap,
  EffectiveLimits,
  LimitInForce,
  ResolvedCircuit,
  SiteLimits,
} from './types';

export class CapError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'CapError';
  }
}

/** One slot of the schedule's import limit on the root: in force from `from` until `until` (null: open). */
export interface ScheduleLimitSlot {
  from: number;
  until: number | null;
  importKw: number;
}

const LIMIT_KEYS = ['importKw', 'exportKw', 'importA', 'exportA'] as const;
const CAP_KEYS = [
  'id',
  'source',
  'circuit',
  'assets',
  'assetMaxKw',
  'expiresAt',
  'durationS',
  'clear',
  ...LIMIT_KEYS,
];
const show = (v: unknown): string =>
  typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? 'undefined');

function fail(field: string, what: string): never {
  throw new CapError(`${field} ${what}`, field);
}

export class LimitSources {
  private readonly config: LimitInForce[] = [];
  private readonly caps = new Map<string, DynamicCap>();
  private schedule: { id: string; slots: ScheduleLimitSlot[] } | null = null;

  constructor(private readonly limits: SiteLimits) {
    for (const cid of limits.order) {
      const c = limits.circuits.get(cid) as ResolvedCircuit;
      for (const k of LIMIT_KEYS) {
        const value = c[k];
        if (value !== undefined)
          this.config.push({ scope: 'circuit', target: cid, limit: k, value, source: 'config' });
      }
    }
  }

  /**
   * Checks and applies a dynamic cap (a later one with the same id replaces it; `{id, clear:
   * true}` removes it). Returns the cap as applied, or null for a clear. Throws a CapError.
   */
  setCap(cap: unknown, now: number): DynamicCap | null {
    if (!cap || typeof cap !== 'object' || Array.isArray(cap))
      fail('cap', `must be an object, got ${show(cap)}`);
    const c = cap as Record<string, unknown>;
    for (const k of Object.keys(c))
      if (!CAP_KEYS.includes(k))
        fail(`cap.${k}`, `is not a known key (known: ${CAP_KEYS.join(', ')})`);
    if (typeof c.id !== 'string' || c.id === '')
      fail('cap.id', `must be a non-empty string, got ${show(c.id)}`);
    if (c.clear !== undefined) {
      if (c.clear !== true)
        fail('cap.clear', `must be true to remove the cap, got ${show(c.clear)}`);
      this.caps.delete(c.id);
      return null;
    }
    if (typeof c.source !== 'string' || c.source === '')
      fail(
        'cap.source',
        `must name where the cap comes from (e.g. "grid-operator"), got ${show(c.source)}`,
      );
    for (const k of LIMIT_KEYS) {
      const v = c[k];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0))
        fail(
          `cap.${k}`,
          `must be a number >= 0 (${k.endsWith('A') ? 'A per phase' : 'kW'}), got ${show(v)}`,
        );
    }
    const circuitLimits = LIMIT_KEYS.filter((k) => c[k] !== undefined);
    if (c.assets !== undefined || c.assetMaxKw !== undefined) {
      if (circuitLimits.length > 0 || c.circuit !== undefined)
        fail(
          'cap',
          'limits either a circuit (circuit, importKw, ...) or assets (assets, assetMaxKw), not both',
        );
      if (c.assets !== '*') {
        if (!Array.isArray(c.assets) || c.assets.length === 0)
          fail(
            'cap.assets',
            `must be "*" or a non-empty array of asset ids, got ${show(c.assets)}`,
          );
        c.assets.forEach((a, i) => {
          if (typeof a !== 'string' || !this.limits.assets.has(a))
            fail(
              `cap.assets[${i}]`,
              `${show(a)} is not an asset id (known: ${[...this.limits.assets.keys()].join(', ')})`,
            );
        });
      }
      const m = c.assetMaxKw;
      if (!(typeof m === 'number' && Number.isFinite(m) && m >= 0))
        fail('cap.assetMaxKw', `must be a number >= 0 (kW), got ${show(m)}`);
    } else {
      if (circuitLimits.length === 0)
        fail(
          'cap',
          'limits nothing: give importKw, exportKw, importA or exportA (or assets and assetMaxKw)',
        );
      if (
        c.circuit !== undefined &&
        (typeof c.circuit !== 'string' || !this.limits.circuits.has(c.circuit))
      )
        fail(
          'cap.circuit',
          `${show(c.circuit)} is not a circuit id (known: ${this.limits.order.join(', ')})`,
        );
    }
    // expiresAt: epoch ms or an ISO 8601 time (what grid operators' messages carry); or
    // durationS from now. Stored as epoch ms.
    let expiresAt: number | undefined;
    if (c.expiresAt !== undefined && c.durationS !== undefined)
      fail('cap', 'give expiresAt or durationS, not both');
    if (c.expiresAt !== undefined) {
      const e = typeof c.expiresAt === 'string' ? Date.parse(c.expiresAt) : c.expiresAt;
      if (typeof e !== 'number' || !Number.isFinite(e))
        fail('cap.expiresAt', `must be epoch ms or an ISO 8601 time, got ${show(c.expiresAt)}`);
      expiresAt = e;
    }
    if (c.durationS !== undefined) {
      const d = c.durationS;
      if (typeof d !== 'number' || !Number.isFinite(d) || d <= 0 || d > 366 * 86_400)
        fail('cap.durationS', `must be a number of seconds > 0 and at most a year, got ${show(d)}`);
      expiresAt = now + d * 1000;
    }
    if (expiresAt !== undefined && expiresAt <= now)
      fail(
        'cap.expiresAt',
        `is in the past (${new Date(expiresAt).toISOString()}): the cap would never apply`,
      );
    const applied = { ...(c as unknown as DynamicCap) };
    delete (applied as { durationS?: unknown }).durationS;
    if (expiresAt === undefined) delete applied.expiresAt;
    else applied.expiresAt = expiresAt;
    if (applied.assets === undefined && applied.circuit === undefined)
      applied.circuit = this.limits.order[0] as string;
    // Forget caps that have expired, so that caps with ever new ids do not pile up.
    for (const [id, x] of this.caps)
      if (x.expiresAt !== undefined && x.expiresAt <= now) this.caps.delete(id);
    this.caps.set(applied.id, applied);
    return applied;
  }

  /** Removes a cap; whether there was one. */
  clearCap(id: string): boolean {
    return this.caps.delete(id);
  }

  /** The caps applied and not cleared (expired ones included until `inForce` drops them by time). */
  capList(): DynamicCap[] {
    return [...this.caps.values()];
  }

  /** The schedule's own import limit on the root, replacing the previous schedule's. */
  setScheduleLimits(scheduleId: string, slots: ScheduleLimitSlot[]): void {
    if (typeof scheduleId !== 'string' || scheduleId === '')
      throw new CapError('scheduleId must be a non-empty string', 'scheduleId');
    if (!Array.isArray(slots)) throw new CapError('slots must be an array', 'slots');
    slots.forEach((s, i) => {
      const f = `slots[${i}]`;
      if (!s || typeof s !== 'object') fail(f, 'must be an object {from, until, importKw}');
      if (!Number.isFinite(s.from)) fail(`${f}.from`, `must be epoch ms, got ${show(s.from)}`);
      if (s.until !== null && !(Number.isFinite(s.until) && s.until > s.from))
        fail(`${f}.until`, `must be epoch ms after from, or null, got ${show(s.until)}`);
      if (!(Number.isFinite(s.importKw) && s.importKw >= 0))
        fail(`${f}.importKw`, `must be a number >= 0 (kW), got ${show(s.importKw)}`);
    });
    this.schedule = { id: scheduleId, slots: slots.map((s) => ({ ...s })) };
  }

  clearScheduleLimits(): void {
    this.schedule = null;
  }

  /** Every limit in force at `now`, with its source (config first, then caps, then the schedule). */
  inForce(now: number): LimitInForce[] {
    const out = [...this.config];
    for (const cap of this.caps.values()) {
      if (cap.expiresAt !== undefined && cap.expiresAt <= now) continue;
      const base = {
        source: cap.source,
        sourceId: cap.id,
        ...(cap.expiresAt !== undefined ? { until: cap.expiresAt } : {}),
      };
      if (cap.assets !== undefined) {
        const ids = cap.assets === '*' ? [...this.limits.assets.keys()] : cap.assets;
        for (const a of ids)
          out.push({
            scope: 'asset',
            target: a,
            limit: 'maxKw',
            value: cap.assetMaxKw as number,
            ...base,
          });
      } else {
        for (const k of LIMIT_KEYS) {
          const value = cap[k];
          if (value !== undefined)
            out.push({ scope: 'circuit', target: cap.circuit as string, limit: k, value, ...base });
        }
      }
    }
    if (this.schedule) {
      const root = this.limits.order[0] as string;
      for (const s of this.schedule.slots) {
        if (s.from > now || (s.until !== null && s.until <= now)) continue;
        out.push({
          scope: 'circuit',
          target: root,
          limit: 'importKw',
          value: s.importKw,
          source: 'schedule',
          sourceId: this.schedule.id,
          ...(s.until !== null ? { until: s.until } : {}),
        });
      }
    }
    return out;
  }

  /** The most restrictive value of each limit (first in `inForce` order on a tie). */
  effective(now: number): EffectiveLimits {
    const circuits = new Map<string, Partial<Record<keyof CircuitLimits, LimitInForce>>>();
    const assets = new Map<string, LimitInForce>();
    for (const l of this.inForce(now)) {
      if (l.scope === 'asset') {
        const prev = assets.get(l.target);
        if (!prev || l.value < prev.value) assets.set(l.target, l);
        continue;
      }
      const k = l.limit as keyof CircuitLimits;
      let entry = circuits.get(l.target);
      if (!entry) {
        entry = {};
        circuits.set(l.target, entry);
      }
      const prev = entry[k];
      if (!prev || l.value < prev.value) entry[k] = l;
    }
    return { circuits, assets };
  }

  /** The next time a limit starts or stops applying (a cap's expiry, a schedule slot's boundary); null if none. */
  nextChangeAt(now: number): number | null {
    let next: number | null = null;
    const see = (t: number | null | undefined) => {
      if (t !== null && t !== undefined && t > now && (next === null || t < next)) next = t;
    };
    for (const cap of this.caps.values()) see(cap.expiresAt);
    for (const s of this.schedule?.slots ?? []) {
      see(s.from);
      see(s.until);
    }
    return next;
  }
}

/** `circuit feeder-1 importA (config)`, `asset ev_001 maxKw (grid-operator §14a)`. */
export function describeLimit(l: LimitInForce, phase?: string): string {
  const src = l.sourceId ? `${l.source} ${l.sourceId}` : l.source;
  return `${l.scope} ${l.target} ${l.limit}${phase ? ` ${phase}` : ''} (${src})`;
}
