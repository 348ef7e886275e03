/**
 * Catalog introspection: resolves a configured table into a TablePlan, or fails with an error
 * that names the table/column and the fix (I6). Names are matched exactly as stored (no case
 * folding, no parsing), so quoted, mixed-case and reserved-word identifiers just work.
 * Every non-text value is cast to text in SQL, so the result does not depend on the connection's
 * type parsers.
 */
import type { DefaultsConfig, TableConfig } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import { describeDeleteTrigger, type ColumnInfo, type DeleteTrigger, type TablePlan, type TimestampKind } from '../core/table-plan.js';
import type { Queryable } from './queryable.js';

interface ColumnRow {
  attname: string;
  type: string;
  is_array: string;
  json_kind: string | null;
  attnotnull: string;
  attgenerated: string;
  attidentity: string;
  base_type: string;
  nested_json: string;
  jsonb_elements: string;
}

const TIMESTAMP_KINDS: Record<string, TimestampKind> = {
  'timestamp with time zone': 'timestamptz',
  'timestamp without time zone': 'timestamp',
  date: 'date',
};


/** Columns a table may have to be archived: restore's staging table adds one, and PostgreSQL allows 1600. */
export const MAX_ARCHIVED_COLUMNS = 1599;
/**
 * `purpose: 'read'` (validate --check-database, which reads rows and never deletes) skips the
 * refusals that only protect a delete — ON DELETE CASCADE references, DELETE triggers and rules:
 * a table archived before one was added must still be checkable (found in review).
 */
export async function loadTablePlan(
  q: Queryable,
  database: string,
  table: TableConfig,
  defaults: DefaultsConfig,
  purpose: 'archive' | 'read' = 'archive',
): Promise<TablePlan> {
  const qualified = `${table.schema}.${table.name}`;
  const rel = await q.query<{ oid: string; relkind: string }>(
    `SELECT c.oid::text AS oid, c.relkind::text AS relkind
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  const found = rel.rows[0];
  if (found === undefined) {
    throw new AuditlogError('TABLE_NOT_FOUND', `table ${qualified} not found in database "${database}" (check databases[].tables[].schema/name; names are case-sensitive)`, {
      details: { database, table: qualified },
    });
  }
  if (found.relkind !== 'r' && found.relkind !== 'p') {
    throw new AuditlogError('TABLE_NOT_SUPPORTED', `${qualified} in database "${database}" is not a table (relkind ${found.relkind}); only ordinary and partitioned tables can be archived`, {
      details: { database, table: qualified },
    });
  }
  const oid = Number(found.oid);
  if (found.relkind === 'r') await refuseInheritanceChildren(q, oid, database, qualified);
  const cols = await q.query<ColumnRow>(
    `SELECT a.attname,
            pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            (t.typcategory = 'A' OR bt.typcategory = 'A')::text AS is_array,
            CASE WHEN COALESCE(bt.typname, t.typname) IN ('json', 'jsonb') THEN COALESCE(bt.typname, t.typname) END AS json_kind,
            a.attnotnull::text AS attnotnull, a.attgenerated::text AS attgenerated, a.attidentity::text AS attidentity,
            pg_catalog.format_type(COALESCE(bt.oid, t.oid), NULL) AS base_type,
            EXISTS (SELECT 1 FROM pg_catalog.pg_type et LEFT JOIN pg_catalog.pg_type ebt ON et.typtype = 'd' AND ebt.oid = et.typbasetype
                     WHERE et.oid = COALESCE(bt.typelem, t.typelem) AND COALESCE(bt.typcategory, t.typcategory) = 'A'
                       AND COALESCE(ebt.typname, et.typname) = 'jsonb')::text AS jsonb_elements,
            (COALESCE(bt.typtype, t.typtype) = 'c' OR EXISTS (
               SELECT 1 FROM pg_catalog.pg_type et LEFT JOIN pg_catalog.pg_type ebt ON et.typtype = 'd' AND ebt.oid = et.typbasetype
                WHERE et.oid = COALESCE(bt.typelem, t.typelem) AND COALESCE(bt.typcategory, t.typcategory) = 'A'
                  AND (COALESCE(ebt.typname, et.typname) = 'json' OR COALESCE(ebt.typtype, et.typtype) = 'c')))::text AS nested_json
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid],
  );
  const columns: ColumnInfo[] = cols.rows.map((r) => ({
    name: r.attname,
    type: r.type,
    isArray: r.is_array === 'true',
    jsonbElements: r.jsonb_elements === 'true',
    jsonKind: r.json_kind === 'json' || r.json_kind === 'jsonb' ? r.json_kind : null,
    notNull: r.attnotnull === 'true',
    generated: r.attgenerated !== '',
    identity: r.attidentity === 'a' ? 'always' : r.attidentity === 'd' ? 'by-default' : null,
  }));
  // row_to_json passes json values through verbatim, raw newlines included. Top-level json
  // columns are written as text when needed (archive-sql.ts); inside arrays and composite values
  // they cannot be, and a raw newline would split the JSON line: refuse before touching a row.
  const nested = cols.rows.find((r) => r.nested_json === 'true');
  if (nested !== undefined) {
    throw new AuditlogError('TABLE_NOT_SUPPORTED', `column "${nested.attname}" of ${qualified} (database "${database}") has type ${nested.type}: composite values and arrays of json/composite elements are not supported yet (a json value inside them may hold raw newlines); use jsonb, or leave this table out`, {
      details: { database, table: qualified, column: nested.attname },
    });
  }
  // Restore loads through a staging table of the columns plus a line number, and PostgreSQL's
  // limit is 1600 columns: rows archived from a wider table could never come back (found by probing).
  if (columns.length > MAX_ARCHIVED_COLUMNS) {
    throw new AuditlogError('TABLE_NOT_SUPPORTED', `${qualified} in database "${database}" has ${columns.length} columns; at most ${MAX_ARCHIVED_COLUMNS} can be archived, since restore adds one column to PostgreSQL's limit of 1600: leave this table out, or archive it with fewer columns`, {
      details: { database, table: qualified, columns: columns.length },
    });
  }
  const deletes = purpose === 'archive';
  if (deletes) await refuseCascadingReferences(q, oid, database, qualified);
  const relkind = found.relkind;
  const deleteTriggers = await selectDeleteTriggers(q, { oid, relkind });
  const allowDeleteTriggers = table.allow_delete_triggers === true;
  if (deletes && deleteTriggers.length > 0 && !allowDeleteTriggers) throw deleteTriggersError(deleteTriggers, database, qualified, 'TABLE_NOT_SUPPORTED', 'refused before any row was read');
  if (deletes) await refuseDeleteRules(q, { oid, relkind }, database, qualified);
  const byName = new Map(columns.map((c) => [c.name, c]));
  const baseTypes = new Map(cols.rows.map((r) => [r.attname, r.base_type]));

  const tsColumn = byName.get(table.timestamp_column);
  if (tsColumn === undefined) {
    throw new AuditlogError('COLUMN_NOT_FOUND', `column "${table.timestamp_column}" not found in ${qualified} (database "${database}"); set timestamp_column to one of: ${columns.map((c) => c.name).join(', ')}`, {
      details: { database, table: qualified, column: table.timestamp_column },
    });
  }
  const timestampKind = TIMESTAMP_KINDS[baseTypes.get(tsColumn.name) ?? ''];
  if (timestampKind === undefined) {
    throw new AuditlogError('TABLE_NOT_SUPPORTED', `timestamp_column "${tsColumn.name}" of ${qualified} has type ${tsColumn.type}; expected timestamptz, timestamp or date`, {
      details: { database, table: qualified, column: tsColumn.name },
    });
  }

  const primaryKey = await resolvePrimaryKey(q, oid, table, byName, database, qualified);
  const batchSize = table.batch_size ?? defaults.batch_size;
  return {
    database,
    schema: table.schema,
    table: table.name,
    oid,
    relkind,
    deleteTriggers,
    allowDeleteTriggers,
    columns,
    primaryKey,
    timestampColumn: tsColumn,
    timestampKind,
    retentionDays: table.retention_days ?? defaults.retention_days,
    batchSize,
    // batch_size is the starting point, so the bounds always include it.
    minBatchSize: Math.min(table.min_batch_size ?? defaults.min_batch_size, batchSize),
    maxBatchSize: Math.max(table.max_batch_size ?? defaults.max_batch_size ?? batchSize, batchSize),
    targetQueryTimeMs: table.target_query_time_ms ?? defaults.target_query_time_ms,
    maxBatchBytes: table.max_batch_bytes ?? defaults.max_batch_bytes,
    compressionLevel: table.compression_level ?? defaults.compression_level,
    pauseBetweenBatchesMs: table.pause_between_batches_ms ?? defaults.pause_between_batches_ms,
    batchesInFlight: table.batches_in_flight ?? defaults.batches_in_flight,
  };
}

/**
 * The key that identifies a row for the guarded delete and the manifest. A configured key must be
 * the primary key or a unique index over NOT NULL columns: anything weaker could delete rows that
 * were never archived.
 */
async function resolvePrimaryKey(
  q: Queryable,
  oid: number,
  table: TableConfig,
  byName: Map<string, ColumnInfo>,
  database: string,
  qualified: string,
): Promise<ColumnInfo[]> {
  const idx = await q.query<{ indisprimary: string; cols: string }>(
    `SELECT i.indisprimary::text AS indisprimary,
            array_to_json(ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   ORDER BY k.ord))::text AS cols
       FROM pg_catalog.pg_index i
      WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
      ORDER BY i.indisprimary DESC, i.indexrelid`,
    [oid],
  );
  const indexes = idx.rows.map((r) => ({
    primary: r.indisprimary === 'true',
    cols: JSON.parse(r.cols) as string[],
  }));
  const configured = table.primary_key === undefined ? undefined : Array.isArray(table.primary_key) ? table.primary_key : [table.primary_key];

  if (configured === undefined) {
    const pk = indexes.find((i) => i.primary);
    if (pk === undefined) {
      throw new AuditlogError('NO_PRIMARY_KEY', `table ${qualified} in database "${database}" has no primary key; add one, or set primary_key to columns with a unique index (rows must be identified exactly to be deleted safely)`, {
        details: { database, table: qualified },
      });
    }
    return pk.cols.map((c) => byName.get(c)!);
  }
  const missing = configured.filter((c) => !byName.has(c));
  if (missing.length > 0) {
    throw new AuditlogError('COLUMN_NOT_FOUND', `primary_key column "${missing[0]}" not found in ${qualified} (database "${database}")`, {
      details: { database, table: qualified, column: missing[0] },
    });
  }
  const matches = indexes.some(
    (i) => i.cols.length === configured.length && i.cols.every((c) => configured.includes(c)) && (i.primary || configured.every((c) => byName.get(c)!.notNull)),
  );
  if (!matches) {
    throw new AuditlogError('NO_PRIMARY_KEY', `primary_key (${configured.join(', ')}) of ${qualified} is not unique: no primary key or unique index over NOT NULL columns matches it; use the table's primary key`, {
      details: { database, table: qualified },
    });
  }
  return configured.map((c) => byName.get(c)!);
}

const DELETE_ACTIONS: Record<string, string> = { c: 'ON DELETE CASCADE', n: 'ON DELETE SET NULL', d: 'ON DELETE SET DEFAULT' };

/**
 * The archiver deletes only rows it archived (I2). A foreign key that references the table (or
 * one of its partitions or inheritance children, or the table itself) with ON DELETE CASCADE,
 * SET NULL or SET DEFAULT would make each of those deletes delete or change rows of the
 * referencing table, which are archived nowhere: refused before anything is read. NO ACTION and
 * RESTRICT only make a delete fail, which rolls the batch back.
 */
async function refuseCascadingReferences(q: Queryable, oid: number, database: string, qualified: string): Promise<void> {
  const r = await q.query<{ conname: string; referencing: string; action: string }>(
    `WITH RECURSIVE tree(relid) AS (SELECT $1::oid UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid)
     SELECT c.conname, c.conrelid::regclass::text AS referencing, c.confdeltype::text AS action
       FROM pg_catalog.pg_constraint c JOIN tree ON c.confrelid = tree.relid
      WHERE c.contype = 'f' AND c.confdeltype IN ('c', 'n', 'd')
      ORDER BY c.conname LIMIT 1`,
    [oid],
  );
  const ref = r.rows[0];
  if (ref === undefined) return;
  const action = DELETE_ACTIONS[ref.action]!;
  throw new AuditlogError(
    'TABLE_NOT_SUPPORTED',
    `${qualified} (database "${database}") is referenced by foreign key "${ref.conname}" of ${ref.referencing} with ${action}: deleting archived rows would ${ref.action === 'c' ? 'delete' : 'change'} rows of ${ref.referencing}, which are not archived; change that constraint to ON DELETE NO ACTION or RESTRICT, or leave this table out`,
    { details: { database, table: qualified, constraint: ref.conname, referencing: ref.referencing } },
  );
}

/**
 * An ordinary table with INHERITS children is read with the parent's columns only, but the
 * delete removes the children's rows too: their own columns were deleted and archived nowhere
 * (found in review; validate saw nothing wrong). Its key is not unique across children either.
 * Partitioned tables (relkind p) are fine: every partition has exactly the parent's columns.
 */
async function refuseInheritanceChildren(q: Queryable, oid: number, database: string, qualified: string): Promise<void> {
  const r = await q.query<{ child: string }>(
    `SELECT i.inhrelid::regclass::text AS child FROM pg_catalog.pg_inherits i WHERE i.inhparent = $1::oid ORDER BY 1 LIMIT 1`,
    [oid],
  );
  const child = r.rows[0]?.child;
  if (child === undefined) return;
  throw new AuditlogError(
    'TABLE_NOT_SUPPORTED',
    `${qualified} (database "${database}") has inheritance children (${child}): their rows would be archived with the parent's columns only and deleted whole; archive each child table on its own and leave the parent out`,
    { details: { database, table: qualified, child } },
  );
}

/**
 * Enabled user triggers that fire on a DELETE from the table: its own, and for a partitioned table
 * those of every partition (a row trigger of the parent is cloned onto each partition and listed
 * there too). An ordinary table's INHERITS children are not included: the archiver deletes from
 * it with ONLY (archive-sql.ts), which fires no child's trigger. Internal triggers (foreign keys,
 * whose delete actions refuseCascadingReferences judges) are left out; disabled ones ('D') never
 * fire. REPLICA and ALWAYS ones are counted whatever the session's replication role: fail closed.
 */
export async function selectDeleteTriggers(q: Queryable, plan: Pick<TablePlan, 'oid' | 'relkind'>): Promise<DeleteTrigger[]> {
  const r = await q.query<DeleteTrigger>(
    `WITH RECURSIVE tree(relid) AS (
       SELECT $1::oid
       UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid WHERE $2::boolean)
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
 * no setting makes a rewritten delete a delete.
 */
async function refuseDeleteRules(q: Queryable, plan: Pick<TablePlan, 'oid' | 'relkind'>, database: string, qualified: string): Promise<void> {
  const r = await q.query<{ name: string; table: string }>(
    `WITH RECURSIVE tree(relid) AS (
       SELECT $1::oid
       UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid WHERE $2::boolean)
     SELECT w.rulename::text AS name, w.ev_class::regclass::text AS table
       FROM pg_catalog.pg_rewrite w JOIN tree ON w.ev_class = tree.relid
      WHERE w.ev_type = '4' AND w.ev_enabled <> 'D'
      ORDER BY 2, 1`,
    [plan.oid, plan.relkind === 'p'],
  );
  if (r.rows.length === 0) return;
  const rules = r.rows.map((w) => `${w.table}.${w.name}`);
  throw new AuditlogError(
    'TABLE_NOT_SUPPORTED',
    `${qualified} (database "${database}") has rule(s) ON DELETE ${rules.join(', ')}: they rewrite the archiver's delete (a DO INSTEAD rule keeps the rows while reporting them deleted), so archived rows could stay in the table; refused before any row was read — drop or disable the rule (ALTER TABLE … DISABLE RULE …), or leave this table out`,
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
