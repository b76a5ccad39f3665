/**
 * Child process of bench/ocpp-fleet.bench.ts: many simulated OCPP 1.6 charge points
 * (ChargePointSimulator from src/sim) in one process, connected to the URL it is given.
 *
 *   node --import tsx bench/fleet-sims.ts <url> <count> [prefix]
 *
 * Tells its parent over IPC: {type: 'ready', count} once every charger has booted;
 * {type: 'error', message} if one could not. On {type: 'stop'} (or when the parent goes
 * away) it closes every connection and exits. Not a benchmark itself.
 */
import { ChargePointSimulator } from '../src/sim/charge-point';

const [url, countArg, prefix = 'CP'] = process.argv.slice(2);
const count = Number(countArg);
if (!url || !(count > 0)) {
  console.error('usage: fleet-sims.ts <url> <count> [prefix]');
  process.exit(2);
}

/** The identity of charger i (0-based), as the parent names it. */
export function identity(i: number): string {
  return `${prefix}${String(i + 1).padStart(5, '0')}`;
}

const sims: ChargePointSimulator[] = [];
let stopping = false;

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const hard = setTimeout(() => process.exit(code), 5000);
  hard.unref();
  await Promise.allSettled(sims.map((s) => s.stop()));
  process.exit(code);
}

process.on('message', (m: { type?: string }) => {
  if (m?.type === 'stop') void stop(0);
});
process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

async function main(): Promise<void> {
  for (let i = 0; i < count; i++) {
    const sim = new ChargePointSimulator({
      endpoint: url as string,
      identity: identity(i),
      protocol: 'ocpp1.6',
      meterIntervalMs: 0,
      reconnect: false,
      callTimeoutMs: 60_000,
    });
    sim.on('warning', () => {});
    sims.push(sim);
  }
  process.send?.({ type: 'connecting' });
  // Connect in batches: thousands of simultaneous handshakes overflow the listen backlog.
  const BATCH = 100;
  for (let i = 0; i < sims.length; i += BATCH) {
    const res = await Promise.all(sims.slice(i, i + BATCH).map((s) => s.start()));
    const refused = res.find((r) => r.status !== 'Accepted');
    if (refused) throw new Error(`a charger was not accepted: ${JSON.stringify(refused)}`);
  }
  process.send?.({ type: 'ready', count: sims.length });
}

main().catch((err: Error) => {
  process.send?.({ type: 'error', message: err.message });
  void stop(1);
});
