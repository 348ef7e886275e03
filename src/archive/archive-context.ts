/** What every step of one table's archive run shares. */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { TablePlan } from '../core/table-plan.js';
import type { TableLock } from '../core/table-lock.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { Queryable } from '../db/queryable.js';
import type { MarkerOrigin } from './pending-marker.js';
import type { TimedPhase } from '../core/run-events.js';
import type { MarkerSweeper } from './marker-sweeper.js';

/**
 * Points in a batch's life where a test may crash the process (the CLI wires AUDITLOG_FAULT to a
 * SIGKILL). Inert unless a hook is given. `before-marker-flush` is not one batch's: it comes before
 * each bulk removal of committed batches' pending markers (marker-sweeper.ts).
 */
export type BatchPhase = 'after-read' | 'after-marker' | 'after-upload' | 'after-metadata' | 'after-delete' | 'before-commit' | 'after-commit' | 'after-batch' | 'before-marker-flush';

/** A committed batch found by reconciliation, as its sidecar describes it. */
export interface ReconciledBatch {
  key: string;
  rows: number;
  bytesCompressed: number;
  /** The run that wrote the object and deleted its rows (the sidecar's run_id). */
  batchRunId: string;
}

export interface ArchiveContext {
  store: ObjectStore;
  /**
   * The store refuses a write over an existing object (ObjectStore.conditionalCreate): data objects
   * and sidecars are then written create-only, with no HEAD first. False: HEAD, then PUT.
   */
  createOnly: boolean;
  pool: pg.Pool;
  plan: TablePlan;
  lock: TableLock;
  cutoff: string;
  /** The database the rows are read from, recorded in pending markers. */
  origin: MarkerOrigin;
  runId: string;
  prefix: string;
  toolVersion: string;
  sessionSettings: Record<string, string>;
  logger: Logger;
  /** Takes the pending markers of batches whose delete committed and removes them in bulk. */
  markers: MarkerSweeper;
  onPhase?: (phase: BatchPhase) => void | Promise<void>;
  /**
   * Asked inside each delete transaction: a reason when a legal hold on this table was placed since
   * the run read its holds (then nothing may be deleted), undefined when none was.
   */
  recheckHolds?: (q: Queryable) => Promise<string | undefined>;
  /** Server-side encryption every data object must report after upload, before its rows are deleted. */
  requiredSse?: 'AES256' | 'aws:kms';
  /**
   * Told of each batch reconciliation confirmed as committed (the audit trail records it: its
   * batch:committed was never seen, or was seen by a run that died before recording it), before
   * its marker goes. False: the record was not written, so the marker stays for the next run.
   */
  onReconciledCommitted?: (batch: ReconciledBatch) => Promise<boolean>;
  /** Told how long each timed step took (metrics); never changes what the batch does. */
  onTimed?: (phase: TimedPhase, seconds: number) => void;
}

/** Runs `step` and reports its duration to `ctx.onTimed`, whether it succeeds or fails. */
export async function timed<T>(ctx: Pick<ArchiveContext, 'onTimed'>, phase: TimedPhase, step: () => Promise<T>): Promise<T> {
  if (ctx.onTimed === undefined) return step();
  const started = performance.now();
  try {
    return await step();
  } finally {
    ctx.onTimed(phase, (performance.now() - started) / 1000);
  }
}
