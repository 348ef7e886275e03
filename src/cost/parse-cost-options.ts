/**
 * `auditlog cost` flags → validated numbers. Pure. Every bad value is a USAGE error (exit 2) with a
 * one-line message naming the flag and what it accepts.
 */
import { AuditlogError } from '../core/errors.js';
import { PRICE_TABLE, PRICE_TABLE_DATE, STORAGE_CLASSES, type StorageClass } from './price-table.js';

// Binary multiples, as AWS bills them: "500GB" is 500 × 2^30 bytes.
const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4, pb: 1024 ** 5 };
const SIZE = /^(-?\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/**
 * Most bytes an estimate takes: every byte, record and object count of it stays an exact integer
 * up to Number.MAX_SAFE_INTEGER (8 PiB less a byte), and no archive this tool writes comes near it.
 * Above it counts round silently, and a typo (`500000PB`) produced a confident estimate.
 */
export const MAX_SIZE_BYTES = Number.MAX_SAFE_INTEGER;

/**
 * Most months an estimate covers: 100 years. The cumulative storage is summed month by month, so
 * `--months 999999999999` (a typo, or a number of days pasted) ran for hours at full CPU instead of
 * answering (found by probing).
 */
export const MAX_MONTHS = 1200;

/** `500GB`, `1.5 TiB`, `2048` (bytes) → bytes. */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  const unit = (match?.[2] ?? '').toLowerCase().replace(/ib$/, 'b');
  const factor = unit === '' ? 1 : UNITS[unit];
  if (match === null || factor === undefined) {
    throw new AuditlogError('USAGE', `--size "${text}" is not a size: expected a number with an optional unit B, KB, MB, GB, TB or PB (e.g. 500GB)`);
  }
  const value = Number(match[1]);
  if (value < 0) throw new AuditlogError('USAGE', `--size "${text}" is negative: expected a size of 0 or more (e.g. 500GB)`);
  const bytes = value * factor;
  if (!(bytes <= MAX_SIZE_BYTES)) throw new AuditlogError('USAGE', `--size "${text}" is too large: expected at most ${MAX_SIZE_BYTES} bytes (just under 8PB)`);
  return bytes;
}

/** `--records` × `--avg-row-bytes` within MAX_SIZE_BYTES. */
export function checkRecordsSize(records: number, avgRowBytes: number): number {
  const bytes = records * avgRowBytes;
  if (!(bytes <= MAX_SIZE_BYTES)) {
    throw new AuditlogError('USAGE', `--records ${records} of --avg-row-bytes ${avgRowBytes} is ${bytes} bytes, too large: expected at most ${MAX_SIZE_BYTES} bytes (just under 8PB) in all`);
  }
  return bytes;
}

export function parseRegion(text: string): string {
  if (PRICE_TABLE[text] === undefined) {
    throw new AuditlogError('USAGE', `--region "${text}" is not in the price table (dated ${PRICE_TABLE_DATE}): expected one of ${Object.keys(PRICE_TABLE).join(', ')}`);
  }
  return text;
}

/** `STANDARD_IA,GLACIER_IR` → those classes (case-insensitive). */
export function parseClasses(text: string): StorageClass[] {
  return text.split(',').map((raw) => {
    const name = raw.trim().toUpperCase();
    if (!(STORAGE_CLASSES as readonly string[]).includes(name)) {
      throw new AuditlogError('USAGE', `--class "${raw.trim()}" is not an S3 storage class: expected one of ${STORAGE_CLASSES.join(', ')}`);
    }
    return name as StorageClass;
  });
}

/**
 * A row is at least one byte as a JSON line: below 1, `--size` made more rows than bytes, and
 * `--avg-row-bytes 1e-300` an estimate of ∞ rows and ∞ objects, exit 0 (found by probing).
 */
export function parseAvgRowBytes(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 1) throw new AuditlogError('USAGE', `--avg-row-bytes expects a number of bytes of at least 1, got "${text}"`);
  return n;
}

/**
 * Decimal digits only: Number() also reads "" (an unset variable in a script) as 0 and "0x10" as
 * 16, which gave a confident $0 estimate (found by probing).
 */
export function parseWholeNumber(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new AuditlogError('USAGE', `${flag} expects a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}, got "${text}"`);
  }
  return n;
}


/** A ratio below 1 would mean compression makes data bigger: almost surely a typo for its inverse. */
export function parseCompressionRatio(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 1) {
    throw new AuditlogError('USAGE', `--compression-ratio expects uncompressed ÷ compressed size, a number of at least 1 (e.g. 8), got "${text}"`);
  }
  return n;
}
