/**
 * "No row is in two committed objects of a table" (I4), over the manifests (pure). A row is its
 * primary key *and* version (xmin): a key reused by a new row after the archived one was deleted
 * is legitimately archived again (docs/format.md), a copy of the same version is not.
 * Memory: one entry per archived row of the table (roughly 60–100 bytes each).
 */
import type { Finding } from './problem-codes.js';

export class DuplicateKeyTracker {
  /** Row → the listing position of the first object holding it. */
  private readonly seen = new Map<string, number>();
  /** "later object index → earlier object index" → rows in both, and one of them. */
  private readonly pairs = new Map<string, { later: number; earlier: number; count: number; example: string[] }>();

  /** Objects may be added in any order (they are checked concurrently); findings land on the later key. */
  add(objectIndex: number, primaryKeys: readonly string[][], xmins: readonly string[]): void {
    primaryKeys.forEach((key, i) => {
      // PostgreSQL text never holds a NUL byte, so NUL-joined values identify a row unambiguously (and cheaper than JSON).
      const row = `${key.join('\u0000')}\u0000\u0000${xmins[i]}`;
      const other = this.seen.get(row);
      if (other === undefined) {
        this.seen.set(row, objectIndex);
        return;
      }
      if (other === objectIndex) return;
      const [earlier, later] = other < objectIndex ? [other, objectIndex] : [objectIndex, other];
      if (objectIndex < other) this.seen.set(row, objectIndex);
      const pairKey = `${later}:${earlier}`;
      const pair = this.pairs.get(pairKey);
      if (pair === undefined) this.pairs.set(pairKey, { later, earlier, count: 1, example: key });
      else pair.count++;
    });
  }

  findings(keyOf: (objectIndex: number) => string): Finding[] {
    return [...this.pairs.values()].map((p) => ({
      code: 'DUPLICATE_KEY' as const,
      key: keyOf(p.later),
      count: p.count,
      message: `${p.count} row(s) also in ${keyOf(p.earlier)} (same key and version, e.g. (${p.example.join(', ')})); a batch was archived twice — keep one copy, after checking both`,
    }));
  }
}
