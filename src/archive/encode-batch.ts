/**
 * A batch as stored bytes: one JSON line per row, compressed with the table's codec, with SHA-256
 * of both forms. gzip runs on libuv's thread pool so the next page can be read meanwhile (codec.ts).
 */
import { webcrypto } from 'node:crypto';
import type { Compression } from '../core/compression.js';
import { compressBody, decompressBody } from './codec.js';

export { outputChunkSize } from './codec.js';

export interface EncodedBatch {
  compression: Compression;
  /** The JSON lines before compression, kept to check the stored object decodes back to exactly them. */
  raw: Buffer;
  body: Buffer;
  recordCount: number;
  uncompressedBytes: number;
  compressedBytes: number;
  sha256Uncompressed: string;
  sha256Compressed: string;
}

/** `raw`: the JSON lines (UTF-8), each followed by '\n' — the object's body before compression. */
export async function encodeBatch(raw: Buffer, compression: Compression, level: number): Promise<EncodedBatch> {
  // Hashing first: it runs off the main thread while a zstd compression holds it.
  const hashed = sha256HexOffThread(raw);
  const [body, sha256Uncompressed] = await Promise.all([compressBody(compression, raw, level), hashed]);
  return {
    compression,
    raw,
    body,
    recordCount: countLines(raw),
    uncompressedBytes: raw.length,
    compressedBytes: body.length,
    sha256Uncompressed,
    sha256Compressed: await sha256HexOffThread(body),
  };
}

/** WebCrypto digests run on libuv's thread pool: hashing megabytes does not stall the event loop. */
async function sha256HexOffThread(data: Buffer): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
}

/** `compression`: by default read from the bytes' magic number (for tests and tools; the archive goes by the key's suffix). */
export async function decodeBatch(body: Buffer, compression: Compression = body.readUInt32LE(0) === 0xfd2fb528 ? 'zstd' : 'gzip'): Promise<{ raw: Buffer; lines: string[] }> {
  const raw = await decompressBody(compression, body);
  const text = raw.toString('utf8');
  return { raw, lines: text === '' ? [] : text.slice(0, text.endsWith('\n') ? -1 : undefined).split('\n') };
}

/** Lines end with '\n' and JSON text never holds a raw newline, so counting bytes is exact. */
export function countLines(raw: Buffer): number {
  let n = 0;
  let at = raw.indexOf(10);
  while (at !== -1) {
    n++;
    at = raw.indexOf(10, at + 1);
  }
  return n;
}
