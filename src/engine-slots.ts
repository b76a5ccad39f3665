/**
 * The engine's bookkeeping records (src/engine.ts): `Tracked`, one command with the tokens of
 * its live due-heap and deadline-heap entries, and `HeapEntry`, an entry of those heaps (a
 * tracked command, or the next planned row of a plan cursor), with the due heap's order and
 * liveness. Also the rule for the latest finished setpoint a device should hold, which
 * `reapply` and the limits read.
 */

import { type Command, CommandStatus } from './commands';
import { REFUSED, SETPOINT_TYPES, setpointKind } from './engine-rules';
import type { PlanCursor } from './plans';
import { isSilenceFallback } from './silence';

/** Internal bookkeeping of one command. */
export interface Tracked {
  cmd: Command;
  /** Token of the command's live entry in the due heap (stale entries are skipped). */
  dueToken: number;
  deadlineToken: number;
  /**
   * A planned row that a newer schedule cut, kept as a CANCELLED command for inspection only:
   * its making and cancelling are not journaled (`onPersist`): the cut plan's `p:` record says
   * the row is gone, and after a restart it is simply not among the finished commands.
   */
  unjournaled?: true;
}

export interface HeapEntry {
  at: number;
  priority: number;
  seq: number;
  /** A tracked command, or (null) the next planned row of `cursor`. */
  tracked: Tracked | null;
  cursor: PlanCursor | null;
  token: number;
}

/**
 * Notes a finished setpoint in `lastSetpoint` (per asset and kind of setpoint, the latest)
 * when a device should hold it: not cancelled, not refused by it.
 */
export function noteFinishedSetpoint(lastSetpoint: Map<string, Command>, cmd: Command): void {
  if (!SETPOINT_TYPES.has(cmd.type) || cmd.status === CommandStatus.CANCELLED) return;
  if (cmd.status === CommandStatus.FAILED && cmd.history.at(-1)?.reason?.startsWith(REFUSED))
    return;
  const key = `${cmd.assetId}\u0000${setpointKind(cmd.type)}`;
  const last = lastSetpoint.get(key);
  if (
    !last ||
    cmd.scheduledAt.getTime() >= last.scheduledAt.getTime() ||
    // A silence's fallback cut short by a newer schedule, whose setpoint outlasts it.
    (isSilenceFallback(last) &&
      last.validUntil !== null &&
      (cmd.validUntil === null || cmd.validUntil.getTime() > last.validUntil.getTime()))
  )
    lastSetpoint.set(key, cmd);
}

/** Whether a due-heap entry still counts (stale ones are skipped). */
export function liveDue(e: HeapEntry): boolean {
  if (e.tracked === null) {
    const c = e.cursor as PlanCursor;
    return e.token === c.token && c.next < c.end;
  }
  return e.token === e.tracked.dueToken && e.tracked.cmd.status === CommandStatus.PENDING;
}

export function dueBefore(a: HeapEntry, b: HeapEntry): boolean {
  return (
    a.at < b.at ||
    (a.at === b.at && (a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq)))
  );
}

/** Order of due commands handed out: highest priority first, then the oldest. */
export function readyOrder(a: HeapEntry, b: HeapEntry): number {
  return b.priority - a.priority || a.at - b.at || a.seq - b.seq;
}
