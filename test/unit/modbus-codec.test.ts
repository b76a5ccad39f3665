import should from 'should';
import { encodeValue, readBackMatches, toWords } from '../../src/adapters/modbus/codec';
import type { RegisterSpec } from '../../src/adapters/modbus/register-map';

// readBackMatches: whether a register read back holds the value written, as its type can hold
// it. Pure: words in, yes or no out.

/** The float32 next to a positive `x` (one step up, or down with `dir` -1). */
function nextFloat32(x: number, dir: 1 | -1 = 1): number {
  const buf = Buffer.alloc(4);
  buf.writeFloatBE(x, 0);
  buf.writeInt32BE(buf.readInt32BE(0) + dir, 0);
  return buf.readFloatBE(0);
}

describe('readBackMatches (codec.ts)', () => {
  describe('float32', () => {
    const kw: RegisterSpec = { address: 40, type: 'float32' };

    it('matches what was written, as float32 holds it', () => {
      for (const v of [5.3, 0, -12.345, 1e-3, 49.999, 123456.789]) {
        should(readBackMatches(v, encodeValue(v, kw), kw)).be.true();
        should(readBackMatches(v, toWords(Math.fround(v), 'float32'), kw)).be.true();
      }
    });

    it('refuses a value that is not the one written, however close to a whole unit', () => {
      // With a tolerance of half a register step (1 kW), 5 would pass for 5.3: it must not.
      should(readBackMatches(5.3, toWords(5, 'float32'), kw)).be.false();
      should(readBackMatches(55.3, toWords(55, 'float32'), kw)).be.false();
      should(readBackMatches(12345.6, toWords(12346, 'float32'), kw)).be.false();
      should(readBackMatches(-3, toWords(3, 'float32'), kw)).be.false();
      should(readBackMatches(0.5, toWords(0.4, 'float32'), kw)).be.false();
    });

    it('allows one float32 step (a device that rounds once more), not two', () => {
      const v = 5.3;
      const one = nextFloat32(Math.fround(v));
      const two = nextFloat32(one);
      should(readBackMatches(v, toWords(one, 'float32'), kw)).be.true();
      should(readBackMatches(v, toWords(nextFloat32(Math.fround(v), -1), 'float32'), kw)).be.true();
      should(readBackMatches(v, toWords(two, 'float32'), kw)).be.false();
    });

    it('reads the word order and the scale of the spec', () => {
      const low: RegisterSpec = { address: 40, type: 'float32', wordOrder: 'low-first', scale: 10 };
      // 53 W in a register of 10 W units holds 5.3.
      should(readBackMatches(53, toWords(5.3, 'float32', 'low-first'), low)).be.true();
      should(readBackMatches(53, toWords(5.3, 'float32', 'high-first'), low)).be.false();
      should(readBackMatches(53, toWords(5, 'float32', 'low-first'), low)).be.false();
    });
  });

  describe('int16 with a scale', () => {
    const tenths: RegisterSpec = { address: 100, type: 'int16', scale: 0.1 };

    it('matches the value rounded to the register step, exactly', () => {
      should(readBackMatches(12.34, [123], tenths)).be.true(); // the register holds 12.3
      should(readBackMatches(12.36, [124], tenths)).be.true();
      should(readBackMatches(12.34, [124], tenths)).be.false();
      should(readBackMatches(12.3, [122], tenths)).be.false();
      should(readBackMatches(-0.5, [0xfffb], tenths)).be.true(); // -5 as int16
      should(readBackMatches(-0.5, [5], tenths)).be.false();
    });

    it('applies a SunSpec scale factor', () => {
      const w: RegisterSpec = { address: 100, type: 'int16', scaleFactorAddress: 120 };
      should(readBackMatches(1234.5, [12345], w, -1)).be.true();
      should(readBackMatches(1234.5, [12344], w, -1)).be.false();
      should(readBackMatches(9000, [900], w, 1)).be.true();
      // The words of 9000 W at SF 0 are not 9000 W at SF 1 (90 kW).
      should(readBackMatches(9000, [9000], w, 1)).be.false();
    });
  });
});
