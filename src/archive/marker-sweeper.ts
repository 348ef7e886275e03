/**
 * Removes the pending markers of committed batches in bulk: one `deleteMany` for up to
 * {@link MARKER_SWEEP_MAX_KEYS} markers instead of one DELETE per batch.
 *
 * Why waiting is safe: once a batch's delete committed, its marker holds that transaction's id, and
 * a marker left behind (a crash before the sweep, a sweep that failed) is found by the next run,
 * which sees the archived rows gone and `txid_status() = committed` and only removes the marker
 * (reconcile-pending.ts, decision `keep`). Until then validate and restore treat the batch as in
 * flight. So only the timing of the removal changes — never what is kept.
 *
 * A queued key that a later batch of the same run writes again (its rows were restored meanwhile:
 * the batch finds the object committed and only deletes copies against it) may lose that marker
 * early — its first, plain marker or the `copies_of_committed` one. Either only ever keeps the
 * object (it is committed, and reconciliation keeps an object whose metadata is older than its
 * marker), so losing it loses nothing.
 *
 * Age is checked when a key is added, never by a timer: nothing is left running when a table ends,
 * and the table's final {@link MarkerSweeper.flush} takes whatever is still queued.
 *
 * A marker is the only trace of its batch a later run can find if this run dies before its end
 * record: so, when given, {@link MarkerSweeperOptions.beforeRemove} is asked first with the
 * batches about to lose their markers (the audit trail records them, one record per sweep), and a
 * sweep it does not confirm keeps every marker — the next run reconciles and records them.
 */
import type { Logger } from 'pino';
import { describeError } from '../core/errors.js';
import type { ObjectStore } from '../storage/object-store.js';

/** A sweep goes as soon as this many markers are queued. */
export const MARKER_SWEEP_MAX_KEYS = 50;
/** …or once the oldest queued marker has waited this long (ms), checked when the next one is queued. */
export const MARKER_SWEEP_MAX_AGE_MS = 2_000;
/** Keys named in a warning: enough to find them, never a log line of thousands. */
const KEYS_IN_WARNING = 5;

export interface MarkerSweeperOptions {
  store: Pick<ObjectStore, 'deleteMany'>;
  logger: Pick<Logger, 'warn' | 'debug'>;
  maxKeys?: number;
  maxAgeMs?: number;
  /** Milliseconds; the age clock (tests inject one). */
  now?: () => number;
  /** Before each sweep's request: the crash tests' hook (AUDITLOG_FAULT=before-marker-flush). */
  beforeSweep?: () => void | Promise<void>;
  /**
   * After the crash hook, before the markers go: false (or a rejection) keeps them all. Absent:
   * markers are removed with nothing asked.
   */
  beforeRemove?: (batches: readonly SweptBatch[]) => Promise<boolean>;
}

/** A committed batch whose marker is queued: what the audit trail records before the marker goes. */
export interface SweptBatch {
  /** The data object. */
  key: string;
  rows: number;
  bytesCompressed: number;
}

export class MarkerSweeper {
  private queued: { markerKey: string; batch: SweptBatch }[] = [];
  private oldestAt = 0;
  /** Sweeps run one after another; this settles when the last one started has. Never rejects. */
  private sweeping: Promise<void> = Promise.resolve();
  private readonly maxKeys: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(private readonly options: MarkerSweeperOptions) {
    this.maxKeys = options.maxKeys ?? MARKER_SWEEP_MAX_KEYS;
    this.maxAgeMs = options.maxAgeMs ?? MARKER_SWEEP_MAX_AGE_MS;
    this.now = options.now ?? Date.now;
  }

  /** Queues the marker of a batch whose delete committed; starts a sweep (not awaited) when one is due. */
  add(markerKey: string, batch: SweptBatch): void {
    if (this.queued.length === 0) this.oldestAt = this.now();
    this.queued.push({ markerKey, batch });
    if (this.queued.length >= this.maxKeys || this.now() - this.oldestAt >= this.maxAgeMs) void this.sweepQueued();
  }

  /** Sweeps everything queued and waits for every sweep started so far. Never throws. */
  async flush(): Promise<void> {
    await this.sweepQueued();
  }

  private sweepQueued(): Promise<void> {
    const entries = this.queued;
    this.queued = [];
    if (entries.length > 0) this.sweeping = this.sweeping.then(() => this.sweep(entries));
    return this.sweeping;
  }

  /**
   * The batches are committed whatever happens here: a failure is a warning, and the markers are
   * cleared by the next run's reconciliation.
   */
  private async sweep(entries: readonly { markerKey: string; batch: SweptBatch }[]): Promise<void> {
    const { logger } = this.options;
    const keys = entries.map((e) => e.markerKey);
    try {
      await this.options.beforeSweep?.();
      if (this.options.beforeRemove !== undefined && !(await this.confirmed(entries.map((e) => e.batch)))) {
        logger.warn(
          { markers: keys.length, examples: keys.slice(0, KEYS_IN_WARNING) },
          'batches committed, but their audit record could not be written: their pending markers are kept, and the next run records them as reconciled',
        );
        return;
      }
      const { failed } = await this.options.store.deleteMany(keys);
      if (failed.length === 0) {
        logger.debug({ markers: keys.length }, 'pending markers of committed batches removed');
        return;
      }
      logger.warn(
        { markers: keys.length, failed: failed.length, examples: failed.slice(0, KEYS_IN_WARNING) },
        'batches committed, but some of their pending markers could not be removed; the next run clears them',
      );
    } catch (error) {
      logger.warn(
        { markers: keys.length, examples: keys.slice(0, KEYS_IN_WARNING), err: describeError(error) },
        'batches committed, but their pending markers could not be removed; the next run clears them',
      );
    }
  }

  /** A hook that throws confirms nothing: keeping markers is the safe side. */
  private async confirmed(batches: readonly SweptBatch[]): Promise<boolean> {
    try {
      return await this.options.beforeRemove!(batches);
    } catch {
      return false;
    }
  }
}
