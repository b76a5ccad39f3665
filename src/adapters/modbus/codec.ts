/**
 * Pure encoding and decoding of register values: data types, word order, scale, sign.
 * Nothing here talks to a device.
 */

import type { DataType, RegisterSpec, SetpointSpec, Sign, WordOrder } from './register-map';
import { registerCount } from './register-map';

export class EncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EncodeError';
  }
}

const RANGES: Record<Exclude<DataType, 'float32'>, [number, number]> = {
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
};

/** A raw number as 16-bit register words, in the given word order. */
export function toWords(
  raw: number,
  type: DataType,
  wordOrder: WordOrder = 'high-first',
): number[] {
  const buf = Buffer.alloc(4);
  switch (type) {
    case 'int16':
    case 'uint16': {
      const [lo, hi] = RANGES[type];
      const v = Math.round(raw);
      if (v < lo || v > hi) throw new EncodeError(`${raw} does not fit a ${type} (${lo} to ${hi})`);
      return [v & 0xffff];
    }
    case 'int32':
    case 'uint32': {
      const [lo, hi] = RANGES[type];
      const v = Math.round(raw);
      if (v < lo || v > hi) throw new EncodeError(`${raw} does not fit a ${type} (${lo} to ${hi})`);
      if (type === 'int32') buf.writeInt32BE(v, 0);
      else buf.writeUInt32BE(v, 0);
      break;
    }
    case 'float32':
      if (!Number.isFinite(raw)) throw new EncodeError(`${raw} is not a finite number`);
      buf.writeFloatBE(raw, 0);
      break;
  }
  const hi = buf.readUInt16BE(0);
  const lo = buf.readUInt16BE(2);
  return wordOrder === 'high-first' ? [hi, lo] : [lo, hi];
}

/** Register words as a raw number. */
export function fromWords(
  words: readonly number[],
  type: DataType,
  wordOrder: WordOrder = 'high-first',
): number {
  const n = registerCount(type);
  if (words.length < n)
    throw new EncodeError(`a ${type} needs ${n} registers, got ${words.length}`);
  if (n === 1) {
    const w = (words[0] as number) & 0xffff;
    return type === 'int16' && w > 0x7fff ? w - 0x10000 : w;
  }
  const [a, b] = [words[0] as number, words[1] as number];
  const [hi, lo] = wordOrder === 'high-first' ? [a, b] : [b, a];
  const buf = Buffer.alloc(4);
  buf.writeUInt16BE(hi & 0xffff, 0);
  buf.writeUInt16BE(lo & 0xffff, 2);
  if (type === 'int32') return buf.readInt32BE(0);
  if (type === 'uint32') return buf.readUInt32BE(0);
  return buf.readFloatBE(0);
}

/** The effective multiplier of a spec: scale x 10^sf. */
export function multiplier(spec: Pick<RegisterSpec, 'scale'>, scaleFactor = 0): number {
  return (spec.scale ?? 1) * 10 ** scaleFactor;
}

/** Engineering value -> words (raw = value / multiplier). */
export function encodeValue(value: number, spec: RegisterSpec, scaleFactor = 0): number[] {
  const raw = value / multiplier(spec, scaleFactor);
  return toWords(spec.type === 'float32' ? raw : Math.round(raw), spec.type, spec.wordOrder);
}

/** Words -> engineering value (raw x multiplier). */
export function decodeValue(words: readonly number[], spec: RegisterSpec, scaleFactor = 0): number {
  const raw = fromWords(words, spec.type, spec.wordOrder);
  const v = raw * multiplier(spec, scaleFactor);
  // Keep decimal scales tidy: 123 x 0.1 is 12.3, not 12.300000000000001.
  return Math.round(v * 1e9) / 1e9;
}

/** A signed kW setpoint (positive = charge) as the number the map's setpoint register holds. */
export function setpointToRegisterValue(
  kwSigned: number,
  spec: SetpointSpec,
  ratedKw: { charge: number; discharge: number },
): number {
  const directed = orient(kwSigned, spec.sign);
  switch (spec.unit) {
    case 'W':
      return directed * 1000;
    case 'kW':
      return directed;
    case 'percent': {
      const rated = kwSigned >= 0 ? ratedKw.charge : ratedKw.discharge;
      if (!(rated > 0))
        throw new EncodeError('a percent setpoint needs the rated power of that direction');
      return (directed / rated) * 100;
    }
  }
}

/** The inverse of `setpointToRegisterValue`: signed kW, positive = charge. */
export function registerValueToSetpoint(
  value: number,
  spec: SetpointSpec,
  ratedKw: { charge: number; discharge: number },
): number {
  let kw: number;
  switch (spec.unit) {
    case 'W':
      kw = value / 1000;
      break;
    case 'kW':
      kw = value;
      break;
    case 'percent': {
      const chargeDirection = spec.sign === 'charge-positive' ? value >= 0 : value <= 0;
      kw = (value / 100) * (chargeDirection ? ratedKw.charge : ratedKw.discharge);
      break;
    }
  }
  return orient(kw, spec.sign);
}

/** Converts between "positive = charge" and the device's convention (its own inverse). */
export function orient(v: number, sign: Sign): number {
  const r = sign === 'charge-positive' ? v : -v;
  return r === 0 ? 0 : r;
}

/**
 * Whether the words read back from a register hold `value` (engineering units) as that
 * register can hold it: for an integer type, the raw number `value / multiplier` rounded to
 * an integer, exactly; for float32, that raw number rounded to float32 (`Math.fround`),
 * within one float32 step of it (a device may round once more on its way back). The
 * tolerance of an integer register (half a step) is not one for a float: a float32 of 1 kW
 * steps holds 5.3 kW, so a read-back of 5 kW is a different value.
 */
export function readBackMatches(
  value: number,
  words: readonly number[],
  spec: RegisterSpec,
  scaleFactor = 0,
): boolean {
  const read = fromWords(words, spec.type, spec.wordOrder);
  const raw = value / multiplier(spec, scaleFactor);
  if (spec.type !== 'float32') return Math.round(raw) === read;
  const held = Math.fround(raw);
  if (!Number.isFinite(held)) return false;
  // One float32 step at this magnitude: 2^(exponent - 23); the smallest normal step below.
  const exponent = held === 0 ? -126 : Math.max(-126, Math.floor(Math.log2(Math.abs(held))));
  return Math.abs(read - held) <= 2 ** (exponent - 23);
}
