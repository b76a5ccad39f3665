/**
 * Warming the dispatch path before a slot boundary (issue 17). Between slots a site is idle
 * for seconds to minutes; meanwhile V8 drops what it compiled for the handout (optimised code
 * deoptimised or discarded, bytecode flushed), so the first commands of a burst ran the path
 * cold and paid for its recompilation at the boundary. Site's prepare step calls `warm` a few
 * hundred ms ahead: a scratch site of its own (own engine, bus, clock, adapter, nothing
 * persisted, nothing shared with the real one; with limits when the real site has them)
 * prepares, hands out and answers a batch of commands through the same code (Site.prepare,
 * the limiter's allocation decided ahead and used, Site.runOnce, the engine's selection,
 * markDispatched, runAttempt, handleResponse), so that V8 has compiled it again before the
 * real commands are due.
 *
 * Then `makeRoom`: during idle seconds V8 also shrinks its young generation (to 1-4 MB), and a
 * handout that allocates more than is left of it before the next scavenge pays for that
 * scavenge at the boundary, in the middle of its commands (several ms, all they allocated
 * being alive then). When the handout will not fit, the scavenge is brought forward to the
 * prepare step by allocating what is left, as garbage.
 */
import { getHeapSpaceStatistics } from 'node:v8';
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

/** The scratch sites: without limits, and with (made at their first warm-up). */
const scratches: { plain: Scratch | null; limits: Scratch | null } = { plain: null, limits: null };
/** A warm-up under way: the scratch site's own prepare step does not start another. */
let warming = false;

/** Whether a warm-up is under way (its scratch site's own prepare step warms nothing). */
export function warmingNow(): boolean {
  return warming;
}

/** One circuit and WARM_COMMANDS chargers on it, none ever limited (it only runs the code). */
function scratchLimits(): SiteOptions['limits'] {
  const assets = [];
  for (let i = 0; i < WARM_COMMANDS; i++)
    assets.push({ assetId: `w${i}`, kind: 'ev', circuit: 'w', ratingKw: 22, phases: 'L1L2L3' });
  return { circuits: [{ id: 'w', importKw: 1_000_000 }], assets };
}

/**
 * Prepares, hands out and answers WARM_COMMANDS commands on a scratch site (made once with
 * `make`, which is given the options it must use; with limits when `withLimits`).
 * Synchronous up to the handout; the answers settle in the microtasks after it.
 */
export function warm(make: (options: SiteOptions) => Site, withLimits = false): Promise<void> {
  if (warming) return Promise.resolve();
  const key = withLimits ? 'limits' : 'plain';
  let scratch = scratches[key];
  if (!scratch) {
    const clock = new ManualClock(Date.UTC(2000, 0, 1));
    const site = make({
      siteId: 'warm-up',
      clock,
      timers: noTimers,
      prepareAheadMs: 0,
      config: { maxFinishedCommands: 0, commandTimeoutSeconds: 60, maxRetries: 0 },
      onError: () => {},
      ...(withLimits ? { limits: scratchLimits() } : {}),
    });
    const adapter = {
      protocol: 'warm-up',
      dispatch: () => {
        const s = scratches[key];
        if (s) s.answered++;
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
    scratches[key] = scratch;
  }
  const { site, clock, inputs } = scratch;
  const now = clock.advance(1000);
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i] as Scratch['inputs'][number];
    x.scheduledAt = now;
    x.valueKw = 1 + ((now / 1000 + i) % 8); // a new value each time: the limiter has work
  }
  site.submit(inputs);
  warming = true;
  try {
    site.prepare(now); // as the real site's prepare step does, then its handout at `now`
  } finally {
    warming = false;
  }
  return site.runOnce();
}

/**
 * What a handout allocates in V8's young generation per command at the boundary, bytes,
 * rounded up (bench/burst.bench.ts: 0.9-1.0 KB a command at the median, up to ~1.3 KB, from
 * 30 ms before the boundary to the last command's dispatch, the bench's sink included;
 * ~0.6 KB when the code is warm; the answers come after).
 */
export const HANDOUT_BYTES = 1536;

/** The last piece `makeRoom` allocated: kept, so that no compiler drops the allocation. */
let piece: unknown = null;

/**
 * Makes room in V8's young generation for a handout of `commands` (see the opening comment):
 * when less is left of it before the next scavenge than the handout will allocate
 * (`HANDOUT_BYTES` a command), what is left is allocated now, in pieces of 1 KB that nothing
 * keeps, so that the scavenge comes now and the handout starts with the room emptied.
 * Returns the bytes allocated (0: there was room). At most what the handout would allocate.
 */
export function makeRoom(commands: number): number {
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  if (!young) return 0;
  const left = young.space_available_size;
  if (commands <= 0 || left >= commands * HANDOUT_BYTES) return 0;
  // A little past what is left, so that the scavenge comes within the loop.
  const bytes = left + 4096;
  for (let n = 0; n < bytes; n += 1024) piece = new Array(126); // 16 + 126 x 8 bytes
  piece = null;
  return bytes;
}

/** A scratch site, once a warm-up made it, and how many commands it answered (for tests). */
export function warmScratch(withLimits = false): { site: Site; answered: number } | null {
  const scratch = scratches[withLimits ? 'limits' : 'plain'];
  return scratch ? { site: scratch.site, answered: scratch.answered } : null;
}
