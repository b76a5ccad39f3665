import should from 'should';
import { type Adapter, AdapterError, AdapterRegistry } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus } from '../../src/commands';
import { DispatchEngine } from '../../src/engine';
import { EventBus, EventType } from '../../src/event-bus';
import { createEvChargerStateMachine } from '../../src/state-machine';

// engine.reapply (the setpoint in force, re-applied as a tracked command after a device lost
// it), and the answers that are not plain failures: no answer (TIMED_OUT) and a slot that
// ended before the command reached its device (CANCELLED, expired). Clock injected.

const T0 = Date.parse('2025-06-02T08:00:00Z');
const M = 60_000;

function setup() {
  const clock = new ManualClock(T0);
  const eventBus = new EventBus({ clock });
  const adapterRegistry = new AdapterRegistry();
  const engine = new DispatchEngine({
    eventBus,
    adapterRegistry,
    clock,
    config: { maxRetries: 1, retryBaseSeconds: 1, commandTimeoutSeconds: 10 },
  });
  const created: string[] = [];
  eventBus.subscribe(EventType.COMMAND_CREATED, (e) => created.push(e.payload.id));
  const sent: Command[] = [];
  let answer: (c: Command) => unknown = () => ({ success: true });
  const adapter: Adapter = {
    protocol: 'test',
    dispatch: (c) => {
      sent.push(c);
      return answer(c) as never;
    },
  };
  adapterRegistry.register('ev1', adapter);
  /** A schedule of three 15-minute slots for ev1: 6, 9, 4 kW. */
  const plan = () =>
    engine.submit(
      [6, 9, 4].map((kw, i) => ({
        id: `s:ev1:${i}`,
        scheduleId: 's',
        assetId: 'ev1',
        type: 'SET_CHARGE_RATE',
        valueKw: kw,
        scheduledAt: T0 + i * 15 * M,
        validUntil: i < 2 ? T0 + (i + 1) * 15 * M : null,
      })),
    );
  const tick = async () => {
    engine.checkTimeouts();
    for (const c of engine.getPendingCommands()) await engine.dispatchCommand(c);
  };
  return {
    clock,
    engine,
    adapter,
    sent,
    created,
    tick,
    plan,
    answer: (f: typeof answer) => {
      answer = f;
    },
  };
}

describe('DispatchEngine: re-applying the setpoint in force', () => {
  it('re-applies a completed setpoint while later slots are pending: a new tracked command, valid as long', async () => {
    const { clock, engine, sent, created, tick, plan } = setup();
    plan();
    await tick();
    should(engine.getCommand('s:ev1:0')?.status).equal(CommandStatus.COMPLETED);
    clock.advance(5 * M);
    const [again] = engine.reapply('ev1', 'charger booted');
    should(again?.id).equal('s:ev1:0~1');
    should(again).have.properties({ reapplyOf: 's:ev1:0', valueKw: 6, scheduleId: 's' });
    should(again?.scheduledAt.getTime()).equal(T0 + 5 * M);
    should(again?.validUntil?.getTime()).equal(T0 + 15 * M);
    should(created).containEql('s:ev1:0~1');
    await tick();
    should(sent.map((c) => c.id)).eql(['s:ev1:0', 's:ev1:0~1']);
    should(again?.status).equal(CommandStatus.COMPLETED);
    // The later slots are untouched (same schedule: nothing superseded).
    should(engine.getCommand('s:ev1:1')?.status).equal(CommandStatus.PENDING);
    // Its re-apply in turn is the one in force; a second re-apply makes ~2 of the original.
    should(engine.reapply('ev1', 'again')[0]?.id).equal('s:ev1:0~2');
  });

  it('does not double a re-apply on its way, nor one the device got on its current connection', async () => {
    const { clock, engine, tick, plan } = setup();
    plan();
    await tick();
    clock.advance(M);
    const first = engine.reapply('ev1', 'connected');
    should(engine.reapply('ev1', 'booted')).eql(first);
    await tick();
    clock.advance(M);
    should(engine.reapply('ev1', 'x', { appliedSince: T0 + M })).eql(first);
    should(engine.getCommands().filter((c) => c.reapplyOf)).have.length(1);
  });

  it('a pending setpoint goes at once (no retry backoff waited for); a held one stays held', async () => {
    const { clock, engine, sent, tick, plan, answer } = setup();
    answer(() => {
      throw new AdapterError('socket closed');
    });
    plan();
    await tick();
    const c0 = engine.getCommand('s:ev1:0') as Command;
    should(c0.status).equal(CommandStatus.PENDING);
    should(c0.nextAttemptAt?.getTime()).equal(T0 + 1000);
    answer(() => ({ success: true }));
    should(engine.reapply('ev1', 'connected')).eql([c0]);
    await tick(); // same instant: no waiting for the backoff
    should(c0.status).equal(CommandStatus.COMPLETED);
    should(sent).have.length(2);
    // Held: the state machine says UNAVAILABLE; the re-apply waits with it.
    const m = createEvChargerStateMachine({ assetId: 'ev1', clock });
    engine.registerStateMachine(m);
    m.forceState('UNAVAILABLE', 'offline');
    clock.advance(15 * M);
    await tick();
    const c1 = engine.getCommand('s:ev1:1') as Command;
    should(c1.holdReason).match(/UNAVAILABLE/);
    should(engine.reapply('ev1', 'x')).eql([c1]);
    await tick();
    should(c1.status).equal(CommandStatus.PENDING);
  });

  it('nothing in force: ended, cancelled or refused setpoints are not re-applied', async () => {
    const { clock, engine, tick, answer } = setup();
    answer(() => ({ success: false, final: true, error: 'Rejected' }));
    engine.submit({ id: 'r', assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 });
    await tick();
    should(engine.getCommand('r')?.status).equal(CommandStatus.FAILED);
    should(engine.reapply('ev1', 'x')).eql([]);
    answer(() => ({ success: true }));
    engine.submit({
      id: 'e',
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      validUntil: T0 + M,
    });
    await tick();
    clock.advance(M);
    should(engine.reapply('ev1', 'x')).eql([]);
  });

  it('leaves alone a setpoint whose slot ends within a second: its successor is about to go', async () => {
    const { clock, engine, tick, plan } = setup();
    plan();
    await tick();
    clock.set(T0 + 15 * M - 999);
    should(engine.reapply('ev1', 'late')).eql([]);
    clock.set(T0 + 15 * M - 1000);
    should(engine.reapply('ev1', 'in time').map((c) => c.reapplyOf)).eql(['s:ev1:0']);
  });

  it('restored from persistence, the setpoint in force can still be re-applied', async () => {
    const { clock, engine, tick, plan } = setup();
    plan();
    await tick();
    const copy = DispatchEngine.restore(JSON.parse(JSON.stringify(engine.toJSON())), { clock });
    should(copy.reapply('ev1', 'restart').map((c) => c.reapplyOf)).eql(['s:ev1:0']);
    const text = JSON.stringify(copy.toJSON());
    should(
      DispatchEngine.restore(JSON.parse(text), { clock }).getCommand('s:ev1:0~1'),
    ).have.properties({
      reapplyOf: 's:ev1:0',
    });
  });
});

describe('DispatchEngine: no answer, and a slot that ended on the way', () => {
  it('an adapter error with timedOut ends TIMED_OUT after the last attempt, not FAILED', async () => {
    const { clock, engine, tick, answer } = setup();
    answer(() => {
      throw new AdapterError('no answer', { timedOut: true });
    });
    const [c] = engine.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 });
    await tick();
    clock.advance(1000);
    await tick();
    should(c?.status).equal(CommandStatus.TIMED_OUT);
    should(c?.attempts).equal(2);
  });

  it('a command that reaches runAttempt after its slot ended is CANCELLED as expired; the adapter is not called', async () => {
    const { clock, engine, sent } = setup();
    const [c] = engine.submit({
      assetId: 'ev1',
      type: 'SET_CHARGE_RATE',
      valueKw: 3,
      validUntil: T0 + 1000,
    });
    engine.markDispatched(c as Command); // handed to a wire ...
    clock.advance(2000); // ... that held it past its slot
    const r = await engine.runAttempt(c as Command, {
      protocol: 't',
      dispatch: (x) => {
        sent.push(x);
        return { success: true };
      },
    });
    should(r).have.properties({ success: false, expired: true });
    should(c?.status).equal(CommandStatus.CANCELLED);
    should(c?.lastError).match(/^expired: its slot ended at/);
    should(sent).have.length(0);
  });

  it('an adapter result with expired cancels the command as expired', async () => {
    const { engine, tick, answer } = setup();
    answer(() => ({ success: false, expired: true, error: 'not sent: waited too long' }));
    const [c] = engine.submit({ assetId: 'ev1', type: 'SET_CHARGE_RATE', valueKw: 3 });
    await tick();
    should(c?.status).equal(CommandStatus.CANCELLED);
    should(c?.lastError).equal('expired: not sent: waited too long');
  });
});
