/**
 * Bad input and contention never delete (I6): missing keys, unknown names, hostile identifiers,
 * unreachable databases and buckets, a second archiver, rows the application holds locked.
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import pino from 'pino';
import { restoreWith } from '../helpers/restore-run.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { LOCK_NAMESPACE } from '../../src/db/advisory-lock.js';
import { FAST_DELETE_LOCK_WAIT_MS, PLAIN_DELETE_MAX_ROWS } from '../../src/archive/archive-batch.js';
import type { TableState } from '../../src/state/table-state.js';

const fx = useArchiveFixture();

describe('archive refusals and contention', () => {
  // The plain DELETE waits FAST_DELETE_LOCK_WAIT_MS at most, then the batch skips locked rows;
  // with a deadlock_timeout that short, the plain DELETE is not tried at all.
  for (const deadlockTimeout of ['1s', '150ms']) {
    it(`does not wait out lock_timeout on a row the application holds locked: it stays, the rest is archived (deadlock_timeout ${deadlockTimeout})`, async () => {
      await fx.db.query(`ALTER DATABASE "${fx.db.name}" SET deadlock_timeout = '${deadlockTimeout}'`);
      await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
      const app = new pg.Client({ connectionString: fx.db.url });
      await app.connect();
      await app.query('BEGIN');
      await app.query('SELECT * FROM events WHERE id = 2 FOR UPDATE');
      const started = Date.now();
      const summary = await archiveWith(fx.configFor([eventsTable], { batch_size: 10, lock_timeout_ms: 60_000 }), fx.store);
      const elapsed = Date.now() - started;
      await app.query('COMMIT');
      await app.end();
      expect(summary.tables[0]!.rowsArchived).toBe(5);
      expect(summary.tables[0]!.rowsSkipped).toBe(1);
      expect(await rowIds(fx.db)).toEqual(['2']);
      expect(elapsed).toBeLessThan(30_000);
      const archive = await inspectArchive(fx.store);
      expect(archive.objects.flatMap((o) => o.meta.primary_keys.map((k) => k[0]))).toEqual(['1', '3', '4', '5', '6']);
    });
  }

  it('a table lock the application holds past the plain DELETE\'s wait: the same transaction, named in the sidecar, deletes the batch and commits', async () => {
    // The sidecar records the delete transaction's id before the DELETE; giving up on the plain
    // DELETE must keep that transaction (a savepoint), or the sidecar would name an aborted one
    // and a later reconciliation would remove a committed object.
    await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
    const app = new pg.Client({ connectionString: fx.db.url });
    await app.connect();
    let released: Promise<void> | undefined;
    const summary = await archiveWith(fx.configFor([eventsTable], { batch_size: 10, lock_timeout_ms: 60_000 }), fx.store, {
      onPhase: async (phase) => {
        if (phase !== 'after-metadata' || released !== undefined) return;
        // Conflicts with the DELETE's ROW EXCLUSIVE lock; held ten times the plain DELETE's wait.
        await app.query('BEGIN');
        await app.query('LOCK TABLE events IN SHARE MODE');
        released = new Promise((resolve) => setTimeout(resolve, 10 * FAST_DELETE_LOCK_WAIT_MS)).then(async () => {
          await app.query('COMMIT');
        });
      },
    });
    await released;
    await app.end();
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(6);
    expect(await rowIds(fx.db)).toEqual([]);
    const archive = await inspectArchive(fx.store);
    expect(archive.objects).toHaveLength(1);
    const txid = archive.objects[0]!.meta.delete_txid;
    expect(txid).toMatch(/^[0-9]+$/);
    expect((await fx.db.query('SELECT txid_status($1::bigint) AS s', [txid])).rows[0].s).toBe('committed');
  });

  it(`skips locked rows from the start in a batch over ${PLAIN_DELETE_MAX_ROWS} rows (the plain delete could take too long to wait at all)`, async () => {
    const rows = PLAIN_DELETE_MAX_ROWS + 1;
    await fx.db.query(`CREATE TABLE big (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL)`);
    await fx.db.query(`INSERT INTO big SELECT g, date_trunc('day', now()) - interval '30 days' + g * interval '1 ms' FROM generate_series(1, $1::int) AS g`, [rows]);
    const app = new pg.Client({ connectionString: fx.db.url });
    await app.connect();
    await app.query('BEGIN');
    await app.query('SELECT * FROM big WHERE id = 5 FOR UPDATE');
    const summary = await archiveWith(fx.configFor([{ name: 'big', timestamp_column: 'happened_at' }], { batch_size: rows + 10, lock_timeout_ms: 60_000 }), fx.store);
    await app.query('COMMIT');
    await app.end();
    expect(summary.tables[0]!.batches).toBe(1);
    expect(summary.tables[0]!.rowsArchived).toBe(rows - 1);
    expect(summary.tables[0]!.rowsSkipped).toBe(1);
    expect(await rowIds(fx.db, 'public', 'big')).toEqual(['5']);
  });

  it('a row the plain delete waited for moved to another partition meanwhile: the batch skips it instead of failing', async () => {
    await fx.db.query(`CREATE TABLE parted (id bigint, happened_at timestamptz NOT NULL, kind text NOT NULL, PRIMARY KEY (id, kind)) PARTITION BY LIST (kind)`);
    await fx.db.query(`CREATE TABLE parted_a PARTITION OF parted FOR VALUES IN ('a')`);
    await fx.db.query(`CREATE TABLE parted_b PARTITION OF parted FOR VALUES IN ('b')`);
    await fx.db.query(`INSERT INTO parted SELECT g, date_trunc('day', now()) - interval '30 days' + g * interval '1 minute', 'a' FROM generate_series(1, 6) AS g`);
    const app = new pg.Client({ connectionString: fx.db.url });
    await app.connect();
    await app.query('BEGIN');
    await app.query(`UPDATE parted SET kind = 'b' WHERE id = 3`);
    // Commit the move as soon as the archiver waits for the row: its plain DELETE then finds the
    // row moved (40001), or, if this comes too late, its 100 ms wait expired (55P03). Either way
    // the batch must go on with SKIP LOCKED.
    const watcher = (async () => {
      for (let i = 0; i < 2_000; i++) {
        const waiting = await fx.db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DELETE%'`);
        if (waiting.rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      await app.query('COMMIT');
    })();
    const summary = await archiveWith(fx.configFor([{ name: 'parted', timestamp_column: 'happened_at', primary_key: ['id', 'kind'] }], { lock_timeout_ms: 60_000 }), fx.store);
    await watcher;
    await app.end();
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(5);
    expect(summary.tables[0]!.rowsSkipped).toBe(1);
    expect((await fx.db.query(`SELECT id::text, kind FROM parted`)).rows).toEqual([{ id: '3', kind: 'b' }]);
  });

  it('archives a table whose primary key is an array (keys travel to the delete as text; found in review)', async () => {
    await fx.db.query(`CREATE TABLE arr (id int[] PRIMARY KEY, happened_at timestamptz NOT NULL)`);
    await fx.db.query(`INSERT INTO arr SELECT ARRAY[g, g * 10], date_trunc('day', now()) - interval '30 days' + g * interval '1 minute' FROM generate_series(1, 4) AS g`);
    const summary = await archiveWith(fx.configFor([{ name: 'arr', timestamp_column: 'happened_at' }]), fx.store);
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(4);
    expect(Number((await fx.db.query('SELECT count(*) AS n FROM arr')).rows[0].n)).toBe(0);
    const archive = await inspectArchive(fx.store);
    expect(archive.objects.flatMap((o) => o.meta.primary_keys.map((k) => k[0]))).toEqual(['{1,10}', '{2,20}', '{3,30}', '{4,40}']);
  });

  it('refuses a table without a primary key, with a clear error, and goes on with the next table', async () => {
    await fx.db.query(`CREATE TABLE nokey (happened_at timestamptz NOT NULL, note text)`);
    await fx.db.query(`INSERT INTO nokey SELECT now() - interval '30 days', 'x' FROM generate_series(1, 5)`);
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const summary = await archiveWith(fx.configFor([{ name: 'nokey', timestamp_column: 'happened_at' }, eventsTable]), fx.store);
    expect(summary.failed).toBe(1);
    const [nokey, events] = summary.tables;
    expect(nokey!.status).toBe('failed');
    expect(nokey!.error!.code).toBe('NO_PRIMARY_KEY');
    expect(nokey!.error!.message).toContain('public.nokey');
    expect(Number((await fx.db.query('SELECT count(*) AS n FROM nokey')).rows[0].n)).toBe(5);
    expect(events!.rowsArchived).toBe(5);
  });

  it('refuses a configured primary_key that is not unique', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const summary = await archiveWith(fx.configFor([{ ...eventsTable, primary_key: 'kind' }]), fx.store);
    expect(summary.tables[0]!.error!.code).toBe('NO_PRIMARY_KEY');
    expect(summary.tables[0]!.error!.message).toContain('not unique');
    expect(await rowIds(fx.db)).toHaveLength(5);
  });

  it('refuses unknown tables and columns by name, deleting nothing', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const summary = await archiveWith(
      fx.configFor([
        { name: 'Events', timestamp_column: 'happened_at' },
        { name: 'events', timestamp_column: 'created' },
      ]),
      fx.store,
    );
    expect(summary.tables.map((t) => t.error?.code)).toEqual(['TABLE_NOT_FOUND', 'COLUMN_NOT_FOUND']);
    expect(summary.tables[0]!.error!.message).toContain('public.Events');
    expect(summary.tables[1]!.error!.message).toContain('"created"');
    expect(summary.tables[1]!.error!.message).toContain('happened_at');
    expect(await rowIds(fx.db)).toHaveLength(5);
    // Nothing archived; only each table's state, recording the failure for `auditlog status`.
    expect((await inspectArchive(fx.store)).allKeys).toEqual(['_auditlog/state/app/public.Events.json', '_auditlog/state/app/public.events.json']);
    const state = JSON.parse((await fx.store.get('_auditlog/state/app/public.Events.json'))!.toString('utf8')) as TableState;
    expect(state).toMatchObject({ watermark: null, last_run: { status: 'failed', error: { code: 'TABLE_NOT_FOUND' } } });
  });

  it('a name with a dot that is not found suggests schema: and name: (name: public.events read as "public.public.events not found")', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const summary = await archiveWith(fx.configFor([{ name: 'public.events', timestamp_column: 'happened_at' }, { name: 'Events', timestamp_column: 'happened_at' }]), fx.store);
    expect(summary.tables.map((t) => t.error?.code)).toEqual(['TABLE_NOT_FOUND', 'TABLE_NOT_FOUND']);
    expect(summary.tables[0]!.error!.message).toBe(
      'table public.public.events not found in database "app" (check databases[].tables[].schema/name; names are case-sensitive; a name is taken as written, dots included: for table events in schema public, write `schema: public, name: events`)',
    );
    // No dot, no suggestion.
    expect(summary.tables[1]!.error!.message).toBe('table public.Events not found in database "app" (check databases[].tables[].schema/name; names are case-sensitive)');
    expect(await rowIds(fx.db)).toHaveLength(5);
  });

  it('refuses a timestamp column that is not a timestamp', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const summary = await archiveWith(fx.configFor([{ name: 'events', timestamp_column: 'kind' }]), fx.store);
    expect(summary.tables[0]!.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(summary.tables[0]!.error!.message).toContain('expected timestamptz, timestamp or date');
    expect(await rowIds(fx.db)).toHaveLength(5);
  });

  it('handles hostile identifiers: schema, table and columns with quotes, semicolons and spaces', async () => {
    await fx.db.query(`CREATE SCHEMA "we""ird;"`);
    await fx.db.query(`CREATE TABLE "we""ird;"."weird ""name"";" ("select" bigint PRIMARY KEY, "from ""x""" timestamptz NOT NULL, "DROP TABLE x;" text)`);
    await fx.db.query(`INSERT INTO "we""ird;"."weird ""name"";" SELECT g, now() - interval '40 days' + make_interval(secs => g), 'v' || g FROM generate_series(1, 12) g`);
    const summary = await archiveWith(fx.configFor([{ schema: 'we"ird;', name: 'weird "name";', timestamp_column: 'from "x"', primary_key: 'select' }]), fx.store);
    expect(summary.failed).toBe(0);
    expect(summary.tables[0]!.rowsArchived).toBe(12);
    expect(Number((await fx.db.query(`SELECT count(*) AS n FROM "we""ird;"."weird ""name"";"`)).rows[0].n)).toBe(0);
    const archive = await inspectArchive(fx.store);
    for (const o of archive.objects) expect(o.key.startsWith('app/we%22ird%3B.weird%20%22name%22%3B/year=')).toBe(true);
    const first = JSON.parse(archive.objects[0]!.lines[0]!) as Record<string, unknown>;
    expect(Object.keys(first)).toEqual(['select', 'from "x"', 'DROP TABLE x;']);
    expect(archivedKeyCounts(archive).size).toBe(12);
  });

  // Found in review: the row was rendered as row_to_json(t) (and, with array or json columns,
  // row_to_json(p)); a bare name is a column before it is a row, so a table with a column named t
  // (say, its timestamp) or p could not be archived at all ("function row_to_json(timestamp with
  // time zone) does not exist").
  for (const [kind, extra] of [
    ['without', ''],
    ['with', ', "arr" int[]'],
  ] as const) {
    it(`archives the whole row when columns are named like the SQL's own aliases (t, p, l, b, d, c, h, x, k), ${kind} array columns`, async () => {
      await fx.db.query(`CREATE TABLE aliases (id bigint PRIMARY KEY, t timestamptz NOT NULL, p text, l text, b int, d text, c text, h text, x text, k text${extra})`);
      await fx.db.query(
        `INSERT INTO aliases SELECT g, now() - interval '40 days' + make_interval(secs => g), 'p' || g, 'l', g, 'd', 'c', 'h', 'x', 'k'${extra === '' ? '' : ", '[0:1]={1,2}'"} FROM generate_series(1, 4) g`,
      );
      const before = (await fx.db.query<{ row: string }>(`SELECT ROW(r.*)::text AS row FROM aliases r ORDER BY id`)).rows.map((r) => r.row);
      const summary = await archiveWith(fx.configFor([{ name: 'aliases', timestamp_column: 't' }]), fx.store);
      expect(summary.tables[0]!.error).toBeUndefined();
      expect(summary.tables[0]!.rowsArchived).toBe(4);
      const archive = await inspectArchive(fx.store);
      const lines = archive.objects.flatMap((o) => o.lines);
      expect(lines).toHaveLength(4);
      const columns = ['id', 't', 'p', 'l', 'b', 'd', 'c', 'h', 'x', 'k', ...(extra === '' ? [] : ['arr'])];
      for (const line of lines) expect(Object.keys(JSON.parse(line) as object)).toEqual(columns);
      await fx.db.query(`CREATE TABLE loaded (LIKE aliases)`);
      for (const line of lines) await fx.db.query(`INSERT INTO loaded SELECT * FROM json_populate_record(NULL::aliases, $1::json)`, [line]);
      const after = (await fx.db.query<{ row: string }>(`SELECT ROW(r.*)::text AS row FROM loaded r ORDER BY id`)).rows.map((r) => r.row);
      expect(after).toEqual(before);
    });
  }

  // Found in review: the delete of archived rows cascaded into tables that reference them.
  for (const action of ['CASCADE', 'SET NULL'] as const) {
    it(`refuses a table referenced by a foreign key ON DELETE ${action}: the referencing rows are archived nowhere`, async () => {
      await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
      await fx.db.query(`CREATE TABLE comments (id int PRIMARY KEY, event_id bigint REFERENCES events (id) ON DELETE ${action}, body text)`);
      await fx.db.query(`INSERT INTO comments VALUES (1, 2, 'about event 2')`);
      const summary = await archiveWith(fx.configFor([eventsTable]), fx.store);
      expect(summary.tables[0]!.error!.code).toBe('TABLE_NOT_SUPPORTED');
      expect(summary.tables[0]!.error!.message).toContain(`referenced by foreign key "comments_event_id_fkey" of public.comments with ON DELETE ${action}`);
      expect(await rowIds(fx.db)).toHaveLength(6);
      expect((await fx.db.query(`SELECT event_id::text AS e FROM comments`)).rows).toEqual([{ e: '2' }]);
      expect((await inspectArchive(fx.store)).objects).toEqual([]);
    });
  }

  it('archives a table referenced ON DELETE NO ACTION; a row still referenced fails its batch and nothing is deleted', async () => {
    await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
    await fx.db.query(`CREATE TABLE comments (id int PRIMARY KEY, event_id bigint REFERENCES events (id), body text)`);
    await fx.db.query(`INSERT INTO comments VALUES (1, 2, 'about event 2')`);
    const referenced = await archiveWith(fx.configFor([eventsTable], { batch_size: 10 }), fx.store);
    expect(referenced.tables[0]!.error!.message).toContain('23503');
    expect(await rowIds(fx.db)).toHaveLength(6);
    await fx.db.query(`DELETE FROM comments`);
    const unreferenced = await archiveWith(fx.configFor([eventsTable], { batch_size: 10 }), fx.store);
    expect(unreferenced.tables[0]!.error).toBeUndefined();
    expect(unreferenced.tables[0]!.rowsArchived).toBe(6);
    expect(archivedKeyCounts(await inspectArchive(fx.store)).size).toBe(6);
  });

  // Found in review: the children's own columns were deleted and archived nowhere.
  it('refuses an ordinary table with INHERITS children, deleting nothing', async () => {
    await fx.db.query(`CREATE TABLE parent (id int PRIMARY KEY, at timestamptz NOT NULL)`);
    await fx.db.query(`CREATE TABLE child (extra text, PRIMARY KEY (id)) INHERITS (parent)`);
    await fx.db.query(`INSERT INTO child VALUES (1, now() - interval '40 days', 'only copy of this value')`);
    const summary = await archiveWith(fx.configFor([{ name: 'parent', timestamp_column: 'at' }]), fx.store);
    expect(summary.tables[0]!.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(summary.tables[0]!.error!.message).toContain('has inheritance children (public.child)');
    expect((await fx.db.query(`SELECT extra FROM child`)).rows).toEqual([{ extra: 'only copy of this value' }]);
    expect((await inspectArchive(fx.store)).objects).toEqual([]);
    // The child on its own is an ordinary table with all its columns.
    const child = await archiveWith(fx.configFor([{ name: 'child', timestamp_column: 'at' }]), fx.store);
    expect(child.tables[0]!.rowsArchived).toBe(1);
    expect(Object.keys(JSON.parse((await inspectArchive(fx.store)).objects[0]!.lines[0]!) as object)).toEqual(['id', 'at', 'extra']);
  });

  it('refuses a table of 1,600 columns, which restore could never load back (its staging table adds one); 1,599 are archived and restored', async () => {
    const cols = (n: number): string => Array.from({ length: n }, (_, i) => `, c${i} int`).join('');
    await fx.db.query(`CREATE TABLE wide (id int PRIMARY KEY, at timestamptz NOT NULL${cols(1598)})`);
    await fx.db.query(`INSERT INTO wide (id, at, c0, c1597) VALUES (1, now() - interval '40 days', 7, 8)`);
    const refused = await archiveWith(fx.configFor([{ name: 'wide', timestamp_column: 'at' }]), fx.store);
    expect(refused.tables[0]!.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(refused.tables[0]!.error!.message).toContain('has 1600 columns; at most 1599 can be archived');
    expect((await fx.db.query(`SELECT count(*)::int AS n FROM wide`)).rows[0].n).toBe(1);
    expect((await inspectArchive(fx.store)).objects).toEqual([]);
    await fx.db.query(`ALTER TABLE wide DROP COLUMN c1597`);
    const archived = await archiveWith(fx.configFor([{ name: 'wide', timestamp_column: 'at' }]), fx.store);
    expect(archived.tables[0]!.rowsArchived).toBe(1);
    const restored = await restoreWith(fx.configFor([{ name: 'wide', timestamp_column: 'at' }]), fx.store, { table: 'wide', target: { schema: 'public', table: 'wide_back' } });
    expect(restored.rows.restored).toBe(1);
    expect((await fx.db.query(`SELECT id, c0 FROM wide_back`)).rows).toEqual([{ id: 1, c0: 7 }]);
  });

  // Found in review: FOR UPDATE SKIP LOCKED and the reconciliation's FOR KEY SHARE need UPDATE.
  it('refuses a role without UPDATE or DELETE on the table before reading anything, naming the GRANT; with them a locked row is skipped', async () => {
    await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
    const role = `archiver_${fx.db.name}`.slice(0, 60);
    // A password, so the login works under password authentication too (the embedded fallback).
    await fx.db.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'archiver-pw'`);
    try {
      await fx.db.query(`GRANT USAGE ON SCHEMA public TO "${role}"`);
      await fx.db.query(`GRANT SELECT, DELETE ON events TO "${role}"`);
      const url = new URL(fx.db.url);
      url.username = role;
      url.password = 'archiver-pw';
      const asRole = (): ReturnType<typeof fx.configFor> => {
        const config = fx.configFor([eventsTable], { batch_size: 10 });
        config.databases[0]!.url = url.toString();
        return config;
      };
      // A dry run needs only SELECT: it counts, and warns of what the real run would stop at.
      const lines: string[] = [];
      const dry = await archiveWith(asRole(), fx.store, { dryRun: true, logger: pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }) });
      expect(dry.tables[0]!.status).toBe('dry-run');
      expect(dry.tables[0]!.dryRun!.rows).toBe(6);
      expect(lines.join('')).toContain('lacks UPDATE on public.events');

      const refused = await archiveWith(asRole(), fx.store);
      expect(refused.tables[0]!.error!.code).toBe('DB_PRIVILEGE');
      expect(refused.tables[0]!.error!.message).toContain(`lacks UPDATE on public.events`);
      expect(refused.tables[0]!.error!.message).toContain(`GRANT SELECT, UPDATE, DELETE ON public.events TO ${role}`);
      expect(await rowIds(fx.db)).toHaveLength(6);
      expect((await inspectArchive(fx.store)).objects).toEqual([]);

      await fx.db.query(`GRANT UPDATE ON events TO "${role}"`);
      const app = new pg.Client({ connectionString: fx.db.url });
      await app.connect();
      try {
        await app.query('BEGIN');
        await app.query('SELECT * FROM events WHERE id = 2 FOR UPDATE');
        const archived = await archiveWith(asRole(), fx.store);
        expect(archived.tables[0]!.error).toBeUndefined();
        expect(archived.tables[0]!.rowsArchived).toBe(5);
        expect(archived.tables[0]!.rowsSkipped).toBe(1);
      } finally {
        await app.query('COMMIT');
        await app.end();
      }
      expect(await rowIds(fx.db)).toEqual(['2']);
    } finally {
      await fx.db.query(`DROP OWNED BY "${role}"`);
      await fx.db.query(`DROP ROLE "${role}"`);
    }
  });

  // Found by probing: each of these failed with a bare "permission denied" (DB_QUERY) naming no
  // GRANT — without SELECT on pg_locks only after the batches were uploaded, on every run.
  it('refuses a role lacking USAGE on the schema, SELECT on some column or SELECT on pg_locks before reading anything, naming each GRANT', async () => {
    await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
    const role = `grants_${fx.db.name}`.slice(0, 60);
    await fx.db.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'grants-pw'`);
    try {
      await fx.db.query(`REVOKE USAGE ON SCHEMA public FROM PUBLIC`);
      await fx.db.query(`REVOKE SELECT ON pg_catalog.pg_locks FROM PUBLIC`);
      await fx.db.query(`GRANT UPDATE, DELETE ON events TO "${role}"`);
      await fx.db.query(`GRANT SELECT (id, happened_at) ON events TO "${role}"`);
      const url = new URL(fx.db.url);
      url.username = role;
      url.password = 'grants-pw';
      const config = fx.configFor([eventsTable], { batch_size: 10 });
      config.databases[0]!.url = url.toString();
      const refused = async (): Promise<string> => {
        const summary = await archiveWith(config, fx.store);
        expect(summary.tables[0]).toMatchObject({ status: 'failed', rowsArchived: 0, error: { code: 'DB_PRIVILEGE' } });
        expect(await rowIds(fx.db)).toHaveLength(6);
        expect((await inspectArchive(fx.store)).objects).toEqual([]);
        return summary.tables[0]!.error!.message;
      };
      const all = await refused();
      expect(all).toContain(`role ${role} lacks USAGE on schema public; SELECT on public.events (SELECT on every column); SELECT on pg_catalog.pg_locks`);
      expect(all).toContain(`GRANT USAGE ON SCHEMA public TO ${role}; GRANT SELECT, UPDATE, DELETE ON public.events TO ${role}; GRANT SELECT ON pg_catalog.pg_locks TO ${role}`);
      await fx.db.query(`GRANT USAGE ON SCHEMA public TO "${role}"`);
      await fx.db.query(`GRANT SELECT ON events TO "${role}"`);
      expect(await refused()).toContain(`role ${role} lacks SELECT on pg_catalog.pg_locks`);
      await fx.db.query(`GRANT SELECT ON pg_catalog.pg_locks TO "${role}"`);
      const archived = await archiveWith(config, fx.store);
      expect(archived.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 6 });
      expect(await rowIds(fx.db)).toEqual([]);
    } finally {
      await fx.db.query(`DROP OWNED BY "${role}"`);
      await fx.db.query(`DROP ROLE "${role}"`);
    }
  });

  // Found by probing: a read-only default failed only after uploading; replica skipped FK checks and triggers.
  for (const [setting, expected] of [
    ['default_transaction_read_only = on', 'gives the archiver read-only transactions'],
    ['session_replication_role = replica', 'run with session_replication_role = replica'],
  ] as const) {
    it(`refuses a database whose sessions start with ${setting}, before anything is written`, async () => {
      await createEventsTable(fx.db, { rows: 6, stepMinutes: 1, endDaysAgo: 20 });
      await fx.db.query(`ALTER DATABASE "${fx.db.name}" SET ${setting}`);
      const summary = await archiveWith(fx.configFor([eventsTable]), fx.store);
      expect(summary.tables[0]!.error!.code).toBe('DB_SESSION');
      expect(summary.tables[0]!.error!.message).toContain(expected);
      expect(await rowIds(fx.db)).toHaveLength(6);
      const archive = await inspectArchive(fx.store);
      expect(archive.objects).toEqual([]);
      expect(archive.pendingMarkers).toEqual([]);
    });
  }

  it('reports an unreachable database per table, never printing its password, and archives the other databases', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const config = buildConfig({
      s3: fx.s3cfg,
      defaults: { retention_days: 10 },
      databases: [
        { name: 'down', url: 'postgres://nobody:sekrit-pw@127.0.0.1:1/none', tables: [eventsTable] },
        { name: 'app', url: fx.db.url, tables: [eventsTable] },
      ],
    });
    const summary = await archiveWith(config, fx.store, { secrets: ['sekrit-pw'] });
    expect(summary.failed).toBe(1);
    expect(summary.tables[0]!.error!.code).toBe('DB_CONNECT');
    expect(summary.tables[0]!.error!.message).toContain('"down"');
    expect(summary.tables[0]!.error!.message).not.toContain('sekrit-pw');
    expect(summary.tables[1]!.rowsArchived).toBe(5);
  });

  it('fails before reading anything when the bucket does not exist', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const wrong = new S3ObjectStore({ ...fx.s3cfg, bucket: 'no-such-bucket-here' });
    await expect(archiveWith(fx.configFor([eventsTable]), wrong)).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND' });
    expect(await rowIds(fx.db)).toHaveLength(5);
  });

  it('lets only one archiver work on a table: the second fails fast naming the holder', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const holder = new pg.Client({ connectionString: fx.db.url, application_name: 'other-archiver' });
    await holder.connect();
    const oid = (await holder.query(`SELECT 'public.events'::regclass::oid::int AS oid`)).rows[0].oid as number;
    await holder.query('SELECT pg_advisory_lock($1::int, $2::int)', [LOCK_NAMESPACE, oid]);
    try {
      const summary = await archiveWith(fx.configFor([eventsTable]), fx.store);
      expect(summary.tables[0]!.error!.code).toBe('LOCK_HELD');
      expect(summary.tables[0]!.error!.message).toContain('other-archiver');
      expect(await rowIds(fx.db)).toHaveLength(5);
    } finally {
      await holder.end();
    }
    const after = await archiveWith(fx.configFor([eventsTable]), fx.store);
    expect(after.tables[0]!.rowsArchived).toBe(5);
  });

  it('gives up on a table it cannot lock within lock_timeout, with the SQLSTATE, and goes on', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    await fx.db.query('CREATE TABLE other (LIKE events INCLUDING ALL)');
    await fx.db.query('INSERT INTO other SELECT * FROM events');
    const app = new pg.Client({ connectionString: fx.db.url });
    await app.connect();
    await app.query('BEGIN');
    await app.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
    try {
      const summary = await archiveWith(fx.configFor([eventsTable, { name: 'other', timestamp_column: 'happened_at' }], { lock_timeout_ms: 200 }), fx.store);
      expect(summary.tables[0]!.error?.code).toBe('DB_QUERY');
      expect(summary.tables[0]!.error?.message).toContain('55P03');
      // PostgreSQL names no lock and no holder: the message says where to look (found by probing, with a partition locked).
      expect(summary.tables[0]!.error?.message).toContain('another session held a lock on the table (or, for a partitioned table, on any of its partitions) longer than lock_timeout_ms');
      expect(summary.tables[1]!.rowsArchived).toBe(5);
    } finally {
      await app.query('ROLLBACK');
      await app.end();
    }
    expect(await rowIds(fx.db)).toHaveLength(5);
  });

  it.each([
    ['an array of json', 'json[]', `ARRAY['{"a":\n1}'::json]`],
    ['a composite type', 'pair', `ROW(1, 'x')::pair`],
  ])('refuses a table with %s column (a nested json value could hold a raw newline), deleting nothing', async (_name, type, value) => {
    await fx.db.query(`CREATE TYPE pair AS (n int, s text)`);
    await fx.db.query(`CREATE TABLE nested (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, v ${type})`);
    await fx.db.query(`INSERT INTO nested SELECT g, now() - interval '30 days', ${value} FROM generate_series(1, 3) g`);
    const summary = await archiveWith(fx.configFor([{ name: 'nested', timestamp_column: 'happened_at' }]), fx.store);
    expect(summary.tables[0]!.error?.code).toBe('TABLE_NOT_SUPPORTED');
    expect(summary.tables[0]!.error?.message).toContain('column "v"');
    expect(Number((await fx.db.query('SELECT count(*) AS n FROM nested')).rows[0].n)).toBe(3);
    // Nothing archived; only the table's state, recording the failure for `auditlog status`.
    expect((await inspectArchive(fx.store)).allKeys).toEqual(['_auditlog/state/app/public.nested.json']);
  });
});

