// The handout at a slot boundary in slices (issue 17, 10,000 chargers), with a manual clock:
// the first slice takes HANDOUT_SLICE_MIN due commands at once (the burst), the next ones
// about HANDOUT_SLICE_MS of work each, sized from what the slice before cost per command (its
// own work and its commands' delivery, until the next slice starts); the rest follow a turn
// later each, in order, and what happened in between (a cancel, a hold, a stop) counts. The work
// a command costs is played by a sink that moves the manual clock: no wall-clock time is read.
import should from 'should';
import type { Adapter } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, CommandType } from '../../src/commands';
import { type DueCommandSink, Site } from '../../src/site';
import { HANDOUT_FIRST_MS, HANDOUT_SLICE_MIN, HANDOUT_SLICE_MS } from '../../src/site-options';
import { FakeTimers } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const AT = T0 + 60 * S;

/** A dispatcher whose delivery costs `costMs` of clock time each (the adapter's work). */
class Sink implements DueCommandSink {
  readonly delivered: Command[] = [];
  /** Called with each command delivered (an adapter's work queued, as a socket's answer). */
  onDeliver: (cmd: Command) => void = () => {};
  constructor(
    private readonly clock: ManualClock,
    private readonly costMs = 0,
  ) {}
  deliver(cmd: Command) {
    this.delivered.push(cmd);
    this.onDeliver(cmd);
    if (this.costMs > 0) this.clock.set(this.clock.now() + this.costMs);
  }
  undeliverable() {}
}

const adapter: Adapter = { protocol: 'test', dispatch: () => undefined };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A started site with `n` assets and one command each due at AT (the last `urgent` first;
 * the slot of command `shortSlot` ends 500 ms after AT).
 */
function make(n: number, costMs: number, urgent = 0, shortSlot = -1) {
  const clock = new ManualClock(T0);
  const site = new Site({ siteId: 'depot', clock, timers: new FakeTimers(clock) });
  const sink = new Sink(clock, costMs);
  site.attachDispatcher('d', sink);
  for (let i = 0; i < n; i++) site.adapterRegistry.register(`a${i}`, adapter);
  site.start();
  const commands = site.submit(
    Array.from({ length: n }, (_, i) => ({
      assetId: `a${i}`,
      type: CommandType.SET_CHARGE_RATE,
      valueKw: 1 + (i % 7),
      scheduledAt: AT,
      validUntil: i === shortSlot ? AT + 500 : AT + 900 * S,
      ...(i >= n - urgent ? { priority: 5 } : {}),
    })),
    'd',
  );
  clock.set(AT);
  return { clock, site, sink, commands };
}

describe('Site handout in slices', () => {
  it('the constants: a first slice covers the 1,000-command burst, then ~10 ms of work a turn', () => {
    should(HANDOUT_SLICE_MIN).be.aboveOrEqual(1000);
    should(HANDOUT_SLICE_MS).equal(10);
    should(HANDOUT_FIRST_MS).equal(50);
  });

  it('1,000 due in the same ms leave in one turn; then ~10 ms of work a turn, sized from what they cost, in order, with what was queued in between run first', async () => {
    const { site, sink, commands } = make(2500, 1, 500);
    const answeredAfter: number[] = [];
    // The adapter's work on the first command (queued as Node-RED queues a delivery) runs
    // before the next slice.
    sink.onDeliver = (cmd) => {
      if (cmd === sink.delivered[0]) setImmediate(() => answeredAfter.push(sink.delivered.length));
    };
    const round = site.runOnce();
    // The first slice ran at once: the burst, and no more (it took 1,000 ms of clock).
    should(sink.delivered).have.length(HANDOUT_SLICE_MIN);
    await turn();
    // 1 ms each: the next slice is 10 commands (10 ms); the answer ran before it.
    should(sink.delivered).have.length(HANDOUT_SLICE_MIN + 10);
    should(answeredAfter).eql([HANDOUT_SLICE_MIN]);
    await turn();
    should(sink.delivered).have.length(HANDOUT_SLICE_MIN + 20);
    await round;
    should(sink.delivered).have.length(2500);
    // In the handout's order: the urgent ones first, then the rest as submitted.
    const order = [...commands.slice(2000), ...commands.slice(0, 2000)].map((c) => c.id);
    should(sink.delivered.map((c) => c.id)).eql(order);
    for (const c of sink.delivered) should(c.status).equal(CommandStatus.DISPATCHED);
    // The next boundary: 1,000 at 1 ms each would hold the loop 1 s; the first slice is
    // what fits in 50 ms.
    const next = site.submit(
      Array.from({ length: 200 }, (_, i) => ({
        assetId: `a${i}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 2,
        scheduledAt: AT + 60 * S,
        validUntil: AT + 900 * S,
      })),
      'd',
    );
    const clock = (site as unknown as { clock: ManualClock }).clock;
    clock.set(AT + 60 * S);
    const again = site.runOnce();
    should(sink.delivered).have.length(2500 + HANDOUT_FIRST_MS);
    await again;
    should(sink.delivered.slice(2500).map((c) => c.id)).eql(next.map((c) => c.id));
    await site.stop();
  });

  it('cheap commands: 1,000 at once, then the rest in slices as large as ~10 ms of them', async () => {
    // Under a clock ms: counts as 1 ms for the 1,000, so the next slice may be 10,000.
    const cheap = make(2500, 0);
    const round = cheap.site.runOnce();
    should(cheap.sink.delivered).have.length(1000);
    await turn();
    should(cheap.sink.delivered).have.length(2500);
    await round;
    await cheap.site.stop();
    // 1/128 ms each (exact in binary): the next slice is 10 ms of them, 1,280.
    const quick = make(3000, 1 / 128);
    const r2 = quick.site.runOnce();
    should(quick.sink.delivered).have.length(1000);
    await turn();
    should(quick.sink.delivered).have.length(1000 + HANDOUT_SLICE_MS * 128);
    await r2;
    should(quick.sink.delivered).have.length(3000);
    await quick.site.stop();
  });

  it('between slices a cancelled command stays, one whose slot ended is cancelled (expired), a held asset holds its command, and the others leave in order', async () => {
    const { site, sink, commands } = make(1500, 1, 0, 1300);
    const m = site.ensureStateMachine('a1200', 'ev-charger');
    const round = site.runOnce();
    should(sink.delivered).have.length(1000);
    // Meanwhile: one cancelled, one held; the slot of a1300 ended (the clock is at AT + 1 s).
    site.engine.cancel(commands[1100] as Command, 'cancelled by hand');
    m.trigger('fault');
    await round;
    const ids = new Set(sink.delivered.map((c) => c.id));
    should(sink.delivered).have.length(1497);
    should(ids.has((commands[1100] as Command).id)).be.false();
    should((commands[1100] as Command).status).equal(CommandStatus.CANCELLED);
    should(ids.has((commands[1300] as Command).id)).be.false();
    should((commands[1300] as Command).status).equal(CommandStatus.CANCELLED);
    should((commands[1300] as Command).lastError).match(/^expired: its slot ended/);
    const held = commands[1200] as Command;
    should(ids.has(held.id)).be.false();
    should(held.status).equal(CommandStatus.PENDING);
    should(held.holdReason).match(/a1200 is FAULTED/);
    // The rest in the order they were submitted.
    const expected = commands.filter((_, i) => i !== 1100 && i !== 1200 && i !== 1300);
    should(sink.delivered.map((c) => c.id)).eql(expected.map((c) => c.id));
    await site.stop();
  });

  it('a round asked for during a handout runs after it (nothing twice); a stop between slices ends it', async () => {
    const a = make(2500, 1);
    const first = a.site.runOnce();
    const second = a.site.runOnce();
    await Promise.all([first, second]);
    should(a.sink.delivered).have.length(2500);
    should(new Set(a.sink.delivered.map((c) => c.id)).size).equal(2500);
    await a.site.stop();

    const b = make(2500, 1);
    const round = b.site.runOnce();
    should(b.sink.delivered).have.length(1000);
    await b.site.stop();
    await round;
    should(b.sink.delivered).have.length(1000);
    should(b.commands.filter((c) => c.status === CommandStatus.PENDING)).have.length(1500);
  });
});
