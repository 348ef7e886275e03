/**
 * Catalog introspection: resolves a configured table into a TablePlan, or fails with an error
 * that names the table/column and the fix (I6). Names are matched exactly as stored (no case
 * folding, no parsing), so quoted, mixed-case and reserved-word identifiers just work.
 * Every non-text value is cast to text in SQL, so the result does not depend on the connection's
 * type parsers.
 */
import type { DefaultsConfig, TableConfig } from '../config/schema.js';
import { resolveCompression } from '../core/compression.js';
import { AuditlogError } from '../core/errors.js';
import type { ColumnInfo, TablePlan, TimestampKind } from '../core/table-plan.js';
import type { Queryable } from './queryable.js';
import { findTableRefusals, type RefusalColumn } from './table-refusals.js';

export { MAX_ARCHIVED_COLUMNS } from './table-refusals.js';

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
  const { oid, relkind, rows, columns } = await readTableCatalog(q, database, table);
  const allowDeleteTriggers = table.allow_delete_triggers === true;
  const { refusals, deleteTriggers } = await findTableRefusals(q, { oid, relkind, database, qualified, columns: refusalColumns(rows), purpose, allowDeleteTriggers });
  if (refusals[0] !== undefined) throw refusals[0];
  const byName = new Map(columns.map((c) => [c.name, c]));
  const baseTypes = new Map(rows.map((r) => [r.attname, r.base_type]));

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
    ...(({ compression, level }) => ({ compression, compressionLevel: level }))(resolveCompression(defaults, table)),
    pauseBetweenBatchesMs: table.pause_between_batches_ms ?? defaults.pause_between_batches_ms,
    batchesInFlight: table.batches_in_flight ?? defaults.batches_in_flight,
  };
}

/**
 * Every reason `archive` would refuse the table before reading a row, in loadTablePlan's words and
 * order (its first is what `archive` reports). Not the key or timestamp column checks: those
 * depend on the configuration the caller is about to write (the wizard checks them itself).
 * Throws TABLE_NOT_FOUND / TABLE_NOT_SUPPORTED when there is no such table at all.
 */
export async function listTableRefusals(
  q: Queryable,
  database: string,
  table: Pick<TableConfig, 'schema' | 'name' | 'allow_delete_triggers'>,
): Promise<AuditlogError[]> {
  const { oid, relkind, rows } = await readTableCatalog(q, database, table);
  const found = await findTableRefusals(q, {
    oid,
    relkind,
    database,
    qualified: `${table.schema}.${table.name}`,
    columns: refusalColumns(rows),
    purpose: 'archive',
    allowDeleteTriggers: table.allow_delete_triggers === true,
  });
  return found.refusals;
}

/**
 * `name: public.audit_log` is the table named "public.audit_log" in schema public (names are
 * taken as written), which was reported as "table public.public.audit_log not found" and left
 * the reader to spot why (found by probing). Said only once the table is not found: a name may
 * hold a dot.
 */
export function dottedNameHint(name: string): string {
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) return '';
  return `; a name is taken as written, dots included: for table ${name.slice(dot + 1)} in schema ${name.slice(0, dot)}, write \`schema: ${name.slice(0, dot)}, name: ${name.slice(dot + 1)}\``;
}

const refusalColumns = (rows: readonly ColumnRow[]): RefusalColumn[] => rows.map((r) => ({ name: r.attname, type: r.type, nestedJson: r.nested_json === 'true' }));

interface TableCatalog {
  oid: number;
  relkind: TablePlan['relkind'];
  rows: ColumnRow[];
  columns: ColumnInfo[];
}

/** The relation and its columns; a missing table or one that is not a table is refused here. */
async function readTableCatalog(q: Queryable, database: string, table: Pick<TableConfig, 'schema' | 'name'>): Promise<TableCatalog> {
  const qualified = `${table.schema}.${table.name}`;
  const rel = await q.query<{ oid: string; relkind: string }>(
    `SELECT c.oid::text AS oid, c.relkind::text AS relkind
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  );
  const found = rel.rows[0];
  if (found === undefined) {
    throw new AuditlogError('TABLE_NOT_FOUND', `table ${qualified} not found in database "${database}" (check databases[].tables[].schema/name; names are case-sensitive${dottedNameHint(table.name)})`, {
      details: { database, table: qualified },
    });
  }
  if (found.relkind !== 'r' && found.relkind !== 'p') {
    throw new AuditlogError('TABLE_NOT_SUPPORTED', `${qualified} in database "${database}" is not a table (relkind ${found.relkind}); only ordinary and partitioned tables can be archived`, {
      details: { database, table: qualified },
    });
  }
  const oid = Number(found.oid);
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
  return { oid, relkind: found.relkind === 'p' ? 'p' : 'r', rows: cols.rows, columns };
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
                   WHERE k.ord <= i.indnkeyatts
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
