/**
 * `auditlog cost --config`: the sizes of what the archiver would write today, measured on the real
 * tables. Read-only. Rows are rendered by the archiver's own page query and compressed with the
 * configured codec and level, so the sample's ratio is the one the archive will get.
 */
import type { Config } from '../config/schema.js';
import { encodeBatch } from '../archive/encode-batch.js';
import { loadTablePlan } from '../db/catalog.js';
import { estimateLineBytes, selectCutoff, selectPage, summarizeArchivable } from '../db/archive-queries.js';
import { rowsWithin } from '../archive/batch-sizer.js';
import { rowsPerObject } from './estimate-cost.js';
import { buildSessionSettings, checkConnection, createPool } from '../db/connect.js';
import { checkHoldFilter } from '../db/hold-queries.js';
import { holdFilterOf, holdsForTable } from '../compliance/legal-hold.js';
import { loadHoldTree } from '../db/partition-tree.js';
import { loadDatabaseHolds, type HoldSnapshot } from '../compliance/run-holds.js';

export interface TableMeasure {
  database: string;
  table: string;
  rowsPastRetention: number;
  /** Objects the archiver would write: per UTC day, rows ÷ rowsPerObject rounded up. */
  objects: number;
  /** The table's batch_size, or fewer rows when that many of the sample's average size pass its max_batch_bytes. */
  rowsPerObject: number;
  sampleRows: number;
  sampleUncompressedBytes: number;
  sampleCompressedBytes: number;
  /**
   * Legal holds, as a run would apply them today: `table` (a table-level hold: nothing would be
   * archived), `records` (rows matching record-level holds, or in held partitions, left out), `unavailable` (they could
   * not be read: a run would archive nothing, the figures count every row).
   */
  holds?: 'table' | 'records' | 'unavailable';
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
/**
 * Most bytes of JSON lines the sample reads: fewer rows when they are wide. Found by probing:
 * 5,000 rows of 200 KB took 1.3 GB of memory and 40 s (the archiver itself bounds its pages the
 * same way, by max_batch_bytes).
 */
export const SAMPLE_MAX_BYTES = 8 * 1024 * 1024;
/** Rows whose width is measured before the sample is read. */
const WIDTH_SAMPLE_ROWS = 100;

export async function measureConfig(config: Config, secrets: readonly string[], sampleRows = SAMPLE_ROWS, runHolds: HoldSnapshot = { enabled: false, holds: [] }, now = new Date()): Promise<ConfigMeasure> {
  const tables: TableMeasure[] = [];
  for (const db of config.databases) {
    const pool = createPool({ database: { ...db, connection_pool_size: 2 }, applicationName: config.application_name, settings: buildSessionSettings(config.defaults), onBackgroundError: () => undefined });
    try {
      await checkConnection(pool, db, secrets);
      const holds = await loadDatabaseHolds(runHolds, config, pool, db.name);
      for (const table of db.tables) {
        let plan = await loadTablePlan(pool, db.name, table, config.defaults);
        // Placed through the partition tree, as a run places them (a hold on the parent, or on a partition).
        const found =
          holds.enabled && holds.unavailable === undefined
            ? holdsForTable(holds.holds, { database: db.name, schema: table.schema, table: table.name }, now, await loadHoldTree(pool, db.name, table.schema, table.name))
            : undefined;
        const measure = { database: db.name, table: `${plan.schema}.${plan.table}` };
        if (found !== undefined && found.tableLevel.length > 0) {
          tables.push({ ...measure, rowsPastRetention: 0, objects: 0, rowsPerObject: plan.batchSize, sampleRows: 0, sampleUncompressedBytes: 0, sampleCompressedBytes: 0, holds: 'table' });
          continue;
        }
        if (found !== undefined && found.rowLevel.length > 0) {
          // Checked as a run checks it (no writing function), then the held rows are left out of the counts and the sample.
          for (const r of found.rowLevel) if (r.hold.where !== undefined) await checkHoldFilter(pool, plan, r.hold, holdFilterOf(r).partitionOids);
          plan = { ...plan, holdFilters: found.rowLevel.map(holdFilterOf) };
        }
        const cutoff = await selectCutoff(pool, plan);
        const count = await summarizeArchivable(pool, plan, cutoff);
        // The widest of the first rows bounds how many the sample may read within its bytes.
        const lineBytes = count.rows === 0 ? null : await estimateLineBytes(pool, plan, cutoff, null, null, WIDTH_SAMPLE_ROWS);
        const limit = Math.min(sampleRows, rowsWithin(SAMPLE_MAX_BYTES, lineBytes ?? undefined));
        const pages = count.rows === 0 ? [] : await selectPage(pool, plan, cutoff, null, limit);
        let sampled = 0;
        let raw = 0;
        let compressed = 0;
        for (const page of pages) {
          const encoded = await encodeBatch(page.lines, plan.compression, plan.compressionLevel);
          sampled += page.count;
          raw += encoded.uncompressedBytes;
          compressed += encoded.compressedBytes;
        }
        // Wide rows make more objects than batch_size alone says: counted again with the rows that fit.
        const perObject = sampled === 0 ? plan.batchSize : rowsPerObject(plan.batchSize, plan.maxBatchBytes, raw / sampled);
        const objects = perObject < plan.batchSize ? (await summarizeArchivable(pool, { ...plan, batchSize: perObject }, cutoff)).batches : count.batches;
        tables.push({
          ...measure,
          rowsPastRetention: count.rows,
          objects,
          rowsPerObject: perObject,
          sampleRows: sampled,
          sampleUncompressedBytes: raw,
          sampleCompressedBytes: compressed,
          ...(holds.unavailable !== undefined ? { holds: 'unavailable' as const } : found !== undefined && found.rowLevel.length > 0 ? { holds: 'records' as const } : {}),
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
