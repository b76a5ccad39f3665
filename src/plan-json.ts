/**
 * A stored plan's JSON text (`StoredPlan.toJSON`, the journal's `p:<scheduleId>` records) made
 * in pieces, for a journal that writes a large plan over several turns of the event loop
 * (10,000 assets x 96 slots: 960,000 rows, ~12 MB of JSON). What changes in a plan after it
 * is submitted is only its cursors (`next`, `end`, `endMs`); its columns (typed arrays) are
 * copied when the plan is stored and never written again. `planJsonPieces` therefore copies
 * the cursors when it is called, and the pieces, pulled later, give the plan as it was then,
 * whatever happened to it meanwhile. The pieces joined are the text `JSON.stringify(plan.toJSON())`
 * gave at the call.
 */

import type { StoredPlan } from './plans';

/** Numbers of a column put in one piece. */
const NUMBERS = 8192;
/** Asset entries put in one piece. */
const ASSETS = 1000;

interface Range {
  assetId: string;
  kind: 'ev' | 'battery';
  columns: string[];
  next: number;
  end: number;
  endMs: number;
}

/**
 * The pieces of `JSON.stringify(plan.toJSON())` as of this call: the plan's cursors are
 * copied now, the text is made as the pieces are pulled (about 50–100 KB each).
 */
export function planJsonPieces(plan: StoredPlan): Generator<string, void, void> {
  const ranges: Range[] = [];
  for (const c of plan.cursors) {
    if (c.next >= c.end) continue;
    ranges.push({
      assetId: c.assetId,
      kind: c.kind,
      columns: c.columns,
      next: c.next,
      end: c.end,
      endMs: c.endMs,
    });
  }
  return pieces(plan, ranges);
}

function* pieces(plan: StoredPlan, ranges: readonly Range[]): Generator<string, void, void> {
  const head = JSON.stringify({
    scheduleId: plan.scheduleId,
    createdAt: plan.createdAt,
    priority: plan.priority,
    maxRetries: plan.maxRetries,
    timeoutSeconds: plan.timeoutSeconds,
  });
  yield `${head.slice(0, -1)},"times":${JSON.stringify(Array.from(plan.times))},"assets":[`;
  for (let i = 0; i < ranges.length; i += ASSETS) {
    const part: string[] = [];
    for (const r of ranges.slice(i, i + ASSETS)) {
      const a: Record<string, unknown> = {
        assetId: r.assetId,
        kind: r.kind,
        columns: r.columns,
        count: r.end - r.next,
      };
      if (!Number.isNaN(r.endMs)) a.endMs = r.endMs;
      part.push(JSON.stringify(a));
    }
    yield (i === 0 ? '' : ',') + part.join(',');
  }
  for (const [name, column] of [
    ['slot', plan.slot],
    ['valueKw', plan.valueKw],
    ['until', plan.until],
  ] as const) {
    yield `],"${name}":[`;
    let first = true;
    let part: number[] = [];
    for (const r of ranges) {
      for (let k = r.next; k < r.end; k += NUMBERS) {
        const to = Math.min(r.end, k + NUMBERS);
        for (let j = k; j < to; j++) part.push(column[j] as number);
        if (part.length >= NUMBERS) {
          const text = JSON.stringify(part);
          yield (first ? '' : ',') + text.slice(1, -1);
          first = false;
          part = [];
        }
      }
    }
    if (part.length > 0) yield (first ? '' : ',') + JSON.stringify(part).slice(1, -1);
  }
  yield ']}';
}
