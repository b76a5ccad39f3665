/**
 * The engine's read-only queries (src/engine.ts `getCommands`, `getInFlightCommands`,
 * `getActiveCommands`, `getCommandInForce`, `getHeldCommands`, `stats`) as functions of its
 * indexes: the tracked commands, the unfinished and held ones per asset, the status counts
 * and the plan book (whose planned rows count as PENDING and are made into commands when
 * asked for).
 */

import { type Command, CommandStatus } from './commands';
import type { CommandFilter, EngineStats } from './engine-config';
import { inFlight, SETPOINT_TYPES } from './engine-rules';
import type { Tracked } from './engine-slots';
import type { PlanBook } from './plan-book';

export function commandsMatching(
  tracked: ReadonlyMap<string, Tracked>,
  book: PlanBook,
  filter: CommandFilter,
): Command[] {
  const statuses =
    filter.status === undefined
      ? null
      : new Set(Array.isArray(filter.status) ? filter.status : [filter.status]);
  // Planned rows are PENDING: asked for, they are made into their commands.
  if (statuses === null || statuses.has(CommandStatus.PENDING))
    book.materialiseAll(filter.assetId, filter.scheduleId);
  const out: Command[] = [];
  for (const { cmd } of tracked.values()) {
    if (filter.assetId !== undefined && cmd.assetId !== filter.assetId) continue;
    if (filter.scheduleId !== undefined && cmd.scheduleId !== filter.scheduleId) continue;
    if (statuses && !statuses.has(cmd.status)) continue;
    out.push(cmd);
  }
  return out;
}

export function inFlightOf(slots: Iterable<Tracked> | undefined): Command[] {
  const out: Command[] = [];
  for (const { cmd } of slots ?? []) if (inFlight(cmd.status)) out.push(cmd);
  return out;
}

/** The latest COMPLETED setpoint of an asset whose slot has begun and not ended at `t`. */
export function commandInForce(
  tracked: ReadonlyMap<string, Tracked>,
  assetId: string,
  t: number,
): Command | undefined {
  let best: Command | undefined;
  for (const { cmd } of tracked.values()) {
    if (
      cmd.assetId !== assetId ||
      cmd.status !== CommandStatus.COMPLETED ||
      !SETPOINT_TYPES.has(cmd.type) ||
      cmd.scheduledAt.getTime() > t ||
      (cmd.validUntil !== null && cmd.validUntil.getTime() <= t)
    ) {
      continue;
    }
    if (!best || cmd.scheduledAt.getTime() > best.scheduledAt.getTime()) best = cmd;
  }
  return best;
}

export function heldOf(
  held: ReadonlyMap<string, Set<Tracked>>,
  assetId: string | undefined,
): Command[] {
  const sets =
    assetId === undefined ? [...held.values()] : [held.get(assetId) ?? new Set<Tracked>()];
  return sets
    .flatMap((s) => [...s].map((x) => x.cmd))
    .sort((a, b) => a.scheduledAt.getTime() - b.scheduledAt.getTime());
}

export function statsOf(
  counts: Readonly<Record<CommandStatus, number>>,
  heldCount: number,
  trackedCount: number,
  planned: number,
): EngineStats {
  const c = counts;
  return {
    total: trackedCount + planned,
    pending: c.PENDING + planned,
    held: heldCount,
    inFlight: c.DISPATCHED + c.ACKNOWLEDGED,
    finished: c.COMPLETED + c.FAILED + c.TIMED_OUT + c.CANCELLED,
    byStatus: { ...c, PENDING: c.PENDING + planned },
  };
}
