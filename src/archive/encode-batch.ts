/**
 * A batch as stored bytes: one JSON line per row, gzip-compressed, with SHA-256 of both forms.
 * Compression runs on libuv's thread pool so the next page can be read meanwhile.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { webcrypto } from 'node:crypto';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface EncodedBatch {
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
export async function encodeBatch(raw: Buffer, level: number): Promise<EncodedBatch> {
  const [body, sha256Uncompressed] = await Promise.all([
    gzipAsync(raw, { level, memLevel: MEM_LEVEL, chunkSize: outputChunkSize(Math.ceil(raw.length / COMPRESSED_FRACTION)) }),
    sha256HexOffThread(raw),
  ]);
  return {
    raw,
    body,
    recordCount: countLines(raw),
    uncompressedBytes: raw.length,
    compressedBytes: body.length,
    sha256Uncompressed,
    sha256Compressed: await sha256HexOffThread(body),
  };
}

/**
 * zlib's largest hash table (256 KiB more per compression in flight than the default 8): on the
 * benchmark's JSON lines 9–15 % less CPU at levels 1–6 for the same or slightly smaller output.
 * The stream is ordinary gzip either way; only its bytes differ. Committed objects are matched by
 * their uncompressed SHA-256, so another level or memLevel does not matter there; only a data
 * object left with neither sidecar nor marker (e.g. a marker removed by hand) is compared
 * compressed, and is then refused as STORAGE_CONFLICT rather than rewritten — as after any change
 * of compression_level.
 */
const MEM_LEVEL = 9;

/**
 * JSON lines compress to well under a quarter of their size. The output chunk is sized for that:
 * zlib's result is a view into its chunk, so a chunk the size of the input (as before) kept ~6×
 * the compressed bytes alive per batch until the batch was done, and the extra gigabyte of
 * short-lived buffers over the benchmark run cost dozens of full garbage collections. Output that
 * does not fit takes another chunk.
 */
const COMPRESSED_FRACTION = 4;

/**
 * zlib hands each output chunk back to the event loop (16 KiB by default): for megabyte batches
 * that is thousands of main-thread callbacks and copies. One chunk of about the expected size.
 */
export function outputChunkSize(expectedBytes: number): number {
  return Math.min(Math.max(expectedBytes + 1024, 64 * 1024), 64 * 1024 * 1024);
}

/** WebCrypto digests run on libuv's thread pool: hashing megabytes does not stall the event loop. */
async function sha256HexOffThread(data: Buffer): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
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
