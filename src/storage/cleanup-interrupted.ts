/**
 * The cleanup of leftovers of interrupted writes (orphaned multipart uploads and their resume
 * records on S3, temp files locally), shared by `auditlog cleanup` and the start of every archive
 * run. The store decides what is its own; this computes the cutoff and counts the outcome.
 */
import { AuditlogError } from '../core/errors.js';
import type { CleanupItem, ObjectStore } from './object-store.js';

/**
 * The youngest leftover a cleanup may remove: an upload of a batch takes seconds to minutes, so an
 * hour-old one is not in progress anywhere, whichever process (or machine) started it.
 */
export const MIN_ORPHAN_AGE_HOURS = 1;

export interface CleanupRun {
  storage: string;
  olderThanHours: number;
  /** ISO 8601: leftovers started before it were candidates. */
  cutoff: string;
  dryRun: boolean;
  /** False when the store keeps no leftovers it could clean. */
  supported: boolean;
  items: CleanupItem[];
  /** Leftovers seen and kept: too young, in progress in this process, or not written by this tool. */
  kept: number;
  failed: number;
}

export async function cleanupInterruptedWrites(
  store: ObjectStore,
  options: { olderThanHours: number; dryRun: boolean; now?: Date },
): Promise<CleanupRun> {
  if (!Number.isFinite(options.olderThanHours) || options.olderThanHours < MIN_ORPHAN_AGE_HOURS) {
    throw new AuditlogError('USAGE', `an orphan age of ${options.olderThanHours} hours is too young: uploads still in progress could be aborted; use at least ${MIN_ORPHAN_AGE_HOURS}`);
  }
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - options.olderThanHours * 3_600_000);
  const base = { storage: store.description, olderThanHours: options.olderThanHours, cutoff: cutoff.toISOString(), dryRun: options.dryRun };
  if (store.cleanupInterrupted === undefined) return { ...base, supported: false, items: [], kept: 0, failed: 0 };
  const report = await store.cleanupInterrupted({ olderThan: cutoff, dryRun: options.dryRun });
  return { ...base, supported: true, items: report.items, kept: report.kept, failed: report.items.filter((i) => i.action === 'failed').length };
}
