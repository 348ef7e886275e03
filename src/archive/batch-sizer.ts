/**
 * Adaptive page size (pure): steers the rows read per page toward a target query time, between
 * `min_batch_size` and `max_batch_size`, and keeps each page's JSON lines under `max_batch_bytes`.
 * A page that took much longer than the target shrinks the next one in proportion (a busy database
 * gets shorter queries at once); a page well under the target grows the next one, by at most half
 * again, so a single fast page cannot balloon memory.
 *
 * Rows are not all alike: 10,000 rows of 1 MB are 10 GB of JSON, held several times over while a
 * batch is compressed and verified. So the size asked for is also capped at max_batch_bytes over
 * the bytes per row last seen (or estimated before the first page). That cap may go below
 * min_batch_size, down to one row: min_batch_size bounds only the time-based shrinking, memory
 * comes first. The time-steered size is kept apart from the cap, so pages of narrow rows after
 * wide ones return to it at once.
 */
export interface BatchSizerLimits {
  initial: number;
  min: number;
  max: number;
  targetMs: number;
  /** Most bytes of JSON lines (each with its '\n') one page should hold. */
  maxBytes: number;
  /** Bytes per row estimated before the first page; unknown (no cap yet) when absent. */
  estimatedBytesPerRow?: number;
}

export class BatchSizer {
  /** The time-steered size, within [min, max]. */
  private timeSize: number;
  /** Rows that fit in maxBytes at the bytes per row last seen; Infinity until known. */
  private byteCap: number;

  constructor(private readonly limits: BatchSizerLimits) {
    this.timeSize = clamp(limits.initial, limits.min, limits.max);
    this.byteCap = rowsWithin(limits.maxBytes, limits.estimatedBytesPerRow);
  }

  get current(): number {
    return Math.max(1, Math.min(this.timeSize, this.byteCap));
  }

  /**
   * Records the last page (of `rows` rows and `bytes` bytes of lines, read with the current size)
   * and how long it took; returns the next size.
   */
  observe(elapsedMs: number, rows: number, bytes: number): number {
    const { min, max, targetMs, maxBytes } = this.limits;
    const asked = this.current;
    // A short last page says nothing about the cost of a full one.
    if (rows < asked || rows <= 0) return asked;
    this.byteCap = rowsWithin(maxBytes, bytes / rows);
    if (elapsedMs <= 0) return this.current;
    // Scaled from the size just read (which the cap may have set), since that is what was timed.
    if (elapsedMs > targetMs * 1.2) {
      this.timeSize = clamp(Math.floor(asked * Math.max(targetMs / elapsedMs, 0.1)), min, max);
    } else if (elapsedMs < targetMs * 0.5 && asked >= this.timeSize) {
      // A fast page the byte cap held down says nothing about a bigger one: grow only an uncapped size.
      this.timeSize = clamp(Math.floor(asked * Math.min(targetMs / elapsedMs, 1.5)), min, max);
    }
    return this.current;
  }
}

/** Whole rows of `bytesPerRow` that fit in `maxBytes`, at least one; unbounded when unknown. */
export function rowsWithin(maxBytes: number, bytesPerRow: number | undefined): number {
  if (bytesPerRow === undefined || !Number.isFinite(bytesPerRow) || bytesPerRow <= 0) return Infinity;
  return Math.max(1, Math.floor(maxBytes / bytesPerRow));
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}
