/**
 * The simulated battery's own revert timer, as a SunSpec device keeps it (model 704's
 * WSetRvrtTms with WSetEnaRvrt, model 124's InOutWRte_RvrtTms, or any map's `revert`
 * register): pure functions of a unit's holding registers and the time of its last setpoint
 * write, so that src/sim/battery.ts only asks which registers it has and when a unit reverts.
 *
 * Behaviour imitated: the time is in seconds, 0 means no reversion; where the map has an
 * enable register, the timer runs only while that register holds the map's enable value; the
 * countdown starts again with every write of the setpoint or the mode (and with a write of the
 * timer or its enable); when it runs out the device goes back to setpoint 0 / idle. The
 * registers power on at 0 (no reversion), so a restarted device needs them written again.
 */

import { fromWords } from '../adapters/modbus/codec';
import { type RevertSpec, registerCount } from '../adapters/modbus/register-map';

/** Read-only view of a unit's holding registers. */
export type Holding = ReadonlyMap<number, number>;

/** The holding registers a revert spec adds to a device: the time, and its enable if any. */
export function revertRegisters(
  spec: RevertSpec | undefined,
): { start: number; count: number; field: 'revert-time' | 'revert-enable' }[] {
  if (!spec) return [];
  const out: { start: number; count: number; field: 'revert-time' | 'revert-enable' }[] = [
    { start: spec.address, count: registerCount(spec.type), field: 'revert-time' },
  ];
  if (spec.enable) out.push({ start: spec.enable.address, count: 1, field: 'revert-enable' });
  return out;
}

/** The revert time in force, ms: 0 when there is none, it is 0, or it is not enabled. */
export function revertTimeMs(spec: RevertSpec | undefined, holding: Holding): number {
  if (!spec) return 0;
  if (spec.enable && holding.get(spec.enable.address) !== spec.enable.value) return 0;
  const words = Array.from(
    { length: registerCount(spec.type) },
    (_, i) => holding.get(spec.address + i) ?? 0,
  );
  return fromWords(words, spec.type, spec.wordOrder) * 1000;
}

/**
 * When a unit reverts (simulated epoch ms), or null when it does not: `since` is the last
 * write that starts the countdown again (setpoint, mode, timer or enable).
 */
export function revertDeadline(
  spec: RevertSpec | undefined,
  holding: Holding,
  since: number,
): number | null {
  const ms = revertTimeMs(spec, holding);
  return ms > 0 ? since + ms : null;
}

/** Whether a write of `count` registers at `address` touches the timer or its enable. */
export function touchesRevert(
  spec: RevertSpec | undefined,
  address: number,
  count: number,
): boolean {
  return revertRegisters(spec).some(
    (r) => r.start < address + count && address < r.start + r.count,
  );
}

/** The power-on values: the timer (and its enable) at 0, no reversion. */
export function powerOnRevert(spec: RevertSpec | undefined, holding: Map<number, number>): void {
  for (const r of revertRegisters(spec))
    for (let a = r.start; a < r.start + r.count; a++) holding.set(a, 0);
}
