/**
 * PostgreSQL's text of values, read without a database (pure): comparing values of a data line
 * with the text PostgreSQL wrote into the metadata (validate), and checking that a stored
 * position's timestamp is one (table state).
 * row_to_json and `::text` spell a few types differently (docs/format.md): timestamps use `T` and
 * `+00:00` in JSON but a space and `+00` as text. Booleans are `true`/`false` in both: the
 * manifest's keys are `::text` casts, and the cast (unlike boolean's output function) spells them
 * out — reading them as `t`/`f` flagged every batch of a boolean-keyed table (found in review).
 */

/** The PostgreSQL text of a raw JSON value token; null for JSON null. */
export function jsonTokenToText(token: string): string | null {
  if (token.startsWith('"')) return JSON.parse(token) as string;
  if (token === 'null') return null;
  return token;
}

const DATE_TIME = /^(\d{4,}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-]\d{2}(?::\d{2}){0,2})?( BC)?$/;

/** One spelling of a key value for comparison: date-times with a space and the shortest UTC offset. */
export function normalizeKeyText(text: string): string {
  const m = DATE_TIME.exec(text);
  if (m === null) return text;
  const offset = (m[3] ?? '').replace(/(?::00)+$/, '');
  return `${m[1]} ${m[2]}${offset}${m[4] ?? ''}`;
}

export type TimestampValue =
  | { kind: 'finite'; day: string; sortKey: string }
  /** -infinity, infinity, BC: stored in the 0000-00-00 partition (docs/format.md). */
  | { kind: 'special'; order: -1 | 1 | undefined };

const TIMESTAMP = /^(\d{4,})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?)?(?:[+-]\d{2}(?::?\d{2}){0,2})?( BC)?$/;

/** A timestamp, timestamptz or date value as written in UTC; undefined when it is none of these. */
export function parseTimestampText(text: string): TimestampValue | undefined {
  if (text === '-infinity') return { kind: 'special', order: -1 };
  if (text === 'infinity') return { kind: 'special', order: 1 };
  const m = TIMESTAMP.exec(text);
  if (m === null) return undefined;
  if (m[8] !== undefined) return { kind: 'special', order: undefined };
  const [year, month, day] = [m[1]!, m[2]!, m[3]!];
  const time = `${m[4] ?? '00'}${m[5] ?? '00'}${m[6] ?? '00'}${(m[7] ?? '').padEnd(6, '0')}`;
  return { kind: 'finite', day: `${year}-${month}-${day}`, sortKey: `${year.padStart(6, '0')}${month}${day}${time}` };
}

/** The partition a value belongs in: its UTC day, or 0000-00-00 for values without one. */
export function partitionDayOf(value: TimestampValue): string {
  return value.kind === 'finite' ? value.day : '0000-00-00';
}

/** -1/0/1, or undefined when the two cannot be ordered here (BC values). */
export function compareTimestamps(a: TimestampValue, b: TimestampValue): number | undefined {
  const rank = (v: TimestampValue): number | undefined => (v.kind === 'finite' ? 0 : v.order);
  const ra = rank(a);
  const rb = rank(b);
  if (ra === undefined || rb === undefined) return undefined;
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (a.kind !== 'finite' || b.kind !== 'finite') return 0;
  return a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0;
}
