/**
 * What the central system answers to the calls that a charger makes (boot, heartbeat,
 * status, authorisation, transactions, meter values, notifications), per OCPP version, and
 * the charger events it reports from them. Every handler refuses a call whose message id is
 * longer than OCPP-J allows. The connection itself (sockets, authentication, sessions)
 * belongs to central-system.ts.
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
  handshake: { remoteAddress?: string };
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

/** Installs the handlers of every call a charger of this session's OCPP version may make. */
export function installHandlers(session: Session, host: HandlerHost): void {
  const { protocol } = session;
  const identity = session.client.identity;
  const v16 = protocol === 'ocpp1.6';
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
  const client = {
    handle(method: string | CallHandler, fn?: CallHandler) {
      if (typeof method === 'function') session.client.handle(guard(method));
      else if (fn) session.client.handle(method, guard(fn));
    },
  };

  client.handle('BootNotification', ({ params }) => {
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
  client.handle('Heartbeat', () => ({ currentTime: host.now() }));
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
    v16 ? { idTagInfo: { status: host.idStatus() } } : { idTokenInfo: { status: host.idStatus() } },
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
      const id = host.newTransactionId();
      session.transactions.set(p.connectorId, { id, connector: p.connectorId });
      emit({
        type: 'transaction-started',
        identity,
        connector: p.connectorId,
        transactionId: id,
        ...(p.idTag ? { idTag: p.idTag } : {}),
      });
      return { transactionId: id, idTagInfo: { status: host.idStatus() } };
    });
    client.handle('StopTransaction', ({ params }) => {
      const p = params as { transactionId: number; reason?: string };
      // Chargers resend StopTransaction: only the first one ends the transaction.
      endTransaction(host, session, p.transactionId, p.reason);
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
        endTransaction(host, session, txId, p.transactionInfo.stoppedReason);
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
