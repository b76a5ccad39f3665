/**
 * A command's JSON form (times as ISO 8601 strings): `commandToJSON` for events, messages
 * and the saved state, `commandFromJSON` to restore one exactly as it was; and the cache of
 * ISO strings by time (`isoString`, `isoTime`) that the events share.
 */

import {
  COMMAND_STATUSES,
  CommandValidationError,
  createCommand,
  describe,
  type InternCache,
  parseTime,
} from './command-create';
import {
  type Command,
  type CommandHistoryEntry,
  type CommandStatus,
  MAX_POWER_KW,
} from './command-model';

/** `T` as JSON carries it: every Date (also in a list's entries) an ISO 8601 string. */
type WithIsoTimes<T> = {
  [K in keyof T]: T[K] extends Date
    ? string
    : T[K] extends Date | null
      ? string | null
      : T[K] extends readonly (infer E)[]
        ? WithIsoTimes<E>[]
        : T[K];
};

/** A command in JSON form: the fields of `Command`, times as ISO 8601 strings. */
export type CommandJSON = WithIsoTimes<Command>;

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

/**
 * Rebuilds a command from its JSON form exactly as it was (status, attempts, history).
 * `shared` (one per restored document) lets equal times and column lists share one object.
 */
export function commandFromJSON(json: CommandJSON, index?: number, shared?: InternCache): Command {
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
