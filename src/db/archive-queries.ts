/** The archive pipeline's statements, one function each. SQL text comes from archive-sql.ts. */
import type { TablePlan } from '../core/table-plan.js';
import type { LineFlags, RowPosition, RowSet } from '../core/row-set.js';
import type pg from 'pg';
import { constants as bufferConstants } from 'node:buffer';
import { buildArchivableSummarySql, buildCountSql, buildCutoffSql, buildGuardedDeleteSql, buildPresentRowsSql, buildPageRowsSql, buildPageBoundsSql, buildLineBytesSampleSql, buildWidestPageRowsSql, buildPageKeyAtSql, PAGE_BOUNDS_COLUMNS, type PageBoundsColumn, buildHeldKeysSql, buildArchivedLinesPresenceSql, buildPositionCastSql, type PruningRange } from './archive-sql.js';
import { AuditlogError, describeError } from '../core/errors.js';
import { copyOutBinary, CopyBuffer, FieldTooLargeError, type BinaryRows } from './binary-copy.js';
import { quoteIdent, quoteLiteral } from './quote-ident.js';
import type { Queryable } from './queryable.js';

export async function selectCutoff(q: Queryable, plan: TablePlan): Promise<string> {
  const r = await q.query<{ cutoff: string }>(buildCutoffSql(plan), [plan.retentionDays]);
  return r.rows[0]!.cutoff;
}

/**
 * Why a stored position (a watermark) no longer fits the table's columns, or undefined when it
 * does. ALTER COLUMN … TYPE keeps the table's oid, so a watermark written before it is still taken
 * as this table's, and a value that no longer casts (the key 50 as a uuid) failed the page query
 * of every run until `watermarks reset` (found by probing). Only a data exception (SQLSTATE class
 * 22) is such a verdict; anything else is the database's failure and is thrown.
 */
export async function positionMismatch(q: Queryable, plan: TablePlan, position: RowPosition): Promise<string | undefined> {
  try {
    await q.query(buildPositionCastSql(plan), [position.ts, ...position.key]);
    return undefined;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    // 23514: a domain over the column gained a CHECK the stored value fails.
    if (typeof code !== 'string' || !(code.startsWith('22') || code === '23514')) throw error;
    const types = [plan.timestampColumn, ...plan.primaryKey].map((c) => `${c.name} ${c.type}`).join(', ');
    return `its position does not fit the columns as they are now (${types}): ${describeError(error)}; a column's type changed since it was written`;
  }
}

export interface RangeCount {
  rows: number;
  minTimestamp: string | null;
  maxTimestamp: string | null;
}

export async function countArchivable(q: Queryable, plan: TablePlan, cutoff: string): Promise<RangeCount> {
  const r = await q.query<{ n: string; min_ts: string | null; max_ts: string | null }>(buildCountSql(plan), [cutoff]);
  const row = r.rows[0]!;
  return { rows: Number(row.n), minTimestamp: row.min_ts, maxTimestamp: row.max_ts };
}

/** A dry run's or the cost estimate's view of a table: countArchivable plus the batches the rows make (one scan). */
export async function summarizeArchivable(q: Queryable, plan: TablePlan, cutoff: string): Promise<RangeCount & { batches: number }> {
  const r = await q.query<{ n: string; min_ts: string | null; max_ts: string | null; batches: string }>(buildArchivableSummarySql(plan), [cutoff, plan.batchSize]);
  const row = r.rows[0]!;
  return { rows: Number(row.n), minTimestamp: row.min_ts, maxTimestamp: row.max_ts, batches: Number(row.batches) };
}

/** What selectPage needs of a pool: a connection of its own for the page's transaction. */
export interface ConnectionSource {
  connect(): Promise<pg.PoolClient>;
}

/**
 * One page (at most `limit` rows after `after`, up to and including `until`), split by UTC day.
 * The rows come by binary COPY, so their JSON lines arrive as bytes (binary-copy.ts says why);
 * the per-day bounds by an ordinary query in the same snapshot (REPEATABLE READ). COPY takes no
 * bind parameters, so its values are bound to transaction-local settings first and the query
 * reads them back with current_setting(): values still never enter the SQL text (I6).
 */
async function readPage(
  pool: ConnectionSource,
  plan: TablePlan,
  cutoff: string,
  after: RowPosition | null,
  limit: number,
  until: RowPosition | null = null,
  /** Reused across the pages of one reader, which reads one page at a time (the result never points into it). */
  pageBuffer = new CopyBuffer(),
): Promise<RowSet[]> {
  const { params, bounds, range } = pageParams(cutoff, after, until);
  const setting = (n: number): string => `auditlog.page_p${n}`;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SELECT ${params.map((_, i) => `set_config('${setting(i + 1)}', $${i + 1}, true)`).join(', ')}`, params);
    const rows = await copyOutBinary(client, buildPageRowsSql(plan, bounds, limit, (n) => `current_setting('${setting(n)}')`, range), FIRST_KEY + plan.primaryKey.length, pageBuffer, {
      field: LINE,
      maxBytes: MAX_LINE_BYTES,
    });
    // Pruned too: its locks are held to the COMMIT like the COPY's (found in review: without the
    // range, it locked every partition below the cutoff that the COPY had spared).
    const days = await client.query<string[]>({ text: buildPageBoundsSql(plan, bounds, limit, undefined, range), values: params, rowMode: 'array' });
    await client.query('COMMIT');
    return groupPageRows(plan, rows, days.rows);
  } catch (error) {
    if (error instanceof FieldTooLargeError) {
      // The COPY was abandoned mid-stream: the connection cannot take a ROLLBACK, only be closed
      // (which ends the server's query and its transaction).
      broken = error;
    } else {
      // A killed connection fails the ROLLBACK too: the client is then released as broken.
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError as Error;
      });
    }
    throw error;
  } finally {
    client.release(broken);
  }
}

/**
 * Longest JSON line (bytes, without its '\n') the archive takes: the longest string this Node.js
 * can hold (536,870,888 on 64-bit Node 20). validate reads each line as one string, so a longer
 * line would be archived, deleted from the table, and then reported as damaged; and the pipeline
 * holds a batch several times over, so such a row costs gigabytes of memory.
 */
export const MAX_LINE_BYTES: number = bufferConstants.MAX_STRING_LENGTH;

/** PostgreSQL's limit on one allocation (MaxAllocSize): no value, so no JSON line, can be longer. */
export const POSTGRES_MAX_VALUE_BYTES = 1_073_741_823;

/**
 * Whether a page read's database error is PostgreSQL refusing to build a value over its 1 GB
 * allocation limit, as rendering a row too wide as JSON fails: `program_limit_exceeded` ("out of
 * memory: Cannot enlarge string buffer", "string buffer exceeds maximum allowed length") or
 * "invalid memory alloc request size". `out_of_memory` (53200) counts only when a row of the page
 * is wide enough to explain it (rowTooLargeError decides).
 */
function renderLimitKind(error: unknown): 'limit' | 'memory' | null {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (e?.code === '54000') return 'limit';
  if (e?.code === 'XX000' && typeof e.message === 'string' && e.message.includes('invalid memory alloc request size')) return 'limit';
  if (e?.code === '53200') return 'memory';
  return null;
}

/** Rows whose estimated size is at least this may render past POSTGRES_MAX_VALUE_BYTES (text escapes to at most 6 bytes a byte: `\u0001`). */
const SUSPECT_ROW_BYTES = Math.floor(POSTGRES_MAX_VALUE_BYTES / 6);

/** `"id" = '42' AND …`: a record-level legal hold's `where` that holds exactly this row. */
function keyFilter(plan: TablePlan, key: readonly string[]): string {
  return plan.primaryKey
    .map((c, i) => {
      const name = /^[a-z_][a-z0-9_]*$/.test(c.name) ? c.name : quoteIdent(c.name);
      return `${name} = ${quoteLiteral(key[i]!)}`;
    })
    .join(' AND ');
}

function rowTooLarge(plan: TablePlan, key: readonly string[], why: string, details: Record<string, string | number>, cause: unknown): AuditlogError {
  const where = keyFilter(plan, key);
  return new AuditlogError(
    'ROW_TOO_LARGE',
    `the row ${where} of ${plan.schema}.${plan.table} in database ${plan.database} is too large to archive: ${why}; no row of that page was archived or deleted. ` +
      `Keep the row in the table with a record-level legal hold (where: "${where}"), or move its large value out of the row (or export the row yourself and delete it by hand), then run again`,
    { details: { database: plan.database, schema: plan.schema, table: plan.table, key: [...key], hold_where: where, ...details }, cause },
  );
}

/**
 * After a page read failed: ROW_TOO_LARGE naming the row that caused it, or null when the failure
 * is not about a row's size. For a line over MAX_LINE_BYTES the COPY header said which row; for
 * PostgreSQL's own limit, which row failed is not said, so the widest row of the page by an
 * estimate that renders no JSON (buildWidestPageRowsSql) is named.
 */
async function rowTooLargeError(
  pool: ConnectionSource,
  plan: TablePlan,
  page: { params: string[]; bounds: { after: boolean; until: boolean } },
  limit: number,
  error: unknown,
): Promise<AuditlogError | null> {
  if (error instanceof FieldTooLargeError) {
    const r = await queryOnce<{ key: string }>(pool, buildPageKeyAtSql(plan, page.bounds, error.row), page.params);
    if (r[0] === undefined) return null;
    const key = JSON.parse(r[0].key) as string[];
    return rowTooLarge(
      plan,
      key,
      `its JSON line is ${error.bytes} bytes, over the ${MAX_LINE_BYTES} bytes a line may have (the longest string Node.js holds: validate reads each line as one)`,
      { line_bytes: error.bytes, limit_bytes: MAX_LINE_BYTES },
      error,
    );
  }
  const kind = renderLimitKind(error);
  if (kind === null) return null;
  const widestOf = (rows: number | null): Promise<{ key: string; bytes: string }[]> => queryOnce(pool, buildWidestPageRowsSql(plan, page.bounds, rows, 3), page.params);
  let widest = await widestOf(limit);
  // Without an index on (timestamp, key) the server sorts before the LIMIT, and renders the lines of
  // the whole range first: the row may lie past the page. Then the range is searched (sizes from
  // the rows' headers, no value read), once, on a failure only.
  if (Number(widest[0]?.bytes ?? 0) < SUSPECT_ROW_BYTES) widest = await widestOf(null);
  const top = widest[0];
  if (top === undefined || (kind === 'memory' && Number(top.bytes) < SUSPECT_ROW_BYTES)) return null;
  const key = JSON.parse(top.key) as string[];
  return rowTooLarge(
    plan,
    key,
    `PostgreSQL cannot render it as one JSON value, which is limited to 1 GB (${POSTGRES_MAX_VALUE_BYTES} bytes): "${describeError(error)}" ` +
      `(the widest row of the page that failed, ~${Math.round(Number(top.bytes) / 1_048_576)} MiB before escaping)`,
    { estimated_bytes: Number(top.bytes), limit_bytes: POSTGRES_MAX_VALUE_BYTES, sqlstate: String((error as { code?: unknown }).code), next_widest: widest.slice(1).map((w) => `${w.key} ~${w.bytes} bytes`).join('; ') },
    error,
  );
}

/** One statement on a pooled connection of its own. */
async function queryOnce<R extends pg.QueryResultRow>(pool: ConnectionSource, text: string, values: string[]): Promise<R[]> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return (await client.query<R>(text, values)).rows;
  } catch (error) {
    broken = error as Error;
    throw error;
  } finally {
    client.release(broken);
  }
}

/**
 * One page (readPage), with a failure caused by a row too large to archive reported as
 * ROW_TOO_LARGE naming that row and how to get past it, instead of the bare database error that
 * every rerun would repeat at the same page.
 */
export async function selectPage(...args: Parameters<typeof readPage>): Promise<RowSet[]> {
  try {
    return await readPage(...args);
  } catch (error) {
    const [pool, plan, cutoff, after, limit, until] = args;
    throw (await explainRowTooLarge(pool, plan, pageParams(cutoff, after, until ?? null), limit, error)) ?? error;
  }
}

/** rowTooLargeError, or null when that diagnosis fails itself (the original error is then what is said). */
async function explainRowTooLarge(pool: ConnectionSource, plan: TablePlan, page: ReturnType<typeof pageParams>, limit: number, error: unknown): Promise<AuditlogError | null> {
  return rowTooLargeError(pool, plan, page, limit, error).catch(() => null);
}

/**
 * The bind values and bounds of a page read: $1 = cutoff, then the after and until positions when
 * given; and its timestamp range, for the planner's partition pruning (archive-sql.ts pruningPredicates).
 */
function pageParams(cutoff: string, after: RowPosition | null, until: RowPosition | null): { params: string[]; bounds: { after: boolean; until: boolean }; range: PruningRange } {
  const params: string[] = [cutoff];
  if (after !== null) params.push(after.ts, ...after.key);
  if (until !== null) params.push(until.ts, ...until.key);
  const range = { cutoff, ...(after === null ? {} : { after: after.ts }), ...(until === null ? {} : { until: until.ts }) };
  return { params, bounds: { after: after !== null, until: until !== null }, range };
}

/**
 * Bytes of JSON line (with its '\n') per row, from the widest of the first `sample` rows the
 * next page would read (buildLineBytesSampleSql says why these); null when there are none.
 */
export async function estimateLineBytes(
  pool: ConnectionSource,
  plan: TablePlan,
  cutoff: string,
  after: RowPosition | null,
  until: RowPosition | null,
  sample: number,
): Promise<number | null> {
  const page = pageParams(cutoff, after, until);
  try {
    const r = await queryOnce<{ bytes: string | null }>(pool, buildLineBytesSampleSql(plan, page.bounds, sample, undefined, page.range), page.params);
    const bytes = r[0]?.bytes;
    return bytes === null || bytes === undefined ? null : Number(bytes) + 1;
  } catch (error) {
    // The sample renders the same lines as the page: a row PostgreSQL cannot render fails here
    // first, and reading the page would only fail the same way, as slowly.
    throw (await explainRowTooLarge(pool, plan, page, sample, error)) ?? error;
  }
}

/** Field positions of buildPageRowsSql's output: line, xmin, day, json flags, then the key columns. */
const LINE = 0;
const XMIN = 1;
const DAY = 2;
const FLAGS = 3;
const FIRST_KEY = 4;

/** Consecutive rows of one UTC day become one RowSet (rows come in timestamp order, so a day's rows are adjacent). */
function groupPageRows(plan: TablePlan, rows: BinaryRows, dayRows: string[][]): RowSet[] {
  const bounds = new Map(dayRows.map((r) => [r[PAGE_BOUNDS_COLUMNS.indexOf('day')]!, r]));
  const inconsistent = (what: string): never => {
    throw new AuditlogError('DB_QUERY', `the page read of ${plan.schema}.${plan.table} is inconsistent (${what}); nothing was archived from it`);
  };
  const keyFields = plan.primaryKey.length;
  const groups: RowSet[] = [];
  let start = 0;
  while (start < rows.count) {
    const day = rows.text(start, DAY);
    if (groups.some((g) => g.day === day)) inconsistent(`day ${day} not contiguous`);
    let end = start;
    let bytes = 0;
    const xmins: string[] = [];
    const keys: string[][] = [];
    const flags: LineFlags[] = [];
    for (; end < rows.count && rows.sameField(start, end, DAY); end++) {
      bytes += rows.length(end, LINE) + 1;
      xmins.push(rows.text(end, XMIN));
      if (!rows.isNull(end, FLAGS)) flags.push(parseFlags(end - start, rows.text(end, FLAGS)));
      const key: string[] = new Array(keyFields);
      for (let k = 0; k < keyFields; k++) key[k] = rows.text(end, FIRST_KEY + k);
      keys.push(key);
    }
    // The batch's object body as it will be compressed: each line followed by '\n'.
    const lines = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let r = start; r < end; r++) {
      at += rows.copy(r, LINE, lines, at);
      lines[at++] = 10;
    }
    const b = bounds.get(day);
    const field = (name: PageBoundsColumn): string => b![PAGE_BOUNDS_COLUMNS.indexOf(name)]!;
    if (b === undefined || Number(field('n')) !== end - start) inconsistent(`day ${day}: ${end - start} rows, bounds for ${b === undefined ? 'none' : field('n')}`);
    groups.push({
      day,
      firstTimeOfDay: field('first_tod'),
      count: end - start,
      lines,
      xmins,
      keys,
      firstTs: field('first_ts'),
      lastTs: field('last_ts'),
      minKey: JSON.parse(field('min_key')) as string[],
      maxKey: JSON.parse(field('max_key')) as string[],
      flags,
    });
    start = end;
  }
  if (groups.length !== bounds.size) inconsistent(`${bounds.size} days in the bounds, ${groups.length} in the rows`);
  return groups;
}

/** `{n3,t5}` from jsonFlagsExpression: n = JSON null, t = json written as its text. `line`: index in its batch. */
function parseFlags(line: number, literal: string): LineFlags {
  const flags = literal === '{}' ? [] : literal.slice(1, -1).split(',');
  return {
    line,
    jsonNull: flags.filter((f) => f.startsWith('n')).map((f) => Number(f.slice(1))),
    jsonText: flags.filter((f) => f.startsWith('t')).map((f) => Number(f.slice(1))),
  };
}

export interface DeleteResult {
  count: number;
  keys: string[][];
}

/** Which of these keys belong to rows a record-level legal hold of the plan now matches. */
export async function selectHeldKeys(q: Queryable, plan: TablePlan, keys: readonly (readonly string[])[]): Promise<string[][]> {
  if (keys.length === 0 || (plan.holdFilters ?? []).length === 0) return [];
  const r = await q.query<{ keys: string }>(buildHeldKeysSql(plan), [JSON.stringify(keys)]);
  return JSON.parse(r.rows[0]!.keys) as string[][];
}

/** The table's columns now, as [name, format_type] pairs in column order (what a TablePlan records). */
export async function selectColumnSignature(q: Queryable, tableOid: number): Promise<[string, string][]> {
  const r = await q.query<{ cols: string | null }>(
    `SELECT json_agg(json_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)::text AS cols
       FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped`,
    [tableOid],
  );
  return JSON.parse(r.rows[0]?.cols ?? '[]') as [string, string][];
}

/**
 * Runs inside the caller's transaction. Returns how many rows were deleted, and which.
 * `skipLocked: false` waits on rows locked by others, as long as lock_timeout allows (archive-sql.ts).
 */
export async function deleteArchivedRows(q: Queryable, plan: TablePlan, rows: Pick<RowSet, 'xmins' | 'keys' | 'firstTs' | 'lastTs'>, cutoff: string, options = { skipLocked: true }): Promise<DeleteResult> {
  // Arrays bound as parameters (node-postgres renders them as array literals): one per key column.
  const columns = plan.primaryKey.map((_, i) => rows.keys.map((k) => k[i]!));
  const r = await q.query<{ n: string; keys: string }>(buildGuardedDeleteSql(plan, options), [rows.xmins, ...columns, cutoff, rows.firstTs, rows.lastTs]);
  const row = r.rows[0]!;
  return { count: Number(row.n), keys: JSON.parse(row.keys) as string[][] };
}

/** Of the rows of these archived lines: how many are in the table by key, and how many in exactly the archived version. */
export async function countArchivedLinesPresent(q: Queryable, plan: TablePlan, lines: readonly string[]): Promise<{ present: number; unchanged: number }> {
  if (lines.length === 0) return { present: 0, unchanged: 0 };
  const r = await q.query<{ present: string; unchanged: string }>(buildArchivedLinesPresenceSql(plan), [JSON.stringify(lines)]);
  return { present: Number(r.rows[0]!.present), unchanged: Number(r.rows[0]!.unchanged) };
}

/** The given keys still in the table, each with the xmin of its current version. */
export async function selectPresentRows(
  q: Queryable,
  plan: TablePlan,
  keys: readonly (readonly string[])[],
  options: { lock: boolean } = { lock: true },
): Promise<{ key: string[]; xmin: string }[]> {
  if (keys.length === 0) return [];
  const r = await q.query<{ rows: string }>(buildPresentRowsSql(plan, options), [JSON.stringify(keys)]);
  return (JSON.parse(r.rows[0]!.rows) as [string[], string][]).map(([key, xmin]) => ({ key, xmin }));
}
