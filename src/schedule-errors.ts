/**
 * Schedule errors: `ScheduleProblem` (what was wrong and where: row, time, column, value),
 * `ScheduleError` (a schedule rejected whole, its problems listed) and `Problems`, the
 * bounded collector that the schedule readers and the validation throw from.
 */

export interface ScheduleProblem {
  /** Zero-based data row, when the problem is in a row. */
  row?: number;
  /** The row's timestamp as written, when known. */
  time?: string;
  column?: string;
  value?: unknown;
  reason: string;
}

const MAX_PROBLEMS = 50;

/** A schedule rejected whole. `problems` lists what was wrong and where (up to 50). */
export class ScheduleError extends Error {
  readonly problems: ScheduleProblem[];
  constructor(problems: ScheduleProblem[] | string, extra = 0) {
    const list = typeof problems === 'string' ? [{ reason: problems }] : problems;
    const shown = list.slice(0, 5).map(formatProblem);
    const more = list.length - shown.length + extra;
    super(
      `invalid schedule: ${shown.join('; ')}${more > 0 ? `; and ${more} more problem${more > 1 ? 's' : ''}` : ''}`,
    );
    this.name = 'ScheduleError';
    this.problems = list;
  }
}

export function formatProblem(p: ScheduleProblem): string {
  const where: string[] = [];
  if (p.row !== undefined)
    where.push(p.time !== undefined ? `row ${p.row} (${p.time})` : `row ${p.row}`);
  if (p.column !== undefined) where.push(`column ${p.column}`);
  return where.length > 0 ? `${where.join(', ')}: ${p.reason}` : p.reason;
}

/** Collects problems up to a bound, then throws them together. */
export class Problems {
  readonly list: ScheduleProblem[] = [];
  overflow = 0;
  add(p: ScheduleProblem): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(p);
    else this.overflow++;
  }
  get size(): number {
    return this.list.length + this.overflow;
  }
  throwIfAny(): void {
    if (this.size > 0) throw new ScheduleError(this.list, this.overflow);
  }
}
