/**
 * `auditlog status`, `auditlog watermarks list` and `auditlog watermarks reset`: what the archiver
 * remembers about each table, read without archiving anything. Output formatting is pure.
 */
import { resolveLockTimings, type Config, type DatabaseConfig } from '../config/schema.js';
import { selectTargets } from '../archive/run-archive.js';
import { AuditlogError, describeError, errorCodeOf, isAuditlogError } from '../core/errors.js';
import { quoteListForDisplay } from '../core/quote-for-display.js';
import type { RowPosition } from '../core/row-set.js';
import { inspectTables, withDatabase, type FileLockReport, type TableReport, type UnreadableState } from '../state/inspect-tables.js';
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
import { emptyTableState, type TableId } from '../state/table-state.js';

export interface StateCommandInput {
  config: Config;
  store: ObjectStore;
  database?: string;
  table?: string;
  json: boolean;
  secrets: readonly string[];
  stdout: (text: string) => void;
}

/** `watermarks list` and `reset`: `--all` names every configured table (of `--database`), so it cannot go with `--table`. */
export type WatermarksCommandInput = StateCommandInput & { all: boolean };

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

/** Without --table or with --all: every configured table (of --database). */
export async function runWatermarksListCommand(input: WatermarksCommandInput): Promise<number> {
  refuseTableWithAll(input, 'list');
  const databases = selectTargets(input);
  await requireLocalArchive(input.config, 'no watermark to list');
  const reports = await inspectTables({ config: input.config, store: input.store, databases, withLocks: false, secrets: input.secrets });
  if (input.json) {
    const watermarks = reports.map((r) => ({
      database: r.database,
      schema: r.schema,
      table: r.table,
      watermark: r.state?.watermark ?? null,
      // Present when the watermark is unknown: null alone would read as "none".
      ...(r.stateUnreadable === undefined ? {} : { unreadable: r.stateUnreadable }),
      problems: r.problems,
    }));
    input.stdout(JSON.stringify({ watermarks }) + '\n');
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
 *
 * It is also the fix STATE_INVALID names: a table state that is not valid is replaced by an empty
 * one (its last-run record cannot be read, so it goes too), and a checkpoint that is not valid is
 * removed. A valid checkpoint stays: it tells the next run that it resumes an interrupted one.
 */
export async function runWatermarksResetCommand(input: WatermarksCommandInput): Promise<number> {
  if (input.table === undefined && !input.all) {
    throw new AuditlogError('USAGE', 'watermarks reset needs --table NAME (optionally with --database NAME), or --all for every configured table');
  }
  refuseTableWithAll(input, 'reset');
  const databases = selectTargets(input);
  if (input.table !== undefined) refuseAmbiguousTable(input.table, databases);
  await requireLocalArchive(input.config, 'no watermark to reset');
  const results: ResetResult[] = [];
  for (const db of databases) {
    await withDatabase({ config: input.config, secrets: input.secrets }, db, async (pool, connectProblem) => {
      const stores = openStateStores(input.config, input.store, pool);
      for (const t of db.tables) {
        const id = { database: db.name, schema: t.schema, table: t.name };
        // A stale lock file taken over, say: said on its own line, or with the table's result in JSON.
        const warnings: string[] = [];
        const warn = (message: string): void => {
          if (input.json) warnings.push(message);
          else input.stdout(`${label(id)}: ${message}\n`);
        };
        let result: ResetResult;
        try {
          if (connectProblem !== undefined) {
            throw new AuditlogError('DB_CONNECT', `the table lock cannot be taken (${connectProblem}); retry once the database is reachable`);
          }
          result = await withTableLock(input, db, pool, id, warn, async () => {
            const discarded: ResetResult['discarded'] = [];
            const state = await stores.tableState.get(id).catch(invalidAsUndefined(() => discarded.push({ document: 'table state', location: stores.tableState.locate(id) })));
            await stores.checkpoints.get(id).catch(invalidAsUndefined(() => discarded.push({ document: 'checkpoint', location: stores.checkpoints.locate(id) })));
            if (discarded.some((d) => d.document === 'table state')) await stores.tableState.put(emptyTableState(id));
            else if (state?.watermark != null) await stores.tableState.put({ ...state, watermark: null });
            if (discarded.some((d) => d.document === 'checkpoint')) await stores.checkpoints.delete(id);
            const was = state?.watermark?.position ?? null;
            return { ...id, status: was === null && discarded.length === 0 ? 'no-watermark' : 'reset', was, discarded };
          });
        } catch (error) {
          result = { ...id, status: 'failed', was: null, discarded: [], error: { code: errorCodeOf(error), message: describeError(error) } };
        }
        results.push(warnings.length === 0 ? result : { ...result, warnings });
        if (!input.json) input.stdout(formatResetResult(result));
      }
    });
  }
  if (input.json) input.stdout(JSON.stringify({ tables: results }) + '\n');
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

interface ResetResult extends TableId {
  /** reset: a watermark was forgotten or an invalid document discarded; no-watermark: nothing to do. */
  status: 'reset' | 'no-watermark' | 'failed';
  /** The position forgotten. */
  was: RowPosition | null;
  /** Documents that were not valid (STATE_INVALID), replaced or removed. */
  discarded: { document: 'table state' | 'checkpoint'; location: string }[];
  error?: { code: string; message: string };
  warnings?: string[];
}

function formatResetResult(r: ResetResult): string {
  if (r.status === 'failed') return `${label(r)}: could not reset the watermark: ${r.error!.message}\n`;
  if (r.status === 'no-watermark') return `${label(r)}: no watermark\n`;
  const parts = [
    ...(r.was === null ? [] : [`watermark reset (was ${formatPosition(r.was)})`]),
    ...r.discarded.map((d) => `discarded the invalid ${d.document} at ${d.location}`),
  ];
  return `${label(r)}: ${parts.join('; ')}; the next run starts from the first row\n`;
}

/** A read that found a document not valid: noted, and then treated as no document (reset replaces it). */
function invalidAsUndefined(noted: () => void): (error: unknown) => undefined {
  return (error) => {
    if (!isAuditlogError(error) || error.code !== 'STATE_INVALID') throw error;
    noted();
    return undefined;
  };
}

function refuseTableWithAll(input: WatermarksCommandInput, command: 'list' | 'reset'): void {
  if (input.all && input.table !== undefined) {
    throw new AuditlogError('USAGE', `watermarks ${command}: --table and --all contradict each other: pass --table NAME for one table, or --all for every configured table (of --database, if given)`);
  }
}

/**
 * A name that matches configured tables in several databases or schemas resets them all
 * otherwise: `--all` says that; `--table` means one table.
 */
function refuseAmbiguousTable(table: string, databases: readonly DatabaseConfig[]): void {
  const matches = databases.flatMap((d) => d.tables.map((t) => label({ database: d.name, schema: t.schema, table: t.name })));
  if (matches.length > 1) {
    throw new AuditlogError(
      'USAGE',
      `watermarks reset: --table ${table} matches ${matches.length} configured tables (${matches.join(', ')}): pick one with --database NAME and/or --table schema.name, or pass --all for all of them`,
    );
  }
}

/**
 * Runs `fn` holding the table's locks as an archive run takes them (lock file in local mode, then
 * the advisory lock): a live run refuses it with LOCK_HELD naming the holder, and no run starts
 * while it holds them. No heartbeat: `fn` is one read and one write. A table that does not exist
 * has no advisory lock to take (no run can archive it).
 */
async function withTableLock<T>(input: StateCommandInput, db: DatabaseConfig, pool: pg.Pool, id: TableId, warn: (message: string) => void, fn: () => Promise<T>): Promise<T> {
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
          warn,
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

/** The timestamp as PostgreSQL wrote it (the parser checked it is one), the key values quoted: a key can be any text. */
function formatPosition(p: RowPosition): string {
  return `${p.ts} / ${quoteListForDisplay(p.key)}`;
}

function formatUnknown(u: UnreadableState): string {
  return `unknown (could not read ${u.location}: ${u.code})`;
}

function formatWatermark(r: TableReport): string {
  if (r.stateUnreadable !== undefined) return formatUnknown(r.stateUnreadable);
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
        r.stateUnreadable !== undefined
          ? formatUnknown(r.stateUnreadable)
          : run == null
          ? 'none recorded'
          : `${run.status} at ${run.finished_at} (run ${run.run_id}): ${run.rows_archived} rows in ${run.batches} batches${run.rows_skipped > 0 ? `, ${run.rows_skipped} skipped` : ''}${run.error ? ` — ${run.error.code}: ${run.error.message}` : ''}${run.stopped === true ? ' — stopped before the end by a stop request; rows past the retention may be left for the next run' : ''}`
      }`,
    );
    const cp = r.checkpoint;
    // A checkpoint is also what a run under way keeps: with the table's lock held it is that run's
    // progress, not an interrupted run (found by probing: status said "did not finish" mid-run).
    const checkpoint =
      cp === null
        ? 'none'
        : liveRunIds(r)?.has(cp.run_id) === true
        ? `run ${cp.run_id} in progress (it holds the table's lock): ${cp.batches_committed} batches committed as of its last checkpoint save (${cp.updated_at})`
        : // The count is the last save's (every checkpoints.every_batches batches): read as the
          // run's total, "0 batches committed" hid the 4 a killed run had deleted (found by probing).
          `run ${cp.run_id} did not finish: ${cp.batches_committed} batches committed as of its last checkpoint save (${cp.updated_at}; batches committed after it are confirmed by the next run, which resumes this one)`;
    out.push(`  checkpoint: ${r.checkpointUnreadable !== undefined ? formatUnknown(r.checkpointUnreadable) : checkpoint}`);
    if (r.spooledBatches.length > 0) out.push(`  spooled:    ${r.spooledBatches.length} batch(es) in local_fallback_dir waiting for storage; their rows are still in the table`);
    out.push(`  in flight:  ${r.pendingMarkers.length === 0 ? 'none' : `${r.pendingMarkers.length} batch(es) with a pending marker (in flight, cut short, or committed with its marker not yet removed); the next run reconciles them`}`);
    for (const p of r.problems) out.push(`  problem:    ${p}`);
  }
  return out.join('\n') + '\n';
}
