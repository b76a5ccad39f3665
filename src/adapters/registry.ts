import { AssetTable } from '../assets';
import type { Command } from '../commands';

/**
 * What an adapter reports for one command.
 * - `success: true`: the device accepted it. `completed` (default true) says whether that
 *   is also the confirmation (COMPLETED); `completed: false` leaves it ACKNOWLEDGED until
 *   the adapter confirms it later (a read-back) through `engine.handleResponse`.
 * - `success: false`: a transient failure (retried while attempts remain), or, with
 *   `final: true`, an explicit rejection by the device (FAILED at once, no retry). With
 *   `timedOut: true` the device did not answer at all (a call timeout): retried the same way,
 *   and TIMED_OUT, not FAILED, when no attempt is left. With `expired: true` nothing was
 *   sent because the command's slot ended while it waited (a queue behind a slow call):
 *   CANCELLED as expired.
 */
export interface AdapterResult {
  success: boolean;
  error?: string;
  final?: boolean;
  completed?: boolean;
  timedOut?: boolean;
  expired?: boolean;
}

/**
 * A protocol adapter: sends commands to the devices of the assets it serves.
 *
 * `dispatch` may answer at once (a result, or a promise of one), or return nothing and
 * report later through `engine.handleResponse` (a command left unanswered times out).
 * Throwing or rejecting is a transient failure, unless the error has `final: true`.
 */
export interface Adapter {
  /** Protocol or kind, for messages and status (e.g. 'ocpp1.6', 'modbus-tcp', 'custom'). */
  readonly protocol: string;
  dispatch(command: Command): Promise<AdapterResult | undefined> | AdapterResult | undefined;
}

/**
 * An error an adapter can throw: `final: true` means the device rejected the command,
 * `timedOut: true` that it never answered, `expired: true` that it was not sent because its
 * slot ended (see AdapterResult).
 */
export class AdapterError extends Error {
  readonly final: boolean;
  readonly timedOut: boolean;
  readonly expired: boolean;
  constructor(
    message: string,
    options: { final?: boolean; timedOut?: boolean; expired?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AdapterError';
    this.final = options.final ?? false;
    this.timedOut = options.timedOut ?? false;
    this.expired = options.expired ?? false;
  }
}

/** Which adapter serves which asset: the `adapter` column of the site's AssetTable. */
export class AdapterRegistry {
  private served = 0;

  /** `table`: the site's table of per-asset facts (a new one by default). */
  constructor(readonly table: AssetTable = new AssetTable()) {}

  /**
   * Says that `adapter` serves `assetId`. Registering the same pair again is a no-op;
   * registering an asset that another adapter serves throws, unless `replace` is set.
   */
  register(assetId: string, adapter: Adapter, options: { replace?: boolean } = {}): void {
    if (typeof assetId !== 'string' || assetId === '') {
      throw new TypeError('register: assetId must be a non-empty string');
    }
    if (!adapter || typeof adapter.dispatch !== 'function') {
      throw new TypeError(`register ${assetId}: adapter must have a dispatch(command) method`);
    }
    const entry = this.table.ensure(assetId);
    const existing = entry.adapter;
    if (existing && existing !== adapter && !options.replace) {
      throw new Error(
        `asset ${assetId} is already served by a ${existing.protocol} adapter; unregister it first or pass { replace: true }`,
      );
    }
    if (!existing) this.served++;
    entry.adapter = adapter;
  }

  get(assetId: string): Adapter | undefined {
    return this.table.get(assetId)?.adapter ?? undefined;
  }

  has(assetId: string): boolean {
    return (this.table.get(assetId)?.adapter ?? null) !== null;
  }

  /**
   * Removes the asset's adapter. With `adapter` given, only if that adapter still serves it
   * (so that a closing adapter does not remove the one that replaced it). True if removed.
   */
  unregister(assetId: string, adapter?: Adapter): boolean {
    const entry = this.table.get(assetId);
    const existing = entry?.adapter ?? null;
    if (!entry || !existing || (adapter !== undefined && existing !== adapter)) return false;
    entry.adapter = null;
    this.served--;
    this.table.prune(assetId);
    return true;
  }

  /** Removes every asset served by `adapter`; returns their ids. */
  unregisterAdapter(adapter: Adapter): string[] {
    const removed: string[] = [];
    for (const e of [...this.table.values()]) {
      if (e.adapter === adapter && this.unregister(e.assetId, adapter)) removed.push(e.assetId);
    }
    return removed;
  }

  assets(): string[] {
    const out: string[] = [];
    for (const e of this.table.values()) if (e.adapter) out.push(e.assetId);
    return out;
  }

  get size(): number {
    return this.served;
  }
}
