/**
 * Loading a Site's saved state (src/site.ts, at construction): the site document from its
 * store, the engine restored from it entry by entry (a bad entry is left out and reported,
 * the others restored: a PartialRestoreError lists them), the owners of commands and plans,
 * the saved limits. A document that cannot be restored at all is moved aside when the store
 * can, else persistence is blocked so that it is never overwritten.
 */

import { isFinal } from './commands';
import { DispatchEngine, type EngineDeps, type PersistChange } from './engine';
import { problemAt, type RestoreProblem, restoreEntries, shown } from './restore';
import type { SiteJSON } from './site-options';
import { PartialRestoreError, type StateStore, StoreCorruptError } from './store';

export interface LoadedSite {
  /** The restored engine; null when nothing was saved or it could not be restored. */
  engine: DispatchEngine | null;
  /** The saved `limits` entry, for the limiter (undefined: none). */
  savedLimits: unknown;
  loadError: Error | null;
  /** The saved state could not be read nor moved aside: never overwrite it. */
  persistBlocked: boolean;
  /**
   * What the restore changed of what it loaded, for a journal to record (its files then
   * hold the restored state): the engine's entries (DispatchEngine.restore's `onChange`),
   * once each, the owners of commands and plans it left out or that finished.
   */
  changes: { engine: PersistChange[]; owners: string[]; planOwners: string[] };
}

/** Loads the saved state; fills `owners` and `planOwners` (of the entries it restored). */
export function loadSite(
  store: StateStore,
  deps: EngineDeps,
  owners: Map<string, string>,
  planOwners: Map<string, string>,
  onError: (error: Error) => void,
): LoadedSite {
  const out: LoadedSite = {
    engine: null,
    savedLimits: undefined,
    loadError: null,
    persistBlocked: false,
    changes: { engine: [], owners: [], planOwners: [] },
  };
  const changed = new Map<string, PersistChange>();
  try {
    const doc = store.load();
    if (doc !== undefined) {
      const site = doc as Partial<SiteJSON>;
      if (
        site.format !== 'qubit-energy/site' ||
        site.version !== 1 ||
        typeof site.engine !== 'object'
      ) {
        throw new TypeError(`not a site state document (format ${JSON.stringify(site.format)})`);
      }
      // Entry by entry: a bad one is left out and reported, the others are restored.
      const problems: RestoreProblem[] = [];
      const report = (p: RestoreProblem) => problems.push(p);
      // Once each: a record gives its entry's value when it is written.
      const engine = DispatchEngine.restore(site.engine, deps, report, (c) =>
        changed.set(c.key, c),
      );
      out.engine = engine;
      out.savedLimits = site.limits;
      const { changes } = out;
      // A finished command is never handed out again: its owner is forgotten, as the site
      // forgets it when a command finishes.
      for (const [id, owner] of restoreEntries(site.owners, 'owners', report)) {
        const cmd = engine.getCommand(id);
        if (typeof owner !== 'string') {
          report(problemAt('owners', id, `must be a dispatcher id, got ${shown(owner)}`));
        } else if (cmd && !isFinal(cmd.status)) {
          owners.set(id, owner);
          continue;
        }
        changes.owners.push(id);
      }
      for (const [id, owner] of restoreEntries(site.planOwners, 'planOwners', report)) {
        if (typeof owner !== 'string')
          report(problemAt('planOwners', id, `must be a dispatcher id, got ${shown(owner)}`));
        else if (engine.hasPlan(id)) {
          planOwners.set(id, owner);
          continue;
        }
        changes.planOwners.push(id);
      }
      changes.engine = [...changed.values()];
      for (const p of store.problems ?? []) problems.push(p);
      for (const w of store.warnings ?? [])
        onError(new Error(`saved state in ${store.location}: ${w}`));
      if (problems.length > 0) {
        out.loadError = new PartialRestoreError(
          store.location,
          problems,
          store.keepCopy?.() ?? null,
        );
      }
    }
  } catch (err) {
    const e =
      err instanceof StoreCorruptError
        ? err
        : store.setAside
          ? store.setAside(
              `saved state in ${store.location} cannot be restored: ${(err as Error).message}`,
            )
          : new Error(
              `saved state in ${store.location} cannot be restored: ${(err as Error).message}`,
            );
    if (!(e instanceof StoreCorruptError && e.movedTo !== null)) {
      out.persistBlocked = true;
      e.message += '; nothing will be saved until it is fixed (the file is left as it is)';
    }
    out.loadError = e;
    out.engine = null;
  }
  return out;
}
