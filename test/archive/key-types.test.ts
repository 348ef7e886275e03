/**
 * Primary keys of the types and shapes users have: a uuid (PostgreSQL has no min()/max() for it),
 * a composite key with a boolean and a bytea part, and a composite key whose column names are 62
 * bytes long (an alias built from them would pass the 63-byte identifier limit). Each table is
 * archived, validated against the database, and restored into the identical rows. Found in review:
 * the page read took min()/max() of a one-column key and named its aliases after the columns, so
 * the first table and the last could not be archived at all. And keys with INCLUDE columns: those
 * are stored in the index, not part of the key (found by probing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { storageBackends } from '../helpers/storage-backends.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { restoreWith } from '../helpers/restore-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { validateArchive } from '../../src/validate/validate-archive.js';
import { quoteIdent } from '../../src/db/quote-ident.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

const long1 = `${'k'.repeat(60)}_1`;
const long2 = `${'k'.repeat(60)}_2`;

/** Each table: 40 rows over 4 UTC days, 40–43 days old (archived), plus 3 recent rows (kept). */
const TABLES = [
  {
    name: 'by_uuid',
    ddl: `CREATE TABLE by_uuid (id uuid PRIMARY KEY, at timestamptz NOT NULL, v text)`,
    fill: `INSERT INTO by_uuid SELECT md5(g::text)::uuid, now() - make_interval(days => 40 + g % 4, secs => g), 'v' || g FROM generate_series(1, 40) g
           UNION ALL SELECT md5((100 + g)::text)::uuid, now() - make_interval(secs => g), 'new' FROM generate_series(1, 3) g`,
    keyColumns: ['id'],
  },
  {
    name: 'by_flag_and_bytes',
    ddl: `CREATE TABLE by_flag_and_bytes (flag boolean, raw bytea, at timestamptz NOT NULL, v text, PRIMARY KEY (flag, raw))`,
    fill: `INSERT INTO by_flag_and_bytes SELECT g % 2 = 0, decode(md5(g::text), 'hex'), now() - make_interval(days => 40 + g % 4, secs => g), 'v' || g FROM generate_series(1, 40) g
           UNION ALL SELECT true, decode(md5((100 + g)::text), 'hex'), now() - make_interval(secs => g), 'new' FROM generate_series(1, 3) g`,
    keyColumns: ['flag', 'raw'],
  },
  {
    name: 'by_padded_and_array',
    ddl: `CREATE TABLE by_padded_and_array (code char(6), parts int[], at timestamptz NOT NULL, doc jsonb, PRIMARY KEY (code, parts))`,
    fill: `INSERT INTO by_padded_and_array SELECT 'c' || g % 5, ARRAY[g, g * 2], now() - make_interval(days => 40 + g % 4, secs => g), jsonb_build_object('g', g) FROM generate_series(1, 40) g
           UNION ALL SELECT 'new', ARRAY[g], now() - make_interval(secs => g), NULL FROM generate_series(1, 3) g`,
    keyColumns: ['code', 'parts'],
  },
  {
    name: 'by_domains',
    ddl: `CREATE DOMAIN code4 AS char(4); CREATE DOMAIN intarr AS int[]; CREATE TABLE by_domains (code code4, parts intarr, at timestamptz NOT NULL, PRIMARY KEY (code, parts))`,
    fill: `INSERT INTO by_domains SELECT 'k' || g % 3, ARRAY[g], now() - make_interval(days => 40 + g % 4, secs => g) FROM generate_series(1, 40) g
           UNION ALL SELECT 'new', ARRAY[g], now() - make_interval(secs => g) FROM generate_series(1, 3) g`,
    keyColumns: ['code', 'parts'],
  },
  {
    name: 'by_jsonb',
    ddl: `CREATE TABLE by_jsonb (doc jsonb PRIMARY KEY, at timestamptz NOT NULL)`,
    fill: `INSERT INTO by_jsonb SELECT jsonb_build_object('g', g, 's', 'a b'), now() - make_interval(days => 40 + g % 4, secs => g) FROM generate_series(1, 40) g
           UNION ALL SELECT jsonb_build_object('new', g), now() - make_interval(secs => g) FROM generate_series(1, 3) g`,
    keyColumns: ['doc'],
  },
  {
    name: 'by_long_names',
    ddl: `CREATE TABLE by_long_names (${quoteIdent(long1)} int, ${quoteIdent(long2)} int, at timestamptz NOT NULL, PRIMARY KEY (${quoteIdent(long1)}, ${quoteIdent(long2)}))`,
    fill: `INSERT INTO by_long_names SELECT g / 3, g % 3, now() - make_interval(days => 40 + g % 4, secs => g) FROM generate_series(1, 40) g
           UNION ALL SELECT 1000 + g, 0, now() - make_interval(secs => g) FROM generate_series(1, 3) g`,
    keyColumns: [long1, long2],
  },
  {
    // Found by probing: INCLUDE columns were read as part of the key, so the rows whose note is
    // NULL never matched the guarded delete and were skipped run after run.
    name: 'by_key_with_include',
    ddl: `CREATE TABLE by_key_with_include (id int, at timestamptz NOT NULL, note text, CONSTRAINT by_key_with_include_pk PRIMARY KEY (id) INCLUDE (note))`,
    fill: `INSERT INTO by_key_with_include SELECT g, now() - make_interval(days => 40 + g % 4, secs => g), CASE WHEN g % 2 = 0 THEN 'n' || g END FROM generate_series(1, 40) g
           UNION ALL SELECT 1000 + g, now() - make_interval(secs => g), NULL FROM generate_series(1, 3) g`,
    keyColumns: ['id'],
  },
  {
    // The configured key is a unique index with an INCLUDE column that may be NULL: a key all the same.
    name: 'by_unique_with_include',
    ddl: `CREATE TABLE by_unique_with_include (id int NOT NULL, at timestamptz NOT NULL, note text, CONSTRAINT by_unique_with_include_id UNIQUE (id) INCLUDE (note))`,
    fill: `INSERT INTO by_unique_with_include SELECT g, now() - make_interval(days => 40 + g % 4, secs => g), CASE WHEN g % 2 = 0 THEN 'n' || g END FROM generate_series(1, 40) g
           UNION ALL SELECT 1000 + g, now() - make_interval(secs => g), NULL FROM generate_series(1, 3) g`,
    keyColumns: ['id'],
    primaryKey: ['id'],
  },
] as const;

const backends = storageBackends(() => s3, 'key-types');

describe.each(backends)('primary keys of every shape through the $name', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    for (const t of TABLES) {
      await db.query(t.ddl);
      await db.query(t.fill);
    }
  });
  afterAll(async () => {
    await db?.drop();
  });

  it.each(TABLES)('archives, validates and restores a table keyed by $keyColumns', async (t) => {
    const rowsOf = async (table: string): Promise<string[]> =>
      (await db.query<{ row: string }>(`SELECT ROW(r.*)::text AS row FROM ${table} r ORDER BY ${t.keyColumns.map(quoteIdent).join(', ')}`)).rows.map((r) => r.row);
    const before = await rowsOf(t.name);
    const { store, storage, cleanup } = await backend.make();
    try {
      // batch_size 7: pages end inside a day, so keyset pagination continues from a key of this type.
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 7 },
        databases: [{ name: 'keys', url: db.url, tables: [{ name: t.name, timestamp_column: 'at', ...('primaryKey' in t ? { primary_key: [...t.primaryKey] } : {}) }] }],
      });
      const archived = await archiveWith(config, store);
      expect(archived.tables[0]!.error).toBeUndefined();
      expect(archived.tables[0]!.rowsArchived).toBe(40);
      expect(Number((await db.query(`SELECT count(*) AS n FROM ${t.name}`)).rows[0].n)).toBe(3);

      const archive = await inspectArchive(store);
      const counts = archivedKeyCounts(archive);
      expect(counts.size).toBe(40);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
      // The sidecar's key bounds, in the key type's own order, enclose the batch's keys.
      for (const o of archive.objects) {
        expect(o.meta.primary_key_columns).toEqual(t.keyColumns);
        const keys = o.meta.primary_keys.map((k) => JSON.stringify(k));
        expect(keys).toContain(JSON.stringify(o.meta.min_primary_key));
        expect(keys).toContain(JSON.stringify(o.meta.max_primary_key));
      }

      const report = await validateArchive({ config, store, databases: config.databases, deep: true, deepThreshold: 0, concurrency: 2, checkDatabase: true });
      expect(report.tables[0]!.findings).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.totals.rows).toBe(40);

      const restored = await restoreWith(config, store, { table: t.name });
      expect(restored.error).toBeUndefined();
      expect(restored.rows).toEqual({ restored: 40, inserted: 40, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
      expect(await rowsOf(t.name)).toEqual(before);
    } finally {
      await cleanup();
    }
  });
});
