/**
 * The simulated fleet of bench/ocpp-10k.bench.ts: `count` OCPP 1.6 chargers split over
 * `procs` child processes (bench/fleet-sims.ts), connecting as a ramp says; when the first
 * started connecting, when the last was accepted, how many connection attempts were tried
 * again. Every child is killed by its pid at exit (and by `killChildren`); waits are bounded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import path from 'node:path';

const children = new Set<ChildProcess>();

export function killChildren(): void {
  for (const c of children) {
    try {
      if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  children.clear();
}
process.on('exit', killChildren);

export interface Fleet {
  procs: ChildProcess[];
  /** When the first process started connecting (epoch ms). */
  connectingAt: number;
  /** When the last BootNotification was accepted, charger side (epoch ms). */
  bootedAt: number;
  /** Connection attempts that failed and were tried again. */
  retries: number;
}

function startProc(url: string, first: number, count: number, ramp: string, bootTimeoutMs: number) {
  const child = spawn(
    process.execPath,
    [
      // e.g. BENCH_SIM_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile them
      ...(process.env.BENCH_SIM_FLAGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      'tsx',
      path.join(__dirname, 'fleet-sims.ts'),
      url,
      String(count),
      'CP',
      String(first),
      ramp,
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  children.add(child);
  // BENCH_SIM_NICE=<n>: the simulators' scheduling priority (nice, 1-19): chargers are
  // other machines in the field; niced, they leave the cores to the central process first.
  const nice = Number(process.env.BENCH_SIM_NICE);
  if (child.pid !== undefined && Number.isInteger(nice) && nice > 0) setPriority(child.pid, nice);
  let connectingAt = Number.POSITIVE_INFINITY;
  let retries = 0;
  const booted = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${count} chargers did not boot within ${bootTimeoutMs} ms`)),
      bootTimeoutMs,
    );
    child.on('message', (m: { type: string; message?: string; at?: number; retries?: number }) => {
      if (m.type === 'connecting') {
        connectingAt = m.at ?? Date.now();
        return;
      }
      clearTimeout(timer);
      if (m.type === 'ready') {
        retries += m.retries ?? 0;
        resolve(m.at ?? Date.now());
      } else reject(new Error(`fleet: ${m.message}`));
    });
    child.on('exit', (code) => {
      children.delete(child);
      clearTimeout(timer);
      reject(new Error(`fleet process exited (${code})`));
    });
  });
  return { child, booted, connectingAt: () => connectingAt, retries: () => retries };
}

/** `n` chargers over procs processes, connecting as `ramp` says (a rate is split over them). */
export async function startFleet(
  url: string,
  n: number,
  ramp: string,
  procs: number,
  bootTimeoutMs: number,
): Promise<Fleet> {
  const per = Math.ceil(n / procs);
  const rate = /^rate:(\d+)$/.exec(ramp);
  const procRamp = rate ? `rate:${Math.max(1, Math.round(Number(rate[1]) / procs))}` : ramp;
  const started = [];
  for (let first = 0; first < n; first += per)
    started.push(startProc(url, first, Math.min(per, n - first), procRamp, bootTimeoutMs));
  const bootedAt = Math.max(...(await Promise.all(started.map((s) => s.booted))));
  return {
    procs: started.map((s) => s.child),
    connectingAt: Math.min(...started.map((s) => s.connectingAt())),
    bootedAt,
    retries: started.reduce((sum, s) => sum + s.retries(), 0),
  };
}

export async function stopFleet(fleet: Fleet): Promise<void> {
  await Promise.all(
    fleet.procs.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.send({ type: 'stop' });
      const t = setTimeout(
        () => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'),
        8000,
      );
      await exited;
      clearTimeout(t);
      children.delete(child);
    }),
  );
}
