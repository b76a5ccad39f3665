import { TimeoutError } from 'ocpp-rpc';
import should from 'should';
import { ManualClock } from '../../src/clock';
import {
  ChargePointSimulator,
  type ChargePointSimulatorOptions,
  type OcppProtocol,
} from '../../src/sim/charge-point';
import { type Params, setProfile, T0, TestCentral, until } from '../helpers/ocpp-test-central';

const V = {
  'ocpp1.6': {
    maxPurpose: 'ChargePointMaxProfile',
    remoteStart: (idTag: string) => ['RemoteStartTransaction', { connectorId: 1, idTag }] as const,
    remoteStop: (transactionId: unknown) =>
      ['RemoteStopTransaction', { transactionId: Number(transactionId) }] as const,
    wrongTx: 9999,
    txStart: 'StartTransaction',
    changeAvailability: (operative: boolean) => ({
      connectorId: 1,
      type: operative ? 'Operative' : 'Inoperative',
    }),
    composite: { connectorId: 1, duration: 3600, chargingRateUnit: 'W' },
  },
  'ocpp2.0.1': {
    maxPurpose: 'ChargingStationMaxProfile',
    remoteStart: (idTag: string) =>
      [
        'RequestStartTransaction',
        { evseId: 1, idToken: { idToken: idTag, type: 'Central' }, remoteStartId: 7 },
      ] as const,
    remoteStop: (transactionId: unknown) =>
      ['RequestStopTransaction', { transactionId: String(transactionId) }] as const,
    wrongTx: 'no-such-transaction',
    txStart: 'TransactionEvent',
    changeAvailability: (operative: boolean) => ({
      operationalStatus: operative ? 'Operative' : 'Inoperative',
      evse: { id: 1 },
    }),
    composite: { evseId: 1, duration: 3600, chargingRateUnit: 'W' },
  },
} as const;

describe('ChargePointSimulator', () => {
  let central: TestCentral;
  let sims: ChargePointSimulator[] = [];
  let clock: ManualClock;

  beforeEach(async () => {
    central = new TestCentral();
    await central.listen();
    clock = new ManualClock(T0);
  });

  afterEach(async () => {
    await Promise.all(sims.map((s) => s.stop()));
    sims = [];
    await central.close();
    should(central.strictFailures).eql([]);
  });

  function sim(
    protocol: OcppProtocol,
    extra: Partial<ChargePointSimulatorOptions> = {},
  ): ChargePointSimulator {
    const s = new ChargePointSimulator({
      endpoint: central.url,
      identity: `CP-${protocol}`,
      protocol,
      clock,
      meterIntervalMs: 0,
      backoff: { initialDelay: 50, maxDelay: 200, randomisationFactor: 0 },
      ...extra,
    });
    sims.push(s);
    return s;
  }

  for (const protocol of ['ocpp1.6', 'ocpp2.0.1'] as const) {
    const v = V[protocol];
    const v16 = protocol === 'ocpp1.6';
    const id = `CP-${protocol}`;

    describe(protocol, () => {
      it('boots and reports its status with schema-valid payloads', async () => {
        const s = sim(protocol, { vendor: 'Acme', model: 'Sim-1' });
        const booted: unknown[] = [];
        s.on('booted', (r) => booted.push(r));
        const res = await s.start();
        should(res.status).equal('Accepted');
        should(booted).have.length(1);
        should(s.connected).be.true();
        const boot = await central.waitFor('BootNotification');
        if (v16) {
          should(boot).eql({ chargePointVendor: 'Acme', chargePointModel: 'Sim-1' });
          await until(() => central.of('StatusNotification').length === 2);
          should(central.of('StatusNotification')).eql([
            { connectorId: 0, status: 'Available', errorCode: 'NoError', timestamp: T0 },
            { connectorId: 1, status: 'Available', errorCode: 'NoError', timestamp: T0 },
          ]);
        } else {
          should(boot).eql({
            reason: 'PowerUp',
            chargingStation: { model: 'Sim-1', vendorName: 'Acme' },
          });
          await until(() => central.of('StatusNotification').length === 1);
          should(central.of('StatusNotification')).eql([
            { timestamp: T0, connectorStatus: 'Available', evseId: 1, connectorId: 1 },
          ]);
        }
        should(s.status).equal('Available');
      });

      it('plugs in, charges, stops and unplugs as a real charger reports it', async () => {
        const s = sim(protocol, { authorize: true });
        await s.start();
        await s.plugIn();
        should(s.status).equal('Preparing');
        await s.startCharging('TAG1');
        should(s.status).equal('Charging');
        should(s.powerW).equal(11000);
        should(s.transactionId).not.be.null();
        const txId = s.transactionId;
        if (v16) {
          should(central.of('Authorize')).eql([{ idTag: 'TAG1' }]);
          should(central.of('StartTransaction')[0]).containEql({
            connectorId: 1,
            idTag: 'TAG1',
            meterStart: 0,
          });
          should(txId).equal(42);
          should(
            central.of('StatusNotification', 0, (p) => p.connectorId === 1).map((p) => p.status),
          ).eql(['Available', 'Preparing', 'Charging']);
        } else {
          const [started, updated] = central.of('TransactionEvent');
          should(started).containEql({
            eventType: 'Started',
            triggerReason: 'CablePluggedIn',
            seqNo: 0,
          });
          should(started?.transactionInfo).eql({
            transactionId: txId,
            chargingState: 'EVConnected',
          });
          should(updated).containEql({
            eventType: 'Updated',
            triggerReason: 'Authorized',
            seqNo: 1,
          });
          should(updated?.transactionInfo).containEql({ chargingState: 'Charging' });
          should(central.of('StatusNotification').map((p) => p.connectorStatus)).eql([
            'Available',
            'Occupied',
          ]);
        }
        await s.stopCharging();
        should(s.transactionId).be.null();
        should(s.powerW).equal(0);
        await s.unplug();
        should(s.status).equal('Available');
        if (v16) {
          should(central.of('StopTransaction')[0]).containEql({
            transactionId: 42,
            reason: 'Local',
          });
          should(
            central.of('StatusNotification', 0, (p) => p.connectorId === 1).map((p) => p.status),
          ).eql(['Available', 'Preparing', 'Charging', 'Finishing', 'Available']);
        } else {
          const ended = central.of('TransactionEvent', 0, (p) => p.eventType === 'Ended')[0];
          should(ended?.triggerReason).equal('StopAuthorized');
          should(ended?.transactionInfo).eql({
            transactionId: txId,
            chargingState: 'EVConnected',
            stoppedReason: 'Local',
          });
          should(central.of('StatusNotification').map((p) => p.connectorStatus)).eql([
            'Available',
            'Occupied',
            'Available',
          ]);
        }
      });

      it('follows SetChargingProfile in W and in A: power = min(limit, EV max)', async () => {
        const s = sim(protocol, { evMaxKw: 11 });
        const limits: (number | null)[] = [];
        const powers: number[] = [];
        s.on('profile', (w) => limits.push(w));
        s.on('power', (w) => powers.push(w));
        await s.start();
        should(s.activeLimitW).be.null();

        let res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 7000 }),
        );
        should(res).eql({ status: 'Accepted' });
        should(s.activeLimitW).equal(7000);
        should(s.powerW).equal(0); // not charging yet

        await s.plugIn();
        await s.startCharging();
        should(s.powerW).equal(7000);

        res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 10, unit: 'A' }),
        );
        should(res).eql({ status: 'Accepted' });
        should(s.activeLimitW).equal(10 * 230 * 3);
        should(s.powerW).equal(6900);

        await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 32, unit: 'A' }),
        );
        should(s.activeLimitW).equal(32 * 230 * 3);
        should(s.powerW).equal(11000); // the EV's maximum

        should(limits).eql([7000, 6900, 22080]);
        should(powers).eql([7000, 6900, 11000]);
        should(s.profiles).have.length(1); // same purpose and stackLevel: replaced

        res = await central.call(
          id,
          'ClearChargingProfile',
          v16 ? { id: 1 } : { chargingProfileId: 1 },
        );
        should(res).eql({ status: 'Accepted' });
        should(s.activeLimitW).be.null();
        should(s.powerW).equal(11000);
      });

      it('puts a TxProfile over the TxDefaultProfile, capped by the station maximum', async () => {
        const s = sim(protocol);
        await s.start();
        await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 7000, stackLevel: 1 }),
        );

        // A TxProfile needs a running transaction, as on real chargers.
        let res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: 'TxProfile', limit: 4000, id: 2 }),
        );
        should(res).eql({ status: 'Rejected' });

        await s.plugIn();
        await s.startCharging();
        res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, {
            purpose: 'TxProfile',
            limit: 4000,
            id: 2,
            transactionId: s.transactionId,
          }),
        );
        should(res).eql({ status: 'Accepted' });
        should(s.activeLimitW).equal(4000); // TxProfile stack 0 wins over TxDefaultProfile stack 1
        should(s.powerW).equal(4000);

        // A station maximum only on connector/EVSE 0.
        res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: v.maxPurpose, limit: 3000, id: 3 }),
        );
        should(res).eql({ status: 'Rejected' });
        res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: v.maxPurpose, limit: 3000, id: 3, target: 0 }),
        );
        should(res).eql({ status: 'Accepted' });
        should(s.activeLimitW).equal(3000);

        const composite = await central.call(id, 'GetCompositeSchedule', v.composite);
        should(composite.status).equal('Accepted');
        const schedule = (v16 ? composite.chargingSchedule : composite.schedule) as Params;
        should(schedule.chargingSchedulePeriod).eql([{ startPeriod: 0, limit: 3000 }]);

        await central.call(
          id,
          'ClearChargingProfile',
          v16
            ? { chargingProfilePurpose: v.maxPurpose }
            : { chargingProfileCriteria: { chargingProfilePurpose: v.maxPurpose } },
        );
        should(s.activeLimitW).equal(4000);

        // The TxProfile ends with its transaction.
        await s.stopCharging();
        should(s.profiles.map((p) => p.purpose)).eql(['TxDefaultProfile']);
        should(s.activeLimitW).equal(7000);
      });

      it('follows a schedule over time, and suspends (SuspendedEVSE) at a limit of 0', async () => {
        const s = sim(protocol);
        await s.start();
        await s.plugIn();
        await s.startCharging();
        const params = setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 7000 });
        const profile = (v16 ? params.csChargingProfiles : params.chargingProfile) as Params;
        const schedule = (
          v16 ? profile.chargingSchedule : (profile.chargingSchedule as Params[])[0]
        ) as Params;
        schedule.duration = 1800;
        schedule.chargingSchedulePeriod = [
          { startPeriod: 0, limit: 7000 },
          { startPeriod: 600, limit: 0 },
          { startPeriod: 1200, limit: 3000 },
        ];
        should(await central.call(id, 'SetChargingProfile', params)).eql({ status: 'Accepted' });
        should(s.powerW).equal(7000);

        const composite = await central.call(id, 'GetCompositeSchedule', v.composite);
        const periods = (v16 ? composite.chargingSchedule : composite.schedule) as Params;
        should(periods.chargingSchedulePeriod).eql([
          { startPeriod: 0, limit: 7000 },
          { startPeriod: 600, limit: 0 },
          { startPeriod: 1200, limit: 3000 },
          { startPeriod: 1800, limit: 11000 }, // after the schedule: no limit, the EV maximum
        ]);

        clock.advance(600_000);
        await s.sendMeterValues(); // limits are re-evaluated at each meter tick and event
        should(s.activeLimitW).equal(0);
        should(s.powerW).equal(0);
        should(s.status).equal('SuspendedEVSE');
        if (v16) {
          should(central.of('StatusNotification').at(-1)).containEql({
            connectorId: 1,
            status: 'SuspendedEVSE',
          });
        } else {
          const changed = central.of('TransactionEvent').at(-2); // then the meter values
          should(changed).containEql({
            eventType: 'Updated',
            triggerReason: 'ChargingStateChanged',
          });
          should(changed?.transactionInfo).containEql({ chargingState: 'SuspendedEVSE' });
        }

        clock.advance(600_000);
        await s.sendMeterValues();
        should(s.powerW).equal(3000);
        should(s.status).equal('Charging');
        clock.advance(600_000);
        await s.sendMeterValues();
        should(s.activeLimitW).be.null();
        should(s.powerW).equal(11000);
        // 7 kW for 10 min, 0 for 10 min, 3 kW for 10 min
        should(s.energyWh).be.approximately(1000 * (7 / 6 + 0 + 3 / 6), 1e-6);
      });

      it('starts a transaction on a remote start (with its profile) and stops it on a remote stop', async () => {
        const s = sim(protocol);
        const limits: (number | null)[] = [];
        const powers: number[] = [];
        s.on('profile', (w) => limits.push(w));
        s.on('power', (w) => powers.push(w));
        await s.start();
        const [startMethod, startParams] = v.remoteStart('REMOTE');
        const profile = setProfile(protocol, { purpose: 'TxProfile', limit: 5000, id: 9 });
        const withProfile = {
          ...startParams,
          chargingProfile: v16 ? profile.csChargingProfiles : profile.chargingProfile,
        };
        // The report that says Charging (1.6 StatusNotification, 2.0.1 TransactionEvent
        // chargingState), and the simulator's state at the moment it reaches the central system.
        const charging = central.arrival(
          v16 ? 'StatusNotification' : 'TransactionEvent',
          (p) =>
            v16
              ? p.connectorId === 1 && p.status === 'Charging'
              : (p.transactionInfo as Params).chargingState === 'Charging',
          () => ({ limitW: s.activeLimitW, powerW: s.powerW, status: s.status }),
        );
        let res = await central.call(id, startMethod, withProfile);
        should(res.status).equal('Accepted');
        // A real charger applies the profile first: when Charging is reported, it is in force,
        // and the EV never drew more than it allows.
        should((await charging).probed).eql({ limitW: 5000, powerW: 5000, status: 'Charging' });
        should(limits).eql([5000]);
        should(powers).eql([5000]);
        should(s.transactionId).not.be.null();
        if (v16) {
          should(central.of('StartTransaction')[0]).containEql({ idTag: 'REMOTE' });
          should(central.of('Authorize')).eql([]); // a remote start is already authorised
        } else {
          // The sim plugs the cable in first (Started, CablePluggedIn), then the remote start
          // authorises the transaction.
          const [started, authorised] = central.of('TransactionEvent');
          should(started).containEql({ eventType: 'Started', triggerReason: 'CablePluggedIn' });
          should(authorised).containEql({ eventType: 'Updated', triggerReason: 'RemoteStart' });
          should(authorised?.transactionInfo).containEql({
            remoteStartId: 7,
            chargingState: 'Charging',
          });
          should(authorised?.idToken).eql({ idToken: 'REMOTE', type: 'Central' });
        }

        // A second start while charging is refused.
        res = await central.call(id, startMethod, startParams);
        should(res.status).equal('Rejected');

        const [stopMethod, wrong] = v.remoteStop(v.wrongTx);
        res = await central.call(id, stopMethod, wrong);
        should(res).eql({ status: 'Rejected' });
        should(s.transactionId).not.be.null();

        const mark = central.received.length;
        res = await central.call(id, stopMethod, v.remoteStop(s.transactionId)[1]);
        should(res).eql({ status: 'Accepted' });
        if (v16) {
          const stop = await central.waitFor('StopTransaction', mark);
          should(stop).containEql({ reason: 'Remote' });
        } else {
          const ended = await central.waitFor(
            'TransactionEvent',
            mark,
            (p) => p.eventType === 'Ended',
          );
          should(ended.triggerReason).equal('RemoteStop');
          should(ended.transactionInfo).containEql({ stoppedReason: 'Remote' });
        }
        await until(() => s.transactionId === null);
        should(s.powerW).equal(0);
        should(limits).eql([5000, null]); // the TxProfile ended with its transaction
        should(powers).eql([5000, 0]);
      });

      it('answers as the respond hook says: Rejected, NotImplemented, no reply', async () => {
        const answers: Record<
          string,
          ReturnType<NonNullable<ChargePointSimulatorOptions['respond']>>
        > = {
          SetChargingProfile: 'Rejected',
          ChangeAvailability: 'NotImplemented',
          Reset: 'noreply',
        };
        const calls: string[] = [];
        const s = sim(protocol, { respond: (method) => answers[method] });
        s.on('call', (method) => calls.push(method));
        await s.start();

        const res = await central.call(
          id,
          'SetChargingProfile',
          setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 7000 }),
        );
        should(res).eql({ status: 'Rejected' });
        should(s.activeLimitW).be.null(); // the hook only answers

        const err = await central.call(id, 'ChangeAvailability', v.changeAvailability(false)).then(
          () => null,
          (e: { rpcErrorCode?: string }) => e,
        );
        should(err?.rpcErrorCode).equal('NotImplemented');

        // NotSupported: as the status where the schema has it (1.6), else a CALLERROR (2.0.1).
        answers.SetChargingProfile = 'NotSupported';
        const notSupported = await central
          .call(
            id,
            'SetChargingProfile',
            setProfile(protocol, { purpose: 'TxDefaultProfile', limit: 7000 }),
          )
          .catch((e: { rpcErrorCode?: string }) => e);
        if (v16) should(notSupported).eql({ status: 'NotSupported' });
        else should(notSupported).have.property('rpcErrorCode', 'NotSupported');

        const timeout = await central
          .call(id, 'Reset', { type: v16 ? 'Soft' : 'Immediate' }, { callTimeoutMs: 100 })
          .then(
            () => null,
            (e: unknown) => e,
          );
        should(timeout).be.instanceOf(TimeoutError);
        should(calls).eql([
          'SetChargingProfile',
          'ChangeAvailability',
          'SetChargingProfile',
          'Reset',
        ]);
      });

      it('answers a call it does not know with a NotImplemented CALLERROR', async () => {
        const s = sim(protocol);
        await s.start();
        const err = await central.call(id, 'ClearCache', {}).then(
          () => null,
          (e: { rpcErrorCode?: string }) => e,
        );
        should(err?.rpcErrorCode).equal('NotImplemented');
        should(s.connected).be.true();
      });

      it('reconnects and boots again when the server closes the connection', async () => {
        const s = sim(protocol);
        const events: string[] = [];
        for (const e of ['connected', 'disconnected', 'booted']) s.on(e, () => events.push(e));
        await s.start();
        await s.plugIn();
        await until(() => central.of('StatusNotification').length >= (v16 ? 3 : 2));
        const mark = central.received.length;
        await central.client(id).close({ code: 1012, reason: 'service restart' });
        await central.waitFor('BootNotification', mark);
        await central.waitFor('StatusNotification', mark, (p) =>
          v16 ? p.connectorId === 1 : true,
        );
        should(events).eql(['connected', 'booted', 'disconnected', 'connected', 'booted']);
        should(s.connected).be.true();
        // The connector's status is reported again, as it is now.
        const after = central.of('StatusNotification', mark, (p) =>
          v16 ? p.connectorId === 1 : true,
        )[0];
        should(v16 ? after?.status : after?.connectorStatus).equal(v16 ? 'Preparing' : 'Occupied');
      });

      it('reconnects after the whole server restarts on the same port', async () => {
        const s = sim(protocol);
        await s.start();
        const port = central.port;
        const disconnected = new Promise((r) => s.once('disconnected', r));
        await central.close();
        await disconnected;
        should(s.connected).be.false();
        await should(s.plugIn()).be.rejectedWith(/not connected/);
        central = new TestCentral();
        await central.listen(port);
        const boot = await central.waitFor('BootNotification');
        should(boot).be.an.Object();
        await until(() => s.connected);
      });

      it('sends meter values with energy integrated over time, and SoC', async () => {
        const s = sim(protocol, { evMaxKw: 11, initialSocPercent: 50, batteryKwh: 20 });
        await s.start();
        if (!v16) {
          await s.sendMeterValues(); // no transaction: MeterValues
          const mv = await central.waitFor('MeterValues');
          should(mv.evseId).equal(1);
        }
        await s.plugIn();
        await s.startCharging();
        const mark = central.received.length;
        for (let i = 0; i < 3; i++) {
          clock.advance(60_000);
          await s.sendMeterValues();
        }
        const readings = central.of(v16 ? 'MeterValues' : 'TransactionEvent', mark).map((p) => {
          if (v16) should(p).containEql({ connectorId: 1, transactionId: s.transactionId });
          else should(p).containEql({ eventType: 'Updated', triggerReason: 'MeterValuePeriodic' });
          const [mv] = p.meterValue as { timestamp: string; sampledValue: Params[] }[];
          const get = (m: string) => Number(mv?.sampledValue.find((x) => x.measurand === m)?.value);
          return {
            t: mv?.timestamp,
            power: get('Power.Active.Import'),
            energy: get('Energy.Active.Import.Register'),
            soc: get('SoC'),
          };
        });
        should(readings.map((r) => r.energy)).eql([183.3, 366.7, 550]);
        should(readings.map((r) => r.power)).eql([11000, 11000, 11000]);
        should(readings[0]?.t).equal('2025-06-02T08:01:00.000Z');
        should(readings.map((r) => r.soc)).eql([50.9, 51.8, 52.8]);
        should(s.energyWh).be.approximately(550, 1e-6);
        // Unit fields in each version's shape.
        const last = central.of(v16 ? 'MeterValues' : 'TransactionEvent', mark).at(-1);
        const [mv] = (last?.meterValue ?? []) as { sampledValue: Params[] }[];
        const sv = mv?.sampledValue[0];
        if (v16) should(sv).containEql({ unit: 'W', value: '11000' });
        else should(sv).containEql({ unitOfMeasure: { unit: 'W' }, value: 11000 });
      });

      it('sends meter values on its own every meterIntervalMs while connected', async () => {
        const s = sim(protocol, { meterIntervalMs: 20, clock: undefined });
        await s.start();
        await s.plugIn();
        await s.startCharging();
        const method = v16 ? 'MeterValues' : 'TransactionEvent';
        const isMeter = (p: Params) => v16 || p.triggerReason === 'MeterValuePeriodic';
        await until(() => central.of(method, 0, isMeter).length >= 3);
        const energies = central.of(method, 0, isMeter).map((p) => {
          const [mv] = p.meterValue as { sampledValue: Params[] }[];
          return Number(
            mv?.sampledValue.find((x) => x.measurand === 'Energy.Active.Import.Register')?.value,
          );
        });
        for (let i = 1; i < energies.length; i++)
          should(energies[i]).be.aboveOrEqual(energies[i - 1] as number);
        if (!v16) {
          // A tick while Started or Ended is on its way must not overtake it: the
          // transaction's events arrive as Started, Updated..., Ended, numbered in order.
          await s.stopCharging();
          await s.sendMeterValues(); // on the same socket: whatever went before has arrived
          const events = central.of('TransactionEvent');
          should(events.map((p) => p.seqNo)).eql(events.map((_, i) => i));
          should(events[0]?.eventType).equal('Started');
          should(events.at(-1)?.eventType).equal('Ended');
          should(events.filter((p) => p.eventType !== 'Updated')).have.length(2);
        }
      });

      it('reports Unavailable and Available on ChangeAvailability, Faulted on a fault', async () => {
        const s = sim(protocol);
        await s.start();
        let res = await central.call(id, 'ChangeAvailability', v.changeAvailability(false));
        should(res).eql({ status: 'Accepted' });
        should(s.status).equal('Unavailable');
        const statusOf = (p: Params) => (v16 ? p.status : p.connectorStatus);
        await central.waitFor('StatusNotification', 0, (p) => statusOf(p) === 'Unavailable');
        res = await central.call(id, 'ChangeAvailability', v.changeAvailability(true));
        should(res).eql({ status: 'Accepted' });
        should(s.status).equal('Available');
        await until(() => central.of('StatusNotification').map(statusOf).at(-1) === 'Available');
        await s.fault('GroundFailure');
        should(s.status).equal('Faulted');
        const faulted = central.of('StatusNotification').at(-1);
        if (v16) should(faulted).containEql({ status: 'Faulted', errorCode: 'GroundFailure' });
        else should(faulted).containEql({ connectorStatus: 'Faulted' });
      });

      it('answers TriggerMessage and sends what was asked', async () => {
        const s = sim(protocol);
        await s.start();
        const mark = central.received.length;
        let res = await central.call(id, 'TriggerMessage', { requestedMessage: 'Heartbeat' });
        should(res).eql({ status: 'Accepted' });
        await central.waitFor('Heartbeat', mark);
        res = await central.call(id, 'TriggerMessage', {
          requestedMessage: 'FirmwareStatusNotification',
        });
        should(res).eql({ status: 'NotImplemented' });
        res = await central.call(id, 'Reset', { type: v16 ? 'Hard' : 'OnIdle' });
        should(res).eql({ status: 'Accepted' });
      });
    });
  }

  it('sends Heartbeat at the interval from BootNotification', async () => {
    central.interval = 1;
    const s = sim('ocpp1.6');
    await s.start();
    await central.waitFor('Heartbeat');
    should(s.connected).be.true();
  });

  it('retries BootNotification after the interval while the server says Pending', async () => {
    central.bootStatus = 'Pending';
    central.interval = 1;
    const s = sim('ocpp2.0.1');
    const res = await s.start();
    should(res.status).equal('Pending');
    await should(s.plugIn()).be.rejectedWith(/not connected and booted/);
    should(central.of('StatusNotification')).eql([]);
    central.bootStatus = 'Accepted';
    await central.waitFor('StatusNotification');
    should(central.of('BootNotification')).have.length(2);
  });

  it('authenticates with HTTP Basic (security profile 1); a wrong password is final', async () => {
    central.password = 's3cret';
    const good = sim('ocpp1.6', { identity: 'CP-GOOD', password: 's3cret' });
    should((await good.start()).status).equal('Accepted');
    const bad = sim('ocpp1.6', { identity: 'CP-BAD', password: 'nope' });
    await should(bad.start()).be.rejectedWith(/Unauthorized/);
    should(bad.connected).be.false();
  });

  it('waits for a server that is not there yet', async () => {
    const port = central.port;
    await central.close();
    const s = sim('ocpp1.6', { endpoint: `ws://127.0.0.1:${port}/ocpp` });
    const warnings: Error[] = [];
    s.on('warning', (e) => warnings.push(e));
    const started = s.start();
    await until(() => warnings.length >= 1);
    central = new TestCentral();
    await central.listen(port);
    should((await started).status).equal('Accepted');
  });
});
