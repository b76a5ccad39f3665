/**
 * The core of what the central system answers to the calls that a charger makes: the
 * session and event types, the handlers that both OCPP versions share (BootNotification,
 * Heartbeat, StatusNotification, Authorize, MeterValues, DataTransfer, notifications, with
 * the field names of the version; NotImplemented for anything unknown), a transaction that
 * ends once, and the guard that refuses a call whose message id is longer than OCPP-J allows.
 * Each version's own calls (transactions) are in central-system-16.ts and
 * central-system-201.ts; the connection itself (sockets, authentication, sessions) belongs to
 * central-system.ts.
 */

import type { EventEmitter } from 'node:events';
import { createRPCError } from 'ocpp-rpc';
import { MAX_MESSAGE_ID_LENGTH } from './sockets';
import { type MeterReading, type OcppVersion, readMeterValues } from './translate';

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

export interface Transaction {
  id: string | number;
  connector: number;
  chargingState?: string;
}

/** ocpp-rpc's server-side client, as much of it as we use. */
export interface RpcClient extends EventEmitter {
  identity: string;
  protocol: string;
  handshake: {
    remoteAddress?: string;
    /** The upgrade request; its socket is the connection's (TLS or raw). */
    request?: { socket?: { remoteAddress?: string; remotePort?: number } };
  };
  handle(method: string | CallHandler, handler?: CallHandler): void;
  call(method: string, params?: unknown, options?: Record<string, unknown>): Promise<unknown>;
  close(options?: Record<string, unknown>): Promise<unknown>;
}

/** What ocpp-rpc gives a handler of a call from a charger. */
export type CallHandler = (x: { messageId: string; method: string; params: unknown }) => unknown;

export interface Session {
  client: RpcClient;
  /** Bad messages in a row (ocpp-rpc's, plus CALLs with an over-long message id). */
  badInARow: number;
  protocol: OcppVersion;
  /** Open transactions by connector (1.6 connectorId / 2.0.1 evseId). */
  transactions: Map<number, Transaction>;
  /** Ended transaction ids, to answer duplicates idempotently (bounded). */
  ended: Set<string>;
  connectorStatus: Map<number, string>;
  /** The last call queued on this connection: calls go one at a time, in order. */
  tail: Promise<void>;
}

/** What the handlers need from the central system. */
export interface HandlerHost {
  /** Whether a BootNotification from this identity is accepted. */
  accepts(identity: string): boolean;
  heartbeatIntervalSeconds(): number;
  /** The answer to Authorize and to the id tag of a 1.6 StartTransaction. */
  idStatus(): 'Accepted' | 'Invalid';
  /** The current time, ISO 8601. */
  now(): string;
  newTransactionId(): number;
  /** Reports an event; never throws. */
  tell(e: ChargerEvent): void;
}

/** How many ended transaction ids a session remembers, to answer duplicates. */
const ENDED_MEMORY = 64;

export function tooLong(id: string): string {
  return `message id of ${id.length} characters (OCPP-J allows at most ${MAX_MESSAGE_ID_LENGTH})`;
}

/**
 * What one OCPP version answers to the calls a charger makes (central-system-16.ts,
 * central-system-201.ts): where it puts what the handlers that both versions share read and
 * answer, and the handlers of its own calls.
 */
export interface VersionHandlers {
  /** StatusNotification's and MeterValues' connector (1.6) / EVSE (2.0.1) field. */
  connector: 'connectorId' | 'evseId';
  /** StatusNotification's status field. */
  status: 'status' | 'connectorStatus';
  /** Where Authorize's answer puts the status of the id. */
  idInfo: 'idTagInfo' | 'idTokenInfo';
  /** Whether a status event carries the charging state of the transaction (2.0.1). */
  chargingState: boolean;
  /** Notifications, answered with an empty object. */
  notifications: readonly string[];
  /** Installs the handlers of the version's own calls (transactions). */
  install(c: HandlerContext): void;
}

/** What a version's handlers use. */
export interface HandlerContext {
  readonly session: Session;
  readonly host: HandlerHost;
  readonly identity: string;
  /** Installs the handler of `method`; it refuses a call with an over-long message id. */
  handle(method: string, fn: CallHandler): void;
  /** Reports meter values (MeterValues, or those a 2.0.1 TransactionEvent carries). */
  meter(connector: number, transactionId: unknown, meterValue: unknown): void;
}

/**
 * Installs the handlers of every call a charger of this session's OCPP version may make:
 * those both versions share (BootNotification, Heartbeat, StatusNotification, Authorize,
 * MeterValues, DataTransfer, notifications), the version's own, and NotImplemented for the rest.
 */
export function installHandlers(
  session: Session,
  host: HandlerHost,
  version: VersionHandlers,
): void {
  const { protocol } = session;
  const identity = session.client.identity;
  const emit = (e: ChargerEvent) => host.tell(e);
  // Every handler refuses a call whose message id is longer than OCPP-J allows.
  const guard =
    (fn: CallHandler): CallHandler =>
    (x) => {
      if (String(x.messageId).length > MAX_MESSAGE_ID_LENGTH) {
        throw createRPCError('FormatViolation', tooLong(String(x.messageId)));
      }
      return fn(x);
    };
  const c: HandlerContext = {
    session,
    host,
    identity,
    handle: (method, fn) => session.client.handle(method, guard(fn)),
    meter: (connector, transactionId, meterValue) =>
      emit({
        type: 'meter',
        identity,
        connector,
        ...(transactionId !== undefined ? { transactionId: transactionId as number } : {}),
        readings: readMeterValues(meterValue),
      }),
  };

  c.handle('BootNotification', ({ params }) => {
    const accepted = host.accepts(identity);
    emit({
      type: 'boot',
      identity,
      protocol,
      params: params as Record<string, unknown>,
      accepted,
    });
    return {
      status: accepted ? 'Accepted' : 'Rejected',
      currentTime: host.now(),
      interval: host.heartbeatIntervalSeconds(),
    };
  });
  c.handle('Heartbeat', () => ({ currentTime: host.now() }));
  c.handle('StatusNotification', ({ params }) => {
    const p = params as Record<string, unknown>;
    const connector = Number(p[version.connector]);
    const status = String(p[version.status]);
    session.connectorStatus.set(connector, status);
    const tx = session.transactions.get(connector);
    emit({
      type: 'status',
      identity,
      protocol,
      connector,
      status,
      ...(typeof p.errorCode === 'string' ? { errorCode: p.errorCode } : {}),
      ...(version.chargingState && tx?.chargingState ? { chargingState: tx.chargingState } : {}),
    });
    return {};
  });
  c.handle('Authorize', () => ({ [version.idInfo]: { status: host.idStatus() } }));
  c.handle('MeterValues', ({ params }) => {
    const p = params as Record<string, unknown>;
    c.meter(Number(p[version.connector]), p.transactionId, p.meterValue);
    return {};
  });
  c.handle('DataTransfer', () => ({ status: 'UnknownVendorId' }));
  for (const m of version.notifications) c.handle(m, () => ({}));
  version.install(c);
  session.client.handle(
    guard(({ method }) => {
      throw createRPCError('NotImplemented', `${method} is not implemented by this central system`);
    }),
  );
}

/** Ends a transaction once (chargers resend StopTransaction / TransactionEvent Ended). */
export function endTransaction(
  host: HandlerHost,
  session: Session,
  id: string | number,
  reason?: string,
): void {
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
  host.tell({
    type: 'transaction-ended',
    identity: session.client.identity,
    connector,
    transactionId: id,
    ...(reason ? { reason } : {}),
  });
}
