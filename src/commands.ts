/**
 * Commands and their lifecycle.
 *
 *   PENDING -> DISPATCHED -> ACKNOWLEDGED -> COMPLETED
 *                 |               |
 *                 +-> FAILED / TIMED_OUT (no attempt left, or rejected by the device)
 *                 +-> PENDING (a retry after a timeout or a transient error)
 *   PENDING / DISPATCHED / ACKNOWLEDGED -> CANCELLED (superseded, expired, by hand)
 */

import { LATEST_TIME_MS } from './time';

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

/** A command in JSON form: times are ISO 8601 strings. */
export interface CommandJSON {
  id: string;
  assetId: string;
  type: CommandType;
  valueKw: number;
  scheduledAt: string;
  validUntil: string | null;
  status: CommandStatus;
  priority: number;
  attempts: number;
  maxRetries: number;
  timeoutSeconds: number;
  scheduleId: string | null;
  source: CommandSource | null;
  reapplyOf?: string;
  askedKw?: number;
  limitedBy?: string;
  lastError: string | null;
  holdReason: string | null;
  nextAttemptAt: string | null;
  deadline: string | null;
  createdAt: string;
  history: { status: CommandStatus; at: string; reason?: string }[];
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
  const entry: CommandHistoryEntry = { status: to, at: new Date(at) };
  if (reason !== undefined) entry.reason = reason;
  // A converted schedule's commands share one frozen first-entry array: copy it on write.
  if (Object.isFrozen(cmd.history)) cmd.history = [...cmd.history];
  cmd.history.push(entry);
  if (cmd.history.length > HISTORY_LIMIT) cmd.history.splice(0, cmd.history.length - HISTORY_LIMIT);
}

/**
 * ISO strings of times, cached by epoch millisecond: a command's JSON form is built for every
 * event and every message, and the same instants come back again and again (the slot times a
 * schedule's commands share; the dispatch time and deadline of the commands due in one
 * round). Keyed by the number, not the Date, so that Dates made apart but equal share one
 * string; emptied when it holds ISO_CACHE_LIMIT entries.
 */
const ISO_CACHE_LIMIT = 4096;
const isoByTime = new Map<number, string>();
export function isoString(d: Date): string {
  return isoTime(d.getTime());
}

/** The ISO 8601 string of an epoch-ms time, from the same cache. Throws for NaN. */
export function isoTime(t: number): string {
  let s = isoByTime.get(t);
  if (s === undefined) {
    s = new Date(t).toISOString(); // a RangeError for NaN, before caching anything
    if (isoByTime.size >= ISO_CACHE_LIMIT) isoByTime.clear();
    isoByTime.set(t, s);
  }
  return s;
}

const iso = (d: Date | null): string | null => (d === null ? null : isoString(d));

export function commandToJSON(cmd: Command): CommandJSON {
  const json = commandJSON(cmd);
  if (cmd.reapplyOf !== undefined) json.reapplyOf = cmd.reapplyOf;
  if (cmd.askedKw !== undefined) json.askedKw = cmd.askedKw;
  if (cmd.limitedBy !== undefined) json.limitedBy = cmd.limitedBy;
  return json;
}

function commandJSON(cmd: Command): CommandJSON {
  return {
    id: cmd.id,
    assetId: cmd.assetId,
    type: cmd.type,
    valueKw: cmd.valueKw,
    scheduledAt: isoString(cmd.scheduledAt),
    validUntil: iso(cmd.validUntil),
    status: cmd.status,
    priority: cmd.priority,
    attempts: cmd.attempts,
    maxRetries: cmd.maxRetries,
    timeoutSeconds: cmd.timeoutSeconds,
    scheduleId: cmd.scheduleId,
    source:
      cmd.source === null ? null : { columns: [...cmd.source.columns], slot: cmd.source.slot },
    lastError: cmd.lastError,
    holdReason: cmd.holdReason,
    nextAttemptAt: iso(cmd.nextAttemptAt),
    deadline: iso(cmd.deadline),
    createdAt: isoString(cmd.createdAt),
    history: cmd.history.map((h) => {
      const e: { status: CommandStatus; at: string; reason?: string } = {
        status: h.status,
        at: isoString(h.at),
      };
      if (h.reason !== undefined) e.reason = h.reason;
      return e;
    }),
  };
}

/** Thrown for a command given by hand (or restored) that is not well formed. */
export class CommandValidationError extends Error {
  constructor(
    message: string,
    readonly field: string,
    readonly index?: number,
  ) {
    super(message);
    this.name = 'CommandValidationError';
  }
}

const COMMAND_TYPES = new Set<string>(Object.values(CommandType));
const COMMAND_STATUSES = new Set<string>(Object.values(CommandStatus));

/** Input for a command made by hand: the essentials, the rest defaulted. */
export interface CommandInput {
  id?: string;
  assetId: string;
  type: CommandType | `${CommandType}`;
  valueKw?: number;
  scheduledAt?: Date | string | number;
  validUntil?: Date | string | number | null;
  priority?: number;
  maxRetries?: number;
  timeoutSeconds?: number;
  scheduleId?: string | null;
  source?: CommandSource | null;
}

export interface CommandDefaults {
  now: number;
  maxRetries: number;
  timeoutSeconds: number;
  newId: () => string;
  /** Shares equal Dates, column lists and the first history entry between commands. */
  shared?: SharedValues;
}

/**
 * Equal values shared between the commands of one submission (a schedule's commands carry
 * ~100 distinct times between them, not three Dates each). Safe because nothing changes a
 * command's Date or column list in place: the engine replaces them. The first history entry
 * is one frozen array, copied by `transition` on the first change.
 */
export class SharedValues {
  private readonly dates = new Map<number, Date>();
  private readonly columnLists = new Map<string, string[]>();
  private first: { at: number; history: CommandHistoryEntry[] } | null = null;

  date(ms: number): Date {
    let d = this.dates.get(ms);
    if (d === undefined) {
      d = new Date(ms);
      this.dates.set(ms, d);
    }
    return d;
  }

  columns(list: readonly string[]): string[] {
    const key = list.join('\u0000');
    let c = this.columnLists.get(key);
    if (c === undefined) {
      c = Object.freeze([...list]) as string[];
      this.columnLists.set(key, c);
    }
    return c;
  }

  /** `[{status: PENDING, at: now}]`, frozen, the same array for the same `now`. */
  created(now: number): CommandHistoryEntry[] {
    if (this.first === null || this.first.at !== now) {
      const entry = Object.freeze({ status: CommandStatus.PENDING, at: this.date(now) });
      this.first = { at: now, history: Object.freeze([entry]) as unknown as CommandHistoryEntry[] };
    }
    return this.first.history;
  }
}

function parseTime(value: unknown, field: string, where: string, shared?: SharedValues): Date {
  const ms =
    value instanceof Date
      ? value.getTime()
      : typeof value === 'number'
        ? value
        : typeof value === 'string'
          ? Date.parse(value)
          : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new CommandValidationError(
      `${where}: ${field} must be an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(value)}`,
      field,
    );
  }
  if (ms < 0 || ms > LATEST_TIME_MS) {
    throw new CommandValidationError(
      `${where}: ${field} must be a time from 1970-01-01 to 9999-12-31, got ${JSON.stringify(value)}`,
      field,
    );
  }
  return shared ? shared.date(ms) : new Date(ms);
}

function optionalNumber(
  value: unknown,
  field: string,
  where: string,
  fallback: number,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new CommandValidationError(
      `${where}: ${field} must be a number >= ${min}${max < Number.POSITIVE_INFINITY ? ` and <= ${max}` : ''}, got ${JSON.stringify(value)}`,
      field,
    );
  }
  return value === 0 ? 0 : value; // -0 is 0: JSON writes it so
}

/**
 * Builds a PENDING command from a hand-written object or a command in JSON form
 * (`{assetId, type, valueKw, scheduledAt?, priority?}`), validating every field.
 * `index` says which element of an array was wrong, for the error message.
 */
export function createCommand(input: unknown, defaults: CommandDefaults, index?: number): Command {
  const where = index === undefined ? 'command' : `command [${index}]`;
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new CommandValidationError(
      `${where}: must be an object, got ${describe(input)}`,
      '',
      index,
    );
  }
  const o = input as Record<string, unknown>;
  if (typeof o.assetId !== 'string' || o.assetId.trim() === '') {
    throw new CommandValidationError(
      `${where}: assetId must be a non-empty string, got ${JSON.stringify(o.assetId)}`,
      'assetId',
      index,
    );
  }
  if (typeof o.type !== 'string' || !COMMAND_TYPES.has(o.type)) {
    throw new CommandValidationError(
      `${where}: type must be one of ${[...COMMAND_TYPES].join(', ')}, got ${JSON.stringify(o.type)}`,
      'type',
      index,
    );
  }
  const type = o.type as CommandType;
  const needsValue =
    type === CommandType.SET_CHARGE_RATE ||
    type === CommandType.SET_DISCHARGE_RATE ||
    type === CommandType.SET_POWER_LIMIT;
  let valueKw = 0;
  if (needsValue || o.valueKw !== undefined) {
    if (typeof o.valueKw !== 'number' || !Number.isFinite(o.valueKw) || o.valueKw < 0) {
      throw new CommandValidationError(
        `${where}: valueKw must be a finite number >= 0 (kW) for ${type}, got ${JSON.stringify(o.valueKw)}`,
        'valueKw',
        index,
      );
    }
    if (o.valueKw > MAX_POWER_KW) {
      throw new CommandValidationError(
        `${where}: valueKw must be at most ${MAX_POWER_KW} kW (1 GW, the most accepted for one asset; is it in W?) for ${type}, got ${JSON.stringify(o.valueKw)}`,
        'valueKw',
        index,
      );
    }
    valueKw = o.valueKw === 0 ? 0 : o.valueKw; // -0 is 0: JSON writes it so
  }
  const shared = defaults.shared;
  const scheduledAt =
    o.scheduledAt === undefined || o.scheduledAt === null
      ? shared
        ? shared.date(defaults.now)
        : new Date(defaults.now)
      : parseTime(o.scheduledAt, 'scheduledAt', where, shared);
  const validUntil =
    o.validUntil === undefined || o.validUntil === null
      ? null
      : parseTime(o.validUntil, 'validUntil', where, shared);
  if (validUntil !== null && validUntil.getTime() <= scheduledAt.getTime()) {
    throw new CommandValidationError(
      `${where}: validUntil (${validUntil.toISOString()}) must be after scheduledAt (${scheduledAt.toISOString()})`,
      'validUntil',
      index,
    );
  }
  if (o.id !== undefined && (typeof o.id !== 'string' || o.id === '')) {
    throw new CommandValidationError(
      `${where}: id must be a non-empty string, got ${JSON.stringify(o.id)}`,
      'id',
      index,
    );
  }
  const scheduleId =
    o.scheduleId === undefined || o.scheduleId === null ? null : String(o.scheduleId);
  const now = shared ? shared.date(defaults.now) : new Date(defaults.now);
  return {
    id: (o.id as string | undefined) ?? defaults.newId(),
    assetId: o.assetId,
    type,
    valueKw,
    scheduledAt,
    validUntil,
    status: CommandStatus.PENDING,
    priority: optionalNumber(o.priority, 'priority', where, 1, Number.NEGATIVE_INFINITY),
    attempts: 0,
    maxRetries: Math.floor(
      optionalNumber(o.maxRetries, 'maxRetries', where, defaults.maxRetries, 0),
    ),
    timeoutSeconds: optionalNumber(
      o.timeoutSeconds,
      'timeoutSeconds',
      where,
      defaults.timeoutSeconds,
      0.001,
      MAX_TIMEOUT_SECONDS,
    ),
    scheduleId,
    source: isSource(o.source)
      ? {
          columns: shared ? shared.columns(o.source.columns) : [...o.source.columns],
          slot: o.source.slot,
        }
      : null,
    lastError: null,
    holdReason: null,
    nextAttemptAt: null,
    deadline: null,
    createdAt: now,
    history: shared ? shared.created(defaults.now) : [{ status: CommandStatus.PENDING, at: now }],
  };
}

function isSource(v: unknown): v is CommandSource {
  if (v === null || typeof v !== 'object') return false;
  const s = v as Record<string, unknown>;
  return (
    Array.isArray(s.columns) &&
    s.columns.every((c) => typeof c === 'string') &&
    Number.isInteger(s.slot) &&
    (s.slot as number) >= 0
  );
}

/**
 * Rebuilds a command from its JSON form exactly as it was (status, attempts, history).
 * `shared` (one per restored document) lets equal times and column lists share one object.
 */
export function commandFromJSON(json: CommandJSON, index?: number, shared?: SharedValues): Command {
  const where = index === undefined ? 'command' : `command [${index}]`;
  const fail = (field: string, what: string, got: unknown): never => {
    throw new CommandValidationError(
      `${where}: ${field} must be ${what}, got ${JSON.stringify(got) ?? String(got)}`,
      field,
      index,
    );
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CommandValidationError(
      `${where}: must be an object, got ${describe(json)}`,
      '',
      index,
    );
  }
  if (!COMMAND_STATUSES.has(json.status)) {
    fail('status', `one of ${[...COMMAND_STATUSES].join(', ')}`, json.status);
  }
  const time = (v: unknown, f: string) => parseTime(v, f, where, shared);
  // Saved commands carry every field: nothing is defaulted from the time of the restore.
  for (const f of ['id', 'scheduledAt', 'createdAt'] as const) {
    if (json[f] === undefined || json[f] === null) fail(f, 'present', json[f]);
  }
  const createdAt = time(json.createdAt, 'createdAt');
  const base = createCommand(
    json,
    { now: createdAt.getTime(), maxRetries: 0, timeoutSeconds: 30, newId: () => '' },
    index,
  );
  const opt = (v: string | null | undefined, f: string) =>
    v === null || v === undefined ? null : time(v, f);
  const text = (v: unknown, f: string): string | null =>
    v === null || v === undefined
      ? null
      : typeof v === 'string'
        ? v
        : fail(f, 'a string or null', v);
  if (shared) {
    base.scheduledAt = shared.date(base.scheduledAt.getTime());
    if (base.validUntil !== null) base.validUntil = shared.date(base.validUntil.getTime());
    if (base.source !== null) base.source.columns = shared.columns(base.source.columns);
  }
  const attempts = json.attempts ?? 0;
  if (!Number.isInteger(attempts) || attempts < 0) fail('attempts', 'an integer >= 0', attempts);
  if (json.history !== undefined && !Array.isArray(json.history)) {
    fail('history', 'an array', json.history);
  }
  base.status = json.status;
  const reapplyOf = text(json.reapplyOf, 'reapplyOf');
  if (reapplyOf !== null) base.reapplyOf = reapplyOf;
  if (json.askedKw !== undefined && json.askedKw !== null) {
    const a = json.askedKw;
    if (typeof a !== 'number' || !Number.isFinite(a) || a < 0 || a > MAX_POWER_KW)
      fail('askedKw', `a number from 0 to ${MAX_POWER_KW} (kW)`, a);
    base.askedKw = a;
  }
  const limitedBy = text(json.limitedBy, 'limitedBy');
  if (limitedBy !== null) base.limitedBy = limitedBy;
  base.attempts = attempts;
  base.lastError = text(json.lastError, 'lastError');
  base.holdReason = text(json.holdReason, 'holdReason');
  base.nextAttemptAt = opt(json.nextAttemptAt, 'nextAttemptAt');
  base.deadline = opt(json.deadline, 'deadline');
  base.createdAt = createdAt;
  base.history = (json.history ?? []).map((h, i) => {
    const f = `history[${i}]`;
    if (h === null || typeof h !== 'object') fail(f, 'an object {status, at, reason?}', h);
    if (!COMMAND_STATUSES.has(h.status)) fail(`${f}.status`, 'a command status', h.status);
    const e: CommandHistoryEntry = { status: h.status, at: time(h.at, `${f}.at`) };
    const reason = text(h.reason, `${f}.reason`);
    if (reason !== null) e.reason = reason;
    return e;
  });
  return base;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string')
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}
