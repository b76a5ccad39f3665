/**
 * Pure translation between the core's commands and states and OCPP-J 1.6 / 2.0.1 messages.
 * Nothing here opens a socket; the central system (central-system.ts) sends what this builds.
 */

import { type Command, CommandType } from '../../commands';
import { EvChargerState } from '../../state-machine';

export type OcppVersion = 'ocpp1.6' | 'ocpp2.0.1';
export const OCPP_VERSIONS: readonly OcppVersion[] = ['ocpp1.6', 'ocpp2.0.1'];

export type ProfilePurpose = 'TxDefaultProfile' | 'TxProfile';

/** How one charger (one connector / EVSE of a charge point) is steered. */
export interface ChargerConfig {
  /** The charge point's OCPP identity (the last part of its URL). */
  identity: string;
  assetId: string;
  /** 1.6 connector id (default 1). */
  connectorId?: number;
  /** 2.0.1 EVSE id (default 1). */
  evseId?: number;
  /** Rated power in kW: a setpoint above it is refused before anything is sent. */
  ratedKw?: number;
  /** Unit of the limits sent: W (default) or A (with phases and voltage). */
  unit?: 'W' | 'A';
  phases?: number;
  voltage?: number;
  /** Purpose of the profile for SET_CHARGE_RATE (default TxDefaultProfile). */
  purpose?: ProfilePurpose;
  stackLevel?: number;
  /** chargingProfileId (1.6) / id (2.0.1) of the profile: the same id replaces it. Default 1. */
  profileId?: number;
  /** idTag / idToken for remote start. Default 'qubit-energy'. */
  idTag?: string;
  /** How often the charger sends meter values (its MeterValueSampleInterval), s. Default 60. */
  meterIntervalSeconds?: number;
  /**
   * When the measured power is above the limit in force (compliance): 'report' (default:
   * ASSET_DEVIATION), 'reapply' (also re-apply it, once per deviation) or
   * 'reapply-other-unit' (once: send its limits in the other unit, W <-> A, from then until it
   * boots, and re-apply; for chargers that ignore limits in one unit).
   */
  onDeviation?: 'report' | 'reapply' | 'reapply-other-unit';
  /**
   * When a setpoint counts as COMPLETED: `confirmed` (default) once the charger's composite
   * schedule (GetCompositeSchedule) applies it, `accepted` on the SetChargingProfile answer.
   */
  confirm?: 'accepted' | 'confirmed';
  /**
   * The charger's failsafe share, kW: what it may draw on its own when the gateway is gone
   * (the step of the station-wide maximum profile, see failsafe.ts). Needs `ratedKw`. Default:
   * the host's `failsafeKw(assetId)`, if any; none known: no maximum profile is sent.
   */
  failsafeKw?: number;
  /** Seconds without the gateway before the charger steps down to its failsafe share. */
  failsafeAfterS?: number;
}

/** A call to send: its method and payload. */
export interface OcppCall {
  method: string;
  params: Record<string, unknown>;
}

export class TranslationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TranslationError';
  }
}

/** Rounds to one decimal, as OCPP 1.6 requires of limits (multiples of 0.1). */
export function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** A kW setpoint as the limit in the charger's unit: W, or A per phase. */
export function kwToLimit(kw: number, charger: ChargerConfig): { unit: 'W' | 'A'; limit: number } {
  const unit = charger.unit ?? 'W';
  if (unit === 'W') return { unit, limit: round1(kw * 1000) };
  const phases = charger.phases ?? 3;
  const voltage = charger.voltage ?? 230;
  if (!(phases >= 1 && phases <= 3) || !(voltage > 0)) {
    throw new TranslationError(
      `charger ${charger.identity}: amps need phases 1 to 3 and a voltage > 0 (got ${phases}, ${voltage})`,
    );
  }
  return { unit, limit: round1((kw * 1000) / (voltage * phases)) };
}

/** Tolerance for a charger whose clock runs behind ours: a profile starts this much earlier. */
export const CLOCK_TOLERANCE_MS = 60_000;

function startScheduleOf(cmd: Command): string {
  return new Date(
    Math.floor((cmd.scheduledAt.getTime() - CLOCK_TOLERANCE_MS) / 1000) * 1000,
  ).toISOString();
}

/** A date as OCPP text, rounded up to the whole second (some chargers refuse fractions). */
function isoCeil(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString();
}

/**
 * The station-wide maximum profile of the failsafe chain: from `now` the cap in force
 * (`capKw`: a SET_POWER_LIMIT setpoint, else the rating), from `now + afterS` on
 * min(failsafe share, cap), with no duration, so the last period lasts. The adapter sends it
 * again before the step while it is connected; without it the charger steps down on its own.
 * The schedule starts about a minute early (`CLOCK_TOLERANCE_MS`, for a charger whose clock is
 * behind: the cap must hold from the moment it is accepted), and `startPeriod` is whole
 * seconds: `startSchedule` is chosen so that the step is at `now + afterS` exactly.
 */
export interface StationLimit {
  capKw: number;
  failsafeKw: number;
  afterS: number;
  /** Epoch ms the profile starts (now). */
  now: number;
}

/** The profile id of a charge point's station-wide maximum profile (profileId + 1000). */
export function stationProfileId(charger: ChargerConfig): number {
  return (charger.profileId ?? 1) + 1000;
}

/**
 * SetChargingProfile of the two-period station-wide maximum profile: 1.6
 * ChargePointMaxProfile on connector 0, 2.0.1 ChargingStationMaxProfile on EVSE 0, Absolute,
 * the id and stack level of the charge point's SET_POWER_LIMIT profile (so it replaces it).
 */
export function stationMaxCall(
  charger: ChargerConfig,
  version: OcppVersion,
  s: StationLimit,
): OcppCall {
  if (!(Number.isFinite(s.afterS) && s.afterS > 0))
    throw new TranslationError(`charger ${charger.identity}: failsafeAfterS must be > 0`);
  if (
    !(
      Number.isFinite(s.capKw) &&
      s.capKw >= 0 &&
      Number.isFinite(s.failsafeKw) &&
      s.failsafeKw >= 0
    )
  )
    throw new TranslationError(
      `charger ${charger.identity}: the cap (${s.capKw} kW) and the failsafe share (${s.failsafeKw} kW) must be numbers >= 0`,
    );
  // The cap is in force at once for a charger whose clock is up to a minute behind ours.
  const step = Math.ceil(s.afterS + CLOCK_TOLERANCE_MS / 1000);
  const start = new Date(s.now + (s.afterS - step) * 1000).toISOString();
  const cap = kwToLimit(s.capKw, charger);
  const after = kwToLimit(Math.min(s.failsafeKw, s.capKw), charger);
  const periods = [
    { startPeriod: 0, limit: cap.limit },
    { startPeriod: step, limit: after.limit },
  ];
  const common = {
    stackLevel: charger.stackLevel ?? 0,
    chargingProfileKind: 'Absolute',
  };
  if (version === 'ocpp1.6')
    return {
      method: 'SetChargingProfile',
      params: {
        connectorId: 0,
        csChargingProfiles: {
          chargingProfileId: stationProfileId(charger),
          ...common,
          chargingProfilePurpose: 'ChargePointMaxProfile',
          chargingSchedule: {
            chargingRateUnit: cap.unit,
            startSchedule: start,
            chargingSchedulePeriod: periods,
          },
        },
      },
    };
  return {
    method: 'SetChargingProfile',
    params: {
      evseId: 0,
      chargingProfile: {
        id: stationProfileId(charger),
        ...common,
        chargingProfilePurpose: 'ChargingStationMaxProfile',
        chargingSchedule: [
          {
            id: 1,
            startSchedule: start,
            chargingRateUnit: cap.unit,
            chargingSchedulePeriod: periods,
          },
        ],
      },
    },
  };
}

/** What the failsafe chain adds to a setpoint's call (see `commandToCall`). */
export interface FailsafeOptions {
  /** Tx profiles with a validUntil get `validTo` = validUntil + this many seconds. */
  validToAfterS?: number;
  /** SET_POWER_LIMIT becomes the two-period station profile of this charge point. */
  station?: { charger: ChargerConfig; failsafeKw: number; afterS: number; now: number };
}

export interface TransactionRef {
  /** 1.6: an integer; 2.0.1: a string. */
  transactionId: number | string;
}

/**
 * The call that carries a command to a charger.
 *
 * | command | 1.6 | 2.0.1 |
 * | SET_CHARGE_RATE | SetChargingProfile (TxDefaultProfile or TxProfile) | SetChargingProfile |
 * | SET_POWER_LIMIT | SetChargingProfile, ChargePointMaxProfile (connector 0) | SetChargingProfile, ChargingStationMaxProfile (EVSE 0) |
 * | START_CHARGING | RemoteStartTransaction | RequestStartTransaction |
 * | STOP_CHARGING | RemoteStopTransaction | RequestStopTransaction |
 * | CHANGE_AVAILABILITY | ChangeAvailability (valueKw 0: Inoperative, else Operative) | ChangeAvailability |
 *
 * Profiles are Absolute, one period from 0 with the limit, `startSchedule` at the command's
 * time (less a minute for slow charger clocks), no duration: the next command replaces the
 * profile (same id, purpose and stack level). With the failsafe chain (`failsafe`), a
 * TxDefaultProfile / TxProfile of a command with a validUntil gets `validTo` = validUntil +
 * `validToAfterS` (after it, the charger falls back to its maximum profile), and
 * SET_POWER_LIMIT is the two-period station profile (`stationMaxCall`).
 */
export function commandToCall(
  cmd: Command,
  charger: ChargerConfig,
  version: OcppVersion,
  transaction: TransactionRef | null,
  failsafe: FailsafeOptions = {},
): OcppCall {
  const rated = charger.ratedKw;
  if (
    (cmd.type === CommandType.SET_CHARGE_RATE || cmd.type === CommandType.SET_POWER_LIMIT) &&
    rated !== undefined
  ) {
    if (cmd.valueKw > rated + 1e-9) {
      throw new TranslationError(
        `${cmd.valueKw} kW is above the rated ${rated} kW of charger ${charger.identity}`,
      );
    }
  }
  const connectorId = charger.connectorId ?? 1;
  const evseId = charger.evseId ?? 1;
  const v16 = version === 'ocpp1.6';
  switch (cmd.type) {
    case CommandType.SET_CHARGE_RATE:
    case CommandType.SET_POWER_LIMIT: {
      const max = cmd.type === CommandType.SET_POWER_LIMIT;
      const purpose = max
        ? v16
          ? 'ChargePointMaxProfile'
          : 'ChargingStationMaxProfile'
        : (charger.purpose ?? 'TxDefaultProfile');
      if (purpose === 'TxProfile' && !transaction) {
        throw new TranslationError(
          `charger ${charger.identity}: a TxProfile needs a running transaction and there is none; use TxDefaultProfile to set a limit before charging starts`,
        );
      }
      if (max && failsafe.station) {
        const { charger: station, ...limit } = failsafe.station;
        return stationMaxCall(station, version, { ...limit, capKw: cmd.valueKw });
      }
      const { unit, limit } = kwToLimit(cmd.valueKw, charger);
      const id = charger.profileId ?? 1;
      const stackLevel = charger.stackLevel ?? 0;
      const afterS = failsafe.validToAfterS;
      const validTo =
        !max && afterS !== undefined && cmd.validUntil !== null
          ? { validTo: isoCeil(cmd.validUntil.getTime() + afterS * 1000) }
          : {};
      if (v16) {
        const profile: Record<string, unknown> = {
          chargingProfileId: max ? id + 1000 : id,
          stackLevel,
          chargingProfilePurpose: purpose,
          chargingProfileKind: 'Absolute',
          ...validTo,
          chargingSchedule: {
            chargingRateUnit: unit,
            startSchedule: startScheduleOf(cmd),
            chargingSchedulePeriod: [{ startPeriod: 0, limit }],
          },
        };
        if (purpose === 'TxProfile' && transaction)
          profile.transactionId = Number(transaction.transactionId);
        return {
          method: 'SetChargingProfile',
          params: { connectorId: max ? 0 : connectorId, csChargingProfiles: profile },
        };
      }
      const profile: Record<string, unknown> = {
        id: max ? id + 1000 : id,
        stackLevel,
        chargingProfilePurpose: purpose,
        chargingProfileKind: 'Absolute',
        ...validTo,
        chargingSchedule: [
          {
            id: 1,
            startSchedule: startScheduleOf(cmd),
            chargingRateUnit: unit,
            chargingSchedulePeriod: [{ startPeriod: 0, limit }],
          },
        ],
      };
      if (purpose === 'TxProfile' && transaction)
        profile.transactionId = String(transaction.transactionId);
      return {
        method: 'SetChargingProfile',
        params: { evseId: max ? 0 : evseId, chargingProfile: profile },
      };
    }
    case CommandType.START_CHARGING: {
      const tag = charger.idTag ?? 'qubit-energy';
      return v16
        ? { method: 'RemoteStartTransaction', params: { connectorId, idTag: tag } }
        : {
            method: 'RequestStartTransaction',
            params: {
              evseId,
              idToken: { idToken: tag, type: 'Central' },
              remoteStartId: remoteStartId(cmd),
            },
          };
    }
    case CommandType.STOP_CHARGING: {
      if (!transaction) {
        throw new TranslationError(
          `charger ${charger.identity}: no transaction is running to stop`,
        );
      }
      return v16
        ? {
            method: 'RemoteStopTransaction',
            params: { transactionId: Number(transaction.transactionId) },
          }
        : {
            method: 'RequestStopTransaction',
            params: { transactionId: String(transaction.transactionId) },
          };
    }
    case CommandType.CHANGE_AVAILABILITY: {
      const operative = cmd.valueKw !== 0;
      return v16
        ? {
            method: 'ChangeAvailability',
            params: { connectorId, type: operative ? 'Operative' : 'Inoperative' },
          }
        : {
            method: 'ChangeAvailability',
            params: {
              operationalStatus: operative ? 'Operative' : 'Inoperative',
              evse: { id: evseId },
            },
          };
    }
    default:
      throw new TranslationError(
        `charger ${charger.identity}: ${cmd.type} is not a charger command`,
      );
  }
}

/** A positive 31-bit integer derived from the command id (2.0.1 remoteStartId). */
function remoteStartId(cmd: Command): number {
  let h = 0;
  for (let i = 0; i < cmd.id.length; i++) h = (h * 31 + cmd.id.charCodeAt(i)) | 0;
  return (Math.abs(h) % 2_000_000_000) + 1;
}

/** CALLERROR codes that are a charger's final answer, not a reason to retry. */
export const FINAL_RPC_ERRORS = new Set([
  'NotImplemented',
  'NotSupported',
  'SecurityError',
  'PropertyConstraintViolation',
  'OccurrenceConstraintViolation',
  'TypeConstraintViolation',
  'FormatViolation',
  'FormationViolation',
  'ProtocolError',
]);

/** What an answer means for the command: accepted, or refused (final) with the reason. */
export function interpretResponse(
  method: string,
  response: unknown,
): { accepted: boolean; reason?: string } {
  const r = (response ?? {}) as {
    status?: unknown;
    statusInfo?: { reasonCode?: unknown; additionalInfo?: unknown };
  };
  const status = typeof r.status === 'string' ? r.status : undefined;
  if (status === 'Accepted' || status === 'Scheduled') return { accepted: true };
  const info = r.statusInfo
    ? ` (${[r.statusInfo.reasonCode, r.statusInfo.additionalInfo].filter((x) => typeof x === 'string').join(': ')})`
    : '';
  return { accepted: false, reason: `${method} answered ${status ?? 'without a status'}${info}` };
}

/** OCPP 1.6 connector statuses -> EV charger states. */
export const STATUS_16: Record<string, EvChargerState> = {
  Available: EvChargerState.AVAILABLE,
  Preparing: EvChargerState.PREPARING,
  Charging: EvChargerState.CHARGING,
  SuspendedEV: EvChargerState.SUSPENDED,
  SuspendedEVSE: EvChargerState.SUSPENDED,
  Finishing: EvChargerState.FINISHING,
  Reserved: EvChargerState.AVAILABLE,
  Unavailable: EvChargerState.UNAVAILABLE,
  Faulted: EvChargerState.FAULTED,
};

/** OCPP 2.0.1 connector statuses -> states (Occupied is refined by the charging state). */
export const STATUS_201: Record<string, EvChargerState> = {
  Available: EvChargerState.AVAILABLE,
  Occupied: EvChargerState.PREPARING,
  Reserved: EvChargerState.AVAILABLE,
  Unavailable: EvChargerState.UNAVAILABLE,
  Faulted: EvChargerState.FAULTED,
};

/** OCPP 2.0.1 TransactionEvent chargingState -> state, while the connector is occupied. */
export const CHARGING_STATE_201: Record<string, EvChargerState> = {
  Charging: EvChargerState.CHARGING,
  EVConnected: EvChargerState.PREPARING,
  SuspendedEV: EvChargerState.SUSPENDED,
  SuspendedEVSE: EvChargerState.SUSPENDED,
  Idle: EvChargerState.PREPARING,
};

/** A meter reading reduced to what dispatch cares about. */
export interface MeterReading {
  timestamp: string;
  powerW?: number;
  energyWh?: number;
  socPercent?: number;
}

interface SampledValue {
  value: unknown;
  measurand?: unknown;
  unit?: unknown;
  unitOfMeasure?: { unit?: unknown; multiplier?: unknown };
  phase?: unknown;
  context?: unknown;
}

/** Power (W), energy (Wh) and SoC (%) of 1.6 or 2.0.1 meterValue entries; phases summed. */
export function readMeterValues(meterValue: unknown): MeterReading[] {
  if (!Array.isArray(meterValue)) return [];
  const out: MeterReading[] = [];
  for (const mv of meterValue as { timestamp?: unknown; sampledValue?: unknown }[]) {
    if (!mv || !Array.isArray(mv.sampledValue)) continue;
    const reading: MeterReading = {
      timestamp: typeof mv.timestamp === 'string' ? mv.timestamp : '',
    };
    let powerPhases = 0;
    for (const sv of mv.sampledValue as SampledValue[]) {
      const raw = typeof sv.value === 'number' ? sv.value : Number(sv.value);
      if (!Number.isFinite(raw)) continue;
      const measurand =
        typeof sv.measurand === 'string' ? sv.measurand : 'Energy.Active.Import.Register';
      const unit =
        typeof sv.unit === 'string'
          ? sv.unit
          : typeof sv.unitOfMeasure?.unit === 'string'
            ? sv.unitOfMeasure.unit
            : undefined;
      const mult =
        typeof sv.unitOfMeasure?.multiplier === 'number' ? 10 ** sv.unitOfMeasure.multiplier : 1;
      const value = raw * mult;
      if (measurand === 'Power.Active.Import') {
        const w = unit === 'kW' ? value * 1000 : value;
        if (sv.phase === undefined || sv.phase === null) reading.powerW = w;
        else if (reading.powerW === undefined || powerPhases > 0) {
          reading.powerW = (powerPhases > 0 ? (reading.powerW ?? 0) : 0) + w;
          powerPhases++;
        }
      } else if (measurand === 'Energy.Active.Import.Register') {
        if (sv.phase === undefined || sv.phase === null)
          reading.energyWh = unit === 'kWh' ? value * 1000 : value;
      } else if (measurand === 'SoC') {
        reading.socPercent = value;
      }
    }
    out.push(reading);
  }
  return out;
}
