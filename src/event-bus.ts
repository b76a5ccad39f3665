import { type Clock, systemClock } from './clock';
import { type CommandJSON, isoTime } from './commands';
import type { LimitInForce } from './limits/types';

export enum EventType {
  COMMAND_CREATED = 'COMMAND_CREATED',
  COMMAND_DISPATCHED = 'COMMAND_DISPATCHED',
  COMMAND_ACKNOWLEDGED = 'COMMAND_ACKNOWLEDGED',
  COMMAND_COMPLETED = 'COMMAND_COMPLETED',
  COMMAND_FAILED = 'COMMAND_FAILED',
  COMMAND_TIMED_OUT = 'COMMAND_TIMED_OUT',
  COMMAND_CANCELLED = 'COMMAND_CANCELLED',
  STATE_CHANGED = 'STATE_CHANGED',
  SCHEDULE_RECEIVED = 'SCHEDULE_RECEIVED',
  ASSET_DEVIATION = 'ASSET_DEVIATION',
  ASSET_COMPLIANT = 'ASSET_COMPLIANT',
  SETPOINT_LIMITED = 'SETPOINT_LIMITED',
  LIMITS_CHANGED = 'LIMITS_CHANGED',
  OPTIMISER_SILENT = 'OPTIMISER_SILENT',
}

export const EVENT_TYPES: readonly EventType[] = Object.values(EventType);

/** Payload of STATE_CHANGED. Field names follow the seed (snake_case). */
export interface StateChange {
  assetId: string;
  from_state: string;
  to_state: string;
  /** The trigger that moved the machine, or 'force' for a state reported by the device. */
  trigger: string;
  forced: boolean;
  reason?: string;
}

/** Payload of SCHEDULE_RECEIVED. */
export interface ScheduleSummary {
  scheduleId: string;
  start: string;
  end: string;
  slotSeconds: number;
  slots: number;
  assets: string[];
  ignoredColumns: string[];
  unmappedColumns: string[];
  commandCount: number;
  /** The column read as site import limits (`limitColumn`), when one was used. */
  limitColumn?: string;
}

/** Payload of ASSET_DEVIATION: measurements show the asset not following its setpoint. */
export interface AssetDeviation {
  assetId: string;
  /** The setpoint in force, kW (an EV's limit; a battery's signed setpoint, + = charge). */
  setpointKw: number;
  /** The measurement that decided it, kW (+ = import/charge). */
  measuredKw: number;
  /** ISO time since when it has not followed (last seen fine, or the setpoint's start). */
  since: string;
  /** What is wrong, in words, e.g. "11 kW > 7.4 kW limit". */
  reason: string;
}

/** Payload of ASSET_COMPLIANT: a deviating asset follows its setpoint again. */
export interface AssetCompliant {
  assetId: string;
  setpointKw: number;
  measuredKw: number;
  /** ISO time when the deviation began. */
  since: string;
  /** How long it deviated, ms. */
  deviatedForMs: number;
}

/** Payload of SETPOINT_LIMITED: the site's limits changed what a setpoint applies. */
export interface SetpointLimited {
  assetId: string;
  /** The command that carries it (the one leaving, or a new re-allocation `<id>~n`). */
  commandId: string;
  /** What the schedule asked, kW signed (+ import/charge, - a battery's discharge). */
  askedKw: number;
  /** What goes to the device, kW signed. */
  kw: number;
  /** The limit that bound it (see `Allocation.boundBy`), or why it waits. */
  boundBy: string | null;
  /** What started the allocation: 'dispatch', 'meter building', 'cap dso-1 (grid-operator)', ... */
  reason: string;
}

/** Payload of LIMITS_CHANGED: every limit in force, and the meters that count as worst case. */
export interface LimitsChanged {
  limits: LimitInForce[];
  staleMeters: string[];
}

/**
 * Payload of OPTIMISER_SILENT: no schedule came for `silenceSeconds`, and the assets of the
 * last one were sent their fallback setpoints.
 */
export interface OptimiserSilence {
  /** The last schedule received, and when (ISO time). */
  scheduleId: string;
  receivedAt: string;
  /** Seconds since it was received. */
  silentForSeconds: number;
  /** The assets of the last schedule. */
  assets: string[];
  /** The fallback commands registered (assets with no fallback get none). */
  commandIds: string[];
}

export interface EventPayloads {
  [EventType.COMMAND_CREATED]: CommandJSON;
  [EventType.COMMAND_DISPATCHED]: CommandJSON;
  [EventType.COMMAND_ACKNOWLEDGED]: CommandJSON;
  [EventType.COMMAND_COMPLETED]: CommandJSON;
  [EventType.COMMAND_FAILED]: CommandJSON;
  [EventType.COMMAND_TIMED_OUT]: CommandJSON;
  [EventType.COMMAND_CANCELLED]: CommandJSON;
  [EventType.STATE_CHANGED]: StateChange;
  [EventType.SCHEDULE_RECEIVED]: ScheduleSummary;
  [EventType.ASSET_DEVIATION]: AssetDeviation;
  [EventType.ASSET_COMPLIANT]: AssetCompliant;
  [EventType.SETPOINT_LIMITED]: SetpointLimited;
  [EventType.LIMITS_CHANGED]: LimitsChanged;
  [EventType.OPTIMISER_SILENT]: OptimiserSilence;
}

export interface BusEvent<T extends EventType = EventType> {
  type: T;
  payload: EventPayloads[T];
  /** ISO 8601 time of publication, from the bus's clock. */
  timestamp: string;
  /** Increases by one with every event published on this bus. */
  sequence: number;
}

/** An event of any type, narrowed by `type`. */
export type AnyBusEvent = { [T in EventType]: BusEvent<T> }[EventType];

export type Handler<T extends EventType> = (event: BusEvent<T>) => void;
export type AnyHandler = (event: AnyBusEvent) => void;
export type Unsubscribe = () => void;

export interface EventBusOptions {
  clock?: Clock;
  /** Called when a subscriber throws. Default: console.error. */
  onError?: (error: unknown, event: AnyBusEvent) => void;
}

/**
 * A typed, synchronous publish/subscribe bus. Handlers run in subscription order inside
 * `publish`; one that throws is reported through `onError` and does not stop the others.
 */
export class EventBus {
  private readonly handlers = new Map<EventType | '*', Set<(e: AnyBusEvent) => void>>();
  private readonly clock: Clock;
  private readonly onError: (error: unknown, event: AnyBusEvent) => void;
  private seq = 0;
  /** Subscribers that threw, counted. */
  errors = 0;

  constructor(options: EventBusOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.onError =
      options.onError ??
      ((error, event) => {
        console.error(`event bus: a subscriber to ${event.type} threw:`, error);
      });
  }

  subscribe<T extends EventType>(type: T, handler: Handler<T>): Unsubscribe;
  subscribe(type: '*', handler: AnyHandler): Unsubscribe;
  subscribe(type: EventType | '*', handler: (e: never) => void): Unsubscribe {
    if (type !== '*' && !EVENT_TYPES.includes(type)) {
      throw new TypeError(
        `subscribe: unknown event type ${JSON.stringify(type)}; use one of ${EVENT_TYPES.join(', ')} or '*'`,
      );
    }
    if (typeof handler !== 'function') throw new TypeError('subscribe: handler must be a function');
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
    }
    // Wrap so that the same function subscribed twice is two subscriptions.
    const h = (e: AnyBusEvent) => (handler as (e: AnyBusEvent) => void)(e);
    set.add(h);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      set.delete(h);
    };
  }

  /**
   * Subscribes `handler` to each of `types` (in publish order, as '*' would, but only those:
   * events that are made only when their type has a listener stay unmade). One unsubscribe
   * for all.
   */
  subscribeTypes(types: Iterable<EventType>, handler: AnyHandler): Unsubscribe {
    const offs = [...new Set(types)].map((t) =>
      this.subscribe(t, handler as unknown as Handler<typeof t>),
    );
    return () => {
      for (const off of offs) off();
    };
  }

  /** Whether anyone listens to `type` (directly or through '*'): publishers can skip work. */
  hasSubscribers(type: EventType): boolean {
    return (this.handlers.get(type)?.size ?? 0) > 0 || (this.handlers.get('*')?.size ?? 0) > 0;
  }

  /** Number of subscriptions, per type and in all. */
  subscriberCount(type?: EventType | '*'): number {
    if (type !== undefined) return this.handlers.get(type)?.size ?? 0;
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }

  publish<T extends EventType>(type: T, payload: EventPayloads[T]): BusEvent<T> {
    const event = {
      type,
      payload,
      timestamp: isoTime(this.clock.now()),
      sequence: ++this.seq,
    } as BusEvent<T>;
    this.deliver(this.handlers.get(type), event as unknown as AnyBusEvent);
    this.deliver(this.handlers.get('*'), event as unknown as AnyBusEvent);
    return event;
  }

  private deliver(set: Set<(e: AnyBusEvent) => void> | undefined, event: AnyBusEvent): void {
    if (!set || set.size === 0) return;
    // Copy: a handler may unsubscribe itself or others while we iterate.
    for (const h of [...set]) {
      if (!set.has(h)) continue;
      try {
        h(event);
      } catch (err) {
        this.errors++;
        try {
          this.onError(err, event);
        } catch {
          // an error reporter that throws must not break publishing either
        }
      }
    }
  }

  /** Removes every subscription. */
  clear(): void {
    this.handlers.clear();
  }
}
