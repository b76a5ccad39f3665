/**
 * Engine benchmark: 100,000 pending commands (1,000 assets x 100 slots); the cost of
 * selecting what is due at a slot boundary, of dispatching it, and the heap's memory.
 * Prints figures; passes or fails nothing.
 */
import { AdapterRegistry } from '../src/adapters/registry';
import { ManualClock } from '../src/clock';
import { CommandType } from '../src/commands';
import { DispatchEngine } from '../src/engine';

const ASSETS = 1000;
const SLOTS = 100;
const SLOT_MS = 900_000;
const T0 = Date.parse('2025-06-02T00:00:00Z');

const clock = new ManualClock(T0 - 1000);
const registry = new AdapterRegistry();
const adapter = { protocol: 'bench', dispatch: () => ({ success: true }) };
for (let a = 0; a < ASSETS; a++) registry.register(`a${a}`, adapter);
const engine = new DispatchEngine({ clock, adapterRegistry: registry });

global.gc?.();
const heapBefore = process.memoryUsage().heapUsed;
const input = [];
for (let a = 0; a < ASSETS; a++) {
  for (let s = 0; s < SLOTS; s++) {
    input.push({
      id: `c${a}-${s}`,
      assetId: `a${a}`,
      type: CommandType.SET_CHARGE_RATE,
      valueKw: s % 23,
      scheduledAt: T0 + s * SLOT_MS,
      validUntil: T0 + (s + 1) * SLOT_MS,
    });
  }
}
let t = process.hrtime.bigint();
engine.submit(input);
const submitMs = Number(process.hrtime.bigint() - t) / 1e6;
input.length = 0;
global.gc?.();
const heapAfter = process.memoryUsage().heapUsed;

const selectMs: number[] = [];
const dispatchMs: number[] = [];
const idleMs: number[] = [];
const run = async () => {
  for (let s = 0; s < 20; s++) {
    clock.set(T0 + s * SLOT_MS);
    t = process.hrtime.bigint();
    const due = engine.getPendingCommands();
    selectMs.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (due.length !== ASSETS) throw new Error(`expected ${ASSETS} due, got ${due.length}`);
    t = process.hrtime.bigint();
    for (const c of due) await engine.dispatchCommand(c);
    dispatchMs.push(Number(process.hrtime.bigint() - t) / 1e6);
    clock.advance(1000);
    t = process.hrtime.bigint();
    engine.getPendingCommands();
    idleMs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
};
run().then(() => {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const f = (xs: number[]) =>
    `${med(xs).toFixed(3)} ms (min ${Math.min(...xs).toFixed(3)}, max ${Math.max(...xs).toFixed(3)})`;
  console.log(
    `engine benchmark: ${ASSETS} assets x ${SLOTS} slots = ${ASSETS * SLOTS} pending commands; node ${process.version}`,
  );
  console.log(`  submit ${ASSETS * SLOTS} commands          ${submitMs.toFixed(1)} ms`);
  console.log(
    `  heap per pending command        ${global.gc ? `${((heapAfter - heapBefore) / (ASSETS * SLOTS)).toFixed(0)} bytes` : 'run with --expose-gc'}`,
  );
  console.log(`  select ${ASSETS} due at a boundary      ${f(selectMs)}`);
  console.log(`  dispatch ${ASSETS} (sync adapter)       ${f(dispatchMs)}`);
  console.log(`  select when nothing is due      ${f(idleMs)}`);
});
