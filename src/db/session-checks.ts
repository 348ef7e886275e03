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

/**
 * What the archive needs on a table besides reading it: DELETE, and UPDATE on some column, which
 * PostgreSQL requires for the delete's FOR UPDATE SKIP LOCKED (when the application holds rows
 * locked) and the reconciliation's FOR KEY SHARE after a crash. Without UPDATE a run would fail
 * only then — and every later run on reconciling (found in review). And a session that can write
 * and enforces what the delete relies on: a read-only default (or a standby) failed only after the
 * first objects were uploaded (found by probing). The archiver never updates a row.
 */
export async function checkArchiveAccess(q: Queryable, plan: Pick<TablePlan, 'oid' | 'database' | 'schema' | 'table'>): Promise<void> {
  const qualified = `${plan.schema}.${plan.table}`;
  const details = { database: plan.database, table: qualified };
  const r = await q.query<{ s: string; u: string; d: string; role: string; read_only: string }>(
    `SELECT has_any_column_privilege($1::oid, 'SELECT')::text AS s, has_any_column_privilege($1::oid, 'UPDATE')::text AS u,
            has_table_privilege($1::oid, 'DELETE')::text AS d, current_user::text AS role,
            current_setting('transaction_read_only') AS read_only`,
    [plan.oid],
  );
  const row = r.rows[0]!;
  if (row.read_only === 'on') {
    throw new AuditlogError('DB_SESSION', `database "${plan.database}" gives the archiver read-only transactions (default_transaction_read_only, or a standby): rows of ${qualified} could be archived but never deleted; connect to the primary, or reset default_transaction_read_only for the archiver's role. Nothing was archived or deleted`, { details });
  }
  await checkReplicationRole(q, plan.database, `foreign-key checks and triggers when rows of ${qualified} are deleted`, 'Nothing was archived or deleted');
  const missing = [row.s === 'true' ? null : 'SELECT', row.u === 'true' ? null : 'UPDATE', row.d === 'true' ? null : 'DELETE'].filter((p): p is string => p !== null);
  if (missing.length === 0) return;
  throw new AuditlogError(
    'DB_PRIVILEGE',
    `role ${row.role} lacks ${missing.join(', ')} on ${qualified} (database "${plan.database}"): the archive reads, locks (FOR UPDATE needs UPDATE) and deletes its rows; GRANT SELECT, UPDATE, DELETE ON ${qualified} TO ${row.role} (docs/operations.md, PostgreSQL grants). Nothing was archived or deleted`,
    { details: { ...details, missing } },
  );
}
