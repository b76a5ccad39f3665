/**
 * parseJsonSteps and parseJsonBytesSteps (src/json-chunks.ts): JSON.parse in pieces, of a
 * string or of UTF-8 bytes, gives what JSON.parse gives, and on a bad text JSON.parse's own
 * error, on large random values and on mutations of them.
 */
import should from 'should';
import { runSync } from '../../src/chunks';
import { parseJsonBytesSteps, parseJsonSteps, stringifySteps } from '../../src/json-chunks';

/** `v` with every Float64Array in it read back as an Array. */
function plain(v: unknown): unknown {
  if (v instanceof Float64Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      Object.defineProperty(out, k, {
        value: plain((v as Record<string, unknown>)[k]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return v;
}

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

/** A random JSON value of about `size` leaves, with long arrays and objects in it. */
function randomValue(r: () => number, size: number, depth = 0): unknown {
  const x = r();
  if (size <= 1 || depth > 6) {
    if (x < 0.2) return null;
    if (x < 0.3) return r() < 0.5;
    if (x < 0.6) return Math.round(r() * 1e6) / 1e3 - 100;
    const chars = ['a', 'é', '"', '\\', ',', ':', '[', '}', '\n', '\u2028', 'z'];
    let s = '';
    for (let i = 0; i < r() * 12; i++) s += chars[Math.floor(r() * chars.length)];
    return s;
  }
  const n = 1 + Math.floor(r() * Math.min(size, 400));
  if (x < 0.5) return Array.from({ length: n }, () => randomValue(r, size / n, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const key = r() < 0.02 ? '__proto__' : r() < 0.05 ? String(i) : `k${Math.floor(r() * n)}"${i}`;
    o[key] = randomValue(r, size / n, depth + 1);
  }
  return o;
}

/** The value as text (JSON.stringify keeps key order and own "__proto__"), or the error. */
type Outcome = { ok: string } | { error: string };
const outcome = (fn: () => unknown): Outcome => {
  try {
    return { ok: JSON.stringify(fn()) };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
};

describe('parseJsonSteps: JSON.parse in pieces', () => {
  it('gives what JSON.parse gives on large random values, and its error on broken ones', function () {
    // 10 seeds x 7 texts of ~12,000 values, each parsed whole and in pieces: 2-3 s alone, 12-13
    // s on a loaded machine (bounded by the count, not by time).
    this.timeout(60_000);
    let pieces = 0;
    let errors = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const r = rng(seed);
      const text = JSON.stringify(randomValue(r, 12_000), null, seed % 3 === 0 ? 1 : undefined);
      const texts = [text, ` \n${text}\t `];
      for (let m = 0; m < 5; m++) {
        const at = Math.floor(r() * text.length);
        const ch = [',', ']', '}', '"', ':', '[', '{', ''][Math.floor(r() * 8)] as string;
        texts.push(text.slice(0, at) + ch + text.slice(at + (r() < 0.5 ? 1 : 0)));
      }
      for (const t of texts) {
        const steps = parseJsonSteps(t);
        let yields = 0;
        let res = outcome(() => {
          let x = steps.next();
          while (!x.done) {
            yields++;
            x = steps.next();
          }
          return x.value;
        });
        const native = outcome(() => JSON.parse(t));
        should(res).eql(native, `seed ${seed}, text of ${t.length}`);
        if ('ok' in native) {
          if (yields > 0) pieces++;
        } else errors++;
        res = outcome(() => runSync(parseJsonSteps(t)));
        should(res).eql(native);
        // From the text's UTF-8 bytes (a file read whole), never decoded whole: the same.
        const fromBytes = outcome(() => runSync(parseJsonBytesSteps(Buffer.from(t, 'utf8'))));
        should(fromBytes).eql(native, `bytes: seed ${seed}, text of ${t.length}`);
        // With float64: the same, once its Float64Arrays are read back as arrays.
        const f64 = outcome(() =>
          plain(runSync(parseJsonBytesSteps(Buffer.from(t, 'utf8'), { float64: true }))),
        );
        should(f64).eql(native, `float64: seed ${seed}, text of ${t.length}`);
      }
    }
    // Large texts were taken apart, and the mutations gave errors.
    should(pieces).be.above(8);
    should(errors).be.above(10);
  });

  it('float64: a large array of numbers only is a Float64Array of them; any other array stays an Array', () => {
    const numbers = Array.from({ length: 30_000 }, (_, i) => (i % 11 === 0 ? -0 : i * 1.25 - 7));
    const mixed = numbers.map((v, i) => (i === 20_000 ? null : v));
    const doc = { plan: { valueKw: numbers, mixed, small: [1, 2, 3] }, rows: [{ a: numbers }] };
    const got = runSync(
      parseJsonBytesSteps(Buffer.from(JSON.stringify(doc)), { float64: true }),
    ) as { plan: Record<string, unknown>; rows: { a: unknown }[] };
    should(got.plan.valueKw).be.instanceOf(Float64Array);
    should(Array.from(got.plan.valueKw as Float64Array)).eql(JSON.parse(JSON.stringify(numbers)));
    should(Array.isArray(got.plan.mixed)).be.true();
    should(got.plan.mixed).eql(JSON.parse(JSON.stringify(mixed)));
    should(Array.isArray(got.plan.small)).be.true();
    should(got.rows[0]?.a).be.instanceOf(Float64Array);
    // Without the option: arrays, as JSON.parse gives them.
    const asIs = runSync(parseJsonBytesSteps(Buffer.from(JSON.stringify(doc))));
    should(asIs).eql(JSON.parse(JSON.stringify(doc)));
  });

  it('stringifySteps gives the text JSON.stringify gives, in pieces', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = rng(seed);
      const v = randomValue(r, 12_000) as Record<string, unknown>;
      // Long arrays, and what JSON.stringify leaves out or changes: undefined, functions,
      // Dates (toJSON), NaN.
      const doc = {
        v,
        long: Array.from({ length: 2500 + seed }, (_, i) =>
          i % 97 === 0
            ? undefined
            : i % 89 === 0
              ? new Date(i * 1e9)
              : { i, x: i % 7 ? i / 3 : Number.NaN },
        ),
        skip: undefined,
        fn: () => 1,
        nested: { rows: Array.from({ length: 1500 }, (_, i) => [i, `r${i}`, null]) },
      };
      let yields = 0;
      const steps = stringifySteps(doc);
      let x = steps.next();
      while (!x.done) {
        yields++;
        x = steps.next();
      }
      should(x.value).equal(JSON.stringify(doc));
      should(yields).be.above(3);
    }
  });
});
