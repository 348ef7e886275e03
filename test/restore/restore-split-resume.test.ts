/**
 * A restore stopped between two parts of an object larger than --batch-size: the object is
 * recorded in the restore watermark only with its last part, with either backend, so the same
 * command meets the parts already loaded. Its error says to rerun with --conflict skip, and that
 * rerun completes the object exactly (found by probing, with watermarks.backend: database).
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';

const f = useArchiveFixture();

describe('a restore stopped inside a split object (watermarks.backend: database)', () => {
  it('is resumed by rerunning with --conflict skip, as the error says; every row once', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 1, endDaysAgo: 20 });
    const config = buildConfig({
      s3: f.s3cfg,
      defaults: { retention_days: 10, batch_size: 20 },
      watermarks: { backend: 'database' },
      databases: [{ name: 'app', url: f.db.url, tables: [eventsTable] }],
    });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    // Stops the third part of the one 20-row object, restored 5 rows at a time.
    await f.db.query(`CREATE FUNCTION stop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = 12 THEN RAISE EXCEPTION 'stopped'; END IF; RETURN NEW; END $$`);
    await f.db.query(`CREATE TRIGGER stop BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION stop()`);
    const first = await restoreWith(config, f.store, { table: 'events', batchSize: 5, jobs: 1 });
    expect(first.status).toBe('failed');
    expect(first.rows.restored).toBe(10);
    await f.db.query(`DROP TRIGGER stop ON events`);
    const count = async (sql: string): Promise<number> => Number((await f.db.query<{ n: string }>(sql)).rows[0]!.n);
    expect(await count('SELECT count(*) AS n FROM public.auditlog_restore_watermarks')).toBe(0);

    const same = await restoreWith(config, f.store, { table: 'events', batchSize: 5, jobs: 1 });
    expect(same.error?.code).toBe('RESTORE_CONFLICT');
    expect(same.error?.message).toMatch(/if an earlier restore into this target stopped inside app\/public\.events\/\S+ \(larger than --batch-size, recorded as restored only once all of it is loaded\), rerun the same command with --conflict skip$/);

    const resumed = await restoreWith(config, f.store, { table: 'events', batchSize: 5, jobs: 1, conflict: 'skip' });
    expect(resumed.error).toBeUndefined();
    expect(resumed.rows).toEqual({ restored: 20, inserted: 10, conflicts: 10, skippedByTriggers: 0, superseded: 0 });
    expect(await count('SELECT count(DISTINCT id) AS n FROM events')).toBe(20);
    expect(await count('SELECT count(*) AS n FROM public.auditlog_restore_watermarks')).toBe(1);
  });
});
