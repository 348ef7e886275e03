/**
 * Typed events of a run (DESIGN.md §4): monitoring, notifications and the audit trail subscribe
 * here; the pipeline never imports them. Emitting never fails the run: a listener that throws or
 * rejects is reported to `onListenerError` and the run goes on (a notification or metrics failure
 * must not stop an archive, let alone a delete).
 */
import type { RunSummary, TableSummary } from '../archive/table-summary.js';
import type { RestoreSummary } from '../restore/restore-options.js';

export interface TableRef {
  runId: string;
  database: string;
  schema: string;
  table: string;
}

/**
 * Timed steps of a batch (and of a table, for `vacuum`). Rows are rendered as JSON lines by
 * PostgreSQL inside the page query, so serialising is part of `query`; `compress` is gzip plus
 * the checksums.
 */
export type TimedPhase = 'query' | 'compress' | 'upload' | 'verify' | 'delete' | 'vacuum';

export interface RunEventMap {
  /** `tables`: what the run is to archive (after --database/--table); the audit trail keeps it on ARCHIVE_START. */
  'run:started': { runId: string; command: 'archive'; dryRun: boolean; at: string; tables?: { database: string; schema: string; table: string }[] };
  /** The table is locked and its cutoff known; nothing of it is read yet. */
  'table:started': TableRef & { cutoff: string; retentionDays: number };
  /** Rows past the cutoff when the table started (what the progress percent and ETA count down). */
  'table:counted': TableRef & { rows: number };
  /** How long one step of a batch (or the table's vacuum) took. */
  'batch:phase': TableRef & { phase: TimedPhase; seconds: number };
  /** A storage request failed and is retried (the storage layer knows no table). */
  'storage:retry': { errorClass: string; attempt: number };
  /** A batch's delete committed: its rows are in a committed object and gone from the table. */
  'batch:committed': TableRef & { key: string; rows: number; rowsSkipped: number; bytesUncompressed: number; bytesCompressed: number };
  /**
   * A batch archived none of its rows: each was changed, locked or deleted since the page read it
   * (no object is committed, so no batch:committed). Counted as skipped like a committed batch's
   * `rowsSkipped` — without it, the worst case (the application changing every old row) counted none.
   */
  'batch:skipped': TableRef & { rowsSkipped: number };
  /**
   * A batch left in flight (by an earlier run, or by this run's own ambiguous COMMIT) was found to
   * have committed: its rows are gone from the table and archived in `key`. `batchRunId` is the run
   * that wrote the object and deleted its rows; no batch:committed was seen for it in this run.
   */
  'batch:reconciled': TableRef & { key: string; rows: number; bytesCompressed: number; batchRunId: string };
  /**
   * Committed batches of this run are about to lose their pending markers (removed in bulk,
   * marker-sweeper.ts): after that no later run can find them, so the audit trail records them
   * now. Sent with {@link RunEvents.emitAndConfirm}: a listener that fails keeps the markers.
   */
  'batches:sweeping': TableRef & { batches: { key: string; rows: number; bytesCompressed: number }[] };
  'table:finished': TableRef & { summary: TableSummary };
  'run:finished': { runId: string; command: 'archive'; summary: RunSummary };
  /** An active table-level legal hold kept the table out of the run (nothing read). */
  'table:held': TableRef & { holds: { source: string; reason: string; setBy?: string; expiresAt?: string }[] };
  /** A compliance rule (retention bounds, encryption) refused the table before anything was read. */
  'policy:violation': TableRef & { code: string; message: string };
  'restore:started': TableRef & { target: { schema: string; table: string }; dryRun: boolean };
  'restore:finished': TableRef & { summary: RestoreSummary };
  /** The run stopped as a whole (storage unreachable at start, a usage error...): no run:finished follows. */
  'run:failed': { runId: string; command: 'archive' | 'restore'; error: { code: string; message: string } };
}

export type RunEventName = keyof RunEventMap;
export type RunEventListener<K extends RunEventName> = (payload: RunEventMap[K]) => void | Promise<void>;

export class RunEvents {
  private readonly listeners = new Map<RunEventName, RunEventListener<RunEventName>[]>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly onListenerError: (event: RunEventName, error: unknown) => void = () => undefined) {}

  on<K extends RunEventName>(event: K, listener: RunEventListener<K>): () => void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener as RunEventListener<RunEventName>);
    this.listeners.set(event, list);
    return () => {
      const at = list.indexOf(listener as RunEventListener<RunEventName>);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /** Calls every listener; an async listener runs on while the run goes on ({@link settle} waits for them). */
  emit<K extends RunEventName>(event: K, payload: RunEventMap[K]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        const result = listener(payload);
        if (result instanceof Promise) {
          const tracked: Promise<void> = result.catch((error: unknown) => this.onListenerError(event, error)).finally(() => this.pending.delete(tracked));
          this.pending.add(tracked);
        }
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
  }

  /**
   * Calls every listener and waits for all of them: true when each settled without error (also
   * when there is none), false otherwise. For the one step that must not go ahead unless its
   * listeners are done (a record written before the only other trace of a batch goes). Failures
   * are still reported to `onListenerError`.
   */
  async emitAndConfirm<K extends RunEventName>(event: K, payload: RunEventMap[K]): Promise<boolean> {
    const results = await Promise.allSettled((this.listeners.get(event) ?? []).map(async (listener) => listener(payload)));
    let confirmed = true;
    for (const result of results) {
      if (result.status === 'fulfilled') continue;
      confirmed = false;
      this.onListenerError(event, result.reason);
    }
    return confirmed;
  }

  /** Waits for async listeners still running (before the process exits). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
