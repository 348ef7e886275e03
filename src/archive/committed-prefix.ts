/**
 * The watermark of a run in progress (pure). Batches are read in (timestamp, key) order but up to
 * `batches_in_flight` of them commit in any order; the watermark may only move past a batch once
 * it and every batch read before it have committed (or finished with nothing to delete). A batch
 * that fails never completes, so the watermark stops before it for good.
 */
import type { RowPosition } from '../core/row-set.js';

export class CommittedPrefix {
  private nextSeq = 0;
  private nextToSettle = 0;
  private readonly pending = new Map<number, { position: RowPosition; done: boolean }>();
  private current: RowPosition | null;
  private committedCount = 0;

  constructor(start: RowPosition | null) {
    this.current = start;
  }

  /** Registers the next batch in read order; returns its sequence number. */
  add(lastPosition: RowPosition): number {
    const seq = this.nextSeq++;
    this.pending.set(seq, { position: lastPosition, done: false });
    return seq;
  }

  /** Marks a batch committed; returns true when the watermark moved. */
  complete(seq: number): boolean {
    const entry = this.pending.get(seq);
    if (entry === undefined || entry.done) return false;
    entry.done = true;
    this.committedCount += 1;
    let moved = false;
    for (let e = this.pending.get(this.nextToSettle); e?.done === true; e = this.pending.get(this.nextToSettle)) {
      this.current = e.position;
      this.pending.delete(this.nextToSettle);
      this.nextToSettle += 1;
      moved = true;
    }
    return moved;
  }

  /** The last position behind which every batch committed (the start position if none). */
  get position(): RowPosition | null {
    return this.current;
  }

  /** Batches completed so far, in any order. */
  get committed(): number {
    return this.committedCount;
  }
}
