/** The per-table result of a run, as printed at the end and returned as JSON. */
/** `held`: an active table-level legal hold kept the table out of the run — not a failure. */
export type TableStatus = 'archived' | 'nothing-to-archive' | 'dry-run' | 'failed' | 'held';

export interface TableSummary {
  database: string;
  schema: string;
  table: string;
  status: TableStatus;
  rowsArchived: number;
  rowsSkipped: number;
  batches: number;
  bytesUncompressed: number;
  bytesCompressed: number;
  durationMs: number;
  rowsPerSecond: number;
  reconciled?: { committed: number; removed: number };
  /** Pending markers under the table's prefix left alone because they belong to another table (warned about). */
  otherTablesMarkers?: number;
  /** Batches spooled to local_fallback_dir because storage was unavailable (their rows are still in the table). */
  spooledBatches?: number;
  /** Spooled batches of earlier runs archived at the start of this one. */
  replayedBatches?: number;
  /** Set when the previous run of this table failed or was interrupted (its checkpoint was still there). */
  resumed?: { run_id: string; batches_committed: number; rows_archived: number; previous: 'failed' | 'interrupted' };
  dryRun?: { rows: number; minTimestamp: string | null; maxTimestamp: string | null; cutoff: string; estimatedBatches: number };
  error?: { code: string; message: string };
  /** Legal holds seen for the table: table-level ones that held it, record-level ones (and holds on partitions of it) whose rows stayed, expired ones ignored. */
  holds?: { tableLevel: string[]; recordLevel: string[]; expired: string[] };
  /** A stop was requested (SIGTERM): no further batch started, the rest waits for the next run. */
  stopped?: boolean;
}

export interface RunSummary {
  runId: string;
  dryRun: boolean;
  tables: TableSummary[];
  failed: number;
  /** Tables an active table-level legal hold kept out of the run (not failures). */
  held: number;
  durationMs: number;
  /** A stop was requested (SIGTERM, SIGINT) and cut the run short: what stopped it and what becomes of the rest. */
  stopped?: { code: string; message: string };
}

/** A table before its first batch: zero counts. */
export function emptyTableSummary(database: string, schema: string, table: string, status: TableStatus = 'nothing-to-archive'): TableSummary {
  return { database, schema, table, status, rowsArchived: 0, rowsSkipped: 0, batches: 0, bytesUncompressed: 0, bytesCompressed: 0, durationMs: 0, rowsPerSecond: 0 };
}

/** A table that failed before any batch: its error, zero counts. */
export function failedTableSummary(database: string, schema: string, table: string, error: { code: string; message: string }): TableSummary {
  return { ...emptyTableSummary(database, schema, table, 'failed'), error: { code: error.code, message: error.message } };
}
