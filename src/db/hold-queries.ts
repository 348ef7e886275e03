/** Legal holds in the database: reading the holds table, and checking a record-level filter against its table. */
import type pg from 'pg';
import type { HoldCheckTableConfig } from '../config/schema.js';
import { AuditlogError, describeError } from '../core/errors.js';
import { filterFunctionNames, findFilterScopeProblem, findFilterTextProblem } from '../compliance/hold-filter-text.js';
import { holdLabel, holdTableNameProblem, type LegalHold } from '../compliance/legal-hold.js';
import { tableLabel, type HoldFilter, type TablePlan } from '../core/table-plan.js';
import { heldRowSql, holdExclusionSql } from './archive-sql.js';
import type { Queryable } from './queryable.js';
import { quoteIdent, quoteQualified } from './quote-ident.js';

const FIX = 'fix the hold: `where` must be one boolean expression over the table\'s columns, without ";", comments or dollar quoting (docs/compliance.md)';

/**
 * Throws LEGAL_HOLD_INVALID unless `hold.where` is a boolean expression PostgreSQL accepts on
 * this table, in exactly the form the archiver will use it. The check plans the statement
 * (LIMIT 0: no row is read, no function of the filter runs) in a READ ONLY transaction that is
 * rolled back, so even a filter that calls a writing function changes nothing here.
 */
export async function checkHoldFilter(pool: pg.Pool, plan: Pick<TablePlan, 'database' | 'schema' | 'table'>, hold: LegalHold, partitionOids?: readonly string[]): Promise<void> {
  const where = hold.where ?? '';
  const problem = findFilterTextProblem(where);
  const fail = (reason: string, cause?: unknown): AuditlogError =>
    new AuditlogError('LEGAL_HOLD_INVALID', `${holdLabel(hold)} on ${tableLabel(plan)}: where ${JSON.stringify(where)} is refused: ${reason}; ${FIX}`, {
      details: { table: tableLabel(plan), where, source: hold.source },
      ...(cause === undefined ? {} : { cause }),
    });
  if (problem !== undefined) throw fail(problem);
  const scope = findFilterScopeProblem(where);
  if (scope !== undefined) throw fail(scope);
  const names = filterFunctionNames(where);
  if (names.length > 0) {
    // Any function of that name that is VOLATILE is refused (overloads included: fail closed).
    const r = await pool.query<{ name: string }>(`SELECT DISTINCT lower(proname) AS name FROM pg_catalog.pg_proc WHERE lower(proname) = ANY($1::text[]) AND provolatile = 'v' ORDER BY 1`, [names]);
    if (r.rows.length > 0) {
      throw fail(`it calls ${r.rows.map((x) => `${x.name}()`).join(', ')}, which can change data or session state (VOLATILE): a hold filter may only call immutable or stable functions`);
    }
  }
  const client = await pool.connect();
  try {
    await client.query('BEGIN READ ONLY');
    await client.query("SET LOCAL statement_timeout = '10s'");
    await client.query(`SELECT 1 FROM ${quoteQualified(plan.schema, plan.table)} AS t WHERE true${holdExclusionSql({ holdFilters: [{ where, ...(partitionOids === undefined ? {} : { partitionOids }) }] })} LIMIT 0`);
  } catch (error) {
    throw fail(`PostgreSQL does not accept it: ${describeError(error)}`, error);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

interface HoldRow {
  table_name: string | null;
  where_text: string | null;
  reason: string | null;
  set_by: string | null;
  expires_at: string | null;
}

/** The holds of one database's holds table. Throws LEGAL_HOLD_UNAVAILABLE when it cannot be read (the caller holds every table: fail closed). */
export async function loadCheckTableHolds(q: Queryable, cfg: HoldCheckTableConfig, database: string): Promise<LegalHold[]> {
  const c = (name: string): string => `${quoteIdent(name)}`;
  const sql =
    `SELECT ${c(cfg.table_name_column)}::text AS table_name, ${c(cfg.where_column)}::text AS where_text, ${c(cfg.reason_column)}::text AS reason, ` +
    `${c(cfg.set_by_column)}::text AS set_by, to_char(${c(cfg.expires_at_column)}::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS expires_at ` +
    `FROM ${quoteQualified(cfg.schema, cfg.table)}`;
  let rows: HoldRow[];
  try {
    rows = (await q.query<HoldRow>(sql)).rows;
  } catch (error) {
    throw new AuditlogError(
      'LEGAL_HOLD_UNAVAILABLE',
      `legal holds table ${cfg.schema}.${cfg.table} in database ${database} could not be read (${describeError(error)}): no table of ${database} is archived, nor restored over (overwrite/upsert), until it can (fail closed); check legal_holds.check_table and GRANT SELECT on it, then run again`,
      { details: { database, table: `${cfg.schema}.${cfg.table}` }, cause: error },
    );
  }
  // A row without a table name is a hold we cannot place: it might cover any table of this
  // database, so the whole source is unavailable (fail closed) until someone fixes the row. It is
  // never guessed and never dropped (found in review: such rows were silently ignored).
  const unnamed = rows.filter((r) => r.table_name === null || holdTableNameProblem(r.table_name) !== undefined);
  if (unnamed.length > 0) {
    const reasons = unnamed.map((r) => r.reason ?? '(no reason given)').slice(0, 3);
    throw new AuditlogError(
      'LEGAL_HOLD_UNAVAILABLE',
      `legal holds table ${cfg.schema}.${cfg.table} in database ${database} has ${unnamed.length} row(s) whose ${cfg.table_name_column} is NULL or blank, or cannot name a table (reason: ${reasons.map((x) => JSON.stringify(x)).join(', ')}${unnamed.length > reasons.length ? ', ...' : ''}): such a hold could cover any table, so no table of ${database} is archived, nor restored over (overwrite/upsert), until each row names its table (name or schema.name) or is deleted`,
      { details: { database, table: `${cfg.schema}.${cfg.table}`, rows_without_table: unnamed.length } },
    );
  }
  return rows.map((r) => ({
    source: 'check_table' as const,
    database,
    table: r.table_name!.trim(),
    ...(r.where_text === null || r.where_text.trim() === '' ? {} : { where: r.where_text }),
    reason: r.reason ?? '(no reason given)',
    ...(r.set_by === null ? {} : { setBy: r.set_by }),
    ...(r.expires_at === null ? {} : { expiresAt: r.expires_at }),
  }));
}

/** Rows a (checked) hold keeps in the table: for `auditlog holds list`. Read only. */
export async function countHeldRows(q: Queryable, table: { schema: string; table: string }, filter: HoldFilter): Promise<number> {
  const r = await q.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${quoteQualified(table.schema, table.table)} AS t WHERE ${heldRowSql([filter])}`);
  return Number(r.rows[0]!.n);
}
