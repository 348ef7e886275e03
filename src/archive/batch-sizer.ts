/**
 * Adaptive page size (pure): steers the rows read per page toward a target query time, between
 * `min_batch_size` and `max_batch_size`. A page that took much longer than the target shrinks the
 * next one in proportion (a busy database gets shorter queries at once); a page well under the
 * target grows the next one, by at most half again, so a single fast page cannot balloon memory.
 */
export interface BatchSizerLimits {
  initial: number;
  min: number;
  max: number;
  targetMs: number;
}

export class BatchSizer {
  private size: number;

  constructor(private readonly limits: BatchSizerLimits) {
    this.size = clamp(limits.initial, limits.min, limits.max);
  }

  get current(): number {
    return this.size;
  }

  /** Records how long the last page (of `rows` rows, read with the current size) took; returns the next size. */
  observe(elapsedMs: number, rows: number): number {
    const { min, max, targetMs } = this.limits;
    // A short last page says nothing about the cost of a full one.
    if (rows < this.size || elapsedMs <= 0) return this.size;
    if (elapsedMs > targetMs * 1.2) {
      this.size = clamp(Math.floor(this.size * Math.max(targetMs / elapsedMs, 0.1)), min, max);
    } else if (elapsedMs < targetMs * 0.5) {
      this.size = clamp(Math.floor(this.size * Math.min(targetMs / elapsedMs, 1.5)), min, max);
    }
    return this.size;
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}
