/**
 * Warming the dispatch path before a slot boundary (issue 17). Between slots a site is idle
 * for seconds to minutes; meanwhile V8 drops what it compiled for the handout (optimised code
 * deoptimised or discarded, bytecode flushed), so the first commands of a burst ran the path
 * cold and paid for its recompilation at the boundary. Site's prepare step calls `warm` a few
 * hundred ms ahead: a scratch site of its own (own engine, bus, clock, adapter, nothing
 * persisted, nothing shared with the real one) hands out and answers a batch of commands
 * through the same code (Site.runOnce, the engine's selection, markDispatched, runAttempt,
 * handleResponse), so that V8 has compiled it again before the real commands are due.
 */
import { ManualClock } from './clock';
import { type Command, CommandType } from './commands';
import type { Site, SiteOptions, Timers } from './site';

/** How many commands one round of a warm-up hands out. */
export const WARM_COMMANDS = 256;

/**
 * Rounds of a warm-up when the path is cold (the first of the process, or the last one
 * WARM_COLD_AFTER_MS ago or more): one round was not enough for V8 to optimise the handout
 * again before the boundary (the bench's first boundaries after a minute without one spent
 * two to three times the CPU of the later ones). Each round in its own event-loop turn.
 */
export const WARM_COLD_ROUNDS = 4;
export const WARM_COLD_AFTER_MS = 30_000;

/** How many rounds a warm-up runs, given when the last one ran (monotonic ms, or null). */
export function warmRounds(lastAt: number | null, now: number): number {
  return lastAt === null || now - lastAt >= WARM_COLD_AFTER_MS ? WARM_COLD_ROUNDS : 1;
}

/** When the last warm-up ran (performance.now(): V8's time, not a site's clock). */
let lastWarmAt: number | null = null;

const noTimers: Timers = { setTimeout: () => null, clearTimeout: () => {} };

interface Scratch {
  site: Site;
  clock: ManualClock;
  inputs: { assetId: string; type: CommandType; valueKw: number; scheduledAt: number }[];
  /** Commands handed out and answered so far. */
  answered: number;
}

let scratch: Scratch | null = null;

/**
 * Warms the handout: one round (`warmRound`), or WARM_COLD_ROUNDS when it is cold (see
 * `warmRounds`), each after the last one's answers settled and a turn of the event loop.
 * The first round is synchronous up to its handout.
 */
export async function warm(make: (options: SiteOptions) => Site): Promise<void> {
  const now = performance.now();
  const rounds = warmRounds(lastWarmAt, now);
  lastWarmAt = now;
  await warmRound(make);
  for (let i = 1; i < rounds; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    await warmRound(make);
  }
}

/**
 * Hands out and answers WARM_COMMANDS commands on a scratch site (made once with `make`,
 * which is given the options it must use). Synchronous up to the handout; the answers settle
 * in the microtasks after it.
 */
function warmRound(make: (options: SiteOptions) => Site): Promise<void> {
  if (!scratch) {
    const clock = new ManualClock(Date.UTC(2000, 0, 1));
    const site = make({
      siteId: 'warm-up',
      clock,
      timers: noTimers,
      prepareAheadMs: 0,
      config: { maxFinishedCommands: 0, commandTimeoutSeconds: 60, maxRetries: 0 },
      onError: () => {},
    });
    const adapter = {
      protocol: 'warm-up',
      dispatch: () => {
        if (scratch) scratch.answered++;
        return { success: true };
      },
    };
    const inputs: Scratch['inputs'] = [];
    for (let i = 0; i < WARM_COMMANDS; i++) {
      site.adapterRegistry.register(`w${i}`, adapter);
      inputs.push({
        assetId: `w${i}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 1,
        scheduledAt: 0,
      });
    }
    site.attachDispatcher('warm-up', {
      deliver: (cmd: Command) => {
        site.engine.runAttempt(cmd, adapter).catch(() => {});
      },
      undeliverable: () => {},
    });
    scratch = { site, clock, inputs, answered: 0 };
  }
  const { site, clock, inputs } = scratch;
  const now = clock.advance(1000);
  for (const x of inputs) x.scheduledAt = now;
  site.submit(inputs);
  return site.runOnce();
}

/** The scratch site, once a warm-up made it, and how many commands it answered (for tests). */
export function warmScratch(): { site: Site; answered: number } | null {
  return scratch ? { site: scratch.site, answered: scratch.answered } : null;
}
