/**
 * Loads one checked archive object into the target: COPY of the raw lines into a session-local
 * staging table, parse with the archived types, check every line's key against the deletion
 * manifest, then one INSERT … SELECT … ON CONFLICT per batch. Each batch is one short
 * transaction (I5): a failure rolls back that batch only.
 */
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { BatchMetadata } from '../core/batch-metadata.js';
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from '../db/queryable.js';
import type { CheckedObject } from './check-object.js';
import type { DriftPlan } from './schema-drift.js';
import { COPY_LINES_SQL, countConflictsSql, createLinesTableSql, createParsedTablesSql, insertSql, manifestMismatchSql, parseLinesSql, type ConflictStrategy } from './restore-sql.js';
import type { TargetTable } from '../db/target-table.js';

export interface LoadResult {
  rows: number;
  inserted: number;
  /** Rows whose key already existed: skipped (skip), replaced (overwrite) or updated (upsert). */
  conflicts: number;
}

export interface LoadOptions {
  strategy: ConflictStrategy;
  dryRun: boolean;
  /** Lines per transaction; undefined = the whole object in one. */
  batchSize?: number;
  /** Runs inside the last batch's transaction, before COMMIT (a database restore watermark commits with the rows). */
  beforeCommit?: (q: Queryable) => Promise<void>;
  onBatch?: (rows: number) => void;
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

/** `n\x02line\n` per line: the line number travels with the line through COPY. */
function copyPayload(raw: Buffer, from: number, to: number, starts: number[]): Buffer {
  const parts: Buffer[] = [];
  for (let i = from; i < to; i++) {
    parts.push(Buffer.from(`${i}\x02`, 'latin1'), raw.subarray(starts[i]!, starts[i + 1]!));
  }
  return Buffer.concat(parts);
}

function lineStarts(raw: Buffer): number[] {
  const starts = [0];
  let at = raw.indexOf(10);
  while (at !== -1) {
    starts.push(at + 1);
    at = raw.indexOf(10, at + 1);
  }
  return starts;
}

export async function loadObject(session: RestoreSession, object: CheckedObject, drift: DriftPlan, target: TargetTable, options: LoadOptions): Promise<LoadResult> {
  const { client } = session;
  const { meta } = object;
  const { rowType, parsed } = await session.tablesFor(meta.columns);
  const starts = lineStarts(object.raw);
  const total = starts.length - 1;
  const step = options.batchSize ?? Math.max(total, 1);
  const parse = parseLinesSql(meta, rowType, parsed);
  const manifest = JSON.stringify(meta.primary_keys);
  const result: LoadResult = { rows: 0, inserted: 0, conflicts: 0 };
  for (let from = 0; from < total; from += step) {
    const to = Math.min(from + step, total);
    await client.query('BEGIN');
    try {
      await pipeline(Readable.from([copyPayload(object.raw, from, to, starts)]), client.query(copyStreams.from(COPY_LINES_SQL)));
      const parsedRows = await client.query(parse.sql, parse.values);
      if (parsedRows.rowCount !== to - from) throw new Error(`parsed ${parsedRows.rowCount} rows of ${to - from} lines`);
      const mismatch = await client.query<{ n: number }>(manifestMismatchSql(meta, parsed), [manifest]);
      if (mismatch.rows[0] !== undefined) {
        throw new AuditlogError('RESTORE_CORRUPT_OBJECT', `archive object ${object.key}: line ${mismatch.rows[0].n} holds a row whose key is not the manifest's key for that line; nothing of this batch was loaded (inspect the object)`, {
          details: { key: object.key, check: 'manifest' },
        });
      }
      if (options.dryRun) {
        const sql = countConflictsSql(drift, target, parsed);
        const conflicts = sql === undefined ? 0 : ((await client.query<{ n: number }>(sql)).rows[0]?.n ?? 0);
        result.conflicts += Number(conflicts);
        result.inserted += to - from - Number(conflicts);
        await client.query('ROLLBACK');
      } else {
        const r = await insertBatch(client, drift, target, parsed, options.strategy, object.key);
        result.inserted += r.inserted;
        result.conflicts += to - from - r.inserted;
        if (to === total && options.beforeCommit !== undefined) await options.beforeCommit(client);
        await client.query('COMMIT');
      }
      result.rows += to - from;
      options.onBatch?.(to - from);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
  return result;
}

async function insertBatch(client: pg.ClientBase, drift: DriftPlan, target: TargetTable, parsed: string, strategy: ConflictStrategy, key: string): Promise<{ inserted: number; updated: number }> {
  try {
    const r = await client.query<{ inserted: number; updated: number }>(insertSql(drift, target, parsed, strategy));
    return { inserted: Number(r.rows[0]?.inserted ?? 0), updated: Number(r.rows[0]?.updated ?? 0) };
  } catch (error) {
    const pgError = error as { code?: string; detail?: string; constraint?: string };
    if (strategy === 'fail' && pgError.code === '23505') {
      throw new AuditlogError('RESTORE_CONFLICT', `restoring ${key} into ${target.schema}.${target.table}: ${pgError.detail ?? 'a key already exists'}; this batch was rolled back (choose --conflict skip, overwrite or upsert, or restore into a new --target-table)`, {
        details: { key, constraint: pgError.constraint ?? null, detail: pgError.detail ?? null },
        cause: error,
      });
    }
    throw error;
  }
}
