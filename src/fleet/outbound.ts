/**
 * What a fleet gateway sends, apart from the wire: an asset's status as the contract has it
 * (state from its machine, the setpoint in force from the engine), and the bounded buffer of
 * events kept while the broker is away (the oldest dropped first, counted, and summed up in
 * one BUFFER_DROPPED note for the reconnect).
 */

import { isoTime } from '../commands';
import type { Site } from '../site';
import { type AssetStatus, BUFFER_DROPPED, type BufferDropped, type FleetEvent } from './contract';

/** The asset's state and setpoint in force (`engine.getCommandInForce`) at the site's now. */
export function assetStatusOf(site: Site, assetId: string): AssetStatus {
  const now = site.clock.now();
  const machine = site.getStateMachine(assetId);
  const cmd = site.engine.getCommandInForce(assetId, now);
  let setpoint: AssetStatus['setpoint'] = null;
  if (cmd) {
    // In force since its slot began, or since the device confirmed it if that came later.
    let doneAt = cmd.scheduledAt.getTime();
    for (let i = cmd.history.length - 1; i >= 0; i--) {
      const h = cmd.history[i];
      if (h?.status === 'COMPLETED') {
        doneAt = Math.max(doneAt, h.at.getTime());
        break;
      }
    }
    setpoint = {
      commandId: cmd.id,
      type: cmd.type,
      kw: cmd.valueKw,
      ...(cmd.askedKw !== undefined ? { askedKw: cmd.askedKw } : {}),
      ...(cmd.limitedBy !== undefined ? { limitedBy: cmd.limitedBy } : {}),
      since: isoTime(doneAt),
      validUntil: cmd.validUntil ? cmd.validUntil.toISOString() : null,
    };
  }
  return { assetId, state: machine?.currentState ?? null, setpoint, at: isoTime(now) };
}

/** Events waiting for the broker, at most `limit`; beyond it the oldest go, counted. */
export class EventBuffer {
  private events: FleetEvent[] = [];
  private head = 0;
  private run: BufferDropped | null = null;
  /** Events dropped, in all. */
  dropped = 0;

  constructor(readonly limit: number) {}

  get size(): number {
    return this.events.length - this.head;
  }

  push(event: FleetEvent): void {
    this.events.push(event);
    while (this.size > this.limit) {
      const old = this.events[this.head++] as FleetEvent;
      this.dropped++;
      if (this.run) {
        this.run.dropped++;
        this.run.lastSequence = old.sequence;
      } else {
        this.run = { dropped: 1, firstSequence: old.sequence, lastSequence: old.sequence };
      }
    }
    // Compact now and then: the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Empties the buffer: the BUFFER_DROPPED note first when events were dropped since the last
   * drain (stamped `at`, its sequence the last one dropped), then the kept events in order.
   */
  drain(at: number): FleetEvent[] {
    const out: FleetEvent[] = [];
    if (this.run) {
      out.push({
        type: BUFFER_DROPPED,
        payload: this.run,
        timestamp: isoTime(at),
        sequence: this.run.lastSequence,
      });
      this.run = null;
    }
    for (let i = this.head; i < this.events.length; i++) out.push(this.events[i] as FleetEvent);
    this.events = [];
    this.head = 0;
    return out;
  }
}
