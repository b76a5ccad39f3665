/**
 * What the central system answers to an OCPP 2.0.1 charger: where 2.0.1 puts what the shared
 * handlers read and answer (csms-handlers.ts: evseId, connectorStatus with the charging state
 * of its transaction, which 2.0.1 keeps out of StatusNotification, idTokenInfo, its
 * notifications), and TransactionEvent: the charger gives the transaction id; a Started, or an
 * Updated for a transaction it missed, is tracked once, a change of chargingState is
 * reported, an Ended ends it once, and the meter values it carries are reported.
 */

import { endTransaction, type VersionHandlers } from './csms-handlers';

export const handlers201: VersionHandlers = {
  connector: 'evseId',
  status: 'connectorStatus',
  idInfo: 'idTokenInfo',
  chargingState: true,
  notifications: [
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
  ],

  install(c) {
    const { session, host, identity } = c;
    c.handle('TransactionEvent', ({ params }) => {
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
      const updated = (state: string) =>
        host.tell({
          type: 'transaction-updated',
          identity,
          connector,
          transactionId: txId,
          chargingState: state,
        });
      if (p.eventType === 'Ended') {
        endTransaction(host, session, txId, p.transactionInfo.stoppedReason);
      } else if (!existing && !session.ended.has(txId)) {
        // Started (or an Updated for a transaction we missed): track it once.
        session.transactions.set(connector, {
          id: txId,
          connector,
          ...(chargingState ? { chargingState } : {}),
        });
        host.tell({ type: 'transaction-started', identity, connector, transactionId: txId });
        if (chargingState) updated(chargingState);
      } else if (existing && chargingState && chargingState !== existing.chargingState) {
        existing.chargingState = chargingState;
        updated(chargingState);
      }
      const meterValue = (params as { meterValue?: unknown }).meterValue;
      if (meterValue) c.meter(connector, txId, meterValue);
      return {};
    });
  },
};
