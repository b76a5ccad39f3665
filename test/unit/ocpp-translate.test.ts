import should from 'should';
import {
  CHARGING_STATE_201,
  type ChargerConfig,
  commandToCall,
  interpretResponse,
  kwToLimit,
  type OcppVersion,
  readMeterValues,
  round1,
  STATUS_16,
  STATUS_201,
  stationMaxCall,
  TranslationError,
} from '../../src/adapters/ocpp/translate';
import { type Command, CommandType, createCommand } from '../../src/commands';

// The official schemas, as ocpp-rpc's strict mode uses them.
const validators = require('ocpp-rpc/lib/standard-validators') as {
  subprotocol: string;
  validate(id: string, params: unknown): boolean;
}[];
const validate = (version: OcppVersion, method: string, params: unknown) => {
  const v = validators.find((x) => x.subprotocol === version);
  if (!v) throw new Error(`no validator for ${version}`);
  return v.validate(`urn:${method}.req`, params);
};

// biome-ignore lint/suspicious/noExplicitAny: OCPP payloads of two versions, read by path
type Payload = Record<string, any>;

const T = Date.parse('2025-06-02T08:00:00Z');
const cmd = (type: CommandType, valueKw = 0): Command =>
  createCommand(
    { assetId: 'ev1', type, valueKw, scheduledAt: T },
    { now: T, maxRetries: 3, timeoutSeconds: 30, newId: () => 'sch:ev1:0' },
  );
const charger: ChargerConfig = { identity: 'CP1', assetId: 'ev1', ratedKw: 22 };

describe('OCPP translation', () => {
  it('kW -> W rounded to 0.1, or -> A per phase from voltage and phases', () => {
    should(kwToLimit(7.4, charger)).eql({ unit: 'W', limit: 7400 });
    should(kwToLimit(0.00004, charger)).eql({ unit: 'W', limit: 0 });
    should(kwToLimit(11, { ...charger, unit: 'A' })).eql({ unit: 'A', limit: 15.9 }); // 11000 / (230 * 3)
    should(kwToLimit(7.4, { ...charger, unit: 'A', phases: 1, voltage: 230 })).eql({
      unit: 'A',
      limit: 32.2,
    });
    should(() => kwToLimit(1, { ...charger, unit: 'A', phases: 4 })).throw(/phases 1 to 3/);
    should(round1(0.1 + 0.2)).equal(0.3);
  });

  for (const version of ['ocpp1.6', 'ocpp2.0.1'] as OcppVersion[]) {
    describe(version, () => {
      it('SET_CHARGE_RATE: a schema-valid Absolute TxDefaultProfile with one period from 0', () => {
        const call = commandToCall(cmd(CommandType.SET_CHARGE_RATE, 11), charger, version, null);
        should(call.method).equal('SetChargingProfile');
        should(validate(version, call.method, call.params)).be.true();
        const p = call.params as Payload;
        const profile = version === 'ocpp1.6' ? p.csChargingProfiles : p.chargingProfile;
        const schedule =
          version === 'ocpp1.6' ? profile.chargingSchedule : profile.chargingSchedule[0];
        should(profile.chargingProfilePurpose).equal('TxDefaultProfile');
        should(profile.chargingProfileKind).equal('Absolute');
        should(schedule.chargingRateUnit).equal('W');
        should(schedule.chargingSchedulePeriod).eql([{ startPeriod: 0, limit: 11000 }]);
        should(schedule.startSchedule).equal('2025-06-02T07:59:00.000Z'); // a minute of clock tolerance
        should(version === 'ocpp1.6' ? p.connectorId : p.evseId).equal(1);
      });

      it('SET_CHARGE_RATE as a TxProfile carries the transaction, and needs one', () => {
        const tx = {
          ...charger,
          purpose: 'TxProfile' as const,
          stackLevel: 2,
          profileId: 7,
          connectorId: 2,
          evseId: 2,
        };
        should(() => commandToCall(cmd(CommandType.SET_CHARGE_RATE, 3), tx, version, null)).throw(
          /TxProfile needs a running transaction/,
        );
        const call = commandToCall(cmd(CommandType.SET_CHARGE_RATE, 3), tx, version, {
          transactionId: 42,
        });
        should(validate(version, call.method, call.params)).be.true();
        const p = call.params as Payload;
        const profile = version === 'ocpp1.6' ? p.csChargingProfiles : p.chargingProfile;
        should(profile.transactionId).equal(version === 'ocpp1.6' ? 42 : '42');
        should(profile.stackLevel).equal(2);
        should(version === 'ocpp1.6' ? profile.chargingProfileId : profile.id).equal(7);
      });

      it('SET_POWER_LIMIT: the station-wide max profile on connector / EVSE 0', () => {
        const call = commandToCall(cmd(CommandType.SET_POWER_LIMIT, 20), charger, version, null);
        should(validate(version, call.method, call.params)).be.true();
        const p = call.params as Payload;
        if (version === 'ocpp1.6') {
          should(p.connectorId).equal(0);
          should(p.csChargingProfiles.chargingProfilePurpose).equal('ChargePointMaxProfile');
        } else {
          should(p.evseId).equal(0);
          should(p.chargingProfile.chargingProfilePurpose).equal('ChargingStationMaxProfile');
        }
      });

      it('failsafe: the station profile has the cap from now and min(share, cap) from the step, whole-second periods, step exact', () => {
        const now = T + 250; // not on a second
        const call = stationMaxCall({ ...charger, profileId: 4, stackLevel: 3 }, version, {
          capKw: 11,
          failsafeKw: 4.2,
          afterS: 1.5,
          now,
        });
        should(validate(version, call.method, call.params)).be.true();
        const p = call.params as Payload;
        const profile = version === 'ocpp1.6' ? p.csChargingProfiles : p.chargingProfile;
        const schedule =
          version === 'ocpp1.6' ? profile.chargingSchedule : profile.chargingSchedule[0];
        should(version === 'ocpp1.6' ? p.connectorId : p.evseId).equal(0);
        should(profile.chargingProfilePurpose).equal(
          version === 'ocpp1.6' ? 'ChargePointMaxProfile' : 'ChargingStationMaxProfile',
        );
        should(version === 'ocpp1.6' ? profile.chargingProfileId : profile.id).equal(1004);
        should(profile.stackLevel).equal(3);
        should(profile.chargingProfileKind).equal('Absolute');
        should(profile).not.have.property('validTo');
        should(schedule).not.have.property('duration'); // the last period lasts
        should(schedule.chargingSchedulePeriod).eql([
          { startPeriod: 0, limit: 11000 },
          { startPeriod: 62, limit: 4200 },
        ]);
        // A minute early for slow charger clocks; startPeriod is an integer: the start goes
        // back by the fraction too, so the step stays exact.
        should(Date.parse(schedule.startSchedule) + 62_000).equal(now + 1500);
      });

      it('failsafe: a cap below the share holds after the step too; amps stay multiples of 0.1', () => {
        const low = stationMaxCall(charger, version, {
          capKw: 3,
          failsafeKw: 4.2,
          afterS: 60,
          now: T,
        });
        should(JSON.stringify(low.params)).match(
          /"chargingSchedulePeriod":\[\{"startPeriod":0,"limit":3000\},\{"startPeriod":120,"limit":3000\}\]/,
        );
        const amps = stationMaxCall({ ...charger, unit: 'A', phases: 3 }, version, {
          capKw: 22,
          failsafeKw: 7.777,
          afterS: 60,
          now: T,
        });
        should(validate(version, amps.method, amps.params)).be.true();
        should(JSON.stringify(amps.params)).match(/"limit":31.9\b.*"limit":11.3\b/); // 22000/690, 7777/690
        should(() =>
          stationMaxCall(charger, version, { capKw: 3, failsafeKw: -1, afterS: 60, now: T }),
        ).throw(/must be numbers >= 0/);
      });

      it('failsafe: SET_POWER_LIMIT becomes the station profile; a Tx setpoint with validUntil gets validTo', () => {
        const slot = (type: CommandType, kw: number, validUntil: number | null) =>
          createCommand(
            { assetId: 'ev1', type, valueKw: kw, scheduledAt: T, validUntil },
            { now: T, maxRetries: 3, timeoutSeconds: 30, newId: () => 'sch:ev1:0' },
          );
        const station = { charger, failsafeKw: 4, afterS: 60, now: T };
        const cap = commandToCall(
          slot(CommandType.SET_POWER_LIMIT, 9, T + 900_000),
          charger,
          version,
          null,
          {
            station,
          },
        );
        should(validate(version, cap.method, cap.params)).be.true();
        should(cap).eql(stationMaxCall(charger, version, { ...station, capKw: 9 }));
        const rate = commandToCall(
          slot(CommandType.SET_CHARGE_RATE, 7, T + 900_500),
          charger,
          version,
          null,
          { validToAfterS: 60 },
        );
        should(validate(version, rate.method, rate.params)).be.true();
        const p = rate.params as Payload;
        const profile = version === 'ocpp1.6' ? p.csChargingProfiles : p.chargingProfile;
        // validUntil + 60 s, up to the whole second.
        should(profile.validTo).equal(new Date(T + 961_000).toISOString());
        const open = commandToCall(
          slot(CommandType.SET_CHARGE_RATE, 7, null),
          charger,
          version,
          null,
          {
            validToAfterS: 60,
          },
        );
        should(JSON.stringify(open.params)).not.match(/validTo/);
        const without = commandToCall(
          slot(CommandType.SET_CHARGE_RATE, 7, T + 900_000),
          charger,
          version,
          null,
        );
        should(JSON.stringify(without.params)).not.match(/validTo/);
      });

      it('START / STOP_CHARGING and CHANGE_AVAILABILITY are schema-valid', () => {
        const start = commandToCall(cmd(CommandType.START_CHARGING), charger, version, null);
        should(start.method).equal(
          version === 'ocpp1.6' ? 'RemoteStartTransaction' : 'RequestStartTransaction',
        );
        should(validate(version, start.method, start.params)).be.true();
        should(() => commandToCall(cmd(CommandType.STOP_CHARGING), charger, version, null)).throw(
          /no transaction is running/,
        );
        const stop = commandToCall(cmd(CommandType.STOP_CHARGING), charger, version, {
          transactionId: 9,
        });
        should(stop.method).equal(
          version === 'ocpp1.6' ? 'RemoteStopTransaction' : 'RequestStopTransaction',
        );
        should(validate(version, stop.method, stop.params)).be.true();
        for (const v of [0, 1]) {
          const ch = commandToCall(cmd(CommandType.CHANGE_AVAILABILITY, v), charger, version, null);
          should(validate(version, ch.method, ch.params)).be.true();
          should(JSON.stringify(ch.params)).match(v === 0 ? /Inoperative/ : /"Operative"/);
        }
      });

      it('amps are schema-valid too', () => {
        const call = commandToCall(
          cmd(CommandType.SET_CHARGE_RATE, 7.4),
          { ...charger, unit: 'A', phases: 1 },
          version,
          null,
        );
        should(validate(version, call.method, call.params)).be.true();
        should(JSON.stringify(call.params)).match(/"limit":32.2/);
      });
    });
  }

  it('refuses a setpoint above the rating before anything is built', () => {
    should(() =>
      commandToCall(cmd(CommandType.SET_CHARGE_RATE, 22.5), charger, 'ocpp1.6', null),
    ).throw(TranslationError);
    should(() =>
      commandToCall(cmd(CommandType.SET_CHARGE_RATE, 22.5), charger, 'ocpp1.6', null),
    ).throw(/22.5 kW is above the rated 22 kW of charger CP1/);
    should(() =>
      commandToCall(cmd(CommandType.SET_DISCHARGE_RATE, 1), charger, 'ocpp1.6', null),
    ).throw(/not a charger command/);
  });

  it('reads answers: Accepted and Scheduled accept; anything else is a refusal with the reason', () => {
    should(interpretResponse('SetChargingProfile', { status: 'Accepted' })).eql({ accepted: true });
    should(interpretResponse('ChangeAvailability', { status: 'Scheduled' })).eql({
      accepted: true,
    });
    should(interpretResponse('SetChargingProfile', { status: 'NotSupported' })).eql({
      accepted: false,
      reason: 'SetChargingProfile answered NotSupported',
    });
    should(
      interpretResponse('SetChargingProfile', {
        status: 'Rejected',
        statusInfo: { reasonCode: 'InvalidValue', additionalInfo: 'limit' },
      }).reason,
    ).equal('SetChargingProfile answered Rejected (InvalidValue: limit)');
    should(interpretResponse('X', null).accepted).be.false();
  });

  it('maps statuses of both versions to charger states', () => {
    should(STATUS_16.SuspendedEVSE).equal('SUSPENDED');
    should(STATUS_16.Faulted).equal('FAULTED');
    should(STATUS_201.Occupied).equal('PREPARING');
    should(CHARGING_STATE_201.Charging).equal('CHARGING');
    should(CHARGING_STATE_201.SuspendedEV).equal('SUSPENDED');
  });

  it('reads power, energy and SoC from meter values, summing phases and scaling units', () => {
    const readings = readMeterValues([
      {
        timestamp: '2025-06-02T08:00:00Z',
        sampledValue: [
          { value: '3.5', measurand: 'Power.Active.Import', unit: 'kW' },
          { value: '12000', unit: 'Wh' },
          { value: '55', measurand: 'SoC', unit: 'Percent' },
        ],
      },
      {
        timestamp: '2025-06-02T08:01:00Z',
        sampledValue: [
          { value: 1000, measurand: 'Power.Active.Import', phase: 'L1' },
          { value: 1100, measurand: 'Power.Active.Import', phase: 'L2' },
          {
            value: 12.5,
            measurand: 'Energy.Active.Import.Register',
            unitOfMeasure: { unit: 'kWh' },
          },
          { value: 'garbage', measurand: 'SoC' },
        ],
      },
    ]);
    should(readings).eql([
      { timestamp: '2025-06-02T08:00:00Z', powerW: 3500, energyWh: 12000, socPercent: 55 },
      { timestamp: '2025-06-02T08:01:00Z', powerW: 2100, energyWh: 12500 },
    ]);
    should(readMeterValues('nope')).eql([]);
  });
});
