/**
 * Verification before delete (I3): the object is read back from the store — not just HEADed —
 * and must be byte for byte what was written (so its size and SHA-256 are), and must decompress
 * to exactly the JSON lines of the batch (so its record count is). Byte comparison proves more
 * than a second hash and costs far less.
 */
import { sha256Hex } from '../core/batch-metadata.js';
import { AuditlogError } from '../core/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import { DecoderFailedError, decompressBody } from './codec.js';
import { countLines, type EncodedBatch } from './encode-batch.js';

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
  if (!body.equals(expected.body)) fail('SHA-256 of the stored bytes', sha256Hex(body), expected.sha256Compressed);
  let raw: Buffer;
  try {
    raw = await decompressBody(expected.compression, body, { expectedBytes: expected.uncompressedBytes });
  } catch (error) {
    // A decoder that failed in itself (out of memory) proves nothing about the object: said as such.
    const what = error instanceof DecoderFailedError ? 'could not be decoded here' : 'does not decompress';
    throw new AuditlogError('VERIFY_FAILED', `verification of ${key} failed: the stored object ${what} (${(error as Error).message}); nothing was deleted for this batch`, {
      details: { key, check: 'decompress' },
      cause: error,
    });
  }
  if (!raw.equals(expected.raw)) {
    const lines = countLines(raw);
    if (lines !== expected.recordCount) fail('record count', lines, expected.recordCount);
    fail('SHA-256 of the decompressed bytes', sha256Hex(raw), expected.sha256Uncompressed);
  }
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
