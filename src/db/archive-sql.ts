/**
 * SQL text for the archive pipeline, built from a TablePlan. Pure: identifiers are quoted here,
 * values are always bound parameters (I6). One builder per statement; `archive-queries.ts` runs them.
 */
import type { ColumnInfo, TablePlan } from '../core/table-plan.js';
import { quoteIdent, quoteQualified } from './quote-ident.js';

const col = (c: ColumnInfo): string => `t.${quoteIdent(c.name)}`;

/** A literal for an arbitrary string (only used for constants we build, never for user values). */
function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function firstRepresentable(plan: TablePlan): string {
  return plan.timestampKind === 'timestamptz' ? "'0001-01-01 00:00:00+00'" : "'0001-01-01'";
}

/** UTC day of a row, or 0000-00-00 for -infinity/infinity and BC values, which have no YYYY-MM-DD of their own. */
function dayExpression(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  return `CASE WHEN isfinite(${ts}) AND ${ts} >= ${firstRepresentable(plan)} THEN to_char(${ts}, 'YYYY-MM-DD') ELSE '0000-00-00' END`;
}

function timeOfDayExpression(plan: TablePlan): string {
  if (plan.timestampKind === 'date') return quoteLiteral('000000000000');
  const ts = col(plan.timestampColumn);
  return `CASE WHEN isfinite(${ts}) THEN to_char(${ts}, 'HH24MISSUS') ELSE '000000000000' END`;
}

/**
 * A json (not jsonb) value keeps its whitespace, and that may include raw newlines, which would
 * split the JSON line: such a value (and a JSON `null` spelled with extra whitespace) is written
 * as a JSON string holding its exact text, and flagged in the metadata (docs/format.md).
 */
function jsonNeedsText(c: ColumnInfo): string {
  return `(strpos(${col(c)}::text, E'\\n') > 0 OR strpos(${col(c)}::text, E'\\r') > 0 OR (json_typeof(${col(c)}) = 'null' AND ${col(c)}::text <> 'null'))`;
}

const needsProjection = (c: ColumnInfo): boolean => c.isArray || c.jsonKind === 'json';

/**
 * JSON text of the row. row_to_json is exact for every type but two: arrays whose lower bound is
 * not 1 (the JSON array drops `[0:2]=`) are written as their PostgreSQL text literal, which
 * json_populate_record parses back into the identical array; json values, see jsonNeedsText.
 */
function lineExpression(plan: TablePlan): { select: string; join: string } {
  if (!plan.columns.some(needsProjection)) return { select: 'row_to_json(t)::text', join: '' };
  const projection = plan.columns
    .map((c) => {
      if (c.isArray) {
        return `CASE WHEN ${col(c)} IS NOT NULL AND array_dims(${col(c)}) !~ '^(\\[1:[0-9]+\\])+$' THEN to_json(${col(c)}::text) ELSE to_json(${col(c)}) END AS ${quoteIdent(c.name)}`;
      }
      if (c.jsonKind === 'json') return `CASE WHEN ${jsonNeedsText(c)} THEN to_json(${col(c)}::text) ELSE ${col(c)} END AS ${quoteIdent(c.name)}`;
      return col(c);
    })
    .join(', ');
  return {
    select: 'l.line',
    join: ` CROSS JOIN LATERAL (SELECT row_to_json(p)::text AS line FROM (SELECT ${projection}) AS p) AS l`,
  };
}

/**
 * Flags per row for json/jsonb columns (index into plan.columns): `n<i>` JSON null (the line shows
 * `null`, as for SQL NULL), `t<i>` json written as a string of its exact text.
 */
function jsonFlagsExpression(plan: TablePlan): string {
  const cases = plan.columns
    .map((c, i) => {
      if (c.jsonKind === 'jsonb') return `CASE WHEN jsonb_typeof(${col(c)}) = 'null' THEN 'n${i}' END`;
      if (c.jsonKind === 'json') return `CASE WHEN ${jsonNeedsText(c)} THEN 't${i}' WHEN json_typeof(${col(c)}) = 'null' THEN 'n${i}' END`;
      return null;
    })
    .filter((x): x is string => x !== null);
  return cases.length === 0 ? 'NULL::text' : `array_remove(ARRAY[${cases.join(', ')}], NULL)::text`;
}

const orderColumns = (plan: TablePlan): ColumnInfo[] => [plan.timestampColumn, ...plan.primaryKey];

export function buildCutoffSql(plan: TablePlan): string {
  return `SELECT (now() - make_interval(days => $1::int))::${plan.timestampColumn.type}::text AS cutoff`;
}

/** $1 = cutoff. */
export function buildCountSql(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  return `SELECT count(*)::text AS n, min(${ts})::text AS min_ts, max(${ts})::text AS max_ts FROM ${quoteQualified(plan.schema, plan.table)} AS t WHERE ${ts} < $1::${plan.timestampColumn.type}`;
}

export interface PageRow {
  line: string;
  x: string;
  ts: string;
  day: string;
  tod: string;
  jn: string | null;
  [key: `k${number}`]: string;
}

/**
 * One page in (timestamp, primary key) order, keyset-paginated from the last position (never a
 * re-scan of the range: dead tuples of earlier batches would be walked again). $1 = cutoff,
 * then (when `afterPosition`) the timestamp and key values of the last row already read.
 */
export function buildSelectPageSql(plan: TablePlan, afterPosition: boolean, limit: number): string {
  const line = lineExpression(plan);
  const order = orderColumns(plan);
  const keys = plan.primaryKey.map((c, i) => `${col(c)}::text AS k${i}`).join(', ');
  const keyset = afterPosition
    ? ` AND (${order.map(col).join(', ')}) > (${order.map((c, i) => `$${i + 2}::${c.type}`).join(', ')})`
    : '';
  return (
    `SELECT ${line.select} AS line, t.xmin::text AS x, ${col(plan.timestampColumn)}::text AS ts, ` +
    `${dayExpression(plan)} AS day, ${timeOfDayExpression(plan)} AS tod, ${keys}, ${jsonFlagsExpression(plan)} AS jn ` +
    `FROM ${quoteQualified(plan.schema, plan.table)} AS t${line.join} ` +
    `WHERE ${col(plan.timestampColumn)} < $1::${plan.timestampColumn.type}${keyset} ` +
    `ORDER BY ${order.map(col).join(', ')} LIMIT ${Math.trunc(limit)}`
  );
}

/**
 * The guarded delete (I2): only the exact versions that were archived (same xmin), still past the
 * retention cutoff, and not locked by anyone else (SKIP LOCKED: never wait on the application).
 * $1 = xmins, $2.. = key columns (text arrays, same order), last = cutoff. Returns the deleted keys.
 * tableoid is joined with ctid because ctid is only unique within one partition.
 */
export function buildGuardedDeleteSql(plan: TablePlan): string {
  const n = plan.primaryKey.length;
  const arrays = ['$1::text[]', ...plan.primaryKey.map((_, i) => `$${i + 2}::text[]`)].join(', ');
  const names = ['x', ...plan.primaryKey.map((_, i) => `k${i}`)].join(', ');
  const match = plan.primaryKey.map((c, i) => `${col(c)} = b.k${i}::${c.type}`).join(' AND ');
  const table = quoteQualified(plan.schema, plan.table);
  return (
    `WITH b AS (SELECT * FROM unnest(${arrays}) AS b(${names})), ` +
    `c AS (SELECT t.tableoid AS toid, t.ctid AS tid FROM ${table} AS t JOIN b ON ${match} AND t.xmin = b.x::xid ` +
    `WHERE ${col(plan.timestampColumn)} < $${n + 2}::${plan.timestampColumn.type} FOR UPDATE OF t SKIP LOCKED) ` +
    `DELETE FROM ${table} AS t USING c WHERE t.tableoid = c.toid AND t.ctid = c.tid ` +
    `RETURNING ${plan.primaryKey.map((c, i) => `${col(c)}::text AS k${i}`).join(', ')}`
  );
}

/** Which of the given keys are still in the table. $1.. = key columns (text arrays). */
export function buildPresentKeysSql(plan: TablePlan): string {
  const arrays = plan.primaryKey.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const names = plan.primaryKey.map((_, i) => `k${i}`).join(', ');
  const match = plan.primaryKey.map((c, i) => `${col(c)} = b.k${i}::${c.type}`).join(' AND ');
  return (
    `SELECT ${plan.primaryKey.map((c, i) => `${col(c)}::text AS k${i}`).join(', ')} ` +
    `FROM ${quoteQualified(plan.schema, plan.table)} AS t JOIN unnest(${arrays}) AS b(${names}) ON ${match}`
  );
}
