/**
 * Runs every benchmark of issue 7, and the schedule through a flow (and the journal, issue 17), one after the other,
 * each in its own process (as `node --import tsx bench/<name>.bench.ts` would). Needs the
 * build (`npm run build`) for the Node-RED ones. Prints figures; passes or fails nothing
 * (a benchmark that crashes is reported and the others still run).
 *
 *   node --import tsx bench/run-all.ts [name...]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ALL: { name: string; flags: string[] }[] = [
  { name: 'schedule', flags: ['--expose-gc'] },
  { name: 'schedule-flow', flags: ['--expose-gc'] },
  { name: 'plans', flags: ['--expose-gc'] },
  { name: 'engine', flags: ['--expose-gc'] },
  { name: 'dispatch-lateness', flags: [] },
  { name: 'burst', flags: [] },
  { name: 'ocpp-fleet', flags: ['--expose-gc'] },
  // 10,000 chargers, two ramps: minutes; bounded by its own deadline.
  { name: 'ocpp-10k', flags: ['--expose-gc'] },
  { name: 'modbus', flags: [] },
  { name: 'events', flags: [] },
  { name: 'compliance', flags: [] },
  { name: 'allocate', flags: ['--expose-gc'] },
  { name: 'limits-site', flags: ['--expose-gc'] },
  { name: 'timeline', flags: [] },
  { name: 'fleet', flags: [] },
  { name: 'stalls', flags: ['--expose-gc'] },
  { name: 'deploy', flags: ['--expose-gc'] },
  { name: 'journal', flags: [] },
];

const only = process.argv.slice(2);
const crashed: string[] = [];
for (const b of ALL.filter((x) => only.length === 0 || only.includes(x.name))) {
  console.log(`\n=== ${b.name} ===`);
  const r = spawnSync(
    process.execPath,
    [...b.flags, '--import', 'tsx', path.join(__dirname, `${b.name}.bench.ts`)],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) crashed.push(`${b.name} (exit ${r.status ?? r.signal})`);
}
if (crashed.length > 0) console.log(`\ndid not finish: ${crashed.join(', ')}`);
