/**
 * The audit table: one row per audit record, holding the record's exact JSON bytes and their
 * SHA-256. The archiver only ever INSERTs (and SELECTs the newest row to link to it); no UPDATE
 * or DELETE is issued anywhere, and docs/compliance.md shows the GRANT that makes that enforced.
 */
import type pg from 'pg';
import type { Queryable } from './queryable.js';
import { quoteQualified } from './quote-ident.js';

export interface AuditRow {
  id: string;
  record: string;
  /** Copies of the record's fields, for querying (recorded_at is the database's clock, not the record's). */
  event: string;
  run_id: string;
  database_name: string | null;
  schema_name: string | null;
  table_name: string | null;
  sha256: string;
}

export function buildCreateAuditTableSql(schema: string, table: string): string {
  return (
    `CREATE TABLE IF NOT EXISTS ${quoteQualified(schema, table)} (` +
    `id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, recorded_at timestamptz NOT NULL DEFAULT now(), ` +
    `event text NOT NULL, run_id text NOT NULL, database_name text, schema_name text, table_name text, ` +
    `record text NOT NULL, sha256 text NOT NULL)`
  );
}

export async function auditTableExists(q: Queryable, schema: string, table: string): Promise<boolean> {
  const r = await q.query<{ oid: string | null }>('SELECT to_regclass($1)::text AS oid', [quoteQualified(schema, table)]);
  return r.rows[0]?.oid !== null;
}

/**
 * Appends under a transaction-scoped advisory lock keyed on the table, after reading the newest
 * row: two runs appending at once take turns, so the database chain never forks.
 */
export async function insertAuditRow(
  pool: pg.Pool,
  schema: string,
  table: string,
  build: (prevRecord: string | null) => { event: string; runId: string; database: string | null; schema: string | null; table: string | null; record: string; sha256: string },
): Promise<void> {
  const client = await pool.connect();
  const qualified = quoteQualified(schema, table);
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`auditlog-audit:${qualified}`]);
    const last = await client.query<{ record: string }>(`SELECT record FROM ${qualified} ORDER BY id DESC LIMIT 1`);
    const row = build(last.rows[0]?.record ?? null);
    await client.query(`INSERT INTO ${qualified} (event, run_id, database_name, schema_name, table_name, record, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
      row.event,
      row.runId,
      row.database,
      row.schema,
      row.table,
      row.record,
      row.sha256,
    ]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Up to `limit` rows after `afterId` (from the first when undefined), in id order: keyset pages, so
 * a long trail is never one result set in memory. `t.id` is the bigint column: a bare `ORDER BY id`
 * would sort by the text output column of the same name (1, 10, 2, …).
 */
export async function selectAuditRowPage(q: Queryable, schema: string, table: string, afterId: string | undefined, limit: number): Promise<AuditRow[]> {
  const from = `${quoteQualified(schema, table)} AS t`;
  const columns = 't.id::text AS id, t.record, t.event, t.run_id, t.database_name, t.schema_name, t.table_name, t.sha256';
  const r =
    afterId === undefined
      ? await q.query<AuditRow>(`SELECT ${columns} FROM ${from} ORDER BY t.id LIMIT $1`, [limit])
      : await q.query<AuditRow>(`SELECT ${columns} FROM ${from} WHERE t.id > $1::bigint ORDER BY t.id LIMIT $2`, [afterId, limit]);
  return r.rows;
}
