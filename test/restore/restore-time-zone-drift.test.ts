/**
 * A `timestamp` column changed to `timestamptz` after archiving: the restore casts in its session's
 * TimeZone, UTC, not the database's (found by probing). The drift line says so; the values are the
 * archived wall-clock times read as UTC.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';

const f = useArchiveFixture();

describe('restore across a change between timestamp and timestamptz', () => {
  it('timestamp → timestamptz: the drift line says the archived times are read as UTC, and they are', async () => {
    await createEventsTable(f.db, { rows: 5, stepMinutes: 30, endDaysAgo: 20 });
    await f.db.query(`ALTER TABLE events ALTER happened_at TYPE timestamp USING happened_at AT TIME ZONE 'UTC'`);
    const wall = (await f.db.query<{ id: string; t: string }>(`SELECT id::text, happened_at::text AS t FROM events ORDER BY id`)).rows;
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(5);
    await f.db.query(`ALTER TABLE events ALTER happened_at TYPE timestamptz`);
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error).toBeUndefined();
    expect(s.drift).toEqual([`type change "happened_at": timestamp without time zone → timestamp with time zone, values are cast; the archived times are read as UTC, not in the database's TimeZone`]);
    const back = (await f.db.query<{ id: string; t: string }>(`SELECT id::text, (happened_at AT TIME ZONE 'UTC')::text AS t FROM events ORDER BY id`)).rows;
    expect(back).toEqual(wall);
  });

  it('timestamptz → timestamp: the drift line says the times become UTC wall-clock times', async () => {
    await createEventsTable(f.db, { rows: 5, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(5);
    await f.db.query(`ALTER TABLE events ALTER happened_at TYPE timestamp(3)`);
    const s = await restoreWith(config, f.store, { table: 'events', dryRun: true });
    expect(s.error).toBeUndefined();
    expect(s.drift).toEqual([`type change "happened_at": timestamp with time zone → timestamp(3) without time zone, values are cast; the archived times become UTC wall-clock times, not those of the database's TimeZone`]);
  });
});
