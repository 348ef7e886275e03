/**
 * Deep checks of a data object's content, fed one line at a time so an object is never held
 * decompressed (pure): every line is a JSON object, line i holds the row of manifest key i, and
 * every timestamp lies in the object's day partition and within the metadata's min/max.
 * Findings are aggregated per object and code: a count and the first line that showed it.
 */
import type { CheckedMetadata } from './check-metadata.js';
import { jsonTokenToText, normalizeKeyText, parseTimestampText, partitionDayOf, compareTimestamps, type TimestampValue } from '../core/pg-text.js';
import type { Finding, ProblemCode } from './problem-codes.js';
import { quoteForDisplay, quoteListForDisplay } from '../core/quote-for-display.js';
import { parseLineObject, readTopLevelFields } from './json-line-fields.js';

/**
 * A `\u0000` escape not itself escaped (an odd run of backslashes before it). Only a json value
 * written as it stood can put one in a line — text and jsonb hold no NUL, and values written by
 * the json-as-text rule are escaped — and PostgreSQL cannot load it back ("unsupported Unicode
 * escape sequence"). Versions before 2026-11-30 archived such json values (and deleted their rows).
 */
const UNESCAPED_NUL = /(?:^|[^\\])(?:\\\\)*\\u0000/;

interface Tally {
  count: number;
  first: string;
}

export class DataLineChecker {
  private lines = 0;
  private readonly tallies = new Map<ProblemCode, Tally>();
  private readonly wanted: Set<string>;
  /** Undefined only if the metadata check was skipped: then no row can be shown inside the range. */
  private readonly min: TimestampValue | undefined;
  private readonly max: TimestampValue | undefined;
  /** The sidecar's column names, sorted: what every line's keys must be. */
  private readonly columnNames: string | undefined;

  constructor(
    private readonly meta: CheckedMetadata,
    /** The object's partition day, from its key. */
    private readonly day: string,
    private readonly dataKey: string,
  ) {
    this.wanted = new Set([...meta.primary_key_columns, meta.timestamp_column]);
    this.min = parseTimestampText(meta.min_timestamp);
    this.max = parseTimestampText(meta.max_timestamp);
    this.columnNames = meta.columns === undefined ? undefined : JSON.stringify(meta.columns.map((c) => c.name).sort());
  }

  /** The next line, without its newline. */
  addLine(line: string): void {
    const index = this.lines++;
    const where = `line ${index + 1}`;
    const parsed = parseLineObject(line);
    if (parsed === undefined) {
      this.note('LINE_UNPARSEABLE', `${where} is not a JSON object`);
      return;
    }
    // JSON.parse takes a trailing carriage return as whitespace; restore's COPY does not (22P04),
    // and format.md says lines end in \n alone (found by probing: CRLF lines passed --deep).
    if (line.endsWith('\r')) this.note('LINE_NOT_RESTORABLE', `${where} ends with a carriage return (CRLF line endings): restore cannot load it; the object was rewritten by another tool`);
    // A key missing from a line, or one no column has, or a column renamed in the sidecar:
    // restore would load NULL for it, or drop the value, without a word (found by probing).
    if (this.columnNames !== undefined) {
      const names = JSON.stringify(Object.keys(parsed).sort());
      if (names !== this.columnNames) this.note('LINE_COLUMNS_MISMATCH', `${where} holds the columns ${names}, the metadata lists ${this.columnNames}`);
    }
    if (line.includes('u0000') && UNESCAPED_NUL.test(line)) {
      this.note('LINE_NOT_RESTORABLE', `${where} holds a json value with a \\u0000 escape, written as it stood: restore cannot load it (PostgreSQL text holds no NUL); load that row by hand (docs/format.md)`);
    }
    const fields = readTopLevelFields(line, this.wanted);
    this.checkKey(index, fields, where);
    this.checkTimestamp(fields.get(this.meta.timestamp_column), where);
  }

  /** `sha256Uncompressed`: hex SHA-256 of every decompressed byte. */
  finish(sha256Uncompressed: string): Finding[] {
    const findings: Finding[] = [];
    if (sha256Uncompressed !== this.meta.sha256_uncompressed) {
      findings.push({
        code: 'SHA256_UNCOMPRESSED_MISMATCH',
        key: this.dataKey,
        message: `SHA-256 of the decompressed bytes is ${sha256Uncompressed}, metadata says ${this.meta.sha256_uncompressed}`,
      });
    }
    if (this.lines !== this.meta.record_count) {
      findings.push({ code: 'RECORD_COUNT_MISMATCH', key: this.dataKey, message: `the object holds ${this.lines} lines, metadata record_count is ${this.meta.record_count}` });
    }
    for (const [code, t] of this.tallies) {
      findings.push({ code, key: this.dataKey, count: t.count, message: t.count === 1 ? t.first : `${t.count} lines; first: ${t.first}` });
    }
    return findings;
  }

  private checkKey(index: number, fields: Map<string, string>, where: string): void {
    const listed = this.meta.primary_keys[index];
    // Lines beyond the manifest are a record count problem, reported once by finish().
    if (listed === undefined) return;
    const tokens = this.meta.primary_key_columns.map((c) => fields.get(c));
    const inData = tokens.map((token) => {
      const text = token === undefined ? null : jsonTokenToText(token);
      return text === null ? null : normalizeKeyText(text);
    });
    if (inData.some((v, i) => !sameKeyValue(tokens[i], v, normalizeKeyText(listed[i]!)))) {
      this.note('MANIFEST_MISMATCH', `${where} holds key (${inData.map((v) => (v === null ? 'missing' : quoteForDisplay(v))).join(', ')}), the manifest lists ${quoteListForDisplay(listed)}`);
    }
  }

  private checkTimestamp(token: string | undefined, where: string): void {
    const column = this.meta.timestamp_column;
    const text = token === undefined ? null : jsonTokenToText(token);
    const value = text === null ? undefined : parseTimestampText(text);
    if (value === undefined) {
      this.note('TIMESTAMP_OUT_OF_PARTITION', `${where}: ${column} is ${text === null ? 'missing or null' : `"${text}", not a timestamp`}`);
      return;
    }
    if (partitionDayOf(value) !== this.day) {
      this.note('TIMESTAMP_OUT_OF_PARTITION', `${where}: ${column} ${text} is not in the object's day partition ${this.day}`);
      return;
    }
    const belowMin = this.min === undefined ? undefined : compareTimestamps(value, this.min);
    const aboveMax = this.max === undefined ? undefined : compareTimestamps(value, this.max);
    if (this.min === undefined || this.max === undefined || (belowMin !== undefined && belowMin < 0) || (aboveMax !== undefined && aboveMax > 0)) {
      this.note('TIMESTAMP_OUT_OF_RANGE', `${where}: ${column} ${text} is outside the metadata range ${this.meta.min_timestamp} .. ${this.meta.max_timestamp}`);
    }
  }

  private note(code: ProblemCode, message: string): void {
    const t = this.tallies.get(code);
    if (t === undefined) this.tallies.set(code, { count: 1, first: message });
    else t.count++;
  }
}

/** An inet host as PostgreSQL writes it without its netmask (IPv6 may end in an IPv4 part). */
const IPV4_HOST = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const IPV6_HOST = /^[0-9a-f:]*:[0-9a-f:.]*$/;

/**
 * Whether a key value of a line (its JSON token, and that token as PostgreSQL text) is the
 * manifest's, which holds the value's `::text`. Decided by the values, not the column type, so
 * domains over these types compare alike (found in review):
 * - character(n): row_to_json keeps the padding, the cast to text strips trailing spaces;
 * - arrays: a JSON array against a `{...}` literal, which only PostgreSQL spells exactly, so only
 *   its presence is checked here (restore compares every key in SQL before loading). A jsonb
 *   array is `[...]` in both and compares exactly;
 * - jsonb: row_to_json writes the JSON value and ::text its JSON text, so a string (`"s3"`) or a
 *   JSON `null` is spelled in the manifest exactly as the line's token (found by probing: every
 *   object of a table keyed by jsonb strings failed `validate --deep`). A PRIMARY KEY holds no
 *   SQL NULL, so a `null` token can only be this;
 * - inet: the output omits the netmask of a single host, the cast to text (`text(inet)`) always
 *   writes it: `10.0.0.1` against `10.0.0.1/32`, `::1` against `::1/128` (found by probing: every
 *   object of a table with an inet key column failed `validate --deep`).
 */
function sameKeyValue(token: string | undefined, text: string | null, listed: string): boolean {
  if (token === undefined) return false;
  if (token === listed && (token === 'null' || token.startsWith('"'))) return true;
  if (text === null) return false;
  if (text === listed) return true;
  if (token.startsWith('[') && listed.startsWith('{')) return true;
  if (listed === `${text}/32` && IPV4_HOST.test(text)) return true;
  if (listed === `${text}/128` && IPV6_HOST.test(text)) return true;
  return text.endsWith(' ') && text.replace(/ +$/, '') === listed;
}
