/**
 * The simulated charge point's OCPP 1.6 dialect: BootNotification, StatusNotification per
 * connector (0: the station), Authorize / StartTransaction / StopTransaction with the
 * central system's transaction id, MeterValues, and the calls a central system makes
 * (smart charging, remote start / stop, availability, reset, trigger).
 */

import type { ChargingSchedule } from '../charging-profiles';
import {
  applyProfile,
  changeAvailability,
  clearProfiles,
  compositeSchedule,
  type Dialect,
  type RemoteStart,
  remoteStop,
  samples,
  toSimProfile,
  trigger,
} from './dialect';
import type { Params } from './types';

export const dialect16: Dialect = {
  bootCall: (link) => [
    'BootNotification',
    { chargePointVendor: link.opts.vendor, chargePointModel: link.opts.model },
  ],

  async report(link, force = false) {
    const st = link.station;
    const calls: Params[] = [];
    const station = st.stationUnavailable ? 'Unavailable' : 'Available';
    if (force || link.reported.station !== station) {
      link.reported.station = station;
      calls.push({ connectorId: 0, status: station });
    }
    const status = st.status;
    if (force || link.reported.status !== status) {
      link.reported.status = status;
      calls.push({ connectorId: link.opts.connectorId, status });
    }
    for (const c of calls) {
      const errorCode = c.status === 'Faulted' ? st.errorCode : 'NoError';
      await link.send('StatusNotification', { ...c, errorCode, timestamp: link.iso() });
    }
  },

  async plugIn(link) {
    link.station.plugged = true;
    link.station.finishing = false;
    link.sync();
    await this.report(link);
  },

  async startCharging(link, idTag, remote) {
    const st = link.station;
    if (!st.canStart) throw new Error(`cannot start charging while ${st.status}`);
    if (!st.plugged) await this.plugIn(link);
    if (!remote && link.opts.authorize) {
      const auth = await link.send('Authorize', { idTag });
      const status = (auth.idTagInfo as { status: string }).status;
      if (status !== 'Accepted') throw new Error(`Authorize: idTag ${idTag} is ${status}`);
    }
    const meterStart = Math.round(st.energyAt(link.now()));
    const res = await link.send('StartTransaction', {
      connectorId: link.opts.connectorId,
      idTag,
      meterStart,
      timestamp: link.iso(),
    });
    st.beginTx(res.transactionId as number, idTag, link.now(), true);
    const status = (res.idTagInfo as { status: string }).status;
    // The remote start's profile first, then the status that says Charging.
    if (status === 'Accepted' && remote?.profile) {
      applyProfile(link, remote.profile, link.opts.connectorId, false);
    }
    link.sync();
    if (status !== 'Accepted') {
      await this.stopCharging(link, 'DeAuthorized');
      throw new Error(`StartTransaction: idTag ${idTag} is ${status}`);
    }
    await this.report(link);
  },

  async stopCharging(link, reason) {
    const st = link.station;
    const tx = st.tx;
    if (!tx) return;
    link.sync();
    st.endTx();
    link.sync();
    await link.send('StopTransaction', {
      transactionId: tx.id as number,
      idTag: tx.idTag,
      meterStop: Math.round(st.energyAt(link.now())),
      timestamp: link.iso(),
      reason,
    });
    await this.report(link);
  },

  async unplug(link) {
    if (link.station.tx) await this.stopCharging(link, 'EVDisconnected');
    link.station.plugged = false;
    link.station.finishing = false;
    link.sync();
    await this.report(link);
  },

  async meterValues(link, context) {
    const tx = link.station.tx;
    await link.send('MeterValues', {
      connectorId: link.opts.connectorId,
      ...(tx ? { transactionId: tx.id } : {}),
      meterValue: [{ timestamp: link.iso(), sampledValue: samples(link, true, context) }],
    });
  },

  handlers: {
    SetChargingProfile(link, p) {
      const raw = p.csChargingProfiles as Params;
      const schedule = raw.chargingSchedule as ChargingSchedule;
      const profile = toSimProfile(
        raw,
        raw.chargingProfileId as number,
        schedule,
        p.connectorId as number,
        link.now(),
      );
      return { status: applyProfile(link, profile, link.opts.connectorId, false) };
    },

    ClearChargingProfile: (link, p) =>
      clearProfiles(link, {
        id: p.id,
        target: p.connectorId,
        purpose: p.chargingProfilePurpose,
        stackLevel: p.stackLevel,
      }),

    GetCompositeSchedule: (link, p) =>
      compositeSchedule(
        link,
        p.connectorId as number,
        link.opts.connectorId,
        p,
        (duration, periods) => ({
          connectorId: p.connectorId,
          scheduleStart: link.iso(),
          chargingSchedule: { duration, startSchedule: link.iso(), ...periods },
        }),
      ),

    RemoteStartTransaction(link, p) {
      const st = link.station;
      const connectorId = (p.connectorId as number | undefined) ?? link.opts.connectorId;
      const raw = p.chargingProfile as Params | undefined;
      if (connectorId !== link.opts.connectorId || !st.canStart || st.tx) {
        return { status: 'Rejected' };
      }
      if (raw && raw.chargingProfilePurpose !== 'TxProfile') return { status: 'Rejected' };
      const remote: RemoteStart = {};
      if (raw) {
        const schedule = raw.chargingSchedule as ChargingSchedule;
        const id = raw.chargingProfileId as number;
        remote.profile = toSimProfile(raw, id, schedule, connectorId, link.now());
      }
      link.after(() => dialect16.startCharging(link, p.idTag as string, remote));
      return { status: 'Accepted' };
    },

    RemoteStopTransaction: (link, p) => remoteStop(link, dialect16, p.transactionId),

    ChangeAvailability(link, p) {
      const connectorId = p.connectorId as number;
      if (connectorId !== 0 && connectorId !== link.opts.connectorId) return { status: 'Rejected' };
      return changeAvailability(link, connectorId === 0, p.type === 'Operative', dialect16);
    },

    Reset: () => ({ status: 'Accepted' }),

    TriggerMessage(link, p) {
      const c = p.connectorId as number | undefined;
      if (c !== undefined && c !== 0 && c !== link.opts.connectorId) return { status: 'Rejected' };
      if (p.requestedMessage !== 'StatusNotification' || c === undefined) {
        return trigger(link, dialect16, p.requestedMessage as string);
      }
      // The status of that connector alone (0: the whole station).
      link.after(async () => {
        const st = link.station;
        const station = c === 0;
        const status = station ? (st.stationUnavailable ? 'Unavailable' : 'Available') : st.status;
        if (station) link.reported.station = status;
        else link.reported.status = status;
        const errorCode = status === 'Faulted' ? st.errorCode : 'NoError';
        await link.send('StatusNotification', {
          connectorId: c,
          status,
          errorCode,
          timestamp: link.iso(),
        });
      });
      return { status: 'Accepted' };
    },
  },
};
