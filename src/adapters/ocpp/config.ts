/**
 * Checks of the OCPP adapter's configuration: each charger's fields (identity, asset, rating,
 * units, the failsafe chain's share and delay), with an error that names the charger.
 */

import { checkFailsafeAfterS } from './failsafe';
import type { ChargerConfig } from './translate';

const ON_DEVIATION: readonly unknown[] = ['report', 'reapply', 'reapply-other-unit'];

/** Throws a TypeError naming the charger (`charger [i] (identity)`) for the first bad field. */
export function checkCharger(c: ChargerConfig, i: number): void {
  const where = `charger [${i}]`;
  if (typeof c.identity !== 'string' || c.identity.trim() === '')
    throw new TypeError(`${where}: identity is required`);
  if (typeof c.assetId !== 'string' || c.assetId.trim() === '')
    throw new TypeError(`${where} (${c.identity}): assetId is required`);
  const named = `${where} (${c.identity})`;
  if (c.ratedKw !== undefined && !(c.ratedKw > 0))
    throw new TypeError(`${named}: ratedKw must be > 0`);
  if (c.meterIntervalSeconds !== undefined && !(c.meterIntervalSeconds > 0))
    throw new TypeError(`${named}: meterIntervalSeconds must be > 0`);
  if (c.onDeviation !== undefined && !ON_DEVIATION.includes(c.onDeviation))
    throw new TypeError(`${named}: onDeviation must be report, reapply or reapply-other-unit`);
  if (c.unit !== undefined && c.unit !== 'W' && c.unit !== 'A')
    throw new TypeError(`${named}: unit must be W or A`);
  if (c.confirm !== undefined && c.confirm !== 'accepted' && c.confirm !== 'confirmed')
    throw new TypeError(`${named}: confirm must be accepted or confirmed`);
  if (c.failsafeKw !== undefined) {
    if (typeof c.failsafeKw !== 'number' || !Number.isFinite(c.failsafeKw) || c.failsafeKw < 0)
      throw new TypeError(`${named}: failsafeKw must be a number of kW >= 0`);
    if (c.ratedKw === undefined)
      throw new TypeError(
        `${named}: failsafeKw needs ratedKw (the station maximum profile caps at the rating while the gateway lives)`,
      );
    if (c.failsafeKw > c.ratedKw)
      throw new TypeError(`${named}: failsafeKw (${c.failsafeKw}) is above ratedKw (${c.ratedKw})`);
  }
  if (c.failsafeAfterS !== undefined) checkFailsafeAfterS(c.failsafeAfterS, named);
}
