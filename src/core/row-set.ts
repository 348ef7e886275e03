/**
 * The rows of one batch as the server rendered them, and the pure operations on them. A RowSet
 * is one UTC day of one page: the JSON lines, each followed by '\n' (no line contains a raw
 * newline), as UTF-8 bytes — the data object's body before compression — and per line its xmin
 * and key, in (timestamp, key) order.
 */
/** A row's place in (timestamp, primary key) order, as the server's text. */
export interface RowPosition {
  ts: string;
  key: string[];
}

/** Per-line flags for json/jsonb columns, by index into plan.columns (docs/format.md, "The two json rules"). */
export interface LineFlags {
  line: number;
  jsonNull: number[];
  jsonText: number[];
}

export interface RowSet {
  day: string;
  /** HHMMSSffffff of the earliest row (names the object). */
  firstTimeOfDay: string;
  count: number;
  /** UTF-8, each line followed by '\n'. Bytes, not a string: see db/binary-copy.ts. */
  lines: Buffer;
  xmins: string[];
  keys: string[][];
  /** Bounds of the rows' timestamps and keys: exact when read, still bounds after rows are cut out. */
  firstTs: string;
  lastTs: string;
  minKey: string[];
  maxKey: string[];
  flags: LineFlags[];
}

/** Items of the kept lines, renumbered: `kept` holds the surviving original line numbers in order. */
export function reindexLines<T extends { line: number }>(items: readonly T[], kept: readonly number[]): T[] {
  const newIndex = new Map(kept.map((original, i) => [original, i]));
  return items.filter((item) => newIndex.has(item.line)).map((item) => ({ ...item, line: newIndex.get(item.line)! }));
}

/**
 * One string per primary key, for set comparisons of keys of one table (all of one arity): the
 * value itself for a one-column key (no JSON.stringify of 1,000s of keys per batch), JSON otherwise.
 */
export function keyId(key: readonly string[]): string {
  return key.length === 1 ? key[0]! : JSON.stringify(key);
}

/** The RowSet without the rows whose line numbers are not in `kept` (ascending). */
export function subsetRowSet(rows: RowSet, kept: readonly number[]): RowSet {
  const lines = splitLines(rows.lines);
  return {
    ...rows,
    count: kept.length,
    lines: joinLines(kept.map((i) => lines[i]!)),
    xmins: kept.map((i) => rows.xmins[i]!),
    keys: kept.map((i) => rows.keys[i]!),
    flags: reindexLines(rows.flags, kept),
  };
}

/** The lines of `body` (each followed by '\n'), as views into it without their newline. */
export function splitLines(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let at = body.indexOf(10); at !== -1; at = body.indexOf(10, start)) {
    out.push(body.subarray(start, at));
    start = at + 1;
  }
  return out;
}

/** One new buffer holding `lines`, each followed by '\n'. */
export function joinLines(lines: readonly Buffer[]): Buffer {
  let size = lines.length;
  for (const line of lines) size += line.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const line of lines) {
    at += line.copy(out, at);
    out[at++] = 10;
  }
  return out;
}
