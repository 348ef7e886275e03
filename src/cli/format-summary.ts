/** The end-of-run report: one line per table, readable in a terminal and in a cron mail. */
import type { RunSummary, TableSummary } from '../archive/table-summary.js';

const mb = (bytes: number): string => (bytes / 1_048_576).toFixed(1);

export function formatRunSummary(run: RunSummary): string {
  const lines: string[] = [];
  const head = run.dryRun ? 'dry run (nothing written, nothing deleted)' : 'archive run';
  lines.push(`${head} ${run.runId}: ${run.tables.length} table(s), ${run.failed} failed, ${run.held} held, ${(run.durationMs / 1000).toFixed(1)} s`);
  if (run.stopped !== undefined) lines.push(`${run.stopped.message} [${run.stopped.code}]`);
  const rows: string[][] = run.dryRun
    ? [['table', 'status', 'rows', 'oldest', 'newest', 'cutoff', 'batches (at least)']]
    : [['table', 'status', 'rows', 'skipped', 'batches', 'raw MB', 'stored MB', 'seconds', 'rows/s']];
  for (const t of run.tables) rows.push(run.dryRun ? dryRunRow(t) : archiveRow(t));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) lines.push(r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  for (const t of run.tables) {
    if (t.error !== undefined) lines.push(`error: ${label(t)}: ${t.error.message} [${t.error.code}]`);
    for (const h of t.holds?.tableLevel ?? []) lines.push(`held: ${label(t)}: ${h}`);
    for (const h of t.holds?.recordLevel ?? []) lines.push(`note: ${label(t)}: rows matching the ${h} stay in the table`);
    for (const h of t.holds?.expired ?? []) lines.push(`note: ${label(t)}: expired ${h} ignored`);
    // Not "they stay in the table": rows deleted by the application, or with a partition detached
    // or dropped meanwhile, are gone (found by probing).
    if (t.rowsSkipped > 0) lines.push(`note: ${label(t)}: ${t.rowsSkipped} row(s) read were not archived: changed, locked or removed since they were read; those still in the table are archived by a later run`);
    if (t.spooledBatches !== undefined) {
      lines.push(`note: ${label(t)}: ${t.spooledBatches} batch(es) spooled to local_fallback_dir while storage was unavailable; their rows stay in the table until the next run archives them`);
    }
    if (t.replayedBatches !== undefined) lines.push(`note: ${label(t)}: archived ${t.replayedBatches} batch(es) spooled by an earlier run`);
    if (t.resumed !== undefined) {
      lines.push(`note: ${label(t)}: resumed after run ${t.resumed.run_id}, which ${t.resumed.previous === 'failed' ? 'failed' : 'was interrupted'} after ${t.resumed.batches_committed} committed batches`);
    }
    if (t.reconciled !== undefined) {
      const r = t.reconciled;
      lines.push(`note: ${label(t)}: reconciled batches left in flight by an earlier run (${r.committed} committed, ${r.removed} removed)`);
    }
    if (t.otherTablesMarkers !== undefined) {
      lines.push(`warning: ${label(t)}: ${t.otherTablesMarkers} pending marker(s) under this table's prefix belong to another table and were left alone (see the log; docs/runbooks.md)`);
    }
  }
  return lines.join('\n') + '\n';
}

const label = (t: TableSummary): string => `${t.database}/${t.schema}.${t.table}`;

function archiveRow(t: TableSummary): string[] {
  return [label(t), t.status, `${t.rowsArchived}`, `${t.rowsSkipped}`, `${t.batches}`, mb(t.bytesUncompressed), mb(t.bytesCompressed), (t.durationMs / 1000).toFixed(1), `${t.rowsPerSecond}`];
}

function dryRunRow(t: TableSummary): string[] {
  const d = t.dryRun;
  return [label(t), t.status, `${d?.rows ?? '-'}`, d?.minTimestamp ?? '-', d?.maxTimestamp ?? '-', d?.cutoff ?? '-', `${d?.estimatedBatches ?? '-'}`];
}
