/** vacuum_after: VACUUM (ANALYZE) runs after a table's rows were archived, timed as its own phase. */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { RunEvents, type RunEventMap } from '../../src/core/run-events.js';

const fx = useArchiveFixture();

async function reltuples(): Promise<number> {
  // VACUUM (ANALYZE) sets pg_class.reltuples at once; a table never vacuumed or analyzed has -1.
  return Number((await fx.db.query<{ n: string }>(`SELECT reltuples::text AS n FROM pg_class WHERE oid = 'public.events'::regclass`)).rows[0]!.n);
}

/** Autovacuum must not analyze the table behind the test's back. */
async function noAutovacuum(): Promise<void> {
  await fx.db.query('ALTER TABLE public.events SET (autovacuum_enabled = false)');
}

function phases(events: RunEvents): RunEventMap['batch:phase'][] {
  const seen: RunEventMap['batch:phase'][] = [];
  events.on('batch:phase', (p) => {
    seen.push(p);
  });
  return seen;
}

describe('vacuum_after', () => {
  it('set on the table: the table is vacuumed and analyzed after archival, and the vacuum is timed once', async () => {
    // 30 rows past the retention, 10 newer ones that stay.
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 9 });
    await noAutovacuum();
    const before = (await rowIds(fx.db)).length;
    const events = new RunEvents();
    const seen = phases(events);
    const summary = await archiveWith(fx.configFor([{ ...eventsTable, vacuum_after: true }]), fx.store, { events });
    const archived = summary.tables[0]!.rowsArchived;
    expect(archived).toBeGreaterThan(0);
    const vacuums = seen.filter((p) => p.phase === 'vacuum');
    expect(vacuums).toHaveLength(1);
    expect(vacuums[0]).toMatchObject({ database: 'app', schema: 'public', table: 'events' });
    expect(vacuums[0]!.seconds).toBeGreaterThanOrEqual(0);
    expect(await reltuples()).toBe(before - archived);
  });

  it('off by default: no vacuum, statistics untouched', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 9 });
    await noAutovacuum();
    const events = new RunEvents();
    const seen = phases(events);
    const summary = await archiveWith(fx.configFor([eventsTable]), fx.store, { events });
    expect(summary.tables[0]!.rowsArchived).toBeGreaterThan(0);
    expect(seen.filter((p) => p.phase === 'vacuum')).toEqual([]);
    expect(await reltuples()).toBe(-1);
  });
});
