/**
 * A restore into a table that the configuration archives (the live table) holds that table's
 * archive locks for the whole load, taken as an archive run takes them (lock file in local mode,
 * then the advisory lock). Found by probing: an archive run alongside took the restored rows
 * straight back out (they are older than the retention), the restore still reported them
 * restored, and a second restore skipped their objects through the watermark. Holding the lock
 * rather than only checking it: an archive run starting mid-restore is refused too (LOCK_HELD,
 * naming this restore's run), not only one already running.
 *
 * By the partition tree, not by the target's name alone: a restore into a partition of an archived
 * partitioned table (an archive run deletes through the parent), or into the parent of an archived
 * partition (the rows are routed into it), took no lock, and an archive run alongside deleted the
 * restored rows (found in review). Each such configured table's lock is held, as its own archive
 * run would take it.
 */
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { resolveLockTimings } from '../config/schema.js';
import { AuditlogError, isAuditlogError } from '../core/errors.js';
import { combineLocks, type TableLock } from '../core/table-lock.js';
import { acquireTableLock } from '../db/advisory-lock.js';
import { endClient, keepIdleSessionOpen } from '../db/connect.js';
import type { Queryable } from '../db/queryable.js';
import { listOverlappingTables, type OverlappingTable } from '../db/target-table.js';
import { acquireFileLock, fileLockPath } from '../state/file-lock.js';
import type { RestoreTarget } from './restore-watermarks.js';

export interface RestoreLock {
  /** Undefined while held (or after release); why it was lost otherwise. */
  lost(): string | undefined;
  release(): Promise<void>;
}

/** The run id an archive run sees as the holder: says that a restore holds the table. */
export function restoreLockRunId(runId: string): string {
  return `restore:${runId}`;
}

/**
 * Pure: whether some table entry of this database's configuration archives the table with these
 * catalog names. Names compare exactly: archive resolves a configured schema/name verbatim
 * (catalog.ts, case-sensitive, no folding), so equal names are the relation an archive run locks.
 */
export function isArchivedTable(config: Pick<Config, 'databases'>, database: string, table: RestoreTarget): boolean {
  return config.databases.some((d) => d.name === database && d.tables.some((t) => t.schema === table.schema && t.name === table.table));
}

/** The configured tables of this database that share rows with the target (oid): the locks a restore into it holds. */
export async function loadArchivedOverlaps(q: Queryable, config: Pick<Config, 'databases'>, database: string, oid: string): Promise<OverlappingTable[]> {
  return (await listOverlappingTables(q, oid)).filter((t) => isArchivedTable(config, database, t));
}

/**
 * Holds the archive lock of each table in `tables` (loadArchivedOverlaps) for the restore into
 * `target`. Each advisory lock on a session of its own: the lock session carries its lock's
 * token, and acquireTableLock refuses a session that already carries one.
 */
export async function acquireRestoreLock(input: {
  config: Config;
  database: string;
  target: RestoreTarget;
  tables: readonly OverlappingTable[];
  runId: string;
  openClient: () => Promise<pg.Client>;
  logger: Logger;
}): Promise<RestoreLock> {
  const { config, database, target } = input;
  const timings = resolveLockTimings(config.lock);
  const runId = restoreLockRunId(input.runId);
  const isTarget = (t: OverlappingTable): boolean => t.schema === target.schema && t.table === target.table;
  let lostReason: string | undefined;
  const onLostOf =
    (t: OverlappingTable) =>
    (reason: string): void => {
      lostReason ??= isTarget(t) ? reason : `the lock of ${t.schema}.${t.table}, which shares its partition tree: ${reason}`;
      input.logger.error({ reason, table: `${t.schema}.${t.table}` }, 'archive lock of the target lost during the restore: an archive run may start and take restored rows out again');
    };
  const locks: TableLock[] = [];
  const clients: pg.Client[] = [];
  const endClients = async (): Promise<void> => {
    // Not a graceful end alone: on a silent connection it waited for the peer forever.
    await Promise.all(clients.map((c) => endClient(c)));
  };
  let current: OverlappingTable | undefined;
  try {
    for (const t of input.tables) {
      current = t;
      const label = `${database}/${t.schema}.${t.table}`;
      const onLost = onLostOf(t);
      if (config.local !== undefined) {
        // The path archive builds from the configured names, which equal the catalog's (isArchivedTable).
        const file = fileLockPath(config.local.path, { database, schema: t.schema, table: t.table });
        locks.push(await acquireFileLock({ file, label, runId, timings, warn: (message, holder) => input.logger.warn({ old_holder: holder ?? null }, message), onLost }));
      }
      const client = await input.openClient();
      clients.push(client);
      // It sits idle between heartbeats: a database's idle_session_timeout ended it, and the restore
      // with LOCK_LOST (found by the non-default-settings test).
      await keepIdleSessionOpen(client);
      locks.push(await acquireTableLock(client, { database, schema: t.schema, table: t.table, oid: Number(t.oid) }, { runId, heartbeat: { intervalMs: timings.heartbeatIntervalMs, timeoutMs: timings.heartbeatTimeoutMs }, onLost }));
    }
  } catch (error) {
    await combineLocks(locks).release().catch(() => undefined);
    await endClients();
    if (!isAuditlogError(error) || error.code !== 'LOCK_HELD') throw error;
    const via = current === undefined || isTarget(current) ? '' : ` (it is in the partition tree of ${current.schema}.${current.table}, which the configuration archives)`;
    throw new AuditlogError(
      'LOCK_HELD',
      `restore into ${target.schema}.${target.table} refused${via}: ${error.message}. An archive run alongside takes rows older than the retention straight back out as they are restored; disable the archiver's schedule for the table and let the run end, then restore (docs/restore.md, "The live table and the archiver"). Nothing was restored`,
      { details: error.details, cause: error },
    );
  }
  const lock = combineLocks(locks);
  return {
    lost: () => lostReason,
    async release() {
      try {
        await lock.release();
      } finally {
        await endClients();
      }
    },
  };
}
