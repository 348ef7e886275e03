/**
 * The restore's INSERT … SELECT against names that collide with its own: a target table called
 * "excluded" (the ON CONFLICT pseudo-table), and an archived column called like the staging
 * table's line number that column_map sends to a generated column. Run on a real PostgreSQL, one
 * session (the staging tables are temporary). Both found in review.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createParsedTablesSql, insertSql, lineNumberColumn } from '../../src/restore/restore-sql.js';
import { planSchemaDrift, type TargetColumn } from '../../src/restore/schema-drift.js';
import { quoteIdent } from '../../src/db/quote-ident.js';

let db: TestDatabase;
let client: pg.Client;
beforeEach(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterEach(async () => {
  await client?.end();
  await db?.drop();
});

const column = (name: string, type: string, extra: Partial<TargetColumn> = {}): TargetColumn => ({ name, type, baseType: type, generated: false, identity: null, hasDefault: false, notNull: false, ...extra });

/** Stages `rows` (line number first, then the archived columns) and runs the batch's INSERT. */
async function loadBatch(archived: { name: string; type: string }[], target: { table: string; columns: TargetColumn[] }, columnMap: Record<string, string>, rows: unknown[][], strategy: 'overwrite' | 'upsert'): Promise<void> {
  const drift = planSchemaDrift(archived, target.columns, columnMap, { strict: false, label: target.table });
  const tables = createParsedTablesSql(1, archived);
  for (const sql of tables.sql) await client.query(sql);
  await client.query('BEGIN');
  const names = [lineNumberColumn(archived), ...archived.map((c) => c.name)].map(quoteIdent).join(', ');
  for (const row of rows) await client.query(`INSERT INTO ${tables.parsed} (${names}) VALUES (${row.map((_, i) => `$${i + 1}`).join(', ')})`, row);
  await client.query(insertSql(drift, { schema: 'public', table: target.table, key: ['id'], partitioned: false, columns: target.columns }, tables.parsed, strategy));
  await client.query('COMMIT');
}

describe('restore SQL and colliding names', () => {
  for (const strategy of ['overwrite', 'upsert'] as const) {
    it(`${strategy} into a table named "excluded" replaces the conflicting row`, async () => {
      await client.query(`CREATE TABLE excluded (id int PRIMARY KEY, v text)`);
      await client.query(`INSERT INTO excluded VALUES (1, 'live')`);
      const cols = [column('id', 'integer'), column('v', 'text')];
      await loadBatch([{ name: 'id', type: 'integer' }, { name: 'v', type: 'text' }], { table: 'excluded', columns: cols }, {}, [[0, 1, 'archived'], [1, 2, 'two']], strategy);
      expect((await client.query(`SELECT id, v FROM excluded ORDER BY id`)).rows).toEqual([{ id: 1, v: 'archived' }, { id: 2, v: 'two' }]);
    });
  }

  it('keeps the last line of a key when an archived column named like the line number is mapped to a generated column', async () => {
    await client.query(`CREATE TABLE rt (id int PRIMARY KEY, v text, g int GENERATED ALWAYS AS (id * 10) STORED)`);
    await client.query(`INSERT INTO rt (id, v) VALUES (1, 'live')`);
    const cols = [column('id', 'integer'), column('v', 'text'), column('g', 'integer', { generated: true })];
    const archived = [{ name: 'id', type: 'integer' }, { name: 'v', type: 'text' }, { name: 'auditlog_line_no', type: 'integer' }];
    // Two versions of key 1: line 0 'old', line 1 'new'. The archived auditlog_line_no values run
    // the other way, so ordering by that user column would keep 'old'.
    await loadBatch(archived, { table: 'rt', columns: cols }, { auditlog_line_no: 'g' }, [[0, 1, 'old', 9], [1, 1, 'new', 1]], 'overwrite');
    expect((await client.query(`SELECT id, v, g FROM rt`)).rows).toEqual([{ id: 1, v: 'new', g: 10 }]);
  });
});
