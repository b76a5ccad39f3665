import { type Clock, systemClock } from './clock';
import { type EventBus, EventType, type StateChange } from './event-bus';

/**
 * A guard says whether a transition may happen: `true` allows it; `false` or a string
 * (the reason) refuses it.
 */
export type Guard = (context: unknown, machine: StateMachine) => boolean | string;

export interface Transition {
  /** A state, a list of states, or '*' for any state. */
  from: string | readonly string[];
  trigger: string;
  to: string;
  guard?: Guard;
}

export interface StateMachineDefinition {
  states: readonly string[];
  initial: string;
  transitions: readonly Transition[];
}

export interface StateMachineOptions extends StateMachineDefinition {
  assetId: string;
  eventBus?: EventBus;
  clock?: Clock;
  /** Entries kept in `history` (oldest dropped). Default 100. */
  historyLimit?: number;
}

export interface StateHistoryEntry {
  from: string;
  to: string;
  trigger: string;
  forced: boolean;
  reason?: string;
  at: Date;
}

export class InvalidTransition extends Error {
  constructor(
    readonly assetId: string,
    readonly currentState: string,
    readonly trigger: string,
    readonly validTriggers: string[],
    readonly guardReason?: string,
  ) {
    super(
      guardReason !== undefined
        ? `asset ${assetId}: trigger '${trigger}' refused in state ${currentState}: ${guardReason}`
        : `asset ${assetId}: trigger '${trigger}' is not valid in state ${currentState}; valid triggers: ${
            validTriggers.length > 0 ? validTriggers.join(', ') : '(none)'
          }`,
    );
    this.name = 'InvalidTransition';
  }
}

export type StateListener = (change: StateChange) => void;

/** A finite state machine for one asset, with guards, bounded history and change events. */
export class StateMachine {
  readonly assetId: string;
  readonly states: readonly string[];
  readonly initial: string;
  private readonly transitions: readonly Transition[];
  private readonly bus: EventBus | undefined;
  private readonly clock: Clock;
  private readonly historyLimit: number;
  private readonly listeners = new Set<StateListener>();
  private state: string;
  private readonly hist: StateHistoryEntry[] = [];
  /** When the state was last set or confirmed (epoch ms). */
  updatedAt: number;

  constructor(options: StateMachineOptions) {
    if (typeof options.assetId !== 'string' || options.assetId === '') {
      throw new TypeError('state machine: assetId must be a non-empty string');
    }
    const def = checkedDefinition(options);
    this.assetId = options.assetId;
    this.states = def.states;
    this.initial = def.initial;
    this.transitions = def.transitions;
    this.bus = options.eventBus;
    this.clock = options.clock ?? systemClock;
    this.historyLimit = options.historyLimit ?? 100;
    this.state = options.initial;
    this.updatedAt = this.clock.now();
  }

  get currentState(): string {
    return this.state;
  }

  get history(): readonly StateHistoryEntry[] {
    return this.hist;
  }

  private matching(trigger: string): Transition[] {
    return this.transitions.filter(
      (t) =>
        t.trigger === trigger &&
        (t.from === '*' ||
          t.from === this.state ||
          (Array.isArray(t.from) && t.from.includes(this.state))),
    );
  }

  /** Finds the transition a trigger would take, or the guard's reason for refusing. */
  private resolve(trigger: string, context: unknown): Transition | { refused: string } | null {
    const candidates = this.matching(trigger);
    if (candidates.length === 0) return null;
    let reason = '';
    for (const t of candidates) {
      if (!t.guard) return t;
      const verdict = t.guard(context, this);
      if (verdict === true) return t;
      reason = typeof verdict === 'string' ? verdict : 'guard refused the transition';
    }
    return { refused: reason };
  }

  canTrigger(trigger: string, context?: unknown): boolean {
    const r = this.resolve(trigger, context);
    return r !== null && !('refused' in r);
  }

  /** Triggers that have a transition from the current state (guards not evaluated). */
  availableTriggers(): string[] {
    const out = new Set<string>();
    for (const t of this.transitions) {
      if (
        t.from === '*' ||
        t.from === this.state ||
        (Array.isArray(t.from) && t.from.includes(this.state))
      ) {
        out.add(t.trigger);
      }
    }
    return [...out];
  }

  /** Fires a trigger. Returns the new state, or throws InvalidTransition. */
  trigger(trigger: string, context?: unknown): string {
    const r = this.resolve(trigger, context);
    if (r === null) {
      throw new InvalidTransition(this.assetId, this.state, trigger, this.availableTriggers());
    }
    if ('refused' in r) {
      throw new InvalidTransition(
        this.assetId,
        this.state,
        trigger,
        this.availableTriggers(),
        r.refused,
      );
    }
    this.apply(r.to, trigger, false);
    return this.state;
  }

  /**
   * Sets the state that a device reports, whatever the transitions say. Publishes a forced
   * change (trigger 'force'); a report of the current state only refreshes `updatedAt`.
   */
  forceState(state: string, reason?: string): string {
    if (!this.states.includes(state)) {
      throw new RangeError(
        `asset ${this.assetId}: unknown state ${JSON.stringify(state)}; states: ${this.states.join(', ')}`,
      );
    }
    if (state === this.state) {
      this.updatedAt = this.clock.now();
      return state;
    }
    this.apply(state, 'force', true, reason);
    return this.state;
  }

  /** Listens to this machine's changes (independent of the event bus). */
  onChange(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private apply(to: string, trigger: string, forced: boolean, reason?: string): void {
    const from = this.state;
    const now = this.clock.now();
    this.state = to;
    this.updatedAt = now;
    const entry: StateHistoryEntry = { from, to, trigger, forced, at: new Date(now) };
    if (reason !== undefined) entry.reason = reason;
    this.hist.push(entry);
    if (this.hist.length > this.historyLimit)
      this.hist.splice(0, this.hist.length - this.historyLimit);
    const change: StateChange = {
      assetId: this.assetId,
      from_state: from,
      to_state: to,
      trigger,
      forced,
    };
    if (reason !== undefined) change.reason = reason;
    for (const l of [...this.listeners]) l(change);
    this.bus?.publish(EventType.STATE_CHANGED, change);
  }

  toJSON(): { assetId: string; state: string; updatedAt: string } {
    return {
      assetId: this.assetId,
      state: this.state,
      updatedAt: new Date(this.updatedAt).toISOString(),
    };
  }
}

/**
 * Definitions checked once and shared by every machine made from them (10,000 chargers: one
 * check and one copy, not 10,000), by their transitions list. Only a definition frozen all
 * the way down is shared; one that can still change is checked and copied for each machine.
 */
const sharedDefinitions = new WeakMap<readonly Transition[], StateMachineDefinition>();

function frozenDefinition(d: StateMachineDefinition): boolean {
  return (
    Object.isFrozen(d.states) &&
    Object.isFrozen(d.transitions) &&
    d.transitions.every(
      (t) => Object.isFrozen(t) && (typeof t.from === 'string' || Object.isFrozen(t.from)),
    )
  );
}

/** The definition checked: shared when frozen, else a copy the caller cannot change. */
function checkedDefinition(d: StateMachineOptions): StateMachineDefinition {
  const hit = Array.isArray(d.transitions) ? sharedDefinitions.get(d.transitions) : undefined;
  if (hit && hit.states === d.states && hit.initial === d.initial) return hit;
  validateDefinition(d);
  if (frozenDefinition(d)) {
    const def = { states: d.states, initial: d.initial, transitions: d.transitions };
    sharedDefinitions.set(d.transitions, def);
    return def;
  }
  return {
    states: [...d.states],
    initial: d.initial,
    transitions: d.transitions.map((t) => ({ ...t })),
  };
}

/** Freezes a definition all the way down (its machines then share it). */
function frozen(d: StateMachineDefinition): StateMachineDefinition {
  for (const t of d.transitions) {
    if (typeof t.from !== 'string') Object.freeze(t.from);
    Object.freeze(t);
  }
  Object.freeze(d.transitions);
  Object.freeze(d.states);
  return Object.freeze(d);
}

function validateDefinition(d: StateMachineOptions): void {
  if (!Array.isArray(d.states) || d.states.length === 0) {
    throw new TypeError(`state machine ${d.assetId}: states must be a non-empty list`);
  }
  const states = new Set(d.states);
  if (!states.has(d.initial)) {
    throw new TypeError(
      `state machine ${d.assetId}: initial state ${JSON.stringify(d.initial)} is not one of the states (${d.states.join(', ')})`,
    );
  }
  if (!Array.isArray(d.transitions)) {
    throw new TypeError(`state machine ${d.assetId}: transitions must be a list`);
  }
  d.transitions.forEach((t, i) => {
    const where = `state machine ${d.assetId}: transition [${i}]`;
    if (!t || typeof t.trigger !== 'string' || t.trigger === '') {
      throw new TypeError(`${where}: trigger must be a non-empty string`);
    }
    if (!states.has(t.to))
      throw new TypeError(`${where}: unknown target state ${JSON.stringify(t.to)}`);
    const froms = t.from === '*' ? [] : Array.isArray(t.from) ? t.from : [t.from];
    for (const f of froms) {
      if (!states.has(f))
        throw new TypeError(`${where}: unknown source state ${JSON.stringify(f)}`);
    }
    if (t.guard !== undefined && typeof t.guard !== 'function') {
      throw new TypeError(`${where}: guard must be a function`);
    }
  });
}

export enum EvChargerState {
  AVAILABLE = 'AVAILABLE',
  PREPARING = 'PREPARING',
  CHARGING = 'CHARGING',
  SUSPENDED = 'SUSPENDED',
  FINISHING = 'FINISHING',
  FAULTED = 'FAULTED',
  UNAVAILABLE = 'UNAVAILABLE',
}

export enum BatteryState {
  IDLE = 'IDLE',
  CHARGING = 'CHARGING',
  DISCHARGING = 'DISCHARGING',
  FAULTED = 'FAULTED',
  UNAVAILABLE = 'UNAVAILABLE',
}

/** States in which an asset takes no commands: its commands are held until it leaves them. */
export const HOLD_STATES: ReadonlySet<string> = new Set(['FAULTED', 'UNAVAILABLE']);

const E = EvChargerState;
/** OCPP-aligned EV charger (connector) states and triggers. */
export const EV_CHARGER_DEFINITION: StateMachineDefinition = frozen({
  states: Object.values(EvChargerState),
  initial: E.AVAILABLE,
  transitions: [
    { from: E.AVAILABLE, trigger: 'plug_in', to: E.PREPARING },
    { from: E.PREPARING, trigger: 'start_charge', to: E.CHARGING },
    { from: [E.CHARGING, E.PREPARING], trigger: 'suspend', to: E.SUSPENDED },
    { from: E.SUSPENDED, trigger: 'resume', to: E.CHARGING },
    { from: [E.CHARGING, E.SUSPENDED], trigger: 'complete', to: E.FINISHING },
    {
      from: [E.PREPARING, E.CHARGING, E.SUSPENDED, E.FINISHING],
      trigger: 'unplug',
      to: E.AVAILABLE,
    },
    { from: '*', trigger: 'fault', to: E.FAULTED },
    { from: E.FAULTED, trigger: 'reset', to: E.AVAILABLE },
    {
      from: [E.AVAILABLE, E.PREPARING, E.FINISHING, E.FAULTED],
      trigger: 'disable',
      to: E.UNAVAILABLE,
    },
    { from: E.UNAVAILABLE, trigger: 'enable', to: E.AVAILABLE },
  ],
});

const B = BatteryState;
/** Battery states and triggers; charge and discharge switch directly, as in the seed. */
export const BATTERY_DEFINITION: StateMachineDefinition = frozen({
  states: Object.values(BatteryState),
  initial: B.IDLE,
  transitions: [
    { from: [B.IDLE, B.DISCHARGING], trigger: 'charge', to: B.CHARGING },
    { from: [B.IDLE, B.CHARGING], trigger: 'discharge', to: B.DISCHARGING },
    { from: [B.CHARGING, B.DISCHARGING], trigger: 'stop', to: B.IDLE },
    { from: '*', trigger: 'fault', to: B.FAULTED },
    { from: B.FAULTED, trigger: 'reset', to: B.IDLE },
    { from: [B.IDLE, B.FAULTED], trigger: 'disable', to: B.UNAVAILABLE },
    { from: B.UNAVAILABLE, trigger: 'enable', to: B.IDLE },
  ],
});

export interface PresetOptions {
  assetId: string;
  eventBus?: EventBus;
  clock?: Clock;
  historyLimit?: number;
}

export function createEvChargerStateMachine(options: PresetOptions): StateMachine {
  return new StateMachine({ ...EV_CHARGER_DEFINITION, ...options });
}

export function createBatteryStateMachine(options: PresetOptions): StateMachine {
  return new StateMachine({ ...BATTERY_DEFINITION, ...options });
}
