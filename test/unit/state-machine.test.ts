import should from 'should';
import { ManualClock } from '../../src/clock';
import { EventBus, EventType, type StateChange } from '../../src/event-bus';
import {
  BatteryState,
  createBatteryStateMachine,
  createEvChargerStateMachine,
  EV_CHARGER_DEFINITION,
  EvChargerState,
  InvalidTransition,
  StateMachine,
} from '../../src/state-machine';

const E = EvChargerState;
const B = BatteryState;

function thrown(fn: () => unknown): InvalidTransition {
  try {
    fn();
  } catch (err) {
    should(err).be.instanceOf(InvalidTransition);
    return err as InvalidTransition;
  }
  throw new Error('expected InvalidTransition');
}

describe('StateMachine', () => {
  describe('EV charger preset', () => {
    // [from, trigger, to] for every transition the issue lists.
    const table: [EvChargerState, string, EvChargerState][] = [
      [E.AVAILABLE, 'plug_in', E.PREPARING],
      [E.PREPARING, 'start_charge', E.CHARGING],
      [E.CHARGING, 'suspend', E.SUSPENDED],
      [E.PREPARING, 'suspend', E.SUSPENDED],
      [E.SUSPENDED, 'resume', E.CHARGING],
      [E.CHARGING, 'complete', E.FINISHING],
      [E.SUSPENDED, 'complete', E.FINISHING],
      [E.PREPARING, 'unplug', E.AVAILABLE],
      [E.CHARGING, 'unplug', E.AVAILABLE],
      [E.SUSPENDED, 'unplug', E.AVAILABLE],
      [E.FINISHING, 'unplug', E.AVAILABLE],
      [E.FAULTED, 'reset', E.AVAILABLE],
      [E.AVAILABLE, 'disable', E.UNAVAILABLE],
      [E.PREPARING, 'disable', E.UNAVAILABLE],
      [E.FINISHING, 'disable', E.UNAVAILABLE],
      [E.FAULTED, 'disable', E.UNAVAILABLE],
      [E.UNAVAILABLE, 'enable', E.AVAILABLE],
    ];
    for (const [from, trigger, to] of table) {
      it(`${from} --${trigger}--> ${to}`, () => {
        const m = createEvChargerStateMachine({ assetId: 'ev1' });
        m.forceState(from);
        should(m.trigger(trigger)).equal(to);
        should(m.currentState).equal(to);
      });
    }

    it('starts AVAILABLE and faults from any state', () => {
      for (const s of Object.values(E)) {
        const m = createEvChargerStateMachine({ assetId: 'ev1' });
        should(m.currentState).equal(E.AVAILABLE);
        m.forceState(s);
        should(m.trigger('fault')).equal(E.FAULTED);
      }
    });

    it('refuses what the table does not allow, listing the valid triggers', () => {
      const m = createEvChargerStateMachine({ assetId: 'ev1' });
      const err = thrown(() => m.trigger('start_charge'));
      should(err.currentState).equal(E.AVAILABLE);
      should(err.trigger).equal('start_charge');
      should(err.validTriggers.sort()).eql(['disable', 'fault', 'plug_in']);
      should(err.message).match(
        /trigger 'start_charge' is not valid in state AVAILABLE; valid triggers: .*plug_in/,
      );
      should(m.currentState).equal(E.AVAILABLE);
      m.forceState(E.CHARGING);
      should(() => m.trigger('disable')).throw(InvalidTransition);
    });
  });

  describe('battery preset', () => {
    const table: [BatteryState, string, BatteryState][] = [
      [B.IDLE, 'charge', B.CHARGING],
      [B.DISCHARGING, 'charge', B.CHARGING],
      [B.IDLE, 'discharge', B.DISCHARGING],
      [B.CHARGING, 'discharge', B.DISCHARGING],
      [B.CHARGING, 'stop', B.IDLE],
      [B.DISCHARGING, 'stop', B.IDLE],
      [B.FAULTED, 'reset', B.IDLE],
      [B.IDLE, 'disable', B.UNAVAILABLE],
      [B.FAULTED, 'disable', B.UNAVAILABLE],
      [B.UNAVAILABLE, 'enable', B.IDLE],
    ];
    for (const [from, trigger, to] of table) {
      it(`${from} --${trigger}--> ${to}`, () => {
        const m = createBatteryStateMachine({ assetId: 'b1' });
        m.forceState(from);
        should(m.trigger(trigger)).equal(to);
      });
    }

    it('has five states, starts IDLE, and refuses stop while IDLE', () => {
      const m = createBatteryStateMachine({ assetId: 'b1' });
      should(m.states).have.length(5);
      should(m.currentState).equal(B.IDLE);
      should(m.canTrigger('stop')).be.false();
      should(() => m.trigger('stop')).throw(/not valid in state IDLE/);
      should(() => m.trigger('disable')).not.throw();
      should(() => m.trigger('charge')).throw(/valid triggers: fault, enable/);
    });
  });

  describe('guards', () => {
    const def = () =>
      new StateMachine({
        assetId: 'g1',
        states: ['LOW', 'HIGH'],
        initial: 'LOW',
        transitions: [
          {
            from: 'LOW',
            trigger: 'up',
            to: 'HIGH',
            guard: (ctx) =>
              ((ctx as { soc?: number })?.soc ?? 0) >= 20 || 'state of charge below 20 %',
          },
          { from: 'HIGH', trigger: 'down', to: 'LOW', guard: () => false },
        ],
      });

    it('a guard that says no throws with its reason and leaves the state', () => {
      const m = def();
      const err = thrown(() => m.trigger('up', { soc: 10 }));
      should(err.guardReason).equal('state of charge below 20 %');
      should(err.message).match(/refused in state LOW: state of charge below 20 %/);
      should(m.currentState).equal('LOW');
      should(m.canTrigger('up', { soc: 10 })).be.false();
      should(m.canTrigger('up', { soc: 30 })).be.true();
      should(m.trigger('up', { soc: 30 })).equal('HIGH');
    });

    it('a guard returning false gives a generic reason', () => {
      const m = def();
      m.forceState('HIGH');
      should(thrown(() => m.trigger('down')).guardReason).equal('guard refused the transition');
    });
  });

  describe('events, history and forced states', () => {
    it('publishes STATE_CHANGED with assetId, from_state, to_state, trigger', () => {
      const clock = new ManualClock('2025-06-02T08:00:00Z');
      const bus = new EventBus({ clock });
      const got: StateChange[] = [];
      bus.subscribe(EventType.STATE_CHANGED, (e) => got.push(e.payload));
      const m = createEvChargerStateMachine({ assetId: 'ev9', eventBus: bus, clock });
      m.trigger('plug_in');
      should(got).eql([
        {
          assetId: 'ev9',
          from_state: 'AVAILABLE',
          to_state: 'PREPARING',
          trigger: 'plug_in',
          forced: false,
        },
      ]);
    });

    it('forceState publishes a forced change with its reason, and a repeat only refreshes updatedAt', () => {
      const clock = new ManualClock(1_000_000);
      const bus = new EventBus({ clock });
      const got: StateChange[] = [];
      bus.subscribe(EventType.STATE_CHANGED, (e) => got.push(e.payload));
      const m = createEvChargerStateMachine({ assetId: 'ev1', eventBus: bus, clock });
      m.forceState(E.CHARGING, 'StatusNotification Charging');
      should(got).eql([
        {
          assetId: 'ev1',
          from_state: 'AVAILABLE',
          to_state: 'CHARGING',
          trigger: 'force',
          forced: true,
          reason: 'StatusNotification Charging',
        },
      ]);
      clock.advance(5000);
      m.forceState(E.CHARGING);
      should(got).have.length(1);
      should(m.updatedAt).equal(1_005_000);
      should(() => m.forceState('EXPLODED')).throw(/unknown state "EXPLODED"/);
    });

    it('keeps a bounded history, oldest dropped', () => {
      const clock = new ManualClock(0);
      const m = createBatteryStateMachine({ assetId: 'b1', clock, historyLimit: 3 });
      m.trigger('charge');
      clock.advance(1);
      m.trigger('discharge');
      m.trigger('stop');
      m.trigger('charge');
      should(m.history).have.length(3);
      should(m.history.map((h) => h.trigger)).eql(['discharge', 'stop', 'charge']);
      should(m.history[0]?.from).equal('CHARGING');
      should(m.history[0]?.at.getTime()).equal(1);
    });

    it('onChange listeners are told of every change and can be removed', () => {
      const m = createBatteryStateMachine({ assetId: 'b1' });
      const seen: string[] = [];
      const off = m.onChange((c) => seen.push(c.to_state));
      m.trigger('charge');
      off();
      m.trigger('stop');
      should(seen).eql(['CHARGING']);
      should(m.toJSON()).have.properties({ assetId: 'b1', state: 'IDLE' });
    });
  });

  describe('definition checks', () => {
    it('names what is wrong in a definition', () => {
      const base = { assetId: 'x', states: ['A', 'B'], initial: 'A', transitions: [] };
      should(() => new StateMachine({ ...base, assetId: '' })).throw(/assetId/);
      should(() => new StateMachine({ ...base, states: [] })).throw(
        /states must be a non-empty list/,
      );
      should(() => new StateMachine({ ...base, initial: 'C' })).throw(
        /initial state "C" is not one of the states/,
      );
      should(
        () => new StateMachine({ ...base, transitions: [{ from: 'A', trigger: 'go', to: 'Z' }] }),
      ).throw(/transition \[0\]: unknown target state "Z"/);
      should(
        () =>
          new StateMachine({
            ...base,
            transitions: [{ from: ['A', 'Q'], trigger: 'go', to: 'B' }],
          }),
      ).throw(/unknown source state "Q"/);
      should(
        () => new StateMachine({ ...base, transitions: [{ from: 'A', trigger: '', to: 'B' }] }),
      ).throw(/trigger must be a non-empty string/);
    });

    it('machines of a frozen definition share it; one that can change is copied for each', () => {
      const a = createEvChargerStateMachine({ assetId: 'ev1' });
      const b = createEvChargerStateMachine({ assetId: 'ev2' });
      should(a.states).equal(b.states); // one list for 10,000 chargers, not 10,000 copies
      should(Object.isFrozen(EV_CHARGER_DEFINITION.transitions)).be.true();
      const transitions = [{ from: 'A', trigger: 'go', to: 'B' }];
      const def = { states: ['A', 'B'], initial: 'A', transitions };
      const m = new StateMachine({ ...def, assetId: 'x' });
      const n = new StateMachine({ ...def, assetId: 'y' });
      should(m.states).not.equal(n.states);
      transitions[0] = { from: 'A', trigger: 'go', to: 'A' }; // changed after: not in m
      should(m.trigger('go')).equal('B');
      // A frozen definition shared: checked once, and a bad one is still refused.
      const bad = Object.freeze({
        states: Object.freeze(['A']),
        initial: 'A',
        transitions: Object.freeze([Object.freeze({ from: 'A', trigger: 'go', to: 'Z' })]),
      });
      should(() => new StateMachine({ ...bad, assetId: 'z' })).throw(/unknown target state "Z"/);
      should(() => new StateMachine({ ...bad, assetId: 'z' })).throw(/unknown target state "Z"/);
    });
  });
});
