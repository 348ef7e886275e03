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
}

export class MarkerSweeper {
  private queued: string[] = [];
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
  add(markerKey: string): void {
    if (this.queued.length === 0) this.oldestAt = this.now();
    this.queued.push(markerKey);
    if (this.queued.length >= this.maxKeys || this.now() - this.oldestAt >= this.maxAgeMs) void this.sweepQueued();
  }

  /** Sweeps everything queued and waits for every sweep started so far. Never throws. */
  async flush(): Promise<void> {
    await this.sweepQueued();
  }

  private sweepQueued(): Promise<void> {
    const keys = this.queued;
    this.queued = [];
    if (keys.length > 0) this.sweeping = this.sweeping.then(() => this.sweep(keys));
    return this.sweeping;
  }

  /**
   * The batches are committed whatever happens here: a failure is a warning, and the markers are
   * cleared by the next run's reconciliation.
   */
  private async sweep(keys: readonly string[]): Promise<void> {
    const { logger } = this.options;
    try {
      await this.options.beforeSweep?.();
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
}
