/**
 * `auditlog restore` for one configured table, as a pipeline:
 *   select committed objects (date layout) → read sidecars, keeping summaries without their
 *   manifests → skip what the restore watermark says is done → resolve the target (create it if
 *   asked for a new one) → plan and report schema drift → [drop secondary indexes] → per object:
 *   read it and its sidecar again (the bytes selected), check integrity, load, record
 *   → [recreate indexes, always].
 * Nothing of an object is loaded before its checksums and record count are proven. Short
 * transactions, one per batch (load-objects.ts).
 */
import { runsOldestFirst } from './superseded-lines.js';
import type { Logger } from 'pino';
import type pg from 'pg';
import { quoteQualified } from '../db/quote-ident.js';
import { metadataKeyFor, tablePrefix } from '../core/archive-layout.js';
import { readBatchObjectState } from '../storage/batch-object-state.js';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { redactSecrets } from '../config/mask-secrets.js';
import { buildSessionSettings, createClient, endClient, isQueryDeadlineError, keepIdleSessionOpen, queryDeadlineMs, toConnectError, withoutQueryDeadline } from '../db/connect.js';
import { allowTemporaryTables, checkReplicationRole, checkWritable } from '../db/session-checks.js';
import { canCast, createTargetTable, dropIndexes, findEnumTypes, findInvalidType, listSecondaryIndexes, loadTargetTable, recreateIndexes, type IndexDefinition } from '../db/target-table.js';
import { selectTargets } from '../archive/run-archive.js';
import { withHoldDatabaseAliases } from '../compliance/run-holds.js';
import { isSidecarProblem, parseObjectMetadata, skippedCorruptMessage } from './check-object.js';
import { loadStoppedError, silentConnectionError } from './load-error.js';
import { loadObjects } from './load-objects.js';
import { mapAhead } from './map-ahead.js';
import type { Candidate, RestoreOptions, RestoreSummary } from './restore-options.js';
import { formatDrift, keyColumnsNotArchived, newTargetColumns, planSchemaDrift, type DriftPlan, type TargetColumn } from './schema-drift.js';
import { ColumnMapReport, columnMapEntries, columnMapFor, mappedColumns, type ColumnMapEntry, type ObjectColumnMap } from './column-map.js';
import { selectObjects } from './select-objects.js';
import { createSidecarSummarizer } from './sidecar-summary.js';
import { acquireRestoreLock, loadArchivedOverlaps } from './restore-lock.js';
import { checkRestoreHolds } from './restore-holds.js';
import { isRestoredInto, openRestoreWatermarks, recordingTargetOid, type RestoredObject, type RestoreTarget, type RestoreWatermarkStore } from './restore-watermarks.js';
import { checkStorageUnlessStopped } from '../storage/check-unless-stopped.js';

export type { RestoreOptions, RestoreSummary } from './restore-options.js';

/** Sidecars read at once when selecting objects. */
const METADATA_READS_IN_FLIGHT = 8;

export async function runRestore(options: RestoreOptions): Promise<RestoreSummary> {
  try {
    return await restoreTable(options);
  } catch (error) {
    // Monitoring, notifications and the audit trail must hear of a restore that stopped as a whole, as of an archive run.
    const e = isAuditlogError(error) ? error : new AuditlogError('INTERNAL', describeError(error), { cause: error });
    options.events?.emit('run:failed', { runId: options.runId, command: 'restore', error: { code: e.code, message: redactSecrets(e.message, options.secrets ?? []) } });
    throw error;
  }
}

async function restoreTable(options: RestoreOptions): Promise<RestoreSummary> {
  const started = Date.now();
  const dbs = selectTargets({ config: options.config, table: options.table, ...(options.database === undefined ? {} : { database: options.database }) });
  const db = dbs[0]!;
  const tableConfig = db.tables[0]!;
  if (dbs.length > 1 || db.tables.length > 1) {
    throw new AuditlogError('USAGE', `--table ${options.table} matches several configured tables; add --database and use schema.name (quote names with dots: "a.b".c or a."b.c")`);
  }
  const id = { database: db.name, schema: tableConfig.schema, table: tableConfig.name };
  const target = options.target ?? { schema: tableConfig.schema, table: tableConfig.name };
  const logger = options.logger.child({ database: db.name, table: `${id.schema}.${id.table}`, target: `${target.schema}.${target.table}` });
  const summary: RestoreSummary = {
    runId: options.runId,
    dryRun: options.dryRun,
    ...id,
    target,
    targetCreated: false,
    conflictStrategy: options.conflict,
    objects: { selected: 0, restored: 0, skippedByWatermark: 0 },
    uncommitted: [],
    corrupt: [],
    rows: { restored: 0, inserted: 0, conflicts: 0, skippedByTriggers: 0, superseded: 0 },
    drift: [],
    indexes: { dropped: [], recreated: [], failedToRecreate: [] },
    durationMs: 0,
    rowsPerSecond: 0,
    status: 'ok',
  };
  await options.requireArchive?.();
  await checkStorageUnlessStopped(options.store, options.signal, 'the restore had not started: nothing was loaded', { writeNothing: options.dryRun });
  const ref = { runId: options.runId, ...id };
  options.events?.emit('restore:started', { ...ref, target, dryRun: options.dryRun });
  const settings = buildSessionSettings(options.config.defaults);
  // Every session of the restore (load, --jobs, table locks, index rebuild): with the archive's
  // query deadline, or a connection left open but silent (a stalled proxy or firewall) held the
  // restore forever, past SIGTERM, which waits for the batch in flight (found as a known gap).
  const openClient = async (): Promise<pg.Client> => {
    const c = createClient({
      database: db,
      applicationName: options.config.application_name,
      settings,
      deadlineMs: queryDeadlineMs(settings),
      onBackgroundError: (error) => logger.warn({ err: redactSecrets(describeError(error), options.secrets ?? []) }, 'database connection error'),
    });
    try {
      await c.connect();
    } catch (error) {
      throw toConnectError(error, db, options.secrets);
    }
    // The load would otherwise pass the target's foreign keys and triggers by, as for the archive;
    // and a read-only session failed with "cannot execute CREATE TABLE … rerun to continue" (found by probing).
    try {
      const label = `${target.schema}.${target.table}`;
      if (options.dryRun) await allowTemporaryTables(c, db.name);
      else await checkWritable(c, db.name, { who: 'the restore', table: label, consequence: `nothing can be loaded into ${label}`, nothingDone: 'Nothing was restored' });
      await checkReplicationRole(c, db.name, "the target's foreign-key checks and triggers", 'Nothing was restored');
      // Each session idles while the restore reads storage (a large object, a slow bucket), and its
      // table-lock session between heartbeats: a database's idle_session_timeout ended them and the
      // restore failed with a bare connection error (found as a test flaky on a loaded machine).
      await keepIdleSessionOpen(c);
    } catch (error) {
      await endClient(c);
      throw error;
    }
    return c;
  };
  let client: pg.Client;
  try {
    client = await openClient();
  } catch (error) {
    const e = isAuditlogError(error) ? error : new AuditlogError('DB_CONNECT', describeError(error));
    options.events?.emit('restore:finished', { ...ref, summary: { ...summary, status: 'failed', error: { code: e.code, message: e.message }, durationMs: Date.now() - started } });
    throw error;
  }
  try {
    await restoreInto(client, openClient, options, summary, id, target, columnMapEntries(tableConfig.column_map), logger);
  } catch (error) {
    if (isAuditlogError(error) && error.exitCode === 2) {
      options.events?.emit('restore:finished', { ...ref, summary: { ...summary, status: 'failed', error: { code: error.code, message: error.message }, durationMs: Date.now() - started } });
      throw error;
    }
    // A database error outside a batch (a batch's own error names its objects: load-batch.ts):
    // "rerun to continue" only where a rerun can pass (load-error.ts).
    // The deadline's own error (no cause) outside a batch: worded as a batch's is (load-batch.ts).
    const e = isQueryDeadlineError(error) && error.cause === undefined ? silentConnectionError(error, target, []) : isAuditlogError(error) ? error : loadStoppedError(error, target);
    summary.status = 'failed';
    summary.error = { code: e.code, message: redactSecrets(e.message, options.secrets ?? []), details: e.details };
    logger.error({ code: e.code, err: summary.error.message }, 'restore failed');
  } finally {
    // Not a graceful end alone: it waits for the server to see it off, and a silent one never does.
    await endClient(client);
  }
  if (summary.corrupt.length > 0) summary.status = 'failed';
  if (summary.rows.skippedByTriggers > 0) {
    // The target's own rule, so not a failure; but these rows are in neither the table nor the count of conflicts.
    logger.warn({ rows: summary.rows.skippedByTriggers }, "rows a BEFORE INSERT/UPDATE trigger of the target returned NULL for: not inserted into the target table itself (dropped, or stored elsewhere such as a child table); the watermark counts their objects as restored");
  }
  // Found in review: both used to end with exit 0. An object in flight may hold rows whose delete
  // committed (a crash before its marker went): they exist nowhere else until reconciled.
  if (summary.status === 'ok' && summary.uncommitted.length > 0) {
    summary.status = 'failed';
    summary.error = {
      code: 'RESTORE_INCOMPLETE',
      message: `${summary.uncommitted.length} archive object(s) of a batch in flight were not restored (e.g. ${summary.uncommitted[0]}); run \`auditlog archive\` for this table (it reconciles them), then restore again`,
    };
  }
  if (summary.status === 'ok' && summary.indexes.failedToRecreate.length > 0) {
    summary.status = 'failed';
    summary.error = {
      code: 'RESTORE_INCOMPLETE',
      message: `index(es) ${summary.indexes.failedToRecreate.join(', ')} of ${target.schema}.${target.table} could not be recreated after the load; their definitions are in the log — run them by hand`,
    };
  }
  summary.durationMs = Date.now() - started;
  summary.rowsPerSecond = summary.durationMs > 0 ? Math.round((summary.rows.restored * 1000) / summary.durationMs) : 0;
  options.events?.emit('restore:finished', { ...ref, summary });
  return summary;
}

/** Target types an enum's label text goes into as it is (arrays of them too). */
const STRING_TYPE = /^(text|character varying(\(\d+\))?|character(\(\d+\))?|name|citext)(\[\])*$/;

async function restoreInto(
  client: pg.Client,
  openClient: () => Promise<pg.Client>,
  options: RestoreOptions,
  summary: RestoreSummary,
  id: { database: string; schema: string; table: string },
  target: RestoreTarget,
  columnMap: readonly ColumnMapEntry[],
  logger: Logger,
): Promise<void> {
  // Before anything is read or loaded, and in --dry-run too: overwrite/upsert must not change rows under a legal hold.
  const holdCheck = await checkRestoreHolds(client, {
    config: options.config,
    database: id.database,
    target,
    conflict: options.conflict,
    ...(options.holdSources === undefined ? {} : { holdSources: options.holdSources }),
    now: new Date(),
    withAliases: (holds) => withHoldDatabaseAliases({ config: options.config, logger: options.logger, ...(options.secrets === undefined ? {} : { secrets: options.secrets }) }, holds),
  });
  const prefix = tablePrefix(id.database, id.schema, id.table);
  const selected = await selectObjects(options.store, prefix, options.range);
  summary.uncommitted = selected.uncommitted;
  const inFlight = (key: string): void => {
    summary.uncommitted.push(key);
    logger.warn({ key }, 'object of a batch in flight (pending marker, or changed while listed): not restored; the next archive run reconciles it');
  };
  for (const key of selected.uncommitted) logger.warn({ key }, 'object has a pending marker (its batch was in flight): not restored; the next archive run reconciles it');
  summary.objects.selected = selected.committed.length + selected.withoutMetadata.length;
  const corrupt = (key: string, error: unknown): void => {
    if (options.onCorrupt === 'fail') throw error;
    const message = skippedCorruptMessage(error);
    summary.corrupt.push({ key, message });
    logger.error({ key, err: message }, 'corrupt archive object skipped');
  };
  // The objects and the markers are two listings, one after the other: an archive run working
  // meanwhile may have written a sidecar, committed and removed the marker, or given a batch up
  // (data, sidecar, marker deleted). Only what is still missing a sidecar now is corrupt; the rest
  // is committed after all, or in flight (found by probing a restore alongside an archive run).
  const settle = async (key: string): Promise<'committed' | 'in-flight' | 'missing-sidecar'> => {
    const now = await readBatchObjectState(options.store, prefix, key);
    if (now.state === 'committed') return 'committed';
    return now.state === 'missing-metadata' ? 'missing-sidecar' : 'in-flight';
  };
  /** An object that failed a check: a sidecar problem may be an archive run at work on its batch (settle). */
  const rejected = async (key: string, error: unknown): Promise<void> => {
    if (!isAuditlogError(error) || error.code !== 'RESTORE_CORRUPT_OBJECT') throw error;
    if (isSidecarProblem(error) && (await settle(key)) === 'in-flight') inFlight(key);
    else corrupt(key, error);
  };
  for (const key of selected.withoutMetadata) {
    const state = await settle(key);
    if (state === 'committed') selected.committed.push(key);
    else if (state === 'in-flight') inFlight(key);
    else corrupt(key, parseObjectMetadataError(key, id));
  }

  // Resolved before the watermark is read: its entries count only for the table they were loaded
  // into, and none while the target does not exist (found by probing: a dropped --target-table was
  // "already restored" and never created again).
  let table = await loadTargetTable(client, target.schema, target.table);
  /** This run created the target: dropped again if the load fails before a row is in it. */
  let createdHere = false;
  let watermarks = openRestoreWatermarks(options.config, options.store, client);
  const done = options.ignoreWatermark ? new Map<string, RestoredObject>() : await watermarks.load(id, target);
  let candidates: Candidate[] = [];
  const restored: Candidate[] = [];
  // Each sidecar is parsed (and so validated) here, but only its summary is kept: the manifests
  // of every selected object at once grew the peak RSS with the table (DESIGN.md §7).
  const summarize = createSidecarSummarizer();
  const sidecars = mapAhead(selected.committed, METADATA_READS_IN_FLIGHT, async (key) => {
    const body = await options.store.get(metadataKeyFor(key));
    return summarize(parseObjectMetadata(key, body, id), body!);
  });
  for await (const { item: key, result: meta, error } of sidecars) {
    if (error !== undefined || meta === undefined) {
      await rejected(key, error);
      continue;
    }
    if (isRestoredInto(done.get(key), meta.sha256_compressed, table?.oid)) {
      summary.objects.skippedByWatermark++;
      restored.push({ key, meta });
      continue;
    }
    candidates.push({ key, meta });
  }
  // Oldest run first: when a key was archived twice (restored, then archived again, always by a
  // later run), the older versions are left out (superseded-lines.ts); this order backs that up.
  // Within a run the listing (day, then time-of-day) order stays.
  candidates = runsOldestFirst(candidates);
  if (candidates.length === 0) {
    logger.info({ skippedByWatermark: summary.objects.skippedByWatermark }, 'nothing to restore');
    return;
  }

  // Each object gets the column_map entries that hold for it (column-map.ts), and one drift plan
  // per column list and map: objects archived before and after a rename load differently.
  const columnMapOf = (meta: Pick<Candidate['meta'], 'columns' | 'created_at'>): ObjectColumnMap => columnMapFor(columnMap, meta);
  const driftKey = (meta: Pick<Candidate['meta'], 'columns' | 'created_at'>): string => JSON.stringify([meta.columns, columnMapOf(meta).map]);
  /** Plans every candidate against `columns` (refusing what cannot load) and sets the drift report. */
  const planDrifts = (columns: readonly TargetColumn[]): Map<string, DriftPlan> => {
    const plans = new Map<string, DriftPlan>();
    const report = new ColumnMapReport();
    const lines: string[] = [];
    for (const c of candidates) {
      const own = columnMapOf(c.meta);
      report.add(columnMap, { key: c.key, created_at: c.meta.created_at }, own);
      const signature = driftKey(c.meta);
      if (plans.has(signature)) continue;
      const drift = planSchemaDrift(c.meta.columns, columns, own.map, { strict: options.strictSchema, label: `${target.schema}.${target.table}`, enumTypes });
      plans.set(signature, drift);
      for (const line of formatDrift(drift)) if (!lines.includes(line)) lines.push(line);
    }
    report.checkEras();
    summary.drift = [...lines, ...report.lines()];
    return plans;
  };

  const invalid = await findInvalidType(client, candidates.flatMap((c) => c.meta.columns.map((col) => col.type)));
  if (invalid !== undefined) {
    throw new AuditlogError('SCHEMA_DRIFT', `archived type ${invalid} does not exist in database "${id.database}" (create the type or install its extension on the target first)`, { details: { type: invalid } });
  }
  const enumTypes = await findEnumTypes(client, candidates.flatMap((c) => c.meta.columns.map((col) => col.type)));
  if (table === undefined) {
    if (options.target === undefined) {
      throw new AuditlogError('TABLE_NOT_FOUND', `table ${target.schema}.${target.table} not found in database "${id.database}"; create it, or restore into a new table with --target-table SCHEMA.NAME`);
    }
    const created = newTargetColumns(
      candidates.map((c) => mappedColumns(c.meta, columnMapOf(c.meta).map)),
      `${target.schema}.${target.table}`,
      candidates.map((c) => c.key),
    );
    // Planned against the table as it will be created, before creating it: what would refuse the
    // load then refuses now, in --dry-run too, and leaves no half-made table behind (found by probing).
    planDrifts(created.columns.map((c) => ({ name: c.name, type: c.type, baseType: c.type, generated: false, identity: null, hasDefault: false, notNull: created.key.includes(c.name) })));
    if (!options.dryRun) {
      await createTargetTable(client, target.schema, target.table, created.columns, created.key);
      table = await loadTargetTable(client, target.schema, target.table);
      createdHere = true;
    }
    summary.targetCreated = true;
    logger.info({ columns: created.columns.length }, options.dryRun ? 'target table would be created' : 'target table created with the archived columns');
    // Found by probing: a line damaged consistently with its sidecar passed such a dry run.
    if (options.dryRun) logger.warn('dry run into a table that does not exist yet: each object is checked against its sidecar, but its lines are not staged and matched to their manifest keys as a real restore does; run auditlog validate --deep for that');
  }
  if (table !== undefined) watermarks = recordingTargetOid(watermarks, table.oid);
  const drifts = new Map<string, DriftPlan>();
  if (table?.rowSecurityActive === true) {
    const role = (await client.query<{ role: string }>('SELECT current_user::text AS role')).rows[0]!.role;
    throw new AuditlogError(
      'DB_PRIVILEGE',
      `row-level security applies to role ${role} on ${target.schema}.${target.table} (database "${id.database}"): its policies would filter the restore's conflict checks and inserts; restore with a role that has BYPASSRLS or owns the table without FORCE ROW LEVEL SECURITY, or into a new --target-table. Nothing was restored`,
      { details: { database: id.database, table: `${target.schema}.${target.table}`, role } },
    );
  }
  /**
   * Whether the target recognizes a restored row already in it by its key. Where it cannot (no key,
   * or one the archive has no value for), an object is never split over two transactions: a
   * failure between two parts left the first loaded but unrecorded, and the rerun, which no
   * conflict stops, loaded it again (found by probing a target made with CREATE TABLE … (LIKE …)).
   */
  let recognizesRows = true;
  if (table !== undefined) {
    if (table.key.length === 0) recognizesRows = false;
    if (options.conflict !== 'fail' && table.key.length === 0) {
      // Without a key nothing can conflict: skip would insert every row again, silently (found by probing).
      throw new AuditlogError(
        'SCHEMA_DRIFT',
        `--conflict ${options.conflict} needs a primary key or a unique index over NOT NULL columns on ${target.schema}.${target.table}, so that a row already there is recognized; add one, or restore with --conflict fail (the restore watermark still skips objects restored before)`,
      );
    }
    if (options.conflict !== 'fail' && table.keyDeferrable) {
      // ON CONFLICT refuses a deferrable arbiter: every batch failed with PostgreSQL's own words,
      // while --dry-run (which runs no INSERT) reported success (found by probing).
      throw new AuditlogError(
        'SCHEMA_DRIFT',
        `--conflict ${options.conflict} cannot load into ${target.schema}.${target.table}: its key (${table.key.join(', ')}) is a DEFERRABLE constraint, which PostgreSQL's ON CONFLICT does not accept; use --conflict fail, or restore into a new --target-table. Nothing was restored`,
        { details: { table: `${target.schema}.${target.table}`, key: table.key } },
      );
    }
    const plans = planDrifts(table.columns);
    const notArchived = keyColumnsNotArchived(table.key, plans.values());
    if (notArchived.length > 0) {
      recognizesRows = false;
      if (options.conflict !== 'fail') {
        // ON CONFLICT on a key the target fills itself never fires: skip "kept the existing rows"
        // while inserting every row again (found by probing a target with its own bigserial key).
        throw new AuditlogError(
          'SCHEMA_DRIFT',
          `--conflict ${options.conflict} cannot recognize a row already in ${target.schema}.${target.table}: its key (${table.key.join(', ')}) has column(s) ${notArchived.map((c) => `"${c}"`).join(', ')} the archive has no value for, which the target fills itself, so every row would be inserted again; give the target a primary key or unique index over archived columns, or restore with --conflict fail (the restore watermark still skips objects restored before). Nothing was restored`,
          { details: { table: `${target.schema}.${target.table}`, key: table.key, notArchived } },
        );
      }
    }
    for (const [signature, drift] of plans) {
      for (const change of drift.typeChanges) {
        const column = drift.columns.find((c) => c.target === change.target)!;
        // An enum staged as text casts to another enum (text → enum), which enum → enum does not;
        // but text casts to nearly anything, so only a string or enum target counts as castable
        // that way: an enum going into boolean or integer must still be refused here, before
        // loading, as enum → boolean is (found in review).
        const viaText = column.stagedType !== undefined && (STRING_TYPE.test(column.targetBaseType) || (await findEnumTypes(client, [column.targetBaseType])).size > 0);
        if (!viaText && !(await canCast(client, change.from, column.targetBaseType))) {
          throw new AuditlogError('SCHEMA_DRIFT', `archived column "${change.archived}" has type ${change.from}, which PostgreSQL cannot cast to ${change.to} of "${change.target}"; map it to another column in column_map or restore into a new --target-table`, {
            details: { column: change.target, from: change.from, to: change.to },
          });
        }
      }
      drifts.set(signature, drift);
    }
  }
  for (const line of summary.drift) logger.warn({ drift: line }, 'schema drift');

  // The indexes dropped so far (or being dropped): recreated, where missing, whatever happens after the first DROP.
  const indexes: IndexDefinition[] = [];
  if (options.dropIndexes && table?.partitioned === true) {
    // A partitioned index's definition recreates only the parent (ON ONLY), not its partitions' indexes.
    throw new AuditlogError('USAGE', `--drop-indexes does not support the partitioned table ${target.schema}.${target.table}; restore without it`);
  }
  // The live table, or a configured table sharing the target's partition tree: an archive run
  // alongside would take the restored rows straight back out (restore-lock.ts).
  const archived = !options.dryRun && table !== undefined ? await loadArchivedOverlaps(client, options.config, id.database, table.oid) : [];
  const lock = archived.length > 0 ? await acquireRestoreLock({ config: options.config, database: id.database, target, tables: archived, runId: options.runId, openClient, logger }) : undefined;
  try {
    try {
      if (options.dropIndexes && !options.dryRun && table !== undefined) {
        const found = await listSecondaryIndexes(client, table.oid);
        // Logged before dropping: if the process is killed, these are what an operator recreates.
        for (const index of found) logger.info({ index: index.name, definition: index.definition }, 'dropping secondary index for the load');
        // Inside the try: a drop that fails part-way (found by probing) still gets back the ones before it.
        await dropIndexes(client, target.schema, found, (index) => indexes.push(index));
      }
      await loadWithWatermarks(watermarks, logger, () =>
        loadObjects(client, openClient, { options, summary, id, target, table, splitObjects: recognizesRows, candidates, restored, drifts, driftKey, columnMap: (meta) => columnMapOf(meta).map, watermarks, logger, corrupt, rejected, ...(holdCheck === undefined ? {} : { holdCheck }) }),
      ).catch(async (error: unknown) => {
        if (createdHere) await dropIfStillEmpty(client, target, logger);
        throw error;
      });
    } finally {
      summary.indexes.dropped = indexes.map((i) => i.name);
      if (indexes.length > 0) {
        // Always, also when the load failed: the target must get back every index it had.
        await client.query('ROLLBACK').catch(() => undefined);
        const failed = await recreateIndexesFresh(client, openClient, target.schema, indexes, logger);
        summary.indexes.failedToRecreate = failed;
        summary.indexes.recreated = indexes.map((i) => i.name).filter((n) => !failed.includes(n));
        for (const index of indexes.filter((i) => failed.includes(i.name))) logger.error({ index: index.name, definition: index.definition }, 'could not recreate index: run this definition by hand');
      }
    }
  } finally {
    await lock?.release().catch((error: unknown) => logger.warn({ err: describeError(error) }, 'could not release the archive lock of the target; it ends with the connection'));
  }
  const lost = lock?.lost();
  if (lost !== undefined) {
    throw new AuditlogError(
      'LOCK_LOST',
      `lost the archive lock of ${target.schema}.${target.table} during the restore (${lost}): an archive run may have started and archived restored rows again; check \`auditlog status\` and the table, then restore again with --ignore-watermark --conflict skip`,
      { details: { table: `${target.schema}.${target.table}`, reason: lost } },
    );
  }
}

/**
 * A target this run created, which a refusal before the first batch (key definitions, a damaged
 * first object) left empty: dropped, not left behind for the operator to find (found in review).
 * One with rows (batches committed before the failure) is kept: the rerun continues into it.
 */
async function dropIfStillEmpty(client: pg.Client, target: RestoreTarget, logger: Logger): Promise<void> {
  const name = quoteQualified(target.schema, target.table);
  try {
    await client.query('ROLLBACK').catch(() => undefined);
    // As text: the restore's sessions parse no value (connect.ts).
    const r = await client.query<{ empty: string }>(`SELECT (NOT EXISTS (SELECT 1 FROM ${name}))::text AS empty`);
    if (r.rows[0]?.empty !== 'true') return;
    await client.query(`DROP TABLE ${name}`);
    logger.info({ target: `${target.schema}.${target.table}` }, 'dropped the target table this restore created: nothing was loaded into it');
  } catch (error) {
    logger.warn({ err: describeError(error), target: `${target.schema}.${target.table}` }, 'could not drop the empty target table this restore created; drop it by hand');
  }
}

/**
 * The load, then the restore watermark's entries not written yet (the storage variant writes at
 * most every few seconds), also when the load failed: the objects restored before the failure are
 * recorded. A failure to write them fails a load that succeeded; after a failed load it is only
 * logged, so the load's own error is the one reported.
 */
async function loadWithWatermarks(watermarks: RestoreWatermarkStore, logger: Logger, load: () => Promise<void>): Promise<void> {
  let failed = false;
  try {
    await load();
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    try {
      await watermarks.flush();
    } catch (error) {
      if (!failed) throw error;
      logger.warn({ err: describeError(error) }, 'could not record the objects restored before the failure in the restore watermark: a rerun loads them again (use --conflict skip)');
    }
  }
}

/**
 * On a connection of its own (the load's may be the one that failed) and without the session's
 * statement_timeout, which a large table's CREATE INDEX easily outlasts. The load's connection
 * is the fallback when no new one can be opened (statement_timeout and the deadline stay on it).
 *
 * The query deadline is off for the CREATE INDEX statements only: PostgreSQL sends nothing while
 * one runs, for as long as it takes, so a deadline could not tell a long build from a dead link
 * and would cut every build longer than statement_timeout + 5 s short — the very case the
 * connection lifts statement_timeout for. Connecting, the session checks, the SET and each
 * index's existence check keep the deadline. A build on a link that goes silent waits until TCP
 * keepalive notices a vanished peer, or a second SIGTERM/SIGINT ends the process (the definitions
 * are logged before the drop, and the indexes were dropped on purpose: nothing is lost).
 */
async function recreateIndexesFresh(client: pg.Client, openClient: () => Promise<pg.Client>, schema: string, indexes: IndexDefinition[], logger: Logger): Promise<string[]> {
  let fresh: pg.Client | undefined;
  try {
    fresh = await openClient();
    await fresh.query('SET statement_timeout = 0');
  } catch (error) {
    logger.warn({ err: describeError(error) }, 'could not open a connection to recreate the indexes; using the load connection');
    if (fresh !== undefined) await endClient(fresh);
    fresh = undefined;
  }
  try {
    if (fresh === undefined) return await recreateIndexes(client, schema, indexes);
    const unbounded = fresh;
    return await recreateIndexes(unbounded, schema, indexes, (definition) => withoutQueryDeadline(unbounded, () => unbounded.query(definition)));
  } finally {
    if (fresh !== undefined) await endClient(fresh);
  }
}

function parseObjectMetadataError(key: string, id: { database: string; schema: string; table: string }): unknown {
  try {
    parseObjectMetadata(key, undefined, id);
  } catch (error) {
    return error;
  }
  return undefined;
}
