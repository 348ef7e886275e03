/**
 * One table: plan → lock → reconcile what an earlier run left in flight → read batches →
 * archive each (upload, verify, record, delete) → release. Reads like the pipeline it runs.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { CheckpointsConfig, DefaultsConfig, LockTimings, TableConfig } from '../config/schema.js';
import { pendingPrefix, tablePrefix } from '../core/archive-layout.js';
import { warnLegacyPrefix } from './legacy-prefix.js';
import { AuditlogError, describeError, isAuditlogError, sqlState } from '../core/errors.js';
import { loadTablePlan } from '../db/catalog.js';
import { checkArchiveAccess } from '../db/session-checks.js';
import { selectDatabaseIdentity } from '../db/database-identity.js';
import { acquireTableLock } from '../db/advisory-lock.js';
import { abandonClient, abortPoolConnections, endClient, fencePool } from '../db/connect.js';
import { combineLocks, lockLostError, type TableLock } from '../core/table-lock.js';
import { tableLabel, type HoldFilter, type TablePlan } from '../core/table-plan.js';
import { listOverlappingTables } from '../db/target-table.js';
import { acquireFileLock, fileLockPath } from '../state/file-lock.js';
import { countArchivable, positionMismatch, selectCutoff, selectHeldKeys, summarizeArchivable } from '../db/archive-queries.js';
import type { ObjectStore } from '../storage/object-store.js';
import { archiveBatch, type BatchOutcome } from './archive-batch.js';
import type { BatchPhase, ReconciledBatch } from './archive-context.js';
import { lastPosition, readBatches, type PageRead } from './read-batches.js';
import { reconcilePending } from './reconcile-pending.js';
import { MarkerSweeper } from './marker-sweeper.js';
import type { RowSet } from '../core/row-set.js';
import type { StateStores } from '../state/state-stores.js';
import { recordFailedRun, TableProgress } from './table-progress.js';
import { isStorageUnavailable, type FallbackSpool } from './local-fallback.js';
import { emptyTableSummary, type TableSummary } from './table-summary.js';
import type { RunEvents, TableRef, TimedPhase } from '../core/run-events.js';
import { quoteIdent } from '../db/quote-ident.js';
import { checkHoldFilter, loadCheckTableHolds } from '../db/hold-queries.js';
import { holdFilterOf, holdLabel, holdsForTable, rowHoldLabel, type LegalHold, type RowHold } from '../compliance/legal-hold.js';
import { loadHoldTree } from '../db/partition-tree.js';
import type { HoldCheckTableConfig } from '../config/schema.js';
import type { Queryable } from '../db/queryable.js';

export interface ArchiveTableInput {
  database: string;
  table: TableConfig;
  /** The database's other configured tables: one in this table's partition tree is warned about. */
  otherTables?: readonly Pick<TableConfig, 'schema' | 'name'>[];
  defaults: DefaultsConfig;
  pool: pg.Pool;
  /** A connection of its own for the advisory lock (not from the pool). */
  openLockClient: () => Promise<pg.Client>;
  /** Heartbeat of the table lock(s), and when a lock file is stale (lock: in the config). */
  lockTimings: LockTimings;
  /** Local mode: the archive directory, which gets a lock file per table besides the advisory lock. */
  lockDir?: string;
  store: ObjectStore;
  /** Watermarks, last-run results and checkpoints (watermarks:/checkpoints: in the config). */
  stateStores: StateStores;
  checkpoints: Pick<CheckpointsConfig, 'every_batches'>;
  /** local_fallback_dir: batches that failed because storage is unavailable are spooled there (rows kept). */
  fallback?: FallbackSpool;
  runId: string;
  toolVersion: string;
  sessionSettings: Record<string, string>;
  logger: Logger;
  dryRun: boolean;
  progressIntervalMs: number;
  onPhase?: (phase: BatchPhase) => void | Promise<void>;
  sleep?: (ms: number) => Promise<void>;
  events?: RunEvents;
  /** Active legal holds that keep some rows (record-level, or on a partition): their filters are checked, then keep matching rows out of every read and delete. */
  recordHolds?: readonly RowHold[];
  /** When legal holds are enabled: the holds placed again inside every delete transaction (holdRecheck). */
  holdSources?: HoldSources;
  /** Encryption the table requires: every uploaded object must report it (HEAD) before its rows are deleted. */
  requiredSse?: 'AES256' | 'aws:kms';
  /** Count the rows to archive first (one index range scan), for progress percent and ETA. */
  countRows?: boolean;
  /**
   * Asked before each new batch starts: true (SIGTERM in the daemon) ends the table early. Batches
   * already in flight finish — commit or roll back — exactly as when reading ends, so a stop never
   * leaves more than an ordinary crash would, and usually nothing to reconcile.
   */
  shouldStop?: () => boolean;
  /**
   * One-shot runs: a stop fails the table with this error (after the batches in flight settled),
   * so its last run and checkpoint say "failed" and the next run resumes from it. Without it (the
   * daemon) a stopped table ends as archived, its last run marked `stopped`.
   */
  stopError?: () => AuditlogError;
}

/**
 * A configured table that is gone (dropped, or a partition detached and dropped) with batches of
 * it still in flight: nothing can reconcile them without the table, yet every other message says
 * the next run will (found by probing). Says so, naming how many, and where the procedure is.
 */
async function explainTableGone(input: ArchiveTableInput, error: unknown): Promise<never> {
  if (!isAuditlogError(error) || error.code !== 'TABLE_NOT_FOUND') throw error;
  let inFlight = 0;
  try {
    for await (const _ of input.store.list(pendingPrefix(tablePrefix(input.database, input.table.schema, input.table.name)))) inFlight++;
  } catch {
    throw error;
  }
  if (inFlight === 0) throw error;
  throw new AuditlogError(
    'TABLE_NOT_FOUND',
    `${error.message}; ${inFlight} batch(es) of it are still in flight (pending markers), and no run can reconcile them without the table: decide them by hand as docs/runbooks.md says ("A table with batches in flight is gone"), then take the table out of the configuration`,
    { details: { ...error.details, in_flight: inFlight }, cause: error },
  );
}

export async function archiveTable(input: ArchiveTableInput): Promise<TableSummary> {
  const started = Date.now();
  const summary: TableSummary = emptyTableSummary(input.database, input.table.schema, input.table.name);
  const logger = input.logger.child({ table: `${input.table.schema}.${input.table.name}` });
  // Once TableProgress.finish is called it records this run's result; before that, a failure is
  // recorded below.
  let settled = false;
  try {
    let plan = await loadTablePlan(input.pool, input.database, input.table, input.defaults).catch((error: unknown) => explainTableGone(input, error));
    await warnSameTree(input, plan, logger);
    const holds = input.recordHolds ?? [];
    // A filter that is not valid is an error of the table, never a hold silently dropped.
    for (const r of holds) if (r.hold.where !== undefined) await checkHoldFilter(input.pool, plan, r.hold, holdFilterOf(r).partitionOids);
    if (holds.length > 0) {
      plan = { ...plan, holdFilters: holds.map(holdFilterOf) };
      logger.info({ holds: holds.length }, 'record-level legal holds (or holds on partitions of the table): matching rows stay in the table');
    }
    const cutoff = await selectCutoff(input.pool, plan);
    if (input.dryRun) {
      // What the real run would stop at, said now; a dry run itself needs only SELECT.
      await checkArchiveAccess(input.pool, plan).catch((error: unknown) => {
        if (!isAuditlogError(error) || (error.code !== 'DB_PRIVILEGE' && error.code !== 'DB_SESSION')) throw error;
        logger.warn({ code: error.code }, error.message);
      });
      const { batches, ...count } = await summarizeArchivable(input.pool, plan, cutoff);
      summary.status = 'dry-run';
      summary.dryRun = { ...count, cutoff, estimatedBatches: batches };
      logger.info({ rows: count.rows, cutoff, from: count.minTimestamp, to: count.maxTimestamp }, 'dry run: rows that would be archived');
      return summary;
    }

    await checkArchiveAccess(input.pool, plan);
    const ref = { runId: input.runId, database: plan.database, schema: plan.schema, table: plan.table };
    const lockClient = await input.openLockClient();
    // Lifts what a lost lock fenced off (the pool goes on to the next table).
    const unfence: (() => void)[] = [];
    try {
      const lock = await acquireLocks(input, plan, lockClient, logger, unfence);
      const markers = new MarkerSweeper({
        store: input.store,
        logger,
        beforeSweep: () => input.onPhase?.('before-marker-flush'),
        // The audit trail (when one listens) records the batches before their markers go: a run
        // killed later still has them in its trail (docs/compliance.md, "Interrupted runs").
        ...(input.events === undefined ? {} : { beforeRemove: (batches) => input.events!.emitAndConfirm('batches:sweeping', { ...ref, batches: [...batches] }) }),
      });
      try {
        const ctx = {
          store: input.store,
          createOnly: (await input.store.conditionalCreate?.())?.supported === true,
          pool: input.pool,
          plan,
          lock,
          cutoff,
          origin: await selectDatabaseIdentity(input.pool),
          runId: input.runId,
          prefix: tablePrefix(plan.database, plan.schema, plan.table),
          toolVersion: input.toolVersion,
          sessionSettings: input.sessionSettings,
          logger,
          markers,
          ...(input.onPhase === undefined ? {} : { onPhase: input.onPhase }),
          ...(input.requiredSse === undefined ? {} : { requiredSse: input.requiredSse }),
          ...(input.holdSources === undefined ? {} : { recheckHolds: holdRecheck(input.holdSources, plan) }),
          ...(input.events === undefined
            ? {}
            : {
                onTimed: (phase: TimedPhase, seconds: number) => input.events!.emit('batch:phase', { ...ref, phase, seconds }),
                onReconciledCommitted: (batch: ReconciledBatch) => input.events!.emitAndConfirm('batch:reconciled', { ...ref, ...batch }),
              }),
        };
        await warnLegacyPrefix(ctx);
        const { otherTables, ...reconciled } = await reconcilePending(ctx);
        if (reconciled.committed + reconciled.removed > 0) summary.reconciled = reconciled;
        if (otherTables > 0) summary.otherTablesMarkers = otherTables;
        const progress = new TableProgress({
          stores: input.stateStores,
          plan,
          runId: input.runId,
          everyBatches: input.checkpoints.every_batches,
          logger,
          checkPosition: (position) => positionMismatch(input.pool, plan, position),
        });
        const { start, resumed } = await progress.begin();
        if (resumed !== undefined) summary.resumed = resumed;
        logger.info({ cutoff, retention_days: plan.retentionDays, batch_size: plan.batchSize }, 'archiving rows older than the cutoff');
        input.events?.emit('table:started', { ...ref, cutoff, retentionDays: plan.retentionDays });
        if (input.countRows === true && input.events !== undefined) {
          // Only for the progress display: a count that fails (statement_timeout on a huge table) must not fail the table.
          try {
            input.events.emit('table:counted', { ...ref, rows: (await countArchivable(input.pool, plan, cutoff)).rows });
          } catch (error) {
            logger.warn({ err: describeError(error) }, 'could not count the rows to archive; progress goes on without percent or ETA');
          }
        }

        let stopped = false;
        let lastProgress = Date.now();
        const record = (outcome: BatchOutcome): void => {
          summary.batches += outcome.key === null ? 0 : 1;
          summary.rowsArchived += outcome.rowsArchived;
          summary.rowsSkipped += outcome.rowsSkipped;
          summary.bytesUncompressed += outcome.uncompressedBytes;
          summary.bytesCompressed += outcome.compressedBytes;
          if (outcome.key !== null && outcome.rowsArchived > 0) {
            input.events?.emit('batch:committed', {
              ...ref,
              key: outcome.key,
              rows: outcome.rowsArchived,
              rowsSkipped: outcome.rowsSkipped,
              bytesUncompressed: outcome.uncompressedBytes,
              bytesCompressed: outcome.compressedBytes,
            });
          } else if (outcome.rowsSkipped > 0) {
            input.events?.emit('batch:skipped', { ...ref, rowsSkipped: outcome.rowsSkipped });
          }
          if (outcome.rowsSkipped > 0) logger.warn({ skipped: outcome.rowsSkipped }, 'rows changed, locked or deleted since the batch read them were not archived by it (those still in the table are archived by a later run)');
          if (Date.now() - lastProgress >= input.progressIntervalMs) {
            lastProgress = Date.now();
            logger.info({ rows: summary.rowsArchived, batches: summary.batches, rows_per_s: rate(summary.rowsArchived, started) }, 'progress');
          }
        };
        // Batches hold disjoint rows and each has its own pending marker, so several can be in
        // flight at once: storage round trips overlap instead of adding up. A pause means one at a time.
        const limit = plan.pauseBetweenBatchesMs > 0 ? 1 : plan.batchesInFlight;
        // The spool is plain files on the archiver's disk: a table that must be encrypted at rest
        // never goes there (found in review); its batches simply wait in the table for storage.
        const fallback = input.requiredSse === undefined ? input.fallback : undefined;
        if (input.fallback !== undefined && fallback === undefined) logger.debug('local_fallback_dir is not used for this table: it requires server-side encryption');
        const archivePass = async (batches: AsyncIterable<RowSet>, onBatch: (rows: RowSet) => (outcome: BatchOutcome) => void): Promise<void> => {
          const inFlight = new Set<Promise<void>>();
          let failure: { error: unknown } | undefined;
          try {
            for await (const rows of batches) {
              if (failure !== undefined) break;
              if (input.shouldStop?.() === true) {
                stopped = true;
                break;
              }
              // A lost lock stops the table at once: no new batch starts (the ones in flight stop before their delete).
              if (!lock.isHeld()) {
                failure = { error: lockLostError(tableLabel(plan), lock.lostReason(), 'the next batch') };
                break;
              }
              const done = onBatch(rows);
              const task: Promise<void> = archiveBatch(ctx, rows)
                .then(
                  (outcome) => {
                    record(outcome);
                    done(outcome);
                  },
                  async (error: unknown) => {
                    failure ??= { error };
                    if (fallback !== undefined && isStorageUnavailable(error)) await spool(rows, error);
                  },
                )
                .finally(() => inFlight.delete(task));
              inFlight.add(task);
              if (inFlight.size >= limit) await Promise.race(inFlight);
              if (plan.pauseBetweenBatchesMs > 0) await (input.sleep ?? sleep)(plan.pauseBetweenBatchesMs);
            }
          } finally {
            // Even when reading fails: batches in flight finish (or fail) before the lock and pool go.
            await Promise.allSettled(inFlight);
          }
          if (failure !== undefined) throw failure.error;
        };
        const spool = async (rows: RowSet, error: unknown): Promise<void> => {
          try {
            const file = await fallback!.save(plan, rows, input.runId, error);
            summary.spooledBatches = (summary.spooledBatches ?? 0) + 1;
            logger.warn({ file, rows: rows.count }, 'storage unavailable: batch spooled to local_fallback_dir; its rows stay in the table until it is archived');
          } catch (spoolError) {
            logger.error({ err: describeError(spoolError) }, 'could not spool the batch to local_fallback_dir; its rows stay in the table');
          }
        };
        try {
          // Batches an earlier run spooled while storage was down go first, through the same pipeline.
          if (fallback !== undefined) {
            const { replayed } = await fallback.replay(
              plan,
              async (rows) => record(await archiveBatch(ctx, rows)),
              (keys) => selectHeldKeys(input.pool, plan, keys),
            );
            if (replayed > 0) summary.replayedBatches = replayed;
          }
          // Main pass: after the watermark, which follows the batches as they commit.
          const onPage = (page: PageRead): void => {
            input.events?.emit('batch:phase', { ...ref, phase: 'query', seconds: page.elapsedMs / 1000 });
            // The message predates max_batch_bytes: kept as is for whoever searches logs for it; `bytes` tells a byte-bound change apart.
            if (page.nextSize !== page.size) logger.info({ query_ms: Math.round(page.elapsedMs), rows: page.rows, bytes: page.bytes, batch_size: page.nextSize }, 'page size adapted toward target_query_time_ms');
          };
          await archivePass(readBatches(input.pool, plan, cutoff, { after: start }, onPage), (rows) => {
            const seq = progress.track(lastPosition(rows));
            return (outcome) => progress.completed(seq, outcome.rowsArchived);
          });
          // Then the rows a watermark leaves behind: skipped while locked or changed, or inserted
          // late with an old timestamp. Usually none; one index range scan finds that out.
          if (start !== null && !stopped) {
            await archivePass(readBatches(input.pool, plan, cutoff, { until: start }, onPage), () => (outcome) => progress.completedBehind(outcome.rowsArchived));
          }
          // Now, not after the vacuum below (minutes, maybe): until then validate and restore see these batches as in flight.
          await markers.flush();
          if (stopped && input.stopError !== undefined) {
            summary.stopped = true;
            throw input.stopError();
          }
        } catch (error) {
          const e = toTableError(error);
          settled = true;
          await progress.finish({ status: 'failed', rows_archived: summary.rowsArchived, rows_skipped: summary.rowsSkipped, batches: summary.batches, error: { code: e.code, message: e.message } });
          throw e;
        }
        const status = summary.rowsArchived > 0 || summary.rowsSkipped > 0 ? 'archived' : 'nothing-to-archive';
        settled = true;
        // A daemon's stop ends the table as archived, marked stopped: it did not finish, and the
        // state said nothing of it, so a daemon stopped mid-run every night never looked stale
        // to status or to the last-success alert (found by probing).
        await progress.finish({ status, rows_archived: summary.rowsArchived, rows_skipped: summary.rowsSkipped, batches: summary.batches, ...(stopped ? { stopped: true as const } : {}) });
        summary.status = status;
        if (stopped) {
          summary.stopped = true;
          logger.warn({ rows: summary.rowsArchived }, 'stop requested: no further batch started; the rest of the table is archived by the next run');
        }
        // Not while shutting down: a vacuum can take minutes and the grace period is short; the next run vacuums.
        if (!stopped && input.shouldStop?.() !== true && summary.rowsArchived > 0 && (input.table.vacuum_after ?? input.defaults.vacuum_after)) await vacuumTable(input, plan, logger, ref);
      } finally {
        // On every path, failures included, and while this run still holds the table: the batches
        // in flight have settled by now (archivePass waits for them), so every committed batch's
        // marker is queued. The flush never throws.
        await markers.flush();
        await lock.release().catch((error: unknown) => logger.warn({ err: describeError(error) }, 'could not release the table lock; it ends with the connection'));
      }
    } finally {
      await endClient(lockClient);
      for (const lift of unfence) lift();
    }
  } catch (error) {
    summary.status = 'failed';
    const e = toTableError(error);
    // Every batch has settled by now; what may still run is a page read ahead, whose result no
    // one will use. Abandoned, so the run does not wait on it (with a silent database, a
    // connection attempt of 15 s, or a query deadline).
    abortPoolConnections(input.pool, e);
    summary.error = { code: e.code, message: e.message };
    logger.error({ code: e.code, err: e.message }, 'table failed');
    // A failure before TableProgress began (plan, access, locks, reconciliation) is this table's
    // last run too, or `status` keeps showing an old success. Not for LOCK_HELD: the table is
    // being archived by another run, which records its own result when it ends and whose state a
    // write from here would overwrite — and "failed" would be misleading while it archives fine.
    // A holder that is stuck shows in `status` as the lock holder, with its last activity. A
    // failure before the lock was tried may still coincide with a live run: that run writes its
    // whole state at its next save and at its end, so its own result is what stays.
    // Not for a dry run either: it writes nothing.
    if (!settled && !input.dryRun && e.code !== 'LOCK_HELD') {
      await recordFailedRun({
        stores: input.stateStores,
        id: { database: input.database, schema: input.table.schema, table: input.table.name },
        runId: input.runId,
        startedAt: new Date(started),
        result: { rows_archived: summary.rowsArchived, rows_skipped: summary.rowsSkipped, batches: summary.batches, error: { code: e.code, message: e.message } },
        logger,
      });
    }
  } finally {
    summary.durationMs = Date.now() - started;
    summary.rowsPerSecond = rate(summary.rowsArchived, started);
  }
  return summary;
}

/** The holds of a table run, as holdRecheck reads them again. */
export interface HoldSources {
  /** Holds from the configuration and the holds API, as read at the run's start. */
  fixed: readonly LegalHold[];
  /** legal_holds.check_table: read again each time. */
  checkTable?: HoldCheckTableConfig;
}

/**
 * Inside each delete transaction: the holds placed since the run admitted the table, if any. The
 * holds table is read again (found in review: a hold placed mid-run was not honoured), and so is
 * the partition tree, which every hold is placed through (found in review: a partition attached
 * mid-run with a hold on it was not in the tree read at the start, and its rows were deleted).
 */
function holdRecheck(sources: HoldSources, plan: TablePlan): (q: Queryable) => Promise<string | undefined> {
  const filterKey = (f: HoldFilter): string => JSON.stringify([f.where ?? null, f.partitionOids ?? null]);
  const applied = new Set((plan.holdFilters ?? []).map(filterKey));
  return async (q) => {
    const holds = sources.checkTable === undefined ? sources.fixed : [...sources.fixed, ...(await loadCheckTableHolds(q, sources.checkTable, plan.database))];
    if (holds.length === 0) return undefined;
    const tree = await loadHoldTree(q, plan.database, plan.schema, plan.table);
    const now = holdsForTable(holds, { database: plan.database, schema: plan.schema, table: plan.table }, new Date(), tree);
    if (now.tableLevel.length > 0) return `a legal hold on the whole table (${holdLabel(now.tableLevel[0]!)})`;
    const added = now.rowLevel.find((r) => !applied.has(filterKey(holdFilterOf(r))));
    if (added === undefined) return undefined;
    return `a ${added.hold.where === undefined ? 'legal hold on a partition' : 'record-level legal hold'} (${rowHoldLabel(added)}${added.hold.where === undefined ? '' : `, where ${added.hold.where}`})`;
  };
}

/**
 * The file lock first (local mode: it guards the directory, and is cheap to refuse), then the
 * advisory lock (it guards the database). Either one lost stops every further delete.
 */
async function acquireLocks(input: ArchiveTableInput, plan: TablePlan, lockClient: pg.Client, logger: Logger, unfence: (() => void)[]): Promise<TableLock> {
  const label = tableLabel(plan);
  const onLost = (reason: string, how?: 'connection' | 'heartbeat'): void => {
    logger.error({ reason }, 'table lock lost: no further delete; this table stops and the next run reconciles the batch in flight');
    // Found lost by the heartbeat (the database did not answer it in time, or no longer shows the
    // lock ours), the work in flight stops now, not when a silent server answers (found by
    // probing: with the database blackholed the heartbeat found the lock lost, but the page read
    // and the delete waited on their dead sockets, past SIGTERM, for minutes), and no new work
    // starts until the table has ended. Nothing commits without the lock anyway; a COMMIT already
    // sent is an ambiguous one, decided from the table or left in flight for the next run. The
    // lock session goes too: if it still lives, the server releases its lock when it sees it gone.
    // Not when the lock's own connection failed or ended: that says nothing of the pool's, and a
    // COMMIT whose answer a reset lost is being decided on a fresh one right now.
    if (how !== 'heartbeat') return;
    const error = lockLostError(label, reason, 'the database work in flight (its connections were closed)');
    unfence.push(fencePool(input.pool, error));
    abandonClient(lockClient, error);
  };
  const locks: TableLock[] = [];
  if (input.lockDir !== undefined) {
    locks.push(
      await acquireFileLock({
        file: fileLockPath(input.lockDir, { database: plan.database, schema: plan.schema, table: plan.table }),
        label,
        runId: input.runId,
        timings: input.lockTimings,
        warn: (message, holder) => logger.warn({ old_holder: holder ?? null }, message),
        onLost,
      }),
    );
  }
  try {
    const t = input.lockTimings;
    locks.push(await acquireTableLock(lockClient, plan, { runId: input.runId, heartbeat: { intervalMs: t.heartbeatIntervalMs, timeoutMs: t.heartbeatTimeoutMs }, onLost }));
  } catch (error) {
    await combineLocks(locks).release().catch(() => undefined);
    throw error;
  }
  return combineLocks(locks);
}

/**
 * `VACUUM (ANALYZE)` reclaims the deleted rows' space for reuse and refreshes the planner's
 * statistics. It cannot run inside a transaction: a plain pooled query is autocommit. The rows
 * are archived and deleted whatever happens here, so a failure is only a warning.
 */
async function vacuumTable(input: ArchiveTableInput, plan: TablePlan, logger: Logger, ref: TableRef): Promise<void> {
  const started = performance.now();
  try {
    await input.pool.query(`VACUUM (ANALYZE) ${quoteIdent(plan.schema)}.${quoteIdent(plan.table)}`);
    const seconds = (performance.now() - started) / 1000;
    input.events?.emit('batch:phase', { ...ref, phase: 'vacuum', seconds });
    logger.info({ vacuum_ms: Math.round(seconds * 1000) }, 'vacuumed and analyzed the table');
  } catch (error) {
    logger.warn({ err: describeError(error) }, 'VACUUM (ANALYZE) failed; the archived rows are deleted all the same (run it by hand, or check statement_timeout_ms)');
  }
}

/**
 * A partition configured besides its parent (or a parent besides one of its partitions): the
 * documented mistake of operations.md ("Not both"). Nothing is lost or archived twice — the guarded
 * delete sees to that — but the two are separate tables with separate prefixes and locks, so rows
 * land under whichever ran first, and validate or restore of one silently lacks the other's (found
 * by probing: a month of the parent's rows archived under the partition's prefix, without a word).
 */
async function warnSameTree(input: ArchiveTableInput, plan: TablePlan, logger: Logger): Promise<void> {
  const others = input.otherTables ?? [];
  if (others.length === 0) return;
  // Only a warning: a catalog query that fails here must not fail the table (the run's own queries say what is wrong).
  const tree = await listOverlappingTables(input.pool, String(plan.oid)).catch((error: unknown) => {
    logger.debug({ err: describeError(error) }, 'could not list the partition tree of the table');
    return [];
  });
  const same = tree.filter((t) => String(t.oid) !== String(plan.oid) && others.some((o) => o.schema === t.schema && o.name === t.table));
  if (same.length === 0) return;
  logger.warn(
    { same_tree: same.map((t) => `${t.schema}.${t.table}`) },
    `${same.map((t) => `${t.schema}.${t.table}`).join(', ')} ${same.length === 1 ? 'is' : 'are'} configured too and in the same partition tree: the rows of both are archived under whichever table reaches them first, each under its own prefix, so validate and restore of either miss the other's; configure the parent or its partitions, not both (docs/operations.md, Partitioned tables)`,
  );
}

/**
 * PostgreSQL names neither the lock nor its holder. For a partitioned table, a page read locks the
 * partitions from where it starts to the cutoff, emptied ones included (the first page of a run
 * all of them older than the cutoff).
 */
const LOCK_TIMEOUT_HINT =
  ' — another session held a lock on the table (or, for a partitioned table, on any of its partitions) longer than lock_timeout_ms: VACUUM FULL, CLUSTER, ALTER TABLE, CREATE TABLE … PARTITION OF, DETACH PARTITION, LOCK TABLE or a long transaction holding one; or, while batches left in flight were reconciled, a transaction holding locks on their rows. Find it in pg_locks / pg_stat_activity, then rerun; the statement was rolled back';

/**
 * PostgreSQL's own hint (max_locks_per_transaction) is not in the error's message; for a
 * partitioned table it is the partitions and their indexes that fill the lock table (found by
 * probing, where the application's sessions failed the same way).
 */
const OUT_OF_SHARED_MEMORY_HINT =
  ' — most likely the server\'s lock table is full (a page read of a partitioned table takes one entry per partition and per index in its range): raise max_locks_per_transaction (a restart), drop emptied partitions, or lower batches_in_flight; the statement was rolled back';

/** Errors from the driver carry a SQLSTATE; anything else unexpected is INTERNAL. */
function toTableError(error: unknown): AuditlogError {
  if (isAuditlogError(error)) return error;
  const lost = describeConnectionLoss(error);
  if (lost !== undefined) return new AuditlogError('DB_CONNECT', `lost the connection to the database: ${lost} (check the network and the server, then rerun: the next run reconciles any batch left in flight)`, { cause: error });
  const state = sqlState(error);
  if (state !== undefined) {
    const hint = state === '55P03' ? LOCK_TIMEOUT_HINT : state === '53200' ? OUT_OF_SHARED_MEMORY_HINT : '';
    return new AuditlogError('DB_QUERY', `database error ${state}: ${describeError(error)}${hint}`, { details: { sqlstate: state }, cause: error });
  }
  return new AuditlogError('INTERNAL', describeError(error), { cause: error });
}

/**
 * node-postgres' own errors for a connection that failed or could not be made carry no SQLSTATE
 * (found by probing: a table failed as INTERNAL "Client has encountered a connection error and is
 * not queryable"); and neither do the socket's.
 */
function describeConnectionLoss(error: unknown): string | undefined {
  const message = describeError(error);
  const code = (error as { code?: unknown; syscall?: unknown } | null)?.code;
  const syscall = (error as { syscall?: unknown } | null)?.syscall;
  if (typeof code === 'string' && typeof syscall === 'string' && /^E[A-Z]+$/.test(code)) return message;
  return /Connection terminated|not queryable|timeout exceeded when trying to connect|Query read timeout/.test(message) ? message : undefined;
}

function rate(rows: number, started: number): number {
  const seconds = (Date.now() - started) / 1000;
  return seconds > 0 ? Math.round(rows / seconds) : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
