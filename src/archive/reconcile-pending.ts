/**
 * Reconciliation of batches left in flight by a crash or an ambiguous COMMIT (I1, I4). A pending
 * marker means the batch's delete may or may not have committed. The guarded delete commits all of
 * the object's rows (in their archived versions) or none, so any row still in the table in its
 * archived version proves it never committed; when none is left, the delete transaction's id in
 * the marker and txid_status() tell a committed delete from rows the application changed or
 * deleted meanwhile (pending-marker.ts has the rule). An object whose delete never committed is
 * removed whole: keeping the old versions of rows the application changed would archive a row
 * the application deleted, or archive a row twice.
 */
import { hasValidDeleteTxid, sha256Hex, type BatchMetadata } from '../core/batch-metadata.js';
import { dataKeyForMarker, metadataKeyFor, pendingPrefix } from '../core/archive-layout.js';
import { MAX_ZSTD_CONTENT_BYTES, compressionOfDataKey, isCompression } from '../core/compression.js';
import { AuditlogError, describeError, isAuditlogError, type ErrorCode } from '../core/errors.js';
import { countArchivedLinesPresent, selectPresentRows } from '../db/archive-queries.js';
import { streamObjectLines } from '../validate/stream-object-lines.js';
import type { ArchiveContext } from './archive-context.js';
import { DecodeRefusedError, DecoderFailedError, decoderFailure, isMalformedObjectError } from './codec.js';
import { decideReconcile, isForeignMarker, isOtherTablesMarker, markerTableOf, parseMarker, sameMarkerTable, sidecarTable, type MarkerOrigin, type MarkerTable, type TxidStatus } from './pending-marker.js';

/**
 * `other-table`: the marker or sidecar belongs to another table; nothing was changed.
 * `unrecorded`: committed, but its audit record could not be written, so its marker stays (a later run records it and counts it).
 */
export type ReconcileResult = 'committed' | 'unrecorded' | 'removed' | 'nothing-written' | 'other-table';

export interface ReconcileSummary {
  committed: number;
  removed: number;
  /** Markers left alone because they, or their sidecars, name another table (each logged as a warning). */
  otherTables: number;
}

export async function reconcilePending(ctx: ArchiveContext): Promise<ReconcileSummary> {
  const summary: ReconcileSummary = { committed: 0, removed: 0, otherTables: 0 };
  const markers: string[] = [];
  for await (const info of ctx.store.list(pendingPrefix(ctx.prefix))) markers.push(info.key);
  // A marker left for an operator stops the table, but only once the others are reconciled:
  // their committed batches get their audit records and their uncommitted objects go, instead of
  // all of them waiting until the operator has decided on one (found in review).
  let leftForOperator: AuditlogError | undefined;
  for (const markerKey of markers) {
    const key = dataKeyForMarker(ctx.prefix, markerKey);
    if (key === undefined) {
      leftForOperator ??= new AuditlogError('STORAGE_IO', `${markerKey} is not a pending marker this version writes; inspect it and remove it by hand once its data object is checked`, {
        details: { key: markerKey },
      });
      continue;
    }
    let result: ReconcileResult;
    try {
      result = await reconcileObject(ctx, key, markerKey);
    } catch (error) {
      if (!isAuditlogError(error) || !LEFT_FOR_OPERATOR.has(error.code)) throw error;
      if (leftForOperator !== undefined) ctx.logger.error({ key, code: error.code }, error.message);
      leftForOperator ??= error;
      continue;
    }
    if (result === 'other-table') {
      summary.otherTables++;
      continue;
    }
    if (result === 'unrecorded') continue;
    if (result === 'committed') summary.committed++;
    else summary.removed++;
    ctx.logger.info({ key, result }, 'reconciled a batch left in flight by an earlier run');
  }
  if (leftForOperator !== undefined) throw leftForOperator;
  return summary;
}

/** `system N, oid M` of a marker's origin, `unknown` for what it does not say. */
function describeOrigin(origin: MarkerOrigin): string {
  return `system ${origin.system_identifier ?? 'unknown'}, oid ${origin.database_oid ?? 'unknown'}`;
}

/** Errors that leave a marker and its objects untouched for an operator to decide (the others, a failing store or database, stop at once). */
const LEFT_FOR_OPERATOR: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['STORAGE_CONFLICT', 'VERIFY_FAILED']);

export async function resolveAmbiguousCommit(ctx: ArchiveContext, key: string, markerKey: string): Promise<ReconcileResult> {
  return reconcileObject(ctx, key, markerKey);
}

async function reconcileObject(ctx: ArchiveContext, key: string, markerKey: string): Promise<ReconcileResult> {
  const { store } = ctx;
  const metaKey = metadataKeyFor(key);
  const marker = parseMarker(await store.get(markerKey));
  if (isForeignMarker(marker, ctx.origin)) {
    // Its batch was read from another database: nothing here can say whether its delete committed,
    // and removing its object could lose rows another archiver is about to delete. Touch nothing.
    // The advice must not strand that batch: with another prefix or name, no run ever looks at
    // its marker again, and its object (maybe the only copy of rows already deleted) is out of sight.
    const theirs = marker!.origin!;
    throw new AuditlogError(
      'STORAGE_CONFLICT',
      `pending marker ${markerKey} was written by an archiver reading database "${theirs.database}" (${describeOrigin(theirs)}), not this one ("${ctx.origin.database}", ${describeOrigin(ctx.origin)}): two configurations share one archive prefix for different databases, or this database was moved to another server (or renamed, under a marker without its oid) with batches in flight — nothing was changed. Finish those batches first: run the archiver of database "${theirs.database}" until no pending marker of this table is left (after a rename: rename it back for that run), or decide them by hand (runbooks.md, "A pending marker of another database"); only then give each configuration its own storage prefix (or databases[].name) — changing either before strands the batches in flight where no command looks`,
      { details: { key: markerKey, marker_database: theirs.database, marker_system_identifier: theirs.system_identifier, marker_database_oid: theirs.database_oid ?? null } },
    );
  }
  const ours = markerTableOf(ctx.plan);
  if (isOtherTablesMarker(marker, ours)) {
    // Another table's batch in our directory: its rows are not in our table, so "none of them is
    // still there" says nothing about its delete — removing its object here lost rows the other
    // archiver then deleted (found by probing). Leave it to that table's own runs.
    warnOtherTable(ctx, markerKey, key, `the marker names ${describeTable(marker!.table!)}`);
    return 'other-table';
  }
  const data = await store.get(key);
  const storedSidecar = await store.get(metaKey);
  // The sidecar key is shared by both codecs' objects of a batch name: one describing the other
  // codec's object is not this batch's, and is never taken for it or removed with it (a zstd
  // batch cut short before its upload, at the name of a committed gzip object, would otherwise
  // have removed that object's sidecar as "nothing written").
  const sidecarOfOther = storedSidecar !== undefined && describesOtherObject(storedSidecar, key);
  const metaBody = sidecarOfOther ? undefined : storedSidecar;
  const described = metaBody === undefined ? undefined : sidecarTable(metaBody);
  if (described !== undefined && !sameMarkerTable(described, ours)) {
    // A marker without a table identity (older versions) whose sidecar says whose batch it is.
    warnOtherTable(ctx, markerKey, key, `its metadata describes ${describeTable(described)}`);
    return 'other-table';
  }
  if (data === undefined || metaBody === undefined) {
    // The metadata is written after the verified upload and before any delete: without both, no
    // delete ran — unless storage removed a committed object's sidecar late (a rewrite's DELETE of
    // its first attempt's sidecar that completed after the rewrite committed), so the table is asked first.
    if (data !== undefined) await assertNotDeletedWithoutSidecar(ctx, key, data);
    await store.delete(key);
    if (!sidecarOfOther) await store.delete(metaKey);
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
  // another xmin is new (the key was reused after the archived one was deleted), or was changed
  // by the application: either way it is not this object's row. Locking them also waits (under
  // lock_timeout) for a delete transaction still running.
  const stillThere = new Set((await selectPresentRows(ctx.pool, ctx.plan, meta.primary_keys)).map((r) => JSON.stringify([r.key, r.xmin])));
  const anyArchivedVersionPresent = meta.primary_keys.some((k, i) => stillThere.has(JSON.stringify([k, meta.xmins[i]])));
  // The sidecar's transaction id decides when it has one (pending-marker.ts), the marker's otherwise.
  const txid = meta.delete_txid ?? marker?.delete_txid;
  const tableReplaced = marker?.table_oid !== undefined && marker.table_oid !== String(ctx.plan.oid);
  // With archived versions present in the same table the delete did not commit, whatever the id says (decideReconcile).
  const status = typeof txid !== 'string' || (anyArchivedVersionPresent && !tableReplaced) ? undefined : await selectTxidStatus(ctx, txid);
  const fromSidecar = meta.delete_txid !== undefined;
  const decision = decideReconcile({
    marker,
    metadataRunId: meta.run_id,
    metadataCreatedAt: meta.created_at,
    anyArchivedVersionPresent,
    tableReplaced,
    deleteStatus: fromSidecar ? undefined : status,
    sidecarDeleteStatus: fromSidecar ? status : undefined,
  });
  if (decision === 'wait') {
    throw new AuditlogError('DB_QUERY', `the delete transaction ${txid} of in-flight object ${key} is still open (a session of an earlier run that has not ended yet); rerun once it has ended, or end it with pg_terminate_backend`, {
      details: { key, txid },
    });
  }
  if (decision === 'conflict') {
    throw new AuditlogError(
      'STORAGE_CONFLICT',
      `in-flight object ${key}: its delete transaction ${txid} committed, yet rows of it are in ${ctx.plan.schema}.${ctx.plan.table} in their archived versions (key and xmin), and that name now holds another table (oid ${ctx.plan.oid}) than the one the batch was read from (oid ${marker?.table_oid ?? 'unknown'}: renamed or swapped since?); the object and its pending marker were left untouched and nothing was deleted — see docs/runbooks.md ("The table's name now holds another table")`,
      { details: { key, txid } },
    );
  }
  if (decision === 'keep') {
    // Recorded before the marker goes, which is the last trace of the batch outside the trail:
    // a crash in between only makes the next run record the object again, and the trail is
    // counted by object key (docs/compliance.md). Before, a crash between the two lost the record.
    // Counts from what was checked above (the deletion manifest, the bytes whose SHA-256 matched).
    const recorded = (await ctx.onReconciledCommitted?.({ key, rows: meta.primary_keys.length, bytesCompressed: data.length, batchRunId: meta.run_id })) ?? true;
    if (!recorded) {
      ctx.logger.warn({ key, marker: markerKey }, 'a batch left in flight turned out committed, but its audit record could not be written: its pending marker is kept, and the next run records it');
      return 'unrecorded';
    }
    await store.delete(markerKey);
    return 'committed';
  }
  // Found by test/resilience/sigkill-phases.test.ts: keeping the rows missing from the table
  // archived an updated row twice and a row the application deleted once.
  await store.delete(key);
  await store.delete(metaKey);
  await store.delete(markerKey);
  return 'removed';
}

/**
 * A data object without its sidecar is removed only when the table shows that its delete never
 * ran: every one of its rows is still there by key, or one is there in exactly its archived
 * version (the guarded delete removes all of an object's archived versions or none; the others were
 * then changed or deleted by the application). A committed object's rows are all gone, but for a
 * key the application reused, which holds another row. So an object that shows neither — the
 * committed rewrite whose sidecar a late DELETE removed (docs/reliability.md), or rows the
 * application deleted or changed, every one, while the batch was in flight — is left in place with
 * its marker: removing it could lose every row it holds. An object that does not decompress to
 * JSON lines is removed as before: every committed object was read back and decompressed to its
 * lines before its delete (a damaged upload that failed verification is the usual case). Only the
 * bytes can say that: a decoder that failed in itself (out of memory) stops the table with the
 * object and marker kept, and a zstd object declaring more than this table's batches hold
 * (decodeCeiling) is not decoded at all but left for an operator, like one the table cannot place.
 */
async function assertNotDeletedWithoutSidecar(ctx: ArchiveContext, key: string, data: Buffer): Promise<void> {
  const keep = (why: string, details: Record<string, number>, cause?: unknown): never => {
    throw new AuditlogError(
      'STORAGE_CONFLICT',
      `in-flight object ${key} has no metadata sidecar and ${why}: it may be a committed archive whose sidecar storage removed, so it was left untouched with its pending marker and nothing was deleted — see docs/runbooks.md ("A data object without its sidecar")`,
      { details: { key, ...details }, ...(cause === undefined ? {} : { cause }) },
    );
  };
  let lines: string[];
  try {
    lines = await readObjectLines(key, data, decodeCeiling(ctx.plan.maxBatchBytes));
  } catch (error) {
    if (error instanceof DecodeRefusedError) {
      keep(`${error.holds} of JSON lines, more than this table's batches hold (max_batch_bytes ${ctx.plan.maxBatchBytes}; decoded up to ${error.maxBytes}), so it was not decoded`, { declared_bytes: error.declaredBytes }, error);
    }
    if (error instanceof DecoderFailedError) throw decoderFailure(key, error, 'the object and its pending marker were left as they are and nothing was deleted');
    // Bytes that are not the codec's stream, or a line that is not JSON: a verdict about the object.
    if (isMalformedObjectError(error) || error instanceof SyntaxError) return;
    throw error;
  }
  if (lines.length === 0) return;
  let found: { present: number; unchanged: number };
  try {
    found = await countArchivedLinesPresent(ctx.pool, ctx.plan, lines);
  } catch (error) {
    // SQLSTATE class 22 or 23: a line the table's row type no longer reads (a column's type changed since) proves nothing either way.
    if (isDataException(error)) keep(`its lines cannot be compared with the table (${describeError(error)})`, { rows: lines.length }, error);
    throw error;
  }
  if (found.present === lines.length || found.unchanged > 0) return;
  keep(found.present === 0 ? `none of its ${lines.length} rows is in the table any more` : `only ${found.present} of its ${lines.length} rows are in the table, none of them in its archived version`, { rows: lines.length });
}

/**
 * The most JSON lines an object of this table is decoded for without its sidecar. Batches are cut
 * to max_batch_bytes by the bytes per row of the page before (batch-sizer.ts), so a page of wider
 * rows passes it, and a row over it is an object of its own: no bound below what this process can
 * read back at all is safe. Twice the setting first made a crashed batch of wide rows (60 rows of
 * 100 kB after narrow ones, 1 MiB setting) stop its table for an operator on every run (found in
 * review). So: at least what zstd decodes at all (512 MiB; reconciliation holds the lines, and the
 * CLI's heap is 1 GiB), more for a table configured for larger batches. A crafted object costs at
 * most this much memory, transiently (the zstd decoder is dropped after a large object).
 */
function decodeCeiling(maxBatchBytes: number): number {
  return Math.max(2 * maxBatchBytes, MAX_ZSTD_CONTENT_BYTES);
}

/** The JSON lines of a data object; rejects when it does not decompress or a line is not JSON. */
async function readObjectLines(key: string, data: Buffer, maxBytes: number): Promise<string[]> {
  const lines: string[] = [];
  await streamObjectLines(
    data,
    (line) => {
      JSON.parse(line);
      lines.push(line);
    },
    { compression: compressionOfDataKey(key) ?? 'gzip', maxBytes },
  );
  return lines;
}

/**
 * Whether a readable sidecar names another data object than `key`: its `data_object` (the object's
 * file name) differs, or, without one, its `compression` is not the key's codec. Unreadable: not
 * evidence of another object (parseMetadata reports it).
 */
function describesOtherObject(body: Buffer, key: string): boolean {
  let doc: { data_object?: unknown; compression?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    return false;
  }
  if (doc === null || typeof doc !== 'object') return false;
  if (typeof doc.data_object === 'string') return doc.data_object !== key.slice(key.lastIndexOf('/') + 1);
  return isCompression(doc.compression) && doc.compression !== compressionOfDataKey(key);
}

/** SQLSTATE class 22 (data exception) or 23 (a domain's NOT NULL or CHECK). */
function isDataException(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/** JSON-quoted: `a.b`.`c` and `a`.`b.c` must read differently in a message. */
function describeTable(t: MarkerTable): string {
  return `database ${JSON.stringify(t.database)} schema ${JSON.stringify(t.schema)} table ${JSON.stringify(t.table)}`;
}

function warnOtherTable(ctx: ArchiveContext, markerKey: string, key: string, why: string): void {
  ctx.logger.warn(
    { marker: markerKey, key },
    `pending marker ${markerKey} under this table's prefix belongs to another table (${why}, not ${describeTable(markerTableOf(ctx.plan))}): left alone with its objects; that table's own runs reconcile it — if no configuration archives that table, inspect it by hand (docs/runbooks.md)`,
  );
}

/** txid_status() of a delete transaction; one in this database's future counts as aborted. */
export async function selectTxidStatus(ctx: Pick<ArchiveContext, 'pool' | 'logger'>, txid: string): Promise<TxidStatus> {
  let status: string | null;
  try {
    const r = await ctx.pool.query<{ status: string | null }>('SELECT txid_status($1::bigint) AS status', [txid]);
    status = r.rows[0]?.status ?? null;
  } catch (error) {
    // 22023 "transaction ID … is in the future": this database never ran that transaction (a
    // failover to a standby that had not received it, a point-in-time restore), so no delete of
    // the batch committed here: as aborted. Without this the table failed with a raw error on
    // every run (found by probing).
    if ((error as { code?: unknown } | null)?.code !== '22023') throw error;
    ctx.logger.warn({ txid }, `the delete transaction ${txid} of a batch left in flight is in this database's future (a failover or a point-in-time restore since it ran?): its delete did not commit here`);
    status = 'aborted';
  }
  return status === 'committed' || status === 'aborted' || status === 'in progress' ? status : null;
}

/** Unreadable metadata of an in-flight batch is never guessed at: the object is left for inspection. */
function parseMetadata(body: Buffer, metaKey: string): BatchMetadata {
  try {
    const meta = JSON.parse(body.toString('utf8')) as BatchMetadata;
    if (Array.isArray(meta.primary_keys) && Array.isArray(meta.xmins) && meta.xmins.length === meta.primary_keys.length && typeof meta.sha256_compressed === 'string' && hasValidDeleteTxid(meta)) return meta;
  } catch {
    // reported below
  }
  throw new AuditlogError('VERIFY_FAILED', `metadata ${metaKey} of an in-flight batch is unreadable; left untouched for inspection (run validate)`, {
    details: { key: metaKey },
  });
}

