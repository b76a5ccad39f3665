/**
 * The async forms of schedule parsing and conversion (parseScheduleAsync,
 * convertScheduleAsync, Site.receiveScheduleAsync) against the sync ones: the same result or
 * the same ScheduleError on random schedules in every input shape and on the sample files,
 * and they give the event loop turns on a large schedule. `sliceMs: 0` makes the async form
 * give a turn at every checkpoint, so no assertion depends on time.
 */
import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import { commandToJSON } from '../../src/commands';
import {
  type Conversion,
  type ConvertOptions,
  commandsAsync,
  convertSchedule,
  convertScheduleAsync,
} from '../../src/convert';
import { EventType } from '../../src/event-bus';
import {
  parseSchedule,
  parseScheduleAsync,
  type Schedule,
  ScheduleError,
} from '../../src/schedule';
import { Site } from '../../src/site';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
const NOW = Date.UTC(2025, 5, 1, 23, 30);
const EVERY_CHECKPOINT = { sliceMs: 0 };

/** mulberry32: a small seeded generator, so that a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  input: unknown;
  options: ConvertOptions;
  what: string;
}

/** A random schedule: shape, size, columns, a few bad cells or timestamps now and then. */
function randomCase(seed: number): Case {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const rows = 1 + Math.floor(r() * 40);
  const evs = Math.floor(r() * 12);
  const columns: string[] = [];
  const assetMap: Record<string, string> = {};
  for (let i = 0; i < evs; i++) {
    columns.push(`ev_ev_${i}_kw`);
    if (r() > 0.05) assetMap[`ev_${i}`] = `ast_ev_${i}`;
  }
  if (r() < 0.5) {
    columns.push('battery_charge_kw', 'battery_discharge_kw');
    assetMap.battery = 'ast_batt';
  }
  columns.push('price', 'load_kw');
  const limit = r() < 0.3;
  if (limit) columns.push('peak_target_kw');
  if (r() < 0.05 && columns.length > 0) columns.push(columns[0] as string); // a duplicate
  const start = Date.UTC(2025, 5, 2) + Math.floor(r() * 48) * 900_000;
  const times: unknown[] = [];
  for (let i = 0; i < rows; i++) times.push(start + i * 900_000);
  const timeForm = pick(['iso', 'ms', 's'] as const);
  const index = times.map((t) =>
    timeForm === 'iso'
      ? new Date(t as number).toISOString()
      : timeForm === 'ms'
        ? t
        : (t as number) / 1000,
  );
  if (rows > 2 && r() < 0.08) index[1] = index[0]; // duplicate timestamp
  if (rows > 3 && r() < 0.05) index[3] = 'not a time';
  const cell = (col: string): unknown => {
    const x = r();
    if (x < 0.1) return null;
    if (x < 0.12) return pick(['abc', -5, 2e9, 'inf', true, '7.5', ' nan ', -1e-9]);
    if (col === 'price') return Math.round(r() * 500) / 1000;
    return Math.round(r() * 220) / 10;
  };
  const data = index.map(() => columns.map(cell));
  const options: ConvertOptions = { assetMap, now: NOW, scheduleId: `s${seed}` };
  if (r() < 0.3) options.ignoreUnmapped = true;
  if (r() < 0.2) options.ratedKw = { ast_ev_0: 15, ast_batt: 20 };
  if (r() < 0.2) options.deadbandKw = pick([0, 0.5, 2]);
  if (r() < 0.2) options.horizonEnd = { fallbackKw: { '*': pick([0, 3, -2]) } };
  if (limit) options.limitColumn = 'peak_target_kw';
  if (rows === 1) options.slotSeconds = 900;
  const unique = [...new Set(columns)];
  const shape = pick([
    'split',
    'records',
    'index',
    'columns',
    'table',
    'csv',
    'wrapped',
    'buffer',
  ] as const);
  let input: unknown;
  const records = () =>
    data.map((row, i) => {
      const o: Record<string, unknown> = { timestamp: index[i] };
      columns.forEach((c, j) => {
        o[c] = row[j];
      });
      return o;
    });
  switch (shape) {
    case 'split':
      input = { columns, index, data };
      break;
    case 'records':
      input = records();
      break;
    case 'index': {
      const o: Record<string, Record<string, unknown>> = {};
      index.forEach((t, i) => {
        o[String(t)] = Object.fromEntries(unique.map((c, j) => [c, data[i]?.[j]]));
      });
      input = o;
      break;
    }
    case 'columns': {
      const o: Record<string, Record<string, unknown>> = {};
      unique.forEach((c, j) => {
        o[c] = Object.fromEntries(index.map((t, i) => [String(t), data[i]?.[j]]));
      });
      input = o;
      break;
    }
    case 'table':
      input = { schema: { primaryKey: ['timestamp'] }, data: records() };
      break;
    case 'csv': {
      const lines = [['timestamp', ...columns].join(',')];
      index.forEach((t, i) => {
        lines.push(
          [t, ...(data[i] as unknown[]).map((v) => (v === null ? '' : String(v)))].join(','),
        );
      });
      input = lines.join('\n');
      break;
    }
    case 'wrapped':
      input = JSON.stringify({ schedule: { columns, index, data }, status: 'optimal' });
      break;
    case 'buffer':
      input = Buffer.from(JSON.stringify({ columns, index, data }));
      break;
  }
  return {
    input,
    options,
    what: `seed ${seed}: ${shape}, ${rows} rows, ${columns.length} columns`,
  };
}

function scheduleView(s: Schedule): unknown {
  return {
    times: [...s.times],
    labels: s.labels,
    slotSeconds: s.slotSeconds,
    setpoints: s.setpoints,
    values: [...s.values].map(([k, v]) => [k, [...v].map((x) => (Number.isNaN(x) ? 'NaN' : x))]),
    ignoredColumns: s.ignoredColumns,
    scheduleId: s.scheduleId,
    meta: s.meta,
    limitColumn: s.limitColumn,
    limits: s.limits === null ? null : [...s.limits].map((x) => (Number.isNaN(x) ? 'NaN' : x)),
  };
}

function conversionView(c: Conversion): unknown {
  return {
    schedule: scheduleView(c.schedule),
    scheduleId: c.scheduleId,
    summary: c.summary,
    limits: c.limits,
    changes: c.changes,
    commands: c.commands.map(commandToJSON),
  };
}

type Outcome = { ok: unknown } | { error: { name: string; message: string; problems: unknown } };

function outcomeOf(fn: () => unknown): Outcome {
  try {
    return { ok: fn() };
  } catch (err) {
    const e = err as ScheduleError;
    return { error: { name: e.name, message: e.message, problems: e.problems } };
  }
}

async function asyncOutcomeOf(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: await fn() };
  } catch (err) {
    const e = err as ScheduleError;
    return { error: { name: e.name, message: e.message, problems: e.problems } };
  }
}

describe('schedules parsed and converted in slices', () => {
  it('async == sync on 300 random schedules in every shape, bad cells and all', async () => {
    let errors = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const c = randomCase(seed);
      const sync = outcomeOf(() => conversionView(convertSchedule(c.input, c.options)));
      const slices = await asyncOutcomeOf(async () => {
        const conv = await convertScheduleAsync(c.input, c.options, EVERY_CHECKPOINT);
        // The commands made in slices are the ones `commands` then gives.
        const made = await commandsAsync(conv, EVERY_CHECKPOINT);
        should(conv.commands).equal(made);
        return conversionView(conv);
      });
      should(slices).eql(sync, c.what);
      const parsed = outcomeOf(() => scheduleView(parseSchedule(c.input, c.options)));
      const parsedAsync = await asyncOutcomeOf(async () =>
        scheduleView(await parseScheduleAsync(c.input, c.options, EVERY_CHECKPOINT)),
      );
      should(parsedAsync).eql(parsed, c.what);
      if ('error' in sync) errors++;
    }
    // Both branches were exercised: some schedules were rejected, most were not.
    should(errors).be.within(20, 250);
  });

  it('async == sync on the sample schedules', async () => {
    const cases: [string, Partial<ConvertOptions>][] = [
      ['ev-schedule.split.json', { assetMap: { ev_001: 'a1', ev_002: 'a2', ev_003: 'a3' } }],
      ['ev-result.epoch.json', { assetMap: { ev_001: 'a1', ev_002: 'a2', ev_003: 'a3' } }],
      ['peak-shaving.split.json', { assetMap: { battery: 'b' }, limitColumn: 'peak_target_kw' }],
      ['peak-shaving.csv', { assetMap: { battery: 'b' }, limitColumn: 'peak_target_kw' }],
      ['peak-shaving.csv', { assetMap: {} }], // rejected: the battery columns have no asset
    ];
    for (const [name, opts] of cases) {
      const options = { assetMap: {}, now: NOW, scheduleId: 'x', ...opts };
      const text = fixture(name);
      const sync = outcomeOf(() => conversionView(convertSchedule(text, options)));
      const slices = await asyncOutcomeOf(async () =>
        conversionView(await convertScheduleAsync(text, options, EVERY_CHECKPOINT)),
      );
      should(slices).eql(sync, name);
    }
  });

  it('a bad cell is a rejection naming its row, time and column, as in the sync form', async () => {
    const input = {
      columns: ['ev_ev_1_kw'],
      index: ['2025-06-02T08:00:00Z', '2025-06-02T09:00:00Z'],
      data: [[1], [-5]],
    };
    const err = await convertScheduleAsync(input, { assetMap: { ev_1: 'a' } }).then(
      () => null,
      (e: unknown) => e,
    );
    should(err).be.instanceOf(ScheduleError);
    should((err as ScheduleError).message).match(
      /row 1 \(2025-06-02T09:00:00Z\), column ev_ev_1_kw: -5 kW is negative/,
    );
  });

  it('gives the event loop turns while it converts a large schedule', async () => {
    const assets = 2000;
    const columns = Array.from({ length: assets }, (_, a) => `ev_ev_${a}_kw`);
    const assetMap = Object.fromEntries(columns.map((_, a) => [`ev_${a}`, `ast_${a}`]));
    const index = Array.from({ length: 96 }, (_, s) =>
      new Date(Date.UTC(2025, 5, 2) + s * 900_000).toISOString(),
    );
    const data = index.map((_, s) => columns.map((_, a) => ((a + Math.floor(s / 4)) % 23) / 2));
    let turns = 0;
    let spinning = true;
    const spin = () => {
      if (!spinning) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    // As JSON text (4 MB): parsed in pieces too.
    const text = JSON.stringify({ columns, index, data });
    const conversion = await convertScheduleAsync(
      text,
      { assetMap, now: NOW, scheduleId: 'big' },
      EVERY_CHECKPOINT,
    );
    const atConverted = turns;
    await commandsAsync(conversion, EVERY_CHECKPOINT);
    spinning = false;
    // 192,000 cells read and converted in checkpoints of at most 4,096 cells each, the
    // commands made 1,024 at a time.
    should(atConverted).be.above(40);
    should(turns - atConverted).be.above(10);
    const sync = convertSchedule(text, { assetMap, now: NOW, scheduleId: 'big' });
    should(conversion.summary).eql(sync.summary);
    should(conversion.changes).eql(sync.changes);
  });
});

describe('Site.receiveScheduleAsync', () => {
  const text = () => fixture('ev-schedule.split.json');
  const assetMap = { ev_001: 'a1', ev_002: 'a2', ev_003: 'a3' };

  it('gives what receiveSchedule gives, and publishes SCHEDULE_RECEIVED', async () => {
    const a = new Site({ siteId: 'a' });
    const b = new Site({ siteId: 'b' });
    const seen: unknown[] = [];
    b.eventBus.subscribe(EventType.SCHEDULE_RECEIVED, (e) => seen.push(e.payload));
    const sync = a.receiveSchedule(text(), { assetMap, scheduleId: 'day' });
    const slices = await b.receiveScheduleAsync(
      text(),
      { assetMap, scheduleId: 'day' },
      EVERY_CHECKPOINT,
    );
    should(slices.summary).eql(sync.summary);
    should(slices.changes).eql(sync.changes);
    should(slices.commands.map((c) => c.id)).eql(sync.commands.map((c) => c.id));
    should(seen).eql([slices.summary]);
  });

  it('two schedules with one id received at once get two revisions', async () => {
    const site = new Site({ siteId: 's' });
    const [first, second] = await Promise.all([
      site.receiveScheduleAsync(text(), { assetMap, scheduleId: 'day' }, EVERY_CHECKPOINT),
      site.receiveScheduleAsync(text(), { assetMap, scheduleId: 'day' }, EVERY_CHECKPOINT),
    ]);
    should([first?.scheduleId, second?.scheduleId].sort()).eql(['day', 'day#2']);
    // A sync one while an async one converts takes the id first; the async one comes after.
    const pending = site.receiveScheduleAsync(
      text(),
      { assetMap, scheduleId: 'night' },
      EVERY_CHECKPOINT,
    );
    const now = site.receiveSchedule(text(), { assetMap, scheduleId: 'night' });
    const later = await pending;
    should(now.scheduleId).equal('night');
    should(later.scheduleId).equal('night#2');
    should(later.summary.scheduleId).equal('night#2');
    should(
      later.commands.every((c) => c.scheduleId === 'night#2' && c.id.startsWith('night#2:')),
    ).be.true();
  });

  it('a site stopped while the schedule converts rejects it and changes nothing', async () => {
    const site = new Site({ siteId: 's' });
    const seen: unknown[] = [];
    site.eventBus.subscribe(EventType.SCHEDULE_RECEIVED, (e) => seen.push(e));
    const pending = site.receiveScheduleAsync(
      text(),
      { assetMap, scheduleId: 'day' },
      EVERY_CHECKPOINT,
    );
    await site.stop();
    const err = await pending.then(
      () => null,
      (e: unknown) => e,
    );
    should((err as Error).message).match(/site s stopped while the schedule was converted/);
    should(seen).eql([]);
    should(site.engine.stats().total).equal(0);
  });

  it('a bad schedule rejects with the ScheduleError and changes nothing', async () => {
    const site = new Site({ siteId: 's' });
    const seen: unknown[] = [];
    site.eventBus.subscribe(EventType.SCHEDULE_RECEIVED, (e) => seen.push(e));
    const err = await site
      .receiveScheduleAsync(text(), { assetMap: {}, scheduleId: 'day' }, EVERY_CHECKPOINT)
      .then(
        () => null,
        (e: unknown) => e,
      );
    should(err).be.instanceOf(ScheduleError);
    should((err as Error).message).match(/no asset in assetMap for columns ev_ev_001_kw/);
    should(seen).eql([]);
    should(site.engine.hasScheduleId('day')).be.false();
  });
});
