/**
 * Event fan-out: events per second from the coordinator's bus through qe-events into a flow
 * (Node-RED via node-red-node-test-helper: qe-coordinator + qe-events (all event types)
 * wired to a node that counts arrivals). Two floors: a bare Node-RED node sending as many
 * messages (a new message with an event-shaped payload each) to the same counting node, and
 * the bare bus publish rate with one subscriber. Each run publishes EVENTS STATE_CHANGED
 * events back to back and times until the last one has reached the flow node.
 *
 *   node --import tsx bench/events.bench.ts        (BENCH_RUNS, BENCH_EVENTS)
 *
 * Prints figures; passes or fails nothing.
 */
import type { Node } from 'node-red';
import { EVENT_TYPES, EventType, type Site } from '../src';
import { EventBus } from '../src/event-bus';
import {
  arrivals,
  bareNode,
  COORDINATOR,
  deadline,
  fmt,
  helper,
  loadFlow,
  loadNodes,
  machine,
  median,
  ratio,
  runBenchmark,
  runs,
  startServer,
  stopServer,
} from './lib';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 50_000);
const RUNS = runs(7);

deadline(180);

const payload = (i: number) => ({
  assetId: `a${i % 1000}`,
  from_state: 'AVAILABLE',
  to_state: 'CHARGING',
  trigger: 'start_charge',
  forced: false,
});

function bareRun(): number {
  const bus = new EventBus();
  let n = 0;
  bus.subscribe('*', () => {
    n++;
  });
  const t = performance.now();
  for (let i = 0; i < EVENTS; i++) bus.publish(EventType.STATE_CHANGED, payload(i));
  const ms = performance.now() - t;
  if (n !== EVENTS) throw new Error('lost events');
  return (EVENTS / ms) * 1000;
}

async function flowRun(): Promise<number> {
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    COORDINATOR,
    // One output per event type (all of them): every output to the counting node.
    {
      id: 'ev',
      type: 'qe-events',
      z: 'f1',
      coordinator: 'coord',
      wires: EVENT_TYPES.map(() => ['sink']),
    },
    { id: 'sink', type: 'helper', z: 'f1' },
  ];
  await loadFlow(loadNodes('qe-coordinator', 'qe-events'), flow);
  const site = (helper.getNode('coord') as unknown as { site: Site }).site;
  const all = arrivals('sink', EVENTS);
  const t = performance.now();
  for (let i = 0; i < EVENTS; i++) site.eventBus.publish(EventType.STATE_CHANGED, payload(i));
  await all;
  const ms = performance.now() - t;
  await helper.unload();
  return (EVENTS / ms) * 1000;
}

/** The Node-RED floor: EVENTS messages from a bare node to a counting node. */
async function nodeRedFloorRun(): Promise<number> {
  const flow = [
    { id: 'f1', type: 'tab', label: 'bench' },
    { id: 'src', type: 'bench-floor', z: 'f1', wires: [['sink']] },
    { id: 'sink', type: 'helper', z: 'f1' },
  ];
  await loadFlow([bareNode], flow);
  const node = helper.getNode('src') as unknown as Node;
  const all = arrivals('sink', EVENTS);
  const t = performance.now();
  for (let i = 0; i < EVENTS; i++) {
    node.send({
      topic: EventType.STATE_CHANGED,
      payload: payload(i),
      timestamp: new Date().toISOString(),
    } as never);
  }
  await all;
  const ms = performance.now() - t;
  await helper.unload();
  return (EVENTS / ms) * 1000;
}

async function main(): Promise<void> {
  console.log(
    `events: ${EVENTS} STATE_CHANGED events per run, ${RUNS} runs, median (min, max); ${machine()}`,
  );
  await startServer();
  try {
    bareRun();
    await flowRun(); // warm-up
    await nodeRedFloorRun();
    const bare: number[] = [];
    const nodeRed: number[] = [];
    const flow: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      bare.push(bareRun());
      nodeRed.push(await nodeRedFloorRun());
      flow.push(await flowRun());
    }
    const us = (xs: number[]) => `${(1e6 / median(xs)).toFixed(2)} us/event`;
    console.log(
      `  bus -> qe-events -> flow node (ours)       ${fmt(flow, 'events/s', 0)}, ${us(flow)}`,
    );
    console.log(
      `  bare node -> flow node (Node-RED floor)    ${fmt(nodeRed, 'events/s', 0)}, ${us(nodeRed)}   ratio ${ratio(nodeRed, flow)}`,
    );
    console.log(
      `  bare bus publish, one subscriber           ${fmt(bare, 'events/s', 0)}, ${us(bare)}   ratio ${ratio(bare, flow)}`,
    );
  } finally {
    await stopServer();
  }
}

runBenchmark(main);
