/** The wizard's choices and advice from what it detected. Pure. */
import { quoteIdent, quoteQualified } from '../db/quote-ident.js';
import type { AgeDistribution, TableDetection, TimestampCandidate } from './inspect-database.js';

const USUAL_NAMES = /^(created|inserted|occurred|logged|recorded|event)_?(at|on|time|ts|date)?$|^(timestamp|ts|event_time|created)$/i;

/**
 * The column to compare with the retention: an indexed one first (the archiver reads in its
 * order, and without an index every batch scans the table), then NOT NULL (a NULL timestamp is
 * never archived), then a usual name for a creation time, then table order.
 */
export function chooseTimestampColumn(candidates: readonly TimestampCandidate[]): TimestampCandidate | undefined {
  const score = (c: TimestampCandidate): number => (c.indexed ? 4 : 0) + (c.notNull ? 2 : 0) + (USUAL_NAMES.test(c.name) ? 1 : 0);
  return [...candidates].sort((a, b) => score(b) - score(a))[0];
}

/**
 * The index the archiver's keyset pagination on (timestamp, key) wants. CONCURRENTLY: no write
 * lock on a live table. PostgreSQL refuses CONCURRENTLY on a partitioned table (found by probing:
 * the advice failed as printed), so there: the index on the parent only, then one per partition
 * built concurrently and attached (PostgreSQL's documented way), as a procedure in comments.
 */
export function suggestIndexSql(detection: Pick<TableDetection, 'schema' | 'name' | 'key' | 'partitioned'>, column: string): string {
  const columns = `(${[column, ...(detection.key?.columns ?? []).filter((c) => c !== column)].map(quoteIdent).join(', ')})`;
  const indexName = `${detection.name}_${column}_archive_idx`.slice(0, 63);
  const table = quoteQualified(detection.schema, detection.name);
  if (detection.partitioned !== true) return `CREATE INDEX CONCURRENTLY ${quoteIdent(indexName)} ON ${table} ${columns};`;
  return [
    `CREATE INDEX ${quoteIdent(indexName)} ON ONLY ${table} ${columns};`,
    `-- then for each partition P (no write lock): CREATE INDEX CONCURRENTLY p_idx ON P ${columns}; ALTER INDEX ${quoteQualified(detection.schema, indexName)} ATTACH PARTITION p_idx;`,
    `-- (or, locking writes to every partition while it builds: CREATE INDEX ${quoteIdent(indexName)} ON ${table} ${columns};)`,
  ].join('\n');
}

export const RETENTION_CHOICES = [30, 90, 180, 365, 730] as const;
export const DEFAULT_RETENTION_DAYS = 90;

/**
 * The longest usual retention that still moves at least three quarters of the rows out of the
 * table (what shrinking a big audit table is for); the project default when none does — too
 * young a table has little to archive yet, and 90 days is the common hot window.
 */
export function suggestRetentionDays(distribution: Pick<AgeDistribution, 'rows' | 'olderThan'>): number {
  if (distribution.rows === 0) return DEFAULT_RETENTION_DAYS;
  const fits = RETENTION_CHOICES.filter((days) => {
    const older = distribution.olderThan.find((b) => b.days === days)?.rows ?? 0;
    return older >= 0.75 * distribution.rows;
  });
  return fits.length === 0 ? DEFAULT_RETENTION_DAYS : Math.max(...fits);
}

/** Why a table without a usable key is refused, and the fix. */
export function explainMissingKey(detection: Pick<TableDetection, 'schema' | 'name'>): string {
  return `${detection.schema}.${detection.name} has no primary key (nor a unique index over NOT NULL columns): it cannot be archived until it has one, because rows are deleted by key only after their archive is verified; add one, e.g. ALTER TABLE ${quoteQualified(detection.schema, detection.name)} ADD PRIMARY KEY (id);`;
}

/** What the wizard itself finds missing for `archive`: a key, a timestamp column. Pure. */
export function timestampAndKeyRefusals(detection: Pick<TableDetection, 'schema' | 'name' | 'key' | 'timestampCandidates'>): string[] {
  const reasons: string[] = [];
  if (detection.key === null) reasons.push(explainMissingKey(detection));
  if (detection.timestampCandidates.length === 0) {
    reasons.push(`${detection.schema}.${detection.name} has no timestamptz, timestamp or date column to compare with the retention: add one (e.g. created_at timestamptz NOT NULL DEFAULT now()) or leave the table out`);
  }
  return reasons;
}

/** A database name for the archive layout from a connection URL's path: letters, digits, `_`, `-`, `.`. */
export function databaseNameFromUrl(url: string): string {
  let name = '';
  try {
    name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  } catch {
    name = '';
  }
  const cleaned = name.replace(/[^A-Za-z0-9_.-]/g, '_');
  return cleaned === '' ? 'app' : cleaned;
}

/** Compliance bounds (compliance.min_retention_days / max_retention_days) a suggestion must respect. */
export interface RetentionBounds {
  min?: number;
  max?: number;
}

/** The suggestion moved inside the bounds: policy wins over the shape of the data. */
export function clampRetentionDays(days: number, bounds: RetentionBounds): number {
  if (bounds.min !== undefined && days < bounds.min) return bounds.min;
  if (bounds.max !== undefined && days > bounds.max) return bounds.max;
  return days;
}
