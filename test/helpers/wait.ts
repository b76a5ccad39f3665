/**
 * Waiting in tests, one way: `until(cond, what)` polls a condition a bounded number of times
 * (so a test that waits for something that never comes fails with `what`, not by hanging),
 * `sleep(ms)` lets real sockets and timers run. The bound is a count of polls, not a deadline:
 * a loaded machine makes a test slower, not red.
 */

/** Resolves after `ms` (0 when negative). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

export interface Patience {
  /** How many polls at the most (default 500). */
  rounds?: number;
  /** Instead of rounds: polls for about this many ms (rounds = ms / everyMs). */
  ms?: number;
  /** The pause between polls (default 10 ms). */
  everyMs?: number;
  /** More to say when it never happens (a log tail, what was seen). */
  detail?: () => string;
}

/**
 * Waits until `cond` holds, polling it every `everyMs` (10 ms) at most `rounds` (500) times;
 * a number as `patience` is `rounds`. Throws `never happened: <what>` when it does not.
 */
export async function until(
  cond: () => boolean,
  what: string,
  patience: number | Patience = {},
): Promise<void> {
  const p = typeof patience === 'number' ? { rounds: patience } : patience;
  const everyMs = p.everyMs ?? 10;
  const rounds = p.rounds ?? (p.ms !== undefined ? Math.ceil(p.ms / everyMs) : 500);
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await sleep(everyMs);
  }
  if (cond()) return;
  const more = p.detail?.() ?? '';
  throw new Error(
    `never happened (${rounds} polls every ${everyMs} ms): ${what}${more ? `\n${more}` : ''}`,
  );
}

/**
 * Counts the turns of the event loop (a chain of `setImmediate`) from now until `stop()`: for
 * a test that some work let the loop turn, or that notes in which turn something happened.
 */
export function countTurns(): { readonly turns: number; stop(): void } {
  let turns = 0;
  let on = true;
  const tick = () => {
    turns++;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get turns() {
      return turns;
    },
    stop() {
      on = false;
    },
  };
}

/**
 * An `until` with other defaults, for a file whose waits are all longer (or quicker):
 * `const until = untilWith({ ms: 20_000 })`. A number given to it is still `rounds`.
 */
export function untilWith(
  defaults: Patience,
): (cond: () => boolean, what: string, patience?: number | Patience) => Promise<void> {
  return (cond, what, patience = {}) =>
    until(cond, what, {
      ...defaults,
      ...(typeof patience === 'number' ? { rounds: patience } : patience),
    });
}
