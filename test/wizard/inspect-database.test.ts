import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { detectTable, listTables, loadAgeDistribution } from '../../src/wizard/inspect-database.js';
import { listTableRefusals } from '../../src/db/catalog.js';
import { createWizardTables } from './wizard-fixture.js';
import { suggestIndexSql } from '../../src/wizard/suggest.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await createWizardTables(db);
  await db.query(`CREATE TABLE big (id int PRIMARY KEY, at timestamptz NOT NULL)`);
  // 40,000 rows, one every 30 minutes back from now (~833 days): a quarter are younger than ~208 days.
  await db.query(`INSERT INTO big SELECT i, now() - i * interval '30 minutes' FROM generate_series(1, 40000) i`);
  await db.query('ANALYZE big');
}, 60_000);

afterAll(async () => {
  await db?.drop();
});

describe('wizard catalog detection', () => {
  it('lists ordinary and partitioned tables, largest first, with estimates only once analyzed', async () => {
    await db.query(`CREATE TABLE parted (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE parted_2025 PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`);
    const tables = await listTables(db);
    const names = tables.map((t) => `${t.schema}.${t.name}`);
    expect(names[0]).toBe('public.big');
    expect(names).toContain('public.parted');
    expect(names).not.toContain('public.parted_2025');
    expect(tables.find((t) => t.name === 'audit_log')?.estimatedRows).toBe(400);
    expect(tables.find((t) => t.name === 'parted_2025')).toBeUndefined();
    // No partition analyzed yet: no estimate.
    expect(tables.find((t) => t.name === 'parted')?.estimatedRows).toBeNull();
  });

  it('gives a partitioned table the size and row estimate of its partitions (autovacuum never analyzes the parent)', async () => {
    await db.query(`CREATE TABLE parted_ev (id int, at date NOT NULL, pad text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE parted_ev_a PARTITION OF parted_ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    await db.query(`CREATE TABLE parted_ev_b PARTITION OF parted_ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE parted_ev_b1 PARTITION OF parted_ev_b FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`);
    await db.query(`INSERT INTO parted_ev SELECT i, date '2024-01-01' + (i % 700), repeat('x', 100) FROM generate_series(1, 3000) i`);
    // As autovacuum does: the leaves only.
    await db.query('ANALYZE parted_ev_a');
    await db.query('ANALYZE parted_ev_b1');
    const listed = (await listTables(db)).find((t) => t.name === 'parted_ev')!;
    expect(listed.estimatedRows).toBe(3000);
    const sizes = await db.query<{ n: string }>(`SELECT (pg_total_relation_size('parted_ev_a') + pg_total_relation_size('parted_ev_b1') + pg_total_relation_size('parted_ev') + pg_total_relation_size('parted_ev_b'))::text AS n`);
    expect(listed.totalBytes).toBe(Number(sizes.rows[0]!.n));
    expect(listed.totalBytes).toBeGreaterThan(300_000);
  });

  it('counts a partition not analyzed yet by its pages, not as empty', async () => {
    await db.query(`CREATE TABLE parted_new (id int, at date NOT NULL, pad text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE parted_new_a PARTITION OF parted_new FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    await db.query(`CREATE TABLE parted_new_b PARTITION OF parted_new FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`);
    await db.query(`CREATE TABLE parted_new_c PARTITION OF parted_new FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`);
    // 4,000 rows a year in 2024 and 2025, none in 2026; only 2024 analyzed, as right after a new partition fills.
    await db.query(`INSERT INTO parted_new SELECT i, date '2024-01-01' + (i % 730), repeat('x', 100) FROM generate_series(1, 8000) i`);
    await db.query('ANALYZE parted_new_a');
    await db.query('ANALYZE parted_new_c');
    const listed = (await listTables(db)).find((t) => t.name === 'parted_new')!;
    // The analyzed half alone would say ~4,000; the same rows per page put the other half near it.
    expect(listed.estimatedRows).toBeGreaterThan(7_000);
    expect(listed.estimatedRows).toBeLessThan(9_000);
    // Only empty leaves analyzed: nothing to measure pages by, so no estimate rather than 0.
    await db.query(`CREATE TABLE parted_blank (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE parted_blank_a PARTITION OF parted_blank FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    await db.query(`CREATE TABLE parted_blank_b PARTITION OF parted_blank FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`);
    await db.query(`INSERT INTO parted_blank SELECT i, date '2025-01-01' + (i % 300) FROM generate_series(1, 1000) i`);
    await db.query('ANALYZE parted_blank_a');
    expect((await listTables(db)).find((t) => t.name === 'parted_blank')!.estimatedRows).toBeNull();
  });

  it('finds every timestamp candidate with its index, and the primary key', async () => {
    const d = await detectTable(db, 'public', 'audit_log');
    expect(d?.key).toEqual({ columns: ['id'], kind: 'primary key' });
    expect(d?.timestampCandidates).toEqual([
      { name: 'created_at', type: 'timestamptz', notNull: true, indexed: true },
      { name: 'updated_at', type: 'timestamptz', notNull: false, indexed: false },
      { name: 'archived_on', type: 'date', notNull: false, indexed: false },
    ]);
  });

  it('reads a composite key in index order, and a timestamp that only a composite key covers is not "indexed"', async () => {
    const d = await detectTable(db, 'public', 'events_composite');
    expect(d?.key).toEqual({ columns: ['tenant_id', 'seq'], kind: 'primary key' });
    expect(d?.timestampCandidates).toEqual([{ name: 'occurred_at', type: 'timestamptz', notNull: true, indexed: false }]);
  });

  it('a key is its key columns, never the INCLUDE columns stored beside them', async () => {
    // Found by probing: PRIMARY KEY (id) INCLUDE (note) was read as the key (id, note), and a
    // UNIQUE (id) INCLUDE (nullable) index as a key with a nullable column (so none at all).
    await db.query(`CREATE TABLE pk_incl (id bigint, created_at timestamptz NOT NULL, note text, CONSTRAINT pk_incl_pk PRIMARY KEY (id) INCLUDE (note))`);
    await db.query(`CREATE TABLE uq_incl (id bigint NOT NULL, created_at timestamptz NOT NULL, note text, CONSTRAINT uq_incl_id UNIQUE (id) INCLUDE (note))`);
    expect((await detectTable(db, 'public', 'pk_incl'))?.key).toEqual({ columns: ['id'], kind: 'primary key' });
    expect((await detectTable(db, 'public', 'uq_incl'))?.key).toEqual({ columns: ['id'], kind: 'unique index' });
  });

  it('only a B-tree on the timestamp counts as "indexed": BRIN and hash indexes cannot serve the ordered pages', async () => {
    await db.query(`CREATE TABLE brin_ts (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)`);
    await db.query(`CREATE INDEX ON brin_ts USING brin (created_at)`);
    await db.query(`CREATE INDEX ON brin_ts USING hash (updated_at)`);
    expect((await detectTable(db, 'public', 'brin_ts'))?.timestampCandidates.map((c) => [c.name, c.indexed])).toEqual([
      ['created_at', false],
      ['updated_at', false],
    ]);
    await db.query(`CREATE INDEX ON brin_ts (created_at, id)`);
    expect((await detectTable(db, 'public', 'brin_ts'))?.timestampCandidates[0]?.indexed).toBe(true);
  });

  it('sees a partitioned table as indexed when every partition is, and its index advice runs as printed', async () => {
    await db.query(`CREATE TABLE pidx (id bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.query(`CREATE TABLE pidx_a PARTITION OF pidx FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')`);
    // A partition with another physical column order (attnums differ from the parent's).
    await db.query(`CREATE TABLE pidx_b (at timestamptz NOT NULL, extra int, id bigint NOT NULL)`);
    await db.query(`ALTER TABLE pidx_b DROP COLUMN extra`);
    await db.query(`ALTER TABLE pidx ATTACH PARTITION pidx_b FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')`);
    const before = await detectTable(db, 'public', 'pidx');
    expect(before?.partitioned).toBe(true);
    expect(before?.timestampCandidates).toEqual([{ name: 'at', type: 'timestamptz', notNull: true, indexed: false }]);
    // The advice: no CONCURRENTLY on the parent (PostgreSQL refuses it); its statement and the per-partition procedure it describes run.
    const advice = suggestIndexSql(before!, 'at').split('\n');
    expect(advice[0]).toBe('CREATE INDEX "pidx_at_archive_idx" ON ONLY "public"."pidx" ("at", "id");');
    await db.query(advice[0]!);
    for (const p of ['pidx_a', 'pidx_b']) {
      await db.query(`CREATE INDEX CONCURRENTLY ${p}_idx ON ${p} ("at", "id")`);
      await db.query(`ALTER INDEX "public"."pidx_at_archive_idx" ATTACH PARTITION ${p}_idx`);
    }
    expect((await detectTable(db, 'public', 'pidx'))?.timestampCandidates[0]?.indexed).toBe(true);
    // Indexes on every partition but none on the parent serve the archiver's reads as well.
    await db.query(`DROP INDEX pidx_at_archive_idx`);
    await db.query(`CREATE INDEX ON pidx_a (at, id)`);
    await db.query(`CREATE INDEX ON pidx_b (at, id)`);
    expect((await detectTable(db, 'public', 'pidx'))?.timestampCandidates[0]?.indexed).toBe(true);
    await db.query(`DROP INDEX pidx_b_at_id_idx`);
    expect((await detectTable(db, 'public', 'pidx'))?.timestampCandidates[0]?.indexed).toBe(false);
  });

  it('falls back to a unique index over NOT NULL columns, and reports no key when there is none', async () => {
    expect((await detectTable(db, 'public', 'Mixed Case'))?.key).toEqual({ columns: ['code'], kind: 'unique index' });
    expect((await detectTable(db, 'public', 'no_pk'))?.key).toBeNull();
    await db.query(`CREATE TABLE nullable_unique (code text UNIQUE, at timestamptz)`);
    expect((await detectTable(db, 'public', 'nullable_unique'))?.key).toBeNull();
    expect(await detectTable(db, 'public', 'missing')).toBeNull();
  });

  it('counts rows by age exactly on a small table', async () => {
    const d = await loadAgeDistribution(db, 'public', 'audit_log', { name: 'created_at', type: 'timestamptz', notNull: true, indexed: true }, 400);
    expect(d.sampled).toBe(false);
    expect(d.rows).toBe(400);
    // Row i is i days and one hour old, i = 0..399.
    expect(d.olderThan).toEqual([
      { days: 7, rows: 393 },
      { days: 30, rows: 370 },
      { days: 90, rows: 310 },
      { days: 180, rows: 220 },
      { days: 365, rows: 35 },
      { days: 730, rows: 0 },
      { days: 1095, rows: 0 },
    ]);
  });

  it('samples a big table (TABLESAMPLE, repeatable) and scales the counts back up', async () => {
    const column = { name: 'at', type: 'timestamptz' as const, notNull: true, indexed: false };
    // Pretend the table is 20 million rows: the wizard then reads a 2.5% page sample.
    const first = await loadAgeDistribution(db, 'public', 'big', column, 20_000_000);
    const again = await loadAgeDistribution(db, 'public', 'big', column, 20_000_000);
    expect(first.sampled).toBe(true);
    expect(again).toEqual(first);
    expect(first.rows).toBeGreaterThan(0);
    // Scaled by 1/2.5%: the estimate is in the order of the real 40,000 rows, not of the sample.
    expect(first.rows).toBeGreaterThan(10_000);
    expect(first.rows).toBeLessThan(160_000);
    const exact = await loadAgeDistribution(db, 'public', 'big', column, 40_000);
    expect(exact.rows).toBe(40_000);
  });
  it('lists what `archive` refuses from the catalog, every reason with its code, as loadTablePlan words them', async () => {
    expect(await listTableRefusals(db, 'app', { schema: 'public', name: 'audit_log' })).toEqual([]);
    const trigger = await listTableRefusals(db, 'app', { schema: 'public', name: 'trig_log' });
    // (regclass names are schema-qualified only off the search_path: the archiver's is pg_catalog, this connection's is not.)
    expect(trigger.map((e) => [e.code, e.details.triggers])).toEqual([['TABLE_NOT_SUPPORTED', ['trig_log.trig_log_after_delete']]]);
    // The opt-in lifts the trigger refusal, never the rule one.
    expect(await listTableRefusals(db, 'app', { schema: 'public', name: 'trig_log', allow_delete_triggers: true })).toEqual([]);
    await db.query(`CREATE TABLE many_reasons (id int PRIMARY KEY, at timestamptz NOT NULL)`);
    await db.query(`CREATE TYPE wiz_pair AS (a int, b json)`);
    await db.query(`ALTER TABLE many_reasons ADD COLUMN nested wiz_pair`);
    await db.query(`CREATE RULE many_reasons_keep AS ON DELETE TO many_reasons DO INSTEAD NOTHING`);
    await db.query(`CREATE TABLE many_reasons_child (id int NOT NULL REFERENCES many_reasons ON DELETE CASCADE)`);
    const many = await listTableRefusals(db, 'app', { schema: 'public', name: 'many_reasons' });
    expect(many.map((e) => e.message.replace(/:.*/s, ''))).toEqual([
      'column "nested" of public.many_reasons (database "app") has type wiz_pair',
      'public.many_reasons (database "app") is referenced by foreign key "many_reasons_child_id_fkey" of many_reasons_child with ON DELETE CASCADE',
      'public.many_reasons (database "app") has rule(s) ON DELETE many_reasons.many_reasons_keep',
    ]);
  });
});
