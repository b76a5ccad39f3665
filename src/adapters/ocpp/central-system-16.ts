/**
 * What the central system answers to an OCPP 1.6 charger: where 1.6 puts what the shared
 * handlers read and answer (csms-handlers.ts: connectorId, status, idTagInfo, its
 * notifications), and its transactions: StartTransaction (the central system gives the
 * transaction id) and StopTransaction (once, whatever the charger resends).
 */

import { endTransaction, type VersionHandlers } from './csms-handlers';

export const handlers16: VersionHandlers = {
  connector: 'connectorId',
  status: 'status',
  idInfo: 'idTagInfo',
  chargingState: false,
  notifications: ['DiagnosticsStatusNotification', 'FirmwareStatusNotification'],

  install(c) {
    const { session, host, identity } = c;
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
  },
};
