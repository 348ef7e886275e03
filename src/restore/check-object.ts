/**
 * Integrity of one archive object before a single row of it is loaded: its metadata is present
 * and readable, the stored bytes and the decompressed bytes have the SHA-256 the metadata
 * records, and the object holds exactly `record_count` lines, one per key of the deletion
 * manifest. Pure apart from decompression.
 * A sidecar is read twice: at selection, kept as a summary without the manifest, and again when
 * its object is loaded, where its bytes must be the ones selected.
 */
import { FORMAT_NAME, sha256Hex, type BatchMetadata } from '../core/batch-metadata.js';
import { compressionOfDataKey } from '../core/compression.js';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { DecoderFailedError, decoderFailure, decompressBody } from '../archive/codec.js';
import { countLines } from '../archive/encode-batch.js';
import type { SidecarSummary } from './sidecar-summary.js';

export interface CheckedObject {
  key: string;
  meta: BatchMetadata;
  /** The decompressed JSON lines, each ending in '\n'. */
  raw: Buffer;
}

function corrupt(key: string, problem: string, check: string): AuditlogError {
  return corruptObjectError(key, `archive object ${key} is corrupt or incomplete: ${problem}; nothing of it was loaded`, 'restore it from a backup copy', check);
}

/**
 * The error stops the restore under `--on-corrupt fail`, so its advice offers `--on-corrupt skip`;
 * under skip the object is only reported (skippedCorruptMessage), where that advice made no sense.
 * `finding` and `remedy` are kept apart in the details for that.
 */
function corruptObjectError(key: string, finding: string, remedy: string, check: string): AuditlogError {
  return new AuditlogError('RESTORE_CORRUPT_OBJECT', `${finding} (${remedy}, or pass --on-corrupt skip to restore the others)`, {
    details: { key, check, finding, remedy },
  });
}

/** An object `--on-corrupt skip` left out, as the summary reports it: the others are restored, so only its own remedy. */
export function skippedCorruptMessage(error: unknown): string {
  if (isAuditlogError(error) && typeof error.details.finding === 'string' && typeof error.details.remedy === 'string') {
    return `${error.details.finding} (skipped: --on-corrupt skip; ${error.details.remedy})`;
  }
  return describeError(error);
}

/** Parses and sanity-checks a sidecar; `expected` is the table the restore is for. */
export function parseObjectMetadata(key: string, body: Buffer | undefined, expected: { database: string; schema: string; table: string }): BatchMetadata {
  if (body === undefined) throw corrupt(key, 'its metadata sidecar is missing', 'metadata');
  let meta: BatchMetadata;
  try {
    meta = JSON.parse(body.toString('utf8')) as BatchMetadata;
  } catch {
    throw corrupt(key, 'its metadata sidecar is not valid JSON', 'metadata');
  }
  const wellFormed =
    meta !== null &&
    typeof meta === 'object' &&
    meta.format === FORMAT_NAME &&
    meta.format_version === 1 &&
    Array.isArray(meta.columns) &&
    meta.columns.length > 0 &&
    meta.columns.every((c) => typeof c?.name === 'string' && typeof c?.type === 'string') &&
    Array.isArray(meta.primary_key_columns) &&
    meta.primary_key_columns.length > 0 &&
    meta.primary_key_columns.every((k) => meta.columns.some((c) => c.name === k)) &&
    Array.isArray(meta.primary_keys) &&
    Number.isInteger(meta.record_count) &&
    typeof meta.sha256_compressed === 'string' &&
    typeof meta.sha256_uncompressed === 'string' &&
    Array.isArray(meta.json_null_values ?? []) &&
    Array.isArray(meta.json_text_values ?? []);
  if (!wellFormed) throw corrupt(key, 'its metadata sidecar lacks fields of format_version 1', 'metadata');
  if (meta.database !== expected.database || meta.schema !== expected.schema || meta.table !== expected.table) {
    throw corrupt(key, `its metadata names ${meta.database}/${meta.schema}.${meta.table}, not the table being restored`, 'metadata');
  }
  // Both codecs' objects of one batch name share the sidecar key: it must describe this one.
  // (Every sidecar names its codec; one without is taken as gzip, the only codec before zstd.)
  const byName = compressionOfDataKey(key) ?? 'gzip';
  if ((meta.compression ?? 'gzip') !== byName) {
    throw corrupt(key, `its metadata sidecar says compression ${JSON.stringify(meta.compression)} but the object is ${byName} by its name (the sidecar describes another object of this batch name)`, 'metadata');
  }
  if (meta.primary_keys.length !== meta.record_count) {
    throw corrupt(key, `its manifest lists ${meta.primary_keys.length} keys but record_count is ${meta.record_count}`, 'record_count');
  }
  // The row versions are kept (one short string per row, beside the manifest's keys): they tell a
  // copied object (the same key and xmin twice) from a key archived twice by one run (deleted and
  // inserted again during it), which is no damage (load-batch.ts, found in review).
  return meta;
}

/** Sidecar problems that may be an archive run at work on the batch, not damage (restore-table.ts asks the store again). */
export function isSidecarProblem(error: AuditlogError): boolean {
  return error.details.check === 'metadata' || error.details.check === 'metadata_changed';
}

/**
 * The sidecar read again when its object is loaded (selection kept only a summary, without the
 * manifest): it must be the very bytes selected, or the checks below would prove the object
 * against another sidecar than the one the ordering, watermark and drift plan were made from.
 */
export function rereadObjectMetadata(key: string, body: Buffer | undefined, selected: SidecarSummary, expected: { database: string; schema: string; table: string }): BatchMetadata {
  if (body !== undefined && sha256Hex(body) !== selected.sidecar_sha256) {
    throw corruptObjectError(
      key,
      `archive object ${key}: its metadata sidecar changed between selection and load (an archive run rewrote it, or it was edited); nothing of it was loaded`,
      'restore again to read it as it is now',
      'metadata_changed',
    );
  }
  return parseObjectMetadata(key, body, expected);
}

export async function checkObject(key: string, body: Buffer | undefined, meta: BatchMetadata): Promise<CheckedObject> {
  if (body === undefined) throw corrupt(key, 'the data object is missing', 'object');
  const stored = sha256Hex(body);
  if (stored !== meta.sha256_compressed) throw corrupt(key, `SHA-256 of the stored bytes is ${stored}, metadata says ${meta.sha256_compressed}`, 'sha256_compressed');
  let raw: Buffer;
  try {
    raw = await decompressBody(compressionOfDataKey(key) ?? 'gzip', body, { expectedBytes: typeof meta.uncompressed_bytes === 'number' ? meta.uncompressed_bytes : undefined });
  } catch (error) {
    // Not a verdict about the object (out of memory): the restore stops rather than skip it as corrupt.
    if (error instanceof DecoderFailedError) throw decoderFailure(key, error, 'nothing of it was loaded');
    throw corrupt(key, `it does not decompress (${(error as Error).message})`, 'decompress');
  }
  const unpacked = sha256Hex(raw);
  if (unpacked !== meta.sha256_uncompressed) throw corrupt(key, `SHA-256 of the decompressed bytes is ${unpacked}, metadata says ${meta.sha256_uncompressed}`, 'sha256_uncompressed');
  const lines = countLines(raw);
  if (lines !== meta.record_count || (raw.length > 0 && raw[raw.length - 1] !== 10)) {
    throw corrupt(key, `it holds ${lines} lines but record_count is ${meta.record_count}`, 'record_count');
  }
  return { key, meta, raw };
}
