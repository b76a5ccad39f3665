/**
 * Commands made by hand or restored: `createCommand` validates every field (a clear
 * CommandValidationError naming the field and the array index) and defaults the rest;
 * `InternCache` lets the commands of one schedule share equal values.
 */

import {
  type Command,
  type CommandHistoryEntry,
  type CommandSource,
  CommandStatus,
  CommandType,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
} from './command-model';
import { LATEST_TIME_MS } from './time';

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
export const COMMAND_STATUSES = new Set<string>(Object.values(CommandStatus));

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
  shared?: InternCache;
}

/**
 * An interning cache: equal values handed out as one shared object to the commands of one
 * submission or one restored document (Dates by epoch ms, column lists by content, the
 * first history entry by creation time). A schedule's commands carry ~100 distinct times
 * between them, not three Dates each. Safe because nothing changes a command's Date or
 * column list in place: the engine replaces them. The first history entry is one frozen
 * array, copied by `transition` on the first change. One cache per submission: it is never
 * emptied.
 */
export class InternCache {
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

/** A time field as a Date (from an InternCache when given), or a CommandValidationError. */
export function parseTime(
  value: unknown,
  field: string,
  where: string,
  shared?: InternCache,
): Date {
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

/** A value as error messages name it: `null`, `an array`, `the string "..."`, `number 7`. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string')
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}
