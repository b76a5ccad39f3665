// The binary heap behind due commands and deadlines (src/heap.ts): pops come out in order
// for any interleaving of pushes and pops, ties in the order the comparison says.
import should from 'should';
import { Heap } from '../../src/heap';

describe('Heap', () => {
  it('pops in order under interleaved pushes and pops (seeded random runs, against a sort)', () => {
    let x = 7;
    const rnd = () => {
      x = (x * 16807) % 2147483647;
      return x / 2147483647;
    };
    for (let run = 0; run < 50; run++) {
      // Ordered by `at`, ties by `seq` (as the due heap): a total order.
      const less = (a: { at: number; seq: number }, b: { at: number; seq: number }) =>
        a.at < b.at || (a.at === b.at && a.seq < b.seq);
      const heap = new Heap(less);
      const model: { at: number; seq: number }[] = [];
      let seq = 0;
      for (let op = 0; op < 300; op++) {
        if (rnd() < 0.6 || model.length === 0) {
          const item = { at: Math.floor(rnd() * 20), seq: seq++ };
          heap.push(item);
          model.push(item);
        } else {
          model.sort((a, b) => a.at - b.at || a.seq - b.seq);
          should(heap.peek()).equal(model[0]);
          should(heap.pop()).equal(model.shift());
        }
        should(heap.size).equal(model.length);
      }
      model.sort((a, b) => a.at - b.at || a.seq - b.seq);
      for (const m of model) should(heap.pop()).equal(m);
      should(heap.pop()).be.undefined();
    }
  });

  it('retain keeps the chosen items, still in order', () => {
    const heap = new Heap<number>((a, b) => a < b);
    for (const n of [5, 3, 9, 1, 7, 2, 8]) heap.push(n);
    heap.retain((n) => n % 2 === 1);
    const out: number[] = [];
    for (let n = heap.pop(); n !== undefined; n = heap.pop()) out.push(n);
    should(out).eql([1, 3, 5, 7, 9]);
  });
});
