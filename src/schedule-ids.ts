/**
 * Schedule ids and their revisions: which ids a site has used (`day`, `day#2`, ...), the id a
 * new schedule gets (a re-sent one is the next revision), and whether an id was seen before.
 * Kept per engine and persisted with it (`EngineJSON.scheduleRevisions`).
 */

/** The base of a schedule id (`day#3` -> `day`) and its revision (1 without `#n`). */
function split(id: string): { base: string; rev: number } {
  const base = id.replace(/#\d+$/, '');
  return { base, rev: id === base ? 1 : Number(id.slice(base.length + 1)) };
}

export class ScheduleIds {
  /** Per base id, the highest revision used. */
  private readonly revisions = new Map<string, number>();

  /**
   * A schedule id not used before: `base` itself the first time, then `base#2`, `base#3` (a
   * re-sent schedule is a new revision that supersedes the last). A `base` that names a
   * revision (`day#2`) is itself when that revision is newer than any used, else the next
   * one. Undefined stays undefined (the conversion makes a fresh id).
   */
  unique(base: string | undefined): string | undefined {
    if (base === undefined) return undefined;
    const { base: root, rev: asked } = split(base);
    const rev = this.revisions.get(root);
    if (rev === undefined) return base;
    return asked > rev ? base : `${root}#${rev + 1}`;
  }

  /**
   * Whether `id` was already used: `day` once `day` or a later revision came, `day#3` once
   * revision 3 or later came.
   */
  has(id: string): boolean {
    const { base, rev: asked } = split(id);
    const rev = this.revisions.get(base);
    return rev !== undefined && asked <= rev;
  }

  /** Records that `id` is in use: the next `unique` of the same base gives the next revision. */
  note(id: string): boolean {
    const { base, rev } = split(id);
    if (rev <= (this.revisions.get(base) ?? 0)) return false;
    this.revisions.set(base, rev);
    return true;
  }

  /** Sets the highest revision of a base (restoring a saved document). */
  set(base: string, rev: number): void {
    this.revisions.set(base, rev);
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.revisions);
  }
}
