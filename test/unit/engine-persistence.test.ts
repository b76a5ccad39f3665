import should from 'should';
import { type Adapter, AdapterRegistry } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus } from '../../src/commands';
import { DispatchEngine } from '../../src/engine';
import { EventBus } from '../../src/event-bus';
import type { RestoreProblem } from '../../src/restore';
import { createEvChargerStateMachine } from '../../src/state-machine';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const H = 3600_000;
const S = 1000;

function schedule(values: number[], col = 'ev_v1_kw') {
  return {
    columns: [col],
    index: values.map((_, i) => new Date(T0 + i * H).toISOString()),
    data: values.map((v) => [v]),
  };
}

function make(clock: ManualClock) {
  const registry = new AdapterRegistry();
  const sent: string[] = [];
  const silent: Adapter = {
    protocol: 'test',
    dispatch: (c) => {
      sent.push(c.id);
      return undefined;
    },
  };
  registry.register('a', silent);
  registry.register('b', silent);
  return {
    registry,
    sent,
    deps: { clock, adapterRegistry: registry, eventBus: new EventBus({ clock }) },
  };
}

describe('DispatchEngine persistence', () => {
  it('round-trips through JSON text: pending stay pending, completed are not resent', async () => {
    const clock = new ManualClock(T0);
    const { deps, sent } = make(clock);
    const engine = new DispatchEngine(deps);
    const cmds = engine.scheduleToCommands(schedule([5, 7, 9]), {
      assetMap: { v1: 'a' },
      scheduleId: 'day',
    });
    await engine.dispatchCommand(cmds[0] as Command);
    engine.handleResponse(cmds[0] as Command, true);
    const text = JSON.stringify(engine.toJSON());

    const again = make(clock);
    const restored = DispatchEngine.restore(JSON.parse(text), again.deps);
    should(restored.getCommand('day:a:0')?.status).equal(CommandStatus.COMPLETED);
    should(restored.getCommand('day:a:1')?.status).equal(CommandStatus.PENDING);
    should(restored.getCommand('day:a:1')?.scheduledAt.getTime()).equal(T0 + H);
    should(restored.getCommand('day:a:0')?.history.map((h) => h.status)).eql([
      'PENDING',
      'DISPATCHED',
      'ACKNOWLEDGED',
      'COMPLETED',
    ]);
    // Equal times come back as one Date, and the document as it was saved.
    should(restored.getCommand('day:a:0')?.validUntil).equal(
      restored.getCommand('day:a:1')?.scheduledAt,
    );
    should(JSON.stringify(restored.toJSON())).equal(text);
    clock.set(T0 + H);
    await restored.tick();
    should(again.sent).eql(['day:a:1']);
    should(sent).eql(['day:a:0']);
    // Revisions survive: the same schedule id sent again is revision 2.
    should(restored.uniqueScheduleId('day')).equal('day#2');
  });

  it('an attempt in flight at the stop counts as timed out and is retried if still valid', async () => {
    const clock = new ManualClock(T0);
    const { deps } = make(clock);
    const engine = new DispatchEngine(deps);
    const [c] = engine.scheduleToCommands(schedule([5, 5]), { assetMap: { v1: 'a' } });
    await engine.dispatchCommand(c as Command);
    const saved = engine.toJSON();
    clock.advance(10 * S);
    const restored = DispatchEngine.restore(saved, make(clock).deps);
    const r = restored.getCommand((c as Command).id) as Command;
    should(r.status).equal(CommandStatus.PENDING);
    should(r.attempts).equal(1);
    should(r.lastError).equal('no answer before the restart (attempt 1)');
    should(r.nextAttemptAt?.getTime()).equal(T0 + 12 * S);
  });

  it('expired commands are cancelled at restore, not sent late', () => {
    const clock = new ManualClock(T0 - 60 * S);
    const { deps } = make(clock);
    const engine = new DispatchEngine(deps);
    engine.scheduleToCommands(schedule([5, 6, 7]), { assetMap: { v1: 'a' } });
    const saved = engine.toJSON();
    clock.set(T0 + H + 5 * S);
    const restored = DispatchEngine.restore(saved, make(clock).deps);
    should(restored.getCommands({ status: CommandStatus.CANCELLED }).map((c) => c.valueKw)).eql([
      5,
    ]);
    should(restored.getPendingCommands().map((c) => c.valueKw)).eql([6]);
  });

  it('an in-flight attempt whose slot ended during the stop gets no retry', async () => {
    const clock = new ManualClock(T0);
    const { deps } = make(clock);
    const engine = new DispatchEngine(deps);
    const [c] = engine.scheduleToCommands(schedule([5, 6]), { assetMap: { v1: 'a' } });
    await engine.dispatchCommand(c as Command);
    const saved = engine.toJSON();
    clock.set(T0 + 2 * H);
    const restored = DispatchEngine.restore(saved, make(clock).deps);
    should(restored.getCommand((c as Command).id)?.status).equal(CommandStatus.TIMED_OUT);
  });

  it('restores asset states onto machines as they are registered, so holds survive', () => {
    const clock = new ManualClock(T0);
    const { deps } = make(clock);
    const engine = new DispatchEngine(deps);
    const m = createEvChargerStateMachine({ assetId: 'a', clock });
    engine.registerStateMachine(m);
    m.trigger('fault');
    engine.scheduleToCommands(schedule([5]), { assetMap: { v1: 'a' }, slotSeconds: 3600 });
    const saved = engine.toJSON();
    should(saved.assetStates).eql({ a: 'FAULTED' });
    const restored = DispatchEngine.restore(saved, make(clock).deps);
    should(restored.toJSON().assetStates).eql({ a: 'FAULTED' }); // kept until a machine arrives
    const m2 = createEvChargerStateMachine({ assetId: 'a', clock });
    restored.registerStateMachine(m2);
    should(m2.currentState).equal('FAULTED');
    should(m2.history.at(-1)?.reason).equal('restored from persistence');
    should(restored.getPendingCommands()).have.length(0);
    m2.trigger('reset');
    should(restored.getPendingCommands()).have.length(1);
  });

  it('refuses only a document that is not an engine’s at all, saying what is wrong', () => {
    const clock = new ManualClock(T0);
    should(() => DispatchEngine.restore(null)).throw(/expected an object/);
    should(() => DispatchEngine.restore({ format: 'x', version: 1 })).throw(
      /not a dispatch engine document/,
    );
    // An engine's document with a broken part: that part is reported, the rest restored.
    const problems: RestoreProblem[] = [];
    const engine = DispatchEngine.restore(
      {
        format: 'qubit-energy/dispatch-engine',
        version: 1,
        commands: {},
        assetStates: { a: 'FAULTED' },
        scheduleRevisions: [],
      },
      { clock },
      (p) => problems.push(p),
    );
    should(problems).eql([
      { entry: 'commands', reason: 'must be an array, got {}' },
      { entry: 'scheduleRevisions', reason: 'must be an object, got []' },
    ]);
    should(engine.toJSON().assetStates).eql({ a: 'FAULTED' });
  });

  it('one corrupted command among valid ones: the others are restored, it is reported', async () => {
    const clock = new ManualClock(T0);
    const { deps } = make(clock);
    const engine = new DispatchEngine(deps);
    const m = createEvChargerStateMachine({ assetId: 'b', clock });
    engine.registerStateMachine(m);
    engine.scheduleToCommands(schedule([5, 7, 9]), { assetMap: { v1: 'a' }, scheduleId: 'day' });
    const [first] = engine.getPendingCommands();
    await engine.dispatchCommand(first as Command);
    engine.handleResponse(first as Command, true);
    engine.submit({ id: 'by-hand', assetId: 'b', type: 'SET_CHARGE_RATE', valueKw: 3 });
    const doc = JSON.parse(JSON.stringify(engine.toJSON()));
    // What JSON made of a setpoint that had overflowed to Infinity, before values were bounded.
    doc.commands[1].valueKw = null;
    // And more that a hand-edited or damaged file can hold.
    doc.commands.push({ ...doc.commands[3], valueKw: 7 }); // the same id again
    doc.commands.push(42);
    doc.commands.push({ ...doc.commands[2], id: 'day:a:9', scheduledAt: '2025-13-45' });
    doc.assetStates.c = 5;
    doc.scheduleRevisions.other = 'two';

    const problems: RestoreProblem[] = [];
    const restored = DispatchEngine.restore(doc, make(clock).deps, (p) => problems.push(p));
    should(problems).eql([
      {
        entry: 'commands[1]',
        id: 'day:a:1',
        reason: 'valueKw must be a finite number >= 0 (kW) for SET_CHARGE_RATE, got null',
      },
      {
        entry: 'commands[4]',
        id: 'by-hand',
        reason: 'id by-hand appears twice: the first one is kept',
      },
      { entry: 'commands[5]', reason: 'must be an object, got number 42' },
      {
        entry: 'commands[6]',
        id: 'day:a:9',
        reason: 'scheduledAt must be an ISO 8601 time or epoch milliseconds, got "2025-13-45"',
      },
      { entry: 'assetStates["c"]', reason: 'must be a state name, got 5' },
      { entry: 'scheduleRevisions["other"]', reason: 'must be an integer >= 1, got "two"' },
    ]);
    should(restored.getCommands().map((c) => `${c.id} ${c.status} ${c.valueKw}`)).eql([
      'day:a:0 COMPLETED 5',
      'day:a:2 PENDING 9',
      'by-hand PENDING 3',
    ]);
    should(restored.getCommand('by-hand')?.valueKw).equal(3); // the first of the two
    should(restored.toJSON().assetStates).eql({ b: 'AVAILABLE' });
    should(restored.uniqueScheduleId('day')).equal('day#2');
    // What was restored works: the next slot goes out at its time.
    clock.set(T0 + 2 * H);
    should(restored.getPendingCommands().map((c) => c.id)).eql(['by-hand', 'day:a:2']);
  });

  it('reports to console.error when no onProblem is given', () => {
    const clock = new ManualClock(T0);
    const engine = new DispatchEngine({ clock });
    engine.submit({ id: 'x', assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 });
    const doc = JSON.parse(JSON.stringify(engine.toJSON()));
    doc.commands[0].valueKw = -1;
    const lines: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => lines.push(args);
    try {
      should(DispatchEngine.restore(doc, { clock }).stats().total).equal(0);
    } finally {
      console.error = original;
    }
    should(lines).eql([
      [
        'restore: left out commands[0] (id x): valueKw must be a finite number >= 0 (kW) for SET_CHARGE_RATE, got -1',
      ],
    ]);
  });
});
