/**
 * Checks of a metadata sidecar on its own and against the stored object's size (pure): well-formed
 * JSON of the documented shape (docs/format.md), a known format version, the right table, a
 * `data_object` naming the object it sits beside, a manifest as long as the record count, and the
 * size the store lists for the data object.
 */
import { z } from 'zod';
import { FORMAT_NAME, FORMAT_VERSION } from '../core/batch-metadata.js';
import { COMPRESSIONS, compressionOfDataKey } from '../core/compression.js';
import { parseTimestampText } from '../core/pg-text.js';
import type { Finding } from './problem-codes.js';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const count = z.number().int().nonnegative();

/** The fields validation relies on; others may be present (a sidecar is only ever added to). */
const metadataSchema = z.object({
  format: z.literal(FORMAT_NAME),
  format_version: z.literal(FORMAT_VERSION),
  database: z.string(),
  schema: z.string(),
  table: z.string(),
  primary_key_columns: z.array(z.string()).min(1),
  timestamp_column: z.string(),
  record_count: count,
  min_timestamp: z.string(),
  max_timestamp: z.string(),
  compression: z.enum(COMPRESSIONS),
  uncompressed_bytes: count,
  compressed_bytes: count,
  sha256_uncompressed: hex64,
  sha256_compressed: hex64,
  primary_keys: z.array(z.array(z.string())),
  xmins: z.array(z.string()),
  /** Every line's keys are exactly these names (DataLineChecker). */
  columns: z.array(z.object({ name: z.string(), type: z.string() })).optional(),
});

export type CheckedMetadata = z.infer<typeof metadataSchema>;

export interface MetadataCheck {
  /** Present when the sidecar can be trusted enough to check the data object against it. */
  meta?: CheckedMetadata;
  findings: Finding[];
}

export interface TableIdentity {
  database: string;
  schema: string;
  table: string;
}

/**
 * `dataKey`: the data object the sidecar describes; `storedSize`: its size as listed by the store,
 * or undefined when it is missing (that finding is the caller's).
 */
export function checkMetadata(body: Buffer, metadataKey: string, dataKey: string, table: TableIdentity, storedSize: number | undefined): MetadataCheck {
  const invalid = (why: string): MetadataCheck => ({
    findings: [{ code: 'METADATA_INVALID', key: metadataKey, message: `${why}; compare it with the data object by hand (docs/format.md) and restore the sidecar from a backup` }],
  });
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return invalid('not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return invalid('not a JSON object');
  const header = doc as { format?: unknown; format_version?: unknown };
  if (header.format !== FORMAT_NAME) return invalid(`"format" is ${JSON.stringify(header.format)}, expected "${FORMAT_NAME}"`);
  if (header.format_version !== FORMAT_VERSION) {
    return {
      findings: [
        {
          code: 'UNKNOWN_FORMAT_VERSION',
          key: metadataKey,
          message: `format_version ${JSON.stringify(header.format_version)} is not one this version reads (${FORMAT_VERSION}); validate it with the auditlog version that wrote it`,
        },
      ],
    };
  }
  const parsed = metadataSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return invalid(`${issue.path.join('.') || 'document'}: ${issue.message}`);
  }
  const meta = parsed.data;
  if (meta.database !== table.database || meta.schema !== table.schema || meta.table !== table.table) {
    // Quoted: schema `a.b` table `c` and schema `a` table `b.c` read alike as `a.b.c` (found by probing).
    const name = (t: { database: string; schema: string; table: string }): string => `database ${JSON.stringify(t.database)} schema ${JSON.stringify(t.schema)} table ${JSON.stringify(t.table)}`;
    return invalid(`it describes ${name(meta)}, not ${name(table)} whose directory holds it`);
  }
  // The key's suffix is what readers go by (DuckDB, Athena, `zstd -dc`); the sidecar must agree,
  // or it describes another object of this batch name (both codecs share the sidecar's key).
  const keyCompression = compressionOfDataKey(dataKey);
  if (keyCompression !== undefined && meta.compression !== keyCompression) return invalid(`compression is "${meta.compression}" but the data object ${dataKey} is ${keyCompression} by its name`);
  for (const field of ['min_timestamp', 'max_timestamp'] as const) {
    if (parseTimestampText(meta[field]) === undefined) return invalid(`${field} ${JSON.stringify(meta[field])} is not a timestamp`);
  }
  if (meta.xmins.length !== meta.primary_keys.length) return invalid(`xmins lists ${meta.xmins.length} versions for ${meta.primary_keys.length} primary keys`);
  const width = meta.primary_key_columns.length;
  const badKey = meta.primary_keys.findIndex((k) => k.length !== width);
  if (badKey !== -1) return invalid(`primary_keys[${badKey}] has ${meta.primary_keys[badKey]!.length} values for ${width} key columns`);

  const findings: Finding[] = [];
  const named = checkDataObjectName((doc as { data_object?: unknown }).data_object, metadataKey, dataKey);
  if (named !== undefined) findings.push(named);
  if (meta.record_count !== meta.primary_keys.length) {
    findings.push({
      code: 'RECORD_COUNT_MISMATCH',
      key: dataKey,
      message: `record_count is ${meta.record_count} but the manifest lists ${meta.primary_keys.length} primary keys`,
    });
  }
  if (storedSize !== undefined && storedSize !== meta.compressed_bytes) {
    findings.push({
      code: 'SIZE_MISMATCH',
      key: dataKey,
      message: `stored object is ${storedSize} bytes, metadata says ${meta.compressed_bytes}; the object was truncated or replaced — restore it from a copy`,
    });
  }
  return { meta, findings };
}

/**
 * The sidecar's `data_object` must be the file name of the object it sits beside: reconciliation
 * takes a sidecar only for the object it names (archive-layout.ts) and sets one naming another
 * aside as if there were none, and a reader going by the field goes to the other object. Every
 * version wrote the field, so a missing one is damage too (found by probing: never checked).
 * Not fatal to the other checks: a sidecar copied with its object (a batch copied by hand) still
 * describes these bytes, and the size, SHA-256 and duplicate checks then say whether it does.
 */
export function checkDataObjectName(value: unknown, metadataKey: string, dataKey: string): Finding | undefined {
  const expected = dataKey.slice(dataKey.lastIndexOf('/') + 1);
  if (value === expected) return undefined;
  // The value is shown only as far as a file name goes: a damaged field may be anything.
  const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
  const found = value === undefined ? 'missing' : typeof value !== 'string' ? `${kind}, not a file name` : JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
  return {
    code: 'DATA_OBJECT_MISMATCH',
    key: metadataKey,
    message: `data_object is ${found}, expected ${JSON.stringify(expected)} (the data object ${dataKey} this sidecar sits beside): the sidecar was copied or moved from another object, or edited, and an archive run reconciling this batch would not take it for this object; if ${dataKey} is a copy of another batch, remove it and this sidecar, else restore this object's own sidecar from a backup`,
  };
}
