/**
 * OcppChargers: the adapter between a site (its AdapterHost port) and the chargers of a
 * central system. It serves their assets, turns commands into OCPP calls, keeps each asset's
 * EV charger state machine in step with what the charger reports (the charger is the source
 * of truth; it is asked with TriggerMessage when it connects), and has the site re-apply the
 * setpoint in force when a charger connects or boots. A setpoint the charger accepted is
 * confirmed with GetCompositeSchedule (setting `confirm`), and what a charger does not
 * implement (smart charging, the composite schedule) is learned once, until it boots again.
 * A charger with a failsafe share holds the station maximum profile of failsafe.ts. How the
 * state machines follow the charger's reports is in charger-states.ts.
 */

import { TimeoutError } from 'ocpp-rpc';
import { type Command, CommandType } from '../../commands';
import { EvChargerState, type StateMachine } from '../../state-machine';
import type { AdapterHost } from '../host';
import { type Adapter, AdapterError, type AdapterResult } from '../registry';
import { type CapabilityEvent, LearnedCapabilities, type UnitEvent } from './capabilities';
import { CallExpiredError, type CentralSystem, type ChargerEvent } from './central-system';
import { ChargerStates } from './charger-states';
import { checkCharger } from './config';
import { confirmLimit, NOT_IMPLEMENTED } from './confirm';
import {
  checkFailsafeAfterS,
  DEFAULT_FAILSAFE_AFTER_S,
  type FailsafeEvent,
  StationFailsafe,
} from './failsafe';
import {
  type ChargerConfig,
  commandToCall,
  FINAL_RPC_ERRORS,
  interpretResponse,
  type MeterReading,
  TranslationError,
} from './translate';

export type { CapabilityEvent, UnitEvent } from './capabilities';
export type { FailsafeEvent } from './failsafe';

export interface OcppChargersOptions {
  /** Who holds the state machines (a node id), for sharing them with other users. */
  owner?: string;
  /**
   * Delay after a connect or boot before the setpoint in force is re-applied and the status
   * asked for (a connect followed by a boot gives one re-apply, after both). Default 2 s.
   */
  reapplyDelayMs?: number;
  /**
   * Seconds without the gateway after which a charger with a failsafe share steps down to it
   * (its station maximum profile, refreshed every third of this while connected; failsafe.ts).
   * A charger's own `failsafeAfterS` overrides it. Default 60.
   */
  failsafeAfterS?: number;
  /** Everything chargers do, for telemetry (the node's second output). */
  onEvent?: (
    event: (ChargerEvent | CapabilityEvent | UnitEvent | FailsafeEvent) & { assetIds: string[] },
  ) => void;
  /** A failure on a timer of this adapter (a re-apply), with no caller to throw to. */
  onError?: (error: Error) => void;
}

export class OcppChargers implements Adapter {
  readonly protocol = 'ocpp';
  private readonly byAsset = new Map<string, ChargerConfig>();
  private readonly byIdentity = new Map<string, ChargerConfig[]>();
  private readonly owner: string;
  private readonly reapplyDelayMs: number;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** When each charger's current connection opened or it last booted (epoch ms). */
  private readonly connectedAt = new Map<string, number>();
  private readonly states: ChargerStates;
  private readonly onCharger: (e: ChargerEvent) => void;
  private readonly learned: LearnedCapabilities;
  private readonly failsafe: StationFailsafe;
  private started = false;

  constructor(
    private readonly host: AdapterHost,
    private readonly central: CentralSystem,
    chargers: ChargerConfig[],
    private readonly options: OcppChargersOptions = {},
  ) {
    this.owner = options.owner ?? 'ocpp';
    this.reapplyDelayMs = options.reapplyDelayMs ?? 2000;
    chargers.forEach((c, i) => {
      checkCharger(c, i);
      if (this.byAsset.has(c.assetId))
        throw new TypeError(`charger [${i}]: asset ${c.assetId} is listed twice`);
      this.byAsset.set(c.assetId, c);
      const list = this.byIdentity.get(c.identity) ?? [];
      list.push(c);
      this.byIdentity.set(c.identity, list);
    });
    this.onCharger = (e) => this.handleChargerEvent(e);
    this.states = new ChargerStates((assetId) => this.machine(assetId));
    this.learned = new LearnedCapabilities(host, this.byIdentity, (e) => options.onEvent?.(e));
    if (options.failsafeAfterS !== undefined)
      checkFailsafeAfterS(options.failsafeAfterS, 'OCPP chargers');
    this.failsafe = new StationFailsafe({
      host,
      central,
      byIdentity: this.byIdentity,
      learned: this.learned,
      afterS: options.failsafeAfterS ?? DEFAULT_FAILSAFE_AFTER_S,
      tell: (e) => options.onEvent?.(e),
      onError: (err) => options.onError?.(err),
    });
  }

  /**
   * Sends the failsafe profile again to the connected chargers of `assetId` (or all): the
   * host calls it when a failsafe share it gives (`failsafeKw`) changed.
   */
  refreshFailsafe(assetId?: string): void {
    if (this.started) this.failsafe.refresh(assetId);
  }

  get chargers(): ChargerConfig[] {
    return [...this.byAsset.values()];
  }

  /**
   * Serves the assets (all or none) with their state machines and follows the chargers; a
   * charger that is already connected (a redeploy of this adapter alone) gets the setpoint in
   * force re-applied.
   */
  start(): void {
    if (this.started) return;
    this.host.serve(this, [...this.byAsset.keys()], 'ev-charger', this.owner);
    for (const c of this.byAsset.values()) {
      // Until the charger says otherwise it is offline: its commands wait.
      if (!this.central.isConnected(c.identity))
        this.machine(c.assetId)?.forceState(EvChargerState.UNAVAILABLE, 'charger not connected');
    }
    this.central.on('charger', this.onCharger);
    this.started = true;
    this.failsafe.start();
    for (const identity of this.byIdentity.keys()) {
      if (this.central.isConnected(identity)) {
        this.connectedAt.set(identity, this.host.clock.now());
        this.scheduleReapply(identity, 'adapter started');
      }
    }
  }

  /** Stops following the chargers and unregisters the assets; `removed` also drops the machines. */
  stop(removed = false): void {
    if (!this.started) return;
    this.started = false;
    this.central.off('charger', this.onCharger);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.failsafe.stop();
    this.host.unserve(this, [...this.byAsset.keys()], this.owner, removed);
  }

  serves(assetId: string): boolean {
    return this.byAsset.has(assetId);
  }

  private machine(assetId: string): StateMachine | undefined {
    return this.host.stateMachine(assetId);
  }

  // ------------------------------------------------------------ commands -> chargers

  async dispatch(cmd: Command): Promise<AdapterResult> {
    const charger = this.byAsset.get(cmd.assetId);
    if (!charger)
      return {
        success: false,
        final: true,
        error: `asset ${cmd.assetId} is not an OCPP charger of this node`,
      };
    if (cmd.type !== CommandType.SET_POWER_LIMIT) return this.send(cmd, charger);
    // A cap the charger accepted is the cap of the failsafe refreshes from then on.
    let accepted = false;
    try {
      const result = await this.send(cmd, charger);
      accepted = result.success;
      return result;
    } finally {
      this.failsafe.settleCap(charger.identity, cmd.id, accepted);
    }
  }

  private async send(cmd: Command, configured: ChargerConfig): Promise<AdapterResult> {
    // Its limits go in the unit learned after a deviation, if any (until it boots).
    const unit = this.learned.unitOf(configured.assetId);
    const charger = unit ? { ...configured, unit } : configured;
    const setpoint =
      cmd.type === CommandType.SET_CHARGE_RATE || cmd.type === CommandType.SET_POWER_LIMIT;
    const answer = setpoint ? this.learned.lacks(charger.assetId, 'smartCharging') : undefined;
    if (answer !== undefined) {
      return {
        success: false,
        final: true,
        error: `charger ${charger.identity} does not support smart charging (answered ${answer} to SetChargingProfile); not sent`,
      };
    }
    const version = this.central.protocolOf(charger.identity);
    if (!version) throw new AdapterError(`charger ${charger.identity} is not connected`);
    const connector = version === 'ocpp1.6' ? (charger.connectorId ?? 1) : (charger.evseId ?? 1);
    let call: { method: string; params: Record<string, unknown> };
    const isCap = cmd.type === CommandType.SET_POWER_LIMIT;
    try {
      call = commandToCall(
        cmd,
        charger,
        version,
        this.central.transactionOf(charger.identity, connector),
        setpoint ? this.failsafe.optionsFor(charger, isCap) : {},
      );
      if (isCap) this.failsafe.noteCap(charger.identity, cmd);
    } catch (err) {
      if (err instanceof TranslationError)
        return { success: false, final: true, error: err.message };
      throw err;
    }
    let response: unknown;
    try {
      response = await this.central.call(charger.identity, call.method, call.params, {
        ...(cmd.validUntil !== null ? { notAfter: cmd.validUntil.getTime() } : {}),
      });
    } catch (err) {
      const code = (err as { rpcErrorCode?: unknown }).rpcErrorCode;
      const message = err instanceof Error ? err.message : String(err);
      // Its slot ended while it waited behind another call to this charger: never sent.
      if (err instanceof CallExpiredError) return { success: false, expired: true, error: message };
      if (err instanceof TimeoutError) {
        throw new AdapterError(
          `${call.method} to charger ${charger.identity}: no answer (${message})`,
          {
            timedOut: true,
            cause: err,
          },
        );
      }
      if (typeof code === 'string' && FINAL_RPC_ERRORS.has(code)) {
        if (call.method === 'SetChargingProfile' && NOT_IMPLEMENTED.has(code))
          return this.noSmartCharging(charger, code);
        return {
          success: false,
          final: true,
          error: `charger ${charger.identity} answered ${call.method} with ${code}: ${message}`,
        };
      }
      // A timeout, a dropped connection: the engine retries.
      throw new AdapterError(`${call.method} to charger ${charger.identity}: ${message}`, {
        cause: err,
      });
    }
    const verdict = interpretResponse(call.method, response);
    if (!verdict.accepted) {
      const status = (response as { status?: unknown } | null)?.status;
      if (call.method === 'SetChargingProfile' && status === 'NotSupported')
        return this.noSmartCharging(charger, status);
      return {
        success: false,
        final: true,
        error: `charger ${charger.identity}: ${verdict.reason}`,
      };
    }
    if (setpoint && (charger.confirm ?? 'confirmed') === 'confirmed') {
      const target = Number(version === 'ocpp1.6' ? call.params.connectorId : call.params.evseId);
      if (this.learned.lacks(charger.assetId, 'compositeSchedule')) return { success: true };
      return confirmLimit(this.central, cmd, charger, target, (code) =>
        this.learned.learn(
          charger.identity,
          'compositeSchedule',
          code,
          `charger ${charger.identity} answered ${code} to GetCompositeSchedule: its limits count as applied when it accepts them`,
        ),
      );
    }
    return { success: true };
  }

  // ------------------------------------------------------------ confirmation, capabilities

  /** Learns (once) that the charger has no smart charging; the command fails, final. */
  private noSmartCharging(charger: ChargerConfig, answer: string): AdapterResult {
    this.learned.learn(
      charger.identity,
      'smartCharging',
      answer,
      `charger ${charger.identity} does not support smart charging (answered ${answer} to SetChargingProfile); its setpoints are no longer sent until it boots again`,
    );
    return {
      success: false,
      final: true,
      error: `charger ${charger.identity} does not support smart charging (answered ${answer} to SetChargingProfile)`,
    };
  }

  /** What the chargers lack, in short, for a status: e.g. `CP001: no smart charging`. */
  limitations(): string[] {
    return [...this.learned.summary(), ...this.failsafe.summary()];
  }

  // ------------------------------------------------------------ charger events

  /** What a charger event means for the adapter; its assets' states follow in charger-states.ts. */
  private handleChargerEvent(e: ChargerEvent): void {
    const list = this.byIdentity.get(e.identity);
    if (!list) return;
    const protocol = this.central.protocolOf(e.identity);
    const connectorOf = (c: ChargerConfig) =>
      protocol === 'ocpp2.0.1' ? (c.evseId ?? 1) : (c.connectorId ?? 1);
    const affected =
      'connector' in e && e.connector !== 0
        ? list.filter((c) => connectorOf(c) === e.connector)
        : list;
    switch (e.type) {
      case 'disconnected':
        this.failsafe.disconnected(e.identity);
        break;
      case 'connected':
        this.connectedAt.set(e.identity, this.host.clock.now());
        this.scheduleReapply(e.identity, 'charger connected');
        break;
      case 'boot':
        // It rebooted: it holds no profile, and what it could not do may have changed.
        this.connectedAt.set(e.identity, this.host.clock.now());
        this.learned.forget(e.identity);
        this.scheduleReapply(e.identity, 'charger booted', true);
        break;
      case 'meter':
        // Connector 0 measures the whole charge point, not one EV.
        if (e.connector !== 0) this.checkCompliance(e.readings, affected);
        break;
      default:
        break;
    }
    this.states.follow(e, list, affected, protocol);
    this.options.onEvent?.({
      ...e,
      assetIds: (e.type === 'status' && e.connector === 0 ? list : affected).map((c) => c.assetId),
    });
  }

  /**
   * Has the site check the power a charger measured (1.6 MeterValues, 2.0.1 MeterValues or
   * TransactionEvent: Power.Active.Import, W) against the limit in force; the latest reading
   * with a power counts, timed on arrival (a charger's clock may be off).
   */
  private checkCompliance(readings: MeterReading[], chargers: ChargerConfig[]): void {
    const last = [...readings].reverse().find((r) => r.powerW !== undefined);
    if (!last || last.powerW === undefined || !this.host.measured) return;
    for (const c of chargers) {
      try {
        this.host.measured(c.assetId, {
          kind: 'ev-limit',
          kw: last.powerW / 1000,
          intervalMs: (c.meterIntervalSeconds ?? 60) * 1000,
          ...(c.onDeviation === 'reapply-other-unit'
            ? { deviated: (reason: string) => this.otherUnit(c, reason) }
            : c.onDeviation
              ? { onDeviation: c.onDeviation }
              : {}),
        });
      } catch (err) {
        this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /**
   * A lasting deviation with `onDeviation: 'reapply-other-unit'`: the first time (until the
   * charger boots) its limits go in the other unit from now on, which is told once, and the
   * setpoint in force is re-applied; once switched, a deviation is only reported (no flipping).
   */
  private otherUnit(c: ChargerConfig, reason: string): void {
    if (this.learned.unitOf(c.assetId)) return;
    const from = c.unit ?? 'W';
    const to = from === 'W' ? 'A' : 'W';
    this.learned.learnUnit(c.assetId, to);
    this.options.onEvent?.({
      type: 'capability',
      identity: c.identity,
      capability: 'unit',
      value: to,
      message: `charger ${c.identity} did not follow its limit in ${from} (${reason}): its limits go in ${to} from now on, until it boots again`,
      assetIds: [c.assetId],
    });
    this.host.reapply(c.assetId, `deviation in ${from}: sent in ${to}`);
  }

  // ------------------------------------------------------------ re-applying after a connect

  /**
   * Once per identity: a connect followed by a boot gives one re-apply, after both (a boot
   * restarts the delay).
   */
  private scheduleReapply(identity: string, reason: string, restart = false): void {
    const pending = this.timers.get(identity);
    if (pending && !restart) return;
    if (pending) clearTimeout(pending);
    const t = setTimeout(() => {
      this.timers.delete(identity);
      try {
        this.reapply(identity, reason);
      } catch (err) {
        // A timer has no caller: contain it, never let it end the process.
        this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }, this.reapplyDelayMs);
    t.unref?.();
    this.timers.set(identity, t);
  }

  /**
   * Sends the failsafe profile, has the site re-apply the setpoint in force of each of the
   * charger's assets (a tracked command, unless it completed on this connection already), and
   * asks the charger for its status: a charger that reconnects without rebooting need not send one.
   */
  private reapply(identity: string, reason: string): void {
    if (!this.started || !this.central.isConnected(identity)) return;
    const since = this.connectedAt.get(identity);
    const version = this.central.protocolOf(identity);
    // The failsafe profile first: a re-applied setpoint is confirmed under it, not under an
    // old one that may have stepped down while the charger was away.
    this.failsafe.sendNow(identity);
    for (const c of this.byIdentity.get(identity) ?? []) {
      this.host.reapply(c.assetId, reason, since === undefined ? {} : { appliedSince: since });
      const connector = version === 'ocpp1.6' ? (c.connectorId ?? 1) : (c.evseId ?? 1);
      const params =
        version === 'ocpp1.6'
          ? { requestedMessage: 'StatusNotification', connectorId: connector }
          : { requestedMessage: 'StatusNotification', evse: { id: connector, connectorId: 1 } };
      // Best effort: a charger that does not implement it reports its status some other time.
      this.central.call(identity, 'TriggerMessage', params).catch(() => {});
    }
  }
}
