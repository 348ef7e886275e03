/**
 * Adaptive batch sizing against a real database: pages grow toward max_batch_size while queries
 * run well under target_query_time_ms and shrink toward min_batch_size when they run over it.
 * Either way every old row is archived exactly once in single-day batches.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';

const fx = useArchiveFixture();

/** Record counts of the objects in key order (= time order within the single day). */
async function recordCounts(): Promise<number[]> {
  const archive = await inspectArchive(fx.store);
  return archive.objects.sort((a, b) => (a.key < b.key ? -1 : 1)).map((o) => o.meta.record_count);
}

async function expectAllArchivedOnce(ids: string[]): Promise<void> {
  const counts = archivedKeyCounts(await inspectArchive(fx.store));
  expect([...counts.keys()].sort()).toEqual([...ids].sort());
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  expect((await rowIds(fx.db)).filter((id) => ids.includes(id))).toEqual([]);
}

describe('adaptive batch size', () => {
  it('grows pages by half again while queries are far under the target, up to max_batch_size', async () => {
    // 120 rows a minute apart: all on one UTC day, so a batch is a whole page.
    await createEventsTable(fx.db, { rows: 120, stepMinutes: 1, endDaysAgo: 11 });
    const ids = await rowIds(fx.db);
    const summary = await archiveWith(fx.configFor([eventsTable], { batch_size: 4, max_batch_size: 30, target_query_time_ms: 60_000, batches_in_flight: 1 }), fx.store);
    expect(summary.tables[0]!.rowsArchived).toBe(120);
    expect(await recordCounts()).toEqual([4, 6, 9, 13, 19, 28, 30, 11]);
    await expectAllArchivedOnce(ids);
  });

  it('shrinks pages toward min_batch_size when queries run over the target', async () => {
    await createEventsTable(fx.db, { rows: 60, stepMinutes: 1, endDaysAgo: 11 });
    // Rows of ~2 MB each: every page query takes well over the 1 ms target.
    await fx.db.query(`UPDATE events SET note = repeat('x', 2000000)`);
    const ids = await rowIds(fx.db);
    const summary = await archiveWith(fx.configFor([eventsTable], { batch_size: 20, min_batch_size: 3, target_query_time_ms: 1, batches_in_flight: 1, max_batch_bytes: 1_073_741_824 }), fx.store);
    expect(summary.tables[0]!.rowsArchived).toBe(60);
    const counts = await recordCounts();
    expect(counts[0]).toBe(20);
    expect(counts.slice(1).every((n) => n <= 3)).toBe(true);
    await expectAllArchivedOnce(ids);
  });
});
