import should from 'should';
import { ManualClock } from '../../src/clock';
import {
  type AnyBusEvent,
  EVENT_TYPES,
  EventBus,
  EventType,
  type StateChange,
} from '../../src/event-bus';

const change: StateChange = {
  assetId: 'a1',
  from_state: 'AVAILABLE',
  to_state: 'PREPARING',
  trigger: 'plug_in',
  forced: false,
};

describe('EventBus', () => {
  it('has the seed’s eight event types plus COMMAND_CANCELLED, the two compliance events, the two of site limits and OPTIMISER_SILENT', () => {
    should(EVENT_TYPES.length).equal(14);
    for (const t of [
      'COMMAND_CREATED',
      'COMMAND_DISPATCHED',
      'COMMAND_ACKNOWLEDGED',
      'COMMAND_COMPLETED',
      'COMMAND_FAILED',
      'COMMAND_TIMED_OUT',
      'COMMAND_CANCELLED',
      'STATE_CHANGED',
      'SCHEDULE_RECEIVED',
      'ASSET_DEVIATION',
      'ASSET_COMPLIANT',
      'SETPOINT_LIMITED',
      'LIMITS_CHANGED',
      'OPTIMISER_SILENT',
    ]) {
      should(EVENT_TYPES).containEql(t);
    }
  });

  it('delivers typed events with timestamp from the clock and increasing sequence', () => {
    const clock = new ManualClock('2025-06-02T08:00:00Z');
    const bus = new EventBus({ clock });
    const seen: StateChange[] = [];
    const stamps: string[] = [];
    const seqs: number[] = [];
    bus.subscribe(EventType.STATE_CHANGED, (e) => {
      seen.push(e.payload);
      stamps.push(e.timestamp);
      seqs.push(e.sequence);
    });
    bus.publish(EventType.STATE_CHANGED, change);
    clock.advance(1000);
    bus.publish(EventType.STATE_CHANGED, { ...change, to_state: 'CHARGING' });
    should(seen.map((c) => c.to_state)).eql(['PREPARING', 'CHARGING']);
    should(stamps).eql(['2025-06-02T08:00:00.000Z', '2025-06-02T08:00:01.000Z']);
    should(seqs[1]).equal((seqs[0] as number) + 1);
  });

  it("'*' receives every type, and only subscribed types reach a typed handler", () => {
    const bus = new EventBus();
    const all: string[] = [];
    const onlyState: string[] = [];
    bus.subscribe('*', (e: AnyBusEvent) => all.push(e.type));
    bus.subscribe(EventType.STATE_CHANGED, (e) => onlyState.push(e.type));
    bus.publish(EventType.STATE_CHANGED, change);
    bus.publish(EventType.SCHEDULE_RECEIVED, {
      scheduleId: 's',
      start: '',
      end: '',
      slotSeconds: 900,
      slots: 1,
      assets: [],
      ignoredColumns: [],
      unmappedColumns: [],
      commandCount: 0,
    });
    should(all).eql(['STATE_CHANGED', 'SCHEDULE_RECEIVED']);
    should(onlyState).eql(['STATE_CHANGED']);
  });

  it('subscribeTypes: one handler on those types only, in publish order; one unsubscribe for all', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const off = bus.subscribeTypes(
      [EventType.STATE_CHANGED, EventType.COMMAND_CANCELLED, EventType.STATE_CHANGED],
      (e: AnyBusEvent) => seen.push(e.type),
    );
    // Publishers that skip work without a listener see none for the other types.
    should(bus.hasSubscribers(EventType.COMMAND_CREATED)).be.false();
    should(bus.hasSubscribers(EventType.STATE_CHANGED)).be.true();
    should(bus.subscriberCount()).equal(2);
    bus.publish(EventType.STATE_CHANGED, change);
    bus.publish(EventType.STATE_CHANGED, { ...change, to_state: 'CHARGING' });
    should(seen).eql(['STATE_CHANGED', 'STATE_CHANGED']);
    off();
    should(bus.subscriberCount()).equal(0);
    should(() => bus.subscribeTypes(['NOPE' as EventType], () => {})).throw(/unknown event type/);
  });

  it('subscribe returns an unsubscribe function that is idempotent', () => {
    const bus = new EventBus();
    let n = 0;
    const off = bus.subscribe(EventType.STATE_CHANGED, () => n++);
    bus.publish(EventType.STATE_CHANGED, change);
    off();
    off();
    bus.publish(EventType.STATE_CHANGED, change);
    should(n).equal(1);
    should(bus.subscriberCount()).equal(0);
    should(bus.hasSubscribers(EventType.STATE_CHANGED)).be.false();
  });

  it('the same function subscribed twice is two subscriptions, removed one at a time', () => {
    const bus = new EventBus();
    let n = 0;
    const h = () => n++;
    const off1 = bus.subscribe(EventType.STATE_CHANGED, h);
    bus.subscribe(EventType.STATE_CHANGED, h);
    bus.publish(EventType.STATE_CHANGED, change);
    should(n).equal(2);
    off1();
    bus.publish(EventType.STATE_CHANGED, change);
    should(n).equal(3);
  });

  it('a subscriber that throws does not stop the others and is reported', () => {
    const reported: { err: unknown; type: string }[] = [];
    const bus = new EventBus({ onError: (err, e) => reported.push({ err, type: e.type }) });
    const got: number[] = [];
    bus.subscribe(EventType.STATE_CHANGED, () => got.push(1));
    bus.subscribe(EventType.STATE_CHANGED, () => {
      throw new Error('boom');
    });
    bus.subscribe(EventType.STATE_CHANGED, () => got.push(3));
    bus.subscribe('*', () => got.push(4));
    bus.publish(EventType.STATE_CHANGED, change);
    should(got).eql([1, 3, 4]);
    should(reported).have.length(1);
    should((reported[0] as { err: Error }).err.message).equal('boom');
    should(reported[0]?.type).equal('STATE_CHANGED');
    should(bus.errors).equal(1);
  });

  it('an error reporter that throws does not break publishing', () => {
    const bus = new EventBus({
      onError: () => {
        throw new Error('reporter broke');
      },
    });
    let after = 0;
    bus.subscribe(EventType.STATE_CHANGED, () => {
      throw new Error('x');
    });
    bus.subscribe(EventType.STATE_CHANGED, () => after++);
    should(() => bus.publish(EventType.STATE_CHANGED, change)).not.throw();
    should(after).equal(1);
  });

  it('a handler removed by another during delivery is not called', () => {
    const bus = new EventBus();
    const calls: string[] = [];
    let offB: () => void = () => {};
    bus.subscribe(EventType.STATE_CHANGED, () => {
      calls.push('a');
      offB();
    });
    offB = bus.subscribe(EventType.STATE_CHANGED, () => calls.push('b'));
    bus.publish(EventType.STATE_CHANGED, change);
    should(calls).eql(['a']);
  });

  it('rejects unknown event types and non-function handlers', () => {
    const bus = new EventBus();
    should(() => bus.subscribe('NOPE' as EventType, () => {})).throw(/unknown event type "NOPE"/);
    should(() => bus.subscribe(EventType.STATE_CHANGED, 5 as never)).throw(
      /handler must be a function/,
    );
  });

  it('clear removes every subscription', () => {
    const bus = new EventBus();
    bus.subscribe('*', () => {});
    bus.subscribe(EventType.COMMAND_CREATED, () => {});
    should(bus.subscriberCount()).equal(2);
    should(bus.subscriberCount('*')).equal(1);
    bus.clear();
    should(bus.subscriberCount()).equal(0);
  });
});
