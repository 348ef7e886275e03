/**
 * What a restore holds of each selected object from selection to load: the few sidecar fields
 * that ordering, the watermark, the target table and the drift plan need, never the deletion
 * manifest (one key per archived row). Holding every selected sidecar whole cost ~130 MB of RSS
 * per million archived rows (DESIGN.md §7: peak RSS < 300 MB whatever the table size); the load
 * reads each sidecar again and requires the same bytes (check-object.ts rereadObjectMetadata).
 * Pure.
 */
import { sha256Hex, type BatchMetadata } from '../core/batch-metadata.js';

export interface SidecarSummary {
  run_id: string;
  sha256_compressed: string;
  record_count: number;
  /** Shared by every summary with the same column list: tables have a handful of lists, not one per object. */
  columns: BatchMetadata['columns'];
  primary_key_columns: string[];
  /** The object's key range: which objects may hold a key another one holds again (superseded-lines.ts). */
  min_primary_key: string[];
  max_primary_key: string[];
  /** SHA-256 of the sidecar's bytes as read at selection: the load's second read must match it. */
  sidecar_sha256: string;
  /** The order in which one run archived its objects (superseded-lines.ts archiveOrder). */
  delete_txid?: string;
  created_at: string;
}

/**
 * Returns a summarizer whose summaries share their column lists. The summary copies what it
 * keeps, so the parsed sidecar (and its manifest) is garbage as soon as the caller drops it.
 */
export function createSidecarSummarizer(): (meta: BatchMetadata, body: Buffer) => SidecarSummary {
  const shared = new Map<string, unknown>();
  const intern = <T>(value: T): T => {
    const signature = JSON.stringify(value);
    const known = shared.get(signature) as T | undefined;
    if (known !== undefined) return known;
    const copy = JSON.parse(signature) as T;
    shared.set(signature, copy);
    return copy;
  };
  return (meta, body) => ({
    run_id: meta.run_id,
    sha256_compressed: meta.sha256_compressed,
    record_count: meta.record_count,
    columns: intern(meta.columns),
    primary_key_columns: intern(meta.primary_key_columns),
    min_primary_key: [...(meta.min_primary_key ?? [])],
    max_primary_key: [...(meta.max_primary_key ?? [])],
    sidecar_sha256: sha256Hex(body),
    ...(meta.delete_txid === undefined ? {} : { delete_txid: meta.delete_txid }),
    created_at: meta.created_at,
  });
}
