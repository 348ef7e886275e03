/**
 * Whether a database session can do what the archive or the restore is about to do, checked
 * before anything is read or written: privileges, a writable transaction, and a
 * session_replication_role that keeps foreign keys and triggers firing.
 */
import { AuditlogError } from '../core/errors.js';
import type { TablePlan } from '../core/table-plan.js';
import type { Queryable } from './queryable.js';

/**
 * session_replication_role = replica (or local), set for the database or the role, makes the
 * session skip foreign-key checks and the table's triggers (found by probing: the guarded delete
 * left orphaned referencing rows). Only superusers may set it, so it cannot be pinned at startup
 * like the other settings: refused instead. `skipped` says what would go unchecked.
 */
export async function checkReplicationRole(q: Queryable, database: string, skipped: string, nothingDone: string): Promise<void> {
  const r = await q.query<{ replication_role: string; role: string }>(`SELECT pg_catalog.current_setting('session_replication_role') AS replication_role, current_user::text AS role`);
  const { replication_role: setting, role } = r.rows[0]!;
  if (setting === 'origin') return;
  throw new AuditlogError(
    'DB_SESSION',
    `sessions on database "${database}" run with session_replication_role = ${setting}, which skips ${skipped}; ALTER ROLE ${role} RESET session_replication_role (or the database's setting). ${nothingDone}`,
    { details: { database, setting } },
  );
}

export interface ReadOnlyRefusal {
  /** Whose sessions: "the archiver", "the restore". */
  who: string;
  /** The table the run is about (schema.name), for details. */
  table: string;
  /** What a read-only session would do to the run, e.g. "rows of x could be archived but never deleted". */
  consequence: string;
  nothingDone: string;
}

interface WriteState {
  read_only: string;
  in_recovery: string;
  role: string;
}

async function selectWriteState(q: Queryable): Promise<WriteState> {
  const r = await q.query<WriteState>(
    `SELECT pg_catalog.current_setting('transaction_read_only') AS read_only, pg_catalog.pg_is_in_recovery()::text AS in_recovery, current_user::text AS role`,
  );
  return r.rows[0]!;
}

/**
 * Read-only transactions (default_transaction_read_only for the database or the role, or a hot
 * standby) are refused before anything is read: the first write would fail only after work was
 * done, with PostgreSQL's "cannot execute … in a read-only transaction" (found by probing, for
 * the archive and the restore).
 */
export async function checkWritable(q: Queryable, database: string, refusal: ReadOnlyRefusal): Promise<void> {
  const state = await selectWriteState(q);
  if (state.read_only !== 'on') return;
  const cause = state.in_recovery === 'true' ? 'a standby' : 'default_transaction_read_only';
  throw new AuditlogError(
    'DB_SESSION',
    `database "${database}" gives ${refusal.who} read-only transactions (default_transaction_read_only, or a standby): ${refusal.consequence}; connect to the primary, or reset default_transaction_read_only for ${refusal.who === 'the archiver' ? "the archiver's role" : `role ${state.role}`}. ${refusal.nothingDone}`,
    { details: { database, table: refusal.table, cause } },
  );
}

/**
 * A restore's dry run writes nothing that outlives it, but it stages rows in temporary tables to
 * count conflicts, and PostgreSQL refuses even CREATE TEMP TABLE in a read-only transaction. On a
 * primary whose default is read-only the dry-run session lifts that default for itself (every
 * transaction of a dry run ends in ROLLBACK); a standby cannot have temporary tables at all.
 */
export async function allowTemporaryTables(q: Queryable, database: string): Promise<void> {
  const state = await selectWriteState(q);
  if (state.read_only !== 'on') return;
  if (state.in_recovery === 'true') {
    throw new AuditlogError(
      'DB_SESSION',
      `database "${database}" is a standby (read-only): a restore dry run stages rows in temporary tables, which a standby cannot create; run the dry run against the primary. Nothing was restored`,
      { details: { database, cause: 'a standby' } },
    );
  }
  await q.query('SET default_transaction_read_only = off');
}

/**
 * What the archive needs on a table besides reading it: DELETE, and UPDATE on some column, which
 * PostgreSQL requires for the delete's FOR UPDATE SKIP LOCKED (when the application holds rows
 * locked) and the reconciliation's FOR KEY SHARE after a crash. Without UPDATE a run would fail
 * only then — and every later run on reconciling (found in review). And a session that can write
 * and enforces what the delete relies on: a read-only default (or a standby) failed only after the
 * first objects were uploaded (found by probing). The archiver never updates a row. SELECT means
 * every column (the archive reads whole rows: column grants on some gave a bare "permission
 * denied"), USAGE on the schema, and SELECT on pg_locks, which the delete's lock fence reads
 * (revoked from PUBLIC, every run uploaded its batches and then failed before deleting; found by
 * probing).
 */
export async function checkArchiveAccess(q: Queryable, plan: Pick<TablePlan, 'oid' | 'database' | 'schema' | 'table'>): Promise<void> {
  const qualified = `${plan.schema}.${plan.table}`;
  const details = { database: plan.database, table: qualified };
  const r = await q.query<{ s: string; u: string; d: string; usage: string; locks: string; role: string }>(
    `SELECT (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
                           AND NOT pg_catalog.has_column_privilege($1::oid, a.attnum, 'SELECT')))::text AS s,
            pg_catalog.has_any_column_privilege($1::oid, 'UPDATE')::text AS u, pg_catalog.has_table_privilege($1::oid, 'DELETE')::text AS d,
            pg_catalog.has_schema_privilege((SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = $1::oid), 'USAGE')::text AS usage,
            pg_catalog.has_table_privilege('pg_catalog.pg_locks', 'SELECT')::text AS locks, current_user::text AS role`,
    [plan.oid],
  );
  const row = r.rows[0]!;
  await checkWritable(q, plan.database, { who: 'the archiver', table: qualified, consequence: `rows of ${qualified} could be archived but never deleted`, nothingDone: 'Nothing was archived or deleted' });
  await checkReplicationRole(q, plan.database, `foreign-key checks and triggers when rows of ${qualified} are deleted`, 'Nothing was archived or deleted');
  const onTable = [row.s === 'true' ? null : 'SELECT', row.u === 'true' ? null : 'UPDATE', row.d === 'true' ? null : 'DELETE'].filter((p): p is string => p !== null);
  // Each gap: its name in details, what the role lacks, and the GRANT that fills it, in that order.
  const gaps: [string[], string, string][] = [];
  if (row.usage !== 'true') gaps.push([['USAGE'], `USAGE on schema ${plan.schema}`, `GRANT USAGE ON SCHEMA ${plan.schema} TO ${row.role}`]);
  if (onTable.length > 0) {
    gaps.push([onTable, `${onTable.join(', ')} on ${qualified}${onTable.includes('SELECT') ? ' (SELECT on every column)' : ''}`, `GRANT SELECT, UPDATE, DELETE ON ${qualified} TO ${row.role}`]);
  }
  if (row.locks !== 'true') gaps.push([['pg_locks'], 'SELECT on pg_catalog.pg_locks (read by the lock check before each delete commits)', `GRANT SELECT ON pg_catalog.pg_locks TO ${row.role}`]);
  if (gaps.length === 0) return;
  throw new AuditlogError(
    'DB_PRIVILEGE',
    `role ${row.role} lacks ${gaps.map((g) => g[1]).join('; ')} (database "${plan.database}"): the archive reads, locks (FOR UPDATE needs UPDATE) and deletes its rows; ${gaps.map((g) => g[2]).join('; ')} (docs/operations.md, PostgreSQL grants). Nothing was archived or deleted`,
    { details: { ...details, missing: gaps.flatMap((g) => g[0]) } },
  );
}
