/**
 * The plan of a conversion (src/plans.ts: `SchedulePlan`): a Conversion's change plan copied
 * into typed arrays, at once or in steps (qe-schedule makes msg.plan with it in slices).
 * Copies numbers, makes no command.
 */

import { CHUNK, runSliced, runSync, type SliceOptions, type Steps } from './chunks';
import type { Conversion } from './convert';
import type { PlanAssetEntry, SchedulePlan } from './plans';

/** Assets handled between two checkpoints. */
const ASSETS_PER_CHUNK = CHUNK / 4;

/**
 * The plan of a conversion (`convertSchedule`, `engine.receiveSchedule`), in typed arrays:
 * copies numbers, makes no command. Assets without any change are left out.
 */
export function planOfConversion(conversion: Conversion): SchedulePlan {
  return runSync(planOfConversionSteps(conversion));
}

/** `planOfConversion` in slices of a few ms (`runSliced`), the event loop served between. */
export function planOfConversionAsync(
  conversion: Conversion,
  slicing: SliceOptions = {},
): Promise<SchedulePlan> {
  return runSliced(planOfConversionSteps(conversion), slicing);
}

/** `planOfConversion` as a loop that yields at checkpoints (see chunks.ts). */
export function* planOfConversionSteps(conversion: Conversion): Steps<SchedulePlan> {
  const ch = conversion.changes;
  const counts = new Int32Array(ch.assets.length);
  for (let k = 0; k < ch.count; k++) {
    const a = ch.asset[k] as number;
    counts[a] = (counts[a] as number) + 1;
    if (k % (CHUNK * 4) === CHUNK * 4 - 1) yield;
  }
  const assets: PlanAssetEntry[] = [];
  for (let i = 0; i < ch.assets.length; i++) {
    const a = ch.assets[i] as Conversion['changes']['assets'][number];
    const count = counts[i] as number;
    if (count > 0) assets.push({ assetId: a.assetId, kind: a.kind, columns: a.columns, count });
    if (i % ASSETS_PER_CHUNK === ASSETS_PER_CHUNK - 1) yield;
  }
  const m = conversion.made;
  const times = new Float64Array(ch.times);
  // Copied in chunks: the first touch of fresh memory is what costs here.
  const slot = new Int32Array(ch.count);
  const valueKw = new Float64Array(ch.count);
  const until = new Int32Array(ch.count);
  for (let k = 0; k < ch.count; k++) {
    slot[k] = ch.slot[k] as number;
    valueKw[k] = ch.valueKw[k] as number;
    until[k] = ch.until[k] as number;
    if (k % CHUNK === CHUNK - 1) yield;
  }
  return {
    scheduleId: conversion.scheduleId,
    createdAt: m.now,
    priority: m.priority,
    maxRetries: m.maxRetries,
    timeoutSeconds: m.timeoutSeconds,
    times,
    assets,
    slot,
    valueKw,
    until,
  };
}
