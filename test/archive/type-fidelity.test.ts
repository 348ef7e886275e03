/**
 * Every common PostgreSQL type and edge value survives archive → plain-SQL load
 * (json_populate_record, plus the documented JSON-null rule) as the identical row (`row::text`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { storageBackends } from '../helpers/storage-backends.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { quoteIdent, quoteQualified } from '../../src/db/quote-ident.js';
import { FIXTURE, JSON_FIXTURE, JSON_TABLE, SCHEMA, TABLE } from '../helpers/fidelity-fixture.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

const backends = storageBackends(() => s3, 'fidelity');

describe.each(backends)('type fidelity through the $name', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(FIXTURE);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('archives every old row and loads each back with json_populate_record into the identical row', async () => {
    const table = quoteQualified(SCHEMA, TABLE);
    const before = await db.query<{ id: string; row: string }>(`SELECT id::text AS id, ROW(t.*)::text AS row FROM ${table} t WHERE id <> 6 ORDER BY id`);
    expect(before.rows).toHaveLength(5);
    const { store, storage, cleanup } = await backend.make();
    try {
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 2 },
        databases: [{ name: 'fidelity', url: db.url, tables: [{ schema: SCHEMA, name: TABLE, timestamp_column: 'at' }] }],
      });
      const summary = await archiveWith(config, store);
      expect(summary.tables[0]!.error).toBeUndefined();
      expect(summary.tables[0]!.rowsArchived).toBe(5);

      const left = await db.query<{ id: string }>(`SELECT id::text AS id FROM ${table} ORDER BY id`);
      expect(left.rows.map((r) => r.id)).toEqual(['6']);

      const archive = await inspectArchive(store);
      expect(archive.pendingMarkers).toEqual([]);
      // Row 3 has timestamp -infinity: no calendar day, so the documented 0000-00-00 partition.
      expect(archive.objects.some((o) => o.key.includes('/year=0000/month=00/day=00/'))).toBe(true);
      // Batches never span two UTC days: rows 1 and 2 share 2001-02-03, rows 4 and 5 share 2001-02-05.
      const byKey = new Map(archive.objects.map((o) => [o.key, o.meta.primary_keys.map((k) => k[0])]));
      expect([...byKey.values()].map((ids) => ids.join(',')).sort()).toEqual(['1,2', '3', '4,5']);

      // JSON null in json/jsonb is recorded per line; SQL NULL (row 3) is not.
      const jsonNulls = archive.objects.flatMap((o) => o.meta.json_null_values.map((j) => [o.meta.primary_keys[j.line]![0], j.columns.join(',')]));
      expect(jsonNulls.sort()).toEqual([['1', 'jb'], ['2', 'j']]);
      // Row 1's json has raw newlines in its whitespace: written as a string of its exact text.
      const jsonTexts = archive.objects.flatMap((o) => o.meta.json_text_values.map((j) => [o.meta.primary_keys[j.line]![0], j.columns.join(',')]));
      expect(jsonTexts).toEqual([['1', 'j']]);
      // One line per row: a raw newline in a value would split a line, so the object would hold more lines than rows.
      for (const o of archive.objects) {
        expect(o.lines).toHaveLength(o.meta.record_count);
        expect(o.lines.every((l) => !l.includes('\r'))).toBe(true);
      }
      const meta = archive.objects[0]!.meta;
      expect(meta.columns.find((c) => c.name === 'en')?.type).toBe('"Fidelity".mood');
      expect(meta.columns.map((c) => c.name)).toContain('a"quote');

      await db.query(`CREATE TABLE ${quoteQualified(SCHEMA, 'loaded')} (LIKE ${table})`);
      for (const o of archive.objects) {
        for (const [lineNo, line] of o.lines.entries()) {
          await db.query(`INSERT INTO ${quoteQualified(SCHEMA, 'loaded')} SELECT * FROM json_populate_record(NULL::${table}, $1::json)`, [line]);
          // The two documented json rules of docs/format.md, as plain SQL.
          const id = o.meta.primary_keys[lineNo]![0];
          for (const jn of o.meta.json_null_values.filter((x) => x.line === lineNo)) {
            for (const column of jn.columns) {
              await db.query(`UPDATE ${quoteQualified(SCHEMA, 'loaded')} SET ${quoteIdent(column)} = 'null' WHERE id = $1`, [id]);
            }
          }
          for (const jt of o.meta.json_text_values.filter((x) => x.line === lineNo)) {
            for (const column of jt.columns) {
              await db.query(`UPDATE ${quoteQualified(SCHEMA, 'loaded')} SET ${quoteIdent(column)} = (${quoteIdent(column)} #>> '{}')::json WHERE id = $1`, [id]);
            }
          }
        }
      }
      const after = await db.query<{ id: string; row: string }>(`SELECT id::text AS id, ROW(t.*)::text AS row FROM ${quoteQualified(SCHEMA, 'loaded')} t ORDER BY id`);
      expect(after.rows).toEqual(before.rows);
      // A JSON null element of jsonb[] is not a NULL element (found in review: a JSON array shows both as null).
      const jarr = await db.query<{ a: string }>(`SELECT jarr::text AS a FROM ${quoteQualified(SCHEMA, 'loaded')} WHERE id = 1`);
      expect(jarr.rows[0]!.a).toBe('{"null",NULL,"{\\"x\\": null}"}');
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${quoteQualified(SCHEMA, 'loaded')}`);
      await cleanup();
    }
  });

  it('json values json_populate_record would refuse or change (\\u0000, escapes in a top-level string, outer whitespace) are written as their text and load back identical', async () => {
    await db.query(JSON_FIXTURE);
    const table = quoteQualified(SCHEMA, JSON_TABLE);
    const loaded = quoteQualified(SCHEMA, 'json loaded');
    const before = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${table} t WHERE id <> 10 ORDER BY id`);
    expect(before.rows).toHaveLength(9);
    const { store, storage, cleanup } = await backend.make();
    try {
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 100 },
        databases: [{ name: 'fidelity', url: db.url, tables: [{ schema: SCHEMA, name: JSON_TABLE, timestamp_column: 'at' }] }],
      });
      const summary = await archiveWith(config, store);
      expect(summary.tables[0]!.error).toBeUndefined();
      expect(summary.tables[0]!.rowsArchived).toBe(9);
      const archive = await inspectArchive(store);
      expect(archive.objects).toHaveLength(1);
      const o = archive.objects[0]!;
      // Every such value goes by its text (an escaped backslash before u0000 too: the check is on the text); row 9's
      // values and row 4's d (an unescaped string, escapes nested in an object) load back as they are.
      const texts = o.meta.json_text_values.map((j) => [o.meta.primary_keys[j.line]![0], j.columns.join(',')]);
      expect(texts).toEqual([['1', 'j,k,d'], ['2', 'j,k,d'], ['3', 'j,k,d'], ['4', 'j,k'], ['5', 'j,k,d'], ['6', 'j,k,d'], ['7', 'j,k'], ['8', 'j,k,d']]);
      // No line holds a \u0000 escape PostgreSQL would have to turn into text.
      for (const line of o.lines) expect(line).not.toMatch(/(^|[^\\])(\\\\)*\\u0000/);

      await db.query(`CREATE TABLE ${loaded} (LIKE ${table})`);
      for (const [lineNo, line] of o.lines.entries()) {
        await db.query(`INSERT INTO ${loaded} SELECT * FROM json_populate_record(NULL::${table}, $1::json)`, [line]);
        const id = o.meta.primary_keys[lineNo]![0];
        for (const jt of o.meta.json_text_values.filter((x) => x.line === lineNo)) {
          for (const column of jt.columns) {
            await db.query(`UPDATE ${loaded} SET ${quoteIdent(column)} = (${quoteIdent(column)} #>> '{}')::json WHERE id = $1`, [id]);
          }
        }
      }
      const after = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${loaded} t ORDER BY id`);
      expect(after.rows).toEqual(before.rows);
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${loaded}`);
      await cleanup();
    }
  });
});
