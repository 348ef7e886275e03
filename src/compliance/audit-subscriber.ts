/**
 * Turns run events into audit records (DESIGN.md §4: the audit trail subscribes; the pipeline
 * does not know it exists). Per table: ARCHIVE_PROGRESS for each group of committed batches
 * before their pending markers are removed, then ARCHIVE_SUCCESS or ARCHIVE_FAILURE with the
 * object keys of all its committed batches (those already in ARCHIVE_PROGRESS records too: the end
 * record of a run's table stands for its progress records); LEGAL_HOLD_SKIP and POLICY_VIOLATION as they happen; per run:
 * ARCHIVE_START and a closing ARCHIVE_SUCCESS/ARCHIVE_FAILURE with no table; ARCHIVE_RECONCILED for
 * each batch reconciliation confirmed as committed whose own run never recorded it (an earlier
 * run killed mid-table). Dry runs write nothing.
 */
import type { RunEvents } from '../core/run-events.js';
import type { AuditTrail } from './audit-trail.js';

export function subscribeAuditTrail(events: RunEvents, trail: AuditTrail): void {
  const keys = new Map<string, string[]>();
  const tableKey = (r: { database: string; schema: string; table: string }): string => JSON.stringify([r.database, r.schema, r.table]);
  let dryRun = false;
  events.on('run:started', async (e) => {
    dryRun = e.dryRun;
    // The tables let `audit verify` tell a later run of the same table (proof this one is over) from a concurrent run of others.
    if (!dryRun) await trail.append({ event: 'ARCHIVE_START', runId: e.runId, status: 'started', ...(e.tables === undefined ? {} : { details: { tables: e.tables } }) });
  });
  events.on('batch:committed', (e) => {
    const list = keys.get(tableKey(e)) ?? [];
    list.push(e.key);
    keys.set(tableKey(e), list);
  });
  // Before the sweeper removes committed batches' markers (its only other trace for a later run):
  // a rejection (the record was not written) keeps the markers, and the next run records the
  // batches as ARCHIVE_RECONCILED. One record per sweep — at most one per 50 batches or ~2 s.
  events.on('batches:sweeping', async (e) => {
    if (dryRun) return;
    await trail.append({
      event: 'ARCHIVE_PROGRESS',
      runId: e.runId,
      database: e.database,
      schema: e.schema,
      table: e.table,
      records: e.batches.reduce((n, b) => n + b.rows, 0),
      bytes: e.batches.reduce((n, b) => n + b.bytesCompressed, 0),
      objectKeys: e.batches.map((b) => b.key),
      status: 'committed',
      details: { batches: e.batches.length },
    });
  });
  // One record per object, written as soon as it is confirmed: its marker is already gone, so
  // this record is the only trace left of the batch's run having deleted those rows.
  events.on('batch:reconciled', async (e) => {
    await trail.append({
      event: 'ARCHIVE_RECONCILED',
      runId: e.runId,
      database: e.database,
      schema: e.schema,
      table: e.table,
      records: e.rows,
      bytes: e.bytesCompressed,
      objectKeys: [e.key],
      status: 'committed',
      details: { batch_run_id: e.batchRunId },
    });
  });
  events.on('table:held', async (e) => {
    await trail.append({ event: 'LEGAL_HOLD_SKIP', runId: e.runId, database: e.database, schema: e.schema, table: e.table, records: 0, status: 'held', details: { holds: e.holds } });
  });
  events.on('policy:violation', async (e) => {
    await trail.append({ event: 'POLICY_VIOLATION', runId: e.runId, database: e.database, schema: e.schema, table: e.table, status: 'refused', error: { code: e.code, message: e.message } });
  });
  events.on('table:finished', async (e) => {
    const s = e.summary;
    // Taken now, so the daemon's next run of this table starts with an empty list (found in review).
    const objectKeys = keys.get(tableKey(e)) ?? [];
    keys.delete(tableKey(e));
    if (dryRun || s.status === 'held' || s.status === 'dry-run') return;
    await trail.append({
      event: s.status === 'failed' ? 'ARCHIVE_FAILURE' : 'ARCHIVE_SUCCESS',
      runId: e.runId,
      database: s.database,
      schema: s.schema,
      table: s.table,
      records: s.rowsArchived,
      bytes: s.bytesCompressed,
      durationMs: s.durationMs,
      objectKeys,
      status: s.status,
      error: s.error ?? null,
      details: { rows_skipped: s.rowsSkipped, batches: s.batches, ...(s.holds === undefined ? {} : { holds: s.holds }) },
    });
  });
  events.on('run:finished', async (e) => {
    if (dryRun) return;
    const t = e.summary.tables;
    await trail.append({
      event: e.summary.failed > 0 ? 'ARCHIVE_FAILURE' : 'ARCHIVE_SUCCESS',
      runId: e.runId,
      records: t.reduce((n, x) => n + x.rowsArchived, 0),
      bytes: t.reduce((n, x) => n + x.bytesCompressed, 0),
      durationMs: e.summary.durationMs,
      status: e.summary.failed > 0 ? 'failed' : 'ok',
      details: { tables: t.length, failed: e.summary.failed, held: e.summary.held },
    });
  });
  events.on('run:failed', async (e) => {
    await trail.append({ event: 'ERROR', runId: e.runId, status: 'error', error: e.error, details: { command: e.command } });
  });
  events.on('restore:started', async (e) => {
    if (!e.dryRun) await trail.append({ event: 'RESTORE_START', runId: e.runId, database: e.database, schema: e.schema, table: e.table, status: 'started', details: { target: e.target } });
  });
  events.on('restore:finished', async (e) => {
    const s = e.summary;
    if (s.dryRun) return;
    await trail.append({
      event: s.status === 'ok' ? 'RESTORE_SUCCESS' : 'RESTORE_FAILURE',
      runId: e.runId,
      database: s.database,
      schema: s.schema,
      table: s.table,
      records: s.rows.restored,
      durationMs: s.durationMs,
      status: s.status,
      error: s.error === undefined ? null : { code: s.error.code, message: s.error.message },
      details: { target: s.target, objects: s.objects, inserted: s.rows.inserted, conflicts: s.rows.conflicts, skippedByTriggers: s.rows.skippedByTriggers, superseded: s.rows.superseded, corrupt: s.corrupt.map((c) => c.key) },
    });
  });
}
