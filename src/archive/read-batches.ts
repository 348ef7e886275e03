/**
 * Rows past the retention as batches of at most batch_size rows that never span two UTC days.
 * Pages of batch_size rows are read by keyset from the last position, and the server splits each
 * page by day. The last day of a full page may continue on the next page: it is read again as the
 * start of that page rather than archived as a fragment. The next page is already being read
 * while the caller uploads and deletes the current batches (separate pooled connections, no
 * transaction held across either).
 */
import type { Queryable } from '../db/queryable.js';
import type { TablePlan } from '../core/table-plan.js';
import { selectPage } from '../db/archive-queries.js';
import type { RowPosition, RowSet } from '../core/row-set.js';

export interface ReadRange {
  /** Start strictly after this position (a watermark); from the first row when absent. */
  after?: RowPosition | null;
  /** Stop at this position, inclusive (the pass over rows a watermark left behind). */
  until?: RowPosition | null;
}

export async function* readBatches(q: Queryable, plan: TablePlan, cutoff: string, range: ReadRange = {}): AsyncGenerator<RowSet> {
  const pageSize = plan.batchSize;
  const until = range.until ?? null;
  const fetch = (after: RowPosition | null): Promise<RowSet[]> => {
    const p = selectPage(q, plan, cutoff, after, pageSize, until);
    // Awaited below; this only keeps an abandoned prefetch (the caller stopped) from being an unhandled rejection.
    p.catch(() => undefined);
    return p;
  };
  let next: Promise<RowSet[]> | null = fetch(range.after ?? null);
  while (next !== null) {
    const groups: RowSet[] = await next;
    const full = groups.reduce((n, g) => n + g.count, 0) === pageSize;
    const ready = full && groups.length > 1 ? groups.slice(0, -1) : groups;
    const last = ready[ready.length - 1];
    next = full && last !== undefined ? fetch(lastPosition(last)) : null;
    yield* ready;
  }
}

/** Where a batch ends in (timestamp, key) order: the position the next read starts after. */
export function lastPosition(rows: RowSet): RowPosition {
  return { ts: rows.lastTs, key: rows.keys[rows.keys.length - 1]! };
}
