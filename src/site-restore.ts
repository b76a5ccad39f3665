/**
 * Loading a Site's saved state (src/site-persist.ts): the site document from its store, the
 * engine restored from it entry by entry (a bad entry is left out and reported, the others
 * restored: a PartialRestoreError lists them), the owners of commands and plans, the saved
 * limits. At once, in the Site's constructor (`loadSite`), or in slices after it, the event
 * loop served between them (`loadSiteInSlices`: the store read as asynchronous I/O, its text
 * parsed in pieces, the engine restored in steps). A document that cannot be restored at all
 * is moved aside when the store can, else persistence is blocked so that it is never
 * overwritten.
 */

import { BigMap } from './big-map';
import { runSliced, runSync, type SliceOptions, type Steps, whileLive } from './chunks';
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

/** What the load's parts share. */
interface Load {
  store: StateStore;
  owners: Map<string, string>;
  planOwners: Map<string, string>;
  onError: (error: Error) => void;
  out: LoadedSite;
  /** The engine's restore has taken its first step: the engine may hold part of it. */
  began: boolean;
}

const loaded = (): LoadedSite => ({
  engine: null,
  savedLimits: undefined,
  loadError: null,
  persistBlocked: false,
  changes: { engine: [], owners: [], planOwners: [] },
});

/**
 * Loads the saved state at once into a new engine; fills `owners` and `planOwners` (of the
 * entries it restored).
 */
export function loadSite(
  store: StateStore,
  deps: EngineDeps,
  owners: Map<string, string>,
  planOwners: Map<string, string>,
  onError: (error: Error) => void,
): LoadedSite {
  const load: Load = { store, owners, planOwners, onError, out: loaded(), began: false };
  try {
    const doc = store.load();
    if (doc !== undefined) {
      const engine = new DispatchEngine(deps);
      runSync(restoreSteps(load, engine, doc));
    }
  } catch (err) {
    failed(load, err);
    load.out.engine = null;
  }
  return load.out;
}

/**
 * `loadSite` in slices of about `sliceMs`, into `engine` (the site's, empty): the store's
 * `loadAsync` when it has one (else its `load`), then the restore in steps. Resolves to what
 * `loadSite` gives (with `engine` that engine, or null when nothing was restored), or to
 * null when `stopped()` became true meanwhile (what was restored is left as it is). Never
 * rejects: a failure is the result's `loadError`, as for `loadSite`.
 */
export async function loadSiteInSlices(
  store: StateStore,
  engine: DispatchEngine,
  owners: Map<string, string>,
  planOwners: Map<string, string>,
  onError: (error: Error) => void,
  stopped: () => boolean,
  slicing: SliceOptions = {},
): Promise<LoadedSite | null> {
  const load: Load = { store, owners, planOwners, onError, out: loaded(), began: false };
  try {
    const doc = store.loadAsync ? await store.loadAsync(slicing) : store.load();
    if (stopped()) return null;
    if (doc !== undefined) {
      const live = () => !stopped();
      if ((await runSliced(whileLive(restoreSteps(load, engine, doc), live), slicing)) === null)
        return null;
    }
  } catch (err) {
    failed(load, err);
    if (load.began) {
      // Thrown after the engine took part of it (not a document's shape: a fault of ours):
      // that part is kept, and nothing is written over the saved state.
      load.out.persistBlocked = true;
      load.out.engine = engine;
    } else load.out.engine = null;
  }
  return load.out;
}

/** The restore of a loaded document into `engine` (empty), in steps. */
function* restoreSteps(load: Load, engine: DispatchEngine, doc: unknown): Steps<void> {
  const { store, owners, planOwners, out } = load;
  const site = doc as Partial<SiteJSON>;
  if (
    site === null ||
    typeof site !== 'object' ||
    site.format !== 'qubit-energy/site' ||
    site.version !== 1 ||
    typeof site.engine !== 'object'
  ) {
    throw new TypeError(`not a site state document (format ${JSON.stringify(site?.format)})`);
  }
  // Entry by entry: a bad one is left out and reported, the others are restored.
  const problems: RestoreProblem[] = [];
  const report = (p: RestoreProblem) => problems.push(p);
  // Once each: a record gives its entry's value when it is written.
  const changed = new BigMap<string, PersistChange>();
  const engineSteps = engine.restoreSteps(site.engine, report, (c) => changed.set(c.key, c));
  // Its first step checks the document and throws before changing anything.
  let step = engineSteps.next();
  load.began = true;
  while (!step.done) {
    yield;
    step = engineSteps.next();
  }
  out.engine = engine;
  out.savedLimits = site.limits;
  const { changes } = out;
  // A finished command is never handed out again: its owner is forgotten, as the site
  // forgets it when a command finishes.
  let n = 0;
  for (const [id, owner] of restoreEntries(site.owners, 'owners', report)) {
    if (++n % 4096 === 0) yield;
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
    load.onError(new Error(`saved state in ${store.location}: ${w}`));
  if (problems.length > 0) {
    out.loadError = new PartialRestoreError(store.location, problems, store.keepCopy?.() ?? null);
  }
}

/** A load that failed: the state is moved aside when the store can, else never overwritten. */
function failed(load: Load, err: unknown): void {
  const { store, out } = load;
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
}
