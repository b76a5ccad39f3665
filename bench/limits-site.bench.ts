/**
 * Site limits end to end in a Site (issue 14): 2,000 assets on a three-level tree (a 4 MW
 * connection, 10 feeders, 100 sub-circuits of 20 chargers, single- and three-phase), all
 * charging at their setpoints. One meter reading raises the building's load so that every
 * charger must come down. Measured: the time from the reading (`site.measure`) to the last
 * changed setpoint leaving (reaching its adapter's `dispatch`), and the allocation's share of
 * it; the floor is the target of the issue, 10 ms for the allocation. Prints figures; passes or
 * fails nothing.
 *
 *   node --expose-gc --import tsx bench/limits-site.bench.ts
 */
import { performance } from 'node:perf_hooks';
import { type Command, CommandStatus, CommandType } from '../src/commands';
import type { LimitsConfig } from '../src/limits/types';
import { Site } from '../src/site';
import { fmt, machine, runs } from './lib';

const FEEDERS = 10;
const SUBS = 10;
const PER_SUB = 20;

function config(): LimitsConfig {
  const circuits: LimitsConfig['circuits'] = [{ id: 'grid', importKw: 4000, importA: 6000 }];
  const assets: LimitsConfig['assets'] = [];
  const phases = ['L1', 'L2', 'L3', 'L1L2L3'] as const;
  for (let f = 0; f < FEEDERS; f++) {
    circuits.push({ id: `f${f}`, parent: 'grid', importKw: 420, importA: 630 });
    for (let s = 0; s < SUBS; s++) {
      const sub = `f${f}s${s}`;
      circuits.push({ id: sub, parent: `f${f}`, importKw: 60, importA: 100 });
      for (let a = 0; a < PER_SUB; a++) {
        const p = phases[(f + s + a) % phases.length] as (typeof phases)[number];
        assets.push({
          assetId: `${sub}a${a}`,
          kind: 'ev',
          circuit: sub,
          phases: p,
          ratingKw: p.length === 2 ? 7.4 : 11,
          minA: 6,
        });
      }
    }
  }
  return {
    circuits,
    assets,
    meters: [{ id: 'building', circuit: 'grid', staleAfterS: 3600, worstCaseKw: 4000 }],
    minIntervalS: 0,
    hysteresisKw: 0.1,
  };
}

async function once(): Promise<{ total: number; allocation: number; changed: number }> {
  const limits = config();
  const site = new Site({ siteId: 'bench', limits, autoDispatch: true, onError: () => {} });
  let lastDispatchAt = 0;
  let counting = false;
  let changed = 0;
  const adapter = {
    protocol: 'bench',
    dispatch: (_c: Command) => {
      if (counting) {
        lastDispatchAt = performance.now();
        changed++;
      }
      return { success: true };
    },
  };
  for (const a of limits.assets) site.adapterRegistry.register(a.assetId, adapter);
  site.measure({ meter: 'building', kw: 0 });
  const now = Date.now();
  site.submit(
    limits.assets.map((a) => ({
      assetId: a.assetId,
      type: CommandType.SET_CHARGE_RATE,
      valueKw: 7,
      scheduledAt: now - 1000,
      validUntil: now + 3_600_000,
    })),
  );
  site.start();
  // Let every setpoint leave and complete.
  while (site.engine.stats().pending + site.engine.stats().inFlight > 0) {
    await new Promise((r) => setImmediate(r));
  }
  if (site.engine.getCommands({ status: CommandStatus.COMPLETED }).length < limits.assets.length)
    throw new Error('setup: not every setpoint completed');
  counting = true;
  const t0 = performance.now();
  const made = site.measure({ meter: 'building', kw: 3000 });
  const t1 = performance.now();
  while (changed < made.length) await new Promise((r) => setImmediate(r));
  await site.stop();
  return { total: lastDispatchAt - t0, allocation: t1 - t0, changed: made.length };
}

async function main(): Promise<void> {
  console.log(`limits-site: ${machine()}`);
  console.log(
    `${FEEDERS * SUBS * PER_SUB} assets, ${1 + FEEDERS + FEEDERS * SUBS} circuits on three levels`,
  );
  const n = runs(7);
  const total: number[] = [];
  const alloc: number[] = [];
  let changed = 0;
  await once(); // warm-up
  for (let i = 0; i < n; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    const r = await once();
    total.push(r.total);
    alloc.push(r.allocation);
    changed = r.changed;
  }
  console.log(`setpoints changed by one reading: ${changed}`);
  console.log(`reading -> allocation and commands made (site.measure): ${fmt(alloc)}  floor 10 ms`);
  console.log(`reading -> last changed setpoint at its adapter: ${fmt(total)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
