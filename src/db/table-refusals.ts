/**
 * Why `archive` refuses a table before reading a row, from the catalog alone: inheritance children,
 * json inside composite values or arrays, too many columns, and — for a run that deletes —
 * ON DELETE CASCADE/SET NULL/SET DEFAULT references, enabled DELETE triggers and rules ON DELETE;
 * and, for any purpose, row-level security that applies to the session's role.
 * loadTablePlan (catalog.ts) throws the first of them; the wizard (src/wizard/run-wizard.ts)
 * reports them all, in the same words, so the configuration it writes does not fail its first run.
 * Each check returns its refusal instead of throwing it; the column checks are pure.
 */
import { AuditlogError } from '../core/errors.js';
import { describeDeleteTrigger, type DeleteTrigger, type TablePlan } from '../core/table-plan.js';
import type { Queryable } from './queryable.js';

/** Columns a table may have to be archived: restore's staging table adds one, and PostgreSQL allows 1600. */
export const MAX_ARCHIVED_COLUMNS = 1599;

/** What the column checks need of each column, in table order. */
export interface RefusalColumn {
  name: string;
  /** format_type() of the column. */
  type: string;
  /** A composite value, or an array of json or composite elements (catalog.ts computes it in SQL). */
  nestedJson: boolean;
}

export interface TableRefusalInput {
  oid: number;
  relkind: TablePlan['relkind'];
  database: string;
  /** schema.name, as messages write it. */
  qualified: string;
  columns: readonly RefusalColumn[];
  /** 'read' (validate --check-database) skips the refusals that only protect a delete. */
  purpose: 'archive' | 'read';
  /** The table's allow_delete_triggers setting. */
  allowDeleteTriggers: boolean;
}

export interface TableRefusals {
  /** In the order loadTablePlan has always checked them: the first is the one `archive` reports. */
  refusals: AuditlogError[];
  deleteTriggers: DeleteTrigger[];
}

/** Every reason `archive` (or a read) would refuse the table; empty when it would go ahead. */
export async function findTableRefusals(q: Queryable, input: TableRefusalInput): Promise<TableRefusals> {
  const { oid, relkind, database, qualified } = input;
  const deletes = input.purpose === 'archive';
  const refusals: (AuditlogError | undefined)[] = [];
  if (relkind === 'r') refusals.push(await checkInheritanceChildren(q, oid, database, qualified));
  refusals.push(checkNestedJson(input.columns, database, qualified), checkColumnCount(input.columns.length, database, qualified));
  if (deletes) refusals.push(await checkCascadingReferences(q, oid, database, qualified));
  const deleteTriggers = await selectDeleteTriggers(q, { oid, relkind });
  if (deletes && deleteTriggers.length > 0 && !input.allowDeleteTriggers) refusals.push(deleteTriggersError(deleteTriggers, database, qualified, 'TABLE_NOT_SUPPORTED', 'refused before any row was read'));
  if (deletes) refusals.push(await checkDeleteRules(q, { oid, relkind }, database, qualified));
  refusals.push(await checkRowSecurity(q, oid, database, qualified));
  return { refusals: refusals.filter((r): r is AuditlogError => r !== undefined), deleteTriggers };
}

/**
 * row_to_json passes json values through verbatim, raw newlines included. Top-level json columns
 * are written as text when needed (archive-sql.ts); inside arrays and composite values they cannot
 * be, and a raw newline would split the JSON line: refused before touching a row. Pure.
 */
export function checkNestedJson(columns: readonly RefusalColumn[], database: string, qualified: string): AuditlogError | undefined {
  const nested = columns.find((c) => c.nestedJson);
  if (nested === undefined) return undefined;
  return new AuditlogError('TABLE_NOT_SUPPORTED', `column "${nested.name}" of ${qualified} (database "${database}") has type ${nested.type}: composite values and arrays of json/composite elements are not supported yet (a json value inside them may hold raw newlines); use jsonb, or leave this table out`, {
    details: { database, table: qualified, column: nested.name },
  });
}

/**
 * Restore loads through a staging table of the columns plus a line number, and PostgreSQL's limit
 * is 1600 columns: rows archived from a wider table could never come back (found by probing). Pure.
 */
export function checkColumnCount(count: number, database: string, qualified: string): AuditlogError | undefined {
  if (count <= MAX_ARCHIVED_COLUMNS) return undefined;
  return new AuditlogError('TABLE_NOT_SUPPORTED', `${qualified} in database "${database}" has ${count} columns; at most ${MAX_ARCHIVED_COLUMNS} can be archived, since restore adds one column to PostgreSQL's limit of 1600: leave this table out, or archive it with fewer columns`, {
    details: { database, table: qualified, columns: count },
  });
}

/**
 * Row-level security that applies to the archiver's role would keep rows out of every read (so out
 * of the archive, and the retention is never enforced for them) and, with a stricter DELETE
 * policy, out of the delete: such rows were archived, then rewritten out of their object on every
 * run (found by probing). The sessions run with row_security off (connect.ts), so a filtered query
 * would fail anyway; this says why, and the fix, before anything is read. For a partitioned table
 * only the parent's policies apply to queries through it.
 */
async function checkRowSecurity(q: Queryable, oid: number, database: string, qualified: string): Promise<AuditlogError | undefined> {
  const r = await q.query<{ active: string; role: string }>(`SELECT pg_catalog.row_security_active($1::oid)::text AS active, current_user::text AS role`, [oid]);
  const { active, role } = r.rows[0]!;
  if (active !== 'true') return undefined;
  return new AuditlogError(
    'DB_PRIVILEGE',
    `row-level security applies to role ${role} on ${qualified} (database "${database}"): its policies would keep rows out of the archive or out of the delete; archive with a role that has BYPASSRLS (ALTER ROLE ${role} BYPASSRLS) or owns the table without FORCE ROW LEVEL SECURITY (docs/operations.md, PostgreSQL grants)`,
    { details: { database, table: qualified, role } },
  );
}

const DELETE_ACTIONS: Record<string, string> = { c: 'ON DELETE CASCADE', n: 'ON DELETE SET NULL', d: 'ON DELETE SET DEFAULT' };

/**
 * The archiver deletes only rows it archived (I2). A foreign key that references the table (or
 * one of its partitions or inheritance children, or the table itself) with ON DELETE CASCADE,
 * SET NULL or SET DEFAULT would make each of those deletes delete or change rows of the
 * referencing table, which are archived nowhere: refused before anything is read. NO ACTION and
 * RESTRICT only make a delete fail, which rolls the batch back.
 */
export async function checkCascadingReferences(
  q: Queryable,
  oid: number,
  database: string,
  qualified: string,
  code: 'TABLE_NOT_SUPPORTED' | 'TABLE_CHANGED' = 'TABLE_NOT_SUPPORTED',
  outcome?: string,
): Promise<AuditlogError | undefined> {
  const r = await q.query<{ conname: string; referencing: string; action: string }>(
    `WITH RECURSIVE tree(relid) AS (SELECT $1::oid UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid)
     SELECT c.conname, c.conrelid::regclass::text AS referencing, c.confdeltype::text AS action
       FROM pg_catalog.pg_constraint c JOIN tree ON c.confrelid = tree.relid
      WHERE c.contype = 'f' AND c.confdeltype IN ('c', 'n', 'd')
      ORDER BY c.conname LIMIT 1`,
    [oid],
  );
  const ref = r.rows[0];
  if (ref === undefined) return undefined;
  const action = DELETE_ACTIONS[ref.action]!;
  const effect = ref.action === 'c' ? 'delete' : 'change';
  return new AuditlogError(
    code,
    `${qualified} (database "${database}") is referenced by foreign key "${ref.conname}" of ${ref.referencing} with ${action}: deleting archived rows would ${effect} rows of ${ref.referencing}, which are not archived; ${outcome === undefined ? '' : `${outcome} — `}change that constraint to ON DELETE NO ACTION or RESTRICT, or leave this table out`,
    { details: { database, table: qualified, constraint: ref.conname, referencing: ref.referencing } },
  );
}

/**
 * An ordinary table with INHERITS children is read with the parent's columns only, but the
 * delete removes the children's rows too: their own columns were deleted and archived nowhere
 * (found in review; validate saw nothing wrong). Its key is not unique across children either.
 * Partitioned tables (relkind p) are fine: every partition has exactly the parent's columns.
 */
async function checkInheritanceChildren(q: Queryable, oid: number, database: string, qualified: string): Promise<AuditlogError | undefined> {
  const r = await q.query<{ child: string }>(
    `SELECT i.inhrelid::regclass::text AS child FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1::oid ORDER BY 1 LIMIT 1`,
    [oid],
  );
  const child = r.rows[0]?.child;
  if (child === undefined) return undefined;
  return new AuditlogError(
    'TABLE_NOT_SUPPORTED',
    `${qualified} (database "${database}") has inheritance children (${child}): their rows would be archived with the parent's columns only and deleted whole; archive each child table on its own and leave the parent out`,
    { details: { database, table: qualified, child } },
  );
}

/**
 * `tree(relid)`: the relations a DELETE from the table reaches ($1 its oid; $2 whether it is
 * partitioned, so its partitions, at every level, are included; an ordinary table's INHERITS
 * children are not: the archiver deletes from it with ONLY).
 */
const DELETED_FROM_CTE = `WITH RECURSIVE tree(relid) AS (
       SELECT $1::oid
       UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid WHERE $2::boolean)`;

/**
 * Enabled user triggers that fire on a DELETE from the table: its own, and for a partitioned table
 * those of every partition (a row trigger of the parent is cloned onto each partition and listed
 * there too). An ordinary table's INHERITS children are not included: the archiver deletes from
 * it with ONLY (archive-sql.ts), which fires no child's trigger. Internal triggers (foreign keys,
 * whose delete actions checkCascadingReferences judges) are left out; disabled ones ('D') never
 * fire. REPLICA and ALWAYS ones are counted whatever the session's replication role: fail closed.
 */
export async function selectDeleteTriggers(q: Queryable, plan: Pick<TablePlan, 'oid' | 'relkind'>): Promise<DeleteTrigger[]> {
  const r = await q.query<DeleteTrigger>(
    `${DELETED_FROM_CTE}
     SELECT g.tgname::text AS name, g.tgrelid::regclass::text AS table,
            CASE WHEN g.tgtype & 2 <> 0 THEN 'BEFORE' WHEN g.tgtype & 64 <> 0 THEN 'INSTEAD OF' ELSE 'AFTER' END
              || CASE WHEN g.tgtype & 1 <> 0 THEN ' ROW' ELSE ' STATEMENT' END AS timing,
            g.tgfoid::regprocedure::text AS function
       FROM pg_catalog.pg_trigger g JOIN tree ON g.tgrelid = tree.relid
      WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' AND g.tgtype & 8 <> 0
      ORDER BY 2, 1`,
    [plan.oid, plan.relkind === 'p'],
  );
  return r.rows;
}

/**
 * A rule ON DELETE rewrites the archiver's delete into something else: `DO INSTEAD UPDATE … SET
 * deleted = true RETURNING …` (a soft delete) returned every key as deleted while the rows stayed,
 * so committed objects held rows still in the table, archived again by every run (found in
 * review). DO ALSO and conditional rules fail inside the delete's WITH anyway. Always refused:
 * no setting makes a rewritten delete a delete. Checked when the plan is loaded and again inside
 * every delete transaction (`code` TABLE_CHANGED, `outcome` what was rolled back): CREATE RULE
 * takes a lock the delete's conflicts with, so one that rewrote this delete is seen there.
 */
export async function checkDeleteRules(
  q: Queryable,
  plan: Pick<TablePlan, 'oid' | 'relkind'>,
  database: string,
  qualified: string,
  code: 'TABLE_NOT_SUPPORTED' | 'TABLE_CHANGED' = 'TABLE_NOT_SUPPORTED',
  outcome = 'refused before any row was read',
): Promise<AuditlogError | undefined> {
  const r = await q.query<{ name: string; table: string }>(
    `${DELETED_FROM_CTE}
     SELECT w.rulename::text AS name, w.ev_class::regclass::text AS table
       FROM pg_catalog.pg_rewrite w JOIN tree ON w.ev_class = tree.relid
      WHERE w.ev_type = '4' AND w.ev_enabled <> 'D'
      ORDER BY 2, 1`,
    [plan.oid, plan.relkind === 'p'],
  );
  if (r.rows.length === 0) return undefined;
  const rules = r.rows.map((w) => `${w.table}.${w.name}`);
  return new AuditlogError(
    code,
    `${qualified} (database "${database}") has rule(s) ON DELETE ${rules.join(', ')}: they rewrite the archiver's delete (a DO INSTEAD rule keeps the rows while reporting them deleted), so archived rows could stay in the table; ${outcome} — drop or disable the rule (ALTER TABLE … DISABLE RULE …), or leave this table out`,
    { details: { database, table: qualified, rules } },
  );
}

/** Triggers listed in an error message before "and N more". */
const LISTED_TRIGGERS = 5;

/**
 * A DELETE trigger runs as part of the archiver's delete, and what it does is archived nowhere: an
 * AFTER trigger that deletes or changes other rows (found by probing: a row inside the retention
 * was deleted, exit 0, validate OK), a BEFORE trigger that returns NULL (the rows stay, and are read,
 * uploaded and rewritten out of the object on every run). Refused like ON DELETE CASCADE unless
 * the table's config says allow_delete_triggers: true.
 */
export function deleteTriggersError(
  triggers: readonly DeleteTrigger[],
  database: string,
  qualified: string,
  code: 'TABLE_NOT_SUPPORTED' | 'TABLE_CHANGED',
  outcome: string,
): AuditlogError {
  const listed = triggers.slice(0, LISTED_TRIGGERS).map(describeDeleteTrigger).join(', ');
  const more = triggers.length > LISTED_TRIGGERS ? ` and ${triggers.length - LISTED_TRIGGERS} more` : '';
  return new AuditlogError(
    code,
    `${qualified} (database "${database}") has DELETE trigger(s) ${listed}${more}: they would fire on the archiver's deletes, and rows they delete, change or keep are archived nowhere (${outcome}); drop or disable them (ALTER TABLE … DISABLE TRIGGER …), or, if they only record the delete, set allow_delete_triggers: true for this table (docs/configuration.md)`,
    { details: { database, table: qualified, triggers: triggers.map((t) => `${t.table}.${t.name}`) } },
  );
}
