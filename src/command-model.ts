/**
 * The Command model and its lifecycle: the types, the power and timeout bounds, and the
 * allowed status changes (`transition`). Creation and validation are in command-create.ts,
 * the JSON form in command-json.ts; `commands.ts` exports all three.
 *
 *   PENDING -> DISPATCHED -> ACKNOWLEDGED -> COMPLETED
 *                 |               |
 *                 +-> FAILED / TIMED_OUT (no attempt left, or rejected by the device)
 *                 +-> PENDING (a retry after a timeout or a transient error)
 *   PENDING / DISPATCHED / ACKNOWLEDGED -> CANCELLED (superseded, expired, by hand)
 */

/**
 * The most power accepted for one asset, kW: 1,000,000 kW = 1 GW. Far above any asset at the
 * edge (a car's fast charger is a few hundred kW, a truck's megawatt charger or a depot's
 * battery a few MW, the largest grid batteries some hundreds of MW), yet small enough that
 * every value derived from a setpoint stays a finite number that JSON carries exactly: a
 * netted battery setpoint (charge - discharge, within +-1 GW), rounding to 1 mW (x 1e6),
 * watts for OCPP (x 1000). A larger value is a unit mistake (W for kW) or garbage, refused
 * with the bound; 1e308 kW would overflow to Infinity, be saved as null, and cost the whole
 * saved state at the next start.
 */
export const MAX_POWER_KW = 1_000_000;

/** The longest an attempt may wait for the device's answer, seconds: a year. */
export const MAX_TIMEOUT_SECONDS = 365 * 86_400;

export enum CommandType {
  SET_CHARGE_RATE = 'SET_CHARGE_RATE',
  SET_DISCHARGE_RATE = 'SET_DISCHARGE_RATE',
  SET_POWER_LIMIT = 'SET_POWER_LIMIT',
  START_CHARGING = 'START_CHARGING',
  STOP_CHARGING = 'STOP_CHARGING',
  CHANGE_AVAILABILITY = 'CHANGE_AVAILABILITY',
}

export enum CommandStatus {
  PENDING = 'PENDING',
  DISPATCHED = 'DISPATCHED',
  ACKNOWLEDGED = 'ACKNOWLEDGED',
  COMPLETED = 'COMPLETED',
  FAILED = 'FAILED',
  TIMED_OUT = 'TIMED_OUT',
  CANCELLED = 'CANCELLED',
}

/** Where a command came from in its schedule. */
export interface CommandSource {
  /** Schedule columns that gave the value (two for a netted battery); frozen, shared. */
  columns: string[];
  /** Zero-based row of the slot in the schedule. */
  slot: number;
}

export interface CommandHistoryEntry {
  status: CommandStatus;
  at: Date;
  reason?: string;
}

/**
 * A command as the engine holds it. Its Dates and lists may be shared with other commands of
 * the same schedule: read them, do not change them in place (the engine replaces them).
 */
export interface Command {
  /** Stable identifier: the same across the lifecycle and across a persist/restore. */
  id: string;
  assetId: string;
  type: CommandType;
  /** Setpoint in kW, never negative: the type says the direction. */
  valueKw: number;
  /** When the command is due: the start of its slot. */
  scheduledAt: Date;
  /** When the setpoint stops applying (the next change for the asset); null: until replaced. */
  validUntil: Date | null;
  status: CommandStatus;
  /** Higher goes first among commands due at the same time. */
  priority: number;
  /** Attempts made so far (dispatches). */
  attempts: number;
  /** Retries allowed after the first attempt. */
  maxRetries: number;
  /** How long one attempt may wait for the device's answer. */
  timeoutSeconds: number;
  scheduleId: string | null;
  source: CommandSource | null;
  /** Set on a command that re-applies the setpoint of command `reapplyOf` (engine.reapply). */
  reapplyOf?: string;
  /**
   * Set when the site's limits changed the setpoint: what the schedule asked, kW (`valueKw`
   * is what is applied), and the limit that bound it (see `Allocation.boundBy`).
   */
  askedKw?: number;
  limitedBy?: string;
  lastError: string | null;
  /** Why a PENDING command is held back (asset faulted or unavailable), or null. */
  holdReason: string | null;
  /** When the next attempt is due after a failed one, or null. */
  nextAttemptAt: Date | null;
  /** Deadline of the attempt in flight, or null. */
  deadline: Date | null;
  createdAt: Date;
  /**
   * Status changes, oldest first, at most HISTORY_LIMIT entries. Read-only for users: the
   * commands of one submission share one frozen first entry until their first change.
   */
  history: CommandHistoryEntry[];
}

export const HISTORY_LIMIT = 20;

export const FINAL_STATUSES: ReadonlySet<CommandStatus> = new Set([
  CommandStatus.COMPLETED,
  CommandStatus.FAILED,
  CommandStatus.TIMED_OUT,
  CommandStatus.CANCELLED,
]);

/** Allowed status changes. Anything else is a bug in the caller, and throws. */
const TRANSITIONS: Record<CommandStatus, readonly CommandStatus[]> = {
  [CommandStatus.PENDING]: [
    CommandStatus.DISPATCHED,
    CommandStatus.CANCELLED,
    CommandStatus.FAILED,
    CommandStatus.TIMED_OUT,
  ],
  [CommandStatus.DISPATCHED]: [
    CommandStatus.ACKNOWLEDGED,
    CommandStatus.COMPLETED,
    CommandStatus.FAILED,
    CommandStatus.TIMED_OUT,
    CommandStatus.CANCELLED,
    CommandStatus.PENDING,
  ],
  [CommandStatus.ACKNOWLEDGED]: [
    CommandStatus.COMPLETED,
    CommandStatus.FAILED,
    CommandStatus.TIMED_OUT,
    CommandStatus.CANCELLED,
    CommandStatus.PENDING,
  ],
  [CommandStatus.COMPLETED]: [],
  [CommandStatus.FAILED]: [],
  [CommandStatus.TIMED_OUT]: [],
  [CommandStatus.CANCELLED]: [],
};

export function isFinal(status: CommandStatus): boolean {
  return FINAL_STATUSES.has(status);
}

export function canTransition(from: CommandStatus, to: CommandStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export class InvalidCommandTransition extends Error {
  constructor(
    readonly commandId: string,
    readonly from: CommandStatus,
    readonly to: CommandStatus,
  ) {
    super(`command ${commandId}: cannot go from ${from} to ${to}`);
    this.name = 'InvalidCommandTransition';
  }
}

/** Changes a command's status, checking the lifecycle and recording the change. */
export function transition(cmd: Command, to: CommandStatus, at: number, reason?: string): void {
  if (!canTransition(cmd.status, to)) throw new InvalidCommandTransition(cmd.id, cmd.status, to);
  cmd.status = to;
  // The shape whole at once (no property added after); the Date shared with the last change
  // at the same ms (a burst's commands move in the same ms): see `sharedDate`.
  const date = sharedDate(at);
  const entry: CommandHistoryEntry =
    reason === undefined ? { status: to, at: date } : { status: to, at: date, reason };
  let h = cmd.history;
  // A converted schedule's commands share one frozen first-entry array: copied on write,
  // the new entry in the copy (no array grown for one entry).
  if (!Object.isFrozen(h)) h.push(entry);
  else if (h.length === 1) h = cmd.history = [h[0] as CommandHistoryEntry, entry];
  else h = cmd.history = [...h, entry];
  if (h.length > HISTORY_LIMIT) h.splice(0, h.length - HISTORY_LIMIT);
}

let lastDateMs = Number.NaN;
let lastDate = new Date(0);

/**
 * A Date of `ms`, the one handed out last when it is of the same ms. Safe as the commands'
 * shared Dates are (`InternCache`): nothing changes a command's Date in place.
 */
function sharedDate(ms: number): Date {
  if (ms !== lastDateMs) {
    lastDate = new Date(ms);
    lastDateMs = ms;
  }
  return lastDate;
}
