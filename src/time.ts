/**
 * Timestamps as optimisers write them: ISO 8601 strings with or without an offset, and
 * epoch numbers (pandas writes milliseconds by default; seconds, microseconds and
 * nanoseconds are recognised by magnitude).
 */

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;
const NUMERIC_RE = /^[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** Times before this are taken for row numbers rather than times (a RangeIndex). */
export const EARLIEST_PLAUSIBLE_MS = Date.UTC(2000, 0, 1);

/**
 * The last instant a schedule or a command may name: 9999-12-31T23:59:59.999Z, the end of
 * ISO 8601's four-digit years. Epoch numbers can say far more (1e30 ns), and a Date cannot
 * hold that: a time past this is refused, so that every time accepted is one that JSON
 * carries as an ISO string and a restart reads back.
 */
export const LATEST_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const dtfCache = new Map<string, Intl.DateTimeFormat>();

/** Whether `timeZone` is an IANA zone that this Node.js knows. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = dtfCache.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    dtfCache.set(timeZone, f);
  }
  return f;
}

/** Offset of `timeZone` from UTC at the instant `utcMs`, in milliseconds. */
export function zoneOffsetMs(timeZone: string, utcMs: number): number {
  if (timeZone === 'UTC' || timeZone === 'Etc/UTC') return 0;
  const parts = formatter(timeZone).formatToParts(new Date(utcMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const asUtc = Date.UTC(
    get('year'),
    get('month') - 1,
    get('day'),
    get('hour'),
    get('minute'),
    get('second'),
  );
  return asUtc - (utcMs - (((utcMs % 1000) + 1000) % 1000));
}

/**
 * The instant of a wall-clock time in `timeZone`. In a DST gap the time is read with the
 * offset from before the gap (02:30 on a spring-forward day is 03:30); in the repeated hour
 * of a fall-back day the first (summer-time) occurrence is taken.
 */
export function wallTimeToUtc(wallAsUtcMs: number, timeZone: string): number {
  if (timeZone === 'UTC' || timeZone === 'Etc/UTC') return wallAsUtcMs;
  const o1 = zoneOffsetMs(timeZone, wallAsUtcMs - 12 * 3600_000);
  const o2 = zoneOffsetMs(timeZone, wallAsUtcMs + 12 * 3600_000);
  // Try the earlier offset first, then the later: the first that reproduces the wall time.
  for (const o of o1 >= o2 ? [o1, o2] : [o2, o1]) {
    const t = wallAsUtcMs - o;
    if (zoneOffsetMs(timeZone, t) === o) return t;
  }
  return wallAsUtcMs - o1;
}

/** Epoch number in s, ms, us or ns (by magnitude) -> epoch milliseconds. */
export function epochToMs(v: number, unit?: EpochUnit): number {
  const u = unit ?? guessEpochUnit(v);
  switch (u) {
    case 's':
      return v * 1000;
    case 'ms':
      return v;
    case 'us':
      return v / 1000;
    case 'ns':
      return v / 1e6;
  }
}

export type EpochUnit = 's' | 'ms' | 'us' | 'ns';

export function guessEpochUnit(v: number): EpochUnit {
  const a = Math.abs(v);
  if (a < 1e11) return 's';
  if (a < 1e14) return 'ms';
  if (a < 1e17) return 'us';
  return 'ns';
}

export interface TimeParseOptions {
  timeZone: string;
  epochUnit?: EpochUnit;
}

/**
 * Parses one timestamp to epoch milliseconds, or returns an error text saying why not.
 * Naive ISO strings (no offset, no Z) are wall-clock times in `timeZone`.
 */
export function parseTimestamp(value: unknown, options: TimeParseOptions): number | string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return `${value} is not a time`;
    return epochToMs(value, options.epochUnit);
  }
  if (typeof value !== 'string') {
    return `${value === null ? 'null' : typeof value} is not a time (expected an ISO 8601 string or epoch number)`;
  }
  const s = value.trim();
  if (NUMERIC_RE.test(s)) return epochToMs(Number(s), options.epochUnit);
  const m = ISO_RE.exec(s);
  if (!m) return `${JSON.stringify(value)} is not an ISO 8601 time`;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return `${JSON.stringify(value)} has a field out of range`;
  }
  const ms = frac === '' ? 0 : Math.round(Number(`0.${frac}`) * 1000);
  const wall = Date.UTC(Number(y), month - 1, day, hour, minute, second, ms);
  // Date.UTC rolls 31 February over to March: refuse that.
  if (new Date(wall).getUTCDate() !== day) return `${JSON.stringify(value)} is not a calendar date`;
  if (zone === undefined) return wallTimeToUtc(wall, options.timeZone);
  if (zone === 'Z' || zone === 'z') return wall;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  const offH = Number(digits.slice(0, 2));
  const offM = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
  if (offH > 23 || offM > 59) return `${JSON.stringify(value)} has an invalid offset`;
  return wall - sign * (offH * 3600_000 + offM * 60_000);
}
