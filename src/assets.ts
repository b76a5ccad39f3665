/**
 * AssetTable: the one table of per-asset facts of a site. For each asset: the adapter that
 * serves it, its state machine (with the kind it was made as, the users that share it and
 * the engine's listener on it) and what its adapter learned of the device (capabilities).
 * The AdapterRegistry, the DispatchEngine and the Site each read and write their part of an
 * entry here instead of keeping a map of their own. An entry with nothing left is dropped.
 */

import type { Adapter } from './adapters/registry';
import type { StateMachine } from './state-machine';

export interface AssetEntry {
  readonly assetId: string;
  adapter: Adapter | null;
  machine: StateMachine | null;
  /** How the machine was made ('ev-charger', 'battery', 'custom:<states>'), or null. */
  machineKind: string | null;
  /** Who uses the machine (node ids): it is dropped when nobody does. */
  readonly machineUsers: Set<string>;
  /** Removes the engine's listener on the machine (holds and releases). */
  offMachine: (() => void) | null;
  /** What the adapter learned of the device, by name (e.g. `smartCharging: false`). */
  readonly capabilities: Map<string, unknown>;
  /**
   * The dispatcher (sink id) that last delivered a command to the asset: a command without a
   * dispatcher of its own (a re-apply) goes there, since its wires reach the asset's adapter.
   * Does not keep the entry alive.
   */
  dispatcher: string | null;
}

export class AssetTable {
  private readonly entries = new Map<string, AssetEntry>();

  get(assetId: string): AssetEntry | undefined {
    return this.entries.get(assetId);
  }

  /** The asset's entry, made empty if it has none. */
  ensure(assetId: string): AssetEntry {
    let e = this.entries.get(assetId);
    if (!e) {
      e = {
        assetId,
        adapter: null,
        machine: null,
        machineKind: null,
        machineUsers: new Set(),
        offMachine: null,
        capabilities: new Map(),
        dispatcher: null,
      };
      this.entries.set(assetId, e);
    }
    return e;
  }

  /** Drops the asset's entry when nothing is left in it. */
  prune(assetId: string): void {
    const e = this.entries.get(assetId);
    if (e && e.adapter === null && e.machine === null && e.capabilities.size === 0)
      this.entries.delete(assetId);
  }

  values(): IterableIterator<AssetEntry> {
    return this.entries.values();
  }
}
