/**
 * An MQTT.js client for tests that records every message it receives (topic, JSON body, the
 * packet) and waits for one with a bound: `next(topic, pred?)` resolves with the first
 * recorded message (or the next to come) on a topic matching `topic` (MQTT wildcards) for
 * which `pred` holds, and rejects after `timeoutMs` naming what it waited for.
 */

import { connect, type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';

export interface Received {
  topic: string;
  /** The payload parsed as JSON, or undefined when it is not JSON (or empty). */
  json: unknown;
  text: string;
  packet: IPublishPacket;
}

export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('/');
  const t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (i >= t.length) return false;
    if (p[i] !== '+' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

export class MqttPeer {
  readonly messages: Received[] = [];
  private waiters = new Set<() => void>();

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const text = payload.toString('utf8');
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      this.messages.push({ topic, json, text, packet });
      for (const w of [...this.waiters]) w();
    });
  }

  static async connect(url: string, options: IClientOptions = {}): Promise<MqttPeer> {
    const client = connect(url, { reconnectPeriod: 100, connectTimeout: 5000, ...options });
    const peer = new MqttPeer(client);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`test peer: no connection to ${url}`)), 5000);
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
    return peer;
  }

  async subscribe(topic: string | string[]): Promise<void> {
    await this.client.subscribeAsync(topic, { qos: 1 });
  }

  /** Every message recorded so far on topics matching `topic`, optionally filtered. */
  all(topic: string, pred: (m: Received) => boolean = () => true): Received[] {
    return this.messages.filter((m) => topicMatches(topic, m.topic) && pred(m));
  }

  next(
    topic: string,
    pred: (m: Received) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<Received> {
    const find = () => this.messages.find((m) => topicMatches(topic, m.topic) && pred(m));
    const found = find();
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = find();
        if (!m) return;
        this.waiters.delete(check);
        clearTimeout(t);
        resolve(m);
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`test peer: nothing on ${topic} (matching) within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Forgets what was recorded (to wait for what comes next). */
  clear(): void {
    this.messages.length = 0;
  }

  async publish(
    topic: string,
    body: unknown,
    options: Parameters<MqttClient['publishAsync']>[2] = { qos: 1 },
  ): Promise<void> {
    const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    await this.client.publishAsync(topic, payload, options);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
