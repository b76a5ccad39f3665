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
 * call at a time per charger and queues the rest in order, and across chargers the calls
 * leave in slices of a turn of the event loop (send-pacer.ts). The handlers are split per OCPP
 * version: what both answer alike in csms-handlers.ts, the rest in central-system-16.ts and
 * central-system-201.ts; the options and their checks are in central-system-options.ts, who
 * may connect (path, versions, identities, passwords) in admission.ts.
 *
 * Nothing a socket sends may end the process: every listener a socket reaches contains its
 * errors (a malformed upgrade URL gets a 400, a half-sent handshake is cut after
 * `handshakeTimeoutMs`, an over-long message id is a bad message). Closing sends chargers
 * 1001 (going away) and lets the closing handshake finish, for at most `closeTimeoutMs`.
 */

import { EventEmitter } from 'node:events';
import type http from 'node:http';
import type https from 'node:https';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { RPCServer } from 'ocpp-rpc';
import { type Clock, systemClock } from '../../clock';
import { type NetProblem, netProblem } from '../../net-errors';
import { AcceptPacer, SETUP_HOLD_MS } from './accept-pacer';
import { type Handshake, refusalOf } from './admission';
import { CallTimer } from './call-timer';
import { handlers16 } from './central-system-16';
import { handlers201 } from './central-system-201';
import {
  type CentralSystemOptions,
  type KnownCharger,
  type ResolvedOptions,
  resolveOptions,
} from './central-system-options';
import {
  type ChargerEvent,
  type HandlerHost,
  installHandlers,
  type RpcClient,
  type Session,
  tooLong,
  type VersionHandlers,
} from './csms-handlers';
import { SendPacer } from './send-pacer';
import {
  identityFromUrl,
  MAX_MESSAGE_ID_LENGTH,
  ownServer,
  refuseUpgrade,
  SocketSet,
  within,
} from './sockets';
import type { OcppVersion } from './translate';

export type { CentralSystemOptions, KnownCharger, SecurityProfile } from './central-system-options';
export type { ChargerEvent } from './csms-handlers';

/** Each OCPP version's own handlers of the calls a charger makes. */
const HANDLERS: Record<OcppVersion, VersionHandlers> = {
  'ocpp1.6': handlers16,
  'ocpp2.0.1': handlers201,
};

/** A call that was not sent: its `notAfter` had passed when its turn came. */
export class CallExpiredError extends Error {
  constructor(identity: string, method: string, notAfter: number) {
    super(
      `${method} to charger ${identity} not sent: it was valid until ${new Date(notAfter).toISOString()} and waited behind another call until then`,
    );
    this.name = 'CallExpiredError';
  }
}

export class CentralSystem extends EventEmitter {
  readonly options: ResolvedOptions;
  private readonly clock: Clock;
  private readonly rpc: RPCServer;
  private known = new Map<string, KnownCharger>();
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new SocketSet();
  /** Every charger connection, replaced ones too, until it has closed. */
  private readonly clients = new Set<RpcClient>();
  /** Each connection's call timeout (call-timer.ts), where ocpp-rpc lets us time its calls. */
  private readonly callTimers = new WeakMap<RpcClient, CallTimer>();
  private server: Server | null = null;
  private detachers: (() => void)[] = [];
  private txCounter = 0;
  /** Calls sent and not settled yet (answered, refused, timed out or failed). */
  private inFlight = 0;
  private closed = false;
  /** What the call handlers of every session use. */
  private readonly host: HandlerHost = {
    accepts: (identity) => this.known.has(identity) || this.options.allowUnknown,
    heartbeatIntervalSeconds: () => this.options.heartbeatIntervalSeconds,
    idStatus: () => (this.options.authorize === 'accept' ? 'Accepted' : 'Invalid'),
    now: () => new Date(this.clock.now()).toISOString(),
    newTransactionId: () => this.newTransactionId(),
    tell: (e) => this.tell(e),
  };
  private listenProblem: NetProblem | null = null;
  /** The calls of a turn, in slices (send-pacer.ts). */
  private readonly pacer: SendPacer;
  /** New connections, a window at a time setting up (accept-pacer.ts). */
  private readonly admissions: AcceptPacer;

  constructor(options: CentralSystemOptions = {}) {
    super();
    this.options = resolveOptions(options);
    this.clock = options.clock ?? systemClock;
    this.pacer = new SendPacer(this.options.sendSliceMs);
    this.admissions = new AcceptPacer(this.options.acceptSliceMs, SETUP_HOLD_MS);
    this.setChargers(options.chargers ?? []);
    this.rpc = new RPCServer({
      protocols: [...this.options.protocols],
      strictMode: true,
      callTimeoutMs: this.options.callTimeoutMs,
      // Counted here (ocpp-rpc's count misses over-long message ids, and its own close
      // after too many could reject unhandled).
      maxBadMessages: Number.POSITIVE_INFINITY,
      respondWithDetailedErrors: false,
      wssOptions: { maxPayload: this.options.maxPayloadBytes },
    });
    this.rpc.auth((accept, reject, handshake) => this.authenticate(accept, reject, handshake));
    this.rpc.on('client', (client: RpcClient) => {
      try {
        // ocpp-rpc calls close() itself in places and drops the promise; a close rejects
        // when the socket errors while closing (a bad frame from the charger), which would
        // be an unhandled rejection. This instance's close never rejects.
        const close = client.close.bind(client);
        client.close = (options) => close(options).catch(() => ({ code: 1006 }));
        this.clients.add(client);
        client.once('close', () => this.clients.delete(client));
        this.onClient(client);
      } catch (err) {
        this.fault(err);
        client.close({ code: 1011, reason: 'internal error' }).catch(() => {});
      }
    });
    this.rpc.on('error', (err: Error) => this.fault(err));
  }

  /** Reports a charger event; a listener that throws is reported, never thrown at a socket. */
  private tell(e: ChargerEvent): void {
    try {
      this.emit('charger', e);
    } catch (err) {
      this.fault(err);
    }
  }

  /** An error that no caller can catch: to the 'error' listeners, or a process warning. */
  private fault(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      if (this.listenerCount('error') > 0) this.emit('error', error);
      else process.emitWarning(`central system: ${error.message}`);
    } catch {
      // An 'error' listener that throws: nothing left to tell.
    }
  }

  /**
   * Hands an upgrade request for our path to ocpp-rpc, once its URL decodes; refuses it
   * with a plain HTTP status otherwise. Never throws, never rejects.
   */
  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      this.sockets.add(socket);
      if (this.closed) {
        refuseUpgrade(socket, 503, 'OCPP-J central system closing');
        return;
      }
      const id = identityFromUrl(req.url);
      if ('error' in id) {
        this.tell({
          type: 'refused',
          identity: id.raw,
          reason: id.error,
          remoteAddress: req.socket?.remoteAddress,
        });
        refuseUpgrade(socket, 400, id.error);
        return;
      }
      Promise.resolve(this.rpc.handleUpgrade(req, socket as Socket, head)).catch((err) => {
        this.fault(err);
        refuseUpgrade(socket, 500, 'OCPP-J central system: internal error');
      });
    } catch (err) {
      this.fault(err);
      refuseUpgrade(socket, 500, 'OCPP-J central system: internal error');
    }
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

  /**
   * Connections open on the central system's port, from their accept until they close:
   * chargers, ones still setting up and, on its own port, ones waiting to be let in.
   */
  get connectionsOpen(): number {
    return this.sockets.size;
  }

  /** Why the last `listen()` failed, short ("port 9220 in use"); null once it listens. */
  get problem(): NetProblem | null {
    return this.listenProblem;
  }

  /**
   * Listens on host:port (ws, or wss for tls-basic). Resolves to the port; rejects with the
   * full reason (its `code` is the errno), and `problem` says it short.
   */
  async listen(): Promise<number> {
    if (this.server) throw new Error('central system: already listening');
    const { tls, security, handshakeTimeoutMs } = this.options;
    const server = ownServer(
      security === 'tls-basic' ? tls : undefined,
      handshakeTimeoutMs,
      this.admissions,
      this.sockets,
      (req, socket, head) => this.upgrade(req, socket, head),
    );
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        const { host, port } = this.options;
        this.listenProblem = netProblem(err, { op: 'listen', host, port });
        const failure = new Error(
          err.code === 'EADDRINUSE'
            ? `central system: port ${port} on ${host} is in use`
            : `central system: cannot listen on ${host}:${port}: ${err.message}`,
        ) as NodeJS.ErrnoException;
        if (err.code) failure.code = err.code;
        reject(failure);
      };
      const onListening = () => {
        server.off('error', onError);
        this.listenProblem = null;
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      const { port, host, listenBacklog: backlog } = this.options;
      server.listen({ port, host, backlog });
    });
    server.on('error', (err) => this.fault(err));
    this.server = server;
    return (server.address() as { port: number }).port;
  }

  /**
   * Serves chargers on `path` of an existing HTTP(S) server (Node-RED's own, one port for
   * everything). Other upgrade requests are left to the server's other listeners. The server
   * is not ours: its timeouts (how long a request may take to arrive) stay as its owner set
   * them. Returns a function that detaches it.
   */
  attach(server: http.Server | https.Server): () => void {
    const prefix = this.options.path === '/' ? '/' : `${this.options.path}/`;
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!(req.url ?? '').startsWith(prefix)) return;
      // The request is read; its handshake waits for room (the socket is left unread).
      this.sockets.add(socket);
      this.admissions.add(socket as Socket, () => this.upgrade(req, socket, head));
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
    handshake: Handshake,
  ): void {
    const refusal = refusalOf(handshake, this.options, this.known);
    if (refusal === null) {
      accept({ identity: handshake.identity });
      return;
    }
    this.tell({
      type: 'refused',
      identity: handshake.identity,
      reason: refusal.message,
      remoteAddress: handshake.remoteAddress,
    });
    reject(refusal.code, refusal.message);
  }

  private onClient(client: RpcClient): void {
    const identity = client.identity;
    const protocol = client.protocol as OcppVersion;
    const previous = this.sessions.get(identity);
    const session: Session = {
      client,
      badInARow: 0,
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
        this.tell({ type: 'disconnected', identity, code: e.code, reason: e.reason });
      }
    });
    const bad = (error: string) => {
      session.badInARow++;
      this.tell({ type: 'bad-message', identity, error });
      if (session.badInARow > this.options.maxBadMessages) {
        client.close({ code: 1002, reason: 'Protocol error' }).catch(() => {});
      }
    };
    client.on('badMessage', (e: { error?: Error }) => bad(e?.error?.message ?? 'bad message'));
    // Every CALL that ocpp-rpc could read: an over-long id is a bad message (the handler
    // answers it with a FormatViolation), a good one ends a run of bad ones.
    const timer = CallTimer.for(client);
    if (timer) this.callTimers.set(client, timer);
    let first = true;
    client.on('call', (e: { outbound?: boolean; payload?: unknown[] }) => {
      if (e?.outbound) return timer?.sent(String(e.payload?.[1]));
      if (first) {
        // Its first message (a boot, or a status after a reconnect): through its setup.
        first = false;
        const socket = client.handshake?.request?.socket;
        if (socket) this.admissions.settled(socket);
      }
      const id = String(e?.payload?.[1] ?? '');
      if (id.length > MAX_MESSAGE_ID_LENGTH) bad(tooLong(id));
      else session.badInARow = 0;
    });
    client.on('callResult', (e: { outbound?: boolean }) => {
      if (e?.outbound) session.badInARow = 0;
    });
    client.on(
      'strictValidationFailure',
      (e: { error?: Error; method?: string; outbound?: boolean }) => {
        this.tell({
          type: 'bad-message',
          identity,
          error: `${e?.outbound ? 'sent' : 'received'} ${e?.method ?? 'message'} failed schema validation: ${e?.error?.message ?? ''}`,
        });
      },
    );
    installHandlers(session, this.host, HANDLERS[protocol]);
    this.tell({
      type: 'connected',
      identity,
      protocol,
      remoteAddress: client.handshake?.remoteAddress,
    });
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

  /** Calls ready to go that wait for a later turn of the event loop (`sendSliceMs`). */
  get waitingCalls(): number {
    return this.pacer.waiting;
  }

  /** Calls sent that have no answer yet (nor a timeout or failure). */
  get callsInFlight(): number {
    return this.inFlight;
  }

  /**
   * Sends a call to a charger and resolves to its answer. Calls to one charger go one at a
   * time, in order; a call whose `notAfter` (epoch ms) has passed when its turn comes is not
   * sent and rejects with CallExpiredError. The calls of all chargers leave about `sendSliceMs`
   * of them a turn of the event loop, in the order they were ready (send-pacer.ts); the
   * timeout starts when the call leaves. Rejects when the charger is not connected, times
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
    const issue = (): Promise<unknown> => {
      const timer = this.callTimers.get(session.client);
      const ms = options.timeoutMs ?? this.options.callTimeoutMs;
      if (timer && CallTimer.handles(ms)) {
        timer.arm(ms);
        return session.client
          .call(method, params, { callTimeoutMs: Number.POSITIVE_INFINITY })
          .finally(() => timer.settled());
      }
      return session.client.call(method, params, {
        ...(options.timeoutMs !== undefined ? { callTimeoutMs: options.timeoutMs } : {}),
      });
    };
    const send = () => {
      if (options.notAfter !== undefined && this.clock.now() >= options.notAfter)
        throw new CallExpiredError(identity, method, options.notAfter);
      this.inFlight++;
      let sent: Promise<unknown>;
      try {
        sent = issue();
      } catch (err) {
        this.inFlight--;
        throw err;
      }
      return sent.finally(() => this.inFlight--);
    };
    const run = () => this.pacer.run(send);
    const result = session.tail.then(run, run);
    session.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  /**
   * Closes every charger connection with 1001 (going away) and a reason, waits for the
   * closing handshakes for at most `closeTimeoutMs`, then cuts what is left and closes the
   * listener; the port is free when it resolves.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const d of this.detachers) d();
    this.detachers = [];
    const server = this.server;
    this.server = null;
    // Stop accepting connections now; the callback comes once every socket has ended.
    const serverClosed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    const ms = this.options.closeTimeoutMs;
    const goingAway = Promise.all(
      [...this.clients].map((c) => c.close({ code: 1001, reason: 'central system closing' })),
    );
    if (!(await within(goingAway, ms))) {
      this.sockets.destroyAll();
      await within(goingAway, ms);
    }
    // No charger left, so ocpp-rpc's own close (which drops its clients' close promises)
    // only stops its WebSocket server.
    await within(this.rpc.close({ force: true }), ms);
    this.sockets.destroyAll();
    await serverClosed;
    this.sessions.clear();
  }
}
