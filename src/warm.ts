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

/** How many commands one warm-up hands out. */
export const WARM_COMMANDS = 256;

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
 * Hands out and answers WARM_COMMANDS commands on a scratch site (made once with `make`,
 * which is given the options it must use). Synchronous up to the handout; the answers settle
 * in the microtasks after it.
 */
export function warm(make: (options: SiteOptions) => Site): Promise<void> {
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
