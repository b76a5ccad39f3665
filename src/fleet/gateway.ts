/**
 * FleetGateway: one site's end of the northbound MQTT contract (`./contract`). It takes
 * schedules, hand-made commands and dynamic caps from a broker and answers each with an ack;
 * it publishes the site's presence (with a last will), every asset's state and setpoint in
 * force (retained), the site's events and its telemetry. Nothing in the site waits on the
 * network: publishes are fire-and-forget, events are kept in a bounded buffer while the broker
 * is away and sent on reconnect, and retained state is republished on every connect. Whatever
 * a socket sends is contained: a malformed request gets a rejected ack, never a throw.
 */

import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { type Command, isoTime } from '../commands';
import type { Conversion, ConvertOptions } from '../convert';
import { type AnyBusEvent, EVENT_TYPES, EventType } from '../event-bus';
import type { Site } from '../site';
import {
  type Ack,
  type AssetStatus,
  assetTopic,
  CONTRACT_VERSION,
  DEFAULT_PREFIX,
  eventTopic,
  type FleetEvent,
  type Presence,
  siteTopic,
  type Telemetry,
  telemetryTopic,
} from './contract';
import type { FleetGatewayOptions, FleetGatewayStats } from './gateway-options';
import { assetStatusOf, EventBuffer } from './outbound';
import { type Answer, FleetRequests, type RequestKind } from './requests';

export type { FleetGatewayOptions, FleetGatewayStats } from './gateway-options';

interface Reply {
  kind: RequestKind;
  responseTopic?: string;
  correlationData?: Buffer;
}

const SETPOINT_TYPES = new Set(['SET_CHARGE_RATE', 'SET_DISCHARGE_RATE', 'SET_POWER_LIMIT']);
const SETPOINT_ENDS = new Set<string>([
  EventType.COMMAND_COMPLETED,
  EventType.COMMAND_FAILED,
  EventType.COMMAND_TIMED_OUT,
  EventType.COMMAND_CANCELLED,
]);
const MAX_TIMER_MS = 2_147_483_647;

function packageVersion(): string {
  try {
    // src/fleet and dist/fleet both sit two levels below the package root.
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export class FleetGateway {
  readonly siteId: string;
  readonly prefix: string;
  private readonly site: Site;
  private readonly options: FleetGatewayOptions;
  private readonly version: string;
  private readonly eventTypes: ReadonlySet<string>;
  private readonly requests: FleetRequests;
  private readonly onError: (error: Error) => void;
  private client: MqttClient | null = null;
  private owned = false;
  private started = false;
  private stopping = false;
  private offs: (() => void)[] = [];
  private readonly buffer: EventBuffer;
  private readonly dirty = new Set<string>();
  private flushQueued = false;
  private readonly known = new Set<string>();
  private readonly endTimers = new Map<string, NodeJS.Timeout>();
  private lastError = '';
  private readonly counts = {
    received: 0,
    acked: 0,
    rejected: 0,
    duplicates: 0,
    eventsSent: 0,
  };

  constructor(site: Site, options: FleetGatewayOptions = {}) {
    this.site = site;
    this.options = options;
    this.siteId = options.siteId ?? site.siteId;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    if (/[/+#]/.test(this.siteId) || this.siteId === '') {
      throw new TypeError(
        `fleet gateway: siteId ${JSON.stringify(this.siteId)} may not be empty nor contain /, + or #`,
      );
    }
    if (options.url === undefined && options.client === undefined) {
      throw new TypeError('fleet gateway: give the broker url or an MQTT client');
    }
    for (const t of options.eventTypes ?? []) {
      if (!EVENT_TYPES.includes(t)) {
        throw new TypeError(`fleet gateway: eventTypes: unknown event type ${JSON.stringify(t)}`);
      }
    }
    const limit = options.eventBufferLimit ?? 1000;
    if (!Number.isInteger(limit) || limit < 0) {
      throw new TypeError(`fleet gateway: eventBufferLimit must be an integer >= 0, got ${limit}`);
    }
    this.buffer = new EventBuffer(limit);
    this.eventTypes = new Set(options.eventTypes ?? EVENT_TYPES);
    this.version = options.version ?? packageVersion();
    this.requests = new FleetRequests(site, options);
    this.onError =
      options.onError ?? ((e) => console.error(`fleet gateway ${this.siteId}:`, e.message));
  }

  /** True while connected to the broker. */
  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  stats(): FleetGatewayStats {
    return { ...this.counts, buffered: this.buffer.size, dropped: this.buffer.dropped };
  }

  /**
   * Listens to the site and connects. Resolves once connected and subscribed, or as soon as
   * the first attempt fails (the client keeps trying in the background); never rejects for
   * the network.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    // The types published and those the asset status follows, each on its own: the core
    // makes some events only when someone listens to their type (a plan's COMMAND_CREATED).
    const onBusEvent = (e: AnyBusEvent) => this.onBusEvent(e);
    const followed = new Set<EventType>([
      ...(this.eventTypes as ReadonlySet<EventType>),
      EventType.STATE_CHANGED,
      ...(SETPOINT_ENDS as ReadonlySet<EventType>),
    ]);
    this.offs.push(this.site.eventBus.subscribeTypes(followed, onBusEvent));
    this.offs.push(this.site.onMeasured((assetId, m) => this.onMeasured(assetId, m.kw, m.at)));
    let client = this.options.client;
    if (!client) {
      const will = this.presence('offline');
      client = connect(this.options.url as string, {
        clientId: `qe-gw-${this.siteId}-${Math.random().toString(36).slice(2, 8)}`,
        reconnectPeriod: 1000,
        ...this.options.mqtt,
        // Our own bounded buffer holds events while offline; the client holds nothing QoS 0.
        queueQoSZero: false,
        resubscribe: false,
        will: {
          topic: siteTopic(this.prefix, this.siteId, 'presence'),
          payload: Buffer.from(JSON.stringify(will)),
          qos: 1,
          retain: true,
        },
      });
      this.owned = true;
    }
    this.client = client;
    const onConnect = () => this.contain('connect', () => this.onConnect());
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) =>
      this.contain('a message', () => this.onMessage(topic, payload, packet));
    const onError = (err: Error) => this.report(err);
    const onReconnect = () => this.contain('reconnect', () => this.refreshWill());
    client.on('connect', onConnect);
    client.on('message', onMessage);
    client.on('error', onError);
    client.on('reconnect', onReconnect);
    const c = client;
    this.offs.push(() => {
      c.off('connect', onConnect);
      c.off('message', onMessage);
      c.off('error', onError);
      c.off('reconnect', onReconnect);
    });
    if (client.connected) {
      await this.onConnect();
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        c.off('close', done);
        c.off('connect', done);
        resolve();
      };
      c.once('close', done);
      c.once('connect', done);
    });
    if (c.connected) await this.subscribed;
  }

  /**
   * Publishes the offline presence, ends the client (when it made it; waits at most 2 s for
   * the broker) and removes every listener of the site's bus and of the client. Idempotent.
   */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopping = true;
    for (const off of this.offs.splice(0)) off();
    // The request under way is answered first (a schedule being read is registered, acked).
    await this.inbox;
    for (const t of this.endTimers.values()) clearTimeout(t);
    this.endTimers.clear();
    this.dirty.clear();
    const client = this.client;
    this.client = null;
    if (!client) return;
    if (client.connected) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        client.publish(
          siteTopic(this.prefix, this.siteId, 'presence'),
          JSON.stringify(this.presence('offline')),
          { qos: 1, retain: true },
          () => {
            clearTimeout(t);
            resolve();
          },
        );
      });
    }
    if (!this.owned) {
      // A client it was given stays as it was: connected, without our subscriptions.
      if (client.connected) client.unsubscribe(this.requestTopics(), () => {});
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => client.end(true, {}, () => resolve()), 2000);
      client.end(!client.connected, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ------------------------------------------------------------ connection

  private subscribed: Promise<void> = Promise.resolve();
  /** While a request is handled: the events it causes, sent after its ack. */
  private held: FleetEvent[] | null = null;

  private onConnect(): Promise<void> {
    const client = this.client;
    if (!client) return Promise.resolve();
    const topics = this.requestTopics();
    this.subscribed = new Promise<void>((resolve) => {
      client.subscribe(topics, { qos: 1 }, (err, granted) => {
        if (err) this.report(new Error(`cannot subscribe to ${topics.join(', ')}: ${err.message}`));
        for (const g of granted ?? []) {
          if (g.qos === 128)
            this.report(new Error(`the broker refused the subscription to ${g.topic}`));
        }
        resolve();
      });
    });
    this.lastError = '';
    this.publish(siteTopic(this.prefix, this.siteId, 'presence'), this.presence('online'), 1, true);
    for (const e of this.site.assets.values())
      if (e.machine || e.adapter) this.known.add(e.assetId);
    for (const id of this.known) this.publishStatus(id);
    this.dirty.clear();
    this.flushEvents();
    return this.subscribed;
  }

  private requestTopics(): string[] {
    return (['schedule', 'commands', 'limits'] as const).map((k) =>
      siteTopic(this.prefix, this.siteId, k),
    );
  }

  /** The will carries the time of the connection it belongs to. */
  private refreshWill(): void {
    const will = this.client?.options.will;
    if (this.owned && will) will.payload = Buffer.from(JSON.stringify(this.presence('offline')));
  }

  private presence(status: Presence['status']): Presence {
    return {
      siteId: this.siteId,
      status,
      version: this.version,
      contract: CONTRACT_VERSION,
      at: isoTime(this.site.clock.now()),
    };
  }

  /** Fire and forget: a failure is reported, nothing waits for the broker. */
  private publish(
    topic: string,
    body: unknown,
    qos: 0 | 1,
    retain: boolean,
    properties?: { correlationData?: Buffer },
  ): boolean {
    const client = this.client;
    if (!client) return false;
    const text = JSON.stringify(body);
    client.publish(topic, text, { qos, retain, ...(properties ? { properties } : {}) }, (err) => {
      if (err && !this.stopping)
        this.report(new Error(`publish to ${topic} failed: ${err.message}`));
    });
    return true;
  }

  private report(err: Error): void {
    // A broker that stays away says the same thing on every attempt: once is enough.
    if (err.message === this.lastError) return;
    this.lastError = err.message;
    try {
      this.onError(err);
    } catch {
      // an error reporter that throws must not break the gateway
    }
  }

  private contain(what: string, fn: () => unknown): void {
    try {
      const r = fn();
      if (r instanceof Promise)
        r.catch((err) => this.report(new Error(`${what}: ${(err as Error).message}`)));
    } catch (err) {
      this.report(new Error(`${what}: ${(err as Error).message}`));
    }
  }

  // ------------------------------------------------------------ out: events, status, telemetry

  private onBusEvent(e: AnyBusEvent): void {
    if (e.type === EventType.STATE_CHANGED) this.markAsset(e.payload.assetId);
    else if (SETPOINT_ENDS.has(e.type)) {
      const p = e.payload as { assetId: string; type: string };
      if (SETPOINT_TYPES.has(p.type)) this.markAsset(p.assetId);
    }
    if (!this.eventTypes.has(e.type)) return;
    const event: FleetEvent = {
      type: e.type,
      payload: e.payload,
      timestamp: e.timestamp,
      sequence: e.sequence,
    };
    if (this.held) this.held.push(event);
    else this.queueEvent(event);
  }

  private queueEvent(event: FleetEvent): void {
    if (this.connected && this.buffer.size === 0) this.sendEvent(event);
    else this.buffer.push(event);
  }

  private sendEvent(event: FleetEvent): void {
    if (
      this.publish(
        eventTopic(this.prefix, this.siteId, event.type),
        event,
        this.options.qosEvents ?? 1,
        false,
      )
    )
      this.counts.eventsSent++;
  }

  /** On (re)connect: the note of what was dropped, then the kept events in order. */
  private flushEvents(): void {
    for (const e of this.buffer.drain(this.site.clock.now())) this.sendEvent(e);
  }

  /** Coalesced: one status per asset per tick, however many changes. */
  private markAsset(assetId: string): void {
    this.known.add(assetId);
    this.dirty.add(assetId);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      if (!this.connected) return; // republished in full on reconnect
      const ids = [...this.dirty];
      this.dirty.clear();
      for (const id of ids) this.contain('asset status', () => this.publishStatus(id));
    });
  }

  /** The asset's state and setpoint in force, as published (retained). */
  assetStatus(assetId: string): AssetStatus {
    return assetStatusOf(this.site, assetId);
  }

  private publishStatus(assetId: string): void {
    const status = this.assetStatus(assetId);
    this.publish(assetTopic(this.prefix, this.siteId, assetId), status, 1, true);
    // A setpoint that ends with nothing after it changes the status without any event.
    clearTimeout(this.endTimers.get(assetId));
    this.endTimers.delete(assetId);
    const until = status.setpoint?.validUntil;
    if (until) {
      const ms = Date.parse(until) - this.site.clock.now();
      if (ms >= 0 && ms < MAX_TIMER_MS) {
        const t = setTimeout(() => {
          this.endTimers.delete(assetId);
          this.markAsset(assetId);
        }, ms + 1);
        t.unref();
        this.endTimers.set(assetId, t);
      }
    }
  }

  private onMeasured(assetId: string, kw: number, at: number | undefined): void {
    if (!this.connected || !Number.isFinite(kw)) return; // telemetry is worth nothing late
    const t: Telemetry = { assetId, kw, at: isoTime(at ?? this.site.clock.now()) };
    this.publish(telemetryTopic(this.prefix, this.siteId, assetId), t, 0, false);
  }

  // ------------------------------------------------------------ in: requests

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const base = `${this.prefix}/${this.siteId}/`;
    if (!topic.startsWith(base)) return;
    const kind = topic.slice(base.length);
    if (kind !== 'schedule' && kind !== 'commands' && kind !== 'limits') return;
    this.counts.received++;
    const props = packet.properties;
    const reply: Reply = {
      kind,
      ...(typeof props?.responseTopic === 'string' && props.responseTopic !== ''
        ? { responseTopic: props.responseTopic }
        : {}),
      ...(props?.correlationData ? { correlationData: props.correlationData } : {}),
    };
    const up = props?.userProperties?.scheduleId;
    const userScheduleId = Array.isArray(up) ? up[0] : up;
    // One request at a time, in the order they came (a schedule is read in slices).
    this.inbox = this.inbox
      .then(() => this.answer(reply, payload, userScheduleId))
      .catch((err: Error) => this.report(err));
  }

  /** The last request taken in (`onMessage`); each is answered after the one before. */
  private inbox: Promise<void> = Promise.resolve();

  private async answer(reply: Reply, payload: Buffer, scheduleId?: string): Promise<void> {
    // Stopping: what waits is not taken (no ack: the sender sends it again); the one under
    // way is finished and acked before the client ends (`stop`).
    if (this.stopping) return;
    // The ack goes out before the events the request caused (a schedule's COMMAND_CREATED,
    // one per command): the optimiser waits for the ack, not for them. Events of other
    // causes while a schedule is read wait with them, in order.
    const held: FleetEvent[] = [];
    this.held = held;
    let answer: Answer;
    try {
      answer = await this.requests.handle(reply.kind, payload, scheduleId);
    } finally {
      this.held = null;
    }
    this.ack(reply, answer);
    for (const e of held) this.queueEvent(e);
  }

  private ack(reply: Reply, a: Answer): void {
    if (a.status === 'accepted') this.counts.acked++;
    else if (a.status === 'rejected') this.counts.rejected++;
    else this.counts.duplicates++;
    const ack: Ack = { ...a, at: isoTime(this.site.clock.now()) };
    if (reply.responseTopic !== undefined) {
      this.publish(
        reply.responseTopic,
        ack,
        1,
        false,
        reply.correlationData ? { correlationData: reply.correlationData } : undefined,
      );
    } else {
      this.publish(siteTopic(this.prefix, this.siteId, `${reply.kind}/ack`), ack, 1, false);
    }
  }
}
