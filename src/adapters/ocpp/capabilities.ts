/**
 * LearnedCapabilities: what the OCPP adapter learned that a charger does not implement
 * (smart charging: SetChargingProfile; GetCompositeSchedule; the station maximum profile of
 * the failsafe chain), kept in the site's AssetTable
 * (`capabilities` of each asset of the charger, through the AdapterHost port), told once when
 * learned, forgotten when the charger boots again, and summed up for a node's status; also
 * the unit an asset's limits go in after its configured one was not followed. It keeps the
 * identities that may have learned something, so a summary reads those, not the whole fleet
 * (a node's status asks for one on every change of thousands of chargers).
 */

import type { AdapterHost } from '../host';
import type { ChargerConfig } from './translate';

/** What the adapter learned of a charger, told once (until the charger boots again). */
export interface CapabilityEvent {
  type: 'capability';
  identity: string;
  /**
   * `smartCharging`: SetChargingProfile; `compositeSchedule`: GetCompositeSchedule;
   * `maxProfile`: the station maximum profile of the failsafe chain (failsafe.ts).
   */
  capability: 'smartCharging' | 'compositeSchedule' | 'maxProfile';
  value: false;
  /** What the charger answered (NotImplemented, NotSupported). */
  answer: string;
  message: string;
}

/** The unit an asset's limits are sent in from now on (its configured one was not followed). */
export interface UnitEvent {
  type: 'capability';
  identity: string;
  capability: 'unit';
  value: 'W' | 'A';
  message: string;
}

const NAMES: readonly CapabilityEvent['capability'][] = [
  'smartCharging',
  'compositeSchedule',
  'maxProfile',
];

export class LearnedCapabilities {
  /** Identities that may have something learned (a superset; forgotten on boot). */
  private readonly marked = new Set<string>();
  /** Each identity's place in `byIdentity` (the order of a summary). */
  private readonly order = new Map<string, number>();
  private readonly identityOf = new Map<string, string>();

  constructor(
    private readonly host: AdapterHost,
    private readonly byIdentity: ReadonlyMap<string, ChargerConfig[]>,
    private readonly tell: (e: CapabilityEvent & { assetIds: string[] }) => void,
  ) {
    for (const [identity, list] of byIdentity) {
      this.order.set(identity, this.order.size);
      for (const c of list) {
        this.identityOf.set(c.assetId, identity);
        // Learned before this adapter was made (a redeploy keeps the site's asset table).
        if (
          NAMES.some((name) => host.capability(c.assetId, name) === false) ||
          host.capability(c.assetId, 'unit') !== undefined
        )
          this.marked.add(identity);
      }
    }
  }

  /** The charger's answer if the asset is known to lack `name`, else undefined. */
  lacks(assetId: string, name: CapabilityEvent['capability']): string | undefined {
    if (this.host.capability(assetId, name) !== false) return undefined;
    const answer = this.host.capability(assetId, `${name}Answer`);
    return typeof answer === 'string' ? answer : 'NotImplemented';
  }

  /** Remembers `name: false` on each asset of the charger and tells it once. */
  learn(
    identity: string,
    name: CapabilityEvent['capability'],
    answer: string,
    message: string,
  ): void {
    const list = this.byIdentity.get(identity) ?? [];
    this.marked.add(identity);
    const known = list.every((c) => this.host.capability(c.assetId, name) === false);
    for (const c of list) {
      this.host.setCapability(c.assetId, name, false);
      this.host.setCapability(c.assetId, `${name}Answer`, answer);
    }
    if (known) return;
    this.tell({
      type: 'capability',
      identity,
      capability: name,
      value: false,
      answer,
      message,
      assetIds: list.map((c) => c.assetId),
    });
  }

  /** Forgets what was learned of the charger (it booted: it may have been updated). */
  forget(identity: string): void {
    for (const c of this.byIdentity.get(identity) ?? []) {
      for (const name of NAMES)
        for (const key of [name, `${name}Answer`])
          this.host.setCapability(c.assetId, key, undefined);
      this.host.setCapability(c.assetId, 'unit', undefined);
    }
    this.marked.delete(identity);
  }

  /** The unit learned for the asset's limits (it did not follow the configured one), if any. */
  unitOf(assetId: string): 'W' | 'A' | undefined {
    const u = this.host.capability(assetId, 'unit');
    return u === 'W' || u === 'A' ? u : undefined;
  }

  /** Remembers that the asset's limits go in `unit` from now on (until the charger boots). */
  learnUnit(assetId: string, unit: 'W' | 'A'): void {
    this.host.setCapability(assetId, 'unit', unit);
    const identity = this.identityOf.get(assetId);
    if (identity !== undefined) this.marked.add(identity);
  }

  /** What the chargers lack, in short, for a status: e.g. `CP001: no smart charging`. */
  summary(): string[] {
    const out: string[] = [];
    if (this.marked.size === 0) return out;
    const identities = [...this.marked].sort(
      (a, b) => (this.order.get(a) ?? 0) - (this.order.get(b) ?? 0),
    );
    for (const identity of identities) {
      const list = this.byIdentity.get(identity) ?? [];
      const has = (name: CapabilityEvent['capability']) =>
        list.some((c) => this.lacks(c.assetId, name) !== undefined);
      if (has('smartCharging')) out.push(`${identity}: no smart charging`);
      else if (has('compositeSchedule')) out.push(`${identity}: limits not confirmed`);
      if (!has('smartCharging') && has('maxProfile')) out.push(`${identity}: no failsafe profile`);
      for (const c of list) {
        const unit = this.unitOf(c.assetId);
        if (unit) out.push(`${c.assetId}: limits in ${unit}`);
      }
    }
    return out;
  }
}
