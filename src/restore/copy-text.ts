/**
 * Converts archived JSON lines to PostgreSQL COPY text rows in this process, so the server loads
 * a batch with COPY into the archived types instead of parsing JSON (json_populate_record cost
 * PostgreSQL more than the whole load did). Pure.
 *
 * Exactness: json_populate_record hands each value to the column type's input function — a
 * string's decoded text, a number's or literal's own text — and COPY hands each field to the same
 * input function with the same typmod, so the two give the same value whenever the field is that
 * text. Arrays become array literals of quoted elements (array_in, lower bound 1, as from a JSON
 * array); json/jsonb values are their source text, which json_in keeps byte for byte and jsonb_in
 * reads as json_populate_record does. Anything else — composite and domain types, json arrays,
 * a string in a json column (json_populate_record re-escapes it), a malformed or unusual line —
 * returns undefined, and the caller loads the batch through json_populate_record instead.
 */
import type { LineColumns } from '../core/batch-metadata.js';

/**
 * How a column's values convert: `scalar` (input function of a base, enum, range or multirange
 * type), `json`, `jsonb`, `array` (a true array of scalars), or `other` (never converted).
 */
export type ColumnKind = 'scalar' | 'json' | 'jsonb' | 'array' | 'other';

export interface CopyColumn {
  name: string;
  kind: ColumnKind;
}

/** One line of the batch: bytes [start, end) of `raw`, without its '\n'. */
export interface SourceLine {
  raw: Buffer;
  start: number;
  end: number;
}

/** Batch line numbers (from 0) of the two json rules, per column name. */
export interface JsonRules {
  jsonNull: readonly LineColumns[];
  jsonText: readonly LineColumns[];
}

/** Array dimensions array_in accepts (MAXDIM). */
const MAX_ARRAY_DIMS = 6;

const enum B {
  Tab = 9,
  Lf = 10,
  Cr = 13,
  Space = 32,
  Quote = 34,
  Plus = 43,
  Comma = 44,
  Minus = 45,
  Dot = 46,
  Zero = 48,
  Nine = 57,
  Colon = 58,
  UpperE = 69,
  LowerE = 101,
  Backslash = 92,
  OpenBracket = 91,
  CloseBracket = 93,
  OpenBrace = 123,
  CloseBrace = 125,
}

/** Why a line was not converted; caught inside this module only. */
class Unconvertible extends Error {}
const unconvertible = new Unconvertible('not convertible to COPY text exactly');

/** A growable output buffer of bytes. */
class ByteWriter {
  buf: Buffer;
  len = 0;
  constructor(size: number, reuse?: Buffer) {
    this.buf = reuse !== undefined && reuse.length >= size ? reuse : Buffer.allocUnsafe(Math.max(size, 1024));
  }
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  // The writes below do not grow the buffer: the caller reserves a line's worst case first (lineBound).
  byte(b: number): void {
    this.buf[this.len++] = b;
  }
  bytes(src: Buffer, start: number, end: number): void {
    const { buf } = this;
    let at = this.len;
    // Buffer.copy costs more than a loop over a few hundred bytes (argument checks per call).
    if (end - start > 512) at += src.copy(buf, at, start, end);
    else for (let p = start; p < end; p++) buf[at++] = src[p]!;
    this.len = at;
  }
  ascii(s: string): void {
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i);
  }
  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Escaping of decoded text: COPY text escapes backslash and the bytes that end a field or row;
 * inside an array literal the element is double-quoted first (`"` and `\` backslash-escaped),
 * and that literal is then COPY-escaped in turn.
 */
const enum Mode {
  Copy,
  ArrayElement,
}

function writeEscaped(out: ByteWriter, b: number, mode: Mode): void {
  if (mode === Mode.ArrayElement && (b === B.Quote || b === B.Backslash)) {
    // array_in's backslash, itself escaped for COPY.
    out.byte(B.Backslash);
    out.byte(B.Backslash);
    if (b === B.Backslash) {
      out.byte(B.Backslash);
      out.byte(B.Backslash);
    } else out.byte(b);
    return;
  }
  switch (b) {
    case B.Backslash:
      out.byte(B.Backslash);
      out.byte(B.Backslash);
      return;
    case B.Lf:
      out.ascii('\\n');
      return;
    case B.Cr:
      out.ascii('\\r');
      return;
    case B.Tab:
      out.ascii('\\t');
      return;
    default:
      out.byte(b);
  }
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  throw unconvertible;
}

/** Line scanner over one line's bytes; every method throws `unconvertible` on what it cannot read exactly. */
class Scanner {
  constructor(
    public raw: Buffer,
    public pos: number,
    public end: number,
  ) {}

  /** Reused for every line of a batch: one allocation instead of one per line. */
  reset(raw: Buffer, start: number, end: number): void {
    this.raw = raw;
    this.pos = start;
    this.end = end;
  }

  skipSpace(): void {
    const { raw, end } = this;
    while (this.pos < end) {
      const b = raw[this.pos]!;
      if (b !== B.Space && b !== B.Tab && b !== B.Cr && b !== B.Lf) return;
      this.pos++;
    }
  }

  expect(b: number): void {
    if (this.pos >= this.end || this.raw[this.pos] !== b) throw unconvertible;
    this.pos++;
  }

  peek(): number {
    if (this.pos >= this.end) throw unconvertible;
    return this.raw[this.pos]!;
  }

  /** Past a string token starting at its quote; returns whether it holds an escape. */
  skipString(): boolean {
    const { raw, end } = this;
    let escaped = false;
    let p = this.pos + 1;
    for (;;) {
      if (p >= end) throw unconvertible;
      const b = raw[p]!;
      if (b === B.Quote) break;
      // PostgreSQL's JSON lexer rejects raw control characters in strings.
      if (b < 0x20) throw unconvertible;
      if (b === B.Backslash) {
        escaped = true;
        p++;
      }
      p++;
    }
    this.pos = p + 1;
    return escaped;
  }

  /** Past a number token, checking JSON's number grammar (PostgreSQL rejects e.g. `01`, `1.`, `+1`). */
  skipNumber(): void {
    const { raw, end } = this;
    let p = this.pos;
    if (raw[p] === B.Minus) p++;
    if (p >= end) throw unconvertible;
    if (raw[p] === B.Zero) p++;
    else if (raw[p]! >= 49 && raw[p]! <= B.Nine) while (p < end && raw[p]! >= B.Zero && raw[p]! <= B.Nine) p++;
    else throw unconvertible;
    if (p < end && raw[p] === B.Dot) {
      p++;
      const digits = p;
      while (p < end && raw[p]! >= B.Zero && raw[p]! <= B.Nine) p++;
      if (p === digits) throw unconvertible;
    }
    if (p < end && (raw[p] === B.LowerE || raw[p] === B.UpperE)) {
      p++;
      if (p < end && (raw[p] === B.Plus || raw[p] === B.Minus)) p++;
      const digits = p;
      while (p < end && raw[p]! >= B.Zero && raw[p]! <= B.Nine) p++;
      if (p === digits) throw unconvertible;
    }
    this.pos = p;
  }

  /** Past a literal (`true`, `false`, `null`). */
  skipLiteral(word: string): void {
    if (this.pos + word.length > this.end) throw unconvertible;
    for (let i = 0; i < word.length; i++) if (this.raw[this.pos + i] !== word.charCodeAt(i)) throw unconvertible;
    this.pos += word.length;
  }

  /** Past any JSON value; nested objects and arrays are checked structurally (json_in/jsonb_in check them again on load). */
  skipValue(): void {
    const b = this.peek();
    if (b === B.Quote) this.skipString();
    else if (b === B.OpenBrace || b === B.OpenBracket) this.skipContainer();
    else if (b === B.Minus || (b >= B.Zero && b <= B.Nine)) this.skipNumber();
    else if (b === 116) this.skipLiteral('true');
    else if (b === 102) this.skipLiteral('false');
    else if (b === 110) this.skipLiteral('null');
    else throw unconvertible;
  }

  /**
   * Past an object or array by bracket depth, outside strings. Only for json/jsonb values and
   * keys left unread: json_in/jsonb_in check the value's text on load, and the line around it is
   * read strictly, so a malformed value still fails as json_populate_record would.
   */
  private skipContainer(): void {
    const { raw, end } = this;
    let depth = 0;
    for (let p = this.pos; p < end; p++) {
      const b = raw[p]!;
      if (b === B.Quote) {
        for (p++; p < end && raw[p] !== B.Quote; p++) if (raw[p] === B.Backslash) p++;
      } else if (b === B.OpenBrace || b === B.OpenBracket) depth++;
      else if (b === B.CloseBrace || b === B.CloseBracket) {
        if (--depth === 0) {
          this.pos = p + 1;
          return;
        }
      }
    }
    throw unconvertible;
  }
}

/**
 * Writes the decoded content of the string token at [start, end) (quotes included), escaped
 * for `mode`. JSON escapes decode as PostgreSQL's lexer decodes them in a UTF-8 database;
 * `\u0000` and unpaired surrogates, which it refuses, are left to it.
 */
function writeDecodedString(out: ByteWriter, raw: Buffer, start: number, end: number, mode: Mode, escaped = true): void {
  // Without escapes the bytes are the text: no quote, backslash or control byte can be in them (skipString).
  if (!escaped) return out.bytes(raw, start + 1, end - 1);
  for (let p = start + 1; p < end - 1; p++) {
    const b = raw[p]!;
    if (b !== B.Backslash) {
      if (b === B.Tab || b === B.Lf || b === B.Cr || (mode === Mode.ArrayElement && b === B.Quote)) writeEscaped(out, b, mode);
      else out.byte(b);
      continue;
    }
    const e = raw[++p]!;
    switch (e) {
      case B.Quote:
      case B.Backslash:
      case 47: // '/'
        writeEscaped(out, e, mode);
        break;
      case 98: // b
        out.byte(8);
        break;
      case 102: // f
        out.byte(12);
        break;
      case 110: // n
        writeEscaped(out, B.Lf, mode);
        break;
      case 114: // r
        writeEscaped(out, B.Cr, mode);
        break;
      case 116: // t
        writeEscaped(out, B.Tab, mode);
        break;
      case 117: {
        // u
        if (p + 4 >= end) throw unconvertible;
        let cp = (hexValue(raw[p + 1]!) << 12) | (hexValue(raw[p + 2]!) << 8) | (hexValue(raw[p + 3]!) << 4) | hexValue(raw[p + 4]!);
        p += 4;
        if (cp === 0 || (cp >= 0xdc00 && cp <= 0xdfff)) throw unconvertible;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (p + 6 >= end || raw[p + 1] !== B.Backslash || raw[p + 2] !== 117) throw unconvertible;
          const low = (hexValue(raw[p + 3]!) << 12) | (hexValue(raw[p + 4]!) << 8) | (hexValue(raw[p + 5]!) << 4) | hexValue(raw[p + 6]!);
          if (low < 0xdc00 || low > 0xdfff) throw unconvertible;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          p += 6;
        }
        writeCodePoint(out, cp, mode);
        break;
      }
      default:
        throw unconvertible;
    }
  }
}

function writeCodePoint(out: ByteWriter, cp: number, mode: Mode): void {
  if (cp < 0x80) writeEscaped(out, cp, mode);
  else if (cp < 0x800) {
    out.byte(0xc0 | (cp >> 6));
    out.byte(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out.byte(0xe0 | (cp >> 12));
    out.byte(0x80 | ((cp >> 6) & 0x3f));
    out.byte(0x80 | (cp & 0x3f));
  } else {
    out.byte(0xf0 | (cp >> 18));
    out.byte(0x80 | ((cp >> 12) & 0x3f));
    out.byte(0x80 | ((cp >> 6) & 0x3f));
    out.byte(0x80 | (cp & 0x3f));
  }
}

/** Source text of a json/jsonb value, COPY-escaped (a value may hold raw whitespace between tokens). */
function writeRawEscaped(out: ByteWriter, raw: Buffer, start: number, end: number): void {
  const { buf } = out;
  let at = out.len;
  for (let p = start; p < end; p++) {
    const b = raw[p]!;
    if (b === B.Backslash) {
      buf[at++] = B.Backslash;
      buf[at++] = B.Backslash;
    } else if (b === B.Tab || b === B.Lf || b === B.Cr) {
      buf[at++] = B.Backslash;
      buf[at++] = b === B.Tab ? 116 : b === B.Lf ? 110 : 114;
    } else buf[at++] = b;
  }
  out.len = at;
}

/**
 * A JSON array as an array literal with every element quoted: `[["a",null],["b","c"]]` →
 * `{{"a",NULL},{"b","c"}}`. Only rectangular arrays with every leaf at the same depth, as
 * json_populate_record builds them; anything else it may read differently, or refuse.
 */
function writeArrayLiteral(out: ByteWriter, raw: Buffer, start: number, end: number): void {
  const s = new Scanner(raw, start, end);
  // Dimensions: the nesting depth of the first leaf.
  let dims = 0;
  for (let p = start; p < end; p++) {
    const b = raw[p]!;
    if (b === B.OpenBracket) dims++;
    else if (b !== B.Space && b !== B.Tab && b !== B.Cr && b !== B.Lf) break;
  }
  if (dims > MAX_ARRAY_DIMS) throw unconvertible;
  const sizes: number[] = [];
  const walk = (depth: number): void => {
    s.expect(B.OpenBracket);
    out.byte(B.OpenBrace);
    s.skipSpace();
    let count = 0;
    if (s.peek() === B.CloseBracket) {
      // Only `[]` as the whole value is the empty array.
      if (dims !== 1) throw unconvertible;
      s.pos++;
    } else {
      for (;;) {
        s.skipSpace();
        if (count > 0) out.byte(B.Comma);
        const isArray = s.peek() === B.OpenBracket;
        if (isArray !== depth < dims - 1) throw unconvertible;
        if (isArray) walk(depth + 1);
        else writeElement(out, s);
        count++;
        s.skipSpace();
        const next = s.peek();
        s.pos++;
        if (next === B.CloseBracket) break;
        if (next !== B.Comma) throw unconvertible;
      }
    }
    out.byte(B.CloseBrace);
    if (sizes[depth] === undefined) sizes[depth] = count;
    else if (sizes[depth] !== count) throw unconvertible;
  };
  walk(0);
  s.skipSpace();
  if (s.pos !== end) throw unconvertible;
}

function writeElement(out: ByteWriter, s: Scanner): void {
  const b = s.peek();
  const start = s.pos;
  if (b === B.Quote) {
    const escaped = s.skipString();
    out.byte(B.Quote);
    writeDecodedString(out, s.raw, start, s.pos, Mode.ArrayElement, escaped);
    out.byte(B.Quote);
    return;
  }
  if (b === 110) {
    s.skipLiteral('null');
    out.ascii('NULL');
    return;
  }
  if (b === B.OpenBrace) throw unconvertible;
  s.skipValue();
  out.byte(B.Quote);
  out.bytes(s.raw, start, s.pos);
  out.byte(B.Quote);
}

/** Per column: lines whose value a json rule sets, as a set of batch line numbers. */
function ruleLines(entries: readonly LineColumns[], columns: readonly CopyColumn[]): Array<Set<number> | undefined> {
  const out: Array<Set<number> | undefined> = columns.map(() => undefined);
  for (const e of entries) {
    for (const name of e.columns) {
      const i = columns.findIndex((c) => c.name === name);
      if (i === -1) continue;
      (out[i] ??= new Set()).add(e.line);
    }
  }
  return out;
}

/**
 * Key columns whose manifest check can be done on the field text: types whose output is exactly
 * the input text for every text JSON can carry (an integer token other than `-0`, an unescaped
 * string), so text equal to the manifest's means `key::text` equal to it. undefined: the check
 * stays in SQL (restore-sql.ts manifestMismatchSql).
 */
export function textCheckedKey(columns: readonly { name: string; type: string }[], keyColumns: readonly string[]): Array<{ index: number; integer: boolean }> | undefined {
  const out: Array<{ index: number; integer: boolean }> = [];
  for (const k of keyColumns) {
    const index = columns.findIndex((c) => c.name === k);
    const type = columns[index]?.type;
    if (type === 'bigint' || type === 'integer' || type === 'smallint') out.push({ index, integer: true });
    else if (type === 'text') out.push({ index, integer: false });
    else return undefined;
  }
  return out;
}

export interface Converted {
  /** COPY text rows `n \t col… \n`, n numbering the lines from 0 (or without n). */
  copy: Buffer;
  /** Every line's key text equals its manifest entry (`manifest` given); false: let SQL decide. */
  keysMatch: boolean;
  /** The buffer `copy` lies in: pass it as `reuse` to the next conversion once `copy` is consumed. */
  buffer: Buffer;
}

/** Worst-case output bytes of one line: escapes at most double a value, plus per-column framing. */
function lineBound(length: number, columns: number): number {
  return 2 * length + 6 * columns + 16;
}

/**
 * The batch's lines as COPY text rows (led by their line number unless `lineNumbers` is false),
 * or undefined when any line or column cannot be converted exactly. With `manifest` (key columns from textCheckedKey, keys per line), also whether every
 * line's key is its manifest entry.
 */
export function convertToCopyText(
  lines: readonly SourceLine[],
  columns: readonly CopyColumn[],
  rules: JsonRules,
  manifest?: { key: ReadonlyArray<{ index: number; integer: boolean }>; keys: ReadonlyArray<readonly string[]> },
  lineNumbers = true,
  reuse?: Buffer,
): Converted | undefined {
  if (columns.some((c) => c.kind === 'other')) return undefined;
  const names = columns.map((c) => Buffer.from(c.name, 'utf8'));
  const byName = new Map(columns.map((c, i) => [c.name, i]));
  const nulls = ruleLines(rules.jsonNull, columns);
  const texts = ruleLines(rules.jsonText, columns);
  let bytes = 0;
  for (const l of lines) bytes += l.end - l.start;
  const out = new ByteWriter(Math.ceil(bytes * 1.1) + lines.length * 16, reuse);
  const starts = new Int32Array(columns.length);
  const ends = new Int32Array(columns.length);
  const escapes = new Uint8Array(columns.length);
  let keysMatch = manifest !== undefined;
  const s = new Scanner(Buffer.alloc(0), 0, 0);
  try {
    for (let n = 0; n < lines.length; n++) {
      const { raw, start, end } = lines[n]!;
      out.ensure(lineBound(end - start, columns.length));
      starts.fill(-1);
      s.reset(raw, start, end);
      s.skipSpace();
      s.expect(B.OpenBrace);
      s.skipSpace();
      if (s.peek() !== B.CloseBrace) {
        for (let expected = 0; ; expected++) {
          s.skipSpace();
          if (s.peek() !== B.Quote) throw unconvertible;
          const keyStart = s.pos;
          const escapedKey = s.skipString();
          const i = escapedKey ? byName.get(parseEscapedKey(raw.toString('utf8', keyStart, s.pos))) : keyIndex(raw, keyStart + 1, s.pos - 1, names, expected);
          // An unknown or repeated key: json_populate_record's reading of it is left to PostgreSQL.
          if (i === undefined || starts[i] !== -1) throw unconvertible;
          s.skipSpace();
          s.expect(B.Colon);
          s.skipSpace();
          starts[i] = s.pos;
          if (s.peek() === B.Quote) escapes[i] = s.skipString() ? 1 : 0;
          else s.skipValue();
          ends[i] = s.pos;
          s.skipSpace();
          const b = s.peek();
          s.pos++;
          if (b === B.CloseBrace) break;
          if (b !== B.Comma) throw unconvertible;
        }
      } else s.pos++;
      s.skipSpace();
      if (s.pos !== end) throw unconvertible;
      if (keysMatch) keysMatch = keyMatches(raw, starts, ends, escapes, manifest!.key, manifest!.keys[n]);

      if (lineNumbers) writeDigits(out, n);
      for (let i = 0; i < columns.length; i++) {
        if (lineNumbers || i > 0) out.byte(B.Tab);
        const kind = columns[i]!.kind;
        const vs = starts[i]!;
        const ve = ends[i]!;
        // The json rules first, in the order json_populate_record's path applies them (restore-sql.ts).
        if (nulls[i]?.has(n)) {
          out.ascii('null');
          continue;
        }
        if (texts[i]?.has(n)) {
          // The value's exact json text, written as a JSON string.
          if (vs === -1 || raw[vs] !== B.Quote) throw unconvertible;
          writeDecodedString(out, raw, vs, ve, Mode.Copy, escapes[i] === 1);
          continue;
        }
        const first = vs === -1 ? 110 : raw[vs]!;
        if (first === 110) {
          // null, or a missing key: SQL NULL.
          out.ascii('\\N');
          continue;
        }
        if (kind === 'json' || kind === 'jsonb') {
          // json_populate_record re-escapes a string for a json column; jsonb reads both alike.
          if (first === B.Quote && kind === 'json') throw unconvertible;
          writeRawEscaped(out, raw, vs, ve);
        } else if (first === B.Quote) writeDecodedString(out, raw, vs, ve, Mode.Copy, escapes[i] === 1);
        else if (kind === 'array') {
          // A string is an array literal (above); anything but a JSON array is left to PostgreSQL to refuse.
          if (first !== B.OpenBracket) throw unconvertible;
          writeArrayLiteral(out, raw, vs, ve);
        } else if (first === B.OpenBracket || first === B.OpenBrace) throw unconvertible;
        else out.bytes(raw, vs, ve);
      }
      out.byte(B.Lf);
    }
  } catch (error) {
    if (error instanceof Unconvertible) return undefined;
    throw error;
  }
  return { copy: out.result(), keysMatch, buffer: out.buf };
}

/** An escaped member name as a string; malformed (a hand-made line) → PostgreSQL's reading, via the json path. */
function parseEscapedKey(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    throw unconvertible;
  }
}

/** A non-negative integer's decimal digits, without building a string per line. */
function writeDigits(out: ByteWriter, n: number): void {
  if (n >= 10) writeDigits(out, Math.floor(n / 10));
  out.byte(B.Zero + (n % 10));
}

/** Whether bytes [start, end) are the UTF-8 of `text`; ASCII compared in place, the rest decoded. */
function bytesEqual(raw: Buffer, start: number, end: number, text: string): boolean {
  if (end - start < text.length) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return raw.toString('utf8', start, end) === text;
    if (raw[start + i] !== c) return false;
  }
  return end - start === text.length;
}

function keyMatches(raw: Buffer, starts: Int32Array, ends: Int32Array, escapes: Uint8Array, key: ReadonlyArray<{ index: number; integer: boolean }>, expected: readonly string[] | undefined): boolean {
  if (expected === undefined || expected.length !== key.length) return false;
  for (let k = 0; k < key.length; k++) {
    const { index, integer } = key[k]!;
    const vs = starts[index]!;
    if (vs === -1) return false;
    const text = expected[k]!;
    if (integer) {
      // Digits with an optional minus, not "-0": int8in reads "-0", "1.0" or "1e3" to another text, or refuses it.
      if (!/^-?[1-9][0-9]*$|^0$/.test(text) || !bytesEqual(raw, vs, ends[index]!, text)) return false;
    } else if (raw[vs] !== B.Quote || escapes[index] === 1 || !bytesEqual(raw, vs + 1, ends[index]! - 1, text)) return false;
  }
  return true;
}

/** Column index of an unescaped key: the expected column first (keys come in column order), else a search. */
function keyIndex(raw: Buffer, start: number, end: number, names: readonly Buffer[], expected: number): number | undefined {
  const len = end - start;
  const matches = (i: number): boolean => {
    const name = names[i]!;
    if (name.length !== len) return false;
    for (let k = 0; k < len; k++) if (name[k] !== raw[start + k]) return false;
    return true;
  };
  if (expected < names.length && matches(expected)) return expected;
  for (let i = 0; i < names.length; i++) if (matches(i)) return i;
  return undefined;
}
