/**
 * Failsafe shares: what each asset may draw when the gateway is gone, from the configuration
 * alone (see `failsafeShares` for the rule). Pure.
 */

import { allocate } from './allocator';
import { MeterReadings } from './meters';
import { LimitSources } from './sources';
import type { ResolvedAsset, SiteLimits } from './types';

/**
 * What each asset may draw when the gateway is gone (for the OCPP station-wide maximum
 * profile, or a battery's fallback), kW: what the allocator gives every asset asking its
 * rating, with every meter at its worst case and only the configured limits. So:
 *
 * - an asset with `failsafeKw` gets exactly that (the user vouches for it); these are served
 *   first, before every other asset, as loads the others must leave room for;
 * - the others share what is left of every circuit and phase (import limits from the
 *   configuration, less the worst case of every meter on it and below: a meter without
 *   worstCaseKw / worstCaseA counts as its circuit's import limit, leaving nothing below it)
 *   as the allocator shares: by priority, then weighted max-min fair, at most the rating;
 *   an asset whose share would be below its minimum gets 0 and its share goes to the others
 *   (20 kW for ten chargers of 4.14 kW minimum: four at 5 kW, six at 0, not ten at 2 kW
 *   that none can use).
 *
 * Dynamic caps and export limits are not counted (they need the gateway). The shares fit by
 * construction: on every circuit and phase, the shares below it plus the meters' worst cases
 * stay within its import limits (when the explicit failsafeKw values fit themselves).
 */
export function failsafeShares(limits: SiteLimits): Map<string, number> {
  let top = 0;
  for (const a of limits.assets.values()) top = Math.max(top, a.priority);
  // Explicit shares first, as fixed loads; no discharge credit: every asset asks to import.
  const assets = new Map<string, ResolvedAsset>();
  for (const [id, a] of limits.assets) {
    assets.set(
      id,
      a.failsafeKw === undefined ? a : { ...a, priority: top + 1, minKwResolved: 0, weight: 1 },
    );
  }
  const view: SiteLimits = {
    ...limits,
    config: { ...limits.config, creditDischarge: false },
    assets,
  };
  const requests = [...assets.values()].map((a) => ({
    assetId: a.assetId,
    kw: a.failsafeKw ?? a.ratingKw,
  }));
  const worstCase = new MeterReadings(view).loads(0); // never read: every meter at worst case
  const given = allocate(view, requests, worstCase, new LimitSources(view).effective(0));
  const shares = new Map<string, number>();
  for (const g of given) {
    const a = limits.assets.get(g.assetId) as ResolvedAsset;
    shares.set(g.assetId, a.failsafeKw ?? g.kw);
  }
  return shares;
}
