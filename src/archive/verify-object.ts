/**
 * Verification before delete (I3): the object is read back from the store — not just HEADed —
 * and its size, SHA-256 of the stored bytes, SHA-256 after decompression and line count must all
 * equal what was written.
 */
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { sha256Hex } from '../core/batch-metadata.js';
import { AuditlogError } from '../core/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import { countLines, type EncodedBatch } from './encode-batch.js';

const gunzipAsync = promisify(gunzip);

export async function verifyStoredBatch(store: ObjectStore, key: string, expected: EncodedBatch): Promise<void> {
  const fail = (what: string, found: string | number, wanted: string | number): never => {
    throw new AuditlogError('VERIFY_FAILED', `verification of ${key} failed: ${what} is ${found}, expected ${wanted}; nothing was deleted for this batch`, {
      details: { key, check: what },
    });
  };
  const stored = await store.get(key);
  if (stored === undefined) fail('object', 'missing', 'present');
  const body = stored!;
  if (body.length !== expected.compressedBytes) fail('stored size', body.length, expected.compressedBytes);
  const storedSha = sha256Hex(body);
  if (storedSha !== expected.sha256Compressed) fail('SHA-256 of the stored bytes', storedSha, expected.sha256Compressed);
  let raw: Buffer;
  try {
    raw = await gunzipAsync(body);
  } catch (error) {
    throw new AuditlogError('VERIFY_FAILED', `verification of ${key} failed: the stored object does not decompress; nothing was deleted for this batch`, {
      details: { key, check: 'decompress' },
      cause: error,
    });
  }
  const rawSha = sha256Hex(raw);
  if (rawSha !== expected.sha256Uncompressed) fail('SHA-256 of the decompressed bytes', rawSha, expected.sha256Uncompressed);
  const lines = countLines(raw);
  if (lines !== expected.recordCount) fail('record count', lines, expected.recordCount);
}

/** The sidecar is small: read it back and compare byte for byte. */
export async function verifyStoredBytes(store: ObjectStore, key: string, expected: Buffer): Promise<void> {
  const stored = await store.get(key);
  if (stored === undefined || !stored.equals(expected)) {
    throw new AuditlogError('VERIFY_FAILED', `verification of ${key} failed: the stored metadata differs from what was written; nothing was deleted for this batch`, {
      details: { key, check: 'metadata' },
    });
  }
}
