/**
 * The load phase of a restore: objects and their sidecars are fetched and checked a few ahead
 * (each sidecar a second time: selection kept no manifest, see sidecar-summary.ts), their lines
 * grouped into batches of --batch-size rows (an object larger than that is split), and the
 * batches loaded on --jobs sessions at once. Restore watermarks are recorded per fully loaded object.
 */
import type { Queryable } from '../db/queryable.js';
import type { Logger } from 'pino';
import type pg from 'pg';
import { metadataKeyFor } from '../core/archive-layout.js';
import type { BatchMetadata } from '../core/batch-metadata.js';
import { isAuditlogError, stopRequestedError } from '../core/errors.js';
import { endClient } from '../db/connect.js';
import type { TargetTable } from '../db/target-table.js';
import { checkObject, rereadObjectMetadata } from './check-object.js';
import { batchSignature, lineStarts, loadBatch, RestoreSession, segmentLines, supersededIn, type BatchSegment } from './load-batch.js';
import { mapAhead } from './map-ahead.js';
import type { Candidate, RestoreOptions, RestoreSummary } from './restore-options.js';
import type { DriftPlan } from './schema-drift.js';
import type { openRestoreWatermarks, RestoreTarget } from './restore-watermarks.js';
import { loadSupersededLines } from './superseded-lines.js';
import { crossDefinitionRefusal, keyDefinitions, type CrossDefinitionKey, type KeyColumnMap, type KeyDefinitions, type LoadPlan } from './key-definitions.js';

/** Objects fetched and checked ahead of the load, so storage reads overlap database work. */
const PREFETCH_OBJECTS = 4;
/** Rows per transaction without --batch-size: short transactions (I5), few enough of them to be fast. */
export const DEFAULT_RESTORE_BATCH_ROWS = 20_000;
export const DEFAULT_RESTORE_JOBS = 2;

/** What one table's load needs, passed down as one value instead of a dozen arguments. */
export interface LoadInput {
  options: RestoreOptions;
  summary: RestoreSummary;
  id: { database: string; schema: string; table: string };
  target: RestoreTarget;
  table: TargetTable | undefined;
  /**
   * False when the target cannot recognize a row already in it (restore-table.ts): each object then
   * loads in one transaction whatever --batch-size, so it is loaded and recorded whole or not at all.
   */
  splitObjects: boolean;
  candidates: Candidate[];
  /** Selected objects the restore watermark skips: their keys still supersede older versions. */
  restored: Candidate[];
  /** Drift plans by driftKey: one per archived column list and the column_map entries that hold for it. */
  drifts: Map<string, DriftPlan>;
  driftKey: (meta: Pick<BatchMetadata, 'columns' | 'created_at'>) => string;
  /** The table's column_map as it holds for each object: archived key columns are compared by their target names (key-definitions.ts). */
  columnMap: KeyColumnMap;
  watermarks: ReturnType<typeof openRestoreWatermarks>;
  logger: Logger;
  corrupt: (key: string, error: unknown) => void;
  /** An object or sidecar that failed a check before loading: reported corrupt, or in flight (restore-table.ts). */
  rejected: (key: string, error: unknown) => Promise<void>;
  /** Legal holds placed since the restore began: checked in each batch's transaction (restore-holds.ts). */
  holdCheck?: (q: Queryable) => Promise<void>;
}

export async function loadObjects(client: pg.Client, openClient: () => Promise<pg.Client>, input: LoadInput): Promise<void> {
  const { options, table, candidates, watermarks } = input;
  const record = !options.dryRun;
  if (watermarks.transactional && record) await watermarks.prepare();
  const extraClients: pg.Client[] = [];
  try {
    // Two backends parse JSON on two cores: the load is CPU-bound in PostgreSQL, not in this process.
    const jobs = Math.max(1, Math.min(options.jobs ?? DEFAULT_RESTORE_JOBS, candidates.length));
    for (let i = 1; i < jobs && table !== undefined; i++) extraClients.push(await openClient());
    const sessions = [client, ...extraClients].map((c) => new RestoreSession(c));
    await loadBatches(sessions, input);
  } finally {
    for (const c of extraClients) await endClient(c);
  }
}

async function loadBatches(sessions: RestoreSession[], input: LoadInput): Promise<void> {
  const { options, summary, id, target, table, splitObjects, candidates, restored, drifts, driftKey, watermarks, logger, corrupt, rejected, holdCheck } = input;
  const record = !options.dryRun;
  const totalRows = candidates.reduce((n, c) => n + c.meta.record_count, 0);
  const batchRows = options.batchSize ?? DEFAULT_RESTORE_BATCH_ROWS;
  const started = Date.now();
  let lastProgress = started;
  const interval = options.progressIntervalMs ?? 5_000;
  const progress = (): void => {
    const now = Date.now();
    if (now - lastProgress < interval) return;
    lastProgress = now;
    const done = summary.rows.restored + summary.rows.superseded;
    const rate = done / Math.max((now - started) / 1000, 0.001);
    logger.info({ rows: summary.rows.restored, total_rows: totalRows, rows_per_second: Math.round(rate), eta_seconds: rate > 0 ? Math.round((totalRows - done) / rate) : null }, 'restore progress');
  };
  const entry = (meta: BatchMetadata) => ({ sha256_compressed: meta.sha256_compressed, rows: meta.record_count, run_id: options.runId, restored_at: new Date().toISOString() });

  let batch: BatchSegment[] = [];
  let batchSize = 0;
  const idle = [...sessions];
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  // overwrite/upsert: a key archived by two runs must end with the later run's version. The older
  // versions are left out before batching (superseded-lines.ts); as defence in depth (a sidecar
  // rewritten meanwhile supersedes nothing) objects still come oldest run first, and a batch of a
  // later run waits for the batches in flight: running alongside, it could commit first and be
  // overwritten by the older version (found by probing, with --jobs 2).
  const ordered = options.conflict === 'overwrite' || options.conflict === 'upsert';
  let dispatchedRun: string | undefined;
  /** Hands the batch to an idle session, waiting for one; a failed batch stops further dispatch. */
  const flush = async (): Promise<void> => {
    const segments = batch;
    batch = [];
    batchSize = 0;
    // The final part of a split object commits only after its other parts did: its watermark then means "all of it".
    if (segments.some((s) => s.last && s.from > 0)) await Promise.all(running);
    if (ordered && dispatchedRun !== undefined && segments[0]!.object.meta.run_id !== dispatchedRun) await Promise.all(running);
    dispatchedRun = segments[segments.length - 1]!.object.meta.run_id;
    while (idle.length === 0) await Promise.race(running);
    if (failure !== undefined) throw failure.error;
    // Between batches and never inside a split object (recorded as restored only once all of it
    // is loaded): every object loaded so far then has its watermark, and a rerun continues.
    if (options.signal?.aborted === true && segments[0]!.from === 0) {
      throw stopRequestedError(options.signal, 'no further batch started; the batches committed before stay restored (recorded in the restore watermark); rerun the same command to restore the rest');
    }
    const session = idle.pop()!;
    const task = runBatch(session, segments)
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => {
        idle.push(session);
        running.delete(task);
      });
    running.add(task);
  };
  const corruptKeys = new Set<string>();
  const runBatch = async (session: RestoreSession, initial: BatchSegment[]): Promise<void> => {
    let segments = initial.filter((s) => !corruptKeys.has(s.object.key));
    while (segments.length > 0) {
      const done = new Map(segments.filter((s) => s.last).map((s) => [s.object.key, entry(s.object.meta)]));
      const superseded = supersededIn(segments);
      if (segments.every((s) => segmentLines(s).length === 0)) {
        // Every line was archived again later: nothing to load, but the objects are done.
        if (record) await recordWithoutRows(session, done);
        summary.rows.superseded += superseded;
        summary.objects.restored += done.size;
        return;
      }
      let result;
      try {
        result = await loadBatch(session, segments, drifts.get(driftKey(segments[0]!.object.meta))!, table!, {
          strategy: options.conflict,
          dryRun: options.dryRun,
          ...(watermarks.transactional && record ? { beforeCommit: (q) => watermarks.record(q, id, target, done) } : {}),
          ...(holdCheck === undefined ? {} : { checkBeforeCommit: holdCheck }),
        });
      } catch (error) {
        // A line that is not its manifest's row shows only once staged: the batch was rolled back; load it without that object.
        if (!isAuditlogError(error) || error.code !== 'RESTORE_CORRUPT_OBJECT') throw error;
        corruptKeys.add(String(error.details.key));
        corrupt(String(error.details.key), error);
        segments = segments.filter((s) => !corruptKeys.has(s.object.key));
        continue;
      }
      if (!watermarks.transactional && record) await watermarks.record(session.client, id, target, done);
      summary.rows.restored += result.rows;
      summary.rows.inserted += result.inserted;
      summary.rows.conflicts += result.conflicts;
      summary.rows.skippedByTriggers += result.skippedByTriggers;
      summary.rows.superseded += superseded;
      summary.objects.restored += done.size;
      logger.debug({ objects: done.size, ...result, superseded }, options.dryRun ? 'batch checked (dry run)' : 'batch restored');
      progress();
      return;
    }
  };

  const recordWithoutRows = async (session: RestoreSession, done: Map<string, ReturnType<typeof entry>>): Promise<void> => {
    if (!watermarks.transactional) return watermarks.record(session.client, id, target, done);
    await session.client.query('BEGIN');
    try {
      await watermarks.record(session.client, id, target, done);
      await session.client.query('COMMIT');
    } catch (error) {
      await session.client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  };

  const toLoad = new Set(candidates.map((c) => c.key));
  const all = [...candidates, ...restored];
  const defs = keyDefinitions(all, input.columnMap);
  // A table a dry run would create gets the newest object's key, under its column_map names as the
  // real run creates it (schema-drift.ts newTargetColumns; found in review: the archived names
  // refused in the dry run what the real run loaded).
  const newest = candidates[candidates.length - 1];
  const runPosition = new Map<string, number>();
  candidates.forEach((c, i) => runPosition.has(c.meta.run_id) || runPosition.set(c.meta.run_id, i));
  const plan: LoadPlan = { strategy: options.conflict, targetKey: table?.key ?? (newest === undefined ? [] : defs.columns(newest.meta)), toLoad, label: `${target.schema}.${target.table}`, runPosition };
  let matchedAcrossKeys = 0;
  const refuseUnsafeVersions = (found: CrossDefinitionKey, defs: KeyDefinitions): void => {
    const error = crossDefinitionRefusal(found, defs, plan);
    if (error !== undefined) throw error;
    if (plan.toLoad.has(found.later.key)) matchedAcrossKeys++;
  };
  if (defs.mixed && defs.common.length === 0) {
    const shapes = [...new Map(all.map((c) => [defs.definition(c.meta), defs.columns(c.meta)])).values()].map((k) => `(${k.join(', ')})`);
    logger.warn(
      { key_definitions: shapes },
      `the selected objects were archived under primary keys ${shapes.join(' and ')}, which share no column: versions of one row archived under both cannot be matched, and both load; if rows were restored and archived again across this key change, check them in the target`,
    );
  }

  let signature: string | undefined;
  try {
    const superseded = await loadSupersededLines(options.store, all, toLoad, id, {}, { columnMap: input.columnMap, onCrossDefinition: refuseUnsafeVersions });
    if (matchedAcrossKeys > 0) {
      logger.info({ keys: matchedAcrossKeys }, `keys archived under two primary-key definitions: their versions load oldest first, and --conflict ${options.conflict} lets the version archived last replace an older one of the same row (counted as conflicts)`);
    }
    // The manifest is held only from here to the object's batch: one sidecar GET more per object.
    const fetched = mapAhead(candidates, PREFETCH_OBJECTS, async (c) => {
      const [sidecar, body] = await Promise.all([options.store.get(metadataKeyFor(c.key)), options.store.get(c.key)]);
      return checkObject(c.key, body, rereadObjectMetadata(c.key, sidecar, c.meta, id));
    });
    for await (const { item, result: checked, error } of fetched) {
      if (error !== undefined || checked === undefined) {
        await rejected(item.key, error);
        continue;
      }
      if (table === undefined) {
        // Dry run into a table that does not exist yet: every row would be inserted, but superseded
        // versions. Checked against the sidecar only: nothing is staged, so the lines are not
        // matched to the manifest (docs/restore.md says so, and points at validate --deep).
        const left = superseded.get(item.key)?.size ?? 0;
        summary.rows.restored += item.meta.record_count - left;
        summary.rows.inserted += item.meta.record_count - left;
        summary.rows.superseded += left;
        summary.objects.restored++;
        continue;
      }
      // Objects of one column list but different column_map entries (before and after a rename) load with different plans.
      const sig = batchSignature(item.meta) + driftKey(item.meta);
      if (signature !== sig && batch.length > 0) await flush();
      signature = sig;
      const starts = lineStarts(checked.raw);
      const lines = starts.length - 1;
      // An object that fits in a batch starts a new one rather than being split: the final part of a
      // split object waits for every batch in flight (above), which kept the jobs from overlapping.
      if (batchSize > 0 && batchSize + lines > batchRows && (lines <= batchRows || !splitObjects)) await flush();
      let from = 0;
      do {
        const to = splitObjects ? Math.min(lines, from + batchRows - batchSize) : lines;
        const skip = superseded.get(item.key);
        batch.push({ object: checked, starts, from, to, last: to === lines, ...(skip === undefined ? {} : { superseded: skip }) });
        batchSize += to - from;
        from = to;
        if (batchSize >= batchRows) await flush();
      } while (from < lines);
    }
    if (batch.length > 0) await flush();
  } finally {
    // Never leave a batch running behind a failure: indexes are recreated and connections closed after this.
    await Promise.allSettled(running);
  }
  if (failure !== undefined) throw failure.error;
}
