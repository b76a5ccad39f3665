/**
 * Replaying a journal (journal.ts) onto a site's state document: `applyEntries` is the one
 * place that knows what each key of a record means (`c:<id>` a command, `p:<scheduleId>` a
 * plan's rows still planned, `meta`, `o:<id>`, `po:<scheduleId>`, `limits`); a key it does not know is reported and left out, never fatal. Pure: no I/O.
 */

import { BigMap } from './big-map';
import { CHUNK, runSync, type Steps } from './chunks';
import type { CommandJSON } from './commands';
import { applyDelta, type CommandDelta, type DecodedRecord } from './journal-codec';
import type { RestoreProblem } from './restore';

/** A command delta read from the journal, applied over the command's JSON on replay. */
export class DeltaValue {
  constructor(readonly delta: CommandDelta) {}
}

/** What a replayed record sets a key to: a value, undefined (removed), or a DeltaValue. */
export type ReplayValue = unknown;

/** The entry a decoded record replays as. */
export function replayEntry(r: DecodedRecord): [string, ReplayValue] {
  return [
    r.key,
    r.kind === 'set' ? r.value : r.kind === 'remove' ? undefined : new DeltaValue(r.delta),
  ];
}

/** The parts of a site document (SiteJSON) that replay touches. */
export interface SiteDocument {
  format: string;
  version: number;
  siteId: string;
  engine: {
    commands: CommandJSON[];
    assetStates: Record<string, string>;
    scheduleRevisions: Record<string, number>;
    lastSchedule?: unknown;
    [k: string]: unknown;
  };
  owners: Record<string, string>;
  limits?: unknown;
  [k: string]: unknown;
}

/** A site document with nothing in it: the base of a journal that has no snapshot yet. */
export function emptySiteDocument(): SiteDocument {
  return {
    format: 'qubit-energy/site',
    version: 1,
    siteId: '',
    engine: {
      format: 'qubit-energy/dispatch-engine',
      version: 1,
      savedAt: new Date(0).toISOString(),
      commands: [],
      assetStates: {},
      scheduleRevisions: {},
      lastSchedule: null,
    },
    owners: {},
  };
}

/**
 * Applies replayed entries, in order, to a site document (SiteJSON): the one place that
 * knows what each key means. `c:<id>` a command (a value, a delta, or removed), `p:<id>` a
 * schedule's plan (its rows still planned, or removed), `meta` the engine's asset states /
 * schedule revisions / last schedule, `o:<id>` a command's owner, `po:<id>` a plan's
 * dispatcher, `limits` the limiter's state. Returns the problems (an unknown key, a delta for a command
 * the document does not hold); those entries are left out, the others applied.
 */
export function applyEntries(
  doc: SiteDocument,
  entries: Iterable<[string, ReplayValue]>,
): RestoreProblem[] {
  return runSync(applyEntriesSteps(doc, entries));
}

/** `applyEntries` with a checkpoint every few thousand entries and commands (chunks.ts). */
export function* applyEntriesSteps(
  doc: SiteDocument,
  entries: Iterable<[string, ReplayValue]>,
): Steps<RestoreProblem[]> {
  const problems: RestoreProblem[] = [];
  const engine = doc.engine;
  if (!Array.isArray(engine?.commands)) throw new TypeError('not a site state document');
  const commands = new BigMap<string, CommandJSON>();
  let n = 0;
  for (const c of engine.commands) {
    commands.set(c.id, c);
    if (++n % CHUNK === 0) yield;
  }
  if (doc.owners === null || typeof doc.owners !== 'object') doc.owners = {};
  const plans = new Map<string, unknown>();
  if (Array.isArray(engine.plans))
    for (const p of engine.plans as { scheduleId?: unknown }[]) plans.set(String(p?.scheduleId), p);
  let plansTouched = false;
  for (const [key, value] of entries) {
    if (++n % CHUNK === 0) yield;
    if (key.startsWith('p:')) {
      // A plan (src/plans.ts PlanJSON) as it is now; undefined: used up or superseded.
      plansTouched = true;
      if (value === undefined) plans.delete(key.slice(2));
      else plans.set(key.slice(2), value);
    } else if (key.startsWith('po:')) {
      const id = key.slice(3);
      const owners = (doc.planOwners ?? {}) as Record<string, string>;
      if (value === undefined) delete owners[id];
      else owners[id] = value as string;
      doc.planOwners = owners;
    } else if (key.startsWith('c:')) {
      const id = key.slice(2);
      if (value === undefined) commands.delete(id);
      else if (value instanceof DeltaValue) {
        const base = commands.get(id);
        if (base === undefined) {
          problems.push({
            entry: `journal ${key}`,
            id,
            reason: 'a change of a command that the journal does not hold; left out',
          });
        } else commands.set(id, applyDelta(base, value.delta));
      } else commands.set(id, value as CommandJSON);
    } else if (key.startsWith('o:')) {
      const id = key.slice(2);
      if (value === undefined) delete doc.owners[id];
      else doc.owners[id] = value as string;
    } else if (key === 'meta') {
      const m = value as Record<string, unknown> | undefined;
      if (m === null || typeof m !== 'object') {
        problems.push({ entry: 'journal meta', reason: 'must be an object; left out' });
        continue;
      }
      engine.assetStates = m.assetStates as Record<string, string>;
      engine.scheduleRevisions = m.scheduleRevisions as Record<string, number>;
      engine.lastSchedule = m.lastSchedule;
    } else if (key === 'limits') {
      if (value === undefined) delete doc.limits;
      else doc.limits = value;
    } else {
      problems.push({ entry: `journal ${key}`, reason: 'an entry of a kind not known; left out' });
    }
  }
  // In steps too: one spread of 160,000 held a turn for ~45 ms.
  const list: CommandJSON[] = [];
  for (const c of commands.values()) {
    list.push(c);
    if (++n % CHUNK === 0) yield;
  }
  engine.commands = list;
  if (plansTouched) {
    if (plans.size > 0) engine.plans = [...plans.values()];
    else delete engine.plans;
  }
  return problems;
}
