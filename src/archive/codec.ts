/**
 * Compressing and decompressing data objects, per codec (names and suffixes: core/compression.ts).
 * gzip is Node's zlib on libuv's thread pool. zstd is @bokuweb/zstd-wasm (DESIGN.md §5: Node 20
 * has no zstd, and the native packages download prebuilt binaries or need a compiler at install):
 * synchronous, on the main thread, in a WASM heap of at most 2 GiB that never shrinks.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { COMPRESSION_SPECS, MAX_ZSTD_CONTENT_BYTES, type Compression } from '../core/compression.js';
import { AuditlogError } from '../core/errors.js';
import { readZstdFrame } from '../core/zstd-frame.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);


/** A stored object that is not what its codec can decode (or not within the limits above). */
export class UndecodableObjectError extends Error {
  override readonly name = 'UndecodableObjectError';
}

/**
 * zlib's largest hash table (256 KiB more per compression in flight than the default 8): on the
 * benchmark's JSON lines 9–15 % less CPU at levels 1–6 for the same or slightly smaller output.
 * The stream is ordinary gzip either way; only its bytes differ. Committed objects are matched by
 * their uncompressed SHA-256, so another level or memLevel does not matter there; only a data
 * object left with neither sidecar nor marker (e.g. a marker removed by hand) is compared
 * compressed, and is then refused as STORAGE_CONFLICT rather than rewritten — as after any change
 * of compression_level or of compression.
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

interface ZstdWasm {
  init(): Promise<void>;
  compress(buf: Uint8Array, level: number): Uint8Array;
  decompress(buf: Uint8Array): Uint8Array;
}

let zstdLoaded: Promise<ZstdWasm> | undefined;

/**
 * Loaded on first use (no work at import time); the package finds its .wasm beside its own files.
 * Its init() must run once per process: a second one swaps the WASM instance and memory under the
 * functions already bound to the first (found by a test: objects then failed to decode, -72).
 * Nothing else may call it — hence the one memoised promise.
 */
function loadZstd(): Promise<ZstdWasm> {
  zstdLoaded ??= (async () => {
    const mod = (await import('@bokuweb/zstd-wasm')) as unknown as { default: ZstdWasm };
    await mod.default.init();
    return mod.default;
  })();
  return zstdLoaded;
}

export async function compressBody(compression: Compression, raw: Buffer, level: number): Promise<Buffer> {
  if (compression === 'gzip') return gzipAsync(raw, { level, memLevel: MEM_LEVEL, chunkSize: outputChunkSize(Math.ceil(raw.length / COMPRESSED_FRACTION)) });
  // max_batch_bytes is at most this with zstd (schema.ts): only a single row this large gets here.
  if (raw.length > MAX_ZSTD_CONTENT_BYTES) {
    throw new AuditlogError('ROW_TOO_LARGE', `a batch of ${raw.length} bytes of JSON lines is over the ${MAX_ZSTD_CONTENT_BYTES} bytes a zstd object holds (a row that large); nothing was uploaded or deleted for it — archive this table with compression: gzip`, {
      details: { bytes: raw.length, limit: MAX_ZSTD_CONTENT_BYTES },
    });
  }
  const zstd = await loadZstd();
  const out = zstd.compress(raw, level);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * `expectedBytes`: the decompressed size the sidecar (or the batch being verified) records, when
 * known. A zstd object must be one frame declaring exactly that size (readZstdFrame); anything
 * else is refused as undecodable, never handed to the WASM decoder.
 */
export async function decompressBody(compression: Compression, body: Buffer, expectedBytes?: number): Promise<Buffer> {
  if (compression === 'gzip') {
    try {
      return await gunzipAsync(body, { chunkSize: outputChunkSize(expectedBytes ?? body.length * 4) });
    } catch (error) {
      throw new UndecodableObjectError(`not a complete gzip stream (${(error as Error).message})`, { cause: error });
    }
  }
  const contentSize = checkZstdBody(body, expectedBytes);
  const zstd = await loadZstd();
  let out: Uint8Array;
  try {
    out = zstd.decompress(body);
  } catch (error) {
    throw new UndecodableObjectError(`zstd could not decode it (${(error as Error).message})`, { cause: error });
  }
  if (out.byteLength !== contentSize) throw new UndecodableObjectError(`it decoded to ${out.byteLength} bytes, its frame header declares ${contentSize}`);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** The declared content size of a zstd object that may be decoded; throws UndecodableObjectError otherwise. */
export function checkZstdBody(body: Buffer, expectedBytes?: number): number {
  const frame = readZstdFrame(body);
  if ('problem' in frame) throw new UndecodableObjectError(`not a single complete zstd frame: ${frame.problem}`);
  if (frame.contentSize > MAX_ZSTD_CONTENT_BYTES) {
    throw new UndecodableObjectError(`its zstd frame declares ${frame.contentSize} bytes of content, over the ${MAX_ZSTD_CONTENT_BYTES} this tool decodes`);
  }
  if (expectedBytes !== undefined && frame.contentSize !== expectedBytes) {
    throw new UndecodableObjectError(`its zstd frame declares ${frame.contentSize} bytes of content, the metadata says ${expectedBytes}`);
  }
  return frame.contentSize;
}

export function contentTypeOf(compression: Compression): string {
  return COMPRESSION_SPECS[compression].contentType;
}
