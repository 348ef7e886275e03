/**
 * What an operator wants to know about each configured table without running anything: its
 * watermark and last run, a checkpoint left by an interrupted run, batches still in flight
 * (pending markers), and who holds its lock. Read-only; used by `status` and `watermarks`.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { localSchema, type Config, type DatabaseConfig } from '../config/schema.js';
import { LocalObjectStore } from '../storage/local-object-store.js';
import { pendingPrefix, tablePrefix } from '../core/archive-layout.js';
import { describeError, errorCodeOf } from '../core/errors.js';
import { listFallbackKeys } from '../archive/local-fallback.js';
import { buildSessionSettings, checkConnection, createPool } from '../db/connect.js';
import { findLockHolder, type LockHolder } from '../db/advisory-lock.js';
import { judgeFileLock, type FileLockContent } from '../core/file-lock-state.js';
import { resolveLockTimings } from '../config/schema.js';
import { fileLockPath, isProcessAlive, readFileLock } from './file-lock.js';
import { quoteQualified } from '../db/quote-ident.js';
import type { ObjectStore } from '../storage/object-store.js';
import { openStateStores, type StateStores } from './state-stores.js';
import type { Checkpoint, TableId, TableState } from './table-state.js';

export interface TableReport extends TableId {
  /** null: none stored, or it could not be read (then `stateUnreadable` says why). */
  state: TableState | null;
  checkpoint: Checkpoint | null;
  /** The table state could not be read: its watermark and last run are unknown, not absent. */
  stateUnreadable?: UnreadableState;
  checkpointUnreadable?: UnreadableState;
  /** Keys of pending markers: batches uploaded whose delete has not been seen to commit (reconciled by the next run). */
  pendingMarkers: string[];
  /** Batches spooled to local_fallback_dir while storage was down (their rows are still in the table). */
  spooledBatches: string[];
  /** null: nobody holds it; undefined: not checked. */
  lockHolder?: LockHolder | null;
  /** Local mode: the table's lock file (null: none; undefined: not local mode or not checked). */
  fileLock?: FileLockReport | null;
  /** What could not be read, per part; the other parts are still reported. */
  problems: string[];
}

export interface UnreadableState {
  /** Where it is (a path, an object URL, a row). */
  location: string;
  /** The error code: STATE_INVALID for a document that is not valid, else why it could not be read. */
  code: string;
  message: string;
}

export interface FileLockReport {
  file: string;
  /** null: the file is there but unreadable. */
  holder: FileLockContent | null;
  /** Why the next run would take it over; undefined while its holder is alive. */
  staleReason?: string;
}

export interface InspectOptions {
  config: Config;
  store: ObjectStore;
  databases: DatabaseConfig[];
  /** Also connect to each database to find lock holders (status); watermarks need it only for `backend: database`. */
  withLocks: boolean;
  secrets?: readonly string[];
}

export async function inspectTables(options: InspectOptions): Promise<TableReport[]> {
  const reports: TableReport[] = [];
  for (const db of options.databases) {
    await withDatabase(options, db, async (pool, connectProblem) => {
      const stores = openStateStores(options.config, options.store, pool);
      for (const t of db.tables) {
        const id = { database: db.name, schema: t.schema, table: t.name };
        reports.push(await inspectTable(options, stores, id, connectProblem === undefined ? pool : undefined, connectProblem));
      }
    });
  }
  return reports;
}

/** Runs `fn` with a pool of the database; a database that cannot be reached is reported, not thrown. */
export async function withDatabase(
  options: Pick<InspectOptions, 'config' | 'secrets'>,
  db: DatabaseConfig,
  fn: (pool: pg.Pool, connectProblem: string | undefined) => Promise<void>,
): Promise<void> {
  const pool = createPool({
    database: { ...db, connection_pool_size: 2 },
    applicationName: options.config.application_name,
    settings: buildSessionSettings(options.config.defaults),
    onBackgroundError: () => undefined,
  });
  try {
    let problem: string | undefined;
    await checkConnection(pool, db, options.secrets).catch((error: unknown) => {
      problem = describeError(error);
    });
    await fn(pool, problem);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

async function inspectTable(options: InspectOptions, stores: StateStores, id: TableId, pool: pg.Pool | undefined, connectProblem: string | undefined): Promise<TableReport> {
  const report: TableReport = { ...id, state: null, checkpoint: null, pendingMarkers: [], spooledBatches: [], problems: [] };
  const note = (what: string) => (error: unknown) => {
    report.problems.push(`${what}: ${describeError(error)}`);
  };
  const unreadable = (what: string, location: string, set: (u: UnreadableState) => void) => (error: unknown) => {
    set({ location, code: errorCodeOf(error), message: describeError(error) });
    note(what)(error);
  };
  if (options.config.watermarks.backend !== 'database' || pool !== undefined) {
    const location = stores.tableState.locate(id);
    report.state = (await stores.tableState.get(id).catch(unreadable('watermark', location, (u) => (report.stateUnreadable = u)))) ?? null;
  } else {
    const message = connectProblem ?? 'database unreachable';
    report.stateUnreadable = { location: stores.tableState.locate(id), code: 'DB_CONNECT', message };
    report.problems.push(`watermark: ${message}`);
  }
  const checkpointAt = stores.checkpoints.locate(id);
  report.checkpoint = (await stores.checkpoints.get(id).catch(unreadable('checkpoint', checkpointAt, (u) => (report.checkpointUnreadable = u)))) ?? null;
  try {
    for await (const o of options.store.list(pendingPrefix(tablePrefix(id.database, id.schema, id.table)))) report.pendingMarkers.push(o.key);
  } catch (error) {
    note('pending batches')(error);
  }
  if (options.config.local_fallback_dir !== undefined) {
    const spool = new LocalObjectStore(localSchema.parse({ path: options.config.local_fallback_dir }));
    try {
      // Only the spool's own files, as the replay sees them (a stray file there is no batch).
      for await (const key of listFallbackKeys(spool, id)) report.spooledBatches.push(key);
    } catch (error) {
      note('local fallback')(error);
    }
  }
  if (options.withLocks && options.config.local !== undefined) {
    const file = fileLockPath(options.config.local.path, id);
    try {
      const read = await readFileLock(file);
      if (read === undefined) report.fileLock = null;
      else {
        const verdict = judgeFileLock({
          content: read.content,
          modifiedAtMs: read.modifiedAtMs,
          nowMs: Date.now(),
          localHostname: hostname(),
          holderAlive: isProcessAlive,
          staleAfterMs: resolveLockTimings(options.config.lock).staleAfterMs,
        });
        report.fileLock = { file, holder: read.content ?? null, ...(verdict.stale ? { staleReason: verdict.reason } : {}) };
      }
    } catch (error) {
      note('lock file')(error);
    }
  }
  if (options.withLocks) {
    if (pool === undefined) {
      report.problems.push(`lock: ${connectProblem ?? 'database unreachable'}`);
    } else {
      try {
        const r = await pool.query<{ oid: string | null }>('SELECT to_regclass($1)::oid::text AS oid', [quoteQualified(id.schema, id.table)]);
        const oid = r.rows[0]?.oid ?? null;
        if (oid === null) report.problems.push(`lock: table ${id.schema}.${id.table} not found`);
        else report.lockHolder = await findLockHolder(pool, Number(oid));
      } catch (error) {
        note('lock')(error);
      }
    }
  }
  return report;
}
