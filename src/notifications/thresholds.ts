/** Limits of `notifications.thresholds` checked against a finished run (pure). */
import type { RunSummary } from '../archive/table-summary.js';
import type { NotificationsConfig } from '../config/schema.js';

/**
 * One line per violation. `lastArchived`: when each table (`db/schema.table`) last archived a row,
 * as far as this process knows (its start counts as the baseline).
 */
export function findViolations(summary: RunSummary, limits: NotificationsConfig['thresholds'], lastArchived: ReadonlyMap<string, number>, now: number): string[] {
  const out: string[] = [];
  if (limits.max_run_minutes !== undefined && summary.durationMs > limits.max_run_minutes * 60_000) {
    out.push(`run took ${(summary.durationMs / 60_000).toFixed(1)} min, over max_run_minutes ${limits.max_run_minutes}`);
  }
  const skipped = summary.tables.reduce((n, t) => n + t.rowsSkipped, 0);
  if (limits.max_rows_skipped !== undefined && skipped > limits.max_rows_skipped) {
    out.push(`${skipped} rows skipped (changed or locked while archived), over max_rows_skipped ${limits.max_rows_skipped}`);
  }
  out.push(...findStaleTables(limits, lastArchived, now));
  return out;
}

/**
 * The `max_days_without_archive` violations alone: the one limit that does not need a finished
 * run, so a run that could not start (storage down, a daemon configuration that no longer loads)
 * is checked against it too — an outage is exactly when nothing gets archived.
 */
export function findStaleTables(limits: NotificationsConfig['thresholds'], lastArchived: ReadonlyMap<string, number>, now: number): string[] {
  const out: string[] = [];
  if (limits.max_days_without_archive === undefined) return out;
  for (const [table, at] of lastArchived) {
    const days = (now - at) / 86_400_000;
    if (days > limits.max_days_without_archive) out.push(`${table}: nothing archived for ${days.toFixed(1)} days, over max_days_without_archive ${limits.max_days_without_archive}`);
  }
  return out;
}
