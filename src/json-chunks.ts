/**
 * `JSON.parse` and `JSON.stringify` of large texts in pieces. Parse: for the sliced parse of
 * a schedule (the JSON of a schedule of 10,000 assets is 4 MB; `JSON.parse` of it holds the
 * event loop for tens of ms) and of a saved state (read from its file's bytes, never decoded
 * whole: `parseJsonBytesSteps`). A container whose text is large is split into its elements
 * by a scan that follows strings and nesting; groups of small elements are parsed by
 * `JSON.parse` as the scan reaches them. The scan yields at checkpoints (see chunks.ts). On anything it does not accept, it gives up and
 * the whole text goes to `JSON.parse`, so a bad text fails with `JSON.parse`'s own error, and
 * a good one gives what `JSON.parse` gives. Stringify: the same text as `JSON.stringify`,
 * large arrays 1,000 elements at a time, in pieces (`jsonPieces`) that the sliced form
 * (`stringifySteps`) and the stores' file writes (`writeJson` in store.ts) share.
 */

import { CHUNK, type Steps } from './chunks';

/** Texts up to this many characters are parsed in one piece by JSON.parse. */
const PIECE = 1 << 16;

/** Thrown by the scan on text it does not take apart; never leaves this module. */
class GiveUp extends Error {}

/**
 * What the scan reads: a string's characters, or the bytes of UTF-8 text (a file read into
 * a Buffer, never decoded whole: JSON's structure is ASCII, and a byte of a multi-byte
 * character is never one of its marks).
 */
interface Source {
  readonly length: number;
  code(i: number): number;
  text(a: number, b: number): string;
}

class StringSource implements Source {
  readonly length: number;
  constructor(private readonly s: string) {
    this.length = s.length;
  }
  code(i: number): number {
    return this.s.charCodeAt(i);
  }
  text(a: number, b: number): string {
    return this.s.slice(a, b);
  }
}

class BytesSource implements Source {
  readonly length: number;
  constructor(private readonly b: Buffer) {
    this.length = b.length;
  }
  code(i: number): number {
    return this.b[i] as number;
  }
  text(a: number, b: number): string {
    return this.b.toString('utf8', a, b);
  }
}

/** `JSON.parse(text)`, in pieces when the text is large. */
export function* parseJsonSteps(text: string): Steps<unknown> {
  if (text.length <= PIECE) return JSON.parse(text);
  return yield* parseSource(new StringSource(text), () => JSON.parse(text));
}

/**
 * `JSON.parse` of the UTF-8 text in `bytes` (a file read whole), in pieces: the text is
 * decoded a piece at a time, never as one string (decoding 70 MB at once holds the event
 * loop for hundreds of ms). On text it does not take apart, the whole is decoded and goes
 * to `JSON.parse`, for its own error.
 */
export function* parseJsonBytesSteps(
  bytes: Buffer,
  options: BytesParseOptions = {},
): Steps<unknown> {
  const whole = () => JSON.parse(bytes.toString('utf8'));
  if (bytes.length <= PIECE) return whole();
  // A byte-order mark is not JSON (JSON.parse of the decoded text refuses it too).
  return yield* parseSource(new BytesSource(bytes), whole, options.float64 === true);
}

export interface BytesParseOptions {
  /**
   * A large array (over 64 KB of text) of numbers only is given as a Float64Array of them,
   * not an Array: its values are kept in the pieces parsed, then copied once into memory of
   * the right size, never grown (an Array of 960,000 numbers grown element by element held
   * the loop 45–64 ms a growth on the 2-core machine). For readers that take either (a
   * stored plan's columns: `readPlan`).
   */
  float64?: boolean;
}

function* parseSource(t: Source, whole: () => unknown, float64 = false): Steps<unknown> {
  try {
    const start = skipSpace(t, 0, t.length);
    const end = trimEnd(t, start, t.length);
    return yield* value(t, start, end, float64);
  } catch (err) {
    if (!(err instanceof GiveUp) && !(err instanceof SyntaxError)) throw err;
  }
  return whole();
}

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function skipSpace(t: Source, i: number, end: number): number {
  while (i < end && isSpace(t.code(i))) i++;
  return i;
}

function trimEnd(t: Source, start: number, end: number): number {
  while (end > start && isSpace(t.code(end - 1))) end--;
  return end;
}

/** The value in t[start, end) (no space around it). */
function* value(t: Source, start: number, end: number, float64: boolean): Steps<unknown> {
  if (end - start <= PIECE) return JSON.parse(t.text(start, end));
  const open = t.code(start);
  const isArray = open === 91; /* [ */
  if (!isArray && open !== 123 /* { */) return JSON.parse(t.text(start, end)); // a long string
  if (t.code(end - 1) !== (isArray ? 93 : 125)) throw new GiveUp();
  return yield* container(t, start + 1, end - 1, isArray, float64);
}

/** Sets `key` as JSON.parse does: "__proto__" is an own property, not the prototype. */
function define(obj: Record<string, unknown>, key: string, v: unknown): void {
  Object.defineProperty(obj, key, {
    value: v,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * The array or object whose inside is t[start, end), scanned in order (following strings
 * and nesting): consecutive small elements (an object's members: key and value) are parsed
 * together by JSON.parse, about PIECE characters at a time, as the scan reaches them; a
 * large one is taken apart in turn. Nothing is kept per element (an array of 600,000
 * numbers makes no list of their places). Throws GiveUp on a shape it does not take apart
 * (JSON.parse of the whole then gives the result or the error).
 */
function* container(
  t: Source,
  start: number,
  end: number,
  isArray: boolean,
  float64: boolean,
): Steps<unknown> {
  const out: unknown[] | Record<string, unknown> = isArray ? [] : {};
  let i = skipSpace(t, start, end);
  if (i === end) return out;
  // `float64`: an array's pieces are kept, and how many values, and whether all are numbers.
  const pieces: (unknown[] | Float64Array)[] | null = float64 && isArray ? [] : null;
  let count = 0;
  let numbers = true;
  /** The group of small elements not parsed yet: t[group, groupEnd); -1: none. */
  let group = -1;
  let groupEnd = -1;
  const parseGroup = () => {
    const text = t.text(group, groupEnd);
    if (pieces !== null) {
      const values = JSON.parse(`[${text}]`) as unknown[];
      count += values.length;
      let all = true;
      for (let k = 0; all && k < values.length; k++) if (typeof values[k] !== 'number') all = false;
      // Numbers are kept outside the heap (the parsed array dies young: nothing for the
      // scavenges to copy); anything else as it is.
      if (all) pieces.push(Float64Array.from(values as number[]));
      else {
        numbers = false;
        pieces.push(values);
      }
    } else if (isArray) {
      const values = JSON.parse(`[${text}]`) as unknown[];
      for (let k = 0; k < values.length; k++) (out as unknown[]).push(values[k]);
    } else {
      const members = JSON.parse(`{${text}}`) as Record<string, unknown>;
      for (const key of Object.keys(members))
        define(out as Record<string, unknown>, key, members[key]);
    }
    group = -1;
  };
  let from = i; // where the element (an object's member: its key) begins
  let colon = -1; // an object's member: where its ':' is
  let depth = 0;
  let mark = i;
  for (;;) {
    if (i < end) {
      const c = t.code(i);
      if (c === 34 /* " */) {
        i++;
        while (i < end) {
          const d = t.code(i);
          if (d === 92 /* \ */) i += 2;
          else if (d === 34) break;
          else i++;
        }
        if (i >= end) throw new GiveUp();
        i++;
        continue;
      }
      if (c === 91 || c === 123) depth++;
      else if (c === 93 || c === 125) {
        if (--depth < 0) throw new GiveUp();
      } else if (depth === 0 && c === 58 /* : */) {
        if (isArray || colon >= 0) throw new GiveUp();
        colon = i;
      }
      if (depth > 0 || c !== 44 /* , */) {
        i++;
        if (i - mark >= CHUNK * 16) {
          mark = i;
          yield;
        }
        continue;
      }
    } else if (depth !== 0) throw new GiveUp();
    // An element ends at i (a comma at depth 0, or the end).
    const elemEnd = trimEnd(t, from, i);
    if (elemEnd <= from) throw new GiveUp(); // empty: a stray or trailing comma
    if (!isArray && colon < 0) throw new GiveUp();
    const valueStart = isArray ? from : skipSpace(t, colon + 1, elemEnd);
    if (valueStart >= elemEnd) throw new GiveUp();
    const first = t.code(valueStart);
    if (elemEnd - valueStart > PIECE && (first === 91 || first === 123)) {
      // A large element: the small ones before it, then it, taken apart.
      if (group >= 0) parseGroup();
      const v = yield* value(t, valueStart, elemEnd, float64);
      if (pieces !== null) {
        pieces.push([v]);
        count++;
        numbers = false;
      } else if (isArray) (out as unknown[]).push(v);
      else {
        if (t.code(from) !== 34) throw new GiveUp();
        const key = JSON.parse(t.text(from, trimEnd(t, from, colon))) as string;
        define(out as Record<string, unknown>, key, v);
      }
    } else {
      if (group < 0) group = from;
      groupEnd = elemEnd;
      if (groupEnd - group >= PIECE) {
        parseGroup();
        yield;
      }
    }
    if (i >= end) break;
    i = skipSpace(t, i + 1, end);
    if (i === end) throw new GiveUp(); // a trailing comma
    from = i;
    colon = -1;
  }
  if (group >= 0) parseGroup();
  if (pieces === null) return out;
  if (numbers) {
    const values = new Float64Array(count);
    let at = 0;
    for (const piece of pieces) {
      values.set(piece as Float64Array, at);
      at += piece.length;
      yield;
    }
    return values;
  }
  for (const piece of pieces) {
    for (let k = 0; k < piece.length; k++) (out as unknown[]).push(piece[k]);
    yield;
  }
  return out;
}

/** Elements of a large array stringified at once, between two checkpoints. */
const JSON_SLICE = 1000;

const skipped = (v: unknown): boolean =>
  v === undefined || typeof v === 'function' || typeof v === 'symbol';

/**
 * The text `JSON.stringify(value)` gives, made in pieces: plain objects and arrays of the
 * top levels piece by piece, a large array 1,000 elements at a time, with a checkpoint after
 * each piece (for the timeline's snapshot of 192,000 commands, 42 MB).
 */
export function* stringifySteps(value: unknown): Steps<string> {
  const out: string[] = [];
  for (const piece of jsonPieces(value)) {
    out.push(piece);
    yield;
  }
  return out.join('');
}

/**
 * The pieces of the text `JSON.stringify(value)` gives, in order: plain objects and arrays
 * of the top levels piece by piece, a large array JSON_SLICE elements at a time. Joined, the
 * very text of `JSON.stringify`; one piece is never more than a slice of a large array. The
 * one way of turning a large document into text in pieces: `stringifySteps` (with
 * checkpoints) and the stores' `writeJson` (to a file) both read it.
 */
export function* jsonPieces(value: unknown, depth = 0): Generator<string, void, void> {
  if (depth < 4 && Array.isArray(value) && value.length > JSON_SLICE) {
    for (let i = 0; i < value.length; i += JSON_SLICE) {
      const part: string[] = [];
      for (let j = i; j < Math.min(value.length, i + JSON_SLICE); j++) {
        const v = value[j];
        part.push(skipped(v) ? 'null' : (JSON.stringify(v) ?? 'null'));
      }
      yield (i === 0 ? '[' : ',') + part.join(',');
    }
    yield ']';
    return;
  }
  if (
    depth < 4 &&
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype &&
    !('toJSON' in value)
  ) {
    let first = true;
    yield '{';
    for (const [k, v] of Object.entries(value)) {
      if (skipped(v)) continue;
      yield `${first ? '' : ','}${JSON.stringify(k)}:`;
      first = false;
      yield* jsonPieces(v, depth + 1);
    }
    yield '}';
    return;
  }
  yield JSON.stringify(value) ?? 'null';
}
