/**
 * Loads one batch into the target: consecutive checked archive objects with the same column
 * list, up to --batch-size rows (a larger object is split over several batches). In one short
 * transaction (I5): COPY of the raw lines into a session-local staging table, parse with the
 * archived types, check every line's key against its object's deletion manifest, then one
 * INSERT … SELECT … ON CONFLICT. Batching small objects matters: per-transaction overhead,
 * not parsing, dominated when each object was its own transaction.
 */
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { BatchMetadata, LineColumns } from '../core/batch-metadata.js';
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from '../db/queryable.js';
import type { TargetTable } from '../db/target-table.js';
import type { CheckedObject } from './check-object.js';
import type { DriftPlan } from './schema-drift.js';
import { COPY_LINES_SQL, countConflictsSql, createLinesTableSql, createParsedTablesSql, insertCountsUpdates, insertSql, manifestMismatchSql, parseLinesSql, type ConflictStrategy } from './restore-sql.js';

export interface LoadResult {
  rows: number;
  inserted: number;
  /** Rows whose key already existed: skipped (skip), replaced (overwrite) or updated (upsert). */
  conflicts: number;
}

/** Lines [from, to) of one object; `last`: the object's final segment (it is then fully loaded). */
export interface BatchSegment {
  object: CheckedObject;
  starts: number[];
  from: number;
  to: number;
  last: boolean;
}

export interface LoadOptions {
  strategy: ConflictStrategy;
  dryRun: boolean;
  /** Runs inside the batch's transaction, before COMMIT (a database restore watermark commits with the rows). */
  beforeCommit?: (q: Queryable) => Promise<void>;
}

/** Temp tables of one restore connection, per distinct archived column list. */
export class RestoreSession {
  private readonly parsedTables = new Map<string, { rowType: string; parsed: string }>();
  private prepared = false;

  constructor(readonly client: pg.ClientBase) {}

  async tablesFor(columns: BatchMetadata['columns']): Promise<{ rowType: string; parsed: string }> {
    if (!this.prepared) {
      await this.client.query(createLinesTableSql());
      this.prepared = true;
    }
    const signature = JSON.stringify(columns.map((c) => [c.name, c.type]));
    let tables = this.parsedTables.get(signature);
    if (tables === undefined) {
      const built = createParsedTablesSql(this.parsedTables.size + 1, columns);
      for (const sql of built.sql) await this.client.query(sql);
      tables = { rowType: built.rowType, parsed: built.parsed };
      this.parsedTables.set(signature, tables);
    }
    return tables;
  }
}

/** Byte offset of each line of `raw`, plus one past the end. */
export function lineStarts(raw: Buffer): number[] {
  const starts = [0];
  let at = raw.indexOf(10);
  while (at !== -1) {
    starts.push(at + 1);
    at = raw.indexOf(10, at + 1);
  }
  return starts;
}

/** What the columns, column types and key of a batch's objects must share. */
export function batchSignature(meta: Pick<BatchMetadata, 'columns' | 'primary_key_columns'>): string {
  return JSON.stringify([meta.columns, meta.primary_key_columns]);
}

interface BatchInput {
  /** `n\x02line\n` per line, n numbering the batch's lines from 0: the number travels with the line through COPY. */
  payload: Buffer;
  manifest: string[][];
  jsonNull: LineColumns[];
  jsonText: LineColumns[];
  rows: number;
}

/** Pure: the batch's lines renumbered from 0, with the manifest and json rules renumbered alike. */
export function buildBatchInput(segments: readonly BatchSegment[]): BatchInput {
  const parts: Buffer[] = [];
  const manifest: string[][] = [];
  const jsonNull: LineColumns[] = [];
  const jsonText: LineColumns[] = [];
  let n = 0;
  for (const s of segments) {
    const { meta, raw } = s.object;
    const offset = n - s.from;
    const renumber = (entries: readonly LineColumns[] | undefined, into: LineColumns[]): void => {
      for (const e of entries ?? []) if (e.line >= s.from && e.line < s.to) into.push({ line: e.line + offset, columns: e.columns });
    };
    renumber(meta.json_null_values, jsonNull);
    renumber(meta.json_text_values, jsonText);
    for (let i = s.from; i < s.to; i++) {
      parts.push(Buffer.from(`${n}\x02`, 'latin1'), raw.subarray(s.starts[i]!, s.starts[i + 1]!));
      manifest.push(meta.primary_keys[i]!);
      n++;
    }
  }
  return { payload: Buffer.concat(parts), manifest, jsonNull, jsonText, rows: n };
}

/** The segment and object line of batch line `n`. */
function locate(segments: readonly BatchSegment[], n: number): { key: string; line: number } {
  let first = 0;
  for (const s of segments) {
    if (n < first + s.to - s.from) return { key: s.object.key, line: s.from + n - first };
    first += s.to - s.from;
  }
  return { key: segments[segments.length - 1]!.object.key, line: -1 };
}

export async function loadBatch(session: RestoreSession, segments: readonly BatchSegment[], drift: DriftPlan, target: TargetTable, options: LoadOptions): Promise<LoadResult> {
  const { client } = session;
  const meta = segments[0]!.object.meta;
  const { rowType, parsed } = await session.tablesFor(meta.columns);
  const input = buildBatchInput(segments);
  const parse = parseLinesSql({ columns: meta.columns, json_null_values: input.jsonNull, json_text_values: input.jsonText }, rowType, parsed);
  await client.query('BEGIN');
  try {
    await pipeline(Readable.from([input.payload]), client.query(copyStreams.from(COPY_LINES_SQL)));
    const parsedRows = await client.query(parse.sql, parse.values);
    if (parsedRows.rowCount !== input.rows) throw new Error(`parsed ${parsedRows.rowCount} rows of ${input.rows} lines`);
    const mismatch = await client.query<{ n: string }>(manifestMismatchSql(meta, parsed), [JSON.stringify(input.manifest)]);
    if (mismatch.rows[0] !== undefined) {
      const at = locate(segments, Number(mismatch.rows[0].n));
      throw new AuditlogError('RESTORE_CORRUPT_OBJECT', `archive object ${at.key}: line ${at.line} holds a row whose key is not the manifest's key for that line; nothing of it was loaded in this batch (inspect the object)`, {
        details: { key: at.key, check: 'manifest' },
      });
    }
    let inserted: number;
    if (options.dryRun) {
      const sql = countConflictsSql(drift, target, parsed);
      inserted = input.rows - (sql === undefined ? 0 : Number((await client.query<{ n: string }>(sql)).rows[0]?.n ?? 0));
      await client.query('ROLLBACK');
    } else {
      inserted = await insertRows(client, drift, target, parsed, options.strategy, segments);
      await options.beforeCommit?.(client);
      await client.query('COMMIT');
    }
    return { rows: input.rows, inserted, conflicts: input.rows - inserted };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

async function insertRows(client: pg.ClientBase, drift: DriftPlan, target: TargetTable, parsed: string, strategy: ConflictStrategy, segments: readonly BatchSegment[]): Promise<number> {
  try {
    const conflictsSql = insertCountsUpdates(strategy, target) ? undefined : countConflictsSql(drift, target, parsed);
    const conflicts = conflictsSql === undefined ? 0 : Number((await client.query<{ n: string }>(conflictsSql)).rows[0]?.n ?? 0);
    const r = await client.query<{ inserted: string }>(insertSql(drift, target, parsed, strategy));
    return Number(r.rows[0]?.inserted ?? 0) - conflicts;
  } catch (error) {
    const pgError = error as { code?: string; detail?: string; constraint?: string };
    if (strategy === 'fail' && pgError.code === '23505') {
      const keys = [...new Set(segments.map((s) => s.object.key))];
      const where = keys.length === 1 ? keys[0]! : `${keys[0]} (and ${keys.length - 1} more objects of this batch)`;
      throw new AuditlogError('RESTORE_CONFLICT', `restoring ${where} into ${target.schema}.${target.table}: ${pgError.detail ?? 'a key already exists'}; this batch was rolled back (choose --conflict skip, overwrite or upsert, or restore into a new --target-table)`, {
        details: { key: keys[0]!, constraint: pgError.constraint ?? null, detail: pgError.detail ?? null },
        cause: error,
      });
    }
    throw error;
  }
}
