/**
 * An archive run over every configured database and table (or the ones selected). Tables run in
 * order; a failing table is reported and the run goes on with the next one. Databases run one
 * after another, or several at once when `parallel_databases` is set.
 */
import type { Logger } from 'pino';
import type { Config, DatabaseConfig, TableConfig } from '../config/schema.js';
import { redactSecrets } from '../config/mask-secrets.js';
import { AuditlogError, describeError, isAuditlogError, stopRequestedError } from '../core/errors.js';
import { buildSessionSettings, checkConnection, connectLockClient, createPool } from '../db/connect.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { BatchPhase } from './archive-context.js';
import { openStateStores } from '../state/state-stores.js';
import { archiveTable } from './archive-table.js';
import { FallbackSpool } from './local-fallback.js';
import { localSchema, resolveLockTimings } from '../config/schema.js';
import { LocalObjectStore } from '../storage/local-object-store.js';
import { failedTableSummary, type RunSummary, type TableSummary } from './table-summary.js';
import { cleanupInterruptedWrites } from '../storage/cleanup-interrupted.js';
import { checkStorageUnlessStopped } from '../storage/check-unless-stopped.js';
import type { RunEvents } from '../core/run-events.js';
import { holdApplies, holdDatabaseMatches, holdLabel, isExpired, placeHold, splitHoldTableName, type LegalHold, type PartitionTree } from '../compliance/legal-hold.js';
import { loadHoldTree } from '../db/partition-tree.js';
import type pg from 'pg';
import { loadDatabaseHolds, loadRunHolds, withHoldDatabaseAliases, type HoldSnapshot, type HoldSourceOptions } from '../compliance/run-holds.js';
import { admitTable } from './admit-table.js';

export interface RunArchiveOptions {
  config: Config;
  store: ObjectStore;
  logger: Logger;
  runId: string;
  toolVersion: string;
  dryRun?: boolean;
  database?: string;
  table?: string;
  progressIntervalMs?: number;
  /** Values never to print (passwords, keys): scrubbed from driver errors. */
  secrets?: readonly string[];
  onPhase?: (phase: BatchPhase) => void | Promise<void>;
  /** Monitoring, notifications and the audit trail listen here (src/core/run-events.ts). */
  events?: RunEvents;
  /** How to reach the legal-hold sources (the API credential comes from the CLI's environment). */
  holdSources?: HoldSourceOptions;
  now?: () => Date;
  /** Count each table's rows first, for progress percent and ETA (`table:counted`). */
  countRows?: boolean;
  /** Aborted (SIGTERM): no new table and no new batch starts; batches in flight finish or roll back. */
  signal?: AbortSignal;
  /**
   * A one-shot run: a stop leaves its work unfinished, so each table it stopped or never started
   * is reported failed (STOPPED), with the audit record and notification of a failed run. The
   * daemon's stop is its normal end: its tables finish as archived, marked `stopped`.
   */
  failOnStop?: boolean;
}

export async function runArchive(options: RunArchiveOptions): Promise<RunSummary> {
  const started = Date.now();
  const databases = selectTargets(options);
  const dryRun = options.dryRun ?? false;
  emitRunStarted(options, databases, started);
  try {
    return await runTables(options, databases, dryRun, started);
  } catch (error) {
    // Monitoring, notifications and the audit trail must hear of a run that stopped as a whole too.
    emitRunFailed(options, error);
    throw error;
  }
}

export type RunReportOptions = Pick<RunArchiveOptions, 'config' | 'database' | 'table' | 'runId' | 'dryRun' | 'events' | 'secrets'>;

/**
 * A run that could not start before {@link runArchive} (its audit trail could not be opened, so
 * nothing may be archived): reported as a run that stopped at its start — run:started, then
 * run:failed — exactly as one that found the storage unreachable itself, so notifications and
 * metrics tell the same outage the same way. A --database/--table that is not configured throws
 * its USAGE error instead (nothing is reported: that is no run).
 */
export function reportRunNotStarted(options: RunReportOptions, error: unknown): void {
  emitRunStarted(options, selectTargets(options), Date.now());
  emitRunFailed(options, error);
}

function emitRunStarted(options: RunReportOptions, databases: DatabaseConfig[], started: number): void {
  const tables = databases.flatMap((d) => d.tables.map((t) => ({ database: d.name, schema: t.schema, table: t.name })));
  options.events?.emit('run:started', { runId: options.runId, command: 'archive', dryRun: options.dryRun ?? false, at: new Date(started).toISOString(), tables });
}

function emitRunFailed(options: RunReportOptions, error: unknown): void {
  const e = isAuditlogError(error) ? error : new AuditlogError('INTERNAL', describeError(error), { cause: error });
  options.events?.emit('run:failed', { runId: options.runId, command: 'archive', error: { code: e.code, message: redactSecrets(e.message, options.secrets ?? []) } });
}

async function runTables(options: RunArchiveOptions, databases: DatabaseConfig[], dryRun: boolean, started: number): Promise<RunSummary> {
  // Unreachable or wrong storage fails every table before anything is read or deleted (I6).
  try {
    // A dry run writes nothing: not even the probe file, nor the archive directory of a first run.
    await checkStorageUnlessStopped(options.store, options.signal, 'no table was started; the next run archives them', { writeNothing: dryRun });
  } catch (error) {
    if (!isAuditlogError(error) || error.code !== 'STOPPED') throw error;
    // Stopped during the check: nothing was read. A one-shot run reports each table as not
    // started (failed, STOPPED); the daemon's stop ends its run with no table.
    const notStarted = options.failOnStop === true ? databases.flatMap((db) => db.tables.map((t) => finished(options, notStartedSummary(options, db.name, t)))) : [];
    return finishRun(options, notStarted, dryRun, started, true);
  }
  if (!dryRun) await logConditionalCreate(options);
  if (!dryRun && options.config.s3?.multipart_cleanup_at_start === true) await sweepAtStart(options, options.config.s3.multipart_orphan_age_hours);
  const holds = await withHoldDatabaseAliases(options, await loadRunHolds(options.config, options.holdSources));
  if (holds.unavailable !== undefined) options.logger.error({ code: holds.unavailable.code, err: holds.unavailable.message }, 'legal holds unavailable: no table is archived (fail closed)');
  // Holds written down but switched off protect nothing: said on every run (as holds list says
  // it), since their rows are archived and deleted like any other (found by probing: not a word).
  const off = options.config.legal_holds;
  if (!off.enabled && (off.holds.length > 0 || off.check_table !== undefined || off.api !== undefined)) {
    options.logger.warn(
      { holds_in_config: off.holds.length, check_table: off.check_table !== undefined, api: off.api !== undefined },
      'legal_holds.enabled is false: the configured holds (and any holds table or API) are not applied, and the rows they name are archived and deleted; set it to true, or remove them',
    );
  }
  // A hold for a database that is not configured protects nothing: most likely a misspelt name
  // (`holds list` reports it too). The per-database check below never sees it, so say it here.
  const now = (options.now ?? (() => new Date()))();
  for (const hold of holds.holds) {
    if (hold.database === undefined || isExpired(hold, now)) continue;
    if (options.config.databases.some((d) => holdDatabaseMatches(hold.database!, d.name))) continue;
    options.logger.warn({ hold: holdLabel(hold), hold_database: hold.database }, 'an active legal hold names no configured database: check its database name (see auditlog holds list)');
  }

  const placedHolds = new Set<LegalHold>();
  const perDatabase = (db: DatabaseConfig): Promise<TableSummary[]> => archiveDatabase(options, db, dryRun, holds, placedHolds);
  const results: TableSummary[][] = options.config.parallel_databases
    ? await mapWithLimit(databases, options.config.max_parallel_databases, perDatabase)
    : await mapWithLimit(databases, 1, perDatabase);
  // A hold without a database that no database placed (through a partition tree), nor names by a
  // configured table's name (a database that could not be reached places nothing): it protects nothing.
  for (const hold of holds.holds) {
    if (hold.database !== undefined || isExpired(hold, now) || placedHolds.has(hold)) continue;
    if (options.config.databases.some((d) => d.tables.some((t) => holdApplies(hold, { database: d.name, schema: t.schema, table: t.name })))) continue;
    options.logger.warn({ hold: holdLabel(hold) }, 'an active legal hold names no configured table (nor its parent or a partition of it): check its table name (see auditlog holds list)');
  }
  const tables = results.flat();
  return finishRun(options, tables, dryRun, started, tables.some((t) => t.stopped === true));
}

function finishRun(options: RunArchiveOptions, tables: TableSummary[], dryRun: boolean, started: number, stopped: boolean): RunSummary {
  const summary: RunSummary = { runId: options.runId, dryRun, tables, failed: tables.filter((t) => t.status === 'failed').length, held: tables.filter((t) => t.status === 'held').length, durationMs: Date.now() - started };
  if (stopped) {
    const e = stopRequestedError(options.signal, 'no further batch or table started; the rest is archived by the next run');
    summary.stopped = { code: e.code, message: e.message };
  }
  options.events?.emit('run:finished', { runId: options.runId, command: 'archive', summary });
  return summary;
}

/**
 * Probes (once per store; each table's batches reuse the answer) whether writes can be
 * create-only, and says so once: it decides whether a late or repeated write can overwrite an
 * object (docs/format.md "Commit protocol"). Never fails the run.
 */
async function logConditionalCreate(options: RunArchiveOptions): Promise<void> {
  const support = await options.store.conditionalCreate?.();
  if (support === undefined) {
    options.logger.info('storage has no create-only writes: each batch checks its key with HEAD before writing');
    return;
  }
  options.logger.info({ conditional_create: support.supported, reason: redactSecrets(support.reason, options.secrets ?? []) }, support.supported ? 'storage supports create-only writes: objects are written with If-None-Match, never over an existing one' : 'storage has no create-only writes: each batch checks its key with HEAD before writing');
}

/**
 * Multipart uploads a killed run left behind cost storage until aborted. Nothing here decides
 * what is archived or deleted, so a failure is a warning and the run goes on.
 */
async function sweepAtStart(options: RunArchiveOptions, olderThanHours: number): Promise<void> {
  try {
    const run = await cleanupInterruptedWrites(options.store, { olderThanHours, dryRun: false });
    for (const item of run.items) {
      const fields = { key: item.key, upload_id: item.uploadId, since: item.since, older_than_hours: olderThanHours };
      if (item.action === 'failed') options.logger.warn({ ...fields, err: redactSecrets(item.error ?? '', options.secrets ?? []) }, `could not remove an orphaned ${item.kind}`);
      else options.logger.info(fields, item.kind === 'multipart-upload' ? 'aborted an orphaned multipart upload' : `removed an orphaned ${item.kind}`);
    }
  } catch (error) {
    options.logger.warn({ err: redactSecrets(describeError(error), options.secrets ?? []) }, 'cleanup of orphaned multipart uploads failed; continuing (run `auditlog cleanup` later, or rely on a bucket lifecycle rule)');
  }
}

/** The configured databases, narrowed to `--database` and `--table` (a USAGE error names what is configured). */
export function selectTargets(options: Pick<RunArchiveOptions, 'config' | 'database' | 'table'>): DatabaseConfig[] {
  let dbs = options.config.databases;
  if (options.database !== undefined) {
    dbs = dbs.filter((d) => d.name === options.database);
    if (dbs.length === 0) {
      throw new AuditlogError('USAGE', `--database ${options.database} is not in the configuration (configured: ${options.config.databases.map((d) => d.name).join(', ')})`);
    }
  }
  if (options.table !== undefined) {
    const wanted = options.table;
    // Quoted parts pick one table where dotted names read alike (`"a.b".c` vs `a."b.c"`, both `a.b.c`).
    const quoted = wanted.includes('"') ? splitHoldTableName(wanted) : undefined;
    const matches = (t: { name: string; schema: string }): boolean =>
      quoted !== undefined
        ? quoted.length === 2
          ? t.schema === quoted[0] && t.name === quoted[1]
          : t.name === quoted[0]
        : t.name === wanted || `${t.schema}.${t.name}` === wanted;
    dbs = dbs.map((d) => ({ ...d, tables: d.tables.filter(matches) })).filter((d) => d.tables.length > 0);
    if (dbs.length === 0) throw new AuditlogError('USAGE', `--table ${wanted} is not in the configuration (use the table name or schema.name as configured)`);
  }
  return dbs;
}

async function archiveDatabase(options: RunArchiveOptions, db: DatabaseConfig, dryRun: boolean, runHolds: HoldSnapshot, placedHolds: Set<LegalHold>): Promise<TableSummary[]> {
  if (options.signal?.aborted === true && options.failOnStop === true) return db.tables.map((t) => finished(options, notStartedSummary(options, db.name, t)));
  const logger = options.logger.child({ database: db.name });
  const settings = buildSessionSettings(options.config.defaults);
  const poolOptions = {
    database: db,
    applicationName: options.config.application_name,
    settings,
    onBackgroundError: (error: Error) => logger.warn({ err: redactSecrets(describeError(error), options.secrets ?? []) }, 'database connection error'),
  };
  const pool = createPool(poolOptions);
  try {
    try {
      await checkConnection(pool, db, options.secrets);
    } catch (error) {
      const e = error as AuditlogError;
      logger.error({ code: e.code, err: e.message }, 'database unreachable');
      return db.tables.map((t) => finished(options, failedTableSummary(db.name, t.schema, t.name, e)));
    }
    const fallback = openFallbackSpool(options.config, logger);
    const holds = await loadDatabaseHolds(runHolds, options.config, pool, db.name);
    warnUnplacedHolds(options, db, holds, placedHolds, await loadWarningTrees(pool, options, db, holds, logger), logger);
    const out: TableSummary[] = [];
    for (const table of db.tables) {
      if (options.signal?.aborted === true) {
        if (options.failOnStop === true) out.push(...db.tables.slice(out.length).map((t) => finished(options, notStartedSummary(options, db.name, t))));
        break;
      }
      const started = await startTableHolds(pool, options, runHolds, db, table, logger);
      if (started instanceof AuditlogError) {
        out.push(finished(options, failedTableSummary(db.name, table.schema, table.name, started)));
        continue;
      }
      const { holds: tableHolds, tree } = started;
      const admitted = admitTable({ config: options.config, runId: options.runId, ...(options.events === undefined ? {} : { events: options.events }), now: options.now ?? (() => new Date()) }, db.name, table, tableHolds, logger, tree);
      if ('summary' in admitted) {
        out.push(finished(options, admitted.summary));
        continue;
      }
      const summary = await archiveTable({
        database: db.name,
        table,
        otherTables: db.tables.filter((t) => t !== table),
        defaults: options.config.defaults,
        pool,
        openLockClient: () => connectLockClient(poolOptions),
        lockTimings: resolveLockTimings(options.config.lock),
        ...(options.config.local === undefined ? {} : { lockDir: options.config.local.path }),
        store: options.store,
        stateStores: openStateStores(options.config, options.store, pool),
        checkpoints: options.config.checkpoints,
        ...(fallback === undefined ? {} : { fallback }),
        runId: options.runId,
        toolVersion: options.toolVersion,
        sessionSettings: { ...settings },
        logger,
        dryRun,
        progressIntervalMs: options.progressIntervalMs ?? 5_000,
        ...(options.onPhase === undefined ? {} : { onPhase: options.onPhase }),
        ...(options.events === undefined ? {} : { events: options.events }),
        recordHolds: admitted.recordHolds,
        ...(tableHolds.enabled ? { holdSources: { fixed: tableHolds.holds.filter((h) => h.source !== 'check_table'), ...(options.config.legal_holds.check_table === undefined ? {} : { checkTable: options.config.legal_holds.check_table }) } } : {}),
        ...(admitted.requiredSse === undefined ? {} : { requiredSse: admitted.requiredSse }),
        countRows: options.countRows === true,
        ...(options.signal === undefined ? {} : { shouldStop: () => options.signal!.aborted }),
        ...(options.failOnStop === true ? { stopError: () => stopRequestedError(options.signal, 'no further batch started; the rest of the table is archived by the next run') } : {}),
      });
      if (admitted.holdInfo !== undefined) summary.holds = admitted.holdInfo;
      out.push(finished(options, summary));
    }
    return out;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/**
 * The holds of a table and its partition tree, read when the table starts rather than when its
 * database does (found in review): a hold placed in the holds table, or a partition attached with a
 * hold on it, while an earlier table ran, is applied from this table's first batch on. Inside each
 * delete both are read again (archive-table.ts, holdRecheck). A tree that cannot be read is an
 * error of the table (fail closed); holds that cannot be read fail it in admitTable.
 */
async function startTableHolds(pool: pg.Pool, options: RunArchiveOptions, runHolds: HoldSnapshot, db: DatabaseConfig, table: TableConfig, logger: Logger): Promise<{ holds: HoldSnapshot; tree?: PartitionTree } | AuditlogError> {
  const holds = await loadDatabaseHolds(runHolds, options.config, pool, db.name);
  if (holds.unavailable !== undefined && runHolds.unavailable === undefined) logger.error({ table: `${table.schema}.${table.name}`, code: holds.unavailable.code, err: holds.unavailable.message }, 'legal holds unavailable: table not archived (fail closed)');
  if (!holds.enabled || holds.unavailable !== undefined) return { holds };
  try {
    const tree = await loadHoldTree(pool, db.name, table.schema, table.name);
    return { holds, ...(tree === undefined ? {} : { tree }) };
  } catch (error) {
    const e = error as AuditlogError;
    logger.error({ table: `${table.schema}.${table.name}`, code: e.code, err: e.message }, 'legal holds cannot be placed: table not archived (fail closed)');
    return e;
  }
}

/**
 * A hold that names no configured table protects nothing: most likely a misspelt name. Say so on
 * every run rather than archive quietly past it (found in review). One without a database may name
 * a table of another database: judged once every database has run (runTables). A configured table
 * that --table left out of this run counts all the same, through its partition tree too.
 */
function warnUnplacedHolds(options: RunArchiveOptions, db: DatabaseConfig, holds: HoldSnapshot, placedHolds: Set<LegalHold>, trees: WarningTrees, logger: Logger): void {
  const now = (options.now ?? (() => new Date()))();
  for (const hold of holds.holds) {
    if (hold.database !== undefined && !holdDatabaseMatches(hold.database, db.name)) continue;
    if (isExpired(hold, now)) continue;
    // A table whose tree could not be read might be reached through it: no warning it could make untrue.
    const reaches = (t: TableConfig): boolean => trees.get(t) === UNREADABLE || placeHold(hold, { database: db.name, schema: t.schema, table: t.name }, treeOf(trees, t)) !== undefined;
    if (db.tables.some(reaches)) {
      placedHolds.add(hold);
      continue;
    }
    if (hold.database === undefined) continue;
    if (configuredTables(options, db).some(reaches)) continue;
    logger.warn({ hold: holdLabel(hold) }, 'an active legal hold names no configured table (nor its parent or a partition of it): check its table name (see auditlog holds list)');
  }
}

/** Every table configured for the database, also those --table left out of this run. */
function configuredTables(options: RunArchiveOptions, db: DatabaseConfig): TableConfig[] {
  return options.config.databases.find((d) => d.name === db.name)?.tables ?? db.tables;
}

const UNREADABLE = Symbol('unreadable');
type WarningTrees = Map<TableConfig, PartitionTree | undefined | typeof UNREADABLE>;

function treeOf(trees: WarningTrees, table: TableConfig): PartitionTree | undefined {
  const tree = trees.get(table);
  return tree === UNREADABLE ? undefined : tree;
}

/**
 * The partition trees of the database's configured tables, for the warning above only: each table
 * reads its own again when it starts. One that cannot be read is logged, and counts as reaching
 * every hold (no false "names no configured table"); its table fails closed when it starts.
 */
async function loadWarningTrees(pool: pg.Pool, options: RunArchiveOptions, db: DatabaseConfig, holds: HoldSnapshot, logger: Logger): Promise<WarningTrees> {
  const trees: WarningTrees = new Map();
  if (!holds.enabled || holds.unavailable !== undefined || holds.holds.length === 0) return trees;
  for (const table of configuredTables(options, db)) {
    try {
      trees.set(table, await loadHoldTree(pool, db.name, table.schema, table.name));
    } catch (error) {
      logger.warn({ table: `${table.schema}.${table.name}`, err: describeError(error) }, 'partition tree unreadable: holds that might reach this table through it are not checked for a misspelt name in this run');
      trees.set(table, UNREADABLE);
    }
  }
  return trees;
}

/** A table a stopped one-shot run never reached: failed, so the run does not look complete. */
function notStartedSummary(options: RunArchiveOptions, database: string, table: { schema: string; name: string }): TableSummary {
  const e = stopRequestedError(options.signal, 'the table was not started; the next run archives it');
  return { ...failedTableSummary(database, table.schema, table.name, e), stopped: true };
}

function finished(options: RunArchiveOptions, summary: TableSummary): TableSummary {
  options.events?.emit('table:finished', { runId: options.runId, database: summary.database, schema: summary.schema, table: summary.table, summary });
  return summary;
}

/** `fn` over `items`, at most `limit` at once, results in order; rejects with the first failure once every worker has ended. */
export async function mapWithLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  // Every worker ends before the first failure is thrown: with parallel databases, the others'
  // tables would otherwise go on after run:failed had already counted them failed (found in review).
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return results;
}

/** The spool of local_fallback_dir, when configured. */
export function openFallbackSpool(config: Pick<Config, 'local_fallback_dir' | 'local_fallback_retention_days'>, logger: Logger): FallbackSpool | undefined {
  if (config.local_fallback_dir === undefined) return undefined;
  return new FallbackSpool(new LocalObjectStore(localSchema.parse({ path: config.local_fallback_dir })), config.local_fallback_retention_days, logger);
}
