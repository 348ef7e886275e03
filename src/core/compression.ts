/**
 * The codecs a data object may be written with, as names, key suffixes and levels (pure; the
 * compressing and decompressing is src/archive/codec.ts). A data object's key says its codec: the
 * suffix is the only thing reconciliation, validate and restore may go by before any sidecar is read.
 */
export const COMPRESSIONS = ['gzip', 'zstd'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface CompressionSpec {
  name: Compression;
  /** Suffix of the data object's key. */
  dataSuffix: string;
  /**
   * Suffix of the batch's pending marker key after `<day>-<object>`. gzip keeps the name every
   * earlier version wrote. zstd's does not end in `.json`: versions before zstd read any
   * `<day>-<name>.json` as a gzip batch and would have removed a zstd batch's marker as "nothing
   * written"; a name they do not parse stops them with "not a pending marker this version writes".
   */
  markerSuffix: string;
  contentType: string;
  minLevel: number;
  maxLevel: number;
  /** The level when none is configured for the codec (docs/benchmarks.md, 2026-11-30, says why). */
  defaultLevel: number;
}

export const COMPRESSION_SPECS: Readonly<Record<Compression, CompressionSpec>> = {
  gzip: { name: 'gzip', dataSuffix: '.jsonl.gz', markerSuffix: '.json', contentType: 'application/gzip', minLevel: 1, maxLevel: 9, defaultLevel: 6 },
  zstd: { name: 'zstd', dataSuffix: '.jsonl.zst', markerSuffix: '.zst.pending', contentType: 'application/zstd', minLevel: 1, maxLevel: 19, defaultLevel: 1 },
};

/**
 * Largest zstd object content (decompressed JSON lines) this tool writes or reads: compressing
 * holds the input and an output of about its size in the WASM heap (2 GiB at most), decompressing
 * the object and its content. A frame header declaring more is refused before any allocation.
 */
export const MAX_ZSTD_CONTENT_BYTES = 512 * 1024 * 1024;

export function isCompression(value: unknown): value is Compression {
  return typeof value === 'string' && (COMPRESSIONS as readonly string[]).includes(value);
}

/** The codec a sidecar's body names, or undefined when it is not JSON or names none this version knows. */
export function sidecarCompression(body: Buffer): Compression | undefined {
  try {
    const named = (JSON.parse(body.toString('utf8')) as { compression?: unknown } | null)?.compression;
    return isCompression(named) ? named : undefined;
  } catch {
    return undefined;
  }
}

/** The codec a data object's key names by its suffix, or undefined when it is not a data object key. */
export function compressionOfDataKey(key: string): Compression | undefined {
  return COMPRESSIONS.find((c) => key.endsWith(COMPRESSION_SPECS[c].dataSuffix) && key.length > COMPRESSION_SPECS[c].dataSuffix.length);
}

/**
 * The codec and level of a table: its own, else the defaults'. A level set in `defaults` goes with
 * the codec set there; a table with another codec and no level of its own gets that codec's default.
 */
export function resolveCompression(
  defaults: { compression: Compression; compression_level?: number | undefined },
  table: { compression?: Compression | undefined; compression_level?: number | undefined },
): { compression: Compression; level: number } {
  const compression = table.compression ?? defaults.compression;
  const inherited = compression === defaults.compression ? defaults.compression_level : undefined;
  return { compression, level: table.compression_level ?? inherited ?? COMPRESSION_SPECS[compression].defaultLevel };
}
