/**
 * Failsafe shares: what each asset may draw when the gateway is gone, from the configuration
 * alone (see `failsafeShares` for the rule). Pure.
 */

import { ampsPerKw, meterWorstCase } from './circuits';
import type { ResolvedAsset, ResolvedCircuit, SiteLimits } from './types';
import { PHASES } from './types';

/**
 * What each asset may draw when the gateway is gone (for the OCPP station-wide maximum
 * profile, or a battery's fallback), kW. The rule:
 *
 * - An asset with `failsafeKw` gets exactly that (the user vouches for it).
 * - Every other asset: on each circuit of its path, the circuit's import capacity from the
 *   configuration (importKw, and importA on each phase) minus the worst case of every meter
 *   on that circuit and below (a meter without worstCaseKw/worstCaseA counts as its circuit's
 *   import limit: nothing is left below it) minus the explicit failsafeKw of the assets below,
 *   is split among the other assets below it in proportion to their weight. For A limits
 *   the split is by one factor per circuit, the largest that keeps every phase within
 *   importA (an asset drawing on one phase costs three times the A of a three-phase one).
 *   Its share is the smallest over its path, at most its rating, and 0 when that is below
 *   its minimum. Dynamic caps and export limits are not counted (they need the gateway).
 *
 * So the shares fit by construction: on every circuit and phase, the shares below it plus
 * the meters' worst cases stay within its import limits (when the explicit failsafeKw
 * values fit themselves).
 */
export function failsafeShares(limits: SiteLimits): Map<string, number> {
  const below = new Map<string, ResolvedAsset[]>(limits.order.map((c) => [c, []]));
  for (const a of limits.assets.values())
    for (const c of (limits.circuits.get(a.circuit) as ResolvedCircuit).path) below.get(c)?.push(a);
  // Worst-case meter load per circuit (including the circuits below): kW and kW per phase.
  const worstKw = new Map<string, number>(limits.order.map((c) => [c, 0]));
  const worstPhaseKw = new Map<string, number[]>(limits.order.map((c) => [c, [0, 0, 0]]));
  for (const m of limits.meters.values()) {
    const w = meterWorstCase(m, limits);
    for (const c of (limits.circuits.get(m.circuit) as ResolvedCircuit).path) {
      worstKw.set(c, (worstKw.get(c) as number) + w.kw);
      const p = worstPhaseKw.get(c) as number[];
      for (let i = 0; i < 3; i++) p[i] = (p[i] as number) + (w.phaseKw[i] as number);
    }
  }
  // Per circuit: the largest factor s such that weight x s fits for every asset below.
  const factor = new Map<string, number>();
  for (const cid of limits.order) {
    const c = limits.circuits.get(cid) as ResolvedCircuit;
    const list = below.get(cid) as ResolvedAsset[];
    let s = Number.POSITIVE_INFINITY;
    if (c.importKw !== undefined) {
      let left = c.importKw - (worstKw.get(cid) as number);
      let weights = 0;
      for (const a of list) {
        if (a.failsafeKw !== undefined) left -= a.failsafeKw;
        else weights += a.weight;
      }
      if (weights > 0) s = Math.min(s, Math.max(0, left) / weights);
    }
    if (c.importA !== undefined) {
      PHASES.forEach((ph, i) => {
        let left =
          (c.importA as number) -
          ((worstPhaseKw.get(cid) as number[])[i] as number) * (1000 / c.voltageV);
        let perS = 0;
        for (const a of list) {
          if (!a.loads.includes(ph)) continue;
          const apk = ampsPerKw(a, limits, cid);
          if (a.failsafeKw !== undefined) left -= a.failsafeKw * apk;
          else perS += a.weight * apk;
        }
        if (perS > 0) s = Math.min(s, Math.max(0, left) / perS);
      });
    }
    factor.set(cid, s);
  }
  const shares = new Map<string, number>();
  for (const a of limits.assets.values()) {
    if (a.failsafeKw !== undefined) {
      shares.set(a.assetId, a.failsafeKw);
      continue;
    }
    let share = a.ratingKw;
    for (const cid of (limits.circuits.get(a.circuit) as ResolvedCircuit).path)
      share = Math.min(share, (factor.get(cid) as number) * a.weight);
    shares.set(a.assetId, share < a.minKwResolved || share <= 0 ? 0 : share);
  }
  return shares;
}
