/**
 * A database whose sessions are read-only (default_transaction_read_only, or a standby): the
 * restore is refused up front with one DB_SESSION line, and a dry run, which writes nothing that
 * outlives it, still works (found by probing: both failed with "cannot execute CREATE TABLE in a
 * read-only transaction … rerun to continue").
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';

const f = useArchiveFixture();

async function archiveThenReadOnly(): Promise<ReturnType<typeof f.configFor>> {
  await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
  const config = f.configFor([eventsTable]);
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
  await f.db.query(`INSERT INTO events (id, happened_at) VALUES (3, now())`);
  await f.db.query(`ALTER DATABASE "${f.db.name}" SET default_transaction_read_only = on`);
  return config;
}

describe('restore into a read-only database', () => {
  it('refuses with DB_SESSION naming the cause and the fix, before anything is created or loaded', async () => {
    const config = await archiveThenReadOnly();
    for (const target of [undefined, { schema: 'public', table: 'scratch' }]) {
      const error = await restoreWith(config, f.store, { table: 'events', conflict: 'skip', ...(target === undefined ? {} : { target }) }).then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error?.code).toBe('DB_SESSION');
      expect(error?.message).toMatch(/^database "[^"]+" gives the restore read-only transactions \(default_transaction_read_only, or a standby\): nothing can be loaded into public\.(events|scratch); connect to the primary, or reset default_transaction_read_only for role \w+\. Nothing was restored$/);
    }
    expect(await rowIds(f.db)).toEqual(['3']);
    expect((await f.db.query(`SELECT to_regclass('public.scratch') IS NULL AS missing`)).rows[0].missing).toBe(true);
  });

  it('dry-runs all the same: counts rows and conflicts, writes nothing', async () => {
    const config = await archiveThenReadOnly();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'skip', dryRun: true });
    expect(s.error).toBeUndefined();
    expect(s.status).toBe('ok');
    expect(s.rows).toEqual({ restored: 20, inserted: 19, conflicts: 1, skippedByTriggers: 0, superseded: 0 });
    expect(await rowIds(f.db)).toEqual(['3']);
  });
});
