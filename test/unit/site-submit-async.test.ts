/**
 * Site.submitAsync: commands checked and made in slices, then registered in one step. It must
 * give what submit gives (result, events, journal entries, saved state), change nothing until
 * its commit (nor when an element is bad, the site stops or the signal aborts), and take
 * effect in order with the operations given to `site.inOrder`. Turns are counted
 * (setImmediate), never timed.
 */
import should from 'should';
import { CommandType, commandToJSON } from '../../src/commands';
import { journalingSite, SLOT, T0 } from '../helpers/plan-site';

/** `n` EV setpoints with given ids, four slots each for n / 4 assets, from T0. */
function commands(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    assetId: `ev${Math.floor(i / 4)}`,
    type: CommandType.SET_CHARGE_RATE,
    valueKw: (i % 11) + 1,
    scheduledAt: T0 + (i % 4) * SLOT,
    validUntil: T0 + ((i % 4) + 1) * SLOT,
  }));
}

function rig() {
  const { site, clock, journal } = journalingSite(10_000);
  const events: string[] = [];
  site.eventBus.subscribe('*', (e) => events.push(`${e.type} ${JSON.stringify(e.payload)}`));
  site.start();
  return { site, clock, journal, events };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Site.submitAsync', () => {
  it('gives what submit gives: result, events, commands, journal entries, owners, saved state', async () => {
    const sync = rig();
    const sliced = rig();
    const list = commands('c', 2000);
    const a = sync.site.submit(list, 'd1');
    const b = await sliced.site.submitAsync(list, { owner: 'd1', slicing: { sliceMs: 0 } });
    should(b.map(commandToJSON)).eql(a.map(commandToJSON));
    should(b).have.length(2000);
    await nextTurn();
    should(sliced.events).eql(sync.events);
    should(sync.events.filter((e) => e.startsWith('COMMAND_CREATED'))).have.length(2000);
    should(sliced.journal).eql(sync.journal);
    should(sliced.journal.some((j) => j.startsWith('o:c-1999 "d1"'))).be.true();
    should(sliced.site.toJSON()).eql(sync.site.toJSON());
    await sync.site.stop();
    await sliced.site.stop();
  });

  it('makes the commands over many turns and registers them in one: nothing until then', async () => {
    const { site, events } = rig();
    const stats = site.engine.stats();
    let turns = 0;
    let registered = false;
    const probe = () => {
      turns++;
      if (site.engine.stats().pending > 0) registered = true;
      if (!registered) {
        should(site.engine.stats()).eql(stats);
        should(events).eql([]);
        setImmediate(probe);
      }
    };
    setImmediate(probe);
    const done = await site.submitAsync(commands('c', 3000), { slicing: { sliceMs: 0 } });
    should(done).have.length(3000);
    should(site.engine.stats().pending).equal(3000);
    // 3,000 commands, 256 a step, a step a turn: at least 11 turns before the registration.
    should(turns).be.aboveOrEqual(11);
    await site.stop();
  });

  it('a bad element rejects with the error submit throws, naming its index; nothing changes', async () => {
    const { site, journal, events } = rig();
    const list: unknown[] = commands('c', 1000);
    list[777] = { assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 'fast' };
    let thrown: Error | null = null;
    try {
      site.submit(list as never);
    } catch (err) {
      thrown = err as Error;
    }
    should(thrown?.message).match(/\[777\]/);
    await should(site.submitAsync(list as never, { slicing: { sliceMs: 0 } })).be.rejectedWith(
      thrown?.message as string,
    );
    should(site.engine.stats().pending).equal(0);
    should(journal).eql([]);
    should(events).eql([]);
    // An id given twice in the input, and one registered with other content: the same.
    const twice = commands('t', 10);
    twice[9] = { ...(twice[9] as (typeof twice)[number]), id: 't-3' };
    await should(site.submitAsync(twice, { slicing: { sliceMs: 0 } })).be.rejectedWith(
      /command \[9\]: id t-3 appears twice in the input/,
    );
    await site.submitAsync(commands('r', 8), { slicing: { sliceMs: 0 } });
    const other = commands('r', 8);
    other[5] = { ...(other[5] as (typeof other)[number]), valueKw: 99 };
    await should(site.submitAsync(other, { slicing: { sliceMs: 0 } })).be.rejectedWith(
      /command \[5\] id r-5 is already registered with other content/,
    );
    should(site.engine.stats().pending).equal(8);
    // The same commands again: a re-delivery, skipped.
    should(await site.submitAsync(commands('r', 8), { slicing: { sliceMs: 0 } })).eql([]);
    should(site.engine.stats().pending).equal(8);
    await site.stop();
  });

  it('takes effect in order with inOrder: an operation asked for after it sees its commands', async () => {
    const { site } = rig();
    const seen: number[] = [];
    const a = site.submitAsync(commands('a', 1500), { slicing: { sliceMs: 0 } });
    const op = site.inOrder(() => seen.push(site.engine.stats().pending));
    const b = site.submitAsync(commands('b', 500), { slicing: { sliceMs: 0 } });
    await Promise.all([a, op, b]);
    should(seen).eql([1500]);
    should(site.engine.stats().pending).equal(2000);
    await site.stop();
  });

  it('an aborted signal or a stop before the registration rejects, and nothing is registered', async () => {
    const { site } = rig();
    const abort = new AbortController();
    const aborted = site.submitAsync(commands('a', 2000), {
      signal: abort.signal,
      slicing: { sliceMs: 0 },
    });
    await nextTurn();
    abort.abort();
    await should(aborted).be.rejectedWith(/aborted before they were registered; nothing changed/);
    should(site.engine.stats().pending).equal(0);
    const stopped = site.submitAsync(commands('s', 2000), { slicing: { sliceMs: 0 } });
    await nextTurn();
    await site.stop();
    await should(stopped).be.rejectedWith(/stopped while the commands were read; nothing changed/);
    should(site.engine.stats().pending).equal(0);
  });
});
