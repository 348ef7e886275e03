/**
 * One batch, in the order the invariants require:
 *   marker → upload → verify (read back) → BEGIN → metadata naming the transaction → guarded
 *   delete → commit → marker queued for removal (in bulk with other committed batches' markers,
 *   marker-sweeper.ts).
 * Nothing is deleted before the object is verified in the store and its metadata written (I3); only the
 * archived versions of the rows are deleted (I2); if some rows could not be deleted, the object is
 * rewritten without them *before* the delete commits, so every committed object holds exactly the
 * rows it deleted.
 */
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { lockLostError } from '../core/table-lock.js';
import { describeDeleteTrigger, tableLabel } from '../core/table-plan.js';
import { computeBatchId, FORMAT_NAME, FORMAT_VERSION, hasValidDeleteTxid, serializeMetadata, sha256Hex, type BatchMetadata, type LineColumns } from '../core/batch-metadata.js';
import { keyId, subsetRowSet, type LineFlags, type RowSet } from '../core/row-set.js';
import { dataKey, metadataKeyFor, pendingMarkerKey } from '../core/archive-layout.js';
import { COMPRESSIONS, COMPRESSION_SPECS, type Compression } from '../core/compression.js';
import { markerTableOf, serializeMarker, type PendingMarker } from './pending-marker.js';
import { deleteArchivedRows, selectColumnSignature, type DeleteResult } from '../db/archive-queries.js';
import type { Queryable } from '../db/queryable.js';
import { checkCascadingReferences, checkDeleteRules, deleteTriggersError, selectDeleteTriggers } from '../db/table-refusals.js';
import { quoteIdent } from '../db/quote-ident.js';
import { timed, type ArchiveContext } from './archive-context.js';
import { encodeBatch, type EncodedBatch } from './encode-batch.js';
import { verifyStoredBatch, verifyStoredBytes } from './verify-object.js';
import { resolveAmbiguousCommit, selectTxidStatus, type ReconcileResult } from './reconcile-pending.js';
import { withoutFence } from '../db/connect.js';

/** Attempts at a delete whose returned set must equal the archived set; rows keep changing → give up on them. */
const MAX_DELETE_ATTEMPTS = 3;

/**
 * How long (ms) the plain DELETE may wait for any one row or table lock someone else holds before
 * the batch falls back to FOR UPDATE SKIP LOCKED (I5). The statement as a whole is also capped at
 * half of deadlock_timeout (see deleteGuarded).
 */
export const FAST_DELETE_LOCK_WAIT_MS = 100;

/** Largest batch deleted by the plain DELETE first (about 40 ms for 10,000 rows): larger ones would often hit the cap. */
export const PLAIN_DELETE_MAX_ROWS = 20_000;

/**
 * Errors of the plain DELETE after which the batch is deleted again with SKIP LOCKED: lock_timeout
 * expired (55P03), the statement cap expired (57014), a row it waited for was moved to another
 * partition meanwhile (40001). Nothing was deleted: the transaction is rolled back.
 */
const RETRY_WITH_SKIP_LOCKED: ReadonlySet<string> = new Set(['55P03', '57014', '40001']);

export interface BatchOutcome {
  key: string | null;
  rowsArchived: number;
  rowsSkipped: number;
  uncompressedBytes: number;
  compressedBytes: number;
}

export async function archiveBatch(ctx: ArchiveContext, rows: RowSet): Promise<BatchOutcome> {
  // Read, nothing written yet: a crash here must leave no trace in the store.
  await ctx.onPhase?.('after-read');
  return archiveBatchAs(ctx, rows);
}

/** Where one batch goes: its keys, its pending marker, and the `content` part of its id, if any. */
interface BatchTarget {
  batchId: string;
  key: string;
  metaKey: string;
  markerKey: string;
  marker: PendingMarker;
  content: string | undefined;
}

/** `content`: set for the second, content-derived id (computeBatchId) after a committed object of other rows held the plain one. */
async function archiveBatchAs(ctx: ArchiveContext, rows: RowSet, content?: string): Promise<BatchOutcome> {
  const { plan, store } = ctx;
  const batchId = computeBatchId(plan, rows.firstTs, rows.keys[0]!, rows.keys[rows.count - 1]!, rows.count, content);
  const objectName = `${rows.firstTimeOfDay}-${batchId}`;
  const target = batchTarget(ctx, rows.day, objectName, plan.compression, batchId, content);
  const { key, metaKey, markerKey } = target;
  const log = ctx.logger.child({ batch: batchId });
  let current = rows;
  // Independent of each other; only the data upload must wait for the marker. A create-only store
  // needs no HEAD: the data PUT itself answers whether the key is taken. The other codecs' keys of
  // this name are asked either way: their object would share this batch's sidecar key.
  const [headed, otherCodec, firstEncoding] = await Promise.all([
    ctx.createOnly ? Promise.resolve(undefined) : store.head(key),
    findOtherCodecObject(ctx, rows.day, objectName),
    timed(ctx, 'compress', () => encodeBatch(current.lines, plan.compression, plan.compressionLevel)),
    store.put(markerKey, serializeMarker(target.marker), { contentType: 'application/json' }),
  ]);
  await ctx.onPhase?.('after-marker');
  let encoded = firstEncoding;
  assertOneLinePerRow(encoded, rows, key);
  // With the other codec's object at this name, a create-only store must still be asked for the
  // batch's own key before that object is settled against: a stray copy of the other codec (a late
  // PUT from before a codec change) shadowed the committed object of this codec and stopped the
  // table with STORAGE_CONFLICT on every run (found in review).
  const existing = headed ?? (otherCodec !== undefined && ctx.createOnly ? await store.head(key) : undefined);
  if (existing === undefined && otherCodec !== undefined) {
    // The rows were archived under this batch name with the other codec (the table's compression
    // changed since, and they are back in the table, e.g. restored). Settled against that object,
    // as any object at the batch's key would be, under that object's own marker: a crash must
    // leave a marker whose name leads reconciliation to the object the delete ran against.
    const theirs = batchTarget(ctx, rows.day, objectName, otherCodec, batchId, content);
    await store.put(theirs.markerKey, serializeMarker(theirs.marker), { contentType: 'application/json' });
    await store.delete(markerKey);
    const decided = await decideExisting(ctx, rows, encoded, theirs);
    // Bytes of another codec are never "these very bytes": what is left is a conflict.
    if (decided === 'uncommitted-same') throw new AuditlogError('STORAGE_CONFLICT', `${theirs.key} already exists and holds other content; refusing to overwrite or delete against it (inspect it, then move it away or run validate)`, { details: { key: theirs.key } });
    return decided;
  }
  if (existing !== undefined) {
    const decided = await decideExisting(ctx, rows, encoded, target);
    // An uncommitted object of this very batch: rewritten by the loop's plain PUT, as always.
    if (decided !== 'uncommitted-same') return decided;
  }

  for (let attempt = 1; ; attempt++) {
    // Create-only for the batch's first write only. A rewrite replaces this batch's own uncommitted
    // object in place, never deleting the key first: a DELETE storage completed late would then
    // remove the committed rewrite (found in review). A late first PUT still meets an object there and is refused.
    if ((await upload(ctx, key, encoded, ctx.createOnly && attempt === 1)) === 'exists') {
      const decided = await decideExisting(ctx, current, encoded, target);
      if (decided !== 'uncommitted-same') return decided;
      // Byte for byte what this batch would write (an attempt of this PUT that landed unseen, or
      // a run that stopped before its sidecar): kept instead of re-uploaded, and verified like one.
    }
    await ctx.onPhase?.('after-upload');
    await verifyUploaded(ctx, key, encoded);
    // This attempt's rows and bytes (`current` and `encoded` change on a rewrite).
    const attemptRows = current;
    const attemptEncoding = encoded;
    // The sidecar names the delete transaction, so it is written inside it, before the DELETE.
    const recordTxid = async (txid: string): Promise<void> => {
      await writeVerifiedSidecar(ctx, metaKey, serializeMetadata({ ...buildMetadata(ctx, key, attemptRows, attemptEncoding, batchId), delete_txid: txid }));
      if (attempt === 1) await ctx.onPhase?.('after-metadata');
    };
    const deleted = await timed(ctx, 'delete', () => deleteGuarded(ctx, current, key, markerKey, recordTxid));
    if (deleted.committed) {
      // Committed: a marker left now is harmless (the next run finds the sidecar's delete_txid
      // committed), so it goes with others in one request instead of a DELETE of its own.
      ctx.markers.add(markerKey, { key, rows: current.count, bytesCompressed: encoded.compressedBytes });
      await ctx.onPhase?.('after-batch');
      log.debug({ key, rows: current.count }, 'batch committed');
      return {
        key,
        rowsArchived: current.count,
        rowsSkipped: rows.count - current.count,
        uncompressedBytes: encoded.uncompressedBytes,
        compressedBytes: encoded.compressedBytes,
      };
    }
    const deletable = new Set(deleted.keys.map(keyId));
    const kept = current.keys.flatMap((k, i) => (deletable.has(keyId(k)) ? [i] : []));
    log.warn({ key, archived: current.count, deletable: kept.length, attempt }, 'rows changed or locked since they were read: rewriting the object without them');
    if (kept.length === 0 || attempt >= MAX_DELETE_ATTEMPTS) {
      await store.delete(key);
      await store.delete(metaKey);
      await store.delete(markerKey);
      return { key: null, rowsArchived: 0, rowsSkipped: rows.count, uncompressedBytes: 0, compressedBytes: 0 };
    }
    current = subsetRowSet(current, kept);
    encoded = await timed(ctx, 'compress', () => encodeBatch(current.lines, plan.compression, plan.compressionLevel));
    assertOneLinePerRow(encoded, current, key);
    // No delete has committed for this batch: drop the sidecar first, so a crash mid-rewrite
    // leaves a data object without metadata, which reconciliation removes (never a mismatched pair).
    await store.delete(metaKey);
  }
}

function batchTarget(ctx: ArchiveContext, day: string, objectName: string, compression: Compression, batchId: string, content: string | undefined): BatchTarget {
  const key = dataKey(ctx.prefix, day, objectName, compression);
  const metaKey = metadataKeyFor(key);
  // No `delete_txid`: the sidecar names the delete transaction. Not even null — versions before
  // that read a null as "no delete started" and removed the object, committed or not (found in
  // review: a crash left committed batches' markers, and the previous version, run next, lost their rows).
  const marker: PendingMarker = { data_object: key, metadata_object: metaKey, run_id: ctx.runId, created_at: new Date().toISOString(), origin: ctx.origin, table: markerTableOf(ctx.plan), table_oid: String(ctx.plan.oid) };
  return { batchId, key, metaKey, markerKey: pendingMarkerKey(ctx.prefix, day, objectName, compression), marker, content };
}

/** The codec of a data object another codec wrote under this batch name, if any. */
async function findOtherCodecObject(ctx: ArchiveContext, day: string, objectName: string): Promise<Compression | undefined> {
  const others = COMPRESSIONS.filter((c) => c !== ctx.plan.compression);
  const found = await Promise.all(others.map((c) => ctx.store.head(dataKey(ctx.prefix, day, objectName, c))));
  return others.find((_, i) => found[i] !== undefined);
}

/**
 * An object is already at the batch's key (found by HEAD, or by a refused create-only PUT). Same
 * batch id = same table, first/last key and count: an object of an earlier run, or of an earlier
 * attempt of this one. Returns the batch's outcome when it is settled against that object (or
 * throws STORAGE_CONFLICT), 'uncommitted-same' when the object is an uncommitted copy of exactly
 * these bytes, which the caller may use as its upload.
 */
async function decideExisting(ctx: ArchiveContext, rows: RowSet, encoded: EncodedBatch, target: BatchTarget): Promise<BatchOutcome | 'uncommitted-same'> {
  const { plan, store } = ctx;
  const { key, metaKey, markerKey, marker, content } = target;
  const log = ctx.logger.child({ batch: target.batchId });
  const conflict = async (what: string): Promise<never> => {
    await store.delete(markerKey);
    throw new AuditlogError('STORAGE_CONFLICT', `${key} already exists and ${what}; refusing to overwrite or delete against it (inspect it, then move it away or run validate)`, {
      details: { key },
    });
  };
  const stored = await store.get(key);
  const storedMeta = await store.get(metaKey);
  if (stored === undefined) return conflict('vanished while being read');
  if (storedMeta === undefined) {
    // No sidecar: not committed, so it may be used or rewritten — but only if it is this very batch.
    if (sha256Hex(stored) !== encoded.sha256Compressed) return conflict('holds other content');
    return 'uncommitted-same';
  }
  // A sidecar: these rows were archived and committed before and are back in the table (e.g.
  // restored). Delete the copies against that object, never rewrite it — but only when it
  // holds exactly these rows in exactly these versions: the same lines (compared uncompressed,
  // so another compression level does not matter), the same columns and the same json flags,
  // which live in the sidecar, not in the lines (a JSON null and an SQL NULL share a line).
  const committed = parseCommittedMetadata(storedMeta);
  if (committed === undefined || sha256Hex(stored) !== committed.sha256_compressed) {
    return conflict('does not match its own metadata sidecar (run validate on it)');
  }
  // The sidecar is written inside the delete transaction it names, so it proves a commit only
  // once that transaction committed (found in review: late writes of an attempt whose delete
  // rolled back would otherwise pass for a committed object, and its rows be archived twice).
  if (committed.delete_txid !== undefined) {
    const status = await selectTxidStatus(ctx, committed.delete_txid);
    if (status === 'aborted' || status === 'in progress') {
      // The marker stays: the next run reconciles the object against the table (docs/format.md).
      throw new AuditlogError(
        'STORAGE_CONFLICT',
        `${key} already exists with a metadata sidecar whose delete transaction ${committed.delete_txid} ${status === 'aborted' ? 'did not commit' : 'is still open'}: it is not a committed archive; nothing was deleted or overwritten — rerun: the next run reconciles it against the table`,
        { details: { key, delete_txid: committed.delete_txid, txid_status: status } },
      );
    }
  }
  const expected = lineFlagsMetadata(plan, rows);
  const columns = plan.columns.map((c) => ({ name: c.name, type: c.type }));
  const same =
    committed.sha256_uncompressed === encoded.sha256Uncompressed &&
    JSON.stringify(committed.columns) === JSON.stringify(columns) &&
    JSON.stringify(committed.json_null_values) === JSON.stringify(expected.json_null_values) &&
    JSON.stringify(committed.json_text_values) === JSON.stringify(expected.json_text_values);
  if (!same) {
    // Rows restored into the table and changed since (or the table's columns changed) make a
    // batch of the same shape, so the same plain id, as the committed object they came from.
    // That object stays as it is; the batch goes to an id derived from its content too, so a
    // rerun finds it again (found by probing: the table failed with STORAGE_CONFLICT on every
    // run). The marker written for the committed object's name goes first; a crash before
    // that leaves one the next run reconciles as "committed earlier".
    if (content !== undefined) return conflict('is a committed object whose rows differ from the ones now in the table');
    await store.delete(markerKey);
    log.info({ key }, 'a committed object of other versions of these rows holds this batch id: archiving them under an id derived from their content');
    // Everything `same` compares: rows that differ only in a json flag get an id of their own too.
    const versions = sha256Hex(JSON.stringify([encoded.sha256Uncompressed, columns, expected.json_null_values, expected.json_text_values]));
    return archiveBatchAs(ctx, rows, versions);
  }
  // Deleting against it must meet the table's encryption requirement like a fresh upload —
  // but it is a committed archive: refuse, never remove it (found in review).
  if (ctx.requiredSse !== undefined) {
    for (const k of [key, metaKey]) {
      const reported = (await store.head(k))?.serverSideEncryption;
      if (reported !== ctx.requiredSse) {
        await store.delete(markerKey);
        throw new AuditlogError(
          'ENCRYPTION_MISMATCH',
          `${k}: the committed object these rows were archived to before reports server-side encryption ${reported ?? 'none'}, the table requires ${ctx.requiredSse}: nothing was deleted; re-encrypt the object (copy it onto itself with SSE) or move it away, then rerun`,
          { details: { key: k, expected: ctx.requiredSse, reported: reported ?? null } },
        );
      }
    }
  }
  return deleteCopiesOfCommitted(ctx, rows, encoded, key, markerKey, marker);
}

/**
 * The rows of `rows` are already in a committed object (identical lines, so each row read is an
 * exact copy of an archived one). The copies still in the version read are deleted — any subset
 * is safe, since every deleted copy is archived there — and the rest stay for a later run. The
 * committed object and its sidecar are left exactly as they are: they also stand for the rows
 * deleted when it was first written, which must never vanish from the archive.
 */
async function deleteCopiesOfCommitted(ctx: ArchiveContext, rows: RowSet, encoded: EncodedBatch, key: string, markerKey: string, marker: PendingMarker): Promise<BatchOutcome> {
  // The committed sidecar is never rewritten: the transaction id goes into the marker.
  const recordTxid = async (txid: string): Promise<void> => {
    await ctx.store.put(markerKey, serializeMarker({ ...marker, copies_of_committed: true, delete_txid: txid }), { contentType: 'application/json' });
  };
  const deleted = await deleteGuarded(ctx, rows, key, markerKey, recordTxid, true);
  await removeMarkerAfterCommit(ctx, markerKey, key);
  const count = deleted.committed ? deleted.keys.length : 0;
  ctx.logger.info({ key, rows: rows.count, deleted: count }, 'rows archived before were back in the table: copies deleted against the committed object, which is kept as it is');
  return { key, rowsArchived: count, rowsSkipped: rows.count - count, uncompressedBytes: encoded.uncompressedBytes, compressedBytes: encoded.compressedBytes };
}

/**
 * The delete committed: the batch is archived whatever happens to its marker now. A marker that
 * cannot be removed (storage went away) is left for the next run, which finds the delete committed
 * and removes it. Failing the batch here would spool rows that are already gone from the table
 * and block the table on the replay (found in review).
 */
async function removeMarkerAfterCommit(ctx: ArchiveContext, markerKey: string, key: string): Promise<void> {
  try {
    await ctx.store.delete(markerKey);
  } catch (error) {
    ctx.logger.warn({ key, marker: markerKey, err: describeError(error) }, 'batch committed, but its pending marker could not be removed; the next run clears it');
  }
}

function isSubset(a: readonly (readonly string[])[], b: readonly (readonly string[])[]): boolean {
  const set = new Set(b.map(keyId));
  return a.every((k) => set.has(keyId(k)));
}

function sameKeySet(a: readonly (readonly string[])[], b: readonly (readonly string[])[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a.map(keyId));
  return set.size === a.length && b.every((k) => set.has(keyId(k)));
}

/**
 * Line i of the object is the row of manifest entry i: a value rendered with a raw newline would
 * break that pairing (and the rewrite without changed rows), so such a batch stops before upload.
 */
function assertOneLinePerRow(encoded: EncodedBatch, rows: RowSet, key: string): void {
  if (encoded.recordCount !== rows.count) {
    throw new AuditlogError('VERIFY_FAILED', `batch ${key} rendered ${encoded.recordCount} JSON lines for ${rows.count} rows (a value holds a raw newline); nothing was uploaded or deleted for it`, {
      details: { key },
    });
  }
}

/** 'exists': a create-only put found an object already at the key; nothing was written. */
async function upload(ctx: ArchiveContext, key: string, encoded: EncodedBatch, createOnly: boolean): Promise<'written' | 'exists'> {
  const written = await timed(ctx, 'upload', () =>
    ctx.store.put(key, encoded.body, { sha256Hex: encoded.sha256Compressed, contentType: COMPRESSION_SPECS[encoded.compression].contentType, isDataObject: true, ...(createOnly ? { ifAbsent: true } : {}) }),
  );
  return written?.alreadyExists === true ? 'exists' : 'written';
}

async function verifyUploaded(ctx: ArchiveContext, key: string, encoded: EncodedBatch): Promise<void> {
  if (ctx.requiredSse !== undefined) await checkStoredEncryption(ctx, key, ctx.requiredSse);
  await timed(ctx, 'verify', () => verifyStoredBatch(ctx.store, key, encoded));
}

async function writeVerifiedSidecar(ctx: ArchiveContext, metaKey: string, meta: Buffer): Promise<void> {
  const written = await ctx.store.put(metaKey, meta, { sha256Hex: sha256Hex(meta), contentType: 'application/json', confirmBytes: true, ...(ctx.createOnly ? { ifAbsent: true } : {}) });
  // Outside the try below: a sidecar this batch did not write is never removed.
  if (written?.alreadyExists === true) await assertOwnSidecar(ctx, metaKey, meta);
  // Not only trusted to ChecksumSHA256: S3-compatible servers that ignore it (s3rver, some
  // MinIO/Ceph versions) store a sidecar damaged in transit and answer 200, and the delete would
  // then commit against a manifest and checksums that no longer describe the object (found by
  // test/resilience/storage-faults.test.ts). Proven by the PUT's own answer where the store can
  // (an ETag equal to the sidecar's MD5), else read back: one small GET per batch.
  try {
    // A refused create-only PUT was just compared byte for byte by assertOwnSidecar.
    if (written?.bytesConfirmed !== true && written?.alreadyExists !== true) await verifyStoredBytes(ctx.store, metaKey, meta);
    // The sidecar lists the batch's primary keys: it must be encrypted like the data.
    if (ctx.requiredSse !== undefined) await checkStoredEncryption(ctx, metaKey, ctx.requiredSse);
  } catch (error) {
    // No delete ran: drop the bad sidecar, so the next run sees a data object without metadata and
    // removes it, instead of refusing an in-flight object whose metadata does not match it.
    await ctx.store.delete(metaKey).catch(() => undefined);
    throw error;
  }
}

/**
 * A create-only sidecar PUT found an object at its key. The same bytes can only be an attempt of
 * this very PUT that landed though its answer was lost (the bytes name this delete transaction).
 * Anything else is a stale or late sidecar someone else wrote: the delete must not run against
 * it, and it is left in place for inspection.
 */
async function assertOwnSidecar(ctx: ArchiveContext, metaKey: string, meta: Buffer): Promise<void> {
  const stored = await ctx.store.get(metaKey);
  if (stored !== undefined && stored.equals(meta)) return;
  throw new AuditlogError(
    'STORAGE_CONFLICT',
    `${metaKey}: a metadata sidecar this batch did not write is already there (a late write of an earlier attempt, or another writer); nothing was deleted and it was left in place — inspect it and its data object (run validate), move them away, then rerun`,
    { details: { key: metaKey } },
  );
}

/**
 * A table that must be encrypted at rest is only deleted from once the server says the object is
 * (a bucket policy, proxy or server that drops the SSE header would otherwise store it in clear).
 * On a mismatch the object is removed at once (no delete ran, its rows are still in the table).
 */
async function checkStoredEncryption(ctx: ArchiveContext, key: string, expected: 'AES256' | 'aws:kms'): Promise<void> {
  const info = await ctx.store.head(key);
  const reported = info?.serverSideEncryption;
  if (reported === expected) return;
  await ctx.store.delete(key).catch(() => undefined);
  throw new AuditlogError(
    'ENCRYPTION_MISMATCH',
    `${key}: storage reports server-side encryption ${reported ?? 'none'} after upload, expected ${expected}: the batch was not deleted from the table; check the bucket's encryption settings and that the endpoint returns x-amz-server-side-encryption`,
    { details: { key, expected, reported: reported ?? null } },
  );
}

/** The json rules of docs/format.md for these rows, as the sidecar records them. */
function lineFlagsMetadata(plan: ArchiveContext['plan'], rows: RowSet): Pick<BatchMetadata, 'json_null_values' | 'json_text_values'> {
  const named = (pick: (f: LineFlags) => number[]): LineColumns[] =>
    rows.flags.flatMap((f) => (pick(f).length === 0 ? [] : [{ line: f.line, columns: pick(f).map((i) => plan.columns[i]!.name) }]));
  return { json_null_values: named((f) => f.jsonNull), json_text_values: named((f) => f.jsonText) };
}

function parseCommittedMetadata(body: Buffer): BatchMetadata | undefined {
  try {
    const meta = JSON.parse(body.toString('utf8')) as BatchMetadata;
    return typeof meta.sha256_uncompressed === 'string' && Array.isArray(meta.json_null_values) && Array.isArray(meta.json_text_values) && hasValidDeleteTxid(meta) ? meta : undefined;
  } catch {
    return undefined;
  }
}

function buildMetadata(ctx: ArchiveContext, key: string, rows: RowSet, encoded: EncodedBatch, batchId: string): BatchMetadata {
  const { plan } = ctx;
  return {
    format: FORMAT_NAME,
    format_version: FORMAT_VERSION,
    tool: { name: 'auditlog-manager', version: ctx.toolVersion },
    database: plan.database,
    schema: plan.schema,
    table: plan.table,
    columns: plan.columns.map((c) => ({ name: c.name, type: c.type })),
    primary_key_columns: plan.primaryKey.map((c) => c.name),
    timestamp_column: plan.timestampColumn.name,
    record_count: rows.count,
    min_timestamp: rows.firstTs,
    max_timestamp: rows.lastTs,
    min_primary_key: rows.minKey,
    max_primary_key: rows.maxKey,
    compression: encoded.compression,
    compression_level: plan.compressionLevel,
    uncompressed_bytes: encoded.uncompressedBytes,
    compressed_bytes: encoded.compressedBytes,
    sha256_uncompressed: encoded.sha256Uncompressed,
    sha256_compressed: encoded.sha256Compressed,
    batch_id: batchId,
    run_id: ctx.runId,
    data_object: key.slice(key.lastIndexOf('/') + 1),
    retention_days: plan.retentionDays,
    retention_cutoff: ctx.cutoff,
    created_at: new Date().toISOString(),
    session_settings: ctx.sessionSettings,
    primary_keys: rows.keys,
    xmins: rows.xmins,
    ...lineFlagsMetadata(plan, rows),
  };
}

async function assertColumnsUnchanged(client: Queryable, ctx: ArchiveContext, key: string): Promise<void> {
  const now = await selectColumnSignature(client, ctx.plan.oid);
  const read = ctx.plan.columns.map((c) => [c.name, c.type]);
  if (JSON.stringify(now) === JSON.stringify(read)) return;
  throw new AuditlogError('TABLE_CHANGED', `the columns of ${tableLabel(ctx.plan)} changed while it was being archived (now: ${now.map(([n, t]) => `${n} ${t}`).join(', ')}); the delete of ${key} was rolled back and nothing of it deleted — rerun: the next run archives the rows with their new columns`, {
    details: { key, columns: now.map(([n]) => n) },
  });
}

/**
 * The plan refused the table if it had DELETE triggers (unless allowed) or rules ON DELETE, but
 * one may have been created since. Checked after the DELETE, inside its transaction: CREATE TRIGGER needs a lock
 * that conflicts with the DELETE's ROW EXCLUSIVE one, so a trigger that fired on this delete was
 * committed before the delete's first statement and is seen here (read committed, pinned in
 * connect.ts), and none can appear before COMMIT. The rollback undoes what it did as well.
 */
async function assertNoNewDeleteHooks(client: Queryable, ctx: ArchiveContext, key: string): Promise<void> {
  const qualified = `${ctx.plan.schema}.${ctx.plan.table}`;
  const changed = `created while ${tableLabel(ctx.plan)} was being archived: the delete of ${key} was rolled back, nothing of it deleted`;
  // Rules ON DELETE likewise, whatever allow_delete_triggers says (found in review: one created
  // mid-run turned a batch's delete into an update, and the batch committed).
  const rule = await checkDeleteRules(client, ctx.plan, ctx.plan.database, qualified, 'TABLE_CHANGED', changed);
  if (rule !== undefined) throw rule;
  // And a foreign key ON DELETE CASCADE/SET NULL/SET DEFAULT referencing the table, added (or
  // brought in by an attached partition) since the plan was loaded: its internal triggers fired
  // on this DELETE and deleted or changed rows of the referencing table, archived nowhere (found
  // by probing: all 461 referencing rows gone, exit 0). ADD FOREIGN KEY needs a lock that
  // conflicts with the DELETE's too. The rollback undoes what the cascade did.
  const reference = await checkCascadingReferences(client, ctx.plan.oid, ctx.plan.database, qualified, 'TABLE_CHANGED', `the constraint was ${changed}`);
  if (reference !== undefined) throw reference;
  if (ctx.plan.allowDeleteTriggers) return;
  const triggers = await selectDeleteTriggers(client, ctx.plan);
  if (triggers.length === 0) return;
  const label = tableLabel(ctx.plan);
  throw deleteTriggersError(
    triggers,
    ctx.plan.database,
    `${ctx.plan.schema}.${ctx.plan.table}`,
    'TABLE_CHANGED',
    `created while ${label} was being archived: the delete of ${key} was rolled back with whatever they did, and nothing of it deleted`,
  );
}

/** SQLSTATEs of a name that does not resolve: undefined table, function, object. */
const UNRESOLVED_NAME: ReadonlySet<string> = new Set(['42P01', '42883', '42704']);

/**
 * A trigger function (allowed by allow_delete_triggers) that names a table or function without
 * its schema fails under the archiver, whose sessions pin search_path to pg_catalog (DESIGN.md
 * §5b, so that the archiver's own SQL resolves the same on every database), with nothing but
 * "relation … does not exist" to go on, on every run (found by probing). The message says why
 * and how to fix the function; the pinned search_path stays.
 */
function explainTriggerNameError(ctx: ArchiveContext, error: unknown, key: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (isAuditlogError(error) || typeof code !== 'string' || !UNRESOLVED_NAME.has(code) || ctx.plan.deleteTriggers.length === 0) return error;
  const triggers = ctx.plan.deleteTriggers;
  const fn = triggers[0]!.function;
  const schema = /^[a-z_][a-z0-9_]*$/.test(ctx.plan.schema) ? ctx.plan.schema : quoteIdent(ctx.plan.schema);
  return new AuditlogError(
    'DB_QUERY',
    `database error ${code}: ${describeError(error)} — while deleting rows of ${tableLabel(ctx.plan)}, whose DELETE trigger(s) ${triggers.map(describeDeleteTrigger).join(', ')} fire on the archiver's deletes; the archiver's sessions run with search_path = pg_catalog, so a trigger function must schema-qualify the tables and functions it uses (schema.name, not name) or pin its own search_path, e.g. ALTER FUNCTION ${fn} SET search_path = ${schema}; the delete of ${key} was rolled back and nothing of it deleted`,
    { details: { key, sqlstate: code, triggers: triggers.map((t) => `${t.table}.${t.name}`) }, cause: error },
  );
}

/** No delete starts or commits without the table lock (another archiver may be working on the table). */
function assertLockHeld(ctx: ArchiveContext, stoppedBefore: string): void {
  if (!ctx.lock.isHeld()) throw lockLostError(tableLabel(ctx.plan), ctx.lock.lostReason(), stoppedBefore);
}

/**
 * The plain guarded DELETE under a short lock_timeout and a statement cap; undefined when either
 * expired or a waited-for row moved partition (the transaction is then aborted).
 */
async function plainDelete(client: Queryable, ctx: ArchiveContext, rows: RowSet, statementCapMs: number): Promise<DeleteResult | undefined> {
  await client.query(`SET LOCAL lock_timeout = ${FAST_DELETE_LOCK_WAIT_MS}; SET LOCAL statement_timeout = ${Math.trunc(statementCapMs)}`);
  try {
    const deleted = await deleteArchivedRows(client, ctx.plan, rows, ctx.cutoff, { skipLocked: false });
    await client.query('SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT');
    return deleted;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && RETRY_WITH_SKIP_LOCKED.has(code)) return undefined;
    throw error;
  }
}

/**
 * The short delete transaction. Commits only when exactly the archived rows were deleted (or,
 * with `subsetOk`, any of them: rows whose identical copies are in an object committed before);
 * otherwise rolls back and returns the keys that *were* deletable, for the rewrite.
 */
async function deleteGuarded(
  ctx: ArchiveContext,
  rows: RowSet,
  key: string,
  markerKey: string,
  recordTxid: (txid: string) => Promise<void>,
  subsetOk = false,
): Promise<{ committed: boolean; keys: string[][] }> {
  assertLockHeld(ctx, `the delete of ${key}`);
  const client = await ctx.pool.connect();
  let broken: Error | undefined;
  // A checked-out client reports a killed connection as an 'error' event too; unheard, it would crash the process.
  const onClientError = (error: Error): void => {
    broken ??= error;
  };
  client.on('error', onClientError);
  try {
    // The transaction's id is recorded (in the sidecar, by `recordTxid`) before anything is
    // deleted, so a crash at any later point leaves txid_status() to say whether this delete
    // committed (pending-marker.ts). Holding an id but no row lock yet, the transaction waits only
    // for that one small PUT.
    await client.query('BEGIN');
    const r = await client.query<{ txid: string; deadlock_ms: string }>(
      `SELECT txid_current()::text AS txid, (extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000)::text AS deadlock_ms`,
    );
    await recordTxid(r.rows[0]!.txid);
    const deadlockTimeoutMs = Number(r.rows[0]!.deadlock_ms);
    // The plain DELETE first: a third of the cost of locking each row with SKIP LOCKED and then
    // deleting it. It would wait on rows someone else holds locked, so only briefly: at most
    // FAST_DELETE_LOCK_WAIT_MS per lock, and the whole statement at most half of
    // deadlock_timeout (default 1 s). An application transaction can only start waiting for one of
    // our rows once the statement has begun, and its deadlock check comes deadlock_timeout after
    // that: by then our statement has ended, so the detector can never pick the application's
    // transaction as the victim of a cycle with ours (found in review).
    const plainFirst = deadlockTimeoutMs > 2 * FAST_DELETE_LOCK_WAIT_MS && rows.count <= PLAIN_DELETE_MAX_ROWS;
    const configuredCap = Number(ctx.sessionSettings.statement_timeout ?? 0);
    const statementCapMs = Math.min(deadlockTimeoutMs / 2, configuredCap > 0 ? configuredCap : Infinity);
    let deleted: DeleteResult | undefined;
    if (plainFirst) {
      // Inside a savepoint, so that giving up on it keeps the transaction, and with it the id
      // already recorded: rolling back to the savepoint releases every row lock the plain DELETE
      // took (and undoes its SET LOCALs), then the batch is deleted again skipping locked rows
      // instead of waiting for them.
      await client.query('SAVEPOINT plain_delete');
      deleted = await plainDelete(client, ctx, rows, statementCapMs);
      if (deleted === undefined) await client.query('ROLLBACK TO SAVEPOINT plain_delete');
    }
    deleted ??= await deleteArchivedRows(client, ctx.plan, rows, ctx.cutoff, { skipLocked: true });
    // Commit only if exactly the archived set went: compared as sets, not counts, so a key that
    // is not unique after all (e.g. across INHERITS children) cannot hide a different row.
    if (subsetOk ? !isSubset(deleted.keys, rows.keys) : !sameKeySet(deleted.keys, rows.keys)) {
      // A BEFORE DELETE trigger returning NULL, created since the plan was loaded, keeps rows out
      // of the delete: say so (TABLE_CHANGED) instead of taking them for rows changed since they
      // were read, which skipped every later row with exit 0 (found by probing).
      await assertNoNewDeleteHooks(client, ctx, key);
      await client.query('ROLLBACK');
      return { committed: false, keys: deleted.keys };
    }
    await ctx.onPhase?.('after-delete');
    // The DELETE holds the table's ROW EXCLUSIVE lock, so no ALTER TABLE can slip in between this
    // check and COMMIT. A column added (with a default: the rows keep their xmin) or changed since
    // the batch was read would make the archived lines miss what the deleted rows held (found in review).
    await assertColumnsUnchanged(client, ctx, key);
    await assertNoNewDeleteHooks(client, ctx, key);
    // A hold placed in the holds table since this run read it (found in review): its rows must not
    // go, and only the run that reads it can know which they are. Roll back; the next run applies it.
    const placed = await ctx.recheckHolds?.(client);
    if (placed !== undefined) {
      throw new AuditlogError('LEGAL_HOLD_PLACED', `${placed} came to reach ${tableLabel(ctx.plan)} while it was being archived (placed in the holds table, or through a partition attached): the delete of ${key} was rolled back and nothing of it deleted; the next run applies the hold`, {
        details: { key },
      });
    }
    // Not only as far as the last heartbeat knows: the database itself must still show the lock
    // granted to our lock session, or another archiver may have taken it meanwhile (found in review).
    // Last statement before COMMIT, so the instant in between is all that is left unfenced.
    if (ctx.lock.confirmFrom !== undefined && !(await ctx.lock.confirmFrom(client))) {
      throw lockLostError(tableLabel(ctx.plan), 'the database no longer shows the advisory lock granted to this run\'s lock session', `committing the delete of ${key}`);
    }
    await ctx.onPhase?.('before-commit');
    // The lock may have been lost while the DELETE ran: only a holder may commit one (the catch rolls back).
    assertLockHeld(ctx, `committing the delete of ${key}`);
    try {
      await client.query('COMMIT');
    } catch (error) {
      broken = error as Error;
      // A connection lost during COMMIT leaves the outcome unknown: look at the table, never assume.
      ctx.logger.warn({ key, err: describeError(error) }, 'COMMIT outcome unknown; checking which rows are still in the table');
      // A client-side deadline (no answer) lands here too: never "not committed" without looking.
      let outcome: ReconcileResult;
      try {
        // Even after a lost lock closed the table's connections: this is what decides the batch.
        outcome = await withoutFence(ctx.pool, () => resolveAmbiguousCommit(ctx, key, markerKey));
      } catch (checkError) {
        throw new AuditlogError(
          'DB_QUERY',
          `the connection failed during COMMIT of ${key} (${describeError(error)}) and its outcome could not be checked (${describeError(checkError)}): the batch stays in flight and the next run reconciles it against the table`,
          { details: { key }, cause: error },
        );
      }
      // The outcome, not only that there was one: an operator reading "failed" must know whether
      // the batch's rows are archived or still in the table (the summary does not count them).
      throw new AuditlogError('DB_QUERY', `the connection failed during COMMIT of ${key} (${describeError(error)}); ${describeCommitOutcome(outcome, subsetOk)}`, { details: { key, outcome }, cause: error });
    }
    await ctx.onPhase?.('after-commit');
    return { committed: true, keys: deleted.keys };
  } catch (error) {
    // The connection was closed for a reason of ours (the lock lost, a deadline) while the
    // transaction waited between statements: that reason, not node-postgres' "not queryable".
    const reason = broken !== undefined && isAuditlogError(broken) && !isAuditlogError(error) ? broken : error;
    if (broken === undefined) {
      broken = error as Error;
      await client.query('ROLLBACK').catch(() => undefined);
    }
    throw explainTriggerNameError(ctx, reason, key);
  } finally {
    client.off('error', onClientError);
    client.release(broken);
  }
}

/**
 * What reading an ambiguous COMMIT back from the table found, for the table's error.
 * `copiesOfCommitted`: the delete was of copies of rows an object committed before already holds
 * (deleteCopiesOfCommitted). Its marker always resolves to keeping that object, whether or not
 * this delete went through, so the outcome says nothing about the copies (found in review).
 */
export function describeCommitOutcome(outcome: ReconcileResult, copiesOfCommitted = false): string {
  if (copiesOfCommitted && (outcome === 'committed' || outcome === 'unrecorded')) {
    const copies = 'the batch\'s rows were copies of rows archived in that object before, which is kept as it is whatever the delete did: any copies still in the table are deleted against it by the next run';
    return outcome === 'committed' ? copies : `${copies} (its audit record could not be written: the pending marker is kept and the next run records it)`;
  }
  switch (outcome) {
    case 'committed':
      return 'read back from the table, the delete did commit: the batch is archived and its rows are gone from the table (this run\'s summary does not count them)';
    case 'unrecorded':
      return 'read back from the table, the delete did commit and the batch is archived, but its audit record could not be written: its pending marker is kept and the next run records it';
    case 'removed':
    case 'nothing-written':
      return 'read back from the table, the delete did not commit: the batch\'s object was removed and its rows stay in the table for the next run';
    case 'other-table':
      return 'its pending marker names another table: it was left for that table\'s runs';
  }
}
