/**
 * The simulated charge point's public types (protocol, status, stop reasons, OCPP 1.6 error
 * codes, options, the test hook, limit changes) and the type of its options with their
 * defaults (session.ts fills them in), which the station, the dialects and the session
 * share. No code but the list of error codes.
 */

import type { Clock } from '../../clock';

export type OcppProtocol = 'ocpp1.6' | 'ocpp2.0.1';

/** The connector's status, in OCPP 1.6 words (2.0.1 maps them, see `Dialect201`). */
export type SimStatus =
  | 'Available'
  | 'Preparing'
  | 'Charging'
  | 'SuspendedEVSE'
  | 'SuspendedEV'
  | 'Finishing'
  | 'Unavailable'
  | 'Faulted';

/** Why a transaction stopped: the values that both versions' enums share. */
export type StopReason =
  | 'Local'
  | 'Remote'
  | 'EVDisconnected'
  | 'DeAuthorized'
  | 'EmergencyStop'
  | 'PowerLoss'
  | 'Reboot'
  | 'Other';

/** OCPP 1.6 StatusNotification errorCode (2.0.1 StatusNotification has none). */
export const OCPP16_ERROR_CODES = [
  'ConnectorLockFailure',
  'EVCommunicationError',
  'GroundFailure',
  'HighTemperature',
  'InternalError',
  'OtherError',
  'OverCurrentFailure',
  'PowerMeterFailure',
  'PowerSwitchFailure',
  'ReaderFailure',
  'UnderVoltage',
  'OverVoltage',
] as const;
export type Ocpp16ErrorCode = (typeof OCPP16_ERROR_CODES)[number];

/**
 * Test hook: overrides the answer to an incoming call. `Accepted`, `Rejected`,
 * `NotSupported` are sent as the `status` of the response when that method's schema allows
 * the value (without doing anything else), otherwise as a CALLERROR (`NotSupported`, or
 * `GenericError` for `Rejected`); `NotImplemented` is a CALLERROR; `noreply` never answers;
 * `undefined` lets the simulator answer normally.
 */
export type RespondHook = (
  method: string,
  params: unknown,
) => 'Accepted' | 'Rejected' | 'NotSupported' | 'NotImplemented' | 'noreply' | undefined;

export interface ChargePointSimulatorOptions {
  /** The central system's URL without the identity, e.g. `ws://127.0.0.1:9220/ocpp`. */
  endpoint: string;
  identity: string;
  protocol: OcppProtocol;
  /** HTTP Basic password (OCPP security profile 1); the user name is the identity. */
  password?: string;
  /** Passed to the `ws` WebSocket, e.g. `{ ca }` for wss. */
  wsOptions?: Record<string, unknown>;
  /** OCPP 1.6 connector (default 1). */
  connectorId?: number;
  /** OCPP 2.0.1 EVSE (default 1); its connector is 1. */
  evseId?: number;
  /** The most the EV draws, kW (default 11). */
  evMaxKw?: number;
  /** For limits in A: W = A x voltage x phases (defaults 230 V, 3 phases). */
  voltage?: number;
  phases?: number;
  /** Meter values every this many ms while connected (default 10,000; 0: none). */
  meterIntervalMs?: number;
  /** If given, the EV reports SoC, integrated with `batteryKwh` (default 60). */
  initialSocPercent?: number;
  batteryKwh?: number;
  /** Reconnect after losing the connection, with exponential backoff (default true). */
  reconnect?: boolean;
  /**
   * Send BootNotification again after such a reconnect (default true). false: resume as
   * after a network blip, without BootNotification or StatusNotification (many real chargers).
   */
  bootOnReconnect?: boolean;
  backoff?: Partial<BackoffOptions>;
  /** Timeout of the calls that the simulator sends (default 30,000 ms). */
  callTimeoutMs?: number;
  /** Send Authorize before a local start (`startCharging`); default true. */
  authorize?: boolean;
  /** Time source of timestamps, energy and schedules (default: the system clock). */
  clock?: Clock;
  vendor?: string;
  model?: string;
  respond?: RespondHook;
  /** `ignore-profile`: answers SetChargingProfile Accepted and applies nothing. */
  quirk?: 'ignore-profile';
  /** false: answers GetCompositeSchedule with NotImplemented (default true). */
  compositeSchedule?: boolean;
  /** false: answers SetChargingProfile with NotImplemented, no smart charging (default true). */
  smartCharging?: boolean;
  /** A limit above 0 and below this many A per phase is raised to it (e.g. 6); 0 still pauses. */
  minCurrentA?: number;
  /** Applies an accepted profile only this many ms later (default 0: at once). */
  applyDelayMs?: number;
  /** Follows limits only in this unit: a profile in the other is answered Accepted, ignored. */
  honourUnit?: 'W' | 'A';
}

/** A change of the limit that the charger applies, and what it draws then. */
export interface LimitChange {
  /** Epoch ms (the simulator's clock). */
  at: number;
  /** The limit in force from then, W (null: no profile limits). */
  limitW: number | null;
  powerW: number;
}

export interface BackoffOptions {
  initialDelay: number;
  maxDelay: number;
  factor: number;
  randomisationFactor: number;
}

export type Params = Record<string, unknown>;
export type Result = Record<string, unknown>;

/** The options with their defaults filled in (see `ChargePointSession`). */
export type Resolved = Required<
  Pick<
    ChargePointSimulatorOptions,
    | 'connectorId'
    | 'evseId'
    | 'evMaxKw'
    | 'voltage'
    | 'phases'
    | 'meterIntervalMs'
    | 'batteryKwh'
    | 'reconnect'
    | 'bootOnReconnect'
    | 'callTimeoutMs'
    | 'authorize'
    | 'vendor'
    | 'model'
  >
> &
  ChargePointSimulatorOptions;
