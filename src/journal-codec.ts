/**
 * The journal's record codec: one change of persisted state (an engine or site entry, see
 * `DispatchEngine.onPersist`) as one line of JSON, and back. A command is written in full
 * once (`n`, its fields by position, times as epoch ms) and then as small deltas (`d`: the
 * fields a command's life changes, and only the history entries added since the last
 * record), so that a status change costs ~100 bytes, not the command's whole JSON. Any other
 * key is written as it is (`s`), a removal as `r`. Pure: no I/O.
 *
 * The encoder keeps, per command it wrote, the history length and last entry it wrote (a
 * few dozen bytes) to know which entries are new; when it cannot tell (the history was
 * trimmed past what it wrote), it writes the command in full again.
 */

import { BigMap } from './big-map';
import {
  type CommandJSON,
  type CommandSource,
  type CommandStatus,
  type CommandType,
  HISTORY_LIMIT,
} from './commands';

type HistoryJSON = CommandJSON['history'][number];

/** A decoded record: set `key` to `value`, or remove it (`value` undefined). */
export interface JournalEntry {
  key: string;
  value: unknown;
}

/** A decoded command delta: applied to the command's JSON by `applyDelta`. */
export interface CommandDelta {
  id: string;
  status: CommandStatus;
  attempts: number;
  lastError: string | null;
  holdReason: string | null;
  nextAttemptAt: string | null;
  deadline: string | null;
  validUntil: string | null;
  valueKw: number;
  type: CommandType;
  askedKw?: number;
  limitedBy?: string;
  /** History entries added since the last record of this command. */
  added: HistoryJSON[];
}

export type DecodedRecord =
  | { kind: 'set'; key: string; value: unknown }
  | { kind: 'remove'; key: string }
  | { kind: 'delta'; key: string; delta: CommandDelta };

/** The fields of a CommandJSON the codec knows; a command with others is written as it is. */
const COMMAND_FIELDS = new Set([
  'id',
  'assetId',
  'type',
  'valueKw',
  'scheduledAt',
  'validUntil',
  'status',
  'priority',
  'attempts',
  'maxRetries',
  'timeoutSeconds',
  'scheduleId',
  'source',
  'reapplyOf',
  'askedKw',
  'limitedBy',
  'lastError',
  'holdReason',
  'nextAttemptAt',
  'deadline',
  'createdAt',
  'history',
]);

/**
 * Epoch ms of ISO strings, cached: a schedule's commands share a few instants (their slot
 * times, the time they were made), and parsing is most of the cost of a record.
 */
const msByIso = new Map<string, number>();
function msOf(iso: string): number {
  let t = msByIso.get(iso);
  if (t === undefined) {
    t = Date.parse(iso);
    if (msByIso.size >= 4096) msByIso.clear();
    msByIso.set(iso, t);
  }
  return t;
}
const ms = (iso: string | null): number | null => (iso === null ? null : msOf(iso));
const iso = (t: unknown, what: string): string | null => {
  if (t === null) return null;
  if (typeof t !== 'number' || !Number.isFinite(t)) throw new TypeError(`${what} must be a time`);
  return new Date(t).toISOString();
};
const isoReq = (t: unknown, what: string): string => {
  const s = iso(t, what);
  if (s === null) throw new TypeError(`${what} must be a time`);
  return s;
};

const historyOut = (h: HistoryJSON): unknown[] =>
  h.reason === undefined ? [h.status, msOf(h.at)] : [h.status, msOf(h.at), h.reason];

function historyIn(v: unknown): HistoryJSON[] {
  if (!Array.isArray(v)) throw new TypeError('history must be an array');
  return v.map((e, i) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string')
      throw new TypeError(`history[${i}] is not an entry`);
    const out: HistoryJSON = {
      status: e[0] as CommandStatus,
      at: isoReq(e[1], `history[${i}].at`),
    };
    if (e.length > 2) {
      if (typeof e[2] !== 'string') throw new TypeError(`history[${i}].reason must be a string`);
      out.reason = e[2];
    }
    return out;
  });
}

const entryKey = (h: HistoryJSON | undefined) =>
  h === undefined ? '' : `${h.status}\u0000${h.at}\u0000${h.reason ?? ''}`;

/** What the encoder last wrote of a command's history. */
interface Written {
  length: number;
  last: string;
}

/** Turns changes into record lines; keeps per command what it wrote of the history. */
export class RecordEncoder {
  private readonly written = new BigMap<string, Written>();

  /** Bytes of bookkeeping it holds, roughly: commands it tracks. */
  get tracked(): number {
    return this.written.size;
  }

  /** Forgets every command: the next record of each is written in full. */
  reset(): void {
    this.written.clear();
  }

  /** The record line (with its newline) for `key` now having `value` (undefined: removed). */
  encode(key: string, value: unknown): string {
    if (value === undefined) {
      if (key.startsWith('c:')) this.written.delete(key.slice(2));
      return `${JSON.stringify(['r', key])}\n`;
    }
    if (key.startsWith('c:') && isCommandJSON(value) && `c:${value.id}` === key) {
      return `${JSON.stringify(this.command(value))}\n`;
    }
    if (key.startsWith('c:')) this.written.delete(key.slice(2));
    return `${JSON.stringify(['s', key, value])}\n`;
  }

  private command(c: CommandJSON): unknown[] {
    const h = c.history;
    const w = this.written.get(c.id);
    let added: HistoryJSON[] | null = null;
    if (w !== undefined) {
      if (h.length < HISTORY_LIMIT || w.length < h.length) {
        // Not trimmed since: the entries after the ones written are new.
        if (h.length >= w.length && entryKey(h[w.length - 1]) === w.last) added = h.slice(w.length);
      } else {
        // Trimmed: the new entries follow the last one written (searched from the end).
        for (let i = h.length - 1; i >= 0; i--) {
          if (entryKey(h[i]) === w.last) {
            added = h.slice(i + 1);
            break;
          }
        }
      }
    }
    this.written.set(c.id, { length: h.length, last: entryKey(h.at(-1)) });
    if (added === null) {
      return [
        'n',
        c.id,
        c.assetId,
        c.type,
        c.valueKw,
        msOf(c.scheduledAt),
        ms(c.validUntil),
        c.status,
        c.priority,
        c.attempts,
        c.maxRetries,
        c.timeoutSeconds,
        c.scheduleId,
        c.source,
        c.reapplyOf ?? null,
        c.askedKw ?? null,
        c.limitedBy ?? null,
        c.lastError,
        c.holdReason,
        ms(c.nextAttemptAt),
        ms(c.deadline),
        msOf(c.createdAt),
        h.map(historyOut),
      ];
    }
    return [
      'd',
      c.id,
      c.status,
      c.attempts,
      c.lastError,
      c.holdReason,
      ms(c.nextAttemptAt),
      ms(c.deadline),
      ms(c.validUntil),
      c.valueKw,
      c.type,
      c.askedKw ?? null,
      c.limitedBy ?? null,
      added.map(historyOut),
    ];
  }
}

function isCommandJSON(v: unknown): v is CommandJSON {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const c = v as Record<string, unknown>;
  for (const k in c) if (!COMMAND_FIELDS.has(k)) return false;
  return (
    typeof c.id === 'string' &&
    typeof c.scheduledAt === 'string' &&
    typeof c.createdAt === 'string' &&
    Array.isArray(c.history)
  );
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string`);
  return v;
};
const strOrNull = (v: unknown, what: string): string | null => (v === null ? null : str(v, what));
const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${what} must be a number`);
  return v;
};

/** Parses one record line (without its newline). Throws a TypeError saying what is wrong. */
export function decodeRecord(line: string): DecodedRecord {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch (err) {
    throw new TypeError(`not valid JSON (${(err as Error).message})`);
  }
  return readRecord(r);
}

/** `decodeRecord` of a line already parsed (a long one, parsed in slices). */
export function readRecord(r: unknown): DecodedRecord {
  if (!Array.isArray(r) || typeof r[0] !== 'string') throw new TypeError('not a journal record');
  switch (r[0]) {
    case 's':
      if (r.length !== 3) throw new TypeError('a set record has 3 fields');
      return { kind: 'set', key: str(r[1], 'key'), value: r[2] };
    case 'r':
      if (r.length !== 2) throw new TypeError('a remove record has 2 fields');
      return { kind: 'remove', key: str(r[1], 'key') };
    case 'n': {
      if (r.length !== 23) throw new TypeError('a command record has 23 fields');
      const id = str(r[1], 'id');
      const c: CommandJSON = {
        id,
        assetId: str(r[2], 'assetId'),
        type: str(r[3], 'type') as CommandType,
        valueKw: num(r[4], 'valueKw'),
        scheduledAt: isoReq(r[5], 'scheduledAt'),
        validUntil: iso(r[6], 'validUntil'),
        status: str(r[7], 'status') as CommandStatus,
        priority: num(r[8], 'priority'),
        attempts: num(r[9], 'attempts'),
        maxRetries: num(r[10], 'maxRetries'),
        timeoutSeconds: num(r[11], 'timeoutSeconds'),
        scheduleId: strOrNull(r[12], 'scheduleId'),
        source: r[13] as CommandSource | null,
        lastError: strOrNull(r[17], 'lastError'),
        holdReason: strOrNull(r[18], 'holdReason'),
        nextAttemptAt: iso(r[19], 'nextAttemptAt'),
        deadline: iso(r[20], 'deadline'),
        createdAt: isoReq(r[21], 'createdAt'),
        history: historyIn(r[22]),
      };
      // Optional fields, in the order commandToJSON puts them.
      const ordered: CommandJSON = { ...c };
      if (r[14] !== null) ordered.reapplyOf = str(r[14], 'reapplyOf');
      if (r[15] !== null) ordered.askedKw = num(r[15], 'askedKw');
      if (r[16] !== null) ordered.limitedBy = str(r[16], 'limitedBy');
      return { kind: 'set', key: `c:${id}`, value: ordered };
    }
    case 'd': {
      if (r.length !== 14) throw new TypeError('a command delta has 14 fields');
      const id = str(r[1], 'id');
      const delta: CommandDelta = {
        id,
        status: str(r[2], 'status') as CommandStatus,
        attempts: num(r[3], 'attempts'),
        lastError: strOrNull(r[4], 'lastError'),
        holdReason: strOrNull(r[5], 'holdReason'),
        nextAttemptAt: iso(r[6], 'nextAttemptAt'),
        deadline: iso(r[7], 'deadline'),
        validUntil: iso(r[8], 'validUntil'),
        valueKw: num(r[9], 'valueKw'),
        type: str(r[10], 'type') as CommandType,
        added: historyIn(r[13]),
      };
      if (r[11] !== null) delta.askedKw = num(r[11], 'askedKw');
      if (r[12] !== null) delta.limitedBy = str(r[12], 'limitedBy');
      return { kind: 'delta', key: `c:${id}`, delta };
    }
    default:
      throw new TypeError(`unknown record kind ${JSON.stringify(r[0])}`);
  }
}

/** The command `base` with `delta` applied (a new object; the history trimmed as live). */
export function applyDelta(base: CommandJSON, delta: CommandDelta): CommandJSON {
  const out: CommandJSON = {
    ...base,
    type: delta.type,
    valueKw: delta.valueKw,
    validUntil: delta.validUntil,
    status: delta.status,
    attempts: delta.attempts,
    lastError: delta.lastError,
    holdReason: delta.holdReason,
    nextAttemptAt: delta.nextAttemptAt,
    deadline: delta.deadline,
    history: [...base.history, ...delta.added],
  };
  delete out.askedKw;
  delete out.limitedBy;
  // Key order as commandToJSON gives it (reapplyOf, askedKw, limitedBy last).
  const reapplyOf = out.reapplyOf;
  delete out.reapplyOf;
  if (reapplyOf !== undefined) out.reapplyOf = reapplyOf;
  if (delta.askedKw !== undefined) out.askedKw = delta.askedKw;
  if (delta.limitedBy !== undefined) out.limitedBy = delta.limitedBy;
  if (out.history.length > HISTORY_LIMIT) out.history.splice(0, out.history.length - HISTORY_LIMIT);
  return out;
}
