/**
 * Schema drift between the archive and the target, each kind on its own: added columns get their
 * default, dropped columns are left out (an error with strict schema, before anything loads),
 * type changes are cast (or refused before loading when no cast exists), renamed columns follow
 * the table's column_map. The drift report is in the summary.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';

const f = useArchiveFixture();

async function archived(tableExtra: Record<string, unknown> = {}): Promise<{ config: ReturnType<typeof f.configFor>; original: string[] }> {
  await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
  const original = (await f.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM (SELECT id, happened_at, kind, body, note FROM events) t ORDER BY id`)).rows.map((r) => r.row);
  const summary = await archiveWith(f.configFor([eventsTable]), f.store);
  expect(summary.tables[0]!.rowsArchived).toBe(10);
  return { config: f.configFor([{ ...eventsTable, ...tableExtra }]), original };
}

async function count(): Promise<number> {
  return Number((await f.db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n);
}

describe('restore schema drift', () => {
  it('an added column gets its default, NULL without one', async () => {
    const { config, original } = await archived();
    await f.db.query(`ALTER TABLE events ADD COLUMN region text DEFAULT 'eu', ADD COLUMN score int`);
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error).toBeUndefined();
    expect(s.drift).toEqual([`added column "region" (text): not in the archive, gets its default`, `added column "score" (integer): not in the archive, gets NULL`]);
    const rows = await f.db.query<{ row: string; region: string; score: number | null }>(
      `SELECT row_to_json(t)::text AS row, region, score FROM (SELECT id, happened_at, kind, body, note FROM events) t JOIN events USING (id) ORDER BY id`,
    );
    expect(rows.rows.map((r) => r.row)).toEqual(original);
    expect(new Set(rows.rows.map((r) => `${r.region}/${r.score}`))).toEqual(new Set(['eu/null']));
  });

  it('a new --target-table gets every column any object archived, so no archived value is left out (found by probing); columns archived with two types are refused (found in review)', async () => {
    await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
    // A later run archives rows that have a column more.
    await f.db.query(`ALTER TABLE events ADD COLUMN region text`);
    await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note, region) VALUES (11, now() - interval '30 days', 'late', '{}', 'n', 'IMPORTANT')`);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(1);
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'copy' } });
    expect(s.error).toBeUndefined();
    expect(s.targetCreated).toBe(true);
    expect(s.rows).toEqual({ restored: 11, inserted: 11, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    const cols = await f.db.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'public.copy'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    );
    expect(cols.rows).toEqual([
      { name: 'id', type: 'bigint' },
      { name: 'happened_at', type: 'timestamp with time zone' },
      { name: 'kind', type: 'text' },
      { name: 'body', type: 'jsonb' },
      { name: 'note', type: 'text' },
      { name: 'region', type: 'text' },
    ]);
    const regions = await f.db.query<{ id: string; region: string | null }>(`SELECT id::text, region FROM copy WHERE region IS NOT NULL`);
    expect(regions.rows).toEqual([{ id: '11', region: 'IMPORTANT' }]);

    // A third run archives "kind" as varchar(40): no type is sure to hold both runs' values.
    await f.db.query(`ALTER TABLE events ALTER COLUMN kind TYPE varchar(40)`);
    await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note) VALUES (12, now() - interval '30 days', 'later', '{}', 'n')`);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(1);
    const mixed = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'copy2' } });
    expect(mixed.status).toBe('failed');
    expect(mixed.error?.code).toBe('SCHEMA_DRIFT');
    expect(mixed.error?.message).toContain('"kind" (text, character varying(40))');
    expect((await f.db.query(`SELECT to_regclass('public.copy2') IS NULL AS missing`)).rows[0]).toEqual({ missing: true });
  });

  it('a dropped column is reported and left out; with strict schema it is an error and nothing is loaded', async () => {
    const { config, original } = await archived();
    await f.db.query('ALTER TABLE events DROP COLUMN note');
    const strict = await restoreWith(config, f.store, { table: 'events', strictSchema: true });
    expect(strict.status).toBe('failed');
    expect(strict.error?.code).toBe('SCHEMA_DRIFT');
    expect(strict.error?.message).toContain('"note"');
    expect(await count()).toBe(0);

    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error).toBeUndefined();
    expect(s.drift).toEqual([`dropped column "note" (text): not in the target, left out`]);
    const rows = await f.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM (SELECT id, happened_at, kind, body FROM events) t ORDER BY id`);
    expect(rows.rows.map((r) => r.row)).toEqual(original.map((o) => o.replace(/,"note":.*\}$/, '}')));
  });

  it('a changed type is cast and reported; a value that fails its cast fails its batch; a type PostgreSQL cannot cast to is refused before loading', async () => {
    const { config, original } = await archived();
    await f.db.query('ALTER TABLE events ALTER COLUMN id TYPE numeric(20,0), ALTER COLUMN kind TYPE varchar(40), ALTER COLUMN body TYPE text');
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error).toBeUndefined();
    expect(s.drift).toEqual([
      'type change "id": bigint → numeric(20,0), values are cast',
      'type change "kind": text → character varying(40), values are cast',
      'type change "body": jsonb → text, values are cast',
    ]);
    const rows = await f.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM (SELECT id::bigint, happened_at, kind::text, body::jsonb, note FROM events) t ORDER BY id`);
    expect(rows.rows.map((r) => r.row)).toEqual(original);

    await f.db.query('TRUNCATE events');
    await f.db.query('ALTER TABLE events ALTER COLUMN kind TYPE varchar(3)');
    const tooLong = await restoreWith(config, f.store, { table: 'events', ignoreWatermark: true });
    expect(tooLong.status).toBe('failed');
    expect(tooLong.error?.code).toBe('DB_QUERY');
    expect(tooLong.error?.message).toContain('value too long for type character varying(3)');
    expect(await count()).toBe(0);

    await f.db.query('ALTER TABLE events ALTER COLUMN body TYPE uuid USING NULL');
    const refused = await restoreWith(config, f.store, { table: 'events', ignoreWatermark: true });
    expect(refused.error?.code).toBe('SCHEMA_DRIFT');
    expect(refused.error?.message).toContain('cannot cast to uuid');
    expect(await count()).toBe(0);
  });

  it('a renamed column is loaded through column_map; without it the old name is dropped and the new one left NULL', async () => {
    const { config, original } = await archived({ column_map: { note: 'remark' } });
    await f.db.query('ALTER TABLE events RENAME COLUMN note TO remark');
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error).toBeUndefined();
    expect(s.drift).toEqual([expect.stringMatching(/^renamed column "note" → "remark" \(column_map\) in \d+ objects? /)]);
    const rows = await f.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM (SELECT id, happened_at, kind, body, remark AS note FROM events) t ORDER BY id`);
    expect(rows.rows.map((r) => r.row)).toEqual(original);

    const unmapped = f.configFor([eventsTable]);
    const dry = await restoreWith(unmapped, f.store, { table: 'events', dryRun: true, ignoreWatermark: true, conflict: 'skip' });
    expect(dry.drift).toEqual([`added column "remark" (text): not in the archive, gets NULL`, `dropped column "note" (text): not in the target, left out`]);
    expect(dry.rows.conflicts).toBe(10);
  });

  it('column_map naming a column the target lacks is an error that names it', async () => {
    const { config } = await archived({ column_map: { note: 'nope' } });
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error?.code).toBe('SCHEMA_DRIFT');
    expect(s.error?.message).toContain('"nope"');
    expect(await count()).toBe(0);
  });
});
