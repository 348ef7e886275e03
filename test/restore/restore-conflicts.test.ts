/**
 * Conflict strategies when restored keys already exist in the target: skip keeps the live row,
 * overwrite replaces it (columns the archive lacks go back to their default), upsert updates the
 * archived non-key columns only, fail stops at the first conflict, rolls the batch back and
 * names the key. Counts are reported per strategy; --dry-run counts without writing.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';

const f = useArchiveFixture();
const ORIGINAL = `SELECT id, row_to_json(t)::text AS row FROM (SELECT id, happened_at, kind, body, note FROM events) t ORDER BY id`;

/** 20 archived rows (ids 1–20, objects of 7); then ids 1–3 come back as different live rows, with a column added since. */
async function archiveThenConflict(): Promise<{ original: Map<string, string>; config: ReturnType<typeof f.configFor> }> {
  await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
  const original = new Map((await f.db.query<{ id: string; row: string }>(ORIGINAL)).rows.map((r) => [r.id, r.row]));
  const config = f.configFor([eventsTable]);
  const summary = await archiveWith(config, f.store);
  expect(summary.tables[0]!.rowsArchived).toBe(20);
  await f.db.query(`ALTER TABLE events ADD COLUMN extra text DEFAULT 'dflt'`);
  await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note, extra) SELECT g, now(), 'live', '{"live":true}', 'live row', 'live extra' FROM generate_series(1, 3) g`);
  return { original, config };
}

async function current(): Promise<Map<string, { row: string; extra: string | null }>> {
  const r = await f.db.query<{ id: string; row: string; extra: string | null }>(
    `SELECT id, row_to_json(t)::text AS row, extra FROM (SELECT id, happened_at, kind, body, note FROM events) t JOIN events USING (id) ORDER BY id`,
  );
  return new Map(r.rows.map((x) => [x.id, { row: x.row, extra: x.extra }]));
}

describe('restore conflict strategies', () => {
  it('skip keeps the existing rows and restores the others exactly', async () => {
    const { original, config } = await archiveThenConflict();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'skip' });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    const now = await current();
    expect(now.size).toBe(20);
    for (const id of ['1', '2', '3']) expect(now.get(id)!.extra).toBe('live extra');
    for (const id of ['1', '2', '3']) expect(now.get(id)!.row).toContain('"live row"');
    for (let id = 4; id <= 20; id++) {
      expect(now.get(String(id))!.row).toBe(original.get(String(id)));
      expect(now.get(String(id))!.extra).toBe('dflt');
    }
  });

  it('overwrite replaces the existing rows: archived values, and defaults for columns the archive lacks', async () => {
    const { original, config } = await archiveThenConflict();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'overwrite' });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    const now = await current();
    for (let id = 1; id <= 20; id++) {
      expect(now.get(String(id))!.row).toBe(original.get(String(id)));
      expect(now.get(String(id))!.extra).toBe('dflt');
    }
  });

  it('upsert updates the archived non-key columns and leaves the others as they are', async () => {
    const { original, config } = await archiveThenConflict();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'upsert' });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    const now = await current();
    for (let id = 1; id <= 20; id++) expect(now.get(String(id))!.row).toBe(original.get(String(id)));
    for (const id of ['1', '2', '3']) expect(now.get(id)!.extra).toBe('live extra');
    expect(now.get('4')!.extra).toBe('dflt');
  });

  it('fail stops at the first conflict, rolls back that batch, names the key, and exits as a failed run', async () => {
    const { config } = await archiveThenConflict();
    const before = await current();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'fail' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('RESTORE_CONFLICT');
    expect(s.error?.message).toMatch(/Key \(id\)=\([123]\) already exists/);
    // The conflicting rows are in the first object: its batch was rolled back, nothing else ran.
    expect(s.rows.restored).toBe(0);
    expect(await current()).toEqual(before);
  });

  it('--dry-run counts the conflicts and rows without writing anything', async () => {
    const { config } = await archiveThenConflict();
    const before = await current();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'overwrite', dryRun: true });
    expect(s.error).toBeUndefined();
    expect(s.dryRun).toBe(true);
    expect(s.objects.restored).toBe(s.objects.selected);
    expect(s.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    expect(s.drift).toContain(`added column "extra" (text): not in the archive, gets its default`);
    expect(await current()).toEqual(before);
    // A dry run records no restore watermark: the real restore still does everything.
    const real = await restoreWith(config, f.store, { table: 'events', conflict: 'skip' });
    expect(real.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
  });
});
describe('a key archived twice (restored, changed, archived again)', () => {
  it.each(['upsert', 'overwrite', 'skip'] as const)('restores the version archived last, once (%s)', async (conflict) => {
    // Found in review: one INSERT … ON CONFLICT DO UPDATE cannot touch a row twice, so upsert and
    // overwrite failed on an archive holding two versions of a key in one batch.
    await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 50 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
    expect((await restoreWith(config, f.store, { table: 'events' })).rows.inserted).toBe(10);
    // Back in the table: row 1 goes, row 5 changes, so the next batch is another object holding keys 2–10 again.
    await f.db.query('DELETE FROM events WHERE id = 1');
    await f.db.query(`UPDATE events SET note = 'second version' WHERE id = 5`);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(9);
    await f.db.query('CREATE TABLE restored (LIKE events INCLUDING ALL)');

    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'restored' }, conflict });
    expect(s.error).toBeUndefined();
    // The first run's versions of keys 2–10 are superseded by the second run's: left out, not loaded.
    expect(s.rows).toEqual({ restored: 10, inserted: 10, conflicts: 0, skippedByTriggers: 0, superseded: 9 });
    const rows = await f.db.query<{ id: string; note: string }>('SELECT id::text AS id, note FROM restored ORDER BY id::bigint');
    expect(rows.rows.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(rows.rows.find((r) => r.id === '5')!.note).toBe('second version');
  });
});
describe('rows restored into the live table and changed in place', () => {
  it('are archived again to an object of their own: the committed one is kept, no STORAGE_CONFLICT (found by probing)', async () => {
    await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 50 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
    const first = await inspectArchive(f.store);
    expect((await restoreWith(config, f.store, { table: 'events' })).rows.inserted).toBe(10);
    // Same keys, same count, same first timestamp: the batch has the committed object's shape.
    await f.db.query(`UPDATE events SET note = 'second version' WHERE id = 5`);
    const again = await archiveWith(config, f.store);
    expect(again.tables[0]!.error).toBeUndefined();
    expect(again.tables[0]!.rowsArchived).toBe(10);
    expect(Number((await f.db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n)).toBe(0);
    const now = await inspectArchive(f.store);
    expect(now.pendingMarkers).toEqual([]);
    expect(now.objects).toHaveLength(first.objects.length + 1);
    for (const o of first.objects) expect(now.objects.find((n) => n.key === o.key)!.meta.sha256_compressed).toBe(o.meta.sha256_compressed);
    const added = now.objects.filter((o) => !first.objects.some((f0) => f0.key === o.key));
    expect(added).toHaveLength(1);
    expect(added[0]!.lines.filter((l) => l.includes('second version'))).toHaveLength(1);
    // A rerun finds nothing left, and the archive restores the version archived last.
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(0);
    await f.db.query('CREATE TABLE restored (LIKE events INCLUDING ALL)');
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'restored' }, conflict: 'upsert' });
    expect(s.error).toBeUndefined();
    expect((await f.db.query('SELECT note FROM restored WHERE id = 5')).rows).toEqual([{ note: 'second version' }]);
  });
});
describe('a key archived by two runs, restored on two sessions', () => {
  it.each(['overwrite', 'upsert'] as const)('ends with the version archived last (%s, --jobs 2)', async (conflict) => {
    // Found by probing: the later run's small batch went to the idle session and committed while
    // the earlier run's large batch was still loading, which then overwrote it with the older version.
    const n = 5000;
    await f.db.query(`CREATE TABLE events (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, kind text, body jsonb, note text)`);
    await f.db.query(`INSERT INTO events SELECT 1, date_trunc('day', now()) - interval '22 days', 'k', '{}', 'old'`);
    await f.db.query(`INSERT INTO events SELECT g, date_trunc('day', now()) - interval '21 days' + g * interval '1 second', 'k', '{}', 'old' FROM generate_series(2, $1) g`, [n + 1]);
    const config = f.configFor([eventsTable], { batch_size: 100_000 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(n + 1);
    expect((await restoreWith(config, f.store, { table: 'events' })).rows.inserted).toBe(n + 1);
    await f.db.query(`DELETE FROM events WHERE id <> $1`, [n + 1]);
    await f.db.query(`UPDATE events SET note = 'NEW' WHERE id = $1`, [n + 1]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(1);
    await f.db.query('CREATE TABLE restored (LIKE events INCLUDING ALL)');

    // Batches of n rows: the earlier run's n-row object loads alone while the later run's one row is next.
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'restored' }, conflict, jobs: 2, batchSize: n });
    expect(s.error).toBeUndefined();
    expect((await f.db.query(`SELECT note FROM restored WHERE id = $1`, [n + 1])).rows).toEqual([{ note: 'NEW' }]);
    expect(Number((await f.db.query(`SELECT count(*) AS c FROM restored`)).rows[0].c)).toBe(n + 1);
  });
});
describe('a target without a key', () => {
  it('refuses --conflict skip (nothing could conflict: every row would be inserted again); fail restores once', async () => {
    await createEventsTable(f.db, { rows: 6, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(6);
    await f.db.query('CREATE TABLE keyless (id bigint, happened_at timestamptz, kind text, body jsonb, note text)');
    const target = { schema: 'public', table: 'keyless' };
    const once = await restoreWith(config, f.store, { table: 'events', target });
    expect(once.rows.inserted).toBe(6);
    const again = await restoreWith(config, f.store, { table: 'events', target, conflict: 'skip', ignoreWatermark: true });
    expect(again.status).toBe('failed');
    expect(again.error?.code).toBe('SCHEMA_DRIFT');
    expect(again.error?.message).toContain('--conflict skip needs a primary key or a unique index over NOT NULL columns on public.keyless');
    expect(Number((await f.db.query('SELECT count(*) AS c FROM keyless')).rows[0].c)).toBe(6);
  });
});
describe('a target that cannot recognize a row already in it', () => {
  const count = async (sql: string): Promise<number> => Number((await f.db.query<{ n: string }>(sql)).rows[0]!.n);

  it('loads an object larger than --batch-size in one transaction into a keyless target: a rerun after a failure inside it loads each row once', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 1, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 20 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    // As an investigator makes one: LIKE copies no key.
    await f.db.query('CREATE TABLE keyless (LIKE events)');
    await f.db.query(`CREATE FUNCTION stop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = 12 THEN RAISE EXCEPTION 'stopped'; END IF; RETURN NEW; END $$`);
    await f.db.query('CREATE TRIGGER stop BEFORE INSERT ON keyless FOR EACH ROW EXECUTE FUNCTION stop()');
    const target = { schema: 'public', table: 'keyless' };
    const first = await restoreWith(config, f.store, { table: 'events', target, batchSize: 5, jobs: 1 });
    expect(first.error?.code).toBe('DB_QUERY');
    // Split into parts of 5, the first two committed unrecorded, and the rerun loaded them again: 30 rows.
    expect(await count('SELECT count(*) AS n FROM keyless')).toBe(0);
    await f.db.query('DROP TRIGGER stop ON keyless');
    const again = await restoreWith(config, f.store, { table: 'events', target, batchSize: 5, jobs: 1 });
    expect(again.error).toBeUndefined();
    expect(again.rows.inserted).toBe(20);
    expect(await count('SELECT count(*) AS n FROM keyless')).toBe(20);
    expect(await count('SELECT count(DISTINCT id) AS n FROM keyless')).toBe(20);
  });

  it.each(['skip', 'overwrite', 'upsert'] as const)('refuses --conflict %s when the key is a column the archive has no value for (every row would be inserted again)', async (conflict) => {
    await createEventsTable(f.db, { rows: 6, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(6);
    await f.db.query('CREATE TABLE own_key (rid bigserial PRIMARY KEY, LIKE events)');
    const target = { schema: 'public', table: 'own_key' };
    expect((await restoreWith(config, f.store, { table: 'events', target })).rows.inserted).toBe(6);
    const again = await restoreWith(config, f.store, { table: 'events', target, conflict, ignoreWatermark: true });
    expect(again.error?.code).toBe('SCHEMA_DRIFT');
    expect(again.error?.message).toContain(`--conflict ${conflict} cannot recognize a row already in public.own_key: its key (rid) has column(s) "rid" the archive has no value for`);
    expect(await count('SELECT count(*) AS n FROM own_key')).toBe(6);
  });
});
describe('a database whose sessions skip foreign keys and triggers', () => {
  it('refuses to restore under session_replication_role = replica, restoring nothing', async () => {
    await createEventsTable(f.db, { rows: 6, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(6);
    await f.db.query(`ALTER DATABASE "${f.db.name}" SET session_replication_role = replica`);
    await expect(restoreWith(config, f.store, { table: 'events' })).rejects.toMatchObject({ code: 'DB_SESSION' });
    expect(Number((await f.db.query('SELECT count(*) AS c FROM events')).rows[0].c)).toBe(0);
  });
});
