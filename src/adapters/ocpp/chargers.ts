/**
 * OcppChargers: the adapter between a site and the chargers of a central system. It serves
 * their assets in the site's registry, turns commands into OCPP calls, keeps each asset's EV
 * charger state machine in step with what the charger reports (the charger is the source of
 * truth), and re-sends the setpoint in force when a charger boots or reconnects.
 */

import type { Command } from '../../commands';
import type { Site } from '../../site';
import { EvChargerState, type StateMachine } from '../../state-machine';
import { type Adapter, AdapterError, type AdapterResult } from '../registry';
import type { CentralSystem, ChargerEvent } from './central-system';
import {
  CHARGING_STATE_201,
  type ChargerConfig,
  commandToCall,
  interpretResponse,
  STATUS_16,
  STATUS_201,
  TranslationError,
} from './translate';

export interface OcppChargersOptions {
  /** Who holds the state machines (a node id), for sharing them with other users. */
  owner?: string;
  /** Delay after a boot or reconnect before the setpoint in force is sent again. Default 2 s. */
  resendDelayMs?: number;
  /** Everything chargers do, for telemetry (the node's second output). */
  onEvent?: (event: ChargerEvent & { assetIds: string[] }) => void;
  /** Commands re-sent after a reconnect, and their outcome. */
  onResend?: (command: Command, result: AdapterResult) => void;
}

/** CALLERROR codes that are a charger's final answer, not a reason to retry. */
const FINAL_RPC_ERRORS = new Set([
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

export class OcppChargers implements Adapter {
  readonly protocol = 'ocpp';
  private readonly byAsset = new Map<string, ChargerConfig>();
  private readonly byIdentity = new Map<string, ChargerConfig[]>();
  private readonly owner: string;
  private readonly resendDelayMs: number;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** When each charger's current connection opened (epoch ms). */
  private readonly connectedAt = new Map<string, number>();
  private readonly onCharger: (e: ChargerEvent) => void;
  private started = false;

  constructor(
    private readonly site: Site,
    private readonly central: CentralSystem,
    chargers: ChargerConfig[],
    private readonly options: OcppChargersOptions = {},
  ) {
    this.owner = options.owner ?? 'ocpp';
    this.resendDelayMs = options.resendDelayMs ?? 2000;
    chargers.forEach((c, i) => {
      const where = `charger [${i}]`;
      if (typeof c.identity !== 'string' || c.identity.trim() === '')
        throw new TypeError(`${where}: identity is required`);
      if (typeof c.assetId !== 'string' || c.assetId.trim() === '')
        throw new TypeError(`${where} (${c.identity}): assetId is required`);
      if (this.byAsset.has(c.assetId))
        throw new TypeError(`${where}: asset ${c.assetId} is listed twice`);
      if (c.ratedKw !== undefined && !(c.ratedKw > 0))
        throw new TypeError(`${where} (${c.identity}): ratedKw must be > 0`);
      if (c.unit !== undefined && c.unit !== 'W' && c.unit !== 'A')
        throw new TypeError(`${where} (${c.identity}): unit must be W or A`);
      this.byAsset.set(c.assetId, c);
      const list = this.byIdentity.get(c.identity) ?? [];
      list.push(c);
      this.byIdentity.set(c.identity, list);
    });
    this.onCharger = (e) => this.handleChargerEvent(e);
  }

  get chargers(): ChargerConfig[] {
    return [...this.byAsset.values()];
  }

  /** Registers the assets (all or none) and their state machines, and follows the chargers. */
  start(): void {
    if (this.started) return;
    const registry = this.site.adapterRegistry;
    const done: string[] = [];
    try {
      for (const assetId of this.byAsset.keys()) {
        registry.register(assetId, this);
        done.push(assetId);
      }
    } catch (err) {
      for (const a of done) registry.unregister(a, this);
      throw err;
    }
    for (const c of this.byAsset.values()) {
      const m = this.site.ensureStateMachine(c.assetId, 'ev-charger', this.owner);
      // Until the charger says otherwise it is offline: its commands wait.
      if (!this.central.isConnected(c.identity))
        m.forceState(EvChargerState.UNAVAILABLE, 'charger not connected');
    }
    this.central.on('charger', this.onCharger);
    this.started = true;
  }

  /** Stops following the chargers and unregisters the assets; `removed` also drops the machines. */
  stop(removed = false): void {
    if (!this.started) return;
    this.started = false;
    this.central.off('charger', this.onCharger);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const assetId of this.byAsset.keys()) {
      this.site.adapterRegistry.unregister(assetId, this);
      if (removed) this.site.releaseStateMachine(assetId, this.owner);
    }
  }

  serves(assetId: string): boolean {
    return this.byAsset.has(assetId);
  }

  private machine(assetId: string): StateMachine | undefined {
    return this.site.getStateMachine(assetId);
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
    return this.send(cmd, charger);
  }

  private async send(cmd: Command, charger: ChargerConfig): Promise<AdapterResult> {
    const version = this.central.protocolOf(charger.identity);
    if (!version) throw new AdapterError(`charger ${charger.identity} is not connected`);
    const connector = version === 'ocpp1.6' ? (charger.connectorId ?? 1) : (charger.evseId ?? 1);
    let call: { method: string; params: Record<string, unknown> };
    try {
      call = commandToCall(
        cmd,
        charger,
        version,
        this.central.transactionOf(charger.identity, connector),
      );
    } catch (err) {
      if (err instanceof TranslationError)
        return { success: false, final: true, error: err.message };
      throw err;
    }
    let response: unknown;
    try {
      response = await this.central.call(charger.identity, call.method, call.params);
    } catch (err) {
      const code = (err as { rpcErrorCode?: unknown }).rpcErrorCode;
      const message = err instanceof Error ? err.message : String(err);
      if (typeof code === 'string' && FINAL_RPC_ERRORS.has(code)) {
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
      return {
        success: false,
        final: true,
        error: `charger ${charger.identity}: ${verdict.reason}`,
      };
    }
    return { success: true };
  }

  // ------------------------------------------------------------ chargers -> states

  private handleChargerEvent(e: ChargerEvent): void {
    const list = this.byIdentity.get(e.identity);
    if (!list) return;
    const connectorOf = (c: ChargerConfig) =>
      this.central.protocolOf(e.identity) === 'ocpp2.0.1' ? (c.evseId ?? 1) : (c.connectorId ?? 1);
    const affected =
      'connector' in e && e.connector !== 0
        ? list.filter((c) => connectorOf(c) === e.connector)
        : list;
    switch (e.type) {
      case 'disconnected':
        for (const c of list)
          this.machine(c.assetId)?.forceState(EvChargerState.UNAVAILABLE, 'charger disconnected');
        break;
      case 'connected':
        this.connectedAt.set(e.identity, this.site.clock.now());
        this.scheduleResend(e.identity);
        break;
      case 'boot':
        this.scheduleResend(e.identity);
        break;
      case 'status': {
        const table = e.protocol === 'ocpp1.6' ? STATUS_16 : STATUS_201;
        let target = table[e.status];
        if (e.protocol === 'ocpp2.0.1' && e.status === 'Occupied' && e.chargingState) {
          target = CHARGING_STATE_201[e.chargingState] ?? target;
        }
        // Connector 0 (the whole charge point) going Unavailable or Faulted affects every connector.
        const targets =
          e.connector === 0
            ? target === EvChargerState.UNAVAILABLE || target === EvChargerState.FAULTED
              ? list
              : []
            : affected;
        if (target) for (const c of targets) this.applyState(c.assetId, target, `OCPP ${e.status}`);
        break;
      }
      case 'transaction-ended': {
        // 2.0.1 has no Finishing status: a transaction that ended on an occupied connector is.
        if (this.central.protocolOf(e.identity) === 'ocpp2.0.1') {
          for (const c of affected) {
            const m = this.machine(c.assetId);
            if (
              m &&
              [
                EvChargerState.CHARGING,
                EvChargerState.SUSPENDED,
                EvChargerState.PREPARING,
              ].includes(m.currentState as EvChargerState)
            ) {
              this.applyState(c.assetId, EvChargerState.FINISHING, 'OCPP TransactionEvent Ended');
            }
          }
        }
        break;
      }
      case 'transaction-updated': {
        const target = e.chargingState ? CHARGING_STATE_201[e.chargingState] : undefined;
        if (target)
          for (const c of affected)
            this.applyState(c.assetId, target, `OCPP chargingState ${e.chargingState}`);
        break;
      }
      default:
        break;
    }
    this.options.onEvent?.({
      ...e,
      assetIds: (e.type === 'status' && e.connector === 0 ? list : affected).map((c) => c.assetId),
    });
  }

  /** Moves the machine to `target` by a trigger where one leads there, else by force. */
  private applyState(assetId: string, target: string, reason: string): void {
    const m = this.machine(assetId);
    if (!m || m.currentState === target) {
      m?.forceState(target, reason); // refreshes updatedAt
      return;
    }
    const defs: Record<string, string> = {
      PREPARING: 'plug_in',
      CHARGING: m.currentState === EvChargerState.SUSPENDED ? 'resume' : 'start_charge',
      SUSPENDED: 'suspend',
      FINISHING: 'complete',
      AVAILABLE:
        m.currentState === EvChargerState.FAULTED
          ? 'reset'
          : m.currentState === EvChargerState.UNAVAILABLE
            ? 'enable'
            : 'unplug',
      FAULTED: 'fault',
      UNAVAILABLE: 'disable',
    };
    const trigger = defs[target];
    if (trigger && m.canTrigger(trigger)) {
      m.trigger(trigger);
      if (m.currentState === target) return;
    }
    m.forceState(target, reason);
  }

  // ------------------------------------------------------------ re-sending after a reboot

  /** Once per identity: a connect followed by a boot gives one re-send, after both. */
  private scheduleResend(identity: string): void {
    if (this.timers.has(identity)) return;
    const t = setTimeout(() => {
      this.timers.delete(identity);
      this.resend(identity).catch(() => {});
    }, this.resendDelayMs);
    t.unref?.();
    this.timers.set(identity, t);
  }

  /**
   * Sends the setpoint in force again to a charger that booted or reconnected: the latest
   * COMPLETED setpoint command of each of its assets whose slot has begun and not ended,
   * unless a newer command is on its way (PENDING or in flight) anyway.
   */
  private async resend(identity: string): Promise<void> {
    if (!this.started || !this.central.isConnected(identity)) return;
    const now = this.site.clock.now();
    for (const charger of this.byIdentity.get(identity) ?? []) {
      const engine = this.site.engine;
      // A newer command is on its way anyway.
      if (engine.getActiveCommands(charger.assetId).length > 0) continue;
      const inForce = engine.getCommandInForce(charger.assetId, now);
      if (!inForce) continue;
      // Already sent on this connection (it completed after the charger connected).
      const completedAt = inForce.history.at(-1)?.at.getTime() ?? 0;
      if (completedAt >= (this.connectedAt.get(identity) ?? Number.POSITIVE_INFINITY)) continue;
      let result: AdapterResult;
      try {
        result = await this.send(inForce, charger);
      } catch (err) {
        result = { success: false, error: err instanceof Error ? err.message : String(err) };
      }
      this.options.onResend?.(inForce, result);
    }
  }
}
