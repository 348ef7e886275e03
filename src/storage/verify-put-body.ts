import { createHash } from 'node:crypto';
import { AuditlogError } from '../core/errors.js';

/**
 * Refuses to write a body whose SHA-256 is not the one the caller computed: the checksum is the
 * proof of I3, so a mismatch here is a bug or memory corruption, and storing the bytes would
 * make a wrong object look verified. Returns the digest (raw bytes) for the store to reuse.
 */
export function verifyPutBody(body: Buffer, sha256Hex: string, target: string): Buffer {
  if (!/^[0-9a-f]{64}$/i.test(sha256Hex)) {
    throw new AuditlogError('VERIFY_FAILED', `put ${target} refused: sha256Hex must be 64 hex characters, got ${JSON.stringify(sha256Hex.slice(0, 80))}`, {
      details: { target },
    });
  }
  const digest = createHash('sha256').update(body).digest();
  if (digest.toString('hex') !== sha256Hex.toLowerCase()) {
    throw new AuditlogError(
      'VERIFY_FAILED',
      `put ${target} refused: the body's SHA-256 is ${digest.toString('hex')} but the caller expected ${sha256Hex.toLowerCase()}; nothing was written — this is a bug, please report it`,
      { details: { target, actualSha256: digest.toString('hex'), expectedSha256: sha256Hex.toLowerCase(), bytes: body.length } },
    );
  }
  return digest;
}
