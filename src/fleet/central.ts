/**
 * FleetCentral: the optimiser's end of the northbound MQTT contract (`./contract`). It sends
 * schedules, commands and caps to sites and resolves each with the site's ack (MQTT 5: a
 * response topic of its own and correlation data, with a message expiry when asked; MQTT
 * 3.1.1: the site's ack topic, matched by request id), and it follows the sites: their
 * presence, asset status, events and telemetry, as a Node EventEmitter.
 */

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import {
  type Ack,
  type AssetStatus,
  type CommandsRequest,
  DEFAULT_PREFIX,
  type FleetEvent,
  type LimitsRequest,
  type Presence,
  type ScheduleRequest,
  siteTopic,
  type Telemetry,
} from './contract';

export interface FleetCentralOptions {
  url?: string;
  /** A client made elsewhere; not ended by stop(). */
  client?: MqttClient;
  /** MQTT.js options (protocolVersion 4 | 5, credentials, TLS, ...). */
  mqtt?: IClientOptions;
  /** Default `qe/v1`. */
  prefix?: string;
  /** How long a request waits for its ack by default, ms. Default 30 s. */
  timeoutMs?: number;
}

export interface RequestOptions {
  /** How long to wait for the ack, ms. */
  timeoutMs?: number;
  /** MQTT 5: the broker drops the request if it is not delivered within this many seconds. */
  expirySeconds?: number;
}

export interface ScheduleOptions extends RequestOptions {
  /** Default a fresh unique id. */
  scheduleId?: string;
}

export interface CommandsOptions extends RequestOptions {
  /** Default a fresh unique id. */
  requestId?: string;
}

/**
 * Events: `presence` (siteId, Presence), `asset` (siteId, AssetStatus), `event` (siteId,
 * FleetEvent), `telemetry` (siteId, Telemetry), `malformed` (topic, reason).
 */
export interface FleetCentralEvents {
  presence: [siteId: string, presence: Presence];
  asset: [siteId: string, status: AssetStatus];
  event: [siteId: string, event: FleetEvent];
  telemetry: [siteId: string, telemetry: Telemetry];
  malformed: [topic: string, reason: string];
}

interface Pending {
  resolve: (ack: Ack) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

type Kind = 'schedule' | 'commands' | 'limits';

export class FleetCentral extends EventEmitter<FleetCentralEvents> {
  readonly prefix: string;
  private readonly options: FleetCentralOptions;
  private client: MqttClient | null = null;
  private owned = false;
  private readonly presences = new Map<string, Presence>();
  private readonly statuses = new Map<string, Map<string, AssetStatus>>();
  /** By correlation data (hex) with MQTT 5, by `<site>/<kind>/<requestId>` with 3.1.1. */
  private readonly pending = new Map<string, Pending>();
  private responseTopic = '';
  private offs: (() => void)[] = [];

  constructor(options: FleetCentralOptions) {
    super();
    if (options.url === undefined && options.client === undefined) {
      throw new TypeError('fleet central: give the broker url or an MQTT client');
    }
    this.options = options;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
  }

  private get v5(): boolean {
    return this.client?.options.protocolVersion === 5;
  }

  /** Connects (resolves once connected and subscribed; rejects if the first attempt fails). */
  async start(): Promise<void> {
    if (this.client) return;
    const client =
      this.options.client ??
      connect(this.options.url as string, {
        clientId: `qe-central-${randomBytes(4).toString('hex')}`,
        ...this.options.mqtt,
      });
    this.owned = this.options.client === undefined;
    this.client = client;
    this.responseTopic = `${this.prefix}/_central/${client.options.clientId ?? randomBytes(4).toString('hex')}/response`;
    const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) => {
      try {
        this.onMessage(topic, payload, packet);
      } catch (err) {
        this.emit('malformed', topic, (err as Error).message);
      }
    };
    const onConnect = () => {
      client.subscribe(this.topics(), { qos: 1 }, () => {});
    };
    client.on('message', onMessage);
    client.on('connect', onConnect);
    const onError = () => {}; // MQTT.js keeps reconnecting; a request times out meanwhile
    client.on('error', onError);
    this.offs.push(() => {
      client.off('message', onMessage);
      client.off('connect', onConnect);
      client.off('error', onError);
    });
    if (!client.connected) {
      await new Promise<void>((resolve, reject) => {
        const ok = () => {
          client.off('error', fail);
          resolve();
        };
        const fail = (err: Error) => {
          client.off('connect', ok);
          reject(err);
        };
        client.once('connect', ok);
        client.once('error', fail);
      });
    }
    await client.subscribeAsync(this.topics(), { qos: 1 });
  }

  private topics(): string[] {
    const p = this.prefix;
    const t = [`${p}/+/presence`, `${p}/+/assets/+`, `${p}/+/events/+`, `${p}/+/telemetry/+`];
    t.push(
      ...(this.v5
        ? [this.responseTopic]
        : [`${p}/+/schedule/ack`, `${p}/+/commands/ack`, `${p}/+/limits/ack`]),
    );
    return t;
  }

  /** Rejects what waits for an ack, removes its listeners, ends the client when it made it. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    for (const off of this.offs.splice(0)) off();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('fleet central stopped'));
    }
    this.pending.clear();
    if (client && this.owned) await client.endAsync(!client.connected);
  }

  /** The sites seen, by id, with their last presence (retained: known at once). */
  sites(): Map<string, Presence> {
    return new Map(this.presences);
  }

  /** The last status of each asset of a site. */
  assets(siteId: string): Map<string, AssetStatus> {
    return new Map(this.statuses.get(siteId) ?? []);
  }

  /** Sends a schedule; resolves with the site's ack (accepted, duplicate or rejected). */
  publishSchedule(siteId: string, schedule: unknown, options: ScheduleOptions = {}): Promise<Ack> {
    const scheduleId = options.scheduleId ?? freshId('sch');
    const body: ScheduleRequest = { scheduleId, schedule, sentAt: new Date().toISOString() };
    return this.request(siteId, 'schedule', scheduleId, body, options);
  }

  /** Sends hand-made commands (`CommandInput`s); the ack's result lists their ids. */
  sendCommands(siteId: string, commands: unknown[], options: CommandsOptions = {}): Promise<Ack> {
    const requestId = options.requestId ?? freshId('cmd');
    const body: CommandsRequest = { requestId, commands };
    return this.request(siteId, 'commands', requestId, body, options);
  }

  /** Sends dynamic caps (`DynamicCapInput`s or `{id, clear: true}`); the ack lists those applied. */
  sendCaps(siteId: string, caps: unknown[], options: CommandsOptions = {}): Promise<Ack> {
    const requestId = options.requestId ?? freshId('cap');
    const body: LimitsRequest = { requestId, caps };
    return this.request(siteId, 'limits', requestId, body, options);
  }

  private request(
    siteId: string,
    kind: Kind,
    requestId: string,
    body: unknown,
    options: RequestOptions,
  ): Promise<Ack> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('fleet central: not started'));
    if (/[/+#]/.test(siteId) || siteId === '') {
      return Promise.reject(new TypeError(`fleet central: bad site id ${JSON.stringify(siteId)}`));
    }
    const v5 = this.v5;
    const correlation = randomBytes(8);
    const key = v5 ? correlation.toString('hex') : `${siteId}/${kind}/${requestId}`;
    if (this.pending.has(key)) {
      return Promise.reject(
        new Error(`fleet central: ${kind} ${requestId} to ${siteId} already waits for its ack`),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 30_000;
    return new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(
          new Error(`no ack from site ${siteId} for ${kind} ${requestId} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, timer });
      const properties = v5
        ? {
            responseTopic: this.responseTopic,
            correlationData: correlation,
            ...(options.expirySeconds !== undefined
              ? { messageExpiryInterval: options.expirySeconds }
              : {}),
          }
        : undefined;
      client.publish(
        siteTopic(this.prefix, siteId, kind),
        JSON.stringify(body),
        { qos: 1, ...(properties ? { properties } : {}) },
        (err) => {
          if (!err) return;
          clearTimeout(timer);
          this.pending.delete(key);
          reject(new Error(`cannot send ${kind} ${requestId} to ${siteId}: ${err.message}`));
        },
      );
    });
  }

  private settle(key: string, ack: Ack): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    clearTimeout(p.timer);
    p.resolve(ack);
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic === this.responseTopic) {
      const c = packet.properties?.correlationData;
      if (c) this.settle(c.toString('hex'), JSON.parse(payload.toString('utf8')) as Ack);
      return;
    }
    if (!topic.startsWith(`${this.prefix}/`)) return;
    const parts = topic.slice(this.prefix.length + 1).split('/');
    const siteId = parts[0] as string;
    if (payload.length === 0) {
      // A retained message cleared.
      if (parts[1] === 'presence') this.presences.delete(siteId);
      if (parts[1] === 'assets' && parts[2]) this.statuses.get(siteId)?.delete(parts[2]);
      return;
    }
    const body = JSON.parse(payload.toString('utf8')) as unknown;
    if (body === null || typeof body !== 'object') throw new Error('not a JSON object');
    if (parts.length === 2 && parts[1] === 'presence') {
      this.presences.set(siteId, body as Presence);
      this.emit('presence', siteId, body as Presence);
    } else if (parts.length === 3 && parts[2] === 'ack') {
      const ack = body as Ack;
      if (typeof ack.requestId === 'string')
        this.settle(`${siteId}/${parts[1]}/${ack.requestId}`, ack);
    } else if (parts.length === 3 && parts[1] === 'assets') {
      const m = this.statuses.get(siteId) ?? new Map<string, AssetStatus>();
      this.statuses.set(siteId, m);
      m.set(parts[2] as string, body as AssetStatus);
      this.emit('asset', siteId, body as AssetStatus);
    } else if (parts.length === 3 && parts[1] === 'events') {
      this.emit('event', siteId, body as FleetEvent);
    } else if (parts.length === 3 && parts[1] === 'telemetry') {
      this.emit('telemetry', siteId, body as Telemetry);
    }
  }
}

function freshId(kind: string): string {
  return `${kind}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
