/**
 * What the central system answers to an OCPP 1.6 charger, beyond what every version answers
 * alike (csms-handlers.ts): StatusNotification per connector with its errorCode, Authorize
 * with idTagInfo, MeterValues, StartTransaction (the central system gives the transaction
 * id) and StopTransaction (once, whatever the charger resends), and the 1.6 notifications.
 */

import {
  acknowledge,
  endTransaction,
  type HandlerContext,
  reportMeter,
  reportStatus,
} from './csms-handlers';

type Params = Record<string, unknown>;

export function handlers16(c: HandlerContext): void {
  const { session, host, identity } = c;
  c.handle('StatusNotification', ({ params }) => {
    const p = params as Params;
    return reportStatus(c, Number(p.connectorId), String(p.status), p.errorCode, false);
  });
  c.handle('Authorize', () => ({ idTagInfo: { status: host.idStatus() } }));
  c.handle('MeterValues', ({ params }) => {
    const p = params as Params;
    reportMeter(c, Number(p.connectorId), p.transactionId, p.meterValue);
    return {};
  });
  acknowledge(c, ['DiagnosticsStatusNotification', 'FirmwareStatusNotification']);
  c.handle('StartTransaction', ({ params }) => {
    const p = params as { connectorId: number; idTag?: string };
    const id = host.newTransactionId();
    session.transactions.set(p.connectorId, { id, connector: p.connectorId });
    host.tell({
      type: 'transaction-started',
      identity,
      connector: p.connectorId,
      transactionId: id,
      ...(p.idTag ? { idTag: p.idTag } : {}),
    });
    return { transactionId: id, idTagInfo: { status: host.idStatus() } };
  });
  c.handle('StopTransaction', ({ params }) => {
    const p = params as { transactionId: number; reason?: string };
    // Chargers resend StopTransaction: only the first one ends the transaction.
    endTransaction(host, session, p.transactionId, p.reason);
    return {};
  });
}
