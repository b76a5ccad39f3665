/**
 * LearnedCapabilities: what the OCPP adapter learned that a charger does not implement
 * (smart charging: SetChargingProfile; GetCompositeSchedule), kept in the site's AssetTable
 * (`capabilities` of each asset of the charger, through the AdapterHost port), told once when
 * learned, forgotten when the charger boots again, and summed up for a node's status.
 */

import type { AdapterHost } from '../host';
import type { ChargerConfig } from './translate';

/** What the adapter learned of a charger, told once (until the charger boots again). */
export interface CapabilityEvent {
  type: 'capability';
  identity: string;
  /** `smartCharging`: SetChargingProfile; `compositeSchedule`: GetCompositeSchedule. */
  capability: 'smartCharging' | 'compositeSchedule';
  value: false;
  /** What the charger answered (NotImplemented, NotSupported). */
  answer: string;
  message: string;
}

const NAMES: readonly CapabilityEvent['capability'][] = ['smartCharging', 'compositeSchedule'];

export class LearnedCapabilities {
  constructor(
    private readonly host: AdapterHost,
    private readonly byIdentity: ReadonlyMap<string, ChargerConfig[]>,
    private readonly tell: (e: CapabilityEvent & { assetIds: string[] }) => void,
  ) {}

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
    for (const c of this.byIdentity.get(identity) ?? [])
      for (const name of NAMES)
        for (const key of [name, `${name}Answer`])
          this.host.setCapability(c.assetId, key, undefined);
  }

  /** What the chargers lack, in short, for a status: e.g. `CP001: no smart charging`. */
  summary(): string[] {
    const out: string[] = [];
    for (const [identity, list] of this.byIdentity) {
      const has = (name: CapabilityEvent['capability']) =>
        list.some((c) => this.lacks(c.assetId, name) !== undefined);
      if (has('smartCharging')) out.push(`${identity}: no smart charging`);
      else if (has('compositeSchedule')) out.push(`${identity}: limits not confirmed`);
    }
    return out;
  }
}
