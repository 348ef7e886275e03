/** The archive pipeline's statements, one function each. SQL text comes from archive-sql.ts. */
import type { TablePlan } from '../core/table-plan.js';
import {
  buildCountSql,
  buildCutoffSql,
  buildGuardedDeleteSql,
  buildPresentKeysSql,
  buildSelectPageSql,
  type PageRow,
} from './archive-sql.js';
import type { Queryable } from './queryable.js';

/** A row's place in (timestamp, primary key) order, as the server's text. */
export interface RowPosition {
  ts: string;
  key: string[];
}

export interface ArchivedRow {
  line: string;
  xmin: string;
  ts: string;
  day: string;
  timeOfDay: string;
  key: string[];
  /** Indexes into plan.columns of json/jsonb columns whose value is JSON null. */
  jsonNullColumns: number[];
  /** Indexes into plan.columns of json columns written as a string of their exact text. */
  jsonTextColumns: number[];
}

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

export async function selectPage(
  q: Queryable,
  plan: TablePlan,
  cutoff: string,
  after: RowPosition | null,
  limit: number,
): Promise<ArchivedRow[]> {
  const params: unknown[] = [cutoff];
  if (after !== null) params.push(after.ts, ...after.key);
  const r = await q.query<PageRow>(buildSelectPageSql(plan, after !== null, limit), params);
  const width = plan.primaryKey.length;
  return r.rows.map((row) => {
    const key: string[] = [];
    for (let i = 0; i < width; i++) key.push(row[`k${i}`]!);
    const flags = row.jn === null || row.jn === '{}' ? [] : row.jn.slice(1, -1).split(',');
    return {
      line: row.line,
      xmin: row.x,
      ts: row.ts,
      day: row.day,
      timeOfDay: row.tod,
      key,
      jsonNullColumns: flags.filter((f) => f.startsWith('n')).map((f) => Number(f.slice(1))),
      jsonTextColumns: flags.filter((f) => f.startsWith('t')).map((f) => Number(f.slice(1))),
    };
  });
}

/** Runs inside the caller's transaction. Returns the keys actually deleted. */
export async function deleteArchivedRows(
  q: Queryable,
  plan: TablePlan,
  rows: readonly { xmin: string; key: readonly string[] }[],
  cutoff: string,
): Promise<string[][]> {
  const params: unknown[] = [rows.map((r) => r.xmin)];
  plan.primaryKey.forEach((_, i) => params.push(rows.map((r) => r.key[i])));
  params.push(cutoff);
  const r = await q.query<Record<string, string>>(buildGuardedDeleteSql(plan), params);
  return r.rows.map((row) => plan.primaryKey.map((_, i) => row[`k${i}`]!));
}

export async function selectPresentKeys(q: Queryable, plan: TablePlan, keys: readonly (readonly string[])[]): Promise<string[][]> {
  if (keys.length === 0) return [];
  const params = plan.primaryKey.map((_, i) => keys.map((k) => k[i]));
  const r = await q.query<Record<string, string>>(buildPresentKeysSql(plan), params);
  return r.rows.map((row) => plan.primaryKey.map((_, i) => row[`k${i}`]!));
}
