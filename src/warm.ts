/**
 * Warming the dispatch path before a slot boundary (issue 17). Between slots a site is idle
 * for seconds to minutes; meanwhile V8 drops what it compiled for the handout (optimised code
 * deoptimised or discarded, bytecode flushed), so the first commands of a burst ran the path
 * cold and paid for its recompilation at the boundary. Site's prepare step calls `warm` a few
 * hundred ms ahead: a scratch site of its own (own engine, bus, adapters, on the system clock,
 * nothing persisted, nothing shared with the real one; with limits when the real site has them)
 * prepares, hands out and answers a batch of commands through the same code (Site.prepare,
 * the limiter's allocation decided ahead and used, Site.runOnce, the engine's selection,
 * markDispatched, runAttempt, handleResponse), so that V8 has compiled it again before the
 * real commands are due.
 *
 * One warm-up round is not enough the first time: V8 optimises a function (TurboFan) only after
 * it has run a good while (`--trace-opt`: the handout's functions were marked after 2,600
 * commands through them, handOut and getPendingCommands last), so a process's first
 * boundaries ran the handout unoptimised, its optimisation compiled during the burst. A site
 * that prepares its boundaries on the system clock therefore heats the scratch site up
 * (`heatUp`) as soon as it has a due time ahead: rounds of WARM_COMMANDS, one a turn, until it
 * has handed out WARM_HOT_COMMANDS; afterwards the one round of each prepare step keeps it so.
 *
 * Then `makeRoom`: during idle seconds V8 also shrinks its young generation (to 1-4 MB), and a
 * handout that allocates more than is left of it before the next scavenge pays for that
 * scavenge at the boundary, in the middle of its commands (several ms, all they allocated
 * being alive then); so does one that crosses the 80 % at which V8 posts a scavenge as a task
 * (run at the loop's next turn, between the handout's slices). When the handout will not fit
 * before either, the scavenge is brought forward to the prepare step by allocating what is
 * left, as garbage.
 */
import { getHeapSpaceStatistics } from 'node:v8';
import type { Adapter } from './adapters/registry';
import { type Clock, systemClock } from './clock';
import { type Command, CommandType } from './commands';
import type { Site, SiteOptions, Timers } from './site';

/** How many commands one warm-up hands out. */
export const WARM_COMMANDS = 256;

/**
 * How many commands a scratch site hands out in all before the handout counts as optimised
 * (`heatUp`): 16 rounds. With `--trace-opt`, the last of the handout's functions (handOut,
 * getPendingCommands) were marked for optimisation after 10 rounds (node 20, V8 11.3).
 */
export const WARM_HOT_COMMANDS = 4096;

/** A heat-up round is not started closer than this to the due time it serves (ms). */
export const HEAT_MARGIN_MS = 60;

const noTimers: Timers = { setTimeout: () => null, clearTimeout: () => {} };

interface Scratch {
  site: Site;
  inputs: {
    assetId: string;
    type: CommandType;
    valueKw: number;
    scheduledAt: number;
    validUntil: number | null;
  }[];
  /** Commands handed out and answered so far. */
  answered: number;
}

/** The scratch sites: without limits, and with (made at their first warm-up). */
const scratches: { plain: Scratch | null; limits: Scratch | null } = { plain: null, limits: null };
/** The heat-ups under way (`heatUp`), per scratch site. */
const heating: { plain: Promise<void> | null; limits: Promise<void> | null } = {
  plain: null,
  limits: null,
};
/** A turn of the event loop. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

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
 * `make`, which is given the options it must use; with limits when `withLimits`). The
 * prepare step now, the handout in the next turn; the answers settle in the microtasks after
 * it.
 *
 * What the handout meets is made like what it meets on a real site, so that the code V8
 * optimises here is not thrown away there (`--trace-deopt`: "wrong map", "wrong call target",
 * "insufficient type feedback" at a real site's first boundary): the system clock (a
 * ManualClock is another kind of object), two sinks and two adapters (a real one is then one
 * more, not the one the code was specialised for), commands with and without an owner and the
 * end of their slot, a command due later waiting in the due heap, as a real site's next slots
 * do (cancelled after the round), and a run with nothing due.
 */
export function warm(make: (options: SiteOptions) => Site, withLimits = false): Promise<void> {
  if (warming) return Promise.resolve();
  const key = withLimits ? 'limits' : 'plain';
  let scratch = scratches[key];
  if (!scratch) {
    const site = make({
      siteId: 'warm-up',
      clock: systemClock,
      timers: noTimers,
      prepareAheadMs: 0,
      config: { maxFinishedCommands: 0, commandTimeoutSeconds: 60, maxRetries: 0 },
      onError: () => {},
      ...(withLimits ? { limits: scratchLimits() } : {}),
    });
    const count = () => {
      const s = scratches[key];
      if (s) s.answered++;
    };
    const adapters = [
      {
        protocol: 'warm-up',
        dispatch: () => {
          count();
          return { success: true };
        },
      },
      {
        protocol: 'warm-up',
        dispatch: (_cmd: Command) => {
          count();
          return { success: true, completed: true };
        },
      },
    ] as const;
    const inputs: Scratch['inputs'] = [];
    for (let i = 0; i < WARM_COMMANDS; i++) {
      site.adapterRegistry.register(`w${i}`, adapters[i % 2] as Adapter);
      inputs.push({
        assetId: `w${i}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 1.5,
        scheduledAt: 0,
        validUntil: null,
      });
    }
    // Not steered by the scratch's limits: the command due later waits on it.
    site.adapterRegistry.register('w-next', adapters[0]);
    site.attachDispatcher('warm-up', {
      deliver: (cmd: Command) => {
        site.engine.runAttempt(cmd, adapters[0]).catch(() => {});
      },
      undeliverable: () => {},
    });
    site.attachDispatcher('warm-up-2', {
      deliver(cmd: Command) {
        site.engine.runAttempt(cmd, adapters[1]).catch(() => {});
      },
      undeliverable() {},
    });
    scratch = { site, inputs, answered: 0 };
    scratches[key] = scratch;
  }
  const { site, inputs } = scratch;
  const now = systemClock.now();
  const even: Scratch['inputs'] = [];
  const odd: Scratch['inputs'] = [];
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i] as Scratch['inputs'][number];
    x.scheduledAt = now;
    // A new value each time (the limiter has work), in kW with decimals as a schedule's; half
    // with the end of their slot, as real commands have or not: the commands' fields hold
    // what the real ones hold before the code is optimised for them.
    x.valueKw = 1.5 + ((Math.floor(now / 1000) + i) % 8);
    x.validUntil = i % 2 === 0 ? now + 60_000 : null;
    (i % 2 === 0 ? even : odd).push(x);
  }
  site.submit(even);
  site.submit(odd, 'warm-up-2');
  const [next] = site.submit({
    assetId: 'w-next',
    type: CommandType.SET_CHARGE_RATE,
    valueKw: 1,
    scheduledAt: now + 3_600_000,
  });
  site.limiter?.forgetPublished(); // its LIMITS_CHANGED published at its handout, as a real one
  warming = true;
  try {
    site.prepare(now); // as the real site's prepare step does, then its handout at `now`
  } finally {
    warming = false;
  }
  // The handout in a turn of its own, as on a real site (the prepare step ahead of it; with
  // limits each is up to a few tens of ms while the code is cold). Then a run with nothing
  // due, as a real site's runs between boundaries (timeouts, the limiter's paced work): the
  // handout's code has seen an empty selection too.
  return nextTurn()
    .then(() => site.runOnce())
    .then(() => {
      if (next) site.engine.cancel(next);
      return site.runOnce();
    });
}

/** Whether the scratch site (with limits or without) has handed out WARM_HOT_COMMANDS. */
export function warmedUp(withLimits = false): boolean {
  const scratch = scratches[withLimits ? 'limits' : 'plain'];
  return scratch !== null && scratch.answered >= WARM_HOT_COMMANDS;
}

/**
 * Warm-up rounds (`warm`), one a turn, until the scratch site has handed out
 * WARM_HOT_COMMANDS, or until `clock` reads less than HEAT_MARGIN_MS before `dueAt` (the
 * boundary it serves: the rest is for a later one). At most one heat-up a scratch site at a
 * time: one under way is returned as it is. Resolves when it stops; nothing when hot already.
 */
export function heatUp(
  make: (options: SiteOptions) => Site,
  withLimits: boolean,
  clock: Clock,
  dueAt: number,
): Promise<void> {
  const key = withLimits ? 'limits' : 'plain';
  const under = heating[key];
  if (under) return under;
  if (warmedUp(withLimits)) return Promise.resolve();
  const run = (async () => {
    try {
      // Bounded: a round hands out WARM_COMMANDS, or is skipped when one is under way.
      for (let n = 0; n < WARM_HOT_COMMANDS / WARM_COMMANDS; n++) {
        if (warmedUp(withLimits) || clock.now() > dueAt - HEAT_MARGIN_MS) return;
        await nextTurn();
        await warm(make, withLimits);
      }
    } finally {
      heating[key] = null;
    }
  })();
  heating[key] = run;
  return run;
}

/** The heat-up under way for that scratch site, or null. */
export function heatingUp(withLimits = false): Promise<void> | null {
  return heating[withLimits ? 'limits' : 'plain'];
}

/**
 * What a handout allocates in V8's young generation per command at the boundary, bytes,
 * rounded up (bench/burst.bench.ts: 0.9-1.0 KB a command at the median, up to ~1.3 KB, from
 * 30 ms before the boundary to the last command's dispatch, the bench's sink included;
 * ~0.6 KB when the code is warm; the answers come after).
 */
export const HANDOUT_BYTES = 1536;

/**
 * The share of the young generation past which V8 posts a scavenge as a task (its
 * `--scavenge-task-trigger`, 80 %), run at the event loop's next turn: a handout that crosses
 * it has that scavenge in the middle of its slices, even though it would fit in what is left.
 */
export const SCAVENGE_TASK_TRIGGER = 0.8;

/** The last piece `makeRoom` allocated: kept, so that no compiler drops the allocation. */
let piece: unknown = null;

/**
 * Makes room in V8's young generation for a handout of `commands` (see the opening comment):
 * when less is left of it before its next scavenge, or before SCAVENGE_TASK_TRIGGER of it is
 * used, than the handout will allocate (`HANDOUT_BYTES` a command), what is left is allocated
 * now, in pieces of 1 KB that nothing keeps, so that the scavenge comes now and the handout
 * starts with the room emptied. Returns the bytes allocated (0: there was room).
 */
export function makeRoom(commands: number): number {
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  if (!young) return 0;
  const left = young.space_available_size;
  const capacity = young.space_used_size + left;
  const beforeTask = left - (1 - SCAVENGE_TASK_TRIGGER) * capacity;
  if (commands <= 0 || beforeTask >= commands * HANDOUT_BYTES) return 0;
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
