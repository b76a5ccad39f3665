/**
 * The failsafe of a Modbus battery: its own revert timer. When no one writes a setpoint for
 * `revertSeconds` (Node-RED, the gateway or the network gone), the device drops the setpoint
 * and goes back to its safe setting by itself. Here: the checks of `revertSeconds` against
 * the watchdog period, and the write of the map's `revert` register (and its enable) that
 * ModbusBatteries (batteries.ts) does on every connect.
 */

import type { BatteryConfig } from './batteries';
import { toWords } from './codec';
import type { ModbusConnection } from './connection';

/**
 * Writes the revert time, then its enable, both queued at once (the bus sends them in order,
 * before anything queued later). Resolves undefined when there is nothing to write (no
 * `revert` register or no `revertSeconds`), null when written, or why not; never rejects.
 */
export async function writeRevertTimer(
  connection: ModbusConnection,
  config: BatteryConfig,
): Promise<string | null | undefined> {
  const { map, unitId, revertSeconds } = config;
  const r = map.revert;
  if (!r || revertSeconds === undefined) return undefined;
  const writes: Promise<void>[] = [];
  try {
    writes.push(
      connection.write(
        unitId,
        r.address,
        toWords(revertSeconds, r.type, r.wordOrder),
        r.function ?? 'FC16',
      ),
    );
    if (r.enable)
      writes.push(
        connection.write(unitId, r.enable.address, [r.enable.value], r.enable.function ?? 'FC16'),
      );
  } catch (err) {
    writes.push(Promise.reject(err));
  }
  const results = await Promise.allSettled(writes);
  const failed = results.find((x) => x.status === 'rejected');
  if (!failed) return null;
  const why = (failed.reason as Error)?.message ?? String(failed.reason);
  return `revert timer (${revertSeconds} s at register ${r.address}) not set: ${why}`;
}

/**
 * Checks `revertSeconds` and `watchdogSeconds` together (`where` names the battery in the
 * errors); returns the watchdog period in force (revertSeconds / 3 when only revertSeconds is
 * given). A watchdog of 0 (never) with a revert time is refused: the battery would revert
 * while the gateway runs.
 */
export function checkTimers(c: BatteryConfig, where: string): number {
  const { revertSeconds: revert, watchdogSeconds: wd } = c;
  if (wd !== undefined && !(typeof wd === 'number' && Number.isFinite(wd) && wd >= 0))
    throw new TypeError(
      `${where}: watchdogSeconds must be a number of seconds >= 0, got ${JSON.stringify(wd)}`,
    );
  if (revert === undefined) return wd ?? 0;
  if (!(typeof revert === 'number' && Number.isFinite(revert) && revert > 0))
    throw new TypeError(
      `${where}: revertSeconds must be a number of seconds > 0, got ${JSON.stringify(revert)}`,
    );
  const r = c.map.revert;
  if (r) {
    const max = r.type === 'uint16' ? 65535 : 4294967295;
    if (!Number.isInteger(revert) || revert > max)
      throw new TypeError(
        `${where}: revertSeconds must be a whole number of seconds from 1 to ${max} (the ${r.type} revert register of map ${c.map.name}), got ${revert}`,
      );
  }
  if (wd === undefined) return revert / 3;
  if (wd === 0)
    throw new TypeError(
      `${where}: watchdogSeconds 0 (never re-write) with revertSeconds ${revert}: the battery would revert while the gateway runs; leave watchdogSeconds empty (revertSeconds / 3) or set it below revertSeconds`,
    );
  if (wd >= revert)
    throw new TypeError(
      `${where}: watchdogSeconds (${wd}) must be below revertSeconds (${revert}): the battery would revert between two re-writes`,
    );
  return wd;
}
