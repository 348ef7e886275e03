/**
 * Compressing and decompressing data objects, per codec (names and suffixes: core/compression.ts).
 * gzip is Node's zlib on libuv's thread pool. zstd is @bokuweb/zstd-wasm (DESIGN.md §5: Node 20
 * has no zstd, and the native packages download prebuilt binaries or need a compiler at install):
 * synchronous, on the main thread, in a WASM heap of at most 2 GiB that never shrinks: an instance
 * that decoded a large object is dropped so the heap goes with it (loadZstd).
 */
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { COMPRESSION_SPECS, MAX_ZSTD_CONTENT_BYTES, type Compression } from '../core/compression.js';
import { AuditlogError } from '../core/errors.js';
import { readZstdFrame } from '../core/zstd-frame.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);


/** A stored object that is not what its codec can decode (or not within the limits above): a verdict about the object. */
export class UndecodableObjectError extends Error {
  override readonly name = 'UndecodableObjectError';
}

/**
 * A zstd object declaring more content than the caller can justify (DecodeBounds.maxBytes): not
 * decoded, and no verdict about the object — a batch may pass max_batch_bytes (batch-sizer.ts).
 */
export class DecodeRefusedError extends Error {
  override readonly name = 'DecodeRefusedError';
  constructor(
    message: string,
    /** What the object holds, in words: "declares N bytes" (zstd's header) or "decodes to more than N bytes" (gzip, read that far). */
    readonly holds: string,
    /** zstd: the size its header declares; gzip: the bytes decoded when reading stopped. */
    readonly declaredBytes: number,
    readonly maxBytes: number,
  ) {
    super(message);
  }
}

/**
 * The decoder itself failed (out of memory, an allocation refused, a WASM trap): says nothing
 * about the object, so no caller may count it as "does not decompress" — it is the run's failure.
 */
export class DecoderFailedError extends Error {
  override readonly name = 'DecoderFailedError';
}

/**
 * The run's error for a decoder that failed on `key`: one wording for validate, restore and
 * reconciliation, none of which may judge the object by it.
 */
export function decoderFailure(key: string, error: DecoderFailedError, kept: string): AuditlogError {
  return new AuditlogError('INTERNAL', `could not decode ${key}: ${error.message} — a failure of this process, not a verdict on the object; ${kept} (run again, with more memory if it recurs)`, {
    details: { key },
    cause: error,
  });
}

/** Whether a decoding failure is a verdict about the bytes (undecodable, or zlib's own data errors from a streamed gunzip). */
export function isMalformedObjectError(error: unknown): boolean {
  if (error instanceof UndecodableObjectError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

export interface DecodeBounds {
  /** The decompressed size the sidecar (or the batch being verified) records: a zstd frame must declare exactly it. */
  expectedBytes?: number | undefined;
  /** Without a sidecar, the most a zstd frame may declare before it is decoded (DecodeRefusedError above it). */
  maxBytes?: number | undefined;
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
 * Decoded output above which the instance is dropped afterwards. WASM memory only grows: a 300 MiB
 * object left the process ~300 MiB larger for its life (and a crafted 16 kB object can declare
 * that much). Dropped, it is collected: measured, RSS went from 349 MB back to 48 MB after a
 * 300 MiB frame (docs/reliability.md). Below this, keeping the instance saves the reload (~40 ms);
 * above it the reload is lost in the decode itself (65 MiB: 230 ms dropping, 248 ms keeping).
 */
export const DROP_DECODER_AFTER_BYTES = 64 * 1024 * 1024;

/** Instances loaded so far in this process (a test reads it to see a large decode dropped one). */
let zstdInstances = 0;
export function zstdInstancesLoaded(): number {
  return zstdInstances;
}

/**
 * Loaded on first use (no work at import time); the package finds its .wasm beside its own files.
 * Its init() must run once per module instance: a second one swaps the WASM instance and memory
 * under the functions already bound to the first (found by a test: objects then failed to decode,
 * -72) — hence the one memoised promise. A fresh instance is a fresh load of the package's
 * CommonJS files: they are evicted from require's cache at once, so that once dropped (below)
 * nothing but a caller still using it holds the instance and its heap.
 */
function loadZstd(): Promise<ZstdWasm> {
  zstdLoaded ??= (async () => {
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@bokuweb/zstd-wasm');
    const dir = dirname(entry) + sep;
    const mod = require(entry) as ZstdWasm;
    for (const key of Object.keys(require.cache)) if (key.startsWith(dir)) delete require.cache[key];
    await mod.init();
    zstdInstances++;
    return mod;
  })();
  return zstdLoaded;
}

/** The next use loads a new instance; this one goes with its last user. */
function dropZstd(): void {
  zstdLoaded = undefined;
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
 * A zstd object must be one frame declaring exactly `bounds.expectedBytes` when given, and at most
 * `bounds.maxBytes` (readZstdFrame): anything else is refused before the WASM decoder allocates
 * what the header declares. Failures: UndecodableObjectError (the bytes), DecodeRefusedError (over
 * the caller's bound), DecoderFailedError (the decoder itself).
 */
export async function decompressBody(compression: Compression, body: Buffer, bounds: DecodeBounds = {}): Promise<Buffer> {
  if (compression === 'gzip') {
    // With the sidecar's size known, a stream inflating past it (damage, or a crafted "gzip bomb"
    // under a matching sidecar) is stopped one byte over it instead of filling memory.
    const limit = bounds.expectedBytes ?? bounds.maxBytes;
    try {
      return await gunzipAsync(body, { chunkSize: outputChunkSize(bounds.expectedBytes ?? body.length * 4), ...(limit === undefined ? {} : { maxOutputLength: Math.max(limit + 1, 1) }) });
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' && limit !== undefined) {
        if (bounds.expectedBytes !== undefined) throw new UndecodableObjectError(`it decodes to more than the ${bounds.expectedBytes} bytes the metadata says`, { cause: error });
        throw new DecodeRefusedError(`it decodes to more than the ${limit} bytes it may hold here`, `decodes to more than ${limit} bytes`, limit + 1, limit);
      }
      if (!isMalformedObjectError(error)) throw new DecoderFailedError(`the gzip decoder failed (${(error as Error).message})`, { cause: error });
      throw new UndecodableObjectError(`not a complete gzip stream (${(error as Error).message})`, { cause: error });
    }
  }
  const contentSize = checkZstdBody(body, bounds);
  const zstd = await loadZstd();
  let out: Uint8Array;
  try {
    out = zstd.decompress(body);
  } catch (error) {
    // The package reports a zstd error code (the bytes) as a plain Error "Failed to compress with
    // code -N" (sic). Anything else — a RangeError allocating, a WASM trap when its heap cannot
    // grow — is the reader's failure, after which the instance is not trusted either.
    // The package's error is not kept as the cause: V8 holds a thrown error's stack frames (the
    // package's functions, and through them the instance and its heap) until its stack is read,
    // which kept a dropped instance's 100 MiB alive (found in review). Its message says it all.
    if (isZstdCodeError(error)) {
      // Malformed past the start: the heap grew to what the frame declared all the same.
      if (contentSize > DROP_DECODER_AFTER_BYTES) dropZstd();
      throw new UndecodableObjectError(`zstd could not decode it (${(error as Error).message})`);
    }
    dropZstd();
    throw new DecoderFailedError(`the zstd decoder failed (${error instanceof Error ? `${error.name}: ${error.message}` : String(error)})`);
  }
  if (contentSize > DROP_DECODER_AFTER_BYTES) dropZstd();
  if (out.byteLength !== contentSize) throw new UndecodableObjectError(`it decoded to ${out.byteLength} bytes, its frame header declares ${contentSize}`);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

function isZstdCodeError(error: unknown): boolean {
  return error instanceof Error && error.constructor === Error && /^Failed to \w+ with code -?\d+$/.test(error.message);
}

/** The declared content size of a zstd object that may be decoded; throws UndecodableObjectError or DecodeRefusedError otherwise. */
export function checkZstdBody(body: Buffer, bounds: DecodeBounds = {}): number {
  const frame = readZstdFrame(body);
  if ('problem' in frame) throw new UndecodableObjectError(`not a single complete zstd frame: ${frame.problem}`);
  if (frame.contentSize > MAX_ZSTD_CONTENT_BYTES) {
    throw new UndecodableObjectError(`its zstd frame declares ${frame.contentSize} bytes of content, over the ${MAX_ZSTD_CONTENT_BYTES} this tool decodes`);
  }
  const { expectedBytes, maxBytes } = bounds;
  if (expectedBytes !== undefined && frame.contentSize !== expectedBytes) {
    throw new UndecodableObjectError(`its zstd frame declares ${frame.contentSize} bytes of content, the metadata says ${expectedBytes}`);
  }
  if (maxBytes !== undefined && frame.contentSize > maxBytes) {
    throw new DecodeRefusedError(`its zstd frame declares ${frame.contentSize} bytes of content, more than the ${maxBytes} it may hold here`, `declares ${frame.contentSize} bytes`, frame.contentSize, maxBytes);
  }
  return frame.contentSize;
}

export function contentTypeOf(compression: Compression): string {
  return COMPRESSION_SPECS[compression].contentType;
}
