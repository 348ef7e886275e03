/**
 * A trigger function of the target that leaves a table name unqualified works for the
 * application but not under the restore's pinned search_path=pg_catalog (found by probing). The
 * restore does not switch to the application's path (its own INSERT would resolve operators and
 * casts through it: load-error.ts); it explains the cause and the fix, and the fix works.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import { searchPathHint } from '../../src/restore/load-error.js';

const f = useArchiveFixture();

describe('restore and a trigger that relies on the search_path', () => {
  it('names the function, the pinned search_path and the fix; with the fix applied the restore loads', async () => {
    await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
    await f.db.query(`CREATE TABLE events_hist (id bigint, note text)`);
    await f.db.query(`CREATE FUNCTION keep_hist() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO events_hist VALUES (NEW.id, NEW.note); RETURN NEW; END $$`);
    await f.db.query(`CREATE TRIGGER keep_hist BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION keep_hist()`);

    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('DB_QUERY');
    const m = s.error!.message;
    expect(m).toContain('stopped: relation "events_hist" does not exist (SQLSTATE 42P01); raised inside function public.keep_hist() (a trigger, CHECK or default of the target): ');
    expect(m).toContain("restore's sessions set search_path to pg_catalog, so names the function leaves unqualified are not found; schema-qualify them in the function, or give it its own path (ALTER FUNCTION public.keep_hist() SET search_path = public)");
    expect(m.endsWith('fix the target (or the data), then rerun')).toBe(true);
    expect(Number((await f.db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n)).toBe(0);

    await f.db.query('ALTER FUNCTION keep_hist() SET search_path = public');
    const fixed = await restoreWith(config, f.store, { table: 'events' });
    expect(fixed.error).toBeUndefined();
    expect(fixed.rows.inserted).toBe(10);
    expect(Number((await f.db.query<{ n: string }>('SELECT count(*) AS n FROM events_hist')).rows[0]!.n)).toBe(10);
  });

  it('only for an undefined name inside a function', () => {
    expect(searchPathHint({ code: '42P01', where: 'SQL function "f" statement 1' })).toContain('inside function f(…)');
    expect(searchPathHint({ code: '42P01' })).toBeUndefined();
    expect(searchPathHint({ code: '23503', where: 'PL/pgSQL function g() line 1 at SQL statement' })).toBeUndefined();
  });
});
