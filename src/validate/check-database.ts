/**
 * `--check-database`: no row an object lists as archived is still in its table (I1's other half).
 * A row counts as still there only in the archived *version* (same key and xmin): a new row that
 * reuses a deleted row's key is not the archived row. Read-only: plain SELECTs without row locks,
 * keys bound as one JSON parameter per chunk, the key types taken from the catalog, never from
 * the metadata (which is what is being checked).
 */
import type { Config, DatabaseConfig, TableConfig } from '../config/schema.js';
import { loadTablePlan } from '../db/catalog.js';
import { selectPresentRows } from '../db/archive-queries.js';
import { buildSessionSettings, checkConnection, createPool } from '../db/connect.js';
import type { Queryable } from '../db/queryable.js';
import type { TablePlan } from '../core/table-plan.js';
import type { Finding } from './problem-codes.js';
import { quoteListForDisplay } from '../core/quote-for-display.js';

/** Keys per query: big enough to amortise the round trip, small enough for a short statement. */
const CHUNK = 1_000;

export type RowPresenceCheck = (dataKey: string, primaryKeys: readonly string[][], xmins: readonly string[]) => Promise<Finding[]>;

export async function withDatabaseChecks<T>(
  config: Config,
  db: DatabaseConfig,
  secrets: readonly string[],
  fn: (forTable: (table: TableConfig) => Promise<RowPresenceCheck>) => Promise<T>,
): Promise<T> {
  const pool = createPool({
    database: { ...db, connection_pool_size: Math.min(db.connection_pool_size, 4) },
    applicationName: config.application_name,
    settings: buildSessionSettings(config.defaults),
    onBackgroundError: () => undefined,
  });
  try {
    await checkConnection(pool, db, secrets);
    return await fn(async (table) => rowPresenceCheck(pool, await loadTablePlan(pool, db.name, table, config.defaults, 'read')));
  } finally {
    await pool.end().catch(() => undefined);
  }
}

export function rowPresenceCheck(q: Queryable, plan: TablePlan): RowPresenceCheck {
  return async (dataKey, primaryKeys, xmins) => {
    let count = 0;
    let example: string[] | undefined;
    let again = 0;
    let againExample: string[] | undefined;
    for (let start = 0; start < primaryKeys.length; start += CHUNK) {
      const keys = primaryKeys.slice(start, start + CHUNK);
      const archived = new Set(keys.map((k, i) => JSON.stringify([k, xmins[start + i]])));
      for (const row of await selectPresentRows(q, plan, keys, { lock: false })) {
        if (!archived.has(JSON.stringify([row.key, row.xmin]))) {
          again++;
          againExample ??= row.key;
          continue;
        }
        count++;
        example ??= row.key;
      }
    }
    const findings: Finding[] = [];
    if (count > 0) {
      findings.push({
        code: 'ROW_STILL_IN_TABLE',
        key: dataKey,
        count,
        message: `${count} archived row(s) still in ${plan.schema}.${plan.table} in the archived version (e.g. key ${quoteListForDisplay(example!)}): their delete did not last (a database restored from a backup?); do not restore this object over them — see docs/validate.md`,
      });
    }
    if (again > 0) {
      findings.push({
        code: 'KEY_IN_TABLE_AGAIN',
        key: dataKey,
        count: again,
        message: `${again} archived key(s) are in ${plan.schema}.${plan.table} again in another row version (e.g. key ${quoteListForDisplay(againExample!)}): rows restored into the live table (the next archive run deletes the identical ones against this object) or new rows reusing the key — see docs/validate.md`,
      });
    }
    return findings;
  };
}
