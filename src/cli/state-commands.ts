/**
 * `auditlog status`, `auditlog watermarks list` and `auditlog watermarks reset`: what the archiver
 * remembers about each table, read without archiving anything. Output formatting is pure.
 */
import { resolveLockTimings, type Config, type DatabaseConfig } from '../config/schema.js';
import { selectTargets } from '../archive/run-archive.js';
import { AuditlogError, describeError } from '../core/errors.js';
import { quoteListForDisplay } from '../core/quote-for-display.js';
import type { RowPosition } from '../core/row-set.js';
import { inspectTables, withDatabase, type FileLockReport, type TableReport } from '../state/inspect-tables.js';
import { acquireTableLock, describeLockHolder } from '../db/advisory-lock.js';
import { describeFileLockHolder } from '../core/file-lock-state.js';
import { openStateStores } from '../state/state-stores.js';
import type { ObjectStore } from '../storage/object-store.js';
import type pg from 'pg';
import { buildSessionSettings, connectLockClient } from '../db/connect.js';
import { quoteQualified } from '../db/quote-ident.js';
import { combineLocks, type TableLock } from '../core/table-lock.js';
import { acquireFileLock, fileLockPath } from '../state/file-lock.js';
import { requireLocalArchive } from './require-local-archive.js';
import type { TableId } from '../state/table-state.js';

export interface StateCommandInput {
  config: Config;
  store: ObjectStore;
  database?: string;
  table?: string;
  json: boolean;
  secrets: readonly string[];
  stdout: (text: string) => void;
}

const label = (r: { database: string; schema: string; table: string }): string => `${r.database}/${r.schema}.${r.table}`;

/**
 * Exit 0 when every table is readable and healthy; 1 when something could not be read, a last run
 * failed, a run was interrupted (its checkpoint is still there), batches are spooled, a lock file
 * is stale, or batches are in flight with no live run holding the table: what a cron check wants.
 */
export async function runStatusCommand(input: StateCommandInput): Promise<number> {
  const databases = selectTargets(input);
  await requireLocalArchive(input.config, 'no archive state to show');
  const reports = await inspectTables({ config: input.config, store: input.store, databases, withLocks: true, secrets: input.secrets });
  input.stdout(input.json ? JSON.stringify({ tables: reports }) + '\n' : formatStatus(reports));
  return reports.some(needsAttention) ? 1 : 0;
}

export async function runWatermarksListCommand(input: StateCommandInput): Promise<number> {
  const databases = selectTargets(input);
  await requireLocalArchive(input.config, 'no watermark to list');
  const reports = await inspectTables({ config: input.config, store: input.store, databases, withLocks: false, secrets: input.secrets });
  if (input.json) {
    input.stdout(JSON.stringify({ watermarks: reports.map((r) => ({ database: r.database, schema: r.schema, table: r.table, watermark: r.state?.watermark ?? null, problems: r.problems })) }) + '\n');
  } else {
    input.stdout(reports.map((r) => `${label(r)}: ${formatWatermark(r)}${r.problems.length > 0 ? ` (${r.problems.join('; ')})` : ''}`).join('\n') + '\n');
  }
  return reports.some((r) => r.problems.length > 0) ? 1 : 0;
}

/**
 * Forgets the watermark of the selected tables (their last-run record stays): the next run starts
 * from the first row. Safe for the rows — a watermark only says where to start reading — but done
 * under the table lock: a live run keeps its own copy of the table state and writes it back at
 * every save and at its end, which would silently undo a reset made under it.
 */
export async function runWatermarksResetCommand(input: StateCommandInput & { all: boolean }): Promise<number> {
  if (input.table === undefined && !input.all) {
    throw new AuditlogError('USAGE', 'watermarks reset needs --table NAME (optionally with --database NAME), or --all for every configured table');
  }
  const databases = selectTargets(input);
  await requireLocalArchive(input.config, 'no watermark to reset');
  let failed = 0;
  for (const db of databases) {
    await withDatabase({ config: input.config, secrets: input.secrets }, db, async (pool, connectProblem) => {
      const stores = openStateStores(input.config, input.store, pool);
      for (const t of db.tables) {
        const id = { database: db.name, schema: t.schema, table: t.name };
        try {
          if (connectProblem !== undefined) {
            throw new AuditlogError('DB_CONNECT', `the table lock cannot be taken (${connectProblem}); retry once the database is reachable`);
          }
          const was = await withTableLock(input, db, pool, id, async () => {
            const state = await stores.tableState.get(id);
            if (state?.watermark == null) return null;
            await stores.tableState.put({ ...state, watermark: null });
            return state.watermark;
          });
          input.stdout(was === null ? `${label(id)}: no watermark\n` : `${label(id)}: watermark reset (was ${formatPosition(was.position)}); the next run starts from the first row\n`);
        } catch (error) {
          failed += 1;
          input.stdout(`${label(id)}: could not reset the watermark: ${describeError(error)}\n`);
        }
      }
    });
  }
  return failed > 0 ? 1 : 0;
}

/**
 * Runs `fn` holding the table's locks as an archive run takes them (lock file in local mode, then
 * the advisory lock): a live run refuses it with LOCK_HELD naming the holder, and no run starts
 * while it holds them. No heartbeat: `fn` is one read and one write. A table that does not exist
 * has no advisory lock to take (no run can archive it).
 */
async function withTableLock<T>(input: StateCommandInput, db: DatabaseConfig, pool: pg.Pool, id: TableId, fn: () => Promise<T>): Promise<T> {
  const locks: TableLock[] = [];
  let client: pg.Client | undefined;
  try {
    if (input.config.local !== undefined) {
      locks.push(
        await acquireFileLock({
          file: fileLockPath(input.config.local.path, id),
          label: label(id),
          runId: RESET_RUN_ID,
          timings: resolveLockTimings(input.config.lock),
          warn: (message) => input.stdout(`${label(id)}: ${message}\n`),
        }),
      );
    }
    const r = await pool.query<{ oid: string | null }>('SELECT to_regclass($1)::oid::text AS oid', [quoteQualified(id.schema, id.table)]);
    const oid = r.rows[0]?.oid ?? null;
    if (oid !== null) {
      client = await connectLockClient({ database: db, applicationName: input.config.application_name, settings: buildSessionSettings(input.config.defaults) });
      locks.push(await acquireTableLock(client, { ...id, oid: Number(oid) }, { runId: RESET_RUN_ID }));
    }
    return await fn();
  } finally {
    await combineLocks(locks).release().catch(() => undefined);
    await client?.end().catch(() => undefined);
  }
}

/** The run id a refused archive run sees as the holder while a reset holds the table. */
const RESET_RUN_ID = 'watermarks-reset';

/**
 * Pending markers and a checkpoint are what a run leaves while it works, and also what a failed
 * or killed run leaves behind. Status tells them apart by the table lock: a live run holds it
 * (the advisory lock goes with its session; a lock file counts while it is not stale). While it
 * is held, the markers are that run's batches in flight, or older ones it reconciles when it
 * starts; the checkpoint is its own when it carries the holder's run id, else an interrupted
 * run's. Without a live holder, both need attention: a table failing on every run before it
 * could clear them (a foreign marker, say) shows here.
 */
function needsAttention(r: TableReport): boolean {
  const live = liveRunIds(r);
  const checkpointOfLiveRun = r.checkpoint !== null && live?.has(r.checkpoint.run_id) === true;
  return (
    r.problems.length > 0 ||
    r.state?.last_run?.status === 'failed' ||
    r.state?.last_run?.stopped === true ||
    (r.checkpoint !== null && !checkpointOfLiveRun) ||
    (r.pendingMarkers.length > 0 && live === undefined) ||
    r.spooledBatches.length > 0 ||
    r.fileLock?.staleReason !== undefined
  );
}

/** The run ids of the live holders of the table's lock (empty when they cannot be read), or undefined when no live run holds it. */
function liveRunIds(r: TableReport): Set<string> | undefined {
  const fileHolder = r.fileLock != null && r.fileLock.staleReason === undefined ? r.fileLock : undefined;
  if (r.lockHolder == null && fileHolder === undefined) return undefined;
  const ids = new Set<string>();
  if (r.lockHolder?.run_id != null) ids.add(r.lockHolder.run_id);
  if (fileHolder?.holder != null) ids.add(fileHolder.holder.run_id);
  return ids;
}

/** The timestamp as PostgreSQL wrote it, the key values quoted: a key can be any text. */
function formatPosition(p: RowPosition): string {
  return `${p.ts} / ${quoteListForDisplay(p.key)}`;
}

function formatWatermark(r: TableReport): string {
  const wm = r.state?.watermark;
  return wm == null ? 'none (the next run starts at the first row)' : `${formatPosition(wm.position)} (run ${wm.run_id}, ${wm.updated_at})`;
}

function formatFileLock(f: FileLockReport, nowMs: number): string {
  const who = f.holder === null ? `an unreadable lock file ${f.file}` : describeFileLockHolder(f.holder, nowMs);
  return f.staleReason === undefined ? `held by ${who}` : `stale (${f.staleReason}), left by ${who}; the next run takes it over`;
}

export function formatStatus(reports: readonly TableReport[], nowMs = Date.now()): string {
  const out: string[] = [];
  for (const r of reports) {
    out.push(label(r));
    const h = r.lockHolder;
    if (h !== undefined) out.push(`  lock:       ${h === null ? 'free' : `held by ${describeLockHolder(h)}`}`);
    const f = r.fileLock;
    if (f !== undefined) out.push(`  lock file:  ${f === null ? 'free' : formatFileLock(f, nowMs)}`);
    out.push(`  watermark:  ${formatWatermark(r)}`);
    const run = r.state?.last_run;
    out.push(
      `  last run:   ${
        run == null
          ? 'none recorded'
          : `${run.status} at ${run.finished_at} (run ${run.run_id}): ${run.rows_archived} rows in ${run.batches} batches${run.rows_skipped > 0 ? `, ${run.rows_skipped} skipped` : ''}${run.error ? ` — ${run.error.code}: ${run.error.message}` : ''}${run.stopped === true ? ' — stopped before the end by a stop request; rows past the retention may be left for the next run' : ''}`
      }`,
    );
    const cp = r.checkpoint;
    out.push(`  checkpoint: ${cp === null ? 'none' : `run ${cp.run_id} did not finish: ${cp.batches_committed} batches committed, last saved ${cp.updated_at} (the next run resumes it)`}`);
    if (r.spooledBatches.length > 0) out.push(`  spooled:    ${r.spooledBatches.length} batch(es) in local_fallback_dir waiting for storage; their rows are still in the table`);
    out.push(`  in flight:  ${r.pendingMarkers.length === 0 ? 'none' : `${r.pendingMarkers.length} batch(es) with a pending marker (in flight, cut short, or committed with its marker not yet removed); the next run reconciles them`}`);
    for (const p of r.problems) out.push(`  problem:    ${p}`);
  }
  return out.join('\n') + '\n';
}
