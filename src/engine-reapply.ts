/**
 * Re-applying setpoints for the engine (src/engine.ts `reapply`, `rateSetpoints`,
 * `reallocate`): which setpoint of an asset is in force (latest begun and not ended, not
 * cancelled nor refused), sending it again to a device that may have lost it, and new
 * commands for the rate setpoints in force when the site's limits change. The engine's
 * internals come through the narrow `ReapplyHost`; the rules are documented on the engine's
 * methods.
 */

import { type Command, CommandStatus, CommandType } from './commands';
import type { RateSetpoints } from './engine-config';
import {
  inFlight,
  REAPPLY_MIN_REMAINING_MS,
  reapplyCommand,
  SETPOINT_TYPES,
  setpointKind,
} from './engine-rules';
import type { Tracked } from './engine-slots';
import type { PlanBook } from './plan-book';

/** What the re-apply logic needs of the engine. */
export interface ReapplyHost {
  readonly book: PlanBook;
  readonly tracked: ReadonlyMap<string, Tracked>;
  readonly active: ReadonlyMap<string, Set<Tracked>>;
  readonly lastSetpoint: ReadonlyMap<string, Command>;
  now(): number;
  persistCommand(id: string): void;
  enqueue(slot: Tracked, at: number): void;
  /** Registers new commands (superseding nothing). */
  register(fresh: Command[], now: number): void;
}

export function reapplyInForce(
  host: ReapplyHost,
  assetId: string,
  reason: string,
  options: { appliedSince?: number },
): Command[] {
  const now = host.now();
  host.book.catchUp(assetId, now);
  const inForce = new Map<string, Tracked | Command>();
  const startOf = (x: Tracked | Command) => ('cmd' in x ? x.cmd : x).scheduledAt.getTime();
  const consider = (x: Tracked | Command) => {
    const c = 'cmd' in x ? x.cmd : x;
    if (!SETPOINT_TYPES.has(c.type) || c.scheduledAt.getTime() > now) return;
    if (c.validUntil !== null && c.validUntil.getTime() <= now) return;
    const kind = setpointKind(c.type);
    const best = inForce.get(kind);
    if (!best || startOf(x) >= startOf(best)) inForce.set(kind, x);
  };
  for (const kind of ['rate', 'cap']) {
    const last = host.lastSetpoint.get(`${assetId}\u0000${kind}`);
    if (last) consider(last);
  }
  for (const slot of host.active.get(assetId) ?? []) consider(slot);
  const out: Command[] = [];
  const fresh: Command[] = [];
  for (const x of inForce.values()) {
    if ('cmd' in x) {
      const cmd = x.cmd;
      if (cmd.status === CommandStatus.PENDING && cmd.holdReason === null) {
        cmd.nextAttemptAt = null;
        host.persistCommand(cmd.id);
        host.enqueue(x, now);
      }
      out.push(cmd);
      continue;
    }
    const completedAt = x.history.at(-1)?.at.getTime() ?? Number.NEGATIVE_INFINITY;
    if (
      x.status === CommandStatus.COMPLETED &&
      options.appliedSince !== undefined &&
      completedAt >= options.appliedSince
    ) {
      out.push(x);
      continue;
    }
    // About to end: the next slot's command goes out in a moment; this one would only
    // reach the device as the slot ends (or after, on a busy network).
    if (x.validUntil !== null && x.validUntil.getTime() - now < REAPPLY_MIN_REMAINING_MS) continue;
    const c = reapplyCommand(host.tracked, x, reason, now);
    fresh.push(c);
    out.push(c);
  }
  if (fresh.length > 0) host.register(fresh, now);
  return out;
}

export function rateSetpointsOf(host: ReapplyHost, assetId: string, now: number): RateSetpoints {
  host.book.catchUp(assetId, now);
  const live = (c: Command) =>
    SETPOINT_TYPES.has(c.type) &&
    c.type !== CommandType.SET_POWER_LIMIT &&
    c.scheduledAt.getTime() <= now &&
    (c.validUntil === null || c.validUntil.getTime() > now);
  const out: RateSetpoints = { inFlight: [] };
  const last = host.lastSetpoint.get(`${assetId}\u0000rate`);
  if (last && live(last)) out.last = out.plan = last;
  for (const { cmd } of host.active.get(assetId) ?? []) {
    if (!live(cmd)) continue;
    if (inFlight(cmd.status)) out.inFlight.push(cmd);
    if (!out.plan || cmd.scheduledAt.getTime() >= out.plan.scheduledAt.getTime()) out.plan = cmd;
  }
  return out;
}

export function reallocateRates(
  host: ReapplyHost,
  changes: readonly { assetId: string; kw: number; limitedBy: string | null }[],
  reason: string,
): Command[] {
  const now = host.now();
  const fresh: Command[] = [];
  for (const { assetId, kw, limitedBy } of changes) {
    const plan = rateSetpointsOf(host, assetId, now).plan;
    if (!plan || plan.status === CommandStatus.PENDING) continue;
    const c = reapplyCommand(host.tracked, plan, `limits: ${reason}`, now);
    const asked = plan.askedKw ?? plan.valueKw;
    c.valueKw = Math.abs(kw);
    if (kw < 0) c.type = CommandType.SET_DISCHARGE_RATE;
    else if (kw > 0 && c.type === CommandType.SET_DISCHARGE_RATE)
      c.type = CommandType.SET_CHARGE_RATE;
    delete c.askedKw;
    delete c.limitedBy;
    if (limitedBy !== null && c.valueKw !== asked) {
      c.askedKw = asked;
      c.limitedBy = limitedBy;
    }
    fresh.push(c);
  }
  if (fresh.length > 0) host.register(fresh, now);
  return fresh;
}
