/**
 * Reconciliation of batches left in flight by a crash or an ambiguous COMMIT (I1, I4). A pending
 * marker means the batch's delete may or may not have committed; the table is the truth:
 *   - rows of the object no longer in the table were deleted by that batch: they stay archived;
 *   - rows still in the table must not stay in a committed object: they are cut out of it
 *     (the object is removed when none is left), and a later batch archives them again.
 * The data object is only ever removed when every one of its rows is still in the table.
 */
import { AuditlogError } from '../core/errors.js';
import { serializeMetadata, sha256Hex, type BatchMetadata } from '../core/batch-metadata.js';
import { reindexLines } from '../core/row-set.js';
import { dataKeyForMarker, metadataKeyFor, pendingPrefix } from '../core/archive-layout.js';
import { selectPresentRows } from '../db/archive-queries.js';
import type { ArchiveContext } from './archive-context.js';
import { decodeBatch, encodeBatch } from './encode-batch.js';
import { verifyStoredBatch, verifyStoredBytes } from './verify-object.js';

export type ReconcileResult = 'committed' | 'removed' | 'trimmed' | 'nothing-written';

export interface ReconcileSummary {
  committed: number;
  removed: number;
  trimmed: number;
}

export async function reconcilePending(ctx: ArchiveContext): Promise<ReconcileSummary> {
  const summary: ReconcileSummary = { committed: 0, removed: 0, trimmed: 0 };
  const markers: string[] = [];
  for await (const info of ctx.store.list(pendingPrefix(ctx.prefix))) markers.push(info.key);
  for (const markerKey of markers) {
    const key = dataKeyForMarker(ctx.prefix, markerKey);
    if (key === undefined) {
      throw new AuditlogError('STORAGE_IO', `${markerKey} is not a pending marker this version writes; inspect it and remove it by hand once its data object is checked`, {
        details: { key: markerKey },
      });
    }
    const result = await reconcileObject(ctx, key, markerKey);
    if (result === 'committed') summary.committed++;
    else if (result === 'trimmed') summary.trimmed++;
    else summary.removed++;
    ctx.logger.info({ key, result }, 'reconciled a batch left in flight by an earlier run');
  }
  return summary;
}

export async function resolveAmbiguousCommit(ctx: ArchiveContext, key: string, markerKey: string): Promise<ReconcileResult> {
  return reconcileObject(ctx, key, markerKey);
}

async function reconcileObject(ctx: ArchiveContext, key: string, markerKey: string): Promise<ReconcileResult> {
  const { store } = ctx;
  const metaKey = metadataKeyFor(key);
  const data = await store.get(key);
  const metaBody = await store.get(metaKey);
  if (data === undefined || metaBody === undefined) {
    // The metadata is written after the verified upload and before any delete: without both, no delete ran.
    await store.delete(key);
    await store.delete(metaKey);
    await store.delete(markerKey);
    return 'nothing-written';
  }
  const meta = parseMetadata(metaBody, metaKey);
  if (sha256Hex(data) !== meta.sha256_compressed) {
    throw new AuditlogError('VERIFY_FAILED', `in-flight object ${key} does not match its metadata (SHA-256); left untouched for inspection (run validate)`, {
      details: { key },
    });
  }
  // "Still in the table" means the archived version itself: a row now under the same key with
  // another xmin is new (the key was reused after the archived one was deleted), so the archived
  // version stays in the archive.
  const stillThere = new Set((await selectPresentRows(ctx.pool, ctx.plan, meta.primary_keys)).map((r) => JSON.stringify([r.key, r.xmin])));
  const archivedVersions = meta.primary_keys.map((k, i) => JSON.stringify([k, meta.xmins[i]]));
  const present = new Set(archivedVersions.filter((v) => stillThere.has(v)));
  if (present.size === 0) {
    await store.delete(markerKey);
    return 'committed';
  }
  const { lines } = await decodeBatch(data);
  if (lines.length !== meta.primary_keys.length) {
    throw new AuditlogError('VERIFY_FAILED', `in-flight object ${key} holds ${lines.length} lines but its manifest lists ${meta.primary_keys.length} keys; left untouched for inspection`, {
      details: { key },
    });
  }
  const keep = meta.primary_keys.map((k, i) => ({ k, i })).filter(({ i }) => !present.has(archivedVersions[i]!));
  if (keep.length === 0) {
    await store.delete(key);
    await store.delete(metaKey);
    await store.delete(markerKey);
    return 'removed';
  }
  const encoded = await encodeBatch(keep.map(({ i }) => lines[i]!).join('\n'), meta.compression_level);
  const kept = keep.map(({ i }) => i);
  const keys = keep.map(({ k }) => k);
  const trimmed: BatchMetadata = {
    ...meta,
    record_count: keep.length,
    uncompressed_bytes: encoded.uncompressedBytes,
    compressed_bytes: encoded.compressedBytes,
    sha256_uncompressed: encoded.sha256Uncompressed,
    sha256_compressed: encoded.sha256Compressed,
    primary_keys: keys,
    xmins: kept.map((i) => meta.xmins[i]!),
    json_null_values: reindexLines(meta.json_null_values, kept),
    json_text_values: reindexLines(meta.json_text_values, kept),
  };
  await store.put(key, encoded.body, { sha256Hex: encoded.sha256Compressed, isDataObject: true, contentType: 'application/gzip' });
  await verifyStoredBatch(store, key, encoded);
  const metaBytes = serializeMetadata(trimmed);
  await store.put(metaKey, metaBytes, { sha256Hex: sha256Hex(metaBytes), contentType: 'application/json' });
  await verifyStoredBytes(store, metaKey, metaBytes);
  await store.delete(markerKey);
  return 'trimmed';
}

/** Unreadable metadata of an in-flight batch is never guessed at: the object is left for inspection. */
function parseMetadata(body: Buffer, metaKey: string): BatchMetadata {
  try {
    const meta = JSON.parse(body.toString('utf8')) as BatchMetadata;
    if (Array.isArray(meta.primary_keys) && Array.isArray(meta.xmins) && meta.xmins.length === meta.primary_keys.length && typeof meta.sha256_compressed === 'string') return meta;
  } catch {
    // reported below
  }
  throw new AuditlogError('VERIFY_FAILED', `metadata ${metaKey} of an in-flight batch is unreadable; left untouched for inspection (run validate)`, {
    details: { key: metaKey },
  });
}

