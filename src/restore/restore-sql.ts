/**
 * SQL text of the restore load, built from the drift plan. Pure. Every identifier is quoted;
 * types are metadata/catalog `format_type()` text already checked to parse as a type name;
 * every value (line numbers, JSON keys, the manifest) is a bound parameter.
 *
 * The pipeline per batch, inside one transaction:
 *   parsed (line no, cols…)   ← COPY of the lines converted to COPY text in Node (copy-text.ts), or
 *                               when they cannot be converted exactly:
 *     lines (n, line)         ← COPY of the JSON lines, verbatim
 *     parsed                  ← json_populate_record with the *archived* types + the json rules
 *                               (an enum going into another type: text, schema-drift.ts stagedAsText)
 *   target                    ← INSERT … SELECT with casts to the target types, ON CONFLICT …
 */
import type { BatchMetadata, LineColumns } from '../core/batch-metadata.js';
import { quoteIdent, quoteQualified } from '../db/quote-ident.js';
import type { DriftPlan } from './schema-drift.js';

export type ConflictStrategy = 'skip' | 'overwrite' | 'fail' | 'upsert';

export const LINES_TABLE = 'pg_temp.auditlog_restore_lines';

/** Line number column of the parsed table: a name no archived column has. */
export function lineNumberColumn(columns: readonly { name: string }[]): string {
  let name = 'auditlog_line_no';
  while (columns.some((c) => c.name === name)) name += '_';
  return name;
}

export function createLinesTableSql(): string {
  return `CREATE TEMP TABLE IF NOT EXISTS auditlog_restore_lines (n int NOT NULL, line text NOT NULL) ON COMMIT DELETE ROWS`;
}

/** The archived row type (never holds rows) and the table of parsed rows, for one column list. */
export function createParsedTablesSql(id: number, columns: readonly { name: string; type: string }[]): { rowType: string; parsed: string; sql: string[] } {
  const defs = columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
  const rowType = `pg_temp.auditlog_restore_row_${id}`;
  const parsed = `pg_temp.auditlog_restore_parsed_${id}`;
  return {
    rowType,
    parsed,
    sql: [
      `CREATE TEMP TABLE auditlog_restore_row_${id} (${defs})`,
      `CREATE TEMP TABLE auditlog_restore_parsed_${id} (${quoteIdent(lineNumberColumn(columns))} int NOT NULL, ${defs}) ON COMMIT DELETE ROWS`,
    ],
  };
}

/**
 * How each column of the archived row type converts to COPY text (copy-text.ts ColumnKind), from
 * the catalog: `$1` is the row type's table. A true array is typelem + varlena in category A
 * (int2vector and oidvector are not: json_populate_record reads them as scalars). Outside a
 * UTF-8 database and session nothing converts: JSON \u escapes would need an encoding conversion.
 */
export const COLUMN_KINDS_SQL = `SELECT a.attname AS name,
  CASE
    WHEN pg_catalog.current_setting('server_encoding') <> 'UTF8' OR pg_catalog.current_setting('client_encoding') <> 'UTF8' THEN 'other'
    WHEN t.oid = 'pg_catalog.json'::pg_catalog.regtype THEN 'json'
    WHEN t.oid = 'pg_catalog.jsonb'::pg_catalog.regtype THEN 'jsonb'
    WHEN t.typelem <> 0 AND t.typlen = -1 AND t.typcategory = 'A' AND t.oid NOT IN ('pg_catalog.int2vector'::pg_catalog.regtype, 'pg_catalog.oidvector'::pg_catalog.regtype) THEN
      CASE WHEN e.typtype IN ('b', 'e', 'r', 'm') AND e.typelem = 0 AND e.oid NOT IN ('pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype) THEN 'array' ELSE 'other' END
    WHEN t.typtype IN ('b', 'e', 'r', 'm') AND t.typelem = 0 THEN 'scalar'
    ELSE 'other'
  END AS kind
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
 WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

/** COPY of converted rows (copy-text.ts) straight into the parsed table: line number, then the archived columns. */
export function copyParsedSql(columns: readonly { name: string }[], parsed: string): string {
  return `COPY ${parsed} (${[lineNumberColumn(columns), ...columns.map((c) => c.name)].map(quoteIdent).join(', ')}) FROM STDIN`;
}

/**
 * A batch may be COPied straight into the target — no staging table, no INSERT … SELECT — where
 * that provably gives the INSERT's result: every archived column lands in a target column of the
 * same type (no cast, nothing generated or left out), the conflict key is the archived primary
 * key (one column), and the target is a plain table where COPY does what INSERT does. Any key
 * already in the target makes the COPY fail with a unique violation, and the batch then takes the
 * staging path; `existingKeySql` (`$1`, `$2`: each object's min and max key as text, from its
 * metadata) predicts that with one index probe per object, so a restore into a table that holds
 * rows of the range (re-runs, `--conflict skip`) does not start a COPY that fails.
 */
export function directCopyPlan(
  drift: DriftPlan,
  target: { schema: string; table: string; key: readonly string[]; partitioned: boolean; copyLikeInsert: boolean },
  meta: Pick<BatchMetadata, 'columns' | 'primary_key_columns'>,
): { copySql: string; existingKeySql: string } | undefined {
  if (!target.copyLikeInsert || target.partitioned || target.key.length !== 1 || meta.primary_key_columns.length !== 1) return undefined;
  if (drift.dropped.length > 0 || drift.generated.length > 0 || drift.columns.length !== meta.columns.length) return undefined;
  if (drift.columns.some((c) => c.archivedType !== c.targetType || c.stagedType !== undefined)) return undefined;
  const byArchived = new Map(drift.columns.map((c) => [c.archived, c]));
  const key = byArchived.get(meta.primary_key_columns[0]!);
  if (key === undefined || key.target !== target.key[0]) return undefined;
  const table = quoteQualified(target.schema, target.table);
  return {
    copySql: `COPY ${table} (${meta.columns.map((c) => quoteIdent(byArchived.get(c.name)!.target)).join(', ')}) FROM STDIN`,
    existingKeySql: `SELECT 1 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) r(lo, hi) WHERE EXISTS (SELECT 1 FROM ${table} t WHERE t.${quoteIdent(key.target)} BETWEEN r.lo::${key.targetType} AND r.hi::${key.targetType}) LIMIT 1`,
  };
}

export const COPY_LINES_SQL = `COPY ${LINES_TABLE} (n, line) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')`;

/** Line numbers per column, from the metadata lists of the two json rules. */
function linesByColumn(entries: readonly LineColumns[] | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const e of entries ?? []) for (const c of e.columns) out.set(c, [...(out.get(c) ?? []), e.line]);
  return out;
}

/**
 * Parses the staged lines with the archived types. JSON `null` in json/jsonb columns and json
 * values written as their exact text are restored from the metadata (docs/format.md, "The two
 * json rules"); everything else is json_populate_record's own reading of the line.
 */
export function parseLinesSql(meta: Pick<BatchMetadata, 'columns' | 'json_null_values' | 'json_text_values'>, rowType: string, parsed: string): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const bind = (v: unknown): string => {
    values.push(v);
    return `$${values.length}`;
  };
  const nulls = linesByColumn(meta.json_null_values);
  const texts = linesByColumn(meta.json_text_values);
  const exprs = meta.columns.map((c) => {
    const col = `r.${quoteIdent(c.name)}`;
    const n = nulls.get(c.name);
    const t = texts.get(c.name);
    if (n === undefined && t === undefined) return col;
    const cases: string[] = [];
    if (n !== undefined) cases.push(`WHEN s.n = ANY(${bind(n)}::int[]) THEN 'null'::${c.type}`);
    if (t !== undefined) cases.push(`WHEN s.n = ANY(${bind(t)}::int[]) THEN (s.line::json ->> ${bind(c.name)})::${c.type}`);
    return `CASE ${cases.join(' ')} ELSE ${col} END`;
  });
  return {
    sql: `INSERT INTO ${parsed} SELECT s.n, ${exprs.join(', ')} FROM ${LINES_TABLE} s CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::${rowType}, s.line::json) r`,
    values,
  };
}

/**
 * The first line whose key is not the manifest's key for that line: only rows the batch's
 * delete removed may be restored. `$1` is the manifest as a JSON array of text arrays.
 */
export function manifestMismatchSql(meta: Pick<BatchMetadata, 'columns' | 'primary_key_columns'>, parsed: string): string {
  const n = quoteIdent(lineNumberColumn(meta.columns));
  const key = meta.primary_key_columns.map((k) => `p.${quoteIdent(k)}::text`).join(', ');
  return `SELECT p.${n} AS n FROM ${parsed} p WHERE pg_catalog.to_jsonb(ARRAY[${key}]) IS DISTINCT FROM ($1::jsonb -> p.${n}) ORDER BY p.${n} LIMIT 1`;
}

function valueExpr(c: DriftPlan['columns'][number]): string {
  const v = `p.${quoteIdent(c.archived)}`;
  return (c.stagedType ?? c.archivedType) === c.targetType ? v : `${v}::${c.targetBaseType}`;
}

/** Rows of the batch whose key already exists in the target (for --dry-run and reports). */
export function countConflictsSql(drift: DriftPlan, target: { schema: string; table: string; key: readonly string[] }, parsed: string): string | undefined {
  const exists = keyInTargetSql(drift, target);
  return exists === undefined ? undefined : `SELECT count(*)::int AS n FROM ${parsed} p WHERE ${exists}`;
}

/** `EXISTS (…)`: the staged row `p`'s key is in the target already; undefined when the archive does not feed every key column. */
function keyInTargetSql(drift: DriftPlan, target: { schema: string; table: string; key: readonly string[] }): string | undefined {
  const byTarget = new Map(drift.columns.map((c) => [c.target, c]));
  if (target.key.length === 0 || !target.key.every((k) => byTarget.has(k))) return undefined;
  const on = target.key.map((k) => `t.${quoteIdent(k)} = ${valueExpr(byTarget.get(k)!)}`).join(' AND ');
  return `EXISTS (SELECT 1 FROM ${quoteQualified(target.schema, target.table)} t WHERE ${on})`;
}

/**
 * The INSERT … SELECT of one batch. Returns one row: how many rows were inserted (the others of
 * the batch were conflicts: skipped, replaced or updated). `fail` has no ON CONFLICT: the unique violation stops
 * the batch and names the key.
 */
export function insertSql(
  drift: DriftPlan,
  target: { schema: string; table: string; key: readonly string[]; partitioned: boolean; columns: readonly { name: string; generated: boolean; identity: 'always' | 'by-default' | null }[] },
  parsed: string,
  strategy: ConflictStrategy,
): string {
  const cols = drift.columns.map((c) => quoteIdent(c.target)).join(', ');
  const overriding = drift.overridingSystemValue ? ' OVERRIDING SYSTEM VALUE' : '';
  let conflict = '';
  // On the key only: a violation of another unique index is an error to report, not a skipped row.
  if (strategy === 'skip') conflict = target.key.length > 0 ? ` ON CONFLICT (${target.key.map(quoteIdent).join(', ')}) DO NOTHING` : ' ON CONFLICT DO NOTHING';
  else if (strategy === 'overwrite' || strategy === 'upsert') {
    const isKey = new Set(target.key);
    const identityAlways = new Set(target.columns.filter((c) => c.identity === 'always').map((c) => c.name));
    const sets = drift.columns.filter((c) => !isKey.has(c.target) && !identityAlways.has(c.target)).map((c) => `${quoteIdent(c.target)} = EXCLUDED.${quoteIdent(c.target)}`);
    if (strategy === 'overwrite') {
      // Replace the row: what the archive has no value for goes back to its default, as on insert.
      const fed = new Set(drift.columns.map((c) => c.target));
      for (const c of target.columns) {
        if (!fed.has(c.name) && !isKey.has(c.name) && !c.generated && c.identity === null) sets.push(`${quoteIdent(c.name)} = DEFAULT`);
      }
    }
    // A table of key columns only: the row already is what the archive holds.
    if (sets.length === 0) sets.push(`${quoteIdent(target.key[0]!)} = EXCLUDED.${quoteIdent(target.key[0]!)}`);
    conflict = ` ON CONFLICT (${target.key.map(quoteIdent).join(', ')}) DO UPDATE SET ${sets.join(', ')}`;
  }
  // Aliased: in ON CONFLICT, a target table named "excluded" would make EXCLUDED ambiguous (found in review).
  const insert = `INSERT INTO ${quoteQualified(target.schema, target.table)} AS auditlog_target (${cols})${overriding} SELECT ${drift.columns.map(valueExpr).join(', ')} FROM ${latestPerKey(drift, target, parsed)} p${conflict}`;
  // xmax is 0 on a freshly inserted row version and set on one ON CONFLICT updated. Partitioned
  // tables cannot return system columns: there every returned row counts, and the caller counts
  // the conflicts before the INSERT.
  const updating = strategy === 'overwrite' || strategy === 'upsert';
  const inserted = updating && !target.partitioned ? `(xmax::text = '0')` : 'true';
  return `WITH w AS (${insert} RETURNING ${inserted} AS inserted) SELECT count(*) FILTER (WHERE inserted)::int AS inserted, count(*)::int AS returned FROM w`;
}

/**
 * What the batch's INSERT is given — one row per target key, the version archived last — and how
 * many of those keys the target already holds. Run before the INSERT where the target's triggers
 * may drop rows: the rows the INSERT then does not return are told apart from conflicts.
 */
export function feedCountsSql(drift: DriftPlan, target: { schema: string; table: string; key: readonly string[] }, parsed: string): string {
  return `SELECT count(*)::int AS given, count(*) FILTER (WHERE ${keyInTargetSql(drift, target) ?? 'false'})::int AS existing FROM ${latestPerKey(drift, target, parsed)} p`;
}

/**
 * The parsed rows, one per target key: the last line wins. An archive may hold two versions of a
 * row under one key (restored, then archived again — docs/format.md), and one INSERT … ON CONFLICT
 * DO UPDATE cannot touch a row twice (found in review). The older versions are left out before
 * batching (superseded-lines.ts); this stays as defence in depth (objects load oldest run first).
 */
function latestPerKey(drift: DriftPlan, target: { key: readonly string[] }, parsed: string): string {
  const byTarget = new Map(drift.columns.map((c) => [c.target, c]));
  if (target.key.length === 0 || !target.key.every((k) => byTarget.has(k))) return parsed;
  // Every archived column, by its archived name, as the parsed table was created: a target name
  // here (as for generated columns before) could pick a user column as the line order when
  // column_map renames an archived column "auditlog_line_no" (found in review).
  const archivedNames = [...drift.columns.map((c) => ({ name: c.archived })), ...drift.dropped, ...drift.generated.map((g) => ({ name: g.archived }))];
  const n = quoteIdent(lineNumberColumn(archivedNames));
  const keys = target.key.map((k) => valueExpr(byTarget.get(k)!)).join(', ');
  return `(SELECT DISTINCT ON (${keys}) p.* FROM ${parsed} p ORDER BY ${keys}, p.${n} DESC)`;
}

/** Whether the INSERT's own count tells inserted from updated rows (else count conflicts first). */
export function insertCountsUpdates(strategy: ConflictStrategy, target: { partitioned: boolean }): boolean {
  return !((strategy === 'overwrite' || strategy === 'upsert') && target.partitioned);
}
