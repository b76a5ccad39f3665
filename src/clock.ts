/**
 * Time source of the core. Everything that depends on time takes a clock, so that
 * timing logic is tested by moving a clock, not by sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that only moves when told to. For tests and simulations. */
export class ManualClock implements Clock {
  private current: number;

  constructor(start: number | Date | string = 0) {
    this.current = toMillis(start, 'start');
  }

  now(): number {
    return this.current;
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance: ms must be >= 0, got ${ms}`);
    this.current += ms;
    return this.current;
  }

  set(time: number | Date | string): number {
    this.current = toMillis(time, 'time');
    return this.current;
  }
}

/** A time given as a Date, epoch milliseconds or an ISO 8601 string, as epoch milliseconds. */
export function toMillis(value: number | Date | string, what = 'time'): number {
  const ms =
    typeof value === 'number'
      ? value
      : value instanceof Date
        ? value.getTime()
        : typeof value === 'string'
          ? Date.parse(value)
          : Number.NaN;
  if (!Number.isFinite(ms)) throw new TypeError(`${what}: not a valid time: ${String(value)}`);
  return ms;
}
