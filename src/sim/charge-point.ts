/**
 * A simulated OCPP charge point (OCPP-J 1.6 or 2.0.1) on ocpp-rpc's client, in strict mode:
 * every call it sends and every call it accepts is checked against the official schemas.
 *
 * It boots, reports its status, plugs in an EV, runs transactions, follows the charging
 * profiles that it is given (power = min(active limit, EV maximum)), integrates energy and
 * sends meter values, and reconnects with backoff (booting again, or with
 * `bootOnReconnect: false` resuming silently as many real chargers do).
 *
 * Faults that the field produces, for fault tests: `dropConnection` (the network drops: the
 * TCP socket is destroyed, or closed cleanly, and the charger comes back after a delay without
 * BootNotification or StatusNotification, keeping its transaction and profiles), `reboot`
 * (the connection goes, the transaction ends, the profiles are forgotten unless kept, and it
 * boots again with BootNotification and StatusNotification). It answers TriggerMessage
 * StatusNotification (1.6 with or without connectorId, 2.0.1 with or without evse) and
 * GetCompositeSchedule. `activeLimitW` is the limit it applies now and `limitHistory` every
 * change of it with its time, so that a test can count lost or stale setpoints.
 *
 * Quirks of real chargers, as options, for tests of what a central system confirms:
 * `quirk: 'ignore-profile'` (SetChargingProfile answered Accepted, nothing applied),
 * `compositeSchedule: false` (GetCompositeSchedule answered NotImplemented), `smartCharging:
 * false` (SetChargingProfile answered NotImplemented), `minCurrentA` (a limit between 0 and
 * this many A per phase is raised to it, 0 still pauses: the IEC 61851 minimum of 6 A) and
 * `applyDelayMs` (a profile is checked and accepted at once but applied only after the delay;
 * the composite schedule gives the old limit until then) and `honourUnit` (limits are
 * followed in one unit only, W or A: a profile in the other is answered Accepted and ignored).
 *
 * The layout, one concern a file under charge-point/: `types.ts` (the public types and the
 * resolved options), `station.ts` (the device state, no I/O), `dialect.ts` (what both OCPP
 * versions share, and the `Dialect` contract), `dialect-16.ts` and `dialect-201.ts` (one
 * dialect per OCPP version: the state into calls, incoming calls into state), `session.ts`
 * (the connection, the timers, incoming calls, following the limit) and `simulator.ts`
 * (`ChargePointSimulator`, the public methods). This file is the public entry point.
 *
 * Profiles are checked, stored and evaluated by charging-profiles.ts; the limit in force is
 * recomputed at each step of a schedule (and validTo), connected or not, so a station maximum
 * profile that steps down while the central system is gone is followed on time; `limitAt(t)`
 * tells the limit the charger's own profiles put in force at any time.
 *
 * Simplifications, on purpose: one connector (1.6) / one EVSE with connector 1 (2.0.1);
 * messages are not queued while offline (the methods
 * that need the connection throw, meter ticks are skipped); Reset is answered, not performed.
 */

export { ChargePointSimulator } from './charge-point/simulator';
export {
  type BackoffOptions,
  type ChargePointSimulatorOptions,
  type LimitChange,
  OCPP16_ERROR_CODES,
  type Ocpp16ErrorCode,
  type OcppProtocol,
  type RespondHook,
  type SimStatus,
  type StopReason,
} from './charge-point/types';
export type { ProfilePurpose, SimChargingProfile } from './charging-profiles';
