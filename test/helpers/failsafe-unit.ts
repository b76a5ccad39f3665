/**
 * The unit rig of the OCPP failsafe tests (src/adapters/ocpp/failsafe.ts): a StationFailsafe
 * for one charge point CP1 (ev1, 22 kW rated, 4 kW share) on a stand-in central system, and
 * the timeouts it sets captured instead of run, to be fired by hand.
 */
import { LearnedCapabilities } from '../../src/adapters/ocpp/capabilities';
import type { CentralSystem } from '../../src/adapters/ocpp/central-system';
import { StationFailsafe } from '../../src/adapters/ocpp/failsafe';
import { Site } from '../../src/site';

/** `central`: what the failsafe asks of the central system (protocolOf, isConnected given). */
export function failsafeOnCP1(central: Record<string, unknown>, afterS: number): StationFailsafe {
  const site = new Site({ siteId: 't', autoDispatch: true });
  const chargers = new Map([
    ['CP1', [{ identity: 'CP1', assetId: 'ev1', ratedKw: 22, failsafeKw: 4 }]],
  ]);
  return new StationFailsafe({
    host: site,
    // Its getters stay getters (a spread would read them once).
    central: Object.defineProperties(
      { protocolOf: () => 'ocpp1.6', isConnected: () => true },
      Object.getOwnPropertyDescriptors(central),
    ) as unknown as CentralSystem,
    byIdentity: chargers,
    learned: new LearnedCapabilities(site, chargers, () => {}),
    afterS,
    tell: () => {},
    onError: (e) => {
      throw e;
    },
  });
}

/** setTimeout replaced: each timeout is kept (not run) in `timers`; `restore` puts it back. */
export function captureTimeouts(): {
  timers: { fn: () => void; ms: number }[];
  restore: () => void;
} {
  const timers: { fn: () => void; ms: number }[] = [];
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    timers.push({ fn, ms });
    return { unref() {}, ref() {}, hasRef: () => false } as unknown as NodeJS.Timeout;
  }) as typeof setTimeout;
  return { timers, restore: () => (globalThis.setTimeout = real) };
}
