import should from 'should';
import { type Adapter, AdapterRegistry } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus } from '../../src/commands';
import { DispatchEngine } from '../../src/engine';
import { EventBus } from '../../src/event-bus';
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

  it('refuses a document that is not an engine’s, saying what is wrong', () => {
    const clock = new ManualClock(T0);
    should(() => DispatchEngine.restore(null)).throw(/expected an object/);
    should(() => DispatchEngine.restore({ format: 'x', version: 1 })).throw(
      /not a dispatch engine document/,
    );
    should(() =>
      DispatchEngine.restore({ format: 'qubit-energy/dispatch-engine', version: 1, commands: {} }),
    ).throw(/"commands" must be an array/);
    const bad = new DispatchEngine({ clock });
    bad.submit({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 });
    const doc = bad.toJSON();
    (doc.commands[0] as { status: string }).status = 'LOST';
    should(() => DispatchEngine.restore(doc)).throw(/command \[0\]: status must be one of/);
  });
});
