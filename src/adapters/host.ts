/**
 * AdapterHost: the narrow port through which a protocol adapter (OCPP chargers, Modbus
 * batteries) talks to the site that hosts it, instead of the whole `Site`: serve assets with
 * their state machines, confirm a command later, and re-apply the setpoint in force after a
 * device connected, booted or restarted, remember what it learned of a device, and tell an
 * asset's failsafe share (what it may draw when the gateway is gone). `Site` implements it; a TypeScript user can host an
 * adapter on anything that does. Adapters depend on this file, never on `Site`.
 */

import type { Clock } from '../clock';
import type { Command } from '../commands';
import type { ComplianceKind, ComplianceState, OnDeviation } from '../compliance';
import type { StateMachine, StateMachineDefinition } from '../state-machine';
import type { Adapter } from './registry';

/** A measurement of an asset's power, for checking it follows its setpoint (compliance). */
export interface AssetMeasurement {
  /** How the setpoint in force reads: an EV charger's limit, or a battery's signed setpoint. */
  kind: ComplianceKind;
  /** Measured power, kW, positive = import/charge. */
  kw: number;
  /** Epoch ms of the measurement. Default: now. */
  at?: number;
  /** How often the asset reports, ms: older data is stale. */
  intervalMs?: number;
  /** Battery: at its maximum / minimum SoC, so it cannot charge / discharge. */
  atSocMax?: boolean;
  atSocMin?: boolean;
  /** On a deviation: report it (default), or re-apply the setpoint once per episode too. */
  onDeviation?: OnDeviation;
  /**
   * The adapter's own answer to a lasting deviation, called once per episode after
   * ASSET_DEVIATION is published (e.g. the OCPP adapter sends its limits in the other unit).
   */
  deviated?: (reason: string) => void;
}

/** The kind of state machine an asset gets: a preset, or a definition of its own. */
export type AssetKind = 'ev-charger' | 'battery';

export interface AdapterHost {
  readonly clock: Clock;
  /** Seconds after which a device that stopped answering counts as unavailable. */
  readonly staleStateSeconds: number;
  /**
   * Serves `assetIds` with `adapter` (all or none: throws, serving none, when another adapter
   * serves one of them) and gives each a state machine of `kind`, shared under `owner`.
   */
  serve(
    adapter: Adapter,
    assetIds: readonly string[],
    kind: AssetKind | StateMachineDefinition,
    owner: string,
  ): void;
  /** Stops serving them (where `adapter` still serves them); `removed` lets go of the machines. */
  unserve(adapter: Adapter, assetIds: readonly string[], owner: string, removed: boolean): void;
  stateMachine(assetId: string): StateMachine | undefined;
  /**
   * The answer to an attempt in flight that comes after `dispatch` returned (see
   * `DispatchEngine.handleResponse`): e.g. ACKNOWLEDGED on a write, COMPLETED on its read-back.
   */
  respond(
    commandId: string,
    success: boolean,
    error?: string | null,
    options?: { final?: boolean; completed?: boolean; timedOut?: boolean },
  ): boolean;
  /** Re-applies the setpoint in force to the asset as a tracked command (`engine.reapply`). */
  reapply(assetId: string, reason: string, options?: { appliedSince?: number }): Command[];
  /** The asset's unfinished commands. */
  activeCommands(assetId: string): Command[];
  /**
   * A measurement of the asset's power: checked against the setpoint in force, publishing
   * ASSET_DEVIATION / ASSET_COMPLIANT on a change. Optional: a host may not check.
   */
  measured?(assetId: string, m: AssetMeasurement): ComplianceState;
  /**
   * Remembers what the adapter learned of the asset's device (e.g. `smartCharging: false`)
   * in the asset's `capabilities`; `undefined` forgets it.
   */
  setCapability(assetId: string, name: string, value: unknown): void;
  /** What was learned under `name`, or undefined. */
  capability(assetId: string, name: string): unknown;
  /**
   * The asset's failsafe share, kW: what it may draw on its own when the gateway (Node-RED,
   * the host, the network) is gone, e.g. its share of the site limit computed from the
   * circuits. Optional; undefined when not known. An adapter uses it where the asset has no
   * share of its own in its config (the OCPP adapter: the step of its station maximum
   * profile; without a share nothing is sent, as before). When it changes, the host tells the
   * adapter (the OCPP adapter: `refreshFailsafe(assetId)`).
   */
  failsafeKw?(assetId: string): number | undefined;
}
