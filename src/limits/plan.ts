/**
 * Break before make: `planChanges` says which setpoints to send now so that, whatever order
 * the devices apply them in, every state on the way fits (when the state committed now
 * fits). Pure.
 *
 * - A change that adds to no limit (less import; less discharge without discharge credit)
 *   is a decrease: sent at once, to its target.
 * - A change that adds to some limit (more import, more discharge, less discharge when the
 *   discharge frees import) is an increase: the increases share, by the allocator's rules,
 *   only the room left with every asset still at its committed value (the decreases are not
 *   confirmed yet, so they free nothing); each gets what fits of its way to the target. A
 *   change across 0 (charge to discharge) goes to 0 first when the rest does not fit.
 *   The host calls again when decreases are confirmed, and the increases go on.
 *   Moves that also free room elsewhere (a discharge changing under discharge credit) go
 *   first, so that a plan reaches its targets in a few calls.
 * - A change smaller than `hysteresisKw` is not sent, unless it is a decrease the committed
 *   state needs (a limit on its circuits is exceeded, or it is above its rating or cap).
 * - Assets in `committed` without a target stay at their committed value.
 *
 * Why any order fits ("fits" as `violations` says: a limit counts only where some asset adds
 * to it, so a battery may stop discharging once nothing below it draws): each limit's usage
 * is monotone in each asset's setpoint, so the worst intermediate state on a limit is the
 * committed one plus every increase on it, and the increases are sized so that this fits.
 */

import { assetUpper, buildConstraints, usageOf } from './allocator';
import { type FillItem, waterFill } from './fill';
import type { Allocation, CircuitLoad, EffectiveLimits, ResolvedAsset, SiteLimits } from './types';

/** Added to the priority of moves that free room elsewhere. */
const FIRST = 1e9;

interface Move {
  asset: ResolvedAsset;
  committed: number;
  target: number;
  /** The segment of the way that is an increase: from `from` to `to` (same side of 0). */
  from: number;
  to: number;
  /** Value to send when no increase fits (0 for a crossing whose first leg is a decrease). */
  fallback: number | null;
}

/** Values to send now, per asset id. */
export function planChanges(
  limits: SiteLimits,
  targets: Allocation[],
  committed: Map<string, number>,
  loads: Map<string, CircuitLoad>,
  effective: EffectiveLimits,
  hysteresisKw: number,
): Map<string, number> {
  const credit = limits.config.creditDischarge ?? true;
  const out = new Map<string, number>();
  // Everyone counted at its committed value: the targets' assets and the others committed.
  const ids = new Set<string>([...committed.keys(), ...targets.map((t) => t.assetId)]);
  const all = [...ids].filter((id) => limits.assets.has(id));
  const assets = all.map((id) => limits.assets.get(id) as ResolvedAsset);
  const dirs = ['import', 'export'] as const;
  const built = dirs.map((dir) => buildConstraints(limits, assets, dir, loads, effective));
  // Room on each constraint with everyone at committed.
  const room = built.map((b) => Float64Array.from(b.cons.map((c) => c.cap)));
  all.forEach((id, j) => {
    const c = committed.get(id) ?? 0;
    dirs.forEach((dir, d) => {
      const u = usageOf(c, dir, credit);
      if (u === 0) return;
      const o = (built[d] as (typeof built)[0]).of[j] as { cons: number[]; coefs: number[] };
      const r = room[d] as Float64Array;
      o.cons.forEach((k, m) => {
        r[k] = (r[k] as number) - u * (o.coefs[m] as number);
      });
    });
  });
  const tol = 1e-9;
  const position = new Map(all.map((id, j) => [id, j]));
  /** Change of usage per unit of coefficient when an asset goes from a to b (every constraint of a direction moves by it times its coefficient, all > 0). */
  const du = (a: number, b: number, d: number): number =>
    usageOf(b, dirs[d] as 'import' | 'export', credit) -
    usageOf(a, dirs[d] as 'import' | 'export', credit);
  const consOf = (j: number, d: number) =>
    (built[d] as (typeof built)[0]).of[j] as { cons: number[]; coefs: number[] };
  const adds = (a: number, b: number) => du(a, b, 0) > tol || du(a, b, 1) > tol;
  const moves: Move[] = [];
  for (const t of targets) {
    const j = position.get(t.assetId);
    if (j === undefined) continue;
    const asset = limits.assets.get(t.assetId) as ResolvedAsset;
    const c = committed.get(t.assetId) ?? 0;
    const target = t.kw;
    if (Math.abs(target - c) <= tol) continue;
    if (!adds(c, target)) {
      // A decrease: sent when big enough, or when the committed state needs it.
      const needed =
        Math.abs(c) > assetUpper(asset, c, effective).value + tol ||
        [0, 1].some(
          (d) =>
            du(c, target, d) < -tol &&
            consOf(j, d).cons.some((k) => ((room[d] as Float64Array)[k] as number) < -tol),
        );
      if (Math.abs(target - c) >= hysteresisKw || needed) out.set(t.assetId, target);
      continue;
    }
    if (Math.abs(target - c) < hysteresisKw) continue;
    if (c * target < 0) {
      if (!adds(c, 0))
        moves.push({ asset, committed: c, target, from: 0, to: target, fallback: 0 });
      else moves.push({ asset, committed: c, target, from: c, to: 0, fallback: null });
    } else moves.push({ asset, committed: c, target, from: c, to: target, fallback: null });
  }
  if (moves.length === 0) return out;
  // A limit binds only where some asset adds to it (imports, or discharges) now or on its
  // way: an uncontrolled load alone above a limit is not the assets' doing, so a battery may
  // stop discharging once nothing below draws any more.
  const binds = room.map((r) => new Uint8Array(r.length));
  const mark = (j: number, kw: number) => {
    dirs.forEach((dir, d) => {
      if (usageOf(kw, dir, credit) <= tol) return;
      const b = binds[d] as Uint8Array;
      for (const k of consOf(j, d).cons) b[k] = 1;
    });
  };
  all.forEach((id, j) => {
    mark(j, committed.get(id) ?? 0);
  });
  for (const mv of moves) mark(position.get(mv.asset.assetId) as number, mv.to);
  // Share the room among the increases: one water-filling over both directions' constraints.
  const offset = (room[0] as Float64Array).length;
  const caps = [0, 1].flatMap((d) =>
    [...(room[d] as Float64Array)].map((v, k) =>
      (binds[d] as Uint8Array)[k] ? Math.max(0, v) : Number.POSITIVE_INFINITY,
    ),
  );
  const items: FillItem[] = moves.map((mv) => {
    const j = position.get(mv.asset.assetId) as number;
    const len = Math.abs(mv.to - mv.from);
    const cons: number[] = [];
    const coefs: number[] = [];
    let frees = false;
    for (const d of [0, 1]) {
      const per = du(mv.from, mv.to, d) / len;
      const o = consOf(j, d);
      if (per < -tol && o.cons.length > 0) frees = true;
      if (per <= tol) continue;
      o.cons.forEach((k, m) => {
        cons.push(k + (d === 0 ? 0 : offset));
        coefs.push(per * (o.coefs[m] as number));
      });
    }
    const fromZero = Math.abs(mv.from) <= tol;
    return {
      upper: len,
      min: fromZero ? Math.min(mv.asset.minKwResolved, len) : 0,
      weight: mv.asset.weight,
      // A move that also frees room elsewhere (a discharge that changes with credit) goes
      // first: it makes room for the next call's moves, so the plan reaches the targets in
      // a few calls instead of ever smaller steps.
      priority: mv.asset.priority + (frees ? FIRST : 0),
      cons,
      coefs,
    };
  });
  const { x } = waterFill(caps, items);
  moves.forEach((mv, i) => {
    const len = Math.abs(mv.to - mv.from);
    let y = x[i] as number;
    const sign = Math.sign(mv.to - mv.from);
    const min = mv.asset.minKwResolved;
    let value = mv.from + sign * y;
    // Towards 0 (less discharge with credit): never stop between 0 and the minimum.
    if (
      Math.abs(value) > tol &&
      Math.abs(value) < min - tol &&
      Math.abs(mv.to) < Math.abs(mv.from)
    ) {
      value = Math.sign(mv.from) * min;
      y = Math.abs(value - mv.from);
      if (Math.abs(value) > Math.abs(mv.from)) y = 0;
    }
    const reached = y >= len - tol;
    if (y > tol && (reached || y >= hysteresisKw))
      out.set(mv.asset.assetId, reached ? mv.to : value);
    else if (mv.fallback !== null) out.set(mv.asset.assetId, mv.fallback);
  });
  return out;
}
