/**
 * A partitioned table's page reads and guarded deletes lock only the partitions of their range
 * (found by probing): with the page's range passed to PostgreSQL as settings only, every page read
 * locked every partition and each of its indexes, so a few hundred daily partitions with batches
 * in flight filled the server's shared lock table ("out of shared memory", for the application's
 * sessions too), and partition maintenance on partitions newer than the cutoff blocked archiving.
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import pino from 'pino';
import { Writable } from 'node:stream';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import { loadTablePlan } from '../../src/db/catalog.js';
import { deleteArchivedRows, selectCutoff, selectPage } from '../../src/db/archive-queries.js';
import { defaultsSchema, tableSchema } from '../../src/config/schema.js';

const fx = useArchiveFixture();
const OLD_DAYS = 30;
const table = { name: 'events_p', timestamp_column: 'happened_at' };

/** Daily partitions for the 30 days ending 10 days ago (4 rows each, past the 10-day retention), one for the day of the cutoff, and one from then on (5 recent rows). */
async function createPartitionedEvents(): Promise<void> {
  await fx.db.query(`
    CREATE TABLE events_p (id bigint NOT NULL, happened_at timestamptz NOT NULL, note text, PRIMARY KEY (id, happened_at)) PARTITION BY RANGE (happened_at);
    CREATE INDEX ON events_p (happened_at, id);
    DO $$
    DECLARE first date := (now() AT TIME ZONE 'UTC')::date - ${OLD_DAYS + 10};
    BEGIN
      FOR i IN 0..${OLD_DAYS - 1} LOOP
        EXECUTE format('CREATE TABLE events_p_%s PARTITION OF events_p FOR VALUES FROM (%L) TO (%L)', i, (first + i) || ' 00:00+00', (first + i + 1) || ' 00:00+00');
      END LOOP;
      -- The cutoff (now minus 10 days) falls in this one; the next is newer than the cutoff throughout.
      EXECUTE format('CREATE TABLE events_p_cutoff PARTITION OF events_p FOR VALUES FROM (%L) TO (%L)', (first + ${OLD_DAYS}) || ' 00:00+00', (first + ${OLD_DAYS + 1}) || ' 00:00+00');
      EXECUTE format('CREATE TABLE events_p_recent PARTITION OF events_p FOR VALUES FROM (%L) TO (MAXVALUE)', (first + ${OLD_DAYS + 1}) || ' 00:00+00');
    END $$;
    INSERT INTO events_p SELECT g, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '${OLD_DAYS + 10} days' + (g - 1) * interval '6 hours', 'n' || g
      FROM generate_series(1, ${OLD_DAYS * 4}) g;
    INSERT INTO events_p SELECT 1000 + g, now() - g * interval '1 hour', 'recent' FROM generate_series(1, 5) g;
  `);
}

describe('a partitioned table', () => {
  it('is archived while another session holds a partition newer than the cutoff exclusively (partition maintenance): the page reads never lock it', async () => {
    await createPartitionedEvents();
    const blocker = new pg.Client({ connectionString: fx.db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE events_p_recent IN ACCESS EXCLUSIVE MODE');
      // A short lock_timeout: a page read that locked every partition would fail with 55P03 here.
      const run = await archiveWith(fx.configFor([table], { lock_timeout_ms: 1_000, batch_size: 10 }), fx.store);
      expect(run.tables[0]!.error, JSON.stringify(run.tables[0]!.error)).toBeUndefined();
      expect(run.tables[0]!.rowsArchived).toBe(OLD_DAYS * 4);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
    }
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect(counts.size).toBe(OLD_DAYS * 4);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(Number((await fx.db.query<{ n: string }>('SELECT count(*) AS n FROM events_p')).rows[0]!.n)).toBe(5);
  });

  it('reads a page (rows and per-day bounds) without locking the partitions before the row it starts after', async () => {
    await createPartitionedEvents();
    // Sessions that give up on a lock after 1 s, as the archiver's do (lock_timeout_ms).
    const pool = new pg.Pool({ connectionString: fx.db.url, max: 2, options: '-c lock_timeout=1000' });
    const blocker = new pg.Client({ connectionString: fx.db.url });
    await blocker.connect();
    try {
      const plan = await loadTablePlan(pool, 'app', tableSchema.parse(table), defaultsSchema.parse({ retention_days: 10 }));
      const cutoff = await selectCutoff(pool, plan);
      const first = await selectPage(pool, plan, cutoff, null, 40);
      const after = { ts: first[4]!.lastTs, key: first[4]!.keys[first[4]!.keys.length - 1]! };
      await blocker.query('BEGIN');
      // The first days' partitions, behind the page: maintenance there must not block it.
      await blocker.query('LOCK TABLE events_p_0, events_p_1, events_p_3 IN ACCESS EXCLUSIVE MODE');
      const page = await selectPage(pool, plan, cutoff, after, 20);
      expect(page.map((g) => g.count)).toEqual([4, 4, 4, 4, 4]);
      expect(page[0]!.firstTs > after.ts).toBe(true);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
      await pool.end();
    }
  });

  it('warns when a partition is configured besides its parent, naming the other table, for each of the two', async () => {
    await createPartitionedEvents();
    const chunks: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (c, _e, done) => (chunks.push(String(c)), done()) }));
    const run = await archiveWith(fx.configFor([table, { name: 'events_p_3', timestamp_column: 'happened_at' }]), fx.store, { logger });
    expect(run.tables.map((t) => t.error)).toEqual([undefined, undefined]);
    const warnings = chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; table: string; same_tree?: string[] });
    const sameTree = warnings.filter((w) => w.same_tree !== undefined);
    expect(sameTree.map((w) => [w.table, w.same_tree])).toEqual([
      ['public.events_p', ['public.events_p_3']],
      ['public.events_p_3', ['public.events_p']],
    ]);
    expect(sameTree[0]!.msg).toContain('configure the parent or its partitions, not both');
    // An ordinary second table is no such case.
    chunks.length = 0;
    await fx.db.query('CREATE TABLE other (id int PRIMARY KEY, happened_at timestamptz NOT NULL)');
    await archiveWith(fx.configFor([table, { name: 'other', timestamp_column: 'happened_at' }]), fx.store, { logger });
    expect(chunks.join('')).not.toContain('same_tree');
  });

  it.each([true, false])('deletes a batch locking only the partition of its day (skipLocked %s)', async (skipLocked) => {
    await createPartitionedEvents();
    const pool = new pg.Pool({ connectionString: fx.db.url, max: 2 });
    const client = await pool.connect();
    try {
      const plan = await loadTablePlan(pool, 'app', tableSchema.parse(table), defaultsSchema.parse({ retention_days: 10 }));
      const cutoff = await selectCutoff(pool, plan);
      const days = await selectPage(pool, plan, cutoff, null, 40);
      // A day in the middle of the range: not the first partition, not the last.
      const batch = days[5]!;
      expect(batch.count).toBe(4);
      await client.query('BEGIN');
      const deleted = await deleteArchivedRows(client, plan, batch, cutoff, { skipLocked });
      expect(deleted.count).toBe(4);
      const locked = await client.query<{ relname: string }>(
        `SELECT c.relname::text AS relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          JOIN pg_inherits i ON i.inhrelid = c.oid WHERE l.pid = pg_backend_pid() AND i.inhparent = 'events_p'::regclass`,
      );
      const partitions = new Set(locked.rows.map((r) => r.relname));
      // The batch's day only (of 32 partitions).
      expect([...partitions]).toEqual(['events_p_5']);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      await pool.end();
    }
  });
});
