/**
 * ModbusBatteries: the adapter between a site (its AdapterHost port) and batteries on one
 * Modbus bus. It serves their assets, writes setpoints as each battery's register map says
 * (and reads them back), re-writes the setpoint in force before the device's revert timeout
 * (watchdog), has the site re-apply it as a tracked command when the bus (re)connects (a
 * device restart, a redeploy, a restart of Node-RED), and polls telemetry that drives each
 * asset's battery state machine. A battery that stops answering for staleStateSeconds
 * becomes UNAVAILABLE, so its commands are held instead of being sent into the void.
 *
 * Failsafe (`revertSeconds`): on every connect, before the re-apply, it writes the device's
 * own revert timer (the map's `revert` register and its enable), so a battery that no one
 * writes to (Node-RED, this gateway or the network gone) falls back to its safe setting by
 * itself; the watchdog keeps re-writing below that time while the gateway runs.
 *
 * The register traffic of one battery (a setpoint written and read back, a telemetry read)
 * is in battery-registers.ts; this file decides when, and what the answers mean.
 */

import { type Command, CommandStatus, CommandType } from '../../commands';
import { BatteryState } from '../../state-machine';
import type { AdapterHost } from '../host';
import type { Adapter, AdapterResult } from '../registry';
import {
  type Battery,
  type BatteryConfig,
  readTelemetry,
  type Telemetry,
  writeSetpoint,
} from './battery-registers';
import type { ModbusConnection } from './connection';
import { checkTimers, writeRevertTimer } from './failsafe';
import { validateRegisterMap } from './register-map';

export type { BatteryConfig, Telemetry } from './battery-registers';

export interface ModbusBatteriesOptions {
  owner?: string;
  onTelemetry?: (t: Telemetry) => void;
  /** Something worth telling (a poll failure, a watchdog re-write and its outcome). */
  onEvent?: (e: { type: string; assetId: string; detail?: unknown }) => void;
  /** A failure with no caller to throw to (a re-apply when the bus connects). */
  onError?: (error: Error) => void;
}

export class ModbusBatteries implements Adapter {
  readonly protocol = 'modbus';
  private readonly batteries = new Map<string, Battery>();
  private readonly owner: string;
  private started = false;
  private readonly onConnected: () => void;

  constructor(
    private readonly host: AdapterHost,
    private readonly connection: ModbusConnection,
    configs: BatteryConfig[],
    private readonly options: ModbusBatteriesOptions = {},
  ) {
    this.owner = options.owner ?? 'modbus';
    configs.forEach((c, i) => {
      const where = `battery [${i}]${c?.assetId ? ` (${c.assetId})` : ''}`;
      if (typeof c.assetId !== 'string' || c.assetId.trim() === '')
        throw new TypeError(`${where}: assetId is required`);
      if (!(Number.isInteger(c.unitId) && c.unitId >= 0 && c.unitId <= 255))
        throw new TypeError(
          `${where}: unitId must be an integer from 0 to 255, got ${JSON.stringify(c.unitId)}`,
        );
      if (c.onDeviation !== undefined && c.onDeviation !== 'report' && c.onDeviation !== 'reapply')
        throw new TypeError(
          `${where}: onDeviation must be 'report' or 'reapply', got ${JSON.stringify(c.onDeviation)}`,
        );
      if (!(c.ratedChargeKw > 0) || !(c.ratedDischargeKw > 0))
        throw new TypeError(`${where}: ratedChargeKw and ratedDischargeKw must be > 0`);
      if (this.batteries.has(c.assetId))
        throw new TypeError(`${where}: asset ${c.assetId} is listed twice`);
      validateRegisterMap(c.map);
      const watchdogSeconds = checkTimers(c, where);
      this.batteries.set(c.assetId, {
        config: c,
        watchdogSeconds,
        revertError: null,
        active: null,
        scaleFactors: new Map(),
        limitKw: null,
        lastOk: 0,
        pollTimer: null,
        watchdogTimer: null,
        counter: 0,
        polling: false,
        soc: null,
      });
    });
    this.onConnected = () => this.reapplyAll('Modbus connection opened');
  }

  get assets(): string[] {
    return [...this.batteries.keys()];
  }

  serves(assetId: string): boolean {
    return this.batteries.has(assetId);
  }

  /**
   * Serves the assets (all or none) with their machines, starts polling and watchdogs; when
   * the bus is already open (a redeploy of this adapter alone), re-applies the setpoints.
   */
  start(): void {
    if (this.started) return;
    this.host.serve(this, [...this.batteries.keys()], 'battery', this.owner);
    const now = this.host.clock.now();
    for (const b of this.batteries.values()) {
      b.lastOk = now;
      const every = b.config.pollIntervalMs ?? 5000;
      if (every > 0) {
        b.pollTimer = setInterval(() => void this.poll(b), every);
        b.pollTimer.unref?.();
      }
      const wd = b.watchdogSeconds;
      if (wd > 0) {
        b.watchdogTimer = setInterval(() => void this.rewrite(b), wd * 1000);
        b.watchdogTimer.unref?.();
      }
    }
    this.connection.on('connected', this.onConnected);
    this.started = true;
    if (this.connection.state === 'connected') this.reapplyAll('adapter started');
    for (const b of this.batteries.values()) void this.poll(b);
  }

  stop(removed = false): void {
    if (!this.started) return;
    this.started = false;
    this.connection.off('connected', this.onConnected);
    for (const b of this.batteries.values()) {
      if (b.pollTimer) clearInterval(b.pollTimer);
      if (b.watchdogTimer) clearInterval(b.watchdogTimer);
      b.pollTimer = null;
      b.watchdogTimer = null;
    }
    this.host.unserve(this, [...this.batteries.keys()], this.owner, removed);
  }

  /**
   * The bus (re)opened: the device may have restarted (setpoint reverted, scale factors
   * changed), or Node-RED did. Forget what was read from the devices and have the site
   * re-apply each setpoint in force as a tracked command.
   */
  private reapplyAll(reason: string): void {
    if (!this.started) return;
    for (const b of this.batteries.values()) {
      b.scaleFactors.clear();
      // Queued first: the bus sends one request at a time, in order.
      void this.armRevert(b);
      try {
        this.host.reapply(b.config.assetId, reason);
      } catch (err) {
        // Called from the connection's event: contain it, never let it end the process.
        this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** The watchdog period in force for a battery, seconds (0: none). */
  watchdogPeriod(assetId: string): number | undefined {
    return this.batteries.get(assetId)?.watchdogSeconds;
  }

  /** Batteries whose revert timer could not be written at the last connect, and why. */
  revertProblems(): { assetId: string; error: string }[] {
    return [...this.batteries.values()]
      .filter((b) => b.revertError !== null)
      .map((b) => ({ assetId: b.config.assetId, error: b.revertError as string }));
  }

  /**
   * Arms the device's failsafe (src/adapters/modbus/failsafe.ts), queued before the
   * re-apply; a failure is reported (`revert-timer-failed`) and tried again on the next
   * connect, and never holds a setpoint back.
   */
  private async armRevert(b: Battery): Promise<void> {
    const { assetId, revertSeconds, map } = b.config;
    const error = await writeRevertTimer(this.connection, b.config);
    if (error === undefined) return;
    b.revertError = error;
    if (error !== null) {
      this.options.onEvent?.({ type: 'revert-timer-failed', assetId, detail: error });
      return;
    }
    this.options.onEvent?.({
      type: 'revert-timer-set',
      assetId,
      detail: { revertSeconds, address: map.revert?.address },
    });
  }

  // ------------------------------------------------------------ commands -> registers

  async dispatch(cmd: Command): Promise<AdapterResult> {
    const b = this.batteries.get(cmd.assetId);
    if (!b)
      return {
        success: false,
        final: true,
        error: `asset ${cmd.assetId} is not a battery of this node`,
      };
    let kw: number;
    switch (cmd.type) {
      case CommandType.SET_CHARGE_RATE:
        kw = cmd.valueKw;
        break;
      case CommandType.SET_DISCHARGE_RATE:
        kw = -cmd.valueKw;
        break;
      case CommandType.SET_POWER_LIMIT:
        // A cap on the magnitude of later setpoints, applied to the one in force now.
        b.limitKw = cmd.valueKw;
        kw = b.active ? b.active.kw : 0;
        break;
      default:
        return { success: false, final: true, error: `${cmd.type} is not a battery command` };
    }
    if (b.limitKw !== null) kw = Math.max(-b.limitKw, Math.min(b.limitKw, kw));
    const { ratedChargeKw, ratedDischargeKw, socMinPercent, socMaxPercent } = b.config;
    // SoC limits of the asset (the device may have its own): hold at 0 kW at a limit.
    if (b.soc !== null && kw > 0 && socMaxPercent !== undefined && b.soc >= socMaxPercent) kw = 0;
    if (b.soc !== null && kw < 0 && socMinPercent !== undefined && b.soc <= socMinPercent) kw = 0;
    if (kw > ratedChargeKw + 1e-9) {
      return {
        success: false,
        final: true,
        error: `${kw} kW charge is above the rated ${ratedChargeKw} kW of battery ${cmd.assetId}; nothing was written`,
      };
    }
    if (-kw > ratedDischargeKw + 1e-9) {
      return {
        success: false,
        final: true,
        error: `${-kw} kW discharge is above the rated ${ratedDischargeKw} kW of battery ${cmd.assetId}; nothing was written`,
      };
    }
    const notAfter = cmd.validUntil?.getTime();
    const result = await writeSetpoint(this.connection, b, kw, notAfter, () => {
      // The device took the write: ACKNOWLEDGED before the read-back confirms it.
      if (cmd.status === CommandStatus.DISPATCHED)
        this.host.respond(cmd.id, true, null, { completed: false });
    });
    if (result.success) b.active = { kw, validUntil: cmd.validUntil?.getTime() ?? null };
    return result;
  }

  /**
   * The watchdog: on its period, bumps the watchdog register and writes the setpoint in force
   * again before the device's revert timeout (unless a command is on the wire for it).
   */
  private async rewrite(b: Battery): Promise<void> {
    if (!this.started || this.connection.state !== 'connected') return;
    const a = b.active;
    const now = this.host.clock.now();
    const { map, unitId, assetId } = b.config;
    try {
      if (map.watchdog) {
        b.counter = (b.counter + 1) & 0xffff;
        const v = map.watchdog.value === 'counter' ? b.counter : map.watchdog.value;
        await this.connection.write(
          unitId,
          map.watchdog.address,
          [v],
          map.watchdog.function ?? 'FC16',
        );
      }
      if (!a || (a.validUntil !== null && a.validUntil <= now)) return;
      const busy = this.host
        .activeCommands(assetId)
        .some(
          (c) => c.status === CommandStatus.DISPATCHED || c.status === CommandStatus.ACKNOWLEDGED,
        );
      if (busy) return;
      const r = await writeSetpoint(this.connection, b, a.kw, a.validUntil ?? undefined);
      this.options.onEvent?.({ type: 'watchdog-rewrite', assetId, detail: { kw: a.kw, ...r } });
    } catch (err) {
      this.options.onEvent?.({ type: 'watchdog-failed', assetId, detail: (err as Error).message });
    }
  }

  // ------------------------------------------------------------ telemetry -> states

  /** Has the site check the measured power against the setpoint in force. */
  private checkCompliance(b: Battery, kw: number, at: number): void {
    const { assetId, socMaxPercent, socMinPercent, pollIntervalMs, onDeviation } = b.config;
    try {
      this.host.measured?.(assetId, {
        kind: 'battery',
        kw,
        at,
        intervalMs: pollIntervalMs || 5000,
        atSocMax: b.soc !== null && socMaxPercent !== undefined && b.soc >= socMaxPercent,
        atSocMin: b.soc !== null && socMinPercent !== undefined && b.soc <= socMinPercent,
        ...(onDeviation ? { onDeviation } : {}),
      });
    } catch (err) {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Reads SoC, power and status once; updates the state machine. Exposed for tests. */
  async poll(b: Battery | string): Promise<Telemetry | null> {
    const battery = typeof b === 'string' ? this.batteries.get(b) : b;
    if (!battery || !this.started || battery.polling) return null;
    battery.polling = true;
    const { assetId } = battery.config;
    const machine = this.host.stateMachine(assetId);
    const now = this.host.clock.now();
    try {
      const { telemetry: t, state } = await readTelemetry(this.connection, battery, now);
      battery.lastOk = this.host.clock.now();
      if (machine) {
        if (state !== undefined) {
          t.state = state;
          machine.forceState(
            state,
            `Modbus telemetry${t.statusCode !== undefined ? ` (status ${t.statusCode})` : ''}`,
          );
        } else if (machine.currentState === BatteryState.UNAVAILABLE) {
          machine.forceState(BatteryState.IDLE, 'answering again');
        } else {
          machine.forceState(machine.currentState); // refresh: the device answered
        }
      }
      if (t.powerKw !== undefined) this.checkCompliance(battery, t.powerKw, now);
      this.options.onTelemetry?.(t);
      return t;
    } catch (err) {
      const stale = this.host.staleStateSeconds * 1000;
      this.options.onEvent?.({ type: 'poll-failed', assetId, detail: (err as Error).message });
      if (
        machine &&
        this.host.clock.now() - battery.lastOk > stale &&
        machine.currentState !== BatteryState.UNAVAILABLE
      ) {
        machine.forceState(
          BatteryState.UNAVAILABLE,
          `no answer for more than ${stale / 1000} s: ${(err as Error).message}`,
        );
      }
      return null;
    } finally {
      battery.polling = false;
    }
  }
}
