/**
 * The simulated charge point's OCPP 2.0.1 dialect: the transaction starts when the cable goes
 * in (TransactionEvent Started, Updated, Ended with a seqNo); StatusNotification only says
 * Available / Occupied / Unavailable / Faulted, the rest is TransactionEvent chargingState.
 * Also the calls a central system makes (smart charging, RequestStart / StopTransaction,
 * availability, reset, trigger).
 */

import { randomUUID } from 'node:crypto';
import type { ChargingSchedule } from '../charging-profiles';
import {
  applyProfile,
  changeAvailability,
  clearProfiles,
  compositeSchedule,
  type Dialect,
  type Link,
  type RemoteStart,
  remoteStop,
  samples,
  toSimProfile,
  trigger,
} from './dialect';
import type { Station } from './station';
import type { Params, Result, SimStatus } from './types';

const connectorStatus201: Record<SimStatus, string> = {
  Available: 'Available',
  Preparing: 'Occupied',
  Charging: 'Occupied',
  SuspendedEVSE: 'Occupied',
  SuspendedEV: 'Occupied',
  Finishing: 'Occupied',
  Unavailable: 'Unavailable',
  Faulted: 'Faulted',
};

function chargingState201(st: Station): string {
  const s = st.status;
  if (s === 'Charging' || s === 'SuspendedEV' || s === 'SuspendedEVSE') return s;
  return st.plugged ? 'EVConnected' : 'Idle';
}

/**
 * Whether the central system has been told of the running transaction (its Started went
 * out, its Ended did not): only then may an Updated go out, never before Started or after
 * Ended.
 */
function announced201(link: Link): boolean {
  const tx = link.station.tx;
  return !!tx && link.reported.txId === tx.id;
}

/** Sends a TransactionEvent for the running transaction. */
async function txEvent201(
  link: Link,
  eventType: 'Started' | 'Updated' | 'Ended',
  triggerReason: string,
  extra: { info?: Params; event?: Params; meter?: string } = {},
): Promise<Result> {
  const tx = link.station.tx;
  if (!tx) throw new Error('no transaction');
  const chargingState = chargingState201(link.station);
  link.reported.chargingState = chargingState;
  if (eventType === 'Started') link.reported.txId = tx.id;
  if (eventType === 'Ended') link.reported.txId = undefined;
  const params: Params = {
    eventType,
    timestamp: link.iso(),
    triggerReason,
    seqNo: tx.seqNo++,
    transactionInfo: {
      transactionId: tx.id,
      chargingState,
      ...(tx.remoteStartId !== undefined ? { remoteStartId: tx.remoteStartId } : {}),
      ...extra.info,
    },
    evse: { id: link.opts.evseId, connectorId: 1 },
    ...extra.event,
  };
  if (extra.meter) {
    params.meterValue = [
      { timestamp: link.iso(), sampledValue: samples(link, false, extra.meter) },
    ];
  }
  return link.send('TransactionEvent', params);
}

export const dialect201: Dialect = {
  bootCall: (link) => [
    'BootNotification',
    {
      reason: 'PowerUp',
      chargingStation: { model: link.opts.model, vendorName: link.opts.vendor },
    },
  ],

  async report(link, force = false) {
    const st = link.station;
    const connector = connectorStatus201[st.status];
    if (force || link.reported.status !== connector) {
      link.reported.status = connector;
      await link.send('StatusNotification', {
        timestamp: link.iso(),
        connectorStatus: connector,
        evseId: link.opts.evseId,
        connectorId: 1,
      });
    }
    if (announced201(link) && link.reported.chargingState !== chargingState201(st)) {
      await txEvent201(link, 'Updated', 'ChargingStateChanged');
    }
  },

  async plugIn(link) {
    const st = link.station;
    if (st.plugged) return;
    st.plugged = true;
    link.sync();
    if (!st.canStart) return this.report(link);
    st.beginTx(randomUUID(), '', link.now(), false);
    await this.report(link);
    await txEvent201(link, 'Started', 'CablePluggedIn', { meter: 'Transaction.Begin' });
  },

  async startCharging(link, idTag, remote) {
    const st = link.station;
    if (!st.canStart) throw new Error(`cannot start charging while ${st.status}`);
    if (!st.plugged) await this.plugIn(link);
    const idToken = { idToken: idTag, type: remote ? 'Central' : 'ISO14443' };
    if (!remote && link.opts.authorize) {
      const auth = await link.send('Authorize', { idToken });
      const status = (auth.idTokenInfo as { status: string }).status;
      if (status !== 'Accepted') throw new Error(`Authorize: idToken ${idTag} is ${status}`);
    }
    const trigger = remote ? 'RemoteStart' : 'Authorized';
    const started = !st.tx;
    const tx = st.tx ?? st.beginTx(randomUUID(), idTag, link.now(), true);
    tx.idTag = idTag;
    tx.charging = true;
    if (remote?.remoteStartId !== undefined) tx.remoteStartId = remote.remoteStartId;
    // The remote start's profile first, then the TransactionEvent that says Charging.
    if (remote?.profile) applyProfile(link, remote.profile, link.opts.evseId, false);
    link.sync();
    await txEvent201(link, started ? 'Started' : 'Updated', trigger, {
      event: { idToken },
      ...(started ? { meter: 'Transaction.Begin' } : {}),
    });
    await this.report(link);
  },

  async stopCharging(link, reason) {
    const st = link.station;
    if (!st.tx) return;
    link.sync();
    const trigger =
      reason === 'Remote'
        ? 'RemoteStop'
        : reason === 'EVDisconnected'
          ? 'EVCommunicationLost'
          : reason === 'DeAuthorized'
            ? 'Deauthorized'
            : reason === 'Local'
              ? 'StopAuthorized'
              : 'AbnormalCondition';
    st.tx.charging = false;
    link.sync();
    await txEvent201(link, 'Ended', trigger, {
      info: { stoppedReason: reason },
      meter: 'Transaction.End',
    });
    st.endTx();
    link.reported.chargingState = undefined;
    link.sync();
    await this.report(link);
  },

  async unplug(link) {
    const st = link.station;
    st.plugged = false;
    if (st.tx) await this.stopCharging(link, 'EVDisconnected');
    st.finishing = false;
    link.sync();
    await this.report(link);
  },

  async meterValues(link, context) {
    // A transaction whose Started is still on its way (or whose Ended is) gets none.
    if (announced201(link)) {
      const trigger = context === 'Trigger' ? 'Trigger' : 'MeterValuePeriodic';
      await txEvent201(link, 'Updated', trigger, { meter: context });
      return;
    }
    await link.send('MeterValues', {
      evseId: link.opts.evseId,
      meterValue: [{ timestamp: link.iso(), sampledValue: samples(link, false, context) }],
    });
  },

  handlers: {
    SetChargingProfile(link, p) {
      const raw = p.chargingProfile as Params;
      const schedule = (raw.chargingSchedule as ChargingSchedule[])[0]!;
      const profile = toSimProfile(raw, raw.id as number, schedule, p.evseId as number, link.now());
      return { status: applyProfile(link, profile, link.opts.evseId, true) };
    },

    ClearChargingProfile(link, p) {
      const c = (p.chargingProfileCriteria ?? {}) as Params;
      return clearProfiles(link, {
        id: p.chargingProfileId,
        target: c.evseId,
        purpose: c.chargingProfilePurpose,
        stackLevel: c.stackLevel,
      });
    },

    GetCompositeSchedule: (link, p) =>
      compositeSchedule(link, p.evseId as number, link.opts.evseId, p, (duration, periods) => ({
        schedule: { evseId: p.evseId, duration, scheduleStart: link.iso(), ...periods },
      })),

    RequestStartTransaction(link, p) {
      const st = link.station;
      const evseId = (p.evseId as number | undefined) ?? link.opts.evseId;
      const raw = p.chargingProfile as Params | undefined;
      if (evseId !== link.opts.evseId || !st.canStart) return { status: 'Rejected' };
      if (raw && raw.chargingProfilePurpose !== 'TxProfile') return { status: 'Rejected' };
      const running = st.tx?.id;
      const remote: RemoteStart = { remoteStartId: p.remoteStartId as number };
      if (raw) {
        const schedule = (raw.chargingSchedule as ChargingSchedule[])[0]!;
        remote.profile = toSimProfile(raw, raw.id as number, schedule, evseId, link.now());
      }
      const idTag = (p.idToken as { idToken: string }).idToken;
      link.after(() => dialect201.startCharging(link, idTag, remote));
      return running === undefined
        ? { status: 'Accepted' }
        : { status: 'Accepted', transactionId: running };
    },

    RequestStopTransaction: (link, p) => remoteStop(link, dialect201, p.transactionId),

    ChangeAvailability(link, p) {
      const evse = p.evse as { id: number } | undefined;
      if (evse && evse.id !== 0 && evse.id !== link.opts.evseId) return { status: 'Rejected' };
      const station = !evse || evse.id === 0;
      return changeAvailability(link, station, p.operationalStatus === 'Operative', dialect201);
    },

    Reset: () => ({ status: 'Accepted' }),

    TriggerMessage(link, p) {
      const message = p.requestedMessage as string;
      const evse = p.evse as { id: number; connectorId?: number } | undefined;
      if (evse && (evse.id !== link.opts.evseId || (evse.connectorId ?? 1) !== 1)) {
        return { status: 'Rejected' };
      }
      if (message === 'TransactionEvent') {
        if (!link.station.tx) return { status: 'Rejected' };
        link.after(async () => {
          // While Started (or Ended) is on its way, that event carries the state asked for.
          if (announced201(link))
            await txEvent201(link, 'Updated', 'Trigger', { meter: 'Trigger' });
        });
        return { status: 'Accepted' };
      }
      return trigger(link, dialect201, message);
    },
  },
};
