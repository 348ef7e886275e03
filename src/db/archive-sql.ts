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
 * JSON text of the row. row_to_json is exact for every type but these: arrays whose lower bound is
 * not 1 (the JSON array drops `[0:2]=`) and jsonb arrays holding a JSON null element are written
 * as their PostgreSQL text literal, which json_populate_record parses back into the identical
 * array; json values, see jsonNeedsText.
 */
function lineExpression(plan: TablePlan): { select: string; join: string } {
  if (!plan.columns.some(needsProjection)) return { select: 'row_to_json(t)::text', join: '' };
  const projection = plan.columns
    .map((c) => {
      if (c.isArray) {
        // jsonb[] with a JSON null element: the JSON array would show it as `null`, like a NULL
        // element; the text literal keeps them apart ({null,NULL}).
        const jsonNullElement = c.jsonbElements === true ? ` OR EXISTS (SELECT 1 FROM unnest(${col(c)}) AS e WHERE jsonb_typeof(e) = 'null')` : '';
        return `CASE WHEN ${col(c)} IS NOT NULL AND (array_dims(${col(c)}) !~ '^(\\[1:[0-9]+\\])+$'${jsonNullElement}) THEN to_json(${col(c)}::text) ELSE to_json(${col(c)}) END AS ${quoteIdent(c.name)}`;
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
  // NULL (not '{}') for a row without flags, so the aggregate's FILTER keeps only flagged rows.
  return cases.length === 0 ? 'NULL::text' : `NULLIF(array_remove(ARRAY[${cases.join(', ')}], NULL)::text, '{}')`;
}

/**
 * ` AND NOT EXISTS (…)` keeping held rows out, or '' without holds. The filters see only the
 * table's own columns (`(SELECT t.*) AS h` is the innermost scope), so a column name cannot
 * resolve to one of the pipeline's own helper relations. `IS NOT FALSE`: a filter that is NULL
 * for a row holds that row too (fail closed).
 */
export function holdExclusionSql(plan: Pick<TablePlan, 'holdFilters'>): string {
  const filters = plan.holdFilters ?? [];
  if (filters.length === 0) return '';
  return ` AND NOT EXISTS (SELECT 1 FROM (SELECT t.*) AS h WHERE (${filters.map((f) => `(${f})`).join(' OR ')}) IS NOT FALSE)`;
}

const orderColumns = (plan: TablePlan): ColumnInfo[] => [plan.timestampColumn, ...plan.primaryKey];

export function buildCutoffSql(plan: TablePlan): string {
  return `SELECT (now() - make_interval(days => $1::int))::${plan.timestampColumn.type}::text AS cutoff`;
}

/** $1 = cutoff. */
export function buildCountSql(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  return `SELECT count(*)::text AS n, min(${ts})::text AS min_ts, max(${ts})::text AS max_ts FROM ${quoteQualified(plan.schema, plan.table)} AS t WHERE ${ts} < $1::${plan.timestampColumn.type}${holdExclusionSql(plan)}`;
}

/** Rows past the cutoff per UTC day, as the archiver groups them into batches (a batch never spans two days). $1 = cutoff. */
export function buildDailyCountSql(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  return `SELECT ${dayExpression(plan)} AS day, count(*)::text AS n FROM ${quoteQualified(plan.schema, plan.table)} AS t WHERE ${ts} < $1::${plan.timestampColumn.type} GROUP BY 1`;
}

/** One UTC day of a page, aggregated by the server (see buildSelectPageSql). */
export interface DayGroupRow {
  day: string;
  n: string;
  lines: string;
  xmins: string;
  keys: string;
  first_ts: string;
  last_ts: string;
  first_tod: string;
  min_key: string;
  max_key: string;
  first_ord: string;
  flags: string | null;
}

/** `json_build_array(key columns as text)`: a row's key as JSON, the form keys travel in. */
function keyJson(plan: TablePlan, alias = 't'): string {
  return `json_build_array(${plan.primaryKey.map((c) => `${alias}.${quoteIdent(c.name)}::text`).join(', ')})`;
}

/**
 * One page in (timestamp, primary key) order, keyset-paginated from the last position (never a
 * re-scan of the range: dead tuples of earlier batches would be walked again), returned as one
 * row per UTC day with the JSON lines already joined and the xmins and keys as JSON arrays: the
 * client handles a few large values per batch instead of several small ones per row.
 * $1 = cutoff, then (when `bounds.after`) the timestamp and key values of the last row read,
 * then (when `bounds.until`) those of the last row to include: a pass over rows behind a watermark.
 */
export function buildSelectPageSql(plan: TablePlan, bounds: { after: boolean; until: boolean }, limit: number): string {
  const line = lineExpression(plan);
  const order = orderColumns(plan);
  const tuple = order.map(col).join(', ');
  const params = (first: number): string => order.map((c, i) => `$${first + i}::${c.type}`).join(', ');
  const keyset =
    (bounds.after ? ` AND (${tuple}) > (${params(2)})` : '') +
    (bounds.until ? ` AND (${tuple}) <= (${params(bounds.after ? 2 + order.length : 2)})` : '');
  const single = plan.primaryKey.length === 1 ? plan.primaryKey[0]! : undefined;
  const pkOrder = (dir: string): string => plan.primaryKey.map((c) => `p.${quoteIdent(`pk_${c.name}`)} ${dir}`).join(', ');
  const minMaxKey =
    single !== undefined
      ? `json_build_array(min(p.${quoteIdent(`pk_${single.name}`)})::text)::text AS min_key, json_build_array(max(p.${quoteIdent(`pk_${single.name}`)})::text)::text AS max_key`
      : `((array_agg(p.k ORDER BY ${pkOrder('ASC')}))[1])::text AS min_key, ((array_agg(p.k ORDER BY ${pkOrder('DESC')}))[1])::text AS max_key`;
  const page =
    `SELECT ${line.select} AS line, t.xmin::text AS x, ${col(plan.timestampColumn)} AS ts, ` +
    `${dayExpression(plan)} AS day, ${timeOfDayExpression(plan)} AS tod, ${keyJson(plan)} AS k, ${jsonFlagsExpression(plan)} AS jn, ` +
    `${plan.primaryKey.map((c) => `${col(c)} AS ${quoteIdent(`pk_${c.name}`)}`).join(', ')}, ` +
    `row_number() OVER (ORDER BY ${order.map(col).join(', ')}) AS ord ` +
    `FROM ${quoteQualified(plan.schema, plan.table)} AS t${line.join} ` +
    `WHERE ${col(plan.timestampColumn)} < $1::${plan.timestampColumn.type}${keyset}${holdExclusionSql(plan)} ` +
    `ORDER BY ${order.map(col).join(', ')} LIMIT ${Math.trunc(limit)}`;
  return (
    `SELECT p.day, count(*)::text AS n, string_agg(p.line, E'\\n' ORDER BY p.ord) AS lines, ` +
    `json_agg(p.x ORDER BY p.ord)::text AS xmins, json_agg(p.k ORDER BY p.ord)::text AS keys, ` +
    `min(p.ts)::text AS first_ts, max(p.ts)::text AS last_ts, min(p.tod) AS first_tod, ${minMaxKey}, min(p.ord)::text AS first_ord, ` +
    `(json_agg(json_build_array(p.ord, p.jn) ORDER BY p.ord) FILTER (WHERE p.jn IS NOT NULL))::text AS flags ` +
    `FROM (${page}) AS p GROUP BY p.day ORDER BY min(p.ord)`
  );
}

/** Rows of a batch as the SQL side receives them: $n = JSON array of xmins, $n+1 = JSON array of keys (same order). */
function batchRowsCte(xminsParam: number | null, keysParam: number): string {
  const keys = `json_array_elements($${keysParam}::json) WITH ORDINALITY AS kk(k, i)`;
  if (xminsParam === null) return `b AS (SELECT kk.k FROM ${keys})`;
  return `b AS (SELECT kk.k, xx.x FROM ${keys} JOIN json_array_elements_text($${xminsParam}::json) WITH ORDINALITY AS xx(x, i) ON xx.i = kk.i)`;
}

const keyMatch = (plan: TablePlan): string => plan.primaryKey.map((c, i) => `${col(c)} = (b.k ->> ${i})::${c.type}`).join(' AND ');

/**
 * The guarded delete (I2): only the exact versions that were archived (same xmin), still past the
 * retention cutoff, and not locked by anyone else (SKIP LOCKED: never wait on the application).
 * $1 = xmins, $2 = keys (JSON arrays, same order), $3 = cutoff. Returns how many rows were deleted
 * and their keys. tableoid is joined with ctid because ctid is only unique within one partition.
 */
export function buildGuardedDeleteSql(plan: TablePlan): string {
  const table = quoteQualified(plan.schema, plan.table);
  return (
    `WITH ${batchRowsCte(1, 2)}, ` +
    `c AS (SELECT t.tableoid AS toid, t.ctid AS tid FROM ${table} AS t JOIN b ON ${keyMatch(plan)} AND t.xmin = b.x::xid ` +
    `WHERE ${col(plan.timestampColumn)} < $3::${plan.timestampColumn.type}${holdExclusionSql(plan)} FOR UPDATE OF t SKIP LOCKED), ` +
    `d AS (DELETE FROM ${table} AS t USING c WHERE t.tableoid = c.toid AND t.ctid = c.tid RETURNING ${keyJson(plan)} AS k) ` +
    `SELECT count(*)::text AS n, COALESCE(json_agg(d.k), '[]')::text AS keys FROM d`
  );
}

/**
 * Which of the given keys are still in the table, and in which version (xmin). FOR KEY SHARE
 * waits for a transaction still deleting such a row (a COMMIT whose outcome the archiver did not
 * see, e.g. waiting on a synchronous standby): a row is only "present" once that is decided.
 * $1 = keys (JSON array of key arrays). Returns [[key, xmin], ...].
 * `lock: false` is the read-only form for `validate --check-database`, which decides nothing and
 * must never wait on (or block) the application.
 */
/** Keys ($1, JSON) of rows a record-level legal hold now matches: `[[key…], …]`. */
export function buildHeldKeysSql(plan: TablePlan): string {
  return (
    `WITH ${batchRowsCte(null, 1)} ` +
    `SELECT COALESCE(json_agg(s.k), '[]')::text AS keys FROM ` +
    `(SELECT ${keyJson(plan)} AS k FROM ${quoteQualified(plan.schema, plan.table)} AS t JOIN b ON ${keyMatch(plan)} WHERE NOT (true${holdExclusionSql(plan)})) AS s`
  );
}

export function buildPresentRowsSql(plan: TablePlan, options: { lock: boolean } = { lock: true }): string {
  return (
    `WITH ${batchRowsCte(null, 1)} ` +
    `SELECT COALESCE(json_agg(json_build_array(s.k, s.x)), '[]')::text AS rows FROM ` +
    `(SELECT ${keyJson(plan)} AS k, t.xmin::text AS x FROM ${quoteQualified(plan.schema, plan.table)} AS t JOIN b ON ${keyMatch(plan)}${options.lock ? ' FOR KEY SHARE OF t' : ''}) AS s`
  );
}
