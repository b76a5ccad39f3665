/**
 * What the central system answers to an OCPP 2.0.1 charger, beyond what every version
 * answers alike (csms-handlers.ts): StatusNotification per EVSE (with the charging state of
 * its transaction, which 2.0.1 keeps out of StatusNotification), Authorize with idTokenInfo,
 * MeterValues, TransactionEvent (the charger gives the transaction id; Started, or an
 * Updated for a transaction it missed, is tracked once, a change of chargingState is
 * reported, Ended ends it once, and the meter values it carries are reported), and the 2.0.1
 * notifications.
 */

import {
  acknowledge,
  endTransaction,
  type HandlerContext,
  reportMeter,
  reportStatus,
} from './csms-handlers';

type Params = Record<string, unknown>;

const NOTIFICATIONS = [
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
];

export function handlers201(c: HandlerContext): void {
  const { session, host, identity } = c;
  c.handle('StatusNotification', ({ params }) => {
    const p = params as Params;
    return reportStatus(c, Number(p.evseId), String(p.connectorStatus), p.errorCode, true);
  });
  c.handle('Authorize', () => ({ idTokenInfo: { status: host.idStatus() } }));
  c.handle('MeterValues', ({ params }) => {
    const p = params as Params;
    reportMeter(c, Number(p.evseId), p.transactionId, p.meterValue);
    return {};
  });
  acknowledge(c, NOTIFICATIONS);
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
      if (chargingState)
        host.tell({
          type: 'transaction-updated',
          identity,
          connector,
          transactionId: txId,
          chargingState,
        });
    } else if (existing && chargingState && chargingState !== existing.chargingState) {
      existing.chargingState = chargingState;
      host.tell({
        type: 'transaction-updated',
        identity,
        connector,
        transactionId: txId,
        chargingState,
      });
    }
    const meterValue = (params as { meterValue?: unknown }).meterValue;
    if (meterValue) reportMeter(c, connector, txId, meterValue);
    return {};
  });
}
