/**
 * `auditlog cost --config`: the sizes of what the archiver would write today, measured on the real
 * tables. Read-only. Rows are rendered by the archiver's own page query and compressed with the
 * configured codec and level, so the sample's ratio is the one the archive will get.
 */
import type { Config } from '../config/schema.js';
import { encodeBatch } from '../archive/encode-batch.js';
import { loadTablePlan } from '../db/catalog.js';
import { selectCutoff, selectPage, summarizeArchivable } from '../db/archive-queries.js';
import { buildSessionSettings, checkConnection, createPool } from '../db/connect.js';

export interface TableMeasure {
  database: string;
  table: string;
  rowsPastRetention: number;
  /** Objects the archiver would write: per UTC day, rows ÷ batch_size rounded up. */
  objects: number;
  sampleRows: number;
  sampleUncompressedBytes: number;
  sampleCompressedBytes: number;
}

export interface ConfigMeasure {
  tables: TableMeasure[];
  records: number;
  objects: number;
  uncompressedBytes: number;
  compressionRatio: number;
}

/** Rows compressed per table: enough for a stable ratio, little enough to leave production alone. */
export const SAMPLE_ROWS = 5_000;

export async function measureConfig(config: Config, secrets: readonly string[], sampleRows = SAMPLE_ROWS): Promise<ConfigMeasure> {
  const tables: TableMeasure[] = [];
  for (const db of config.databases) {
    const pool = createPool({ database: { ...db, connection_pool_size: 2 }, applicationName: config.application_name, settings: buildSessionSettings(config.defaults), onBackgroundError: () => undefined });
    try {
      await checkConnection(pool, db, secrets);
      for (const table of db.tables) {
        const plan = await loadTablePlan(pool, db.name, table, config.defaults);
        const cutoff = await selectCutoff(pool, plan);
        const count = await summarizeArchivable(pool, plan, cutoff);
        const pages = count.rows === 0 ? [] : await selectPage(pool, plan, cutoff, null, sampleRows);
        let sampled = 0;
        let raw = 0;
        let compressed = 0;
        for (const page of pages) {
          const encoded = await encodeBatch(page.lines, plan.compressionLevel);
          sampled += page.count;
          raw += encoded.uncompressedBytes;
          compressed += encoded.compressedBytes;
        }
        tables.push({
          database: db.name,
          table: `${plan.schema}.${plan.table}`,
          rowsPastRetention: count.rows,
          objects: count.batches,
          sampleRows: sampled,
          sampleUncompressedBytes: raw,
          sampleCompressedBytes: compressed,
        });
      }
    } finally {
      await pool.end().catch(() => undefined);
    }
  }
  return summarize(tables);
}

/** Pure: per-table averages scaled to every row past retention; the ratio weighted by bytes. */
export function summarize(tables: TableMeasure[]): ConfigMeasure {
  let uncompressedBytes = 0;
  let compressedBytes = 0;
  for (const t of tables) {
    if (t.sampleRows === 0) continue;
    const scale = t.rowsPastRetention / t.sampleRows;
    uncompressedBytes += t.sampleUncompressedBytes * scale;
    compressedBytes += t.sampleCompressedBytes * scale;
  }
  return {
    tables,
    records: tables.reduce((n, t) => n + t.rowsPastRetention, 0),
    objects: tables.reduce((n, t) => n + t.objects, 0),
    uncompressedBytes,
    compressionRatio: compressedBytes > 0 ? uncompressedBytes / compressedBytes : 1,
  };
}
