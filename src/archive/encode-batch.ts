/**
 * A batch as stored bytes: one JSON line per row, gzip-compressed, with SHA-256 of both forms.
 * Compression runs on libuv's thread pool so the next page can be read meanwhile.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { sha256Hex } from '../core/batch-metadata.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface EncodedBatch {
  body: Buffer;
  recordCount: number;
  uncompressedBytes: number;
  compressedBytes: number;
  sha256Uncompressed: string;
  sha256Compressed: string;
}

export async function encodeBatch(lines: readonly string[], level: number): Promise<EncodedBatch> {
  const raw = Buffer.from(lines.length === 0 ? '' : lines.join('\n') + '\n', 'utf8');
  const body = await gzipAsync(raw, { level });
  return {
    body,
    recordCount: lines.length,
    uncompressedBytes: raw.length,
    compressedBytes: body.length,
    sha256Uncompressed: sha256Hex(raw),
    sha256Compressed: sha256Hex(body),
  };
}

export async function decodeBatch(body: Buffer): Promise<{ raw: Buffer; lines: string[] }> {
  const raw = await gunzipAsync(body);
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
