/**
 * What the archiver remembers about a table between runs (pure: no I/O).
 *
 * - The **watermark**: the (timestamp, primary key) position up to which every batch of a run
 *   committed its delete. The next run starts reading after it, so a run that was stopped in a
 *   large backlog does not walk again the dead tuples of the rows it already deleted. It is only
 *   a starting point, never a promise: rows behind it (skipped because they were locked or
 *   changed, or inserted late with an old timestamp) are picked up by a pass over the range
 *   behind the watermark at the end of each run. A lost or wrong watermark costs time, not rows.
 * - The **last run**: how the table's last run ended, for `auditlog status`.
 * - The **checkpoint** (kept apart, see checkpoint-store.ts): present while a run is in
 *   progress and left behind when it is interrupted, so the next run knows it resumes one.
 */
import type { RowPosition } from '../core/row-set.js';
import type { TablePlan } from '../core/table-plan.js';

export const TABLE_STATE_FORMAT = 'auditlog-table-state';
export const TABLE_STATE_VERSION = 1;
export const CHECKPOINT_FORMAT = 'auditlog-checkpoint';

export interface TableId {
  database: string;
  schema: string;
  table: string;
}

export interface Watermark {
  position: RowPosition;
  run_id: string;
  updated_at: string;
  /** What the position means: a watermark of a table recreated since, or re-keyed, is not used. */
  table_oid: number;
  timestamp_column: string;
  primary_key: string[];
}

export interface LastRun {
  run_id: string;
  status: 'archived' | 'nothing-to-archive' | 'failed';
  started_at: string;
  finished_at: string;
  rows_archived: number;
  rows_skipped: number;
  batches: number;
  error?: { code: string; message: string };
  /**
   * A stop request (the daemon's SIGTERM) cut the run short: it ended as archived, with rows past
   * the retention possibly left for the next run. Not a success to `status` or the metrics.
   */
  stopped?: true;
}

export interface TableState extends TableId {
  format: typeof TABLE_STATE_FORMAT;
  version: number;
  watermark: Watermark | null;
  last_run: LastRun | null;
}

export interface Checkpoint extends TableId {
  format: typeof CHECKPOINT_FORMAT;
  run_id: string;
  started_at: string;
  updated_at: string;
  batches_committed: number;
  rows_archived: number;
  /** The watermark as of this checkpoint (null: no batch committed yet). */
  position: RowPosition | null;
}

export function tableIdOf(plan: Pick<TablePlan, 'database' | 'schema' | 'table'>): TableId {
  return { database: plan.database, schema: plan.schema, table: plan.table };
}

export function emptyTableState(id: TableId): TableState {
  return { format: TABLE_STATE_FORMAT, version: TABLE_STATE_VERSION, ...id, watermark: null, last_run: null };
}

export function watermarkFor(plan: TablePlan, position: RowPosition, runId: string, now: Date): Watermark {
  return {
    position,
    run_id: runId,
    updated_at: now.toISOString(),
    table_oid: plan.oid,
    timestamp_column: plan.timestampColumn.name,
    primary_key: plan.primaryKey.map((c) => c.name),
  };
}

/** The position to start after, or why the stored watermark cannot be used (then the run starts from the first row). */
export function usableWatermark(plan: TablePlan, watermark: Watermark | null): { position: RowPosition | null; ignored?: string } {
  if (watermark === null) return { position: null };
  if (watermark.table_oid !== plan.oid) return { position: null, ignored: 'the table was recreated since it was written' };
  if (watermark.timestamp_column !== plan.timestampColumn.name) {
    return { position: null, ignored: `it was written for timestamp_column ${watermark.timestamp_column}` };
  }
  const pk = plan.primaryKey.map((c) => c.name);
  if (JSON.stringify(watermark.primary_key) !== JSON.stringify(pk) || watermark.position.key.length !== pk.length) {
    return { position: null, ignored: `it was written for primary key (${watermark.primary_key.join(', ')})` };
  }
  return { position: watermark.position };
}

/**
 * Parses a stored state document. Anything unexpected is an error the caller reports; the state
 * is advisory, so the caller then runs as if there were none.
 */
export function parseTableState(text: string, id: TableId): TableState {
  const doc = JSON.parse(text) as Partial<TableState>;
  if (doc.format !== TABLE_STATE_FORMAT) throw new Error(`not a table state document (format ${JSON.stringify(doc.format)})`);
  if (doc.version !== TABLE_STATE_VERSION) throw new Error(`table state version ${String(doc.version)} is not supported (expected ${TABLE_STATE_VERSION})`);
  if (doc.database !== id.database || doc.schema !== id.schema || doc.table !== id.table) {
    throw new Error(`it belongs to ${String(doc.database)}/${String(doc.schema)}.${String(doc.table)}`);
  }
  const wm = doc.watermark ?? null;
  if (wm !== null && !isPosition(wm.position)) throw new Error('its watermark has no valid position');
  return { ...emptyTableState(id), watermark: wm, last_run: doc.last_run ?? null };
}

export function parseCheckpoint(text: string, id: TableId): Checkpoint {
  const doc = JSON.parse(text) as Partial<Checkpoint>;
  if (doc.format !== CHECKPOINT_FORMAT) throw new Error(`not a checkpoint (format ${JSON.stringify(doc.format)})`);
  if (doc.database !== id.database || doc.schema !== id.schema || doc.table !== id.table) {
    throw new Error(`it belongs to ${String(doc.database)}/${String(doc.schema)}.${String(doc.table)}`);
  }
  if (typeof doc.run_id !== 'string' || (doc.position !== null && !isPosition(doc.position))) throw new Error('it is incomplete');
  return doc as Checkpoint;
}

function isPosition(p: unknown): p is RowPosition {
  const x = p as RowPosition | null | undefined;
  return typeof x?.ts === 'string' && Array.isArray(x.key) && x.key.every((k) => typeof k === 'string');
}
