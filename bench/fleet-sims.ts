/**
 * Child process of bench/ocpp-fleet.bench.ts and bench/ocpp-10k.bench.ts: many simulated OCPP
 * 1.6 charge points (ChargePointSimulator from src/sim) in one process, connected to the URL
 * it is given.
 *
 *   node --import tsx bench/fleet-sims.ts <url> <count> [prefix] [first] [ramp]
 *
 * Charger i (0-based, from `first`) is `<prefix><i+1, 5 digits>`. `ramp` is how they connect:
 * `batch:<k>` (default batch:100: k handshakes at a time, the next k when those have booted),
 * `burst` (all at once, as a site whose power came back: the listen backlog overflows, and a
 * charger whose connection is refused or reset tries again after 1 s, 2 s, 4 s... up to 8 s,
 * as chargers do) or `rate:<r>` (r new chargers a second, evenly).
 *
 * Tells its parent over IPC: {type: 'connecting', at} when it starts; {type: 'ready', count,
 * at, retries} once every charger has booted (`at`: when the last BootNotification was
 * accepted, epoch ms; `retries`: failed connection attempts that were tried again);
 * {type: 'error', message} if one could not. On {type: 'stop'} (or when the parent goes
 * away) it closes every connection and exits. Not a benchmark itself.
 */
import { ChargePointSimulator } from '../src/sim/charge-point';

const [url, countArg, prefix = 'CP', firstArg = '0', ramp = 'batch:100'] = process.argv.slice(2);
const count = Number(countArg);
const first = Number(firstArg);
const rampMatch = /^(?:burst|batch:(\d+)|rate:(\d+))$/.exec(ramp);
if (!url || !(count > 0) || !(first >= 0) || !rampMatch) {
  console.error('usage: fleet-sims.ts <url> <count> [prefix] [first] [burst|batch:<k>|rate:<r>]');
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

let lastBootAt = 0;
let retries = 0;

async function boot(sim: ChargePointSimulator): Promise<void> {
  const r = await sim.start();
  if (r.status !== 'Accepted') throw new Error(`a charger was not accepted: ${JSON.stringify(r)}`);
  lastBootAt = Math.max(lastBootAt, Date.now());
}

async function main(): Promise<void> {
  for (let i = first; i < first + count; i++) {
    const sim = new ChargePointSimulator({
      endpoint: url as string,
      identity: identity(i),
      protocol: 'ocpp1.6',
      meterIntervalMs: 0,
      // Connection attempts are retried with backoff (the fleet stops with stop(): no
      // reconnect then).
      reconnect: true,
      backoff: { initialDelay: 1000, maxDelay: 8000, factor: 2 },
      callTimeoutMs: 60_000,
    });
    sim.on('warning', () => {
      retries++;
    });
    sims.push(sim);
  }
  process.send?.({ type: 'connecting', at: Date.now() });
  const [, batch, rate] = rampMatch as RegExpExecArray;
  if (batch) {
    // Batches: thousands of simultaneous handshakes overflow the listen backlog.
    const k = Number(batch);
    for (let i = 0; i < sims.length; i += k) await Promise.all(sims.slice(i, i + k).map(boot));
  } else if (rate) {
    const everyMs = 1000 / Number(rate);
    const t0 = Date.now();
    const booting: Promise<void>[] = [];
    for (let i = 0; i < sims.length; i++) {
      const wait = t0 + i * everyMs - Date.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      booting.push(boot(sims[i] as ChargePointSimulator));
    }
    await Promise.all(booting);
  } else {
    await Promise.all(sims.map(boot));
  }
  process.send?.({ type: 'ready', count: sims.length, at: lastBootAt, retries });
}

main().catch((err: Error) => {
  process.send?.({ type: 'error', message: err.message });
  void stop(1);
});
