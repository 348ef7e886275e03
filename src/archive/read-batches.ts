/**
 * Rows past the retention, cut into batches of at most batch_size rows that never span two UTC
 * days. Pages are read by keyset from the last position; the next page is already being read
 * while the caller uploads and deletes the current batch (separate pooled connections, no
 * transaction held across either).
 */
import type { Queryable } from '../db/queryable.js';
import type { TablePlan } from '../core/table-plan.js';
import { selectPage, type ArchivedRow } from '../db/archive-queries.js';

export async function* readBatches(q: Queryable, plan: TablePlan, cutoff: string): AsyncGenerator<ArchivedRow[]> {
  const pageSize = plan.batchSize;
  const fetch = (after: ArchivedRow | null): Promise<ArchivedRow[]> => {
    const p = selectPage(q, plan, cutoff, after === null ? null : { ts: after.ts, key: after.key }, pageSize);
    // Awaited below; this only keeps an abandoned prefetch (the caller stopped) from being an unhandled rejection.
    p.catch(() => undefined);
    return p;
  };
  let next: Promise<ArchivedRow[]> | null = fetch(null);
  let batch: ArchivedRow[] = [];
  while (next !== null) {
    const page: ArchivedRow[] = await next;
    next = page.length === pageSize ? fetch(page[page.length - 1]!) : null;
    for (const row of page) {
      if (batch.length > 0 && (batch.length >= plan.batchSize || row.day !== batch[0]!.day)) {
        yield batch;
        batch = [];
      }
      batch.push(row);
    }
  }
  if (batch.length > 0) yield batch;
}
