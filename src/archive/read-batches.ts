/**
 * Rows past the retention as batches of at most batch_size rows that never span two UTC days.
 * Pages of batch_size rows (adapted toward target_query_time_ms, and fewer when their JSON lines
 * would pass max_batch_bytes: batch-sizer.ts) are read by
 * keyset from the last position, and each page is split by UTC day (archive-queries.ts). The last day of a full page may continue on the next page: it is read again as the
 * start of that page rather than archived as a fragment — unless the page holds only that day: a
 * day larger than a page (be it one row) is archived in page-sized batches, so reading always
 * moves on. The next page is already being read
 * while the caller uploads and deletes the current batches (separate pooled connections, no
 * transaction held across either).
 */
import type { TablePlan } from '../core/table-plan.js';
import { estimateLineBytes, selectPage, type ConnectionSource } from '../db/archive-queries.js';
import { CopyBuffer } from '../db/binary-copy.js';
import { isAuditlogError } from '../core/errors.js';
import { BatchSizer } from './batch-sizer.js';
import type { RowPosition, RowSet } from '../core/row-set.js';

/** One page as read: for the adaptive sizing's log line and for tests. */
export interface PageRead {
  rows: number;
  /** Bytes of the page's JSON lines (each with its '\n'). */
  bytes: number;
  /** The page size asked for. */
  size: number;
  elapsedMs: number;
  /** The size the next page will ask for. */
  nextSize: number;
}

export interface ReadRange {
  /** Start strictly after this position (a watermark); from the first row when absent. */
  after?: RowPosition | null;
  /** Stop at this position, inclusive (the pass over rows a watermark left behind). */
  until?: RowPosition | null;
}

/** Rows sampled to estimate the first page's bytes per row: a few, so it costs next to nothing. */
const SAMPLE_ROWS = 10;

export async function* readBatches(q: ConnectionSource, plan: TablePlan, cutoff: string, range: ReadRange = {}, onPage?: (page: PageRead) => void): AsyncGenerator<RowSet> {
  const until = range.until ?? null;
  const estimatedBytesPerRow = await estimateLineBytes(q, plan, cutoff, range.after ?? null, until, SAMPLE_ROWS).catch((error: unknown) => {
    // A row that cannot be archived at all is the table's failure, found here first.
    if (isAuditlogError(error) && error.code === 'ROW_TOO_LARGE') throw error;
    // Only an estimate: without it the first page asks for batch_size rows, and the page read
    // reports a real failure of the database itself.
    return null;
  });
  const sizer = new BatchSizer({
    initial: plan.batchSize,
    min: plan.minBatchSize,
    max: plan.maxBatchSize,
    targetMs: plan.targetQueryTimeMs,
    maxBytes: plan.maxBatchBytes,
    estimatedBytesPerRow: estimatedBytesPerRow ?? undefined,
  });
  // One page is read at a time (the next only once this one's rows are copied out into batches).
  const pageBuffer = new CopyBuffer();
  const fetch = (after: RowPosition | null): Promise<{ groups: RowSet[]; size: number }> => {
    const size = sizer.current;
    const started = performance.now();
    const p = selectPage(q, plan, cutoff, after, size, until, pageBuffer).then((groups) => {
      const rows = groups.reduce((n, g) => n + g.count, 0);
      const bytes = groups.reduce((n, g) => n + g.lines.length, 0);
      const elapsedMs = performance.now() - started;
      const next = sizer.observe(elapsedMs, rows, bytes);
      onPage?.({ rows, bytes, size, elapsedMs, nextSize: next });
      return { groups, size };
    });
    // Awaited below; this only keeps an abandoned prefetch (the caller stopped) from being an unhandled rejection.
    p.catch(() => undefined);
    return p;
  };
  let next: Promise<{ groups: RowSet[]; size: number }> | null = fetch(range.after ?? null);
  while (next !== null) {
    const page: { groups: RowSet[]; size: number } = await next;
    const { groups, size } = page;
    const full = groups.reduce((n, g) => n + g.count, 0) === size;
    // A full page's last day may go on: read again with the next page. Not when it is the only
    // day: then that day alone fills pages (of one row, for rows over max_batch_bytes), and is
    // archived a page at a time, the next page starting after this one's last row.
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
