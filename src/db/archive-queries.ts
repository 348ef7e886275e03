/** The archive pipeline's statements, one function each. SQL text comes from archive-sql.ts. */
import type { TablePlan } from '../core/table-plan.js';
import type { LineFlags, RowPosition, RowSet } from '../core/row-set.js';
import { buildCountSql, buildCutoffSql, buildDailyCountSql, buildGuardedDeleteSql, buildPresentRowsSql, buildSelectPageSql, type DayGroupRow, buildHeldKeysSql } from './archive-sql.js';
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

/** Row counts past the cutoff per UTC day (the day as YYYY-MM-DD), for estimating the number of batches. */
export async function countRowsByDay(q: Queryable, plan: TablePlan, cutoff: string): Promise<{ day: string; rows: number }[]> {
  const r = await q.query<{ day: string; n: string }>(buildDailyCountSql(plan), [cutoff]);
  return r.rows.map((row) => ({ day: row.day, rows: Number(row.n) }));
}

/** One page (at most `limit` rows after `after`, up to and including `until`), split by UTC day. */
export async function selectPage(
  q: Queryable,
  plan: TablePlan,
  cutoff: string,
  after: RowPosition | null,
  limit: number,
  until: RowPosition | null = null,
): Promise<RowSet[]> {
  const params: unknown[] = [cutoff];
  if (after !== null) params.push(after.ts, ...after.key);
  if (until !== null) params.push(until.ts, ...until.key);
  const r = await q.query<DayGroupRow>(buildSelectPageSql(plan, { after: after !== null, until: until !== null }, limit), params);
  return r.rows.map((g) => {
    const firstOrd = Number(g.first_ord);
    return {
      day: g.day,
      firstTimeOfDay: g.first_tod,
      count: Number(g.n),
      lines: g.lines,
      xmins: JSON.parse(g.xmins) as string[],
      keys: JSON.parse(g.keys) as string[][],
      firstTs: g.first_ts,
      lastTs: g.last_ts,
      minKey: JSON.parse(g.min_key) as string[],
      maxKey: JSON.parse(g.max_key) as string[],
      flags: g.flags === null ? [] : (JSON.parse(g.flags) as [number, string][]).map(([ord, jn]) => parseFlags(ord - firstOrd, jn)),
    };
  });
}

/** `{n3,t5}` from jsonFlagsExpression: n = JSON null, t = json written as its text. */
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

/** Runs inside the caller's transaction. Returns how many rows were deleted, and which. */
export async function deleteArchivedRows(q: Queryable, plan: TablePlan, rows: Pick<RowSet, 'xmins' | 'keys'>, cutoff: string): Promise<DeleteResult> {
  const r = await q.query<{ n: string; keys: string }>(buildGuardedDeleteSql(plan), [JSON.stringify(rows.xmins), JSON.stringify(rows.keys), cutoff]);
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
