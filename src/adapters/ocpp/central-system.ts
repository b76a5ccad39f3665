/**
 * An OCPP-J central system (CSMS) on ocpp-rpc: chargers connect over WebSocket, on its own
 * port (ws or wss) or on a path of an existing HTTP server; OCPP 1.6 and 2.0.1 on the same
 * endpoint, chosen by the WebSocket subprotocol. Strict mode validates every message in both
 * directions against the official schemas.
 *
 * It keeps one session per charger identity, keyed on the live connection (a charger that
 * reconnects while its old socket is still closing replaces it; the old one's close does not
 * remove the new one), answers what chargers send (boot, heartbeat, status, transactions,
 * meter values, authorisation), and lets callers send calls to a charger: ocpp-rpc sends one
 * call at a time per charger and queues the rest in order.
 */

import { timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { createRPCError, RPCServer } from 'ocpp-rpc';
import { type Clock, systemClock } from '../../clock';
import { type MeterReading, OCPP_VERSIONS, type OcppVersion, readMeterValues } from './translate';

export type SecurityProfile = 'none' | 'basic' | 'tls-basic';

export interface KnownCharger {
  identity: string;
  /** HTTP Basic password (security profiles 1 and 2). */
  password?: string;
}

export interface CentralSystemOptions {
  /** Listen address for `listen()`. Default 127.0.0.1. */
  host?: string;
  /** Port for `listen()`; 0 picks a free one. Default 9220. */
  port?: number;
  /** The path before the identity: chargers connect to `ws://host:port<path>/<identity>`. Default '/ocpp'. */
  path?: string;
  protocols?: OcppVersion[];
  security?: SecurityProfile;
  /** Certificate and key (PEM) for `tls-basic`. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  chargers?: KnownCharger[];
  /** Accept identities that are not in `chargers` (never with basic security). Default false. */
  allowUnknown?: boolean;
  /** Heartbeat interval sent in the BootNotification answer, seconds. Default 300. */
  heartbeatIntervalSeconds?: number;
  /** How long a call to a charger waits for its answer, ms. Default 20,000. */
  callTimeoutMs?: number;
  /** Bad messages in a row before a charger's connection is closed. Default 5. */
  maxBadMessages?: number;
  /** Largest WebSocket frame accepted, bytes. Default 65,536. */
  maxPayloadBytes?: number;
  /** Authorize / id tags: accept all (default), or reject all. */
  authorize?: 'accept' | 'reject';
  clock?: Clock;
}

/** Something a charger did, as the central system reports it. */
export type ChargerEvent =
  | { type: 'connected'; identity: string; protocol: OcppVersion; remoteAddress?: string }
  | { type: 'disconnected'; identity: string; code?: number; reason?: string }
  | {
      type: 'boot';
      identity: string;
      protocol: OcppVersion;
      params: Record<string, unknown>;
      accepted: boolean;
    }
  | {
      type: 'status';
      identity: string;
      protocol: OcppVersion;
      /** 1.6 connectorId or 2.0.1 evseId. */
      connector: number;
      status: string;
      errorCode?: string;
      /** 2.0.1: the charging state of the running transaction, when known. */
      chargingState?: string;
    }
  | {
      type: 'transaction-started';
      identity: string;
      connector: number;
      transactionId: string | number;
      idTag?: string;
    }
  | {
      type: 'transaction-updated';
      identity: string;
      connector: number;
      transactionId: string | number;
      chargingState?: string;
    }
  | {
      type: 'transaction-ended';
      identity: string;
      connector: number;
      transactionId: string | number;
      reason?: string;
    }
  | {
      type: 'meter';
      identity: string;
      connector: number;
      transactionId?: string | number;
      readings: MeterReading[];
    }
  | { type: 'refused'; identity: string; reason: string; remoteAddress?: string }
  | { type: 'bad-message'; identity: string; error: string };

interface Transaction {
  id: string | number;
  connector: number;
  chargingState?: string;
}

/** ocpp-rpc's server-side client, as much of it as we use. */
interface RpcClient extends EventEmitter {
  identity: string;
  protocol: string;
  handshake: { remoteAddress?: string };
  handle(
    method: string | ((x: { method: string; params: unknown }) => unknown),
    handler?: (x: { params: unknown }) => unknown,
  ): void;
  call(method: string, params?: unknown, options?: Record<string, unknown>): Promise<unknown>;
  close(options?: Record<string, unknown>): Promise<unknown>;
}

interface Session {
  client: RpcClient;
  protocol: OcppVersion;
  /** Open transactions by connector (1.6 connectorId / 2.0.1 evseId). */
  transactions: Map<number, Transaction>;
  /** Ended transaction ids, to answer duplicates idempotently (bounded). */
  ended: Set<string>;
  connectorStatus: Map<number, string>;
  /** The last call queued on this connection: calls go one at a time, in order. */
  tail: Promise<void>;
}

/** A call that was not sent: its `notAfter` had passed when its turn came. */
export class CallExpiredError extends Error {
  constructor(identity: string, method: string, notAfter: number) {
    super(
      `${method} to charger ${identity} not sent: it was valid until ${new Date(notAfter).toISOString()} and waited behind another call until then`,
    );
    this.name = 'CallExpiredError';
  }
}

const ENDED_MEMORY = 64;

export class CentralSystem extends EventEmitter {
  readonly options: Required<Omit<CentralSystemOptions, 'tls' | 'chargers' | 'clock'>> & {
    tls?: CentralSystemOptions['tls'];
  };
  private readonly clock: Clock;
  private readonly rpc: RPCServer;
  private known = new Map<string, KnownCharger>();
  private readonly sessions = new Map<string, Session>();
  private server: http.Server | https.Server | null = null;
  private detachers: (() => void)[] = [];
  private txCounter = 0;
  private closed = false;

  constructor(options: CentralSystemOptions = {}) {
    super();
    const path = normalisePath(options.path ?? '/ocpp');
    const protocols = options.protocols ?? [...OCPP_VERSIONS];
    for (const p of protocols) {
      if (!OCPP_VERSIONS.includes(p)) {
        throw new TypeError(
          `central system: unknown OCPP protocol ${JSON.stringify(p)}; use ${OCPP_VERSIONS.join(' or ')}`,
        );
      }
    }
    const security = options.security ?? 'none';
    if (!['none', 'basic', 'tls-basic'].includes(security)) {
      throw new TypeError(
        `central system: security must be none, basic or tls-basic, got ${JSON.stringify(security)}`,
      );
    }
    if (security === 'tls-basic' && (!options.tls?.cert || !options.tls?.key)) {
      throw new TypeError('central system: tls-basic needs a certificate and a key (PEM)');
    }
    this.options = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 9220,
      path,
      protocols,
      security,
      allowUnknown: options.allowUnknown ?? false,
      heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 300,
      callTimeoutMs: options.callTimeoutMs ?? 20_000,
      maxBadMessages: options.maxBadMessages ?? 5,
      maxPayloadBytes: options.maxPayloadBytes ?? 65_536,
      authorize: options.authorize ?? 'accept',
      ...(options.tls ? { tls: options.tls } : {}),
    };
    this.clock = options.clock ?? systemClock;
    this.setChargers(options.chargers ?? []);
    this.rpc = new RPCServer({
      protocols: [...protocols],
      strictMode: true,
      callTimeoutMs: this.options.callTimeoutMs,
      maxBadMessages: this.options.maxBadMessages,
      respondWithDetailedErrors: false,
      wssOptions: { maxPayload: this.options.maxPayloadBytes },
    });
    this.rpc.auth((accept, reject, handshake) => this.authenticate(accept, reject, handshake));
    this.rpc.on('client', (client: RpcClient) => this.onClient(client));
    this.rpc.on('error', (err: Error) => this.emit('error', err));
  }

  /** Replaces the list of known chargers (identities and passwords). */
  setChargers(chargers: KnownCharger[]): void {
    const known = new Map<string, KnownCharger>();
    for (const c of chargers) {
      if (typeof c.identity !== 'string' || c.identity === '') {
        throw new TypeError('central system: every charger needs an identity');
      }
      known.set(c.identity, c);
    }
    this.known = known;
  }

  /** Listens on host:port (ws, or wss for tls-basic). Resolves to the port. */
  async listen(): Promise<number> {
    if (this.server) throw new Error('central system: already listening');
    const onRequest = (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.statusCode = 426;
      res.setHeader('Upgrade', 'websocket');
      res.end('OCPP-J central system: connect with a WebSocket to <path>/<identity>\n');
    };
    const tls = this.options.tls;
    const server =
      this.options.security === 'tls-basic' && tls
        ? https.createServer(
            { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) },
            onRequest,
          )
        : http.createServer(onRequest);
    server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      this.rpc.handleUpgrade(req, socket, head);
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        server.off('listening', onListening);
        reject(
          (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
            ? new Error(
                `central system: port ${this.options.port} on ${this.options.host} is in use`,
              )
            : err,
        );
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.options.port, this.options.host);
    });
    server.on('error', (err) => this.emit('error', err));
    this.server = server;
    return (server.address() as { port: number }).port;
  }

  /**
   * Serves chargers on `path` of an existing HTTP(S) server (Node-RED's own, one port for
   * everything). Other upgrade requests are left to the server's other listeners.
   * Returns a function that detaches it.
   */
  attach(server: http.Server | https.Server): () => void {
    const prefix = this.options.path === '/' ? '/' : `${this.options.path}/`;
    const onUpgrade = (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      const url = req.url ?? '';
      if (url.startsWith(prefix)) this.rpc.handleUpgrade(req, socket, head);
    };
    server.on('upgrade', onUpgrade);
    const detach = () => {
      server.off('upgrade', onUpgrade);
    };
    this.detachers.push(detach);
    return detach;
  }

  private authenticate(
    accept: (session?: Record<string, unknown>, protocol?: string | false) => void,
    reject: (code: number, message: string) => void,
    handshake: {
      identity: string;
      endpoint: string;
      password: Buffer | undefined;
      remoteAddress: string | undefined;
      protocols: Set<string>;
    },
  ): void {
    const { identity } = handshake;
    const refuse = (code: number, message: string) => {
      this.emit('charger', {
        type: 'refused',
        identity,
        reason: message,
        remoteAddress: handshake.remoteAddress,
      } satisfies ChargerEvent);
      reject(code, message);
    };
    if (normalisePath(handshake.endpoint) !== this.options.path) {
      refuse(
        404,
        `unknown path ${handshake.endpoint}: chargers connect to ${this.options.path}/<identity>`,
      );
      return;
    }
    if (
      ![...(handshake.protocols ?? [])].some((p) =>
        (this.options.protocols as string[]).includes(p),
      )
    ) {
      refuse(
        400,
        `charger ${identity} offers no supported OCPP version (offered: ${[...(handshake.protocols ?? [])].join(', ') || 'none'}; served: ${this.options.protocols.join(', ')})`,
      );
      return;
    }
    const known = this.known.get(identity);
    const basic = this.options.security !== 'none';
    if (!known && (!this.options.allowUnknown || basic)) {
      refuse(404, `unknown charger identity ${JSON.stringify(identity)}`);
      return;
    }
    if (basic) {
      const expected = known?.password;
      const given = handshake.password;
      if (!expected || !given || !sameSecret(given, Buffer.from(expected, 'utf8'))) {
        refuse(401, `charger ${identity}: wrong or missing password`);
        return;
      }
    }
    accept({ identity });
  }

  private onClient(client: RpcClient): void {
    const identity = client.identity;
    const protocol = client.protocol as OcppVersion;
    const previous = this.sessions.get(identity);
    const session: Session = {
      client,
      protocol,
      transactions: previous?.protocol === protocol ? previous.transactions : new Map(),
      ended: new Set(),
      connectorStatus: new Map(),
      tail: Promise.resolve(),
    };
    this.sessions.set(identity, session);
    if (previous && previous.client !== client) {
      // The charger came back while its old socket was still open: drop the old one.
      previous.client
        .close({ code: 1000, reason: 'replaced by a new connection', force: true })
        .catch(() => {});
    }
    client.on('close', (e: { code?: number; reason?: string } = {}) => {
      // Only if the map still points at this connection (an old socket can close late).
      if (this.sessions.get(identity)?.client === client) {
        this.sessions.delete(identity);
        this.emit('charger', {
          type: 'disconnected',
          identity,
          code: e.code,
          reason: e.reason,
        } satisfies ChargerEvent);
      }
    });
    client.on('badMessage', (e: { error?: Error }) => {
      this.emit('charger', {
        type: 'bad-message',
        identity,
        error: e?.error?.message ?? 'bad message',
      } satisfies ChargerEvent);
    });
    client.on(
      'strictValidationFailure',
      (e: { error?: Error; method?: string; outbound?: boolean }) => {
        this.emit('charger', {
          type: 'bad-message',
          identity,
          error: `${e?.outbound ? 'sent' : 'received'} ${e?.method ?? 'message'} failed schema validation: ${e?.error?.message ?? ''}`,
        } satisfies ChargerEvent);
      },
    );
    this.installHandlers(session);
    this.emit('charger', {
      type: 'connected',
      identity,
      protocol,
      remoteAddress: client.handshake?.remoteAddress,
    } satisfies ChargerEvent);
  }

  private now(): string {
    return new Date(this.clock.now()).toISOString();
  }

  private installHandlers(session: Session): void {
    const { client, protocol } = session;
    const identity = client.identity;
    const v16 = protocol === 'ocpp1.6';
    const emit = (e: ChargerEvent) => this.emit('charger', e);

    client.handle('BootNotification', ({ params }) => {
      const accepted = this.known.has(identity) || this.options.allowUnknown;
      emit({
        type: 'boot',
        identity,
        protocol,
        params: params as Record<string, unknown>,
        accepted,
      });
      return {
        status: accepted ? 'Accepted' : 'Rejected',
        currentTime: this.now(),
        interval: this.options.heartbeatIntervalSeconds,
      };
    });
    client.handle('Heartbeat', () => ({ currentTime: this.now() }));
    client.handle('StatusNotification', ({ params }) => {
      const p = params as Record<string, unknown>;
      const connector = Number(v16 ? p.connectorId : p.evseId);
      const status = String(v16 ? p.status : p.connectorStatus);
      session.connectorStatus.set(connector, status);
      const tx = session.transactions.get(connector);
      emit({
        type: 'status',
        identity,
        protocol,
        connector,
        status,
        ...(typeof p.errorCode === 'string' ? { errorCode: p.errorCode } : {}),
        ...(!v16 && tx?.chargingState ? { chargingState: tx.chargingState } : {}),
      });
      return {};
    });
    client.handle('Authorize', () =>
      v16
        ? { idTagInfo: { status: this.idStatus() } }
        : { idTokenInfo: { status: this.idStatus() } },
    );
    client.handle('MeterValues', ({ params }) => {
      const p = params as Record<string, unknown>;
      const connector = Number(v16 ? p.connectorId : p.evseId);
      emit({
        type: 'meter',
        identity,
        connector,
        ...(p.transactionId !== undefined ? { transactionId: p.transactionId as number } : {}),
        readings: readMeterValues(p.meterValue),
      });
      return {};
    });
    client.handle('DataTransfer', () => ({ status: 'UnknownVendorId' }));
    for (const m of v16
      ? ['DiagnosticsStatusNotification', 'FirmwareStatusNotification']
      : [
          'FirmwareStatusNotification',
          'LogStatusNotification',
          'SecurityEventNotification',
          'NotifyEvent',
          'NotifyReport',
          'NotifyChargingLimit',
          'ClearedChargingLimit',
          'ReportChargingProfiles',
          'NotifyMonitoringReport',
          'PublishFirmwareStatusNotification',
        ]) {
      client.handle(m, () => ({}));
    }

    if (v16) {
      client.handle('StartTransaction', ({ params }) => {
        const p = params as { connectorId: number; idTag?: string };
        const id = this.newTransactionId();
        session.transactions.set(p.connectorId, { id, connector: p.connectorId });
        emit({
          type: 'transaction-started',
          identity,
          connector: p.connectorId,
          transactionId: id,
          ...(p.idTag ? { idTag: p.idTag } : {}),
        });
        return { transactionId: id, idTagInfo: { status: this.idStatus() } };
      });
      client.handle('StopTransaction', ({ params }) => {
        const p = params as { transactionId: number; reason?: string };
        // Chargers resend StopTransaction: only the first one ends the transaction.
        this.endTransaction(session, p.transactionId, p.reason);
        return {};
      });
    } else {
      client.handle('TransactionEvent', ({ params }) => {
        const p = params as {
          eventType: string;
          transactionInfo: {
            transactionId: string;
            chargingState?: string;
            stoppedReason?: string;
          };
          evse?: { id: number };
          triggerReason?: string;
        };
        const txId = p.transactionInfo.transactionId;
        const existing = [...session.transactions.values()].find((t) => String(t.id) === txId);
        const connector = p.evse?.id ?? existing?.connector ?? 1;
        const chargingState = p.transactionInfo.chargingState;
        if (p.eventType === 'Ended') {
          this.endTransaction(session, txId, p.transactionInfo.stoppedReason);
        } else if (!existing && !session.ended.has(txId)) {
          // Started (or an Updated for a transaction we missed): track it once.
          session.transactions.set(connector, {
            id: txId,
            connector,
            ...(chargingState ? { chargingState } : {}),
          });
          emit({ type: 'transaction-started', identity, connector, transactionId: txId });
          if (chargingState)
            emit({
              type: 'transaction-updated',
              identity,
              connector,
              transactionId: txId,
              chargingState,
            });
        } else if (existing && chargingState && chargingState !== existing.chargingState) {
          existing.chargingState = chargingState;
          emit({
            type: 'transaction-updated',
            identity,
            connector,
            transactionId: txId,
            chargingState,
          });
        }
        const meterValue = (params as { meterValue?: unknown }).meterValue;
        if (meterValue) {
          emit({
            type: 'meter',
            identity,
            connector,
            transactionId: txId,
            readings: readMeterValues(meterValue),
          });
        }
        return {};
      });
    }
    client.handle(({ method }) => {
      throw createRPCError('NotImplemented', `${method} is not implemented by this central system`);
    });
  }

  private endTransaction(session: Session, id: string | number, reason?: string): void {
    const key = String(id);
    if (session.ended.has(key)) return;
    session.ended.add(key);
    if (session.ended.size > ENDED_MEMORY)
      session.ended.delete(session.ended.values().next().value as string);
    let connector = 0;
    for (const [c, t] of session.transactions) {
      if (String(t.id) === key) {
        connector = c;
        session.transactions.delete(c);
      }
    }
    this.emit('charger', {
      type: 'transaction-ended',
      identity: session.client.identity,
      connector,
      transactionId: id,
      ...(reason ? { reason } : {}),
    } satisfies ChargerEvent);
  }

  private idStatus(): 'Accepted' | 'Invalid' {
    return this.options.authorize === 'accept' ? 'Accepted' : 'Invalid';
  }

  private newTransactionId(): number {
    // Unique across restarts of this process for a long while, and within the int32 range.
    this.txCounter = (this.txCounter + 1) % 1000;
    return (Math.floor(this.clock.now() / 1000) % 2_000_000) * 1000 + this.txCounter;
  }

  // ------------------------------------------------------------ queries and calls

  isConnected(identity: string): boolean {
    return this.sessions.has(identity);
  }

  protocolOf(identity: string): OcppVersion | undefined {
    return this.sessions.get(identity)?.protocol;
  }

  /** The open transaction on a connector (1.6) / EVSE (2.0.1), if any. */
  transactionOf(identity: string, connector: number): { transactionId: string | number } | null {
    const t = this.sessions.get(identity)?.transactions.get(connector);
    return t ? { transactionId: t.id } : null;
  }

  connected(): string[] {
    return [...this.sessions.keys()];
  }

  /**
   * Sends a call to a charger and resolves to its answer. Calls to one charger go one at a
   * time, in order; a call whose `notAfter` (epoch ms) has passed when its turn comes is not
   * sent and rejects with CallExpiredError. Rejects when the charger is not connected, times
   * out (ocpp-rpc TimeoutError), answers a CALLERROR (RPCError with `rpcErrorCode`), or when
   * what we send fails schema validation.
   */
  async call(
    identity: string,
    method: string,
    params: unknown,
    options: { timeoutMs?: number; notAfter?: number } = {},
  ): Promise<unknown> {
    const session = this.sessions.get(identity);
    if (!session) throw new Error(`charger ${identity} is not connected`);
    const run = () => {
      if (options.notAfter !== undefined && this.clock.now() >= options.notAfter)
        throw new CallExpiredError(identity, method, options.notAfter);
      return session.client.call(method, params, {
        ...(options.timeoutMs !== undefined ? { callTimeoutMs: options.timeoutMs } : {}),
      });
    };
    const result = session.tail.then(run, run);
    session.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  /** Closes every charger connection and the listener; the port is free when it resolves. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const d of this.detachers) d();
    this.detachers = [];
    await this.rpc
      .close({ code: 1001, reason: 'central system closing', force: true })
      .catch(() => {});
    const server = this.server;
    this.server = null;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    }
    this.sessions.clear();
  }
}

function normalisePath(p: string): string {
  const s = `/${p}`.replace(/\/+/g, '/').replace(/\/$/, '');
  return s === '' ? '/' : s;
}

function sameSecret(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
