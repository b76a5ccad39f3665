// BigMap and BigSet (src/big-map.ts): a Map and a Set in capped segments. Seeded random runs
// against a real Map and Set, with small segments so that segments fill, empty and merge:
// the same answers, the same size and the same insertion order after every operation.
import should from 'should';
import { BigMap, BigSet } from '../../src/big-map';

function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 16807) % 2147483647;
    return x / 2147483647;
  };
}

describe('BigMap', () => {
  it('answers as a Map, in its insertion order, under random sets, deletes and gets', () => {
    for (let run = 0; run < 40; run++) {
      const rnd = seeded(run + 1);
      const segment = 2 + (run % 7);
      const big = new BigMap<string, number>(undefined, segment);
      const model = new Map<string, number>();
      let mostSegments = 0;
      for (let op = 0; op < 600; op++) {
        const key = `k${Math.floor(rnd() * 60)}`;
        const r = rnd();
        if (r < 0.5) {
          should(big.set(key, op)).equal(big);
          model.set(key, op);
        } else if (r < 0.8) {
          should(big.delete(key)).equal(model.delete(key));
        } else {
          should(big.get(key)).equal(model.get(key));
          should(big.has(key)).equal(model.has(key));
        }
        should(big.size).equal(model.size);
        mostSegments = Math.max(mostSegments, big.segmentCount);
        // Any two neighbours hold over half a segment: deletes leave no trail of
        // near-empty segments to ask; none is over full.
        const sizes = big.segmentSizes();
        for (let i = 0; i + 1 < sizes.length; i++)
          should((sizes[i] as number) + (sizes[i + 1] as number)).above(segment / 2);
        for (const n of sizes) should(n).belowOrEqual(segment);
      }
      should([...big]).eql([...model]);
      should([...big.keys()]).eql([...model.keys()]);
      should([...big.values()]).eql([...model.values()]);
      should(mostSegments).above(1); // the run did use several segments
    }
  });

  it('keeps a value of undefined apart from a missing key, and a key set again in its place', () => {
    const big = new BigMap<string, number | undefined>(undefined, 2);
    big.set('a', undefined).set('b', 1).set('c', 2).set('a', 3);
    should(big.has('a')).be.true();
    should([...big.keys()]).eql(['a', 'b', 'c']);
    big.set('b', undefined);
    should(big.get('b')).be.undefined();
    should(big.has('b')).be.true();
    should(big.get('z')).be.undefined();
    should(big.has('z')).be.false();
    const seen: string[] = [];
    big.forEach((v, k) => {
      seen.push(`${k}=${v}`);
    });
    should(seen).eql(['a=3', 'b=undefined', 'c=2']);
    big.clear();
    should(big.size).equal(0);
    should([...big]).eql([]);
  });

  it('holds 200,000 entries in segments of 32,768: the same as a Map, found and deleted', () => {
    const big = new BigMap<string, number>();
    for (let i = 0; i < 200_000; i++) big.set(`c${i}`, i);
    should(big.size).equal(200_000);
    should(big.segmentCount).equal(Math.ceil(200_000 / 32_768));
    should(big.get('c0')).equal(0);
    should(big.get('c199999')).equal(199_999);
    for (let i = 0; i < 200_000; i += 2) big.delete(`c${i}`);
    should(big.size).equal(100_000);
    should(big.get('c1')).equal(1);
    should(big.has('c2')).be.false();
    let n = 0;
    let last = -1;
    for (const v of big.values()) {
      should(v).above(last);
      last = v;
      n++;
    }
    should(n).equal(100_000);
  });

  it('refuses a segment size below 2', () => {
    should(() => new BigMap(undefined, 1)).throw(/segmentSize must be an integer >= 2/);
  });
});

describe('BigSet', () => {
  it('answers as a Set, in its insertion order, under random adds and deletes', () => {
    for (let run = 0; run < 20; run++) {
      const rnd = seeded(run + 101);
      const big = new BigSet<number>(undefined, 3);
      const model = new Set<number>();
      for (let op = 0; op < 400; op++) {
        const v = Math.floor(rnd() * 40);
        if (rnd() < 0.6) {
          big.add(v);
          model.add(v);
        } else should(big.delete(v)).equal(model.delete(v));
        should(big.has(v)).equal(model.has(v));
        should(big.size).equal(model.size);
      }
      should([...big]).eql([...model]);
    }
  });
});
