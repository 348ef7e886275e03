/**
 * Prometheus metrics of the archiver, fed only by run events (DESIGN.md §4: nothing imports
 * monitoring). One registry per process, never prom-client's global one, so tests and embedders
 * get their own. Labels are bounded: database and table (from the config), plus a fixed phase,
 * state or error code where a metric needs one.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunEvents, TableRef } from '../core/run-events.js';

export const TABLE_STATES = ['idle', 'running', 'failed'] as const;
export type TableState = (typeof TABLE_STATES)[number];

export interface ArchiveMetrics {
  readonly registry: Registry;
  /** Starts counting a run's events; returns the function that stops it. */
  subscribe(events: RunEvents): () => void;
  /** Notifications that could not be delivered (the notifier reports them here). */
  countNotificationFailure(channel: string): void;
}

const TABLE_LABELS = ['database', 'table'] as const;

/** `now`: epoch milliseconds (injected so rates are testable). */
export function createArchiveMetrics(now: () => number = Date.now): ArchiveMetrics {
  const registry = new Registry();
  const counter = (name: string, help: string, labelNames: readonly string[] = TABLE_LABELS): Counter<string> =>
    new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
  const gauge = (name: string, help: string, labelNames: readonly string[] = TABLE_LABELS): Gauge<string> =>
    new Gauge({ name, help, labelNames: [...labelNames], registers: [registry] });

  const archived = counter('auditlog_records_archived_total', 'Rows written to committed archive objects.');
  const deleted = counter('auditlog_records_deleted_total', 'Rows deleted from their table after their object was verified.');
  const skipped = counter('auditlog_records_skipped_total', 'Rows read but not archived: changed, locked or removed (by the application, or with a partition) since they were read.');
  const bytesRaw = counter('auditlog_bytes_uncompressed_total', 'JSON-lines bytes of committed objects before compression.');
  const bytesCompressed = counter('auditlog_bytes_compressed_total', 'Bytes of committed objects as stored.');
  const batches = counter('auditlog_batches_total', 'Committed batches (one object each).');
  const errors = counter(
    'auditlog_errors_total',
    'Tables that failed in a run, by error code; a run that failed as a whole (storage unreachable at start...) counts its code for each table it was to archive.',
    [...TABLE_LABELS, 'code'],
  );
  const retries = counter('auditlog_storage_retries_total', 'Storage requests retried, by failure class.', ['error_class']);
  const notificationFailures = counter('auditlog_notification_failures_total', 'Notifications that could not be delivered, by channel.', ['channel']);
  const phases = new Histogram({
    name: 'auditlog_phase_duration_seconds',
    help: 'Duration of each step of a batch (query, compress, upload, verify, delete) and of the table vacuum.',
    labelNames: [...TABLE_LABELS, 'phase'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const state = gauge('auditlog_table_state', 'Current state of each table: 1 for the state it is in, 0 for the others.', [...TABLE_LABELS, 'state']);
  const lastSuccess = gauge('auditlog_last_success_timestamp_seconds', 'When the table last finished a run without failing (Unix time).');
  const rate = gauge('auditlog_records_per_second', 'Rows archived per second in the current (or last) run of the table.');
  const remaining = gauge('auditlog_rows_remaining', 'Rows past the cutoff still to archive in the current run (counted at table start).');
  const runs = counter('auditlog_runs_total', 'Archive runs, by outcome: ok, or failed (a table failed, the run stopped as a whole, or it could not start: a daemon run refused because its configuration file no longer loads counts here too).', ['status']);

  // Every table label set exported so far, with the codes and phases it was exported with
  // (prom-client removes a series only by its exact label set).
  const known = new Map<string, { labels: { database: string; table: string }; codes: Set<string>; phases: Set<string> }>();
  const tableKey = (l: { database: string; table: string }): string => JSON.stringify([l.database, l.table]);
  const entry = (l: { database: string; table: string }): { codes: Set<string>; phases: Set<string> } => {
    const k = tableKey(l);
    let e = known.get(k);
    if (e === undefined) {
      e = { labels: l, codes: new Set(), phases: new Set() };
      known.set(k, e);
    }
    return e;
  };
  const labels = (t: Pick<TableRef, 'database' | 'schema' | 'table'>): { database: string; table: string } => {
    const l = { database: t.database, table: `${t.schema}.${t.table}` };
    entry(l);
    return l;
  };
  const setState = (t: TableRef, current: TableState): void => {
    for (const s of TABLE_STATES) state.set({ ...labels(t), state: s }, s === current ? 1 : 0);
  };
  const countError = (l: { database: string; table: string }, code: string): void => {
    entry(l).codes.add(code);
    errors.inc({ ...l, code });
  };
  const plain = [archived, deleted, skipped, bytesRaw, bytesCompressed, batches, lastSuccess, rate, remaining];
  /**
   * Drops every series of the tables not in `configured`. A table removed from the daemon's file
   * otherwise kept its last values until a restart: state "failed" 1 made its alert fire forever.
   */
  const forgetAllBut = (configured: readonly Pick<TableRef, 'database' | 'schema' | 'table'>[]): void => {
    const keep = new Set(configured.map((t) => tableKey({ database: t.database, table: `${t.schema}.${t.table}` })));
    for (const [k, e] of known) {
      if (keep.has(k)) continue;
      for (const metric of plain) metric.remove(e.labels);
      for (const s of TABLE_STATES) state.remove({ ...e.labels, state: s });
      for (const code of e.codes) errors.remove({ ...e.labels, code });
      for (const phase of e.phases) phases.remove({ ...e.labels, phase });
      known.delete(k);
    }
  };

  return {
    registry,
    countNotificationFailure: (channel) => notificationFailures.inc({ channel }),
    subscribe(events) {
      const started = new Map<string, { at: number; rows: number }>();
      const left = new Map<string, number>();
      // Per run, the tables it is to archive and has not finished yet: a run that fails as a
      // whole fails those (run:failed names no table).
      const unfinished = new Map<string, Map<string, TableRef>>();
      const id = (t: TableRef): string => JSON.stringify([t.runId, t.database, t.schema, t.table]);
      // Never below zero: rows inserted late with an old timestamp are archived beyond the count.
      const countDown = (b: TableRef, rows: number): void => {
        const before = left.get(id(b));
        if (before === undefined) return;
        left.set(id(b), Math.max(0, before - rows));
        remaining.set(labels(b), left.get(id(b))!);
      };
      const offs = [
        events.on('run:started', (r) => {
          // The registry lives as long as the process, and in it every run covers the whole
          // configuration: the daemon's runs take no --database/--table (it reads its file again
          // before each), and a one-shot archive is the process's only run. So the run's tables
          // are the configured ones, and any other table's series are stale.
          if (r.tables !== undefined) forgetAllBut(r.tables);
          const tables = new Map<string, TableRef>();
          for (const t of r.tables ?? []) {
            const ref = { runId: r.runId, ...t };
            tables.set(id(ref), ref);
          }
          unfinished.set(r.runId, tables);
        }),
        events.on('table:started', (t) => {
          started.set(id(t), { at: now(), rows: 0 });
          setState(t, 'running');
          rate.set(labels(t), 0);
        }),
        events.on('table:counted', (t) => {
          left.set(id(t), t.rows);
          remaining.set(labels(t), t.rows);
        }),
        events.on('batch:phase', (p) => {
          const l = labels(p);
          entry(l).phases.add(p.phase);
          phases.observe({ ...l, phase: p.phase }, p.seconds);
        }),
        events.on('storage:retry', (r) => {
          retries.inc({ error_class: r.errorClass });
        }),
        events.on('batch:committed', (b) => {
          const l = labels(b);
          archived.inc(l, b.rows);
          deleted.inc(l, b.rows);
          skipped.inc(l, b.rowsSkipped);
          bytesRaw.inc(l, b.bytesUncompressed);
          bytesCompressed.inc(l, b.bytesCompressed);
          batches.inc(l);
          countDown(b, b.rows + b.rowsSkipped);
          const run = started.get(id(b));
          if (run !== undefined) {
            run.rows += b.rows;
            const seconds = (now() - run.at) / 1000;
            if (seconds > 0) rate.set(l, run.rows / seconds);
          }
        }),
        events.on('batch:skipped', (b) => {
          skipped.inc(labels(b), b.rowsSkipped);
          countDown(b, b.rowsSkipped);
        }),
        events.on('table:finished', ({ summary, ...t }) => {
          unfinished.get(t.runId)?.delete(id(t));
          started.delete(id(t));
          left.delete(id(t));
          const l = labels(t);
          if (summary.status === 'failed') {
            setState(t, 'failed');
            countError(l, summary.error?.code ?? 'INTERNAL');
            return;
          }
          setState(t, 'idle');
          // A run a stop cut short did not finish: not a success (a daemon stopped mid-run every
          // night would otherwise never trip the staleness alert).
          if (summary.status !== 'dry-run' && summary.stopped !== true) lastSuccess.set(l, now() / 1000);
          if (!summary.stopped) remaining.set(l, 0);
        }),
        events.on('run:finished', ({ runId, summary }) => {
          unfinished.delete(runId);
          runs.inc({ status: summary.failed > 0 ? 'failed' : 'ok' });
        }),
        events.on('run:failed', ({ runId, command, error }) => {
          runs.inc({ status: 'failed' });
          if (command !== 'archive') return;
          // Storage down when a run starts fails every table of it, yet no table:finished comes:
          // without this, the alerts on errors_total and on state "failed" stayed silent for the
          // whole outage. Each table the run did not finish counts the run's code and shows failed
          // (tables it finished keep what they showed). Should none be left unfinished, the code
          // is counted once with empty table labels, so the error is never lost.
          const tables = [...(unfinished.get(runId)?.values() ?? [])];
          unfinished.delete(runId);
          if (tables.length === 0) {
            errors.inc({ database: '', table: '', code: error.code });
            return;
          }
          for (const t of tables) {
            started.delete(id(t));
            left.delete(id(t));
            setState(t, 'failed');
            countError(labels(t), error.code);
          }
        }),
      ];
      return () => offs.forEach((off) => off());
    },
  };
}
