/**
 * runArchive's AbortSignal (SIGTERM in the daemon): no new batch and no new table start after it,
 * the batch in flight commits, and every row is in the table or in exactly one committed object.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import { RunEvents } from '../../src/core/run-events.js';

const fx = useArchiveFixture();

describe('stop signal', () => {
  it('aborted during the second batch: that batch commits, no further batch or table starts, no vacuum, nothing lost', async () => {
    await createEventsTable(fx.db, { rows: 50, stepMinutes: 60, endDaysAgo: 11 });
    await createEventsTable(fx.db, { table: 'second', rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const expected = await expectRowsOf(fx.db, { table: 'events' });
    const controller = new AbortController();
    const events = new RunEvents();
    const phases: string[] = [];
    events.on('batch:phase', (p) => {
      phases.push(p.phase);
    });
    let reads = 0;
    const summary = await archiveWith(fx.configFor([{ ...eventsTable, vacuum_after: true }, { name: 'second', timestamp_column: 'happened_at' }], { batches_in_flight: 1 }), fx.store, {
      events,
      signal: controller.signal,
      onPhase: (phase) => {
        if (phase === 'after-read' && ++reads === 2) controller.abort();
      },
    });
    expect(summary.tables).toHaveLength(1);
    // Batches never span two UTC days, so their sizes vary: count what the two batches held.
    expect(summary.tables[0]).toMatchObject({ table: 'events', status: 'archived', stopped: true, batches: 2 });
    const archived = summary.tables[0]!.rowsArchived;
    expect(archived).toBeGreaterThan(7);
    expect(archived).toBeLessThanOrEqual(14);
    expect(phases).not.toContain('vacuum');
    expect(await rowIds(fx.db)).toHaveLength(50 - archived);
    expect(await rowIds(fx.db, 'public', 'second')).toHaveLength(10);
    const report = await checkArchiveInvariant({ db: fx.db, table: { table: 'events' }, source: { s3: fx.s3cfg }, expected });
    expect(report.problems).toEqual([]);
    expect(report.rowsArchived).toBe(archived);
    expect(report.pendingMarkers).toBe(0);
  });
});
