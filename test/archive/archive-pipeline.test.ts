/**
 * The archive pipeline against a real PostgreSQL and a real S3-compatible server: batching,
 * day boundaries, metadata, idempotent reruns, dry run, concurrent changes (I2), refusals (I6).
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import { RunEvents } from '../../src/core/run-events.js';

const fx = useArchiveFixture();


describe('archive pipeline', () => {
  it('moves exactly the rows past the retention, in single-day batches of at most batch_size, each verified with metadata', async () => {
    // 100 rows, one every 50 minutes, the newest 9 days ago... so rows span ~3.5 days around 9-12 days ago.
    await createEventsTable(fx.db, { rows: 100, stepMinutes: 50, endDaysAgo: 9 });
    await fx.db.query(`CREATE TABLE seeded AS SELECT id, happened_at FROM events`);
    // The rows past the cutoff the run itself computed: a count taken before the run can miss the
    // row the clock passes meanwhile (one lies on the cutoff every 50 minutes of the day).
    const events = new RunEvents();
    let cutoff: string | undefined;
    events.on('table:started', (e) => void (cutoff = e.cutoff));
    const runAt = Date.now();
    const summary = await archiveWith(fx.configFor([eventsTable]), fx.store, { events });
    expect(Math.abs(Date.parse(cutoff!) - (runAt - 10 * 86_400_000))).toBeLessThan(60_000);
    const old = await fx.db.query<{ id: string }>(`SELECT id::text AS id FROM seeded WHERE happened_at < $1::timestamptz ORDER BY id`, [cutoff]);
    expect(old.rows.length).toBeGreaterThan(20);
    expect(old.rows.length).toBeLessThan(100);
    expect(summary.failed).toBe(0);
    const t = summary.tables[0]!;
    expect(t.rowsArchived).toBe(old.rows.length);

    const remaining = await rowIds(fx.db);
    expect(remaining).toHaveLength(100 - old.rows.length);
    expect(remaining.some((id) => old.rows.some((o) => o.id === id))).toBe(false);

    const archive = await inspectArchive(fx.store);
    expect(archive.pendingMarkers).toEqual([]);
    expect(archive.withoutMetadata).toEqual([]);
    expect(archive.objects.length).toBe(t.batches);
    const counts = archivedKeyCounts(archive);
    expect([...counts.keys()].sort()).toEqual(old.rows.map((r) => r.id).sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);

    for (const o of archive.objects) {
      const m = o.meta;
      expect(m.record_count).toBe(o.lines.length);
      expect(m.record_count).toBeLessThanOrEqual(7);
      expect(o.key).toMatch(/^app\/public\.events\/year=\d{4}\/month=\d{2}\/day=\d{2}\/[0-9]{12}-[0-9a-f]{16}\.jsonl\.gz$/);
      const day = /year=(\d{4})\/month=(\d{2})\/day=(\d{2})/.exec(o.key)!.slice(1).join('-');
      // Lines in manifest order; every row's timestamp lies in the object's UTC day.
      const parsed = o.lines.map((l) => JSON.parse(l) as { id: number; happened_at: string });
      expect(parsed.map((p) => String(p.id))).toEqual(m.primary_keys.map((k) => k[0]));
      for (const p of parsed) expect(p.happened_at.startsWith(day)).toBe(true);
      expect(m.min_timestamp.startsWith(day)).toBe(true);
      expect(m.max_timestamp.startsWith(day)).toBe(true);
      expect(m.format_version).toBe(1);
      expect(m.primary_key_columns).toEqual(['id']);
      const ids = m.primary_keys.map((k) => Number(k[0]));
      expect(m.min_primary_key).toEqual([String(Math.min(...ids))]);
      expect(m.max_primary_key).toEqual([String(Math.max(...ids))]);
      expect(m.compressed_bytes).toBe((await fx.store.head(o.key))!.size);
      expect(sha256Hex((await fx.store.get(o.key))!)).toBe(m.sha256_compressed);
      expect(m.run_id).toBe(summary.runId);
    }
    // Full batches where a day has enough rows: batching cuts at batch_size, not only at day ends.
    expect(archive.objects.filter((o) => o.meta.record_count === 7).length).toBeGreaterThan(2);
  });

  it('is idempotent: a second run archives nothing and leaves every object as it was', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const first = await archiveWith(fx.configFor([eventsTable]), fx.store);
    expect(first.tables[0]!.rowsArchived).toBe(40);
    const before = await inspectArchive(fx.store);
    const second = await archiveWith(fx.configFor([eventsTable]), fx.store);
    expect(second.failed).toBe(0);
    expect(second.tables[0]!.rowsArchived).toBe(0);
    expect(second.tables[0]!.status).toBe('nothing-to-archive');
    const after = await inspectArchive(fx.store);
    expect(after.allKeys).toEqual(before.allKeys);
    expect(after.objects.map((o) => o.meta.sha256_compressed)).toEqual(before.objects.map((o) => o.meta.sha256_compressed));
  });

  it('dry run counts and reports, writes nothing and deletes nothing', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 9 });
    const runAt = Date.now();
    const summary = await archiveWith(fx.configFor([eventsTable]), fx.store, { dryRun: true });
    const t = summary.tables[0]!;
    expect(t.status).toBe('dry-run');
    // Counted at the cutoff the run computed: one row lies on the cutoff every hour of the day, so a
    // count taken before the run could differ from the run's by the row the clock passed meanwhile.
    expect(Math.abs(Date.parse(t.dryRun!.cutoff) - (runAt - 10 * 86_400_000))).toBeLessThan(60_000);
    const old = Number((await fx.db.query(`SELECT count(*) AS n FROM events WHERE happened_at < $1::timestamptz`, [t.dryRun!.cutoff])).rows[0].n);
    expect(t.dryRun!.rows).toBe(old);
    expect(t.dryRun!.estimatedBatches).toBe(Math.ceil(old / 7));
    expect(await rowIds(fx.db)).toHaveLength(30);
    expect((await inspectArchive(fx.store)).allKeys).toEqual([]);
  });

  it("dry run's estimated batches are the batches the run then makes: per UTC day, not rows ÷ batch_size", async () => {
    // 100 rows, one every 50 minutes over ~3.5 days, all past the retention: days of 28, 29 and
    // 14-ish rows, each cut into batches of 7, and pages of 7 that end inside a day.
    await createEventsTable(fx.db, { rows: 100, stepMinutes: 50, endDaysAgo: 12 });
    const perDay = await fx.db.query<{ n: string }>(`SELECT count(*) AS n FROM events GROUP BY (happened_at AT TIME ZONE 'UTC')::date`);
    const expected = perDay.rows.reduce((b, r) => b + Math.ceil(Number(r.n) / 7), 0);
    expect(expected).toBeGreaterThan(Math.ceil(100 / 7));
    const dry = (await archiveWith(fx.configFor([eventsTable]), fx.store, { dryRun: true })).tables[0]!;
    expect(dry.dryRun!.rows).toBe(100);
    expect(dry.dryRun!.estimatedBatches).toBe(expected);
    const real = (await archiveWith(fx.configFor([eventsTable]), fx.store)).tables[0]!;
    expect(real.rowsArchived).toBe(100);
    expect(real.batches).toBe(dry.dryRun!.estimatedBatches);
  });

  it('does not delete a row updated after it was read: its new version survives and the object omits it', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 1, endDaysAgo: 20 });
    const other = new pg.Client({ connectionString: fx.db.url });
    await other.connect();
    let updated = false;
    const summary = await archiveWith(fx.configFor([eventsTable], { batch_size: 10 }), fx.store, {
      onPhase: async (phase) => {
        if (phase === 'after-upload' && !updated) {
          updated = true;
          await other.query(`UPDATE events SET note = 'changed after read' WHERE id = 4`);
        }
      },
    });
    await other.end();
    expect(updated).toBe(true);
    expect(summary.failed).toBe(0);
    const t = summary.tables[0]!;
    expect(t.rowsArchived).toBe(9);
    expect(t.rowsSkipped).toBe(1);
    const left = await fx.db.query<{ id: string; note: string }>(`SELECT id::text AS id, note FROM events`);
    expect(left.rows).toEqual([{ id: '4', note: 'changed after read' }]);
    const archive = await inspectArchive(fx.store);
    expect(archive.objects).toHaveLength(1);
    expect(archive.objects[0]!.meta.primary_keys.map((k) => k[0])).toEqual(['1', '2', '3', '5', '6', '7', '8', '9', '10']);
    expect(archive.objects[0]!.lines.every((l) => !l.includes('"id":4,'))).toBe(true);
    expect(archive.pendingMarkers).toEqual([]);
  });
});

describe('selection and parallelism', () => {
  it('--database and --table select what runs; parallel_databases archives several databases at once', async () => {
    const other = await createTestDatabase();
    try {
      await createEventsTable(fx.db, { rows: 12, stepMinutes: 1, endDaysAgo: 20 });
      await createEventsTable(other, { rows: 9, stepMinutes: 1, endDaysAgo: 20 });
      await other.query('CREATE TABLE second (LIKE events INCLUDING ALL)');
      await other.query('INSERT INTO second SELECT * FROM events');
      const config = buildConfig({
        s3: fx.s3cfg,
        defaults: { retention_days: 10 },
        parallel_databases: true,
        max_parallel_databases: 2,
        databases: [
          { name: 'one', url: fx.db.url, tables: [eventsTable] },
          { name: 'two', url: other.url, tables: [eventsTable, { name: 'second', timestamp_column: 'happened_at' }] },
        ],
      });

      const onlySecond = await archiveWith(config, fx.store, { database: 'two', table: 'public.second' });
      expect(onlySecond.tables.map((t) => `${t.database}/${t.table}:${t.rowsArchived}`)).toEqual(['two/second:9']);
      expect(await rowIds(fx.db)).toHaveLength(12);
      expect(await rowIds(other)).toHaveLength(9);

      await expect(archiveWith(config, fx.store, { database: 'three' })).rejects.toMatchObject({ code: 'USAGE' });
      await expect(archiveWith(config, fx.store, { table: 'nope' })).rejects.toMatchObject({ code: 'USAGE' });

      const all = await archiveWith(config, fx.store);
      expect(all.failed).toBe(0);
      expect(all.tables.map((t) => `${t.database}/${t.table}:${t.rowsArchived}`)).toEqual(['one/events:12', 'two/events:9', 'two/second:0']);
      const prefixes = new Set((await inspectArchive(fx.store)).objects.map((o) => o.key.split('/').slice(0, 2).join('/')));
      expect([...prefixes].sort()).toEqual(['one/public.events', 'two/public.events', 'two/public.second']);
    } finally {
      await other.drop();
    }
  });
});

describe('composite primary keys', () => {
  it('archives and deletes by every key column, in the manifest as tuples', async () => {
    await fx.db.query(`CREATE TABLE ledger (tenant text, seq int, happened_at timestamptz NOT NULL, note text, PRIMARY KEY (tenant, seq))`);
    await fx.db.query(
      `INSERT INTO ledger SELECT t, s, now() - interval '30 days' + make_interval(mins => s), t || s FROM unnest(ARRAY['a', 'b,"c']) t, generate_series(1, 6) s`,
    );
    // A newer row sharing a tenant and seq value with archived ones: only the exact tuple may go.
    await fx.db.query(`INSERT INTO ledger VALUES ('a', 100, now(), 'new')`);
    const summary = await archiveWith(fx.configFor([{ name: 'ledger', timestamp_column: 'happened_at' }], { batch_size: 5 }), fx.store);
    expect(summary.failed).toBe(0);
    expect(summary.tables[0]!.rowsArchived).toBe(12);
    expect((await fx.db.query(`SELECT tenant, seq FROM ledger`)).rows).toEqual([{ tenant: 'a', seq: 100 }]);
    const archive = await inspectArchive(fx.store);
    const keys = archive.objects.flatMap((o) => o.meta.primary_keys);
    expect(keys).toHaveLength(12);
    expect(new Set(keys.map((k) => JSON.stringify(k))).size).toBe(12);
    expect(keys).toContainEqual(['b,"c', '6']);
    for (const o of archive.objects) {
      expect(o.meta.primary_key_columns).toEqual(['tenant', 'seq']);
      const sorted = [...o.meta.primary_keys].sort((x, y) => (x[0]! < y[0]! ? -1 : x[0]! > y[0]! ? 1 : Number(x[1]) - Number(y[1])));
      expect(o.meta.min_primary_key).toEqual(sorted[0]);
      expect(o.meta.max_primary_key).toEqual(sorted[sorted.length - 1]);
    }
  });
});

describe('rows without a timestamp', () => {
  it('are never archived: a NULL timestamp is not older than the cutoff', async () => {
    await fx.db.query(`CREATE TABLE maybe (id bigint PRIMARY KEY, happened_at timestamptz)`);
    await fx.db.query(`INSERT INTO maybe VALUES (1, now() - interval '30 days'), (2, NULL), (3, now())`);
    const summary = await archiveWith(fx.configFor([{ name: 'maybe', timestamp_column: 'happened_at' }]), fx.store);
    expect(summary.tables[0]!.rowsArchived).toBe(1);
    expect((await fx.db.query('SELECT id::text AS id FROM maybe ORDER BY id')).rows.map((r: { id: string }) => r.id)).toEqual(['2', '3']);
  });
});

