/**
 * `DispatchEngine.runAttempt`'s paths (src/engine-dispatch.ts): an answer given at once (no
 * async frame: applied one microtask later), an answer as a promise (awaited), a thrown
 * error (applied at once), a rejection, several attempts in one turn, and errors. Each is
 * applied as the others are: the same statuses, history, events and their order.
 */
import should from 'should';
import { type Adapter, AdapterError, type AdapterResult } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, commandToJSON } from '../../src/commands';
import { DispatchEngine } from '../../src/engine';
import { type AnyBusEvent, EventBus } from '../../src/event-bus';

const T0 = Date.parse('2025-06-02T08:00:00Z');

type Answer = AdapterResult | undefined | Promise<AdapterResult | undefined>;

function setup() {
  const clock = new ManualClock(T0);
  const bus = new EventBus({ clock });
  const engine = new DispatchEngine({
    eventBus: bus,
    clock,
    config: { maxRetries: 1, retryBaseSeconds: 5 },
  });
  const events: string[] = [];
  bus.subscribe('*', (e: AnyBusEvent) => {
    const p = e.payload as { id?: string };
    events.push(`${e.type} ${p.id ?? ''}`);
  });
  const submit = (n: number): Command[] =>
    engine.submit(
      Array.from({ length: n }, (_, i) => ({
        assetId: `a${i}`,
        type: 'SET_CHARGE_RATE',
        valueKw: i + 1,
        validUntil: T0 + 3600_000,
      })),
    );
  return { clock, engine, events, submit };
}

const adapterOf = (answer: (cmd: Command) => Answer): Adapter => ({
  protocol: 'test',
  dispatch: answer,
});

/** The statuses, the JSON of each command and the events of a handout through `adapter`. */
async function handOut(answers: ((cmd: Command) => Answer)[]) {
  const { engine, events, submit } = setup();
  const cmds = submit(answers.length);
  const results = cmds.map((c, i) => {
    engine.markDispatched(c);
    return engine.runAttempt(c, adapterOf(answers[i] as (cmd: Command) => Answer));
  });
  const afterCall = cmds.map((c) => c.status);
  const settled = await Promise.all(results);
  // Ids are random: each command as its index.
  const index = (text: string) => cmds.reduce((t, c, i) => t.replaceAll(c.id, `#${i}`), text);
  return {
    afterCall,
    settled,
    json: cmds.map((c) => index(JSON.stringify(commandToJSON(c)))),
    events: events.map(index),
    cmds,
  };
}

describe('DispatchEngine.runAttempt', () => {
  it('an answer given at once is applied as the same answer given as a promise', async () => {
    const answers = [
      () => ({ success: true }),
      () => ({ success: true, completed: false }),
      () => ({ success: false, error: 'busy' }),
      () => ({ success: false, error: 'Rejected', final: true }),
      () => undefined,
    ];
    const atOnce = await handOut(answers);
    const later = await handOut(answers.map((a) => () => Promise.resolve(a())));
    should(atOnce.settled).eql(later.settled);
    should(atOnce.json).eql(later.json);
    should(atOnce.events).eql(later.events);
    // Neither is applied before runAttempt returns.
    should(atOnce.afterCall).eql(atOnce.cmds.map(() => CommandStatus.DISPATCHED));
    should(later.afterCall).eql(atOnce.afterCall);
    should(atOnce.cmds.map((c) => c.status)).eql([
      CommandStatus.COMPLETED,
      CommandStatus.ACKNOWLEDGED,
      CommandStatus.PENDING, // a retry
      CommandStatus.FAILED,
      CommandStatus.DISPATCHED, // answers later
    ]);
    should(atOnce.settled[3]).eql({ success: false, error: 'Rejected', final: true });
  });

  it('several attempts in one turn: each promise resolves to its own answer once it is applied', async () => {
    const { engine, submit } = setup();
    const cmds = submit(3);
    const answers: AdapterResult[] = [
      { success: true },
      { success: false, error: 'no', final: true },
      { success: true, completed: false },
    ];
    const seen: [string, CommandStatus][] = [];
    const all = cmds.map((c, i) => {
      engine.markDispatched(c);
      return engine
        .runAttempt(
          c,
          adapterOf(() => answers[i]),
        )
        .then((r) => {
          seen.push([c.id, c.status]);
          return r;
        });
    });
    should(await Promise.all(all)).eql(answers);
    should(seen).eql([
      [cmds[0]?.id, CommandStatus.COMPLETED],
      [cmds[1]?.id, CommandStatus.FAILED],
      [cmds[2]?.id, CommandStatus.ACKNOWLEDGED],
    ]);
    // The queue of answers is empty again: a later attempt gets its own answer.
    const [d] = submit(1);
    engine.markDispatched(d as Command);
    should(
      await engine.runAttempt(
        d as Command,
        adapterOf(() => ({ success: true })),
      ),
    ).eql({
      success: true,
    });
    should(d?.status).equal(CommandStatus.COMPLETED);
  });

  it('a thrown error is applied at once; a rejected promise once it rejects; both the same', async () => {
    const { engine, submit } = setup();
    const [a, b, c] = submit(3) as [Command, Command, Command];
    engine.markDispatched(a);
    const thrown = engine.runAttempt(
      a,
      adapterOf(() => {
        throw new Error('socket closed');
      }),
    );
    should(a.status).equal(CommandStatus.PENDING); // retried, before the promise settles
    engine.markDispatched(b);
    const rejected = engine.runAttempt(
      b,
      adapterOf(() => Promise.reject(new Error('socket closed'))),
    );
    should(b.status).equal(CommandStatus.DISPATCHED);
    should(await thrown).eql({ success: false, error: 'socket closed' });
    should(await rejected).eql({ success: false, error: 'socket closed' });
    should(b.status).equal(CommandStatus.PENDING);
    should(commandToJSON(b).history.map((h) => [h.status, h.reason])).eql(
      commandToJSON(a).history.map((h) => [h.status, h.reason]),
    );
    should(b.nextAttemptAt?.getTime()).equal(a.nextAttemptAt?.getTime());
    // A final error, thrown: FAILED at once.
    engine.markDispatched(c);
    const refused = engine.runAttempt(
      c,
      adapterOf(() => {
        throw new AdapterError('NotSupported', { final: true });
      }),
    );
    should(c.status).equal(CommandStatus.FAILED);
    should(await refused).eql({ success: false, error: 'NotSupported', final: true });
  });

  it('an answer to an attempt that ended meanwhile is not applied; its promise still resolves to it', async () => {
    const { engine, submit } = setup();
    const [a] = submit(1) as [Command];
    engine.markDispatched(a);
    const p = engine.runAttempt(
      a,
      adapterOf(() => ({ success: true })),
    );
    engine.cancel(a, 'by hand');
    should(await p).eql({ success: true });
    should(a.status).equal(CommandStatus.CANCELLED);
    should(a.history.map((h) => h.status)).eql([
      CommandStatus.PENDING,
      CommandStatus.DISPATCHED,
      CommandStatus.CANCELLED,
    ]);
  });

  it('never throws: an unknown command, or a listener that throws, is the promise rejection', async () => {
    const { engine, submit } = setup();
    const unknown = engine.runAttempt(
      'nope',
      adapterOf(() => ({ success: true })),
    );
    const err = await unknown.then(
      () => null,
      (e: unknown) => e,
    );
    should(err).be.instanceOf(RangeError);
    should((err as Error).message).match(/unknown command nope/);
    const [a, b] = submit(2) as [Command, Command];
    const off = engine.onCommandChange((cmd) => {
      if (cmd === a && cmd.status === CommandStatus.COMPLETED) throw new Error('listener broke');
    });
    engine.markDispatched(a);
    engine.markDispatched(b);
    const pa = engine.runAttempt(
      a,
      adapterOf(() => ({ success: true })),
    );
    const pb = engine.runAttempt(
      b,
      adapterOf(() => ({ success: false, error: 'x', final: true })),
    );
    await should(pa).be.rejectedWith('listener broke');
    // The next answer in the same turn is still its own, and applied.
    should(await pb).eql({ success: false, error: 'x', final: true });
    should(b.status).equal(CommandStatus.FAILED);
    off();
  });

  it('the history of a handout: entries in the same ms share their time, the JSON as before', async () => {
    const { engine, clock, submit } = setup();
    const cmds = submit(2);
    clock.advance(1500);
    for (const c of cmds) engine.markDispatched(c);
    await Promise.all(
      cmds.map((c) =>
        engine.runAttempt(
          c,
          adapterOf(() => ({ success: true })),
        ),
      ),
    );
    for (const c of cmds) {
      should(commandToJSON(c).history).eql([
        { status: 'PENDING', at: '2025-06-02T08:00:00.000Z' },
        { status: 'DISPATCHED', at: '2025-06-02T08:00:01.500Z', reason: 'attempt 1 of 2' },
        { status: 'ACKNOWLEDGED', at: '2025-06-02T08:00:01.500Z' },
        { status: 'COMPLETED', at: '2025-06-02T08:00:01.500Z' },
      ]);
      should(Object.keys(c.history[2] as object)).eql(['status', 'at']);
    }
  });
});
