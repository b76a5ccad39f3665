import type { AddressInfo } from 'node:net';
import { RPCServer } from 'ocpp-rpc';
import type RpcServerClient from 'ocpp-rpc/lib/server-client';
import type { OcppProtocol } from '../../src/sim/charge-point';
import { until as untilHolds } from './wait';

// What the charge point simulator's tests share: a bare strict central system on ocpp-rpc,
// a bounded wait and SetChargingProfile calls in the shape of each OCPP version.

export const T0 = '2025-06-02T08:00:00.000Z';
export type Params = Record<string, unknown>;
export interface Received {
  identity: string;
  method: string;
  params: Params;
}

/**
 * A bare central system on ocpp-rpc in strict mode: it answers every call that a charge
 * point sends with a schema-valid response and records what it received.
 */
export class TestCentral {
  readonly server: RPCServer;
  readonly received: Received[] = [];
  readonly clients: RpcServerClient[] = [];
  readonly strictFailures: unknown[] = [];
  /** How each connection closed, as the server saw it (1006: no close frame). */
  readonly closes: { identity: string; code: number }[] = [];
  /**
   * Every message that a charger sent, in the order of arrival: a call as its method, an
   * answer as `answer to <method of our call>`.
   */
  readonly inbound: { identity: string; what: string }[] = [];
  private readonly sent = new Map<string, string>();
  port = 0;
  bootStatus = 'Accepted';
  interval = 300;
  password: string | undefined;
  private txSeq = 41;
  private waiters: { match: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];

  constructor() {
    this.server = new RPCServer({
      protocols: ['ocpp1.6', 'ocpp2.0.1'],
      strictMode: true,
      callTimeoutMs: 2000,
    });
    this.server.auth((accept, reject, handshake) => {
      if (this.password !== undefined && handshake.password?.toString() !== this.password) {
        reject(401, 'bad password');
      } else {
        accept({});
      }
    });
    this.server.on('client', (client: RpcServerClient) => {
      this.clients.push(client);
      const identity = client.identity ?? '';
      client.on('strictValidationFailure', (e: unknown) => this.strictFailures.push(e));
      client.on('close', ({ code }: { code: number }) => this.closes.push({ identity, code }));
      client.on('message', ({ message, outbound }: { message: string; outbound: boolean }) => {
        const [type, id, method] = JSON.parse(String(message)) as [number, string, string];
        if (outbound) {
          if (type === 2) this.sent.set(id, method);
        } else {
          this.inbound.push({
            identity,
            what: type === 2 ? method : `answer to ${this.sent.get(id)}`,
          });
        }
      });
      client.handle(async ({ method, params }) => {
        const r = { identity: client.identity ?? '', method: method ?? '', params: params ?? {} };
        this.received.push(r);
        for (const w of [...this.waiters]) {
          if (w.match(r)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(r);
          }
        }
        return this.answer(r.method, client.protocol);
      });
    });
  }

  async listen(port = 0): Promise<number> {
    const http = await this.server.listen(port, '127.0.0.1');
    this.port = (http.address() as AddressInfo).port;
    return this.port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ocpp`;
  }

  private answer(method: string, protocol: string | undefined): Params {
    const currentTime = new Date().toISOString();
    const accepted = { status: 'Accepted' };
    switch (method) {
      case 'BootNotification':
        return { status: this.bootStatus, interval: this.interval, currentTime };
      case 'Heartbeat':
        return { currentTime };
      case 'Authorize':
        return protocol === 'ocpp1.6' ? { idTagInfo: accepted } : { idTokenInfo: accepted };
      case 'StartTransaction':
        return { transactionId: ++this.txSeq, idTagInfo: accepted };
      default:
        return {};
    }
  }

  /** Calls received so far (from index `since`) with this method, optionally matching. */
  of(method: string, since = 0, where: (p: Params) => boolean = () => true): Params[] {
    return this.received
      .slice(since)
      .filter((r) => r.method === method && where(r.params))
      .map((r) => r.params);
  }

  /** The first call with this method received at or after index `since`. */
  waitFor(method: string, since = 0, where: (p: Params) => boolean = () => true): Promise<Params> {
    const match = (r: Received) => r.method === method && where(r.params);
    const seen = this.received.slice(since).find(match);
    if (seen) return Promise.resolve(seen.params);
    return new Promise((resolve) =>
      this.waiters.push({ match, resolve: (r) => resolve(r.params) }),
    );
  }

  /**
   * The first call with this method (matching `where`) that arrives from now on, with what
   * `probe()` returned the moment it arrived (before it is answered): the charger's state
   * as the central system heard of it.
   */
  arrival<T>(
    method: string,
    where: (p: Params) => boolean,
    probe: () => T,
  ): Promise<{ params: Params; probed: T }> {
    return new Promise((resolve) =>
      this.waiters.push({
        match: (r) => r.method === method && where(r.params),
        resolve: (r) => resolve({ params: r.params, probed: probe() }),
      }),
    );
  }

  /** The live server-side connection of a charger. */
  client(identity: string): RpcServerClient {
    const c = this.clients.filter((x) => x.identity === identity).at(-1);
    if (!c) throw new Error(`${identity} is not connected`);
    return c;
  }

  call(identity: string, method: string, params: Params, options?: Params): Promise<Params> {
    return this.client(identity).call(method, params, options) as Promise<Params>;
  }

  close(): Promise<void> {
    return this.server.close({});
  }
}

/** Waits until `cond` holds, polling every 5 ms (mocha's timeout bounds it). */
export function until(cond: () => boolean): Promise<void> {
  return untilHolds(cond, 'a condition of the test', {
    rounds: Number.POSITIVE_INFINITY,
    everyMs: 5,
  });
}

/** A SetChargingProfile call in the shape of each version. */
export function setProfile(
  protocol: OcppProtocol,
  p: {
    purpose: string;
    limit: number;
    unit?: 'A' | 'W';
    stackLevel?: number;
    id?: number;
    target?: number;
    transactionId?: number | string | null;
    start?: string;
  },
): Params {
  const schedule = {
    startSchedule: p.start ?? T0,
    chargingRateUnit: p.unit ?? 'W',
    chargingSchedulePeriod: [{ startPeriod: 0, limit: p.limit }],
  };
  const common = {
    stackLevel: p.stackLevel ?? 0,
    chargingProfilePurpose: p.purpose,
    chargingProfileKind: 'Absolute',
    ...(p.transactionId != null ? { transactionId: p.transactionId } : {}),
  };
  return protocol === 'ocpp1.6'
    ? {
        connectorId: p.target ?? 1,
        csChargingProfiles: { chargingProfileId: p.id ?? 1, ...common, chargingSchedule: schedule },
      }
    : {
        evseId: p.target ?? 1,
        chargingProfile: { id: p.id ?? 1, ...common, chargingSchedule: [{ id: 1, ...schedule }] },
      };
}
