/**
 * The metadata sidecar of a data object (DESIGN.md §3; documented in docs/format.md).
 * Pure: building and checking it needs no I/O.
 */
import { createHash } from 'node:crypto';
import type { Compression } from './compression.js';
import type { TablePlan } from './table-plan.js';

export const FORMAT_NAME = 'auditlog-archive';
export const FORMAT_VERSION = 1;

export interface BatchMetadata {
  format: typeof FORMAT_NAME;
  format_version: number;
  tool: { name: string; version: string };
  database: string;
  schema: string;
  table: string;
  columns: { name: string; type: string }[];
  primary_key_columns: string[];
  timestamp_column: string;
  record_count: number;
  min_timestamp: string;
  max_timestamp: string;
  min_primary_key: string[];
  max_primary_key: string[];
  compression: Compression;
  compression_level: number;
  uncompressed_bytes: number;
  compressed_bytes: number;
  sha256_uncompressed: string;
  sha256_compressed: string;
  batch_id: string;
  run_id: string;
  data_object: string;
  retention_days: number;
  retention_cutoff: string;
  created_at: string;
  session_settings: Record<string, string>;
  /** The deletion manifest: key of each line, in line order. These rows, in these versions, were deleted. */
  primary_keys: string[][];
  /** The version (xmin) of each line's row when it was archived, in line order: reconciliation tells a row still in the table from a new row that reuses its key. */
  xmins: string[];
  /** Lines whose json/jsonb column held JSON `null` (the line shows `null`, as for SQL NULL). */
  json_null_values: LineColumns[];
  /** Lines whose json column is written as a JSON string holding the value's exact text (it had raw newlines). */
  json_text_values: LineColumns[];
  /**
   * The id (`txid_current()`, epoch-extended) of the transaction that deletes these rows: the
   * sidecar is written inside it, before its DELETE. Reconciliation asks `txid_status()` whether
   * it committed; unlike the pending marker, the sidecar is never removed after the commit, so a
   * late write of the marker cannot make a committed batch look unstarted. Absent in sidecars of
   * versions before it (and in those of batches that only deleted copies of a committed object).
   */
  delete_txid?: string;
}

export interface LineColumns {
  line: number;
  columns: string[];
}

/** Whether `value` is a transaction id as txid_current() prints it (it goes into SQL as a bound bigint). */
export function isTxidText(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9]+$/.test(value);
}

/** Whether a sidecar's `delete_txid` is absent or a transaction id. */
export function hasValidDeleteTxid(meta: Pick<BatchMetadata, 'delete_txid'>): boolean {
  return meta.delete_txid === undefined || isTxidText(meta.delete_txid);
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Deterministic batch identity (I4): the same rows in the same table always give the same id and
 * thus the same object key, so a retried batch overwrites its own uncommitted object.
 */
/**
 * `content`: a SHA-256 over the batch's lines, columns and json flags, given only when a committed object of other rows
 * already holds the plain id (rows restored into the table and changed since): the batch then
 * gets an id of its own, as deterministic as the plain one (archive-batch.ts).
 */
export function computeBatchId(plan: Pick<TablePlan, 'database' | 'schema' | 'table'>, firstTs: string, firstKey: readonly string[], lastKey: readonly string[], count: number, content?: string): string {
  const identity: unknown[] = [plan.database, plan.schema, plan.table, firstTs, firstKey, lastKey, count];
  if (content !== undefined) identity.push(content);
  return sha256Hex(JSON.stringify(identity)).slice(0, 16);
}

export function serializeMetadata(meta: BatchMetadata): Buffer {
  return Buffer.from(JSON.stringify(meta, null, 1) + '\n', 'utf8');
}
