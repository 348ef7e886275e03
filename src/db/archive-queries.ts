/** The archive pipeline's statements, one function each. SQL text comes from archive-sql.ts. */
import type { TablePlan } from '../core/table-plan.js';
import type { LineFlags, RowPosition, RowSet } from '../core/row-set.js';
import type pg from 'pg';
import { buildArchivableSummarySql, buildCountSql, buildCutoffSql, buildGuardedDeleteSql, buildPresentRowsSql, buildPageRowsSql, buildPageBoundsSql, buildLineBytesSampleSql, PAGE_BOUNDS_COLUMNS, type PageBoundsColumn, buildHeldKeysSql } from './archive-sql.js';
import { AuditlogError } from '../core/errors.js';
import { copyOutBinary, CopyBuffer, type BinaryRows } from './binary-copy.js';
import type { Queryable } from './queryable.js';

export async function selectCutoff(q: Queryable, plan: TablePlan): Promise<string> {
  const r = await q.query<{ cutoff: string }>(buildCutoffSql(plan), [plan.retentionDays]);
  return r.rows[0]!.cutoff;
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
export async function selectPage(
  pool: ConnectionSource,
  plan: TablePlan,
  cutoff: string,
  after: RowPosition | null,
  limit: number,
  until: RowPosition | null = null,
  /** Reused across the pages of one reader, which reads one page at a time (the result never points into it). */
  pageBuffer = new CopyBuffer(),
): Promise<RowSet[]> {
  const { params, bounds } = pageParams(cutoff, after, until);
  const setting = (n: number): string => `auditlog.page_p${n}`;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SELECT ${params.map((_, i) => `set_config('${setting(i + 1)}', $${i + 1}, true)`).join(', ')}`, params);
    const rows = await copyOutBinary(client, buildPageRowsSql(plan, bounds, limit, (n) => `current_setting('${setting(n)}')`), FIRST_KEY + plan.primaryKey.length, pageBuffer);
    const days = await client.query<string[]>({ text: buildPageBoundsSql(plan, bounds, limit), values: params, rowMode: 'array' });
    await client.query('COMMIT');
    return groupPageRows(plan, rows, days.rows);
  } catch (error) {
    // A killed connection fails the ROLLBACK too: the client is then released as broken.
    await client.query('ROLLBACK').catch((rollbackError: unknown) => {
      broken = rollbackError as Error;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/** The bind values and bounds of a page read: $1 = cutoff, then the after and until positions when given. */
function pageParams(cutoff: string, after: RowPosition | null, until: RowPosition | null): { params: string[]; bounds: { after: boolean; until: boolean } } {
  const params: string[] = [cutoff];
  if (after !== null) params.push(after.ts, ...after.key);
  if (until !== null) params.push(until.ts, ...until.key);
  return { params, bounds: { after: after !== null, until: until !== null } };
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
  const { params, bounds } = pageParams(cutoff, after, until);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const r = await client.query<{ bytes: string | null }>(buildLineBytesSampleSql(plan, bounds, sample), params);
    const bytes = r.rows[0]?.bytes;
    return bytes === null || bytes === undefined ? null : Number(bytes) + 1;
  } catch (error) {
    broken = error as Error;
    throw error;
  } finally {
    client.release(broken);
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
export async function deleteArchivedRows(q: Queryable, plan: TablePlan, rows: Pick<RowSet, 'xmins' | 'keys'>, cutoff: string, options = { skipLocked: true }): Promise<DeleteResult> {
  // Arrays bound as parameters (node-postgres renders them as array literals): one per key column.
  const columns = plan.primaryKey.map((_, i) => rows.keys.map((k) => k[i]!));
  const r = await q.query<{ n: string; keys: string }>(buildGuardedDeleteSql(plan, options), [rows.xmins, ...columns, cutoff]);
  const row = r.rows[0]!;
  return { count: Number(row.n), keys: JSON.parse(row.keys) as string[][] };
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
