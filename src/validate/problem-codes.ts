/**
 * The stable problem codes of `auditlog validate` (documented in docs/validate.md). Scripts match
 * on them, so a code is never renamed or reused for another meaning.
 */
export const PROBLEM_CODES = [
  'MISSING_METADATA',
  'ORPHAN_METADATA',
  'METADATA_INVALID',
  'DATA_OBJECT_MISMATCH',
  'UNKNOWN_FORMAT_VERSION',
  'SIZE_MISMATCH',
  'SHA256_MISMATCH',
  'DECOMPRESS_FAILED',
  'SHA256_UNCOMPRESSED_MISMATCH',
  'RECORD_COUNT_MISMATCH',
  'LINE_UNPARSEABLE',
  'MANIFEST_MISMATCH',
  'TIMESTAMP_OUT_OF_PARTITION',
  'TIMESTAMP_OUT_OF_RANGE',
  'DUPLICATE_KEY',
  'STRAY_OBJECT',
  'UNCOMMITTED_OBJECT',
  'ROW_STILL_IN_TABLE',
  'KEY_IN_TABLE_AGAIN',
  'LINE_NOT_RESTORABLE',
  'LINE_COLUMNS_MISMATCH',
  'MISSING_OBJECT',
] as const;

export type ProblemCode = (typeof PROBLEM_CODES)[number];

/**
 * An uncommitted object is not corruption: its batch is in flight or was cut short, and the next
 * archive run reconciles it against the table. A row under an archived key back in the table in
 * another version is either restored (the next run deletes it against the archive when it is
 * identical) or a new row reusing the key. Both are listed as warnings and do not fail the run.
 */
export type Severity = 'problem' | 'warning';

export function severityOf(code: ProblemCode): Severity {
  return code === 'UNCOMMITTED_OBJECT' || code === 'KEY_IN_TABLE_AGAIN' ? 'warning' : 'problem';
}

export interface Finding {
  code: ProblemCode;
  /** The object (or metadata sidecar, or stray key) the finding is about, relative to the store root. */
  key: string;
  message: string;
  /** How many lines/keys the finding covers, for checks that aggregate per object. */
  count?: number;
  /** The run whose audit record names the object (`--check-audit` findings). */
  runId?: string;
}
