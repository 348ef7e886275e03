/**
 * A restore into a table that the configuration archives (the live table) holds that table's
 * archive locks for the whole load, taken as an archive run takes them (lock file in local mode,
 * then the advisory lock). Found by probing: an archive run alongside took the restored rows
 * straight back out (they are older than the retention), the restore still reported them
 * restored, and a second restore skipped their objects through the watermark. Holding the lock
 * rather than only checking it: an archive run starting mid-restore is refused too (LOCK_HELD,
 * naming this restore's run), not only one already running.
 */
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { resolveLockTimings } from '../config/schema.js';
import { AuditlogError, isAuditlogError } from '../core/errors.js';
import { combineLocks, type TableLock } from '../core/table-lock.js';
import { acquireTableLock } from '../db/advisory-lock.js';
import { keepIdleSessionOpen } from '../db/connect.js';
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

/** Pure: whether the target is a table some table entry of this database's configuration archives. */
export function isArchivedTable(config: Pick<Config, 'databases'>, database: string, target: RestoreTarget): boolean {
  return config.databases.some((d) => d.name === database && d.tables.some((t) => t.schema === target.schema && t.name === target.table));
}

export async function acquireRestoreLock(input: {
  config: Config;
  database: string;
  target: RestoreTarget;
  oid: string;
  runId: string;
  openClient: () => Promise<pg.Client>;
  logger: Logger;
}): Promise<RestoreLock> {
  const { config, database, target } = input;
  const label = `${database}/${target.schema}.${target.table}`;
  const timings = resolveLockTimings(config.lock);
  const runId = restoreLockRunId(input.runId);
  let lostReason: string | undefined;
  const onLost = (reason: string): void => {
    lostReason = reason;
    input.logger.error({ reason }, 'archive lock of the target lost during the restore: an archive run may start and take restored rows out again');
  };
  const locks: TableLock[] = [];
  let client: pg.Client | undefined;
  try {
    if (config.local !== undefined) {
      const file = fileLockPath(config.local.path, { database, schema: target.schema, table: target.table });
      locks.push(await acquireFileLock({ file, label, runId, timings, warn: (message, holder) => input.logger.warn({ old_holder: holder ?? null }, message), onLost }));
    }
    client = await input.openClient();
    // It sits idle between heartbeats: a database's idle_session_timeout ended it, and the restore
    // with LOCK_LOST (found by the non-default-settings test).
    await keepIdleSessionOpen(client);
    locks.push(await acquireTableLock(client, { database, schema: target.schema, table: target.table, oid: Number(input.oid) }, { runId, heartbeat: { intervalMs: timings.heartbeatIntervalMs, timeoutMs: timings.heartbeatTimeoutMs }, onLost }));
  } catch (error) {
    await combineLocks(locks).release().catch(() => undefined);
    await client?.end().catch(() => undefined);
    if (!isAuditlogError(error) || error.code !== 'LOCK_HELD') throw error;
    throw new AuditlogError(
      'LOCK_HELD',
      `restore into ${target.schema}.${target.table} refused: ${error.message}. An archive run alongside takes rows older than the retention straight back out as they are restored; disable the archiver's schedule for the table and let the run end, then restore (docs/restore.md, "The live table and the archiver"). Nothing was restored`,
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
        await client?.end().catch(() => undefined);
      }
    },
  };
}
