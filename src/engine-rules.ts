/**
 * The dispatch engine's small rules, apart from its state: which event each status gives,
 * which commands are setpoints and of which kind, how an adapter's answer reads, and when
 * a command sent again is the same one.
 */

import type { AdapterResult } from './adapters/registry';
import { type Command, CommandStatus, CommandType } from './commands';
import type { ResponseOptions } from './engine-config';
import { EventType } from './event-bus';

export type CommandEventType =
  | EventType.COMMAND_CREATED
  | EventType.COMMAND_DISPATCHED
  | EventType.COMMAND_ACKNOWLEDGED
  | EventType.COMMAND_COMPLETED
  | EventType.COMMAND_FAILED
  | EventType.COMMAND_TIMED_OUT
  | EventType.COMMAND_CANCELLED;

export const EVENT_FOR: Record<CommandStatus, CommandEventType> = {
  PENDING: EventType.COMMAND_CREATED,
  DISPATCHED: EventType.COMMAND_DISPATCHED,
  ACKNOWLEDGED: EventType.COMMAND_ACKNOWLEDGED,
  COMPLETED: EventType.COMMAND_COMPLETED,
  FAILED: EventType.COMMAND_FAILED,
  TIMED_OUT: EventType.COMMAND_TIMED_OUT,
  CANCELLED: EventType.COMMAND_CANCELLED,
};

export const SETPOINT_TYPES: ReadonlySet<CommandType> = new Set([
  CommandType.SET_CHARGE_RATE,
  CommandType.SET_DISCHARGE_RATE,
  CommandType.SET_POWER_LIMIT,
]);

/** A setpoint that ends sooner than this is not re-applied: its successor is about to go. */
export const REAPPLY_MIN_REMAINING_MS = 1000;

/** How the reason of a command that its device refused begins. */
export const REFUSED = 'refused: ';

export function setpointKind(type: CommandType): 'rate' | 'cap' {
  return type === CommandType.SET_POWER_LIMIT ? 'cap' : 'rate';
}

export function inFlight(s: CommandStatus): boolean {
  return s === CommandStatus.DISPATCHED || s === CommandStatus.ACKNOWLEDGED;
}

export function responseOptions(r: AdapterResult): ResponseOptions {
  const opts: ResponseOptions = {};
  if (r.final !== undefined) opts.final = r.final;
  if (r.completed !== undefined) opts.completed = r.completed;
  if (r.timedOut !== undefined) opts.timedOut = r.timedOut;
  if (r.expired !== undefined) opts.expired = r.expired;
  return opts;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

export function sameContent(a: Command, b: Command): boolean {
  return (
    a.assetId === b.assetId &&
    a.type === b.type &&
    a.valueKw === b.valueKw &&
    a.scheduledAt.getTime() === b.scheduledAt.getTime()
  );
}

/**
 * A new command with the setpoint of `orig`, due `now` and valid as long as it is, tracked as
 * `<root>~n` (the first n not in `taken`) with `reapplyOf` its root: a re-apply.
 */
export function reapplyCommand(
  taken: { has(id: string): boolean },
  orig: Command,
  reason: string,
  now: number,
): Command {
  const root = orig.reapplyOf ?? orig.id;
  let n = 1;
  while (taken.has(`${root}~${n}`)) n++;
  const at = new Date(now);
  return {
    ...orig,
    id: `${root}~${n}`,
    reapplyOf: root,
    scheduledAt: at,
    status: CommandStatus.PENDING,
    attempts: 0,
    lastError: null,
    holdReason: null,
    nextAttemptAt: null,
    deadline: null,
    createdAt: at,
    history: [{ status: CommandStatus.PENDING, at, reason: `re-apply ${root}: ${reason}` }],
  };
}
