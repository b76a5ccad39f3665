/**
 * How an asset's EV charger state machine follows what its charger reports (the charger is
 * the source of truth): OCPP 1.6 and 2.0.1 status, 2.0.1 chargingState and the end of a
 * transaction, a lost connection (UNAVAILABLE), a reconnect (back to the state it last
 * reported, not a guess) and a boot (what it reported before means nothing now). A state is
 * reached by a trigger where one leads there, else by force (`moveTo`). OcppChargers
 * (chargers.ts) hands it every charger event.
 */

import { EvChargerState, type StateMachine } from '../../state-machine';
import type { ChargerEvent } from './csms-handlers';
import {
  CHARGING_STATE_201,
  type ChargerConfig,
  type OcppVersion,
  STATUS_16,
  STATUS_201,
} from './translate';

/** States from which a 2.0.1 transaction that ended goes to FINISHING. */
const ENDS_IN_FINISHING: readonly string[] = [
  EvChargerState.CHARGING,
  EvChargerState.SUSPENDED,
  EvChargerState.PREPARING,
];

export class ChargerStates {
  /** The state each asset's charger last reported (to restore when it reconnects). */
  private readonly reported = new Map<string, string>();

  constructor(private readonly machine: (assetId: string) => StateMachine | undefined) {}

  /**
   * Follows one event of a charger: `list` its assets, `affected` those of the event's
   * connector (all for an event of the whole charger), `protocol` the version it speaks now.
   */
  follow(
    e: ChargerEvent,
    list: readonly ChargerConfig[],
    affected: readonly ChargerConfig[],
    protocol: OcppVersion | undefined,
  ): void {
    switch (e.type) {
      case 'disconnected':
        for (const c of list)
          this.machine(c.assetId)?.forceState(EvChargerState.UNAVAILABLE, 'charger disconnected');
        break;
      case 'connected':
        // A charger that reconnects need not say anything (no boot, no status): hold nothing
        // on a guess. Back to what it last reported (it is asked, TriggerMessage, at the
        // re-apply).
        for (const c of list) {
          if (this.machine(c.assetId)?.currentState !== EvChargerState.UNAVAILABLE) continue;
          const last = this.reported.get(c.assetId);
          if (last === undefined)
            this.apply(c.assetId, EvChargerState.AVAILABLE, 'charger connected');
          else this.apply(c.assetId, last, 'charger connected: its last reported state');
        }
        break;
      case 'boot':
        for (const c of list) this.reported.delete(c.assetId);
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
        if (target)
          for (const c of targets) {
            this.reported.set(c.assetId, target);
            this.apply(c.assetId, target, `OCPP ${e.status}`);
          }
        break;
      }
      case 'transaction-ended':
        // 2.0.1 has no Finishing status: a transaction that ended on an occupied connector is.
        if (protocol !== 'ocpp2.0.1') break;
        for (const c of affected) {
          const m = this.machine(c.assetId);
          if (m && ENDS_IN_FINISHING.includes(m.currentState))
            this.apply(c.assetId, EvChargerState.FINISHING, 'OCPP TransactionEvent Ended');
        }
        break;
      case 'transaction-updated': {
        const target = e.chargingState ? CHARGING_STATE_201[e.chargingState] : undefined;
        if (target)
          for (const c of affected)
            this.apply(c.assetId, target, `OCPP chargingState ${e.chargingState}`);
        break;
      }
      default:
        break;
    }
  }

  private apply(assetId: string, target: string, reason: string): void {
    const m = this.machine(assetId);
    if (m) moveTo(m, target, reason);
  }
}

/** Moves the machine to `target` by a trigger where one leads there, else by force. */
export function moveTo(m: StateMachine, target: string, reason: string): void {
  if (m.currentState === target) {
    m.forceState(target, reason); // refreshes updatedAt
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
