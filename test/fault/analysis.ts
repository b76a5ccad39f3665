/**
 * What a fault campaign measured, from what the devices recorded (pure: no I/O). Per device:
 * - lost: slots whose value the device never held while the slot lasted, although Node-RED
 *   and the device were both up for the last `graceMs` of it;
 * - stale: setpoints the device received for a slot after that slot had ended (more than
 *   `toleranceMs`: the time between a send and its receipt, which on a busy machine includes
 *   waiting to be scheduled); the last slot holds (the schedule's horizon) and is never stale;
 *   `latestMs` is the latest such receipt within the tolerance, for the report;
 * - recovery: for each fault, the time from the moment everything was back up until the
 *   device held the setpoint of the slot then in force (0 if it never lost it).
 * And for the site, from the coordinator's command events (`duplicates`):
 * - duplicated: a command that was answered (its ACKNOWLEDGED or COMPLETED event came out
 *   before a restart of Node-RED) and was sent again (a DISPATCHED event of the same command
 *   id) after that restart. A re-apply after a restart is a new command (its own id, with
 *   `reapplyOf`), not a duplicate; a retry within one run is not one either.
 */

export interface Slot {
  start: number;
  end: number;
  /** The setpoint of the slot (kW, or W: the unit the device records). */
  value: number;
}

/** What the device held from `at` on (null: nothing, e.g. no profile after a reboot). */
export interface Held {
  at: number;
  value: number | null;
}

/** A setpoint the device received (a call or a write), at `at`. */
export interface Received {
  at: number;
  value: number;
}

export type Interval = [number, number];

export interface Fault {
  kind: string;
  at: number;
  /** When Node-RED and the device were both up again. */
  backAt: number;
}

export interface DeviceFigures {
  slots: number;
  lost: number[];
  stale: { slot: number; at: number; lateMs: number }[];
  /** The latest receipt of an ended slot's value that the tolerance let pass, ms after. */
  latestMs: number;
  recoveries: { kind: string; at: number; backAt: number; ms: number | null }[];
}

const same = (a: number | null, b: number) => a !== null && Math.abs(a - b) < 1e-6;

/** The value held at `t` (the last change at or before it). */
export function heldAt(held: readonly Held[], t: number): number | null {
  let v: number | null = null;
  for (const h of held) {
    if (h.at > t) break;
    v = h.value;
  }
  return v;
}

/** Whether [from, to) lies inside one of the intervals. */
function covered(intervals: readonly Interval[], from: number, to: number): boolean {
  return intervals.some(([a, b]) => a <= from && to <= b);
}

export function analyse(input: {
  slots: readonly Slot[];
  held: readonly Held[];
  received: readonly Received[];
  /** When Node-RED and this device were both up (and connected). */
  up: readonly Interval[];
  faults: readonly Fault[];
  graceMs: number;
  toleranceMs: number;
}): DeviceFigures {
  const { slots, held, received, up, faults, graceMs, toleranceMs } = input;
  const sorted = [...held].sort((a, b) => a.at - b.at);
  const slotAt = (t: number) => slots.findIndex((s) => s.start <= t && t < s.end);
  const lost: number[] = [];
  slots.forEach((s, i) => {
    if (!covered(up, s.end - graceMs, s.end)) return;
    const heldInSlot =
      same(heldAt(sorted, s.start), s.value) ||
      sorted.some((h) => h.at >= s.start && h.at < s.end && same(h.value, s.value));
    if (!heldInSlot) lost.push(i);
  });
  const stale: DeviceFigures['stale'] = [];
  let latestMs = 0;
  for (const r of received) {
    const i = slots.findIndex((s) => same(r.value, s.value));
    const s = slots[i];
    if (!s || i === slots.length - 1 || r.at < s.end) continue;
    if (r.at < s.end + toleranceMs) latestMs = Math.max(latestMs, r.at - s.end);
    else stale.push({ slot: i, at: r.at, lateMs: r.at - s.end });
  }
  const recoveries = faults.map((f) => {
    const start = f.backAt;
    // The first moment from `start` on at which the device holds its slot's value.
    const moments = [start, ...sorted.filter((h) => h.at > start).map((h) => h.at)];
    moments.push(...slots.filter((s) => s.start > start).map((s) => s.start));
    moments.sort((a, b) => a - b);
    for (const t of moments) {
      const i = slotAt(t);
      const s = slots[i];
      if (s && same(heldAt(sorted, t), s.value))
        return { kind: f.kind, at: f.at, backAt: f.backAt, ms: t - start };
    }
    return { kind: f.kind, at: f.at, backAt: f.backAt, ms: null };
  });
  return { slots: slots.length, lost, stale, latestMs, recoveries };
}

/** Median and maximum of the known values, for the report. */
export function spread(values: readonly (number | null)[]): string {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return '-';
  const median = v[Math.floor((v.length - 1) / 2)] as number;
  return `median ${(median / 1000).toFixed(2)} s, max ${((v.at(-1) as number) / 1000).toFixed(2)} s (n=${v.length})`;
}

/** A command event the coordinator published, as the campaign logged it. */
export interface CommandEvent {
  at: number;
  type: string;
  id: string;
  reapplyOf?: string;
}

export interface Duplicate {
  id: string;
  answeredAt: number;
  restartAt: number;
  sentAgainAt: number;
}

/**
 * Commands sent again after a restart although they had been answered before it (see the
 * opening comment). `restarts`: when Node-RED was killed, ms.
 */
export function duplicates(
  events: readonly CommandEvent[],
  restarts: readonly number[],
): Duplicate[] {
  const answered = new Map<string, number>();
  for (const e of events) {
    if (e.type !== 'COMMAND_ACKNOWLEDGED' && e.type !== 'COMMAND_COMPLETED') continue;
    const first = answered.get(e.id);
    if (first === undefined || e.at < first) answered.set(e.id, e.at);
  }
  const out: Duplicate[] = [];
  for (const e of events) {
    if (e.type !== 'COMMAND_DISPATCHED') continue;
    const a = answered.get(e.id);
    if (a === undefined) continue;
    const restart = restarts.find((r) => a < r && r < e.at);
    if (restart !== undefined)
      out.push({ id: e.id, answeredAt: a, restartAt: restart, sentAgainAt: e.at });
  }
  return out;
}
