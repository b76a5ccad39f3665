/**
 * What the plan tests on a Site share (site-plan-async, site-plan-cuts): a schedule of EVs
 * whose values change every 1 to 3 slots, converted at a fixed time, and a site on a manual
 * clock and fake timers journaling into a list (key and JSON of each entry as it comes).
 */
import { ManualClock } from '../../src/clock';
import { type Conversion, convertSchedule } from '../../src/convert';
import type { PersistChange } from '../../src/engine';
import { Site } from '../../src/site';
import type { StateStore } from '../../src/store';
import { FakeTimers } from './fake-timers';

export const T0 = Date.parse('2025-06-02T08:00:00Z');
export const M = 60_000;
export const SLOT = 15 * M;

/** `assets` EVs x `slots` slots from `start`, values changing every 1 to 3 slots (+ `shift`). */
export function evConversion(
  id: string,
  assets: number,
  slots: number,
  start: number,
  shift = 0,
): Conversion {
  const rows: Record<string, unknown>[] = [];
  for (let s = 0; s < slots; s++) {
    const row: Record<string, unknown> = { timestamp: new Date(start + s * SLOT).toISOString() };
    for (let a = 0; a < assets; a++)
      row[`ev_${a}_kw`] = (a + shift + Math.floor(s / (1 + (a % 3)))) % 7;
    rows.push(row);
  }
  const assetMap: Record<string, string> = {};
  for (let a = 0; a < assets; a++) assetMap[`ev_${a}`] = `ev${a}`;
  return convertSchedule(rows, { assetMap, scheduleId: id, now: T0 - 10 * M });
}

/** A site (not started) journaling into `journal`, its clock at T0 - 10 min. */
export function journalingSite(maxFinishedCommands: number) {
  const clock = new ManualClock(T0 - 10 * M);
  const timers = new FakeTimers(clock);
  const journal: string[] = [];
  const store: StateStore = {
    location: 'test',
    load: () => undefined,
    save: async () => {},
    journal: (c: PersistChange) => {
      journal.push(`${c.key} ${JSON.stringify(c.value()) ?? '-'}`);
      return false;
    },
  };
  const site = new Site({ siteId: 's', clock, timers, store, config: { maxFinishedCommands } });
  return { site, clock, timers, journal };
}
