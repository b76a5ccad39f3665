/**
 * The data of site limits: circuits (a tree from the grid connection down to feeders and
 * cables), how each controllable asset hangs off a circuit, the meters of uncontrolled load,
 * and dynamic caps. Types only; `circuits.ts` validates a configuration into `SiteLimits`,
 * `meters.ts` keeps readings, `sources.ts` says which limits are in force, `allocator.ts`
 * shares what fits. Everything under `src/limits/` is pure: no I/O, time from arguments.
 *
 * Signs: import (power drawn from the parent circuit, towards the loads) is positive; an EV
 * charger's and a battery's charging are import, a battery's discharging is export.
 */

export type Phase = 'L1' | 'L2' | 'L3';
export const PHASES: readonly Phase[] = ['L1', 'L2', 'L3'];

/**
 * How an asset is wired to its circuit. Single-phase: the circuit phase it loads ('L1',
 * 'L2', 'L3'). Three-phase: the circuit phases its own L1, L2, L3 are wired to, in order
 * ('L1L2L3', or rotated 'L2L3L1', 'L3L1L2'); a three-phase asset loads the three phases
 * evenly, except when it draws on one phase only (`singlePhaseDraw`), then on the circuit
 * phase its L1 is wired to.
 */
export type PhaseConnection = Phase | 'L1L2L3' | 'L2L3L1' | 'L3L1L2';

/** Limits of one circuit; each optional; a limit not given does not bind. */
export interface CircuitLimits {
  /** Most power drawn through the circuit, kW, all phases together. */
  importKw?: number;
  /** Most power fed back through the circuit, kW, all phases together. */
  exportKw?: number;
  /** Most current per phase drawn, A (each phase). */
  importA?: number;
  /** Most current per phase fed back, A (each phase). */
  exportA?: number;
}

export interface CircuitSpec extends CircuitLimits {
  /** Unique among the circuits. */
  id: string;
  /** The circuit this one hangs off; omitted or null for the root (exactly one root). */
  parent?: string | null;
  /** Phase-to-neutral voltage, V, for converting kW and A. Default: the parent's, 230 at the root. */
  voltageV?: number;
}

export interface AssetConnection {
  /** The asset id used by the schedule and the adapters. */
  assetId: string;
  /** 'ev' (an EV charger: import only) or 'battery' (imports when charging, exports when discharging). */
  kind: 'ev' | 'battery';
  /** The circuit it hangs off. */
  circuit: string;
  phases: PhaseConnection;
  /**
   * A three-phase asset that may draw on one phase only (a three-phase charger with a
   * single-phase car): counted as drawing its whole power on the circuit phase its L1 is
   * wired to. Default false.
   */
  singlePhaseDraw?: boolean;
  /** The most it can draw (charge), kW. */
  ratingKw: number;
  /** Battery: the most it can feed back (discharge), kW. Default ratingKw. */
  dischargeRatingKw?: number;
  /**
   * Below this it gets 0: an EV charger cannot charge below 6 A per phase. In kW, or in A per
   * phase (`minA`, converted with its circuit's voltage and its phases); at most one of them.
   * Default 0.
   */
  minKw?: number;
  minA?: number;
  /** Share of what is left among assets of equal priority, relative. Default 1. */
  weight?: number;
  /** Higher is served first; equal priorities share by weight. Default 0. */
  priority?: number;
  /**
   * What the device may draw when the gateway is gone (the OCPP station-wide maximum
   * profile), kW. Default: its failsafe share (see `failsafeShares`).
   */
  failsafeKw?: number;
}

/** A meter of uncontrolled load (a building, a heat pump) on a circuit. */
export interface MeterSpec {
  /** Unique among the meters; readings name it. */
  id: string;
  /** The circuit whose uncontrolled load it measures (it does not see the controllable assets). */
  circuit: string;
  /** A meter silent for longer than this counts as its worst case. Default 60 s. */
  staleAfterS?: number;
  /**
   * What the load counts as while the meter is stale or before its first reading: kW (all
   * phases, counted evenly) or A per phase. Default: the circuit's import limit, i.e. nothing
   * left for the controllable assets below it (the safe assumption).
   */
  worstCaseKw?: number;
  worstCaseA?: number;
}

export interface LimitsConfig {
  circuits: CircuitSpec[];
  assets: AssetConnection[];
  meters?: MeterSpec[];
  /** Re-allocation pacing: increases wait this long after the last one (decreases never wait). Default 5 s. */
  minIntervalS?: number;
  /** An allocation that differs from the setpoint in force by less than this is not sent, kW. Default 0.1. */
  hysteresisKw?: number;
  /**
   * Whether a battery's discharge setpoint frees import capacity for the others on its
   * circuits (a battery that discharges offsets the load). Default true.
   */
  creditDischarge?: boolean;
}

/** A validated configuration, with derived facts the allocator needs. */
export interface SiteLimits {
  config: LimitsConfig;
  /** Circuit ids from the root down (parents before children). */
  order: string[];
  circuits: Map<string, ResolvedCircuit>;
  assets: Map<string, ResolvedAsset>;
  meters: Map<string, MeterSpec & { staleAfterS: number }>;
}

export interface ResolvedCircuit extends CircuitSpec {
  parent: string | null;
  voltageV: number;
  /** The circuit and its ancestors, this one first, the root last. */
  path: string[];
  children: string[];
}

export interface ResolvedAsset extends AssetConnection {
  /** Circuit phases the asset loads: one, or three. */
  loads: Phase[];
  /** Minimum in kW (from minKw, or minA converted). */
  minKwResolved: number;
  weight: number;
  priority: number;
}

/** A reading of a meter. Exactly one of kw (total, or per phase) and a (per phase). */
export interface MeterReading {
  meter: string;
  /** Total kW (counted evenly over the phases), or kW per phase [L1, L2, L3]. Positive = import. */
  kw?: number | [number, number, number];
  /** Current per phase, A [L1, L2, L3]. Positive = import. */
  a?: [number, number, number];
  /** Epoch ms (or an ISO 8601 time) of the reading. Default: when it arrived. */
  at?: number | string;
}

/** A limit from a message (a grid operator's cap): on a circuit, or on assets. */
export interface DynamicCap extends CircuitLimits {
  /** Names the cap: a later cap with the same id replaces it; `{id, clear: true}` removes it. */
  id: string;
  /** Where it comes from, shown with the limit: 'grid-operator', 'flow', ... */
  source: string;
  /** The circuit it limits (default: the root), unless it limits assets. */
  circuit?: string;
  /**
   * Limits each of these assets ('*': every asset) to at most this much, kW (e.g. §14a: 4.2),
   * charging or discharging.
   */
  assets?: string[] | '*';
  assetMaxKw?: number;
  /** Epoch ms when it stops applying; none: until cleared. */
  expiresAt?: number;
}

/**
 * A cap as a message gives it: `expiresAt` may be an ISO 8601 time (as grid operators'
 * messages carry it), or `durationS` says how long from its arrival; kept as a DynamicCap.
 */
export interface DynamicCapInput extends Omit<DynamicCap, 'expiresAt'> {
  expiresAt?: number | string;
  durationS?: number;
}

/** A limit in force, and where it came from. */
export interface LimitInForce {
  /** 'circuit' or 'asset'. */
  scope: 'circuit' | 'asset';
  /** The circuit id or asset id. */
  target: string;
  /** Which limit: importKw, exportKw, importA, exportA, or maxKw for an asset. */
  limit: keyof CircuitLimits | 'maxKw';
  value: number;
  /** 'config', 'schedule', or a dynamic cap's `source`. */
  source: string;
  /** The dynamic cap's id, or the schedule id, when there is one. */
  sourceId?: string;
  /** Epoch ms when it stops applying, if it does. */
  until?: number;
}

/** Uncontrolled load per circuit that the allocator counts, per phase. */
export interface CircuitLoad {
  /** Import-direction load per phase, A (worst case if stale); positive = import. */
  a: [number, number, number];
  /** Total kW (for kW limits). */
  kw: number;
  /** Meters that count as their worst case. */
  stale: string[];
  /**
   * Generation alone (what uncontrolled sources feed back), per phase A and total kW, as
   * positive numbers: what export limits count (consumption is not credited against export).
   * Default: the negative parts of `a` and `kw`.
   */
  generationA?: [number, number, number];
  generationKw?: number;
}

/** The most restrictive limits in force (`LimitSources.effective`), with what gave each. */
export interface EffectiveLimits {
  /** Per circuit id: the most restrictive of each limit in force on it. */
  circuits: Map<string, Partial<Record<keyof CircuitLimits, LimitInForce>>>;
  /** Per asset id: the most restrictive `maxKw` cap in force on it (its rating is not here). */
  assets: Map<string, LimitInForce>;
}

/** What one asset asks for: from its setpoint in force (or the one about to leave). */
export interface AllocationRequest {
  assetId: string;
  /** kW asked; positive = import (charge), negative = export (a battery discharging). */
  kw: number;
}

/** What the allocator gives one asset. */
export interface Allocation {
  assetId: string;
  askedKw: number;
  /** kW given (same sign as asked, |given| <= |asked|; 0 when below its minimum). */
  kw: number;
  /**
   * The limit that bound it, when it got less than it asked: e.g.
   * `circuit feeder-1 importA L2 (config)`, `asset ev_001 maxKw (grid-operator §14a)`,
   * `minimum 4.1 kW`; null when it got what it asked.
   */
  boundBy: string | null;
}
