import should from 'should';
import { type Adapter, AdapterError, AdapterRegistry } from '../../src/adapters/registry';
import { ManualClock, toMillis } from '../../src/clock';
import {
  CommandStatus,
  canTransition,
  commandFromJSON,
  commandToJSON,
  createCommand,
  HISTORY_LIMIT,
  InvalidCommandTransition,
  isFinal,
  isoString,
  isoTime,
  transition,
} from '../../src/commands';
import { Heap } from '../../src/heap';

const adapter = (protocol = 'test'): Adapter => ({ protocol, dispatch: () => undefined });

describe('AdapterRegistry', () => {
  it('registers, gets, lists and unregisters', () => {
    const r = new AdapterRegistry();
    const a = adapter();
    r.register('x', a);
    r.register('x', a); // same pair again: no-op
    r.register('y', a);
    should(r.get('x')).equal(a);
    should(r.has('y')).be.true();
    should(r.assets()).eql(['x', 'y']);
    should(r.size).equal(2);
    should(r.unregister('x')).be.true();
    should(r.unregister('x')).be.false();
    should(r.get('x')).be.undefined();
  });

  it('refuses an asset another adapter serves, unless replacing', () => {
    const r = new AdapterRegistry();
    const a = adapter('ocpp1.6');
    const b = adapter('modbus');
    r.register('x', a);
    should(() => r.register('x', b)).throw(/asset x is already served by a ocpp1.6 adapter/);
    r.register('x', b, { replace: true });
    should(r.get('x')).equal(b);
  });

  it('unregister with an adapter removes only if that adapter still serves the asset', () => {
    const r = new AdapterRegistry();
    const old = adapter();
    const fresh = adapter();
    r.register('x', old);
    r.register('x', fresh, { replace: true });
    should(r.unregister('x', old)).be.false();
    should(r.get('x')).equal(fresh);
    r.register('y', fresh);
    should(r.unregisterAdapter(fresh)).eql(['x', 'y']);
    should(r.size).equal(0);
  });

  it('checks its arguments', () => {
    const r = new AdapterRegistry();
    should(() => r.register('', adapter())).throw(/assetId must be a non-empty string/);
    should(() => r.register('x', {} as Adapter)).throw(
      /adapter must have a dispatch\(command\) method/,
    );
  });

  it('AdapterError carries final', () => {
    should(new AdapterError('x').final).be.false();
    const e = new AdapterError('Rejected', { final: true, cause: new Error('inner') });
    should(e.final).be.true();
    should((e.cause as Error).message).equal('inner');
  });
});

describe('commands', () => {
  const defaults = {
    now: Date.parse('2025-06-02T08:00:00Z'),
    maxRetries: 3,
    timeoutSeconds: 30,
    newId: () => 'id1',
  };

  it('follows the lifecycle rules', () => {
    should(canTransition(CommandStatus.PENDING, CommandStatus.DISPATCHED)).be.true();
    should(canTransition(CommandStatus.PENDING, CommandStatus.ACKNOWLEDGED)).be.false();
    should(canTransition(CommandStatus.DISPATCHED, CommandStatus.PENDING)).be.true();
    for (const s of [
      CommandStatus.COMPLETED,
      CommandStatus.FAILED,
      CommandStatus.TIMED_OUT,
      CommandStatus.CANCELLED,
    ]) {
      should(isFinal(s)).be.true();
      for (const t of Object.values(CommandStatus)) should(canTransition(s, t)).be.false();
    }
    const c = createCommand({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 }, defaults);
    should(() => transition(c, CommandStatus.COMPLETED, 0)).throw(InvalidCommandTransition);
  });

  it('keeps a bounded history', () => {
    const c = createCommand({ assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 }, defaults);
    for (let i = 0; i < HISTORY_LIMIT + 5; i++) {
      transition(c, CommandStatus.DISPATCHED, i);
      transition(c, CommandStatus.PENDING, i, 'retry');
    }
    should(c.history).have.length(HISTORY_LIMIT);
    should(c.history.at(-1)).have.properties({ status: 'PENDING', reason: 'retry' });
  });

  it('JSON form has ISO times and round-trips', () => {
    const c = createCommand(
      {
        assetId: 'a',
        type: 'SET_DISCHARGE_RATE',
        valueKw: 4.5,
        scheduledAt: '2025-06-02T09:00:00+01:00',
        validUntil: 1748858400000,
        source: { columns: ['x'], slot: 3 },
        scheduleId: 's',
      },
      defaults,
    );
    const json = commandToJSON(c);
    should(json.scheduledAt).equal('2025-06-02T08:00:00.000Z');
    should(json.validUntil).equal('2025-06-02T10:00:00.000Z');
    const back = commandFromJSON(JSON.parse(JSON.stringify(json)));
    should(commandToJSON(back)).eql(json);
  });

  it('formats times through a bounded cache that stays right when a Date changes in place', () => {
    const t = Date.parse('2025-06-02T08:00:00.123Z');
    // More distinct times than the cache holds, each asked for twice.
    for (let i = 0; i < 10_000; i += 7) {
      const d = new Date(t + i * 1000);
      should(isoString(d)).equal(d.toISOString());
      should(isoTime(t + i * 1000)).equal(d.toISOString());
    }
    const d = new Date(t);
    should(isoString(d)).equal('2025-06-02T08:00:00.123Z');
    d.setTime(t + 1);
    should(isoString(d)).equal('2025-06-02T08:00:00.124Z');
    should(() => isoString(new Date(Number.NaN))).throw(RangeError);
    should(() => isoTime(Number.NaN)).throw(RangeError);
  });
});

describe('clock and heap', () => {
  it('ManualClock moves only when told', () => {
    const c = new ManualClock('2025-06-02T08:00:00Z');
    should(c.now()).equal(Date.parse('2025-06-02T08:00:00Z'));
    c.advance(500);
    should(c.now() % 1000).equal(500);
    should(() => c.advance(-1)).throw(/ms must be >= 0/);
    c.set(new Date(0));
    should(c.now()).equal(0);
    should(() => toMillis('yesterday', 'start')).throw(/start: not a valid time: yesterday/);
  });

  it('Heap pops in order and retains by predicate', () => {
    const h = new Heap<number>((a, b) => a < b);
    for (const x of [5, 3, 9, 1, 7, 3]) h.push(x);
    h.retain((x) => x !== 9);
    const out: number[] = [];
    while (h.size > 0) out.push(h.pop() as number);
    should(out).eql([1, 3, 3, 5, 7]);
    should(h.pop()).be.undefined();
    h.push(1);
    h.clear();
    should(h.peek()).be.undefined();
  });
});
