/**
 * "No row is in two committed objects of a table" (I4), over the manifests (pure). A row is its
 * primary key *and* version (xmin): a key reused by a new row after the archived one was deleted
 * is legitimately archived again (docs/format.md), a copy of the same version is not.
 *
 * A row version has one timestamp, so one UTC day: two objects holding the same version lie in
 * the same day partition (unless timestamp_column was changed between the two archivings, which
 * the check then misses). Rows are therefore tracked per day, and a day's rows are dropped once
 * every object of that day has been checked. Holding the whole table's rows at once ran a
 * 10-million-row archive out of memory (V8's heap limit; a Map also tops out at 2^24 entries).
 * Memory: one entry per archived row of the days being checked (roughly 60–100 bytes each).
 */
import { quoteListForDisplay } from '../core/quote-for-display.js';
import type { Finding } from './problem-codes.js';

export class DuplicateKeyTracker {
  /** Per day: row → the listing position of the first object holding it. */
  private readonly seen = new Map<string, Map<string, number>>();
  /** Per day: objects not finished yet. */
  private readonly open = new Map<string, number>();
  /** "later object index → earlier object index" → rows in both, and one of them. */
  private readonly pairs = new Map<string, { later: number; earlier: number; count: number; example: string[] }>();

  /** `days[i]`: the day partition of the object at listing position i. */
  constructor(private readonly days: readonly string[]) {
    for (const day of days) this.open.set(day, (this.open.get(day) ?? 0) + 1);
  }

  /** Objects may be added in any order (they are checked concurrently); findings land on the later key. */
  add(objectIndex: number, primaryKeys: readonly string[][], xmins: readonly string[]): void {
    const day = this.days[objectIndex]!;
    let seen = this.seen.get(day);
    if (seen === undefined) this.seen.set(day, (seen = new Map()));
    primaryKeys.forEach((key, i) => {
      // PostgreSQL text never holds a NUL byte, so NUL-joined values identify a row unambiguously (and cheaper than JSON).
      const row = `${key.join('\u0000')}\u0000\u0000${xmins[i]}`;
      const other = seen.get(row);
      if (other === undefined) {
        seen.set(row, objectIndex);
        return;
      }
      if (other === objectIndex) return;
      const [earlier, later] = other < objectIndex ? [other, objectIndex] : [objectIndex, other];
      if (objectIndex < other) seen.set(row, objectIndex);
      const pairKey = `${later}:${earlier}`;
      const pair = this.pairs.get(pairKey);
      if (pair === undefined) this.pairs.set(pairKey, { later, earlier, count: 1, example: key });
      else pair.count++;
    });
  }

  /** Every object, added or not (no readable manifest): the last of its day releases that day's rows. */
  finish(objectIndex: number): void {
    const day = this.days[objectIndex]!;
    const left = (this.open.get(day) ?? 1) - 1;
    if (left > 0) {
      this.open.set(day, left);
      return;
    }
    this.open.delete(day);
    this.seen.delete(day);
  }

  /** Days whose rows are held now (for tests). */
  get daysHeld(): number {
    return this.seen.size;
  }

  findings(keyOf: (objectIndex: number) => string): Finding[] {
    return [...this.pairs.values()].map((p) => ({
      code: 'DUPLICATE_KEY' as const,
      key: keyOf(p.later),
      count: p.count,
      message: `${p.count} row(s) also in ${keyOf(p.earlier)} (same key and version, e.g. ${quoteListForDisplay(p.example)}); a batch was archived twice — keep one copy, after checking both`,
    }));
  }
}
