/**
 * A database error that stops the load says what PostgreSQL said with its DETAIL, names the
 * constraint/column/table and the archive object(s) of the batch, and what to do: a foreign key
 * whose parent row is gone, a unique index other than the key, a narrowed column or a missing
 * schema fail the same way on every rerun, so the message says to fix the target first; only a
 * transient error says "rerun to continue" (found by probing). The batch's rows are rolled back.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import { nextStep } from '../../src/restore/load-error.js';

const f = useArchiveFixture();
const FIX = 'fix the target (or the data), then rerun';

async function archived(): Promise<ReturnType<typeof f.configFor>> {
  await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
  await f.db.query(`CREATE TABLE kinds (kind text PRIMARY KEY); INSERT INTO kinds SELECT 'kind' || g FROM generate_series(0, 4) g`);
  await f.db.query(`ALTER TABLE events ADD CONSTRAINT events_kind_fkey FOREIGN KEY (kind) REFERENCES kinds`);
  const config = f.configFor([eventsTable]);
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
  return config;
}

async function rows(): Promise<string[]> {
  return (await f.db.query<{ row: string }>(`SELECT row_to_json(e)::text AS row FROM events e ORDER BY id`)).rows.map((r) => r.row);
}

/** The message names the batch's object(s), as the details list them. */
function expectObjectNamed(message: string, details: unknown): void {
  const d = details as { objects: string[]; key: string };
  const objects = d.objects;
  expect(objects.length).toBeGreaterThan(0);
  expect(message).toContain(`restoring archive object ${objects[0]}`);
  expect(d.key).toBe(objects[0]);
}

describe('restore stopped by a database error', () => {
  it('a foreign key whose parent row is gone: DETAIL, constraint, object, fix the target; nothing of the batch loaded', async () => {
    const config = await archived();
    await f.db.query(`DELETE FROM kinds WHERE kind = 'kind3'`);
    const before = await rows();
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('DB_QUERY');
    const m = s.error!.message;
    expect(m).toContain('violates foreign key constraint "events_kind_fkey"');
    // The foreign key's value is a row value, not the target's key: not printed (found in review).
    expect(m).toContain('Key (kind)=(…) is not present in table "kinds"');
    expect(m).not.toContain('kind3');
    expect(m).toContain('(constraint events_kind_fkey, table public.events, SQLSTATE 23503)');
    expect(m).toContain('this batch was rolled back, batches committed before stay restored');
    expect(m.endsWith(FIX)).toBe(true);
    expect(m).not.toContain('rerun to continue');
    expect(m).not.toContain('\n');
    expectObjectNamed(m, s.error!.details);
    expect(s.error!.details).toMatchObject({ sqlstate: '23503', constraint: 'events_kind_fkey', table: 'events', detail: 'Key (kind)=(…) is not present in table "kinds".' });
    expect(await rows()).toEqual(before);
  });

  it('--conflict skip and a unique index other than the key: not a conflict, the message says so and names the index, not the value', async () => {
    const config = await archived();
    await f.db.query(`CREATE UNIQUE INDEX events_note_idx ON events (note)`);
    await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note) SELECT 1000, now(), 'kind0', '{}', note FROM (SELECT E'note "4" \\\\ line\\nbreak' AS note) n`);
    const before = await rows();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'skip' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('DB_QUERY');
    const m = s.error!.message;
    expect(m).toContain('duplicate key value violates unique constraint "events_note_idx" — Key (note)=(…) already exists.');
    expect(m).not.toContain('line');
    expect(m).toContain("--conflict skip handles only the target's key (id); a row that collides on another unique index stops the restore");
    expect(m.endsWith(FIX)).toBe(true);
    expectObjectNamed(m, s.error!.details);
    expect(await rows()).toEqual(before);
  });

  it('a column narrowed to varchar(3): the data exception says to fix the target', async () => {
    const config = await archived();
    await f.db.query(`ALTER TABLE events ALTER kind TYPE varchar(3)`);
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('DB_QUERY');
    expect(s.error!.message).toContain('value too long for type character varying(3) (SQLSTATE 22001)');
    expect(s.error!.message.endsWith(FIX)).toBe(true);
    expect(await rows()).toEqual([]);
  });

  it('a CHECK constraint the archived rows violate: named, but the failing row\'s values are not printed (no row values in logs)', async () => {
    const config = await archived();
    await f.db.query(`ALTER TABLE events ADD CONSTRAINT events_note_short CHECK (length(note) < 5) NOT VALID`);
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    const m = s.error!.message;
    expect(m).toContain('violates check constraint "events_note_short" — the failing row\'s values are not shown (constraint events_note_short, table public.events, SQLSTATE 23514)');
    expect(m).not.toContain('line');
    expect(JSON.stringify(s.error!.details)).not.toContain('line');
    expect(m.endsWith(FIX)).toBe(true);
    expect(await rows()).toEqual([]);
  });

  it('a value that fails its cast to a changed column type: the message does not quote the value', async () => {
    const config = await archived();
    await f.db.query(`ALTER TABLE events ALTER note TYPE integer USING NULL`);
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    const m = s.error!.message;
    expect(m).toContain('invalid input syntax for type integer: "…" (SQLSTATE 22P02)');
    expect(m).not.toContain('line');
    expect(m.endsWith(FIX)).toBe(true);
    expect(await rows()).toEqual([]);
  });

  it('a --target-table in a schema that does not exist: named, fix the target', async () => {
    const config = await archived();
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'nowhere', table: 'copy' } });
    expect(s.status).toBe('failed');
    expect(s.error?.message).toBe(`restore into nowhere.copy stopped: schema "nowhere" does not exist (SQLSTATE 3F000); batches committed before stay restored; ${FIX}`);
  });

  it('only transient SQLSTATE classes say "rerun to continue"', () => {
    for (const state of ['08006', '40001', '40P01', '53100', '57014', undefined]) expect(nextStep(state)).toBe('rerun to continue');
    for (const state of ['22001', '23503', '23505', '23514', '42P01', '42883', '3F000']) expect(nextStep(state)).toBe(FIX);
    expect(nextStep('XX000')).toBe('fix the cause, then rerun');
  });
});
