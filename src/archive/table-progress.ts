/**
 * One table run's watermark, checkpoint and last-run record: read at the start (where to resume,
 * whether the previous run was interrupted), saved every `checkpoints.every_batches` committed
 * batches, and settled at the end (checkpoint removed after a run that did not fail).
 *
 * None of this is needed for safety: rows are only deleted once archived and verified, and the
 * pass behind the watermark finds whatever a stale or lost watermark would skip. So a state store
 * that cannot be read or written is a warning, never a reason to stop archiving. A document that
 * was read and is not valid (STATE_INVALID) is another matter: it fails the table, naming the
 * document and `watermarks reset` as the fix, instead of being overwritten unseen at the end of
 * the run — it was edited by hand, damaged, or written by a newer version, and someone should look.
 */
import type { Logger } from 'pino';
import { describeError, isAuditlogError } from '../core/errors.js';
import type { RowPosition } from '../core/row-set.js';
import type { TablePlan } from '../core/table-plan.js';
import type { StateStores } from '../state/state-stores.js';
import {
  CHECKPOINT_FORMAT,
  emptyTableState,
  tableIdOf,
  usableWatermark,
  watermarkFor,
  type Checkpoint,
  type LastRun,
  type TableId,
  type TableState,
} from '../state/table-state.js';
import { CommittedPrefix } from './committed-prefix.js';

export interface ResumeInfo {
  /** The run this one follows, from its checkpoint. */
  run_id: string;
  batches_committed: number;
  rows_archived: number;
  /** failed: that run recorded its failure (a clean stop); interrupted: it never finished (killed, crashed). */
  previous: 'failed' | 'interrupted';
}

export interface TableProgressOptions {
  stores: StateStores;
  plan: TablePlan;
  runId: string;
  everyBatches: number;
  logger: Logger;
  now?: () => Date;
  /** Why a stored position no longer fits the table (positionMismatch), or undefined when it does. */
  checkPosition?: (position: RowPosition) => Promise<string | undefined>;
}

export class TableProgress {
  private state: TableState;
  private prefix = new CommittedPrefix(null);
  private startPosition: RowPosition | null = null;
  private rowsArchived = 0;
  /** Batches of the pass behind the watermark that settled: they move no watermark, but they committed. */
  private batchesBehind = 0;
  private readonly startedAt: Date;
  private saving: Promise<void> = Promise.resolve();
  private savedPosition: RowPosition | null = null;
  private readonly warned = new Set<string>();
  private readonly now: () => Date;

  constructor(private readonly options: TableProgressOptions) {
    this.now = options.now ?? (() => new Date());
    this.startedAt = this.now();
    this.state = emptyTableState(tableIdOf(options.plan));
  }

  /** Where this run starts reading (after the watermark), and the interrupted run it resumes, if any. */
  async begin(): Promise<{ start: RowPosition | null; resumed?: ResumeInfo }> {
    const { plan, stores, logger } = this.options;
    const id = tableIdOf(plan);
    const stored = await stores.tableState.get(id).catch((error: unknown) => this.warnUnlessInvalid('read-state', error, 'could not read the watermark; starting from the first row'));
    if (stored !== undefined) this.state = stored;
    const checkpoint = await stores.checkpoints.get(id).catch((error: unknown) => this.warnUnlessInvalid('read-checkpoint', error, 'could not read the checkpoint of the previous run'));

    let usable = usableWatermark(plan, this.state.watermark);
    const mismatch = usable.position === null ? undefined : await this.options.checkPosition?.(usable.position);
    if (mismatch !== undefined) {
      usable = { position: null, ignored: mismatch };
      // Forgotten, not kept: a run that archives nothing would leave it to warn on every run (found in review).
      this.state.watermark = null;
    }
    if (usable.ignored !== undefined) logger.warn({ reason: usable.ignored }, 'the stored watermark is not used: starting from the first row');
    this.startPosition = usable.position;
    this.savedPosition = usable.position;
    this.prefix = new CommittedPrefix(usable.position);

    let resumed: ResumeInfo | undefined;
    if (checkpoint !== undefined) {
      // A failed run keeps its checkpoint too (finish): calling it "interrupted" misled operators after a clean failure (found in review).
      const previous = this.state.last_run?.run_id === checkpoint.run_id && this.state.last_run.status === 'failed' ? 'failed' : 'interrupted';
      resumed = { run_id: checkpoint.run_id, batches_committed: checkpoint.batches_committed, rows_archived: checkpoint.rows_archived, previous };
      logger.warn(
        { previous_run: checkpoint.run_id, previous, batches_committed: checkpoint.batches_committed, since: checkpoint.updated_at },
        `the previous run of this table ${previous === 'failed' ? 'failed' : 'was interrupted'}; resuming from its last committed state`,
      );
    }
    if (usable.position !== null) logger.info({ after: usable.position }, 'resuming after the watermark');
    this.schedule(() => this.saveCheckpoint());
    await this.saving;
    return resumed === undefined ? { start: usable.position } : { start: usable.position, resumed };
  }

  /** The watermark this run started after (null: from the first row). */
  get start(): RowPosition | null {
    return this.startPosition;
  }

  /** Registers a batch of the main pass, in read order. */
  track(lastPosition: RowPosition): number {
    return this.prefix.add(lastPosition);
  }

  /** A tracked batch committed (or had nothing left to delete). */
  completed(seq: number, rowsArchived: number): void {
    this.rowsArchived += rowsArchived;
    this.prefix.complete(seq);
    if (this.prefix.committed % this.options.everyBatches === 0) this.saveProgress();
  }

  /**
   * A batch of the pass behind the watermark committed (or had nothing left to delete): it counts
   * in the checkpoint like one of the main pass, and is saved as often. Counting its rows only
   * left "0 batches committed" in status after a stopped run had committed 25 (found by probing).
   */
  completedBehind(rowsArchived: number): void {
    this.rowsArchived += rowsArchived;
    this.batchesBehind += 1;
    if (this.batchesBehind % this.options.everyBatches === 0) this.saveProgress();
  }

  /** Settles the run: watermark and last run recorded; the checkpoint removed unless the run failed. */
  async finish(result: Omit<LastRun, 'run_id' | 'started_at' | 'finished_at'>): Promise<void> {
    const { stores, plan, runId } = this.options;
    await this.saving;
    const position = this.prefix.position;
    if (position !== null && position !== this.savedPosition) this.state.watermark = watermarkFor(plan, position, runId, this.now());
    this.state.last_run = { run_id: runId, started_at: this.startedAt.toISOString(), finished_at: this.now().toISOString(), ...result };
    await stores.tableState.put(this.state).catch((error: unknown) => this.warn('write-state', error, 'could not save the watermark and run result'));
    if (result.status === 'failed') await this.saveCheckpoint();
    else await stores.checkpoints.delete(tableIdOf(plan)).catch((error: unknown) => this.warn('delete-checkpoint', error, 'could not remove the checkpoint'));
  }

  /** Saves the watermark and checkpoint in the background, one save at a time. */
  private saveProgress(): void {
    this.schedule(async () => {
      const position = this.prefix.position;
      if (position !== null && position !== this.savedPosition) {
        this.state.watermark = watermarkFor(this.options.plan, position, this.options.runId, this.now());
        await this.options.stores.tableState.put(this.state);
        this.savedPosition = position;
      }
      await this.saveCheckpoint();
    });
  }

  private async saveCheckpoint(): Promise<void> {
    const { plan, runId, stores } = this.options;
    const checkpoint: Checkpoint = {
      format: CHECKPOINT_FORMAT,
      ...tableIdOf(plan),
      run_id: runId,
      started_at: this.startedAt.toISOString(),
      updated_at: this.now().toISOString(),
      batches_committed: this.prefix.committed + this.batchesBehind,
      rows_archived: this.rowsArchived,
      position: this.prefix.position,
    };
    await stores.checkpoints.put(checkpoint).catch((error: unknown) => this.warn('write-checkpoint', error, 'could not save the checkpoint'));
  }

  private schedule(task: () => Promise<void>): void {
    this.saving = this.saving.then(task).catch((error: unknown) => this.warn('write-state', error, 'could not save the watermark'));
  }

  private warnUnlessInvalid(kind: string, error: unknown, message: string): undefined {
    if (isAuditlogError(error) && error.code === 'STATE_INVALID') throw error;
    return this.warn(kind, error, message);
  }

  private warn(kind: string, error: unknown, message: string): undefined {
    if (!this.warned.has(kind)) {
      this.warned.add(kind);
      this.options.logger.warn({ err: describeError(error) }, message);
    }
    return undefined;
  }
}

/**
 * Records a run that failed before its TableProgress began (plan, access checks, locks,
 * reconciliation of batches in flight) as the table's last run: otherwise a table that fails
 * that early on every run keeps showing its last success in `auditlog status`, which exits 0.
 * Only `last_run` changes, on the state as stored; a state that cannot be read is left alone (a
 * fresh document would drop its watermark) and a write that fails is a warning, as in the class.
 */
export async function recordFailedRun(o: {
  stores: StateStores;
  id: TableId;
  runId: string;
  startedAt: Date;
  result: Omit<LastRun, 'run_id' | 'started_at' | 'finished_at' | 'status'>;
  logger: Logger;
  now?: () => Date;
}): Promise<void> {
  try {
    const state = (await o.stores.tableState.get(o.id)) ?? emptyTableState(o.id);
    state.last_run = { run_id: o.runId, started_at: o.startedAt.toISOString(), finished_at: (o.now ?? (() => new Date()))().toISOString(), status: 'failed', ...o.result };
    await o.stores.tableState.put(state);
  } catch (error) {
    o.logger.warn({ err: describeError(error) }, 'could not record the failed run in the table state');
  }
}
