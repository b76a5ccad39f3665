/**
 * `JSON.parse` and `JSON.stringify` of large texts in pieces. Parse: for the sliced parse of
 * a schedule (the JSON of a schedule of 10,000 assets is 4 MB; `JSON.parse` of it holds the
 * event loop for tens of ms). A container whose text is large is split into its elements by
 * a scan that follows strings and nesting; each small element is parsed by `JSON.parse`. The
 * scan yields at checkpoints (see chunks.ts). On anything it does not accept, it gives up and
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
export function* parseJsonBytesSteps(bytes: Buffer): Steps<unknown> {
  const whole = () => JSON.parse(bytes.toString('utf8'));
  if (bytes.length <= PIECE) return whole();
  // A byte-order mark is not JSON (JSON.parse of the decoded text refuses it too).
  return yield* parseSource(new BytesSource(bytes), whole);
}

function* parseSource(t: Source, whole: () => unknown): Steps<unknown> {
  try {
    const start = skipSpace(t, 0, t.length);
    const end = trimEnd(t, start, t.length);
    return yield* value(t, start, end);
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
function* value(t: Source, start: number, end: number): Steps<unknown> {
  if (end - start <= PIECE) return JSON.parse(t.text(start, end));
  const open = t.code(start);
  const isArray = open === 91; /* [ */
  if (!isArray && open !== 123 /* { */) return JSON.parse(t.text(start, end)); // a long string
  if (t.code(end - 1) !== (isArray ? 93 : 125)) throw new GiveUp();
  const parts = yield* elements(t, start + 1, end - 1, !isArray);
  const out: unknown[] | Record<string, unknown> = isArray ? [] : {};
  // Consecutive small elements (object members: key and value) are parsed together, up to
  // PIECE characters at a time; a large one is taken apart in turn.
  const step = isArray ? 1 : 2;
  let k = 0;
  while (k < parts.length) {
    const first = (parts[k] as [number, number])[0];
    let last = k + step - 1;
    while (
      last + step < parts.length &&
      (parts[last + step] as [number, number])[1] - first <= PIECE
    )
      last += step;
    const lastEnd = (parts[last] as [number, number])[1];
    if (last === k + step - 1 && lastEnd - first > PIECE) {
      // One large element.
      const [va, vb] = parts[last] as [number, number];
      const v = yield* value(t, va, vb);
      if (isArray) (out as unknown[]).push(v);
      else {
        const [ka, kb] = parts[k] as [number, number];
        if (t.code(ka) !== 34) throw new GiveUp();
        define(out as Record<string, unknown>, JSON.parse(t.text(ka, kb)) as string, v);
      }
    } else if (isArray) {
      const group = JSON.parse(`[${t.text(first, lastEnd)}]`) as unknown[];
      for (const v of group) (out as unknown[]).push(v);
    } else {
      const group = JSON.parse(`{${t.text(first, lastEnd)}}`) as Record<string, unknown>;
      for (const key of Object.keys(group)) define(out as Record<string, unknown>, key, group[key]);
    }
    k = last + 1;
    yield;
  }
  return out;
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
 * The element ranges of an array's or object's inside t[start, end), space trimmed; for
 * an object, key and value ranges alternate. Throws GiveUp on a shape it does not expect.
 */
function* elements(
  t: Source,
  start: number,
  end: number,
  isObject: boolean,
): Steps<[number, number][]> {
  const out: [number, number][] = [];
  let i = skipSpace(t, start, end);
  if (i === end) return out;
  let from = i;
  let depth = 0;
  let expectKey = isObject;
  let mark = i;
  while (i < end) {
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
    } else if (depth === 0 && (c === 44 /* , */ || (c === 58 /* : */ && expectKey))) {
      if (isObject && (c === 58) !== expectKey) throw new GiveUp();
      out.push([from, trimEnd(t, from, i)]);
      if (isObject) expectKey = !expectKey;
      i = skipSpace(t, i + 1, end);
      from = i;
      if (i === end) throw new GiveUp(); // a trailing comma or colon
      continue;
    } else if (depth === 0 && c === 58) {
      throw new GiveUp();
    }
    i++;
    if (i - mark >= CHUNK * 16) {
      mark = i;
      yield;
    }
  }
  if (depth !== 0) throw new GiveUp();
  out.push([from, trimEnd(t, from, end)]);
  if (isObject && (expectKey || out.length % 2 !== 0)) throw new GiveUp();
  for (const [a, b] of out) if (a >= b) throw new GiveUp();
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
