/**
 * A target whose key is DEFERRABLE (found by probing): ON CONFLICT does not accept it, so skip,
 * overwrite and upsert are refused up front, also by --dry-run (which runs no INSERT and said
 * all was well); fail checks the key per statement and reports RESTORE_CONFLICT naming the key,
 * not a bare duplicate-key error at COMMIT.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';

const f = useArchiveFixture();

async function archivedWithDeferrableKey(): Promise<ReturnType<typeof f.configFor>> {
  await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
  await f.db.query(`ALTER TABLE events DROP CONSTRAINT events_pkey, ADD CONSTRAINT events_pkey PRIMARY KEY (id) DEFERRABLE INITIALLY DEFERRED`);
  const config = f.configFor([eventsTable]);
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
  await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note) VALUES (3, now(), 'live', '{}', 'live row')`);
  return config;
}

async function rows(): Promise<string[]> {
  return (await f.db.query<{ row: string }>(`SELECT row_to_json(e)::text AS row FROM events e ORDER BY id`)).rows.map((r) => r.row);
}

describe('restore into a target with a DEFERRABLE key', () => {
  it('skip, overwrite and upsert are refused before loading, with --dry-run too', async () => {
    const config = await archivedWithDeferrableKey();
    const before = await rows();
    for (const conflict of ['skip', 'overwrite', 'upsert'] as const) {
      for (const dryRun of [true, false]) {
        const s = await restoreWith(config, f.store, { table: 'events', conflict, dryRun });
        expect({ conflict, dryRun, status: s.status, error: s.error }).toMatchObject({ conflict, dryRun, status: 'failed' });
        expect(s.error?.code).toBe('SCHEMA_DRIFT');
        expect(s.error?.message).toBe(
          `--conflict ${conflict} cannot load into public.events: its key (id) is a DEFERRABLE constraint, which PostgreSQL's ON CONFLICT does not accept; use --conflict fail, or restore into a new --target-table. Nothing was restored`,
        );
        expect(s.rows.restored).toBe(0);
      }
    }
    expect(await rows()).toEqual(before);
  });

  it('fail reports RESTORE_CONFLICT naming the key, and rolls the batch back', async () => {
    const config = await archivedWithDeferrableKey();
    const before = await rows();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'fail' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('RESTORE_CONFLICT');
    expect(s.error?.message).toContain('into public.events: Key (id)=(3) already exists.; this batch was rolled back (choose --conflict skip, overwrite or upsert, or restore into a new --target-table)');
    expect(await rows()).toEqual(before);
  });
});
