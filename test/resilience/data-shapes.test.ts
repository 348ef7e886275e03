/**
 * Data shapes at the edges (issue #3): a run across a UTC day boundary, a row exactly at the
 * retention cutoff, an empty table, a table whose every row is locked by the application.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable } from '../helpers/events-table.js';
import { expectRowsOf } from '../helpers/invariant-checker.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { checkNow, events, finishAndCheck, healthyRun } from './finish-and-check.js';

const fx = useArchiveFixture();
let app: pg.Client;
beforeEach(async () => {
  app = new pg.Client({ connectionString: fx.db.url, application_name: 'the-application' });
  await app.connect();
});
afterEach(async () => {
  await app.end();
});

/** `year=YYYY/month=MM/day=DD/` of an object key, as YYYY-MM-DD. */
function partitionDay(key: string): string {
  const m = /year=(\d{4})\/month=(\d{2})\/day=(\d{2})\//.exec(key);
  return m === null ? 'none' : `${m[1]}-${m[2]}-${m[3]}`;
}

/** Returns once the database's clock is at least `marginSeconds` before the next UTC midnight (waiting past it if need be). */
async function awayFromUtcMidnight(marginSeconds = 60): Promise<void> {
  const left = await fx.db.query<{ s: number }>(`SELECT extract(epoch FROM (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') - (now() AT TIME ZONE 'UTC'))::float8 AS s`);
  const seconds = left.rows[0]!.s;
  if (seconds < marginSeconds) await new Promise((r) => setTimeout(r, (seconds + 1) * 1000));
}

describe('data shapes', () => {
  it('rows across a UTC midnight in one page are split into one batch per day, each in its day partition', async () => {
    // ids 1..13 fall on one UTC day and 14..50 on the next (the newest is at noon, 20-minute steps).
    await createEventsTable(fx.db, { rows: 50, stepMinutes: 20, endDaysAgo: 11 });
    const expected = await expectRowsOf(fx.db, events);
    const config = fx.configFor([eventsTable], { batch_size: 100 });
    const report = await finishAndCheck(fx, expected, { scenario: 'data: one page across a UTC day boundary', injected: 'table: 50 rows spanning midnight UTC, batch_size 100', archived: 50, config });
    const days = new Set<string>();
    for (const row of report.archivedRows) {
      const ts = (JSON.parse(row.line) as { happened_at: string }).happened_at;
      expect(partitionDay(row.object), `${row.key} at ${ts}`).toBe(ts.slice(0, 10));
      days.add(partitionDay(row.object));
    }
    expect(days.size).toBe(2);
    expect(report.committedObjects).toBe(2);
  });

  it('a row exactly at the cutoff stays in the table: only rows strictly older than the retention are archived', async () => {
    // A date column: the cutoff is a whole day the test can name, so rows can sit exactly on it.
    // The seed names days from today (UTC) and the run computes its cutoff from its own today: not
    // across a UTC midnight, or the cutoff is a day later than the seed meant (8 rows archived).
    await awayFromUtcMidnight();
    await fx.db.query(`CREATE TABLE daily (id bigint PRIMARY KEY, day date NOT NULL, note text)`);
    await fx.db.query(
      `INSERT INTO daily SELECT g, (now() AT TIME ZONE 'UTC')::date - 10 + ((g - 1) / 2 - 3), 'n' || g FROM generate_series(1, 10) g`,
    );
    const table = { table: 'daily' };
    const expected = await expectRowsOf(fx.db, table);
    const config = fx.configFor([{ name: 'daily', timestamp_column: 'day' }]);
    const report = await finishAndCheck(fx, expected, { scenario: 'data: newest old rows exactly at the cutoff', injected: 'table: date rows on cutoff-3 … cutoff+1 days', archived: 6, table, config });
    // The archiver computed its own cutoff; the rows on it (ids 7, 8) are the newest not archived.
    const cutoff = (await inspectArchive(fx.store)).objects[0]!.meta.retention_cutoff;
    const stay = await fx.db.query<{ id: string }>(`SELECT id::text AS id FROM daily WHERE day >= $1::date ORDER BY daily.id`, [cutoff]);
    expect(stay.rows.map((r) => r.id)).toEqual(['7', '8', '9', '10']);
    expect(report.rowsInTable).toBe(4);
  });

  it('an empty table: nothing to archive, nothing written', async () => {
    await createEventsTable(fx.db, { rows: 0, stepMinutes: 20, endDaysAgo: 11 });
    const expected = await expectRowsOf(fx.db, events);
    const summary = await healthyRun(fx);
    expect(summary.tables[0]!.status).toBe('nothing-to-archive');
    const report = await finishAndCheck(fx, expected, { scenario: 'data: empty table', injected: 'table: no rows', archived: 0 });
    expect(report.committedObjects).toBe(0);
  });

  it('every row locked by the application: the run ends without waiting, archives and deletes nothing', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 20, endDaysAgo: 11 });
    const expected = await expectRowsOf(fx.db, events);
    await app.query('BEGIN');
    await app.query('SELECT * FROM events FOR UPDATE');
    const config = fx.configFor([eventsTable], { lock_timeout_ms: 60_000 });
    const started = Date.now();
    const summary = await healthyRun(fx, config);
    const elapsed = Date.now() - started;
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(0);
    expect(summary.tables[0]!.rowsSkipped).toBe(30);
    expect(elapsed).toBeLessThan(30_000);
    // No object holds a row that is still in the table, and nothing is left in flight.
    const mid = await checkNow(fx, expected);
    expect(mid.problems).toEqual([]);
    expect(mid.rowsInTable).toBe(30);
    expect(mid.committedObjects).toBe(0);
    await app.query('COMMIT');
    await finishAndCheck(fx, expected, { scenario: 'data: every row locked by the application', injected: 'application session: SELECT … FOR UPDATE on the whole table during the run', archived: 30 });
  });
});
