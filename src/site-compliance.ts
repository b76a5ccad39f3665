/**
 * A Site's side of the compliance check (src/site.ts `measured`, `onMeasured`): each
 * measurement an adapter reports goes to the listeners, then is checked against the asset's
 * setpoint in force (kept per asset as a short list of COMPLETED setpoints, so that a
 * measurement does not scan the engine); deviations and recoveries are published, and a
 * deviation may re-apply the setpoint. The Site owns one, through the narrow ComplianceHost.
 */

import type { AssetMeasurement } from './adapters/host';
import type { Clock } from './clock';
import { type Command, CommandStatus, CommandType } from './commands';
import type { ComplianceMonitor, ComplianceState, Setpoint, Transition } from './compliance';
import type { DispatchEngine } from './engine';
import { type EventBus, EventType } from './event-bus';

/** What the compliance side needs of its Site. */
export interface ComplianceHost {
  readonly engine: DispatchEngine;
  readonly eventBus: EventBus;
  readonly compliance: ComplianceMonitor;
  readonly clock: Clock;
  onError(error: Error): void;
}

export class SiteCompliance {
  /**
   * Per asset seen by the compliance check: its COMPLETED setpoints that may be in force (a
   * short list, pruned as they end), so that a measurement does not scan the engine.
   */
  private readonly completed = new Map<string, Command[]>();
  /** Who wants each measurement (`onMeasured`): the fleet's telemetry, the editor's timeline. */
  private readonly listeners = new Set<(assetId: string, m: AssetMeasurement) => void>();

  constructor(private readonly host: ComplianceHost) {}

  /**
   * A measurement of the asset's power, checked against its setpoint in force (the latest
   * COMPLETED setpoint command): publishes ASSET_DEVIATION when it has not followed for
   * longer than the grace period, ASSET_COMPLIANT when it follows again; with `onDeviation:
   * 'reapply'`, re-applies the setpoint once per deviation episode; `deviated` (the
   * adapter's own answer) is called once per episode too.
   */
  measured(assetId: string, m: AssetMeasurement): ComplianceState {
    for (const listener of this.listeners) {
      try {
        listener(assetId, m);
      } catch (err) {
        this.host.onError(
          new Error(`a listener to measurements of ${assetId} failed: ${(err as Error).message}`),
        );
      }
    }
    const now = this.host.clock.now();
    const cmd = this.setpointInForce(assetId, now);
    // Either may decide a transition (a setpoint that changed, or the new reading).
    const t1 = this.host.compliance.setSetpoint(assetId, cmd ? setpointOf(cmd, m) : null);
    if (t1) this.publishCompliance(t1, m);
    const t2 = this.host.compliance.measure(assetId, {
      kw: m.kw,
      ...(m.at !== undefined ? { at: m.at } : {}),
      ...(m.intervalMs !== undefined ? { intervalMs: m.intervalMs } : {}),
    });
    if (t2) this.publishCompliance(t2, m);
    return this.host.compliance.stateOf(assetId);
  }

  /**
   * Calls `listener` with every measurement an adapter reports (`measured`), before the
   * compliance check; one that throws is reported through onError. Returns the unsubscribe.
   */
  onMeasured(listener: (assetId: string, m: AssetMeasurement) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  noteCompleted(cmd: Command): void {
    const list = this.completed.get(cmd.assetId);
    if (!list || !SETPOINT_TYPES.has(cmd.type)) return; // not checked (yet): nothing to keep
    list.push(cmd);
    if (list.length > 16) {
      list.sort((a, b) => a.scheduledAt.getTime() - b.scheduledAt.getTime());
      list.splice(0, list.length - 16);
    }
  }

  /**
   * Forgets the setpoints in force it keeps: each asset's next measurement reads its setpoint
   * from the engine again (a site that loaded its saved state in slices: measurements
   * during the load saw an empty engine).
   */
  forgetSetpoints(): void {
    this.completed.clear();
  }

  /**
   * `engine.getCommandInForce` from the asset's short list (filled by COMPLETED commands; on
   * the asset's first measurement from the engine, once).
   */
  private setpointInForce(assetId: string, now: number): Command | undefined {
    let list = this.completed.get(assetId);
    if (!list) {
      const first = this.host.engine.getCommandInForce(assetId, now);
      list = first ? [first] : [];
      this.completed.set(assetId, list);
      return first;
    }
    let best: Command | undefined;
    let ended = 0;
    for (const c of list) {
      if (c.validUntil !== null && c.validUntil.getTime() <= now) {
        ended++;
        continue;
      }
      if (c.status !== CommandStatus.COMPLETED || c.scheduledAt.getTime() > now) continue;
      if (!best || c.scheduledAt.getTime() > best.scheduledAt.getTime()) best = c;
    }
    if (ended > 0) {
      const keep = list.filter((c) => c.validUntil === null || c.validUntil.getTime() > now);
      this.completed.set(assetId, keep);
    }
    return best;
  }

  private publishCompliance(t: Transition, m: AssetMeasurement): void {
    const since = new Date(t.since).toISOString();
    if (t.type === 'deviation') {
      this.host.eventBus.publish(EventType.ASSET_DEVIATION, {
        assetId: t.assetId,
        setpointKw: t.setpointKw,
        measuredKw: t.measuredKw,
        since,
        reason: t.reason ?? '',
      });
      if (m.onDeviation === 'reapply') {
        try {
          this.host.engine.reapply(t.assetId, `deviation: ${t.reason ?? ''}`);
        } catch (err) {
          this.host.onError(
            new Error(
              `re-applying the setpoint of ${t.assetId} after a deviation failed: ${(err as Error).message}`,
            ),
          );
        }
      }
      if (m.deviated) {
        try {
          m.deviated(t.reason ?? '');
        } catch (err) {
          this.host.onError(
            new Error(
              `the adapter's answer to a deviation of ${t.assetId} failed: ${(err as Error).message}`,
            ),
          );
        }
      }
    } else {
      this.host.eventBus.publish(EventType.ASSET_COMPLIANT, {
        assetId: t.assetId,
        setpointKw: t.setpointKw,
        measuredKw: t.measuredKw,
        since,
        deviatedForMs: t.deviatedForMs ?? 0,
      });
    }
  }
}

const SETPOINT_TYPES: ReadonlySet<CommandType> = new Set([
  CommandType.SET_CHARGE_RATE,
  CommandType.SET_DISCHARGE_RATE,
  CommandType.SET_POWER_LIMIT,
]);

/**
 * The setpoint a command in force means for the compliance check, or null when it means
 * none there (a battery's power limit is a cap, not a setpoint; an EV is never told to export).
 */
function setpointOf(cmd: Command, m: AssetMeasurement): Setpoint | null {
  let doneAt = 0;
  for (let i = cmd.history.length - 1; i >= 0; i--) {
    const h = cmd.history[i];
    if (h?.status === CommandStatus.COMPLETED) {
      doneAt = h.at.getTime();
      break;
    }
  }
  const since = Math.max(cmd.scheduledAt.getTime(), doneAt);
  let kw: number;
  if (m.kind === 'ev-limit') {
    if (cmd.type === CommandType.SET_DISCHARGE_RATE) return null;
    kw = cmd.valueKw;
  } else if (cmd.type === CommandType.SET_CHARGE_RATE) kw = cmd.valueKw;
  else if (cmd.type === CommandType.SET_DISCHARGE_RATE) kw = -cmd.valueKw;
  else return null;
  return {
    id: cmd.id,
    kind: m.kind,
    kw,
    since,
    ...(m.atSocMax !== undefined ? { atSocMax: m.atSocMax } : {}),
    ...(m.atSocMin !== undefined ? { atSocMin: m.atSocMin } : {}),
  };
}
