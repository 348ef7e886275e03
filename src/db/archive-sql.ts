/**
 * SQL text for the archive pipeline, built from a TablePlan. Pure: identifiers are quoted here,
 * values are always bound parameters (I6). One builder per statement; `archive-queries.ts` runs them.
 */
import type { ColumnInfo, HoldFilter, TablePlan } from '../core/table-plan.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './quote-ident.js';

const col = (c: ColumnInfo): string => `t.${quoteIdent(c.name)}`;

/**
 * The table as every statement on its archived rows names it. ONLY for an ordinary table: the
 * refusal of INHERITS children runs when the plan is loaded, and a child attached after that (ALTER
 * TABLE … INHERIT) would otherwise be read with the parent's columns and deleted whole, its own
 * columns archived nowhere (found by probing). Not for a partitioned table, whose rows are all in
 * its partitions. Anything but 'p' gets ONLY: reading too little never loses a row.
 */
export function tableSource(plan: Pick<TablePlan, 'schema' | 'table' | 'relkind'>): string {
  return `${plan.relkind === 'p' ? '' : 'ONLY '}${quoteQualified(plan.schema, plan.table)}`;
}

function firstRepresentable(plan: TablePlan): string {
  return plan.timestampKind === 'timestamptz' ? "'0001-01-01 00:00:00+00'" : "'0001-01-01'";
}

/** UTC day of a row, or 0000-00-00 for -infinity/infinity and BC values, which have no YYYY-MM-DD of their own. */
function dayExpression(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  return `CASE WHEN isfinite(${ts}) AND ${ts} >= ${firstRepresentable(plan)} THEN to_char(${ts}, 'YYYY-MM-DD') ELSE '0000-00-00' END`;
}

function timeOfDayExpression(plan: TablePlan, ts = col(plan.timestampColumn)): string {
  if (plan.timestampKind === 'date') return quoteLiteral('000000000000');
  return `CASE WHEN isfinite(${ts}) THEN to_char(${ts}, 'HH24MISSUS') ELSE '000000000000' END`;
}

/**
 * A json (not jsonb) value is kept byte for byte, and json_populate_record would not give some
 * back: such a value is written as a JSON string holding its exact text, and flagged in the
 * metadata (docs/format.md). Those are values with
 * - raw newlines (in whitespace), which would split the JSON line;
 * - whitespace before or after the value, which it drops (` 1 ` comes back `1`; this covers a
 *   JSON `null` spelled with extra whitespace);
 * - a `\u0000` escape anywhere: it de-escapes every string of the line it parses, and text
 *   cannot hold U+0000, so the load fails ("unsupported Unicode escape sequence"). Decided on the
 *   text, so `\\u0000` (an escaped backslash) is written as text too, which is harmless;
 * - a top-level string with any escape, which it de-escapes and escapes again (`"\u0041"` comes
 *   back `"A"`, `"\/"` `"/"`).
 * Every test avoids counting characters: strpos of needles rarely there, the first character, and
 * the last byte of the value in the server's own encoding (never the client's, which might not
 * hold every character). A first form — strpos of a backslash, found in most json, and right()
 * for the last character — made the page query about three times slower on 2 kB values.
 */
function jsonNeedsText(c: ColumnInfo): string {
  const t = `${col(c)}::text`;
  return (
    `(strpos(${t}, E'\\n') > 0 OR strpos(${t}, E'\\r') > 0 OR left(${t}, 1) IN (' ', E'\\t') ` +
    `OR get_byte(convert_to(${t}, current_setting('server_encoding')), octet_length(${t}) - 1) IN (32, 9) OR strpos(${t}, '\\u0000') > 0 ` +
    `OR (left(${t}, 1) = '"' AND strpos(${t}, '\\') > 0))`
  );
}

const needsProjection = (c: ColumnInfo): boolean => c.isArray || c.jsonKind === 'json';

/**
 * JSON text of the row. row_to_json is exact for every type but these: arrays whose lower bound is
 * not 1 (the JSON array drops `[0:2]=`) and jsonb arrays holding a JSON null element are written
 * as their PostgreSQL text literal, which json_populate_record parses back into the identical
 * array; json values, see jsonNeedsText.
 */
function lineExpression(plan: TablePlan): { select: string; join: string } {
  // `t.*`, not `t`: a bare name is a column before it is a row, so with a column named "t" (or
  // "p" below) row_to_json would be handed that column, and the table could not be archived.
  if (!plan.columns.some(needsProjection)) return { select: 'row_to_json(t.*)::text', join: '' };
  const projection = plan.columns
    .map((c) => {
      if (c.isArray) {
        // jsonb[] with a JSON null element: the JSON array would show it as `null`, like a NULL
        // element; the text literal keeps them apart ({null,NULL}).
        const jsonNullElement = c.jsonbElements === true ? ` OR EXISTS (SELECT 1 FROM unnest(${col(c)}) AS e WHERE jsonb_typeof(e) = 'null')` : '';
        // The usual case first, decided without the regular expression (about 1 µs per row, a
        // tenth of the page query's CPU on the benchmark table): NULL, empty, or one dimension
        // starting at 1. CASE evaluates its branches in order, so the regex runs only for the rest.
        const usual =
          c.jsonbElements === true ? '' : `WHEN ${col(c)} IS NULL OR array_ndims(${col(c)}) IS NULL OR (array_ndims(${col(c)}) = 1 AND array_lower(${col(c)}, 1) = 1) THEN to_json(${col(c)}) `;
        return `CASE ${usual}WHEN ${col(c)} IS NOT NULL AND (array_dims(${col(c)}) !~ '^(\\[1:[0-9]+\\])+$'${jsonNullElement}) THEN to_json(${col(c)}::text) ELSE to_json(${col(c)}) END AS ${quoteIdent(c.name)}`;
      }
      if (c.jsonKind === 'json') return `CASE WHEN ${jsonNeedsText(c)} THEN to_json(${col(c)}::text) ELSE ${col(c)} END AS ${quoteIdent(c.name)}`;
      return col(c);
    })
    .join(', ');
  return {
    select: 'l.line',
    join: ` CROSS JOIN LATERAL (SELECT row_to_json(p.*)::text AS line FROM (SELECT ${projection}) AS p) AS l`,
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
  return ` AND NOT ${heldRowSql(filters)}`;
}

/** `EXISTS (…)`: true for a row of `t` that one of the filters holds (the negation of holdExclusionSql). */
export function heldRowSql(filters: readonly HoldFilter[]): string {
  return `EXISTS (SELECT 1 FROM (SELECT t.*) AS h WHERE (${filters.map((f) => `(${holdFilterSql(f)})`).join(' OR ')}) IS NOT FALSE)`;
}

/**
 * One hold's condition. A hold on a partition keeps the rows stored in it or in any partition
 * below it: `t.tableoid` (the qualified name reaches past `h`, whose columns are the table's) is
 * matched against the partitions' trees as the catalog has them when the statement runs, so a
 * partition attached below a held one mid-run is held too.
 */
function holdFilterSql(filter: HoldFilter): string {
  const parts: string[] = [];
  if (filter.partitionOids !== undefined) {
    for (const oid of filter.partitionOids) if (!/^[0-9]+$/.test(oid)) throw new Error(`not an oid: ${JSON.stringify(oid)}`);
    const oids = quoteLiteral(`{${filter.partitionOids.join(',')}}`);
    parts.push(`t.tableoid IN (SELECT p.relid FROM pg_catalog.unnest(${oids}::pg_catalog.oid[]) AS r(oid), pg_catalog.pg_partition_tree(r.oid) AS p)`);
  }
  if (filter.where !== undefined) parts.push(`(${filter.where})`);
  // Neither: a hold on every row (never built so; a table-level hold skips the table instead).
  return parts.length === 0 ? 'true' : parts.join(' AND ');
}

const orderColumns = (plan: TablePlan): ColumnInfo[] => [plan.timestampColumn, ...plan.primaryKey];

/**
 * A stored position's values cast to the columns' current types ($1 = timestamp, then the key
 * values): the same casts the page query's keyset bounds make, so a position that passes this
 * check cannot fail them.
 */
export function buildPositionCastSql(plan: TablePlan): string {
  return `SELECT ${orderColumns(plan).map((c, i) => `$${i + 1}::${c.type} IS NULL`).join(', ')}`;
}

export function buildCutoffSql(plan: TablePlan): string {
  return `SELECT (now() - make_interval(days => $1::int))::${plan.timestampColumn.type}::text AS cutoff`;
}

/** $1 = cutoff. */
export function buildCountSql(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  return `SELECT count(*)::text AS n, min(${ts})::text AS min_ts, max(${ts})::text AS max_ts FROM ${tableSource(plan)} AS t WHERE ${ts} < $1::${plan.timestampColumn.type}${holdExclusionSql(plan)}`;
}

/**
 * What a run would archive, in one scan: rows past the cutoff (outside legal holds), their time
 * range, and the batches they make — per UTC day, rows ÷ batch_size rounded up, since a batch never
 * spans two days and a day cut by a page is read again whole (read-batches.ts). $1 = cutoff, $2 = batch_size.
 */
export function buildArchivableSummarySql(plan: TablePlan): string {
  const ts = col(plan.timestampColumn);
  const perDay =
    `SELECT ${dayExpression(plan)} AS day, count(*) AS n, min(${ts}) AS min_ts, max(${ts}) AS max_ts ` +
    `FROM ${tableSource(plan)} AS t WHERE ${ts} < $1::${plan.timestampColumn.type}${holdExclusionSql(plan)} GROUP BY 1`;
  return (
    `SELECT COALESCE(sum(d.n), 0)::text AS n, min(d.min_ts)::text AS min_ts, max(d.max_ts)::text AS max_ts, ` +
    `COALESCE(sum(ceil(d.n::numeric / $2::int)), 0)::text AS batches FROM (${perDay}) AS d`
  );
}

/** `json_build_array(key columns as text)`: a row's key as JSON, the form keys travel in. */
function keyJson(plan: TablePlan, alias = 't'): string {
  return `json_build_array(${plan.primaryKey.map((c) => `${alias}.${quoteIdent(c.name)}::text`).join(', ')})`;
}

export interface PageBounds {
  /** Start strictly after this (timestamp, key) position: parameters 2… */
  after: boolean;
  /** Stop at this position, inclusive (a pass over rows behind a watermark): the parameters after those of `after`. */
  until: boolean;
}

/**
 * FROM … WHERE … ORDER BY … LIMIT of one page: rows past the cutoff ($1) in (timestamp, primary
 * key) order, keyset-paginated from the last position (never a re-scan of the range: dead tuples
 * of earlier batches would be walked again). `param(n)` renders parameter n.
 */
function pageScan(plan: TablePlan, bounds: PageBounds, limit: number | null, param: (n: number) => string, join = '', prune = ''): string {
  const order = orderColumns(plan);
  const tuple = order.map(col).join(', ');
  const params = (first: number): string => order.map((c, i) => `${param(first + i)}::${c.type}`).join(', ');
  const keyset =
    (bounds.after ? ` AND (${tuple}) > (${params(2)})` : '') +
    (bounds.until ? ` AND (${tuple}) <= (${params(bounds.after ? 2 + order.length : 2)})` : '');
  return (
    `FROM ${tableSource(plan)} AS t${join} ` +
    `WHERE ${col(plan.timestampColumn)} < ${param(1)}::${plan.timestampColumn.type}${keyset}${prune}${holdExclusionSql(plan)} ` +
    `ORDER BY ${tuple}${limit === null ? '' : ` LIMIT ${Math.trunc(limit)}`}`
  );
}

/**
 * The rows of one page, one output row each, in order: the JSON line, xmin, UTC day, json flags
 * (NULL when none), then each key column as text. All text, so the binary COPY form hands back
 * each value's UTF-8 bytes. Grouping by day happens in the client: aggregating here (ordered
 * string_agg/json_agg per day) cost the server more than rendering the JSON (docs/benchmarks.md).
 * Parameters: $1 = cutoff, then (when `bounds.after`) the timestamp and key values of the last row
 * read, then (when `bounds.until`) those of the last row to include.
 */
export function buildPageRowsSql(plan: TablePlan, bounds: PageBounds, limit: number, param: (n: number) => string = (n) => `$${n}`, range: PruningRange = {}): string {
  const line = lineExpression(plan);
  return (
    `SELECT ${line.select}, t.xmin::text, ${dayExpression(plan)}, ${jsonFlagsExpression(plan)}, ` +
    `${plan.primaryKey.map((c) => `${col(c)}::text`).join(', ')} ${pageScan(plan, bounds, limit, param, line.join, pruningPredicates(plan, range))}`
  );
}

/** Timestamps of a page's range (the cutoff, and the timestamps of its after / until positions), for pruningPredicates. */
export interface PruningRange {
  cutoff?: string;
  after?: string;
  until?: string;
}

/**
 * A timestamp as PostgreSQL writes it ('2026-03-01 10:00:00.5+00', '-infinity', '0044-03-15 BC'):
 * no quote or backslash can be in it, so it is safe inside a literal.
 */
const TIMESTAMP_TEXT = /^[0-9A-Za-z :.+-]{1,64}$/;

/**
 * The page's timestamp range again, as literals: redundant with the scan's own conditions, but
 * visible to the planner. The page is read by COPY, which takes no bind parameters, so its values
 * are settings (current_setting), which the planner cannot prune partitions by: every page read of
 * a partitioned table locked every partition and each of its indexes, future and emptied ones too —
 * thousands of lock entries with a few hundred daily partitions and batches in flight, until the
 * server's shared lock table ran out ("out of shared memory") for the archiver and for the
 * application's sessions alike (found by probing). A value not in PostgreSQL's own form (it never
 * is: each was read from the database or cast by it) is left out, costing the pruning only.
 */
function pruningPredicates(plan: TablePlan, range: PruningRange): string {
  const ts = col(plan.timestampColumn);
  const bound = (op: string, value: string | undefined): string =>
    value !== undefined && TIMESTAMP_TEXT.test(value) ? ` AND ${ts} ${op} ${quoteLiteral(value)}::${plan.timestampColumn.type}` : '';
  return bound('<', range.cutoff) + bound('>=', range.after) + bound('<=', range.until);
}

/**
 * The widest JSON line (in bytes) among the first `sample` rows a page with these parameters would
 * read, rendered exactly as the page renders them, so the first page can be sized to
 * max_batch_bytes before any row is held. The same keyset scan as the page (an index range scan
 * with a small LIMIT): it reads only those rows, whatever the table's size. The catalog's
 * pg_total_relation_size / reltuples costs nothing but misleads: it counts indexes and dead
 * tuples, TOAST compression hides wide text, and bytea doubles when written as JSON hex.
 */
export function buildLineBytesSampleSql(plan: TablePlan, bounds: PageBounds, sample: number, param: (n: number) => string = (n) => `$${n}`, range: PruningRange = {}): string {
  const line = lineExpression(plan);
  return `SELECT max(octet_length(s.line))::text AS bytes FROM (SELECT ${line.select} AS line ${pageScan(plan, bounds, sample, param, line.join, pruningPredicates(plan, range))}) AS s`;
}

/** Types whose cast to text is binary (or a trim): octet_length of it is the value's size, read from its header without detoasting. */
const TEXT_LIKE = /^(text|character varying(\(\d+\))?|character(\(\d+\))?|json|xml|name)$/;

/**
 * A row's size without rendering its JSON (which is what fails for a row over PostgreSQL's 1 GB
 * limit): per column, the uncompressed bytes of text-like values, twice those of bytea (its hex
 * form), else the stored size (for jsonb and arrays possibly compressed, so a floor).
 */
function rowBytesEstimate(plan: TablePlan): string {
  return plan.columns
    .map((c) => {
      if (c.type === 'bytea') return `COALESCE(2 * octet_length(${col(c)})::bigint, 0)`;
      if (TEXT_LIKE.test(c.type)) return `COALESCE(octet_length(${col(c)}::text)::bigint, 0)`;
      return `COALESCE(pg_column_size(${col(c)})::bigint, 0)`;
    })
    .join(' + ');
}

/**
 * The `top` widest rows of a page (same parameters and LIMIT as buildPageRowsSql; `limit` null:
 * the whole range the page starts), by rowBytesEstimate, widest first: key (JSON array of text)
 * and estimated bytes. Renders no JSON, so it answers for the page whose rendering failed.
 */
export function buildWidestPageRowsSql(plan: TablePlan, bounds: PageBounds, limit: number | null, top: number, param: (n: number) => string = (n) => `$${n}`): string {
  return (
    `SELECT w.k AS key, w.bytes::text AS bytes FROM (SELECT ${keyJson(plan)}::text AS k, (${rowBytesEstimate(plan)}) AS bytes ` +
    `${pageScan(plan, bounds, limit, param)}) AS w ORDER BY w.bytes DESC LIMIT ${Math.trunc(top)}`
  );
}

/** The key (JSON array of text) of the row at 0-based `index` of a page: the page's scan (same parameters) with LIMIT 1 OFFSET index. */
export function buildPageKeyAtSql(plan: TablePlan, bounds: PageBounds, index: number, param: (n: number) => string = (n) => `$${n}`): string {
  return `SELECT ${keyJson(plan)}::text AS key ${pageScan(plan, bounds, 1, param)} OFFSET ${Math.trunc(index)}`;
}

/** Key types (format_type) that pg_catalog's min()/max() aggregates take. */
const HAS_MIN_MAX = /^(smallint|integer|bigint|oid|real|double precision|numeric(\(\d+(,\d+)?\))?|text|character varying(\(\d+\))?|character(\(\d+\))?|date|timestamp(\(\d\))? with(out)? time zone)$/;

/** Output columns of buildPageBoundsSql, in order. */
export const PAGE_BOUNDS_COLUMNS = ['day', 'n', 'first_ts', 'last_ts', 'first_tod', 'min_key', 'max_key'] as const;
export type PageBoundsColumn = (typeof PAGE_BOUNDS_COLUMNS)[number];

/**
 * Per UTC day of the same page (same parameters; run in the same snapshot): row count, first and
 * last timestamp and time of day, and the smallest and largest key in PostgreSQL's ordering of
 * the key type, which the client cannot reproduce for every type. Reads no row's JSON: cheap.
 */
export function buildPageBoundsSql(plan: TablePlan, bounds: PageBounds, limit: number, param: (n: number) => string = (n) => `$${n}`, range: PruningRange = {}): string {
  // Numbered, not named after the columns: "pk_" + a 60-byte column name passes PostgreSQL's
  // 63-byte limit and two such aliases could be truncated to the same name (found in review).
  const pkOrder = (dir: string): string => plan.primaryKey.map((_, i) => `p.pk${i} ${dir}`).join(', ');
  // min()/max() only for key types known to have them: PostgreSQL has none for uuid, boolean,
  // bytea, macaddr or bit, and a table keyed by a uuid could not be archived at all (found in
  // review). Other keys take the first and last of the key's own ordering, as in the page's ORDER
  // BY: about twice the CPU of this query on the benchmark table, so not for every key.
  const single = plan.primaryKey.length === 1 && HAS_MIN_MAX.test(plan.primaryKey[0]!.type);
  const minMaxKey = single
    ? 'json_build_array(min(p.pk0)::text)::text, json_build_array(max(p.pk0)::text)::text'
    : `((array_agg(p.k ORDER BY ${pkOrder('ASC')}))[1])::text, ((array_agg(p.k ORDER BY ${pkOrder('DESC')}))[1])::text`;
  // The first time of day: within one UTC day it grows with the timestamp, so it is that of the
  // day's first timestamp, computed once per day. Only the rows of the 0000-00-00 bucket (±infinity,
  // BC values: several days in one) take it row by row, as the smallest one.
  const ts = col(plan.timestampColumn);
  const oddTod = `CASE WHEN isfinite(${ts}) AND ${ts} >= ${firstRepresentable(plan)} THEN NULL ELSE ${timeOfDayExpression(plan)} END`;
  const page =
    `SELECT ${ts} AS ts, ${dayExpression(plan)} AS day, ${oddTod} AS odd_tod, ${single ? '' : `${keyJson(plan)} AS k, `}` +
    `${plan.primaryKey.map((c, i) => `${col(c)} AS pk${i}`).join(', ')} ${pageScan(plan, bounds, limit, param, '', pruningPredicates(plan, range))}`;
  const firstTod = `COALESCE(min(p.odd_tod), ${timeOfDayExpression(plan, 'min(p.ts)')})`;
  return `SELECT p.day, count(*)::text, min(p.ts)::text, max(p.ts)::text, ${firstTod}, ${minMaxKey} FROM (${page}) AS p GROUP BY p.day ORDER BY min(p.ts)`;
}

/** Keys of a batch as the SQL side receives them: $n = JSON array of key arrays. */
function batchKeysCte(keysParam: number): string {
  return `b AS (SELECT kk.k FROM json_array_elements($${keysParam}::json) AS kk(k))`;
}

const keyMatch = (plan: TablePlan): string => plan.primaryKey.map((c, i) => `${col(c)} = (b.k ->> ${i})::${c.type}`).join(' AND ');

/**
 * The guarded delete (I2): only the exact versions that were archived (same xmin), still past the
 * retention cutoff. $1 = xmins (xid[]), $2… = one text[] per key column (same order), then the
 * cutoff, then the batch's first and last timestamp. Returns how many rows were deleted and their keys. Two forms:
 * - `skipLocked`: rows are locked first with FOR UPDATE SKIP LOCKED, so a row anyone else holds
 *   locked is left out at once and never waited on; tableoid is joined with ctid because ctid is
 *   only unique within one partition. Locking and then deleting writes every row twice.
 * - otherwise a plain DELETE, about three times cheaper (docs/benchmarks.md), which would wait
 *   on a locked row: the caller bounds that wait with a short lock_timeout and falls back to the
 *   skipLocked form when it expires (archive-batch.ts).
 */
export function buildGuardedDeleteSql(plan: TablePlan, options: { skipLocked: boolean }): string {
  const table = tableSource(plan);
  const keyCount = plan.primaryKey.length;
  // Keys travel as text[] and are cast per element: `$n::<key type>[]` would not do for a key
  // column that is itself an array (integer[][] is integer[]; found in review).
  const arrays = [`$1::xid[]`, ...plan.primaryKey.map((_, i) => `$${i + 2}::text[]`)].join(', ');
  const names = ['x', ...plan.primaryKey.map((_, i) => `k${i}`)].join(', ');
  const batch = `b AS (SELECT * FROM unnest(${arrays}) AS b(${names}))`;
  const match = `${plan.primaryKey.map((c, i) => `${col(c)} = b.k${i}::${c.type}`).join(' AND ')} AND t.xmin = b.x`;
  // The batch's first and last timestamp: an archived version (same xmin) has its timestamp in
  // that range, so this leaves out no row the guard would delete; it lets the planner prune a
  // partitioned table to the partitions of the batch's day instead of locking all of them.
  const ts = col(plan.timestampColumn);
  const type = plan.timestampColumn.type;
  const range = `${ts} < $${keyCount + 2}::${type} AND ${ts} BETWEEN $${keyCount + 3}::${type} AND $${keyCount + 4}::${type}`;
  const filter = `${range}${holdExclusionSql(plan)}`;
  const result = `SELECT count(*)::text AS n, COALESCE(json_agg(d.k), '[]')::text AS keys FROM d`;
  if (!options.skipLocked) {
    return `WITH ${batch}, d AS (DELETE FROM ${table} AS t USING b WHERE ${match} AND ${filter} RETURNING ${keyJson(plan)} AS k) ${result}`;
  }
  return (
    `WITH ${batch}, ` +
    `c AS (SELECT t.tableoid AS toid, t.ctid AS tid FROM ${table} AS t JOIN b ON ${match} WHERE ${filter} FOR UPDATE OF t SKIP LOCKED), ` +
    // The range again, for the DELETE's own planning: the rows it finds by ctid are the locked ones, in it.
    `d AS (DELETE FROM ${table} AS t USING c WHERE t.tableoid = c.toid AND t.ctid = c.tid AND ${range} RETURNING ${keyJson(plan)} AS k) ${result}`
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
    `WITH ${batchKeysCte(1)} ` +
    `SELECT COALESCE(json_agg(s.k), '[]')::text AS keys FROM ` +
    `(SELECT ${keyJson(plan)} AS k FROM ${tableSource(plan)} AS t JOIN b ON ${keyMatch(plan)} WHERE NOT (true${holdExclusionSql(plan)})) AS s`
  );
}

export function buildPresentRowsSql(plan: TablePlan, options: { lock: boolean } = { lock: true }): string {
  return (
    `WITH ${batchKeysCte(1)} ` +
    `SELECT COALESCE(json_agg(json_build_array(s.k, s.x)), '[]')::text AS rows FROM ` +
    `(SELECT ${keyJson(plan)} AS k, t.xmin::text AS x FROM ${tableSource(plan)} AS t JOIN b ON ${keyMatch(plan)}${options.lock ? ' FOR KEY SHARE OF t' : ''}) AS s`
  );
}

/**
 * For archived lines ($1: a JSON array of them): how many of their rows are in the table by key,
 * and how many of those are still exactly the archived version (rendered as the page renders
 * them, the same text). Each line's key is read by json_populate_record into the table's own row
 * type, as restore reads lines, so every key type a line can hold (arrays, jsonb, timestamps) is
 * compared as its value. Locks them (FOR KEY SHARE), which waits under lock_timeout for a
 * transaction still deleting them.
 */
export function buildArchivedLinesPresenceSql(plan: TablePlan): string {
  const line = lineExpression(plan);
  const keys = plan.primaryKey.map((c) => `r.${quoteIdent(c.name)}`).join(', ');
  const match = plan.primaryKey.map((c) => `${col(c)} = b.${quoteIdent(c.name)}`).join(' AND ');
  return (
    `WITH b AS (SELECT l.archived, ${keys} FROM json_array_elements_text($1::json) AS l(archived) ` +
    `CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::${quoteQualified(plan.schema, plan.table)}, l.archived::json) AS r) ` +
    `SELECT count(*)::text AS present, count(*) FILTER (WHERE s.current = s.archived)::text AS unchanged FROM ` +
    `(SELECT ${line.select} AS current, b.archived FROM ${tableSource(plan)} AS t JOIN b ON ${match}${line.join} FOR KEY SHARE OF t) AS s`
  );
}
