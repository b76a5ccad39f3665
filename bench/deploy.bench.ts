/**
 * Deploying a large site (issue 17, "everything else the package does"): the event loop's
 * longest turn while Node-RED deploys a flow with a qe-ocpp of N chargers (default 10,000)
 * on a qe-ocpp-server and a qe-coordinator, and the CPU of that turn. Floor: the same flow
 * with the qe-ocpp node replaced by a plain node holding the same table (what Node-RED itself
 * does with a config that large: parse, clone, start). Each run deploys into a fresh runtime
 * of the test helper (the helper's own deep comparison of the flow is in both sides).
 *
 *   node --expose-gc --import tsx bench/deploy.bench.ts [chargers]
 *
 * Prints figures; passes or fails nothing.
 */
import {
  COORDINATOR,
  fmt,
  helper,
  loadFlow,
  loadNodes,
  machine,
  ocppServer,
  runs,
  sleep,
  startServer,
  stopServer,
} from './lib';
import { longestGap } from './turn-probe';

const N = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 10_000);
const RUNS = runs(3);

function chargers() {
  return Array.from({ length: N }, (_, i) => ({
    identity: `CP${i}`,
    assetId: `ev${i}`,
    ratedKw: 11,
    failsafeKw: 4,
    confirm: 'confirmed',
  }));
}

function flow(ours: boolean): object[] {
  const table = chargers();
  return [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    ocppServer(),
    ours
      ? {
          id: 'ocpp',
          type: 'qe-ocpp',
          z: 'f1',
          coordinator: 'coord',
          server: 'srv',
          chargers: table,
          wires: [[], []],
        }
      : { id: 'ocpp', type: 'helper', z: 'f1', chargers: table },
  ];
}

/** Deploys the flow; the longest turn from the deploy until 1 s after, and the deploy's time. */
async function deploy(ours: boolean): Promise<{ gapMs: number; cpuMs: number; deployMs: number }> {
  const nodes = loadNodes('qe-coordinator', 'qe-ocpp-server', 'qe-ocpp');
  const f = flow(ours);
  global.gc?.();
  await sleep(200);
  const probe = longestGap();
  const t0 = performance.now();
  await loadFlow(nodes, f);
  const deployMs = performance.now() - t0;
  await sleep(1000);
  const { gapMs, cpuMs } = probe();
  await helper.unload();
  return { gapMs, cpuMs, deployMs };
}

async function main(): Promise<void> {
  console.log(`deploy: a flow with a qe-ocpp of ${N} chargers, ${RUNS} runs; ${machine()}`);
  await startServer();
  try {
    await deploy(true); // warm-up: the first deploy of a process also compiles
    const res = {
      ours: [] as Awaited<ReturnType<typeof deploy>>[],
      floor: [] as Awaited<ReturnType<typeof deploy>>[],
    };
    for (let r = 0; r < RUNS; r++) {
      res.ours.push(await deploy(true));
      res.floor.push(await deploy(false));
    }
    for (const side of ['ours', 'floor'] as const) {
      const xs = res[side];
      console.log(
        `  ${side === 'ours' ? 'qe-ocpp' : 'floor: a plain node, same table'}: longest turn ${fmt(xs.map((x) => x.gapMs))}, ` +
          `CPU in it ${fmt(xs.map((x) => x.cpuMs))}; deploy ${fmt(xs.map((x) => x.deployMs))}`,
      );
    }
    console.log('  target (issue 17): no turn over 50 ms');
  } finally {
    await stopServer();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
