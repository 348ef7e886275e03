/**
 * The record that makes a multipart upload resumable after a crash, and the pure decisions around
 * it. One record per object key, written in the bucket right after CreateMultipartUpload and
 * deleted after Complete or Abort, at `<prefix>_auditlog/multipart/<sha256 of the full key>.json`
 * (hashed: a full key may be longer than a key segment is allowed to be, and `/` would nest).
 *
 * A record is only trusted for the exact same body: same size, same SHA-256, same part size, same
 * checksum mode and write settings. Anything else restarts the upload, which is always safe.
 */
import { createHash } from 'node:crypto';
import { STATE_PREFIX } from '../core/archive-layout.js';

export const MULTIPART_STATE_PREFIX = `${STATE_PREFIX}multipart/`;
const FORMAT = 'auditlog-multipart-state';

export interface MultipartState {
  /** The full object key (store prefix included) the upload writes. */
  key: string;
  upload_id: string;
  part_size: number;
  size: number;
  /** Hex SHA-256 of the whole body. */
  sha256: string;
  /** Whether parts carry ChecksumSHA256: an upload created without it cannot complete parts with it. */
  checksum: 'SHA256' | 'none';
  /** Content type, storage class and encryption the upload was created with. */
  settings: string;
  created_at: string;
}

/** The record's key relative to the store prefix. */
export function multipartStateKey(fullKey: string): string {
  return `${MULTIPART_STATE_PREFIX}${createHash('sha256').update(fullKey, 'utf8').digest('hex')}.json`;
}

export function serializeMultipartState(state: MultipartState): Buffer {
  return Buffer.from(JSON.stringify({ format: FORMAT, version: 1, ...state }) + '\n', 'utf8');
}

/** The record, or undefined when the bytes are not one this version writes (then it is never trusted). */
export function parseMultipartState(body: Buffer): MultipartState | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v.format !== FORMAT || v.version !== 1) return undefined;
  const isString = (x: unknown): x is string => typeof x === 'string' && x.length > 0;
  const isSize = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x > 0;
  if (!isString(v.key) || !isString(v.upload_id) || !isSize(v.part_size) || !isSize(v.size) || !isString(v.created_at) || typeof v.settings !== 'string') return undefined;
  if (typeof v.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(v.sha256)) return undefined;
  if (v.checksum !== 'SHA256' && v.checksum !== 'none') return undefined;
  return {
    key: v.key,
    upload_id: v.upload_id,
    part_size: v.part_size,
    size: v.size,
    sha256: v.sha256,
    checksum: v.checksum,
    settings: v.settings,
    created_at: v.created_at,
  };
}

/** Whether an earlier upload may be continued for this body: everything but the upload id and time must be equal. */
export function canResume(state: MultipartState, wanted: Omit<MultipartState, 'upload_id' | 'created_at'>): boolean {
  return (
    state.key === wanted.key &&
    state.size === wanted.size &&
    state.sha256 === wanted.sha256 &&
    state.part_size === wanted.part_size &&
    state.checksum === wanted.checksum &&
    state.settings === wanted.settings
  );
}

export interface PartRange {
  partNumber: number;
  start: number;
  end: number;
}

export function planParts(size: number, partSize: number): PartRange[] {
  const ranges: PartRange[] = [];
  for (let start = 0, partNumber = 1; start < size; start += partSize, partNumber += 1) {
    ranges.push({ partNumber, start, end: Math.min(size, start + partSize) });
  }
  return ranges;
}

/** A part as ListParts reports it. */
export interface ListedPart {
  partNumber: number;
  size: number;
  etag: string;
  /** Base64 SHA-256, when the server keeps part checksums (S3 does for uploads created with one). */
  checksumSha256?: string;
}

/**
 * Whether a part already on the server holds exactly our bytes. The server's SHA-256 when it
 * reports one; otherwise the ETag, which is the part's MD5 on S3 without SSE-KMS and on most
 * S3-compatible servers. Neither → the part is uploaded again (never trusted by size alone).
 */
export function isSamePart(listed: ListedPart, ours: { size: number; sha256Base64: string; md5Hex: () => string }): boolean {
  if (listed.size !== ours.size) return false;
  if (listed.checksumSha256 !== undefined) return listed.checksumSha256 === ours.sha256Base64;
  return listed.etag.replace(/"/g, '').toLowerCase() === ours.md5Hex();
}
