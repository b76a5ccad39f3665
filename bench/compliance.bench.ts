/**
 * Compliance: CPU per meter reading of checking it against the setpoint in force
 * (`site.measured`: the command in force from the engine, the ComplianceMonitor's decision,
 * an event on a transition), for ASSETS assets (default 2,000) each reporting every 10 s
 * (simulated time, a ManualClock), beside the floor: the bare cost of receiving the reading
 * (JSON.parse of the OCPP 1.6 MeterValues frame and `readMeterValues`, what the central
 * system does with every reading anyway). Two engine sizes: one setpoint per asset, and a
 * day of 15-min slots per asset (96 commands each, the first COMPLETED and in force), since
 * finding the command in force could depend on how many the engine holds (the slots that
 * begin are dispatched between rounds, untimed). One asset in ten draws above its limit half
 * of the time, so deviations start and end as the rounds go (the first run is a warm-up,
 * which also fills the per-asset list of setpoints from the engine).
 *
 *   node --import tsx bench/compliance.bench.ts        (BENCH_RUNS, BENCH_ASSETS)
 *
 * Prints figures; passes or fails nothing.
 */
import { readMeterValues } from '../src/adapters/ocpp/translate';
import { ManualClock } from '../src/clock';
import { CommandType } from '../src/commands';
import { EventType } from '../src/event-bus';
import { Site } from '../src/site';
import { deadline, fmt, machine, median, ratio, runBenchmark, runs } from './lib';

const ASSETS = Number(process.env.BENCH_ASSETS ?? 2000);
const RUNS = runs(7);
const ROUNDS = 30; // readings per asset per run: 5 minutes of 10-s readings
const T0 = Date.parse('2025-06-02T00:00:00Z');
const SLOT_MS = 15 * 60_000;

deadline(300);

const frame = (asset: number, w: number) =>
  JSON.stringify([
    2,
    `m${asset}`,
    'MeterValues',
    {
      connectorId: 1,
      meterValue: [
        {
          timestamp: '2025-06-02T00:00:10.000Z',
          sampledValue: [
            { value: String(w), measurand: 'Power.Active.Import', unit: 'W' },
            { value: '12345.6', measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
          ],
        },
      ],
    },
  ]);

/** The draw of asset `a` at round `r`, W: one in ten goes above its 7.4 kW limit for a while. */
const drawW = (a: number, r: number) => (a % 10 === 0 && r % 10 < 5 ? 11_000 : 7_000);

async function makeSite(slots: number): Promise<{ site: Site; clock: ManualClock }> {
  const clock = new ManualClock(T0);
  const site = new Site({ siteId: 'bench', clock, onError: () => {} });
  const adapter = { protocol: 'bench', dispatch: () => ({ success: true }) };
  const input = [];
  for (let a = 0; a < ASSETS; a++) {
    site.adapterRegistry.register(`a${a}`, adapter);
    for (let s = 0; s < slots; s++)
      input.push({
        id: `c${a}-${s}`,
        assetId: `a${a}`,
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 7.4,
        scheduledAt: T0 + s * SLOT_MS,
        // One setpoint: in force for good; a day of slots: each for its 15 minutes.
        validUntil: slots === 1 ? null : T0 + (s + 1) * SLOT_MS,
      });
  }
  site.engine.submit(input);
  for (const c of site.engine.getPendingCommands()) await site.engine.dispatchCommand(c);
  return { site, clock };
}

/**
 * ms for ROUNDS rounds of one reading per asset through `site.measured` (timed), with the
 * slots that begin dispatched and COMPLETED between rounds (untimed), as the site loop would.
 */
async function oursRun(site: Site, clock: ManualClock): Promise<{ ms: number; events: number }> {
  let events = 0;
  const off = site.eventBus.subscribe('*', (e) => {
    if (e.type === EventType.ASSET_DEVIATION || e.type === EventType.ASSET_COMPLIANT) events++;
  });
  let ms = 0;
  for (let r = 0; r < ROUNDS; r++) {
    clock.advance(10_000);
    for (const c of site.engine.getPendingCommands()) await site.engine.dispatchCommand(c);
    const t = performance.now();
    for (let a = 0; a < ASSETS; a++) {
      site.measured(`a${a}`, { kind: 'ev-limit', kw: drawW(a, r) / 1000, intervalMs: 10_000 });
    }
    ms += performance.now() - t;
  }
  off();
  return { ms, events };
}

/** ms for ROUNDS rounds of receiving one reading per asset (parse the frame, read the values). */
function floorRun(frames: string[][]): number {
  let sink = 0;
  const t = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    const round = frames[r % frames.length] as string[];
    for (let a = 0; a < ASSETS; a++) {
      const msg = JSON.parse(round[a] as string) as [
        number,
        string,
        string,
        { meterValue: unknown },
      ];
      sink += readMeterValues(msg[3].meterValue)[0]?.powerW ?? 0;
    }
  }
  const ms = performance.now() - t;
  if (sink <= 0) throw new Error('no readings');
  return ms;
}

async function main(): Promise<void> {
  const readings = ASSETS * ROUNDS;
  console.log(
    `compliance: ${ASSETS} assets, a reading each every 10 s (simulated), ${ROUNDS} rounds per run, ${RUNS} runs, median (min, max); ${machine()}`,
  );
  const frames = Array.from({ length: 10 }, (_, r) =>
    Array.from({ length: ASSETS }, (_, a) => frame(a, drawW(a, r))),
  );
  const us = (ms: number[]) => (median(ms) * 1000) / readings;
  const floor: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const ms = floorRun(frames);
    if (i > 0) floor.push(ms); // the first is a warm-up
  }
  console.log(
    `  floor: receive a reading (JSON.parse + readMeterValues)   ${us(floor).toFixed(2)} us/reading   (${fmt(floor)} per ${readings})`,
  );
  for (const slots of [1, 96]) {
    const { site, clock } = await makeSite(slots);
    const ours: number[] = [];
    let events = 0;
    for (let i = 0; i <= RUNS; i++) {
      const r = await oursRun(site, clock);
      if (i > 0) {
        ours.push(r.ms);
        events += r.events;
      }
    }
    const perReading = us(ours);
    console.log(
      `  check (site.measured), ${String(slots).padStart(2)} command(s) per asset in the engine   ${perReading.toFixed(2)} us/reading   (${fmt(ours)} per ${readings}; ${ratio(ours, floor)} the floor; ${((perReading * (ASSETS / 10)) / 1e4).toFixed(2)} % of one core at ${ASSETS} readings per 10 s; ${Math.round(events / RUNS)} compliance events per run)`,
    );
    await site.stop();
  }
}

runBenchmark(main);
