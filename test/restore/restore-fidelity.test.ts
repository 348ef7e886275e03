/**
 * Round trip of the fidelity table (every common type and edge value, hostile identifiers):
 * archive, then restore — into the live table and into a new target table — gives back the
 * identical rows (`row::text`), through both storage backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { storageBackends } from '../helpers/storage-backends.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { restoreWith } from '../helpers/restore-run.js';
import { FIXTURE, JSON_FIXTURE, JSON_TABLE, SCHEMA, TABLE } from '../helpers/fidelity-fixture.js';
import { quoteQualified } from '../../src/db/quote-ident.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

const backends = storageBackends(() => s3, 'restore-fidelity');

describe.each(backends)('restore round trip of the fidelity table through the $name', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(FIXTURE);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('restores every archived row, identical to the original, into the live table and into new target tables, whole or split into one-row batches', async () => {
    const table = quoteQualified(SCHEMA, TABLE);
    const before = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${table} t ORDER BY id`);
    const { store, storage, cleanup } = await backend.make();
    try {
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 2 },
        databases: [{ name: 'fidelity', url: db.url, tables: [{ schema: SCHEMA, name: TABLE, timestamp_column: 'at' }] }],
      });
      const archived = await archiveWith(config, store);
      expect(archived.tables[0]!.rowsArchived).toBe(5);

      const intoNew = await restoreWith(config, store, { table: TABLE, target: { schema: SCHEMA, table: 'Restored "copy"; --' } });
      expect(intoNew.error).toBeUndefined();
      expect(intoNew.status).toBe('ok');
      expect(intoNew.targetCreated).toBe(true);
      expect(intoNew.rows).toEqual({ restored: 5, inserted: 5, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
      const copy = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${quoteQualified(SCHEMA, 'Restored "copy"; --')} t ORDER BY id`);
      expect(copy.rows).toEqual(before.rows.slice(0, 5));
      // Same columns and types as the archived table.
      const types = await db.query<{ a: string }>(
        `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) AS a FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped GROUP BY attrelid
         UNION ALL SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = $2::regclass AND attnum > 0 AND NOT attisdropped GROUP BY attrelid`,
        [table, quoteQualified(SCHEMA, 'Restored "copy"; --')],
      );
      expect(types.rows[0]!.a).toBe(types.rows[1]!.a);

      // One row per batch: objects are split, and the json rules' line numbers must follow each line.
      const split = await restoreWith(config, store, { table: TABLE, target: { schema: SCHEMA, table: 'split' }, batchSize: 1 });
      expect(split.error).toBeUndefined();
      expect(split.rows).toEqual({ restored: 5, inserted: 5, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
      const splitRows = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${quoteQualified(SCHEMA, 'split')} t ORDER BY id`);
      expect(splitRows.rows).toEqual(before.rows.slice(0, 5));

      const intoLive = await restoreWith(config, store, { table: TABLE });
      expect(intoLive.error).toBeUndefined();
      expect(intoLive.status).toBe('ok');
      expect(intoLive.rows).toEqual({ restored: 5, inserted: 5, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
      const after = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${table} t ORDER BY id`);
      expect(after.rows).toEqual(before.rows);
    } finally {
      await cleanup();
    }
  });

  it('restores json values json_populate_record would refuse or change (\\u0000, escapes in a top-level string, outer whitespace) identical', async () => {
    await db.query(JSON_FIXTURE);
    const table = quoteQualified(SCHEMA, JSON_TABLE);
    const rows = async (t: string): Promise<string[]> => (await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${t} t ORDER BY id`)).rows.map((r) => r.row);
    const before = await rows(table);
    expect(before).toHaveLength(10);
    const { store, storage, cleanup } = await backend.make();
    try {
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 100 },
        databases: [{ name: 'fidelity', url: db.url, tables: [{ schema: SCHEMA, name: JSON_TABLE, timestamp_column: 'at' }] }],
      });
      const archived = await archiveWith(config, store);
      expect(archived.tables[0]!.error).toBeUndefined();
      expect(archived.tables[0]!.rowsArchived).toBe(9);

      for (const [target, batchSize] of [['json copy', undefined], ['json split', 1]] as const) {
        const s = await restoreWith(config, store, { table: JSON_TABLE, target: { schema: SCHEMA, table: target }, ...(batchSize === undefined ? {} : { batchSize }) });
        expect(s.error).toBeUndefined();
        expect(s.rows).toEqual({ restored: 9, inserted: 9, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
        expect(await rows(quoteQualified(SCHEMA, target))).toEqual(before.slice(0, 9));
      }
      const intoLive = await restoreWith(config, store, { table: JSON_TABLE });
      expect(intoLive.error).toBeUndefined();
      expect(intoLive.rows).toEqual({ restored: 9, inserted: 9, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
      expect(await rows(table)).toEqual(before);
    } finally {
      await cleanup();
    }
  });
});
