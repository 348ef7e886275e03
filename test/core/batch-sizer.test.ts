import { describe, expect, it } from 'vitest';
import { BatchSizer } from '../../src/archive/batch-sizer.js';

const MiB = 1024 * 1024;

describe('BatchSizer', () => {
  const limits = { initial: 10_000, min: 1_000, max: 40_000, targetMs: 2_000, maxBytes: 16 * MiB };
  /** Bytes of `rows` rows of 100 bytes: far under the byte bound, so only time steers. */
  const narrow = (rows: number): number => rows * 100;

  it('shrinks in proportion when a full page runs over the target, down to min', () => {
    const s = new BatchSizer(limits);
    expect(s.observe(4_000, 10_000, narrow(10_000))).toBe(5_000);
    expect(s.observe(100_000, 5_000, narrow(5_000))).toBe(1_000);
    expect(s.observe(100_000, 1_000, narrow(1_000))).toBe(1_000);
  });

  it('grows by at most half again per page when well under the target, up to max', () => {
    const s = new BatchSizer(limits);
    expect(s.observe(10, 10_000, narrow(10_000))).toBe(15_000);
    expect(s.observe(10, 15_000, narrow(15_000))).toBe(22_500);
    expect(s.observe(10, 22_500, narrow(22_500))).toBe(33_750);
    expect(s.observe(10, 33_750, narrow(33_750))).toBe(40_000);
    expect(s.observe(10, 40_000, narrow(40_000))).toBe(40_000);
  });

  it('keeps the size near the target, and ignores short last pages', () => {
    const s = new BatchSizer(limits);
    expect(s.observe(2_300, 10_000, narrow(10_000))).toBe(10_000);
    expect(s.observe(1_100, 10_000, narrow(10_000))).toBe(10_000);
    expect(s.observe(60_000, 37, 37 * 10 * MiB)).toBe(10_000);
  });

  it('starts inside the bounds whatever the configured size', () => {
    expect(new BatchSizer({ ...limits, initial: 50 }).current).toBe(1_000);
    expect(new BatchSizer({ ...limits, initial: 90_000 }).current).toBe(40_000);
  });

  it('starts at the rows the estimated bytes per row fit in max_batch_bytes, at least one', () => {
    expect(new BatchSizer({ ...limits, estimatedBytesPerRow: 10 * 1024 }).current).toBe(1_638);
    expect(new BatchSizer({ ...limits, estimatedBytesPerRow: 100 }).current).toBe(10_000);
    expect(new BatchSizer({ ...limits, estimatedBytesPerRow: 64 * MiB }).current).toBe(1);
    // An estimate that failed or found nothing: batch_size.
    expect(new BatchSizer({ ...limits, estimatedBytesPerRow: 0 }).current).toBe(10_000);
    expect(new BatchSizer({ ...limits, estimatedBytesPerRow: Number.NaN }).current).toBe(10_000);
  });

  it('shrinks a page over max_batch_bytes to rows × max_batch_bytes / bytes, below min_batch_size and down to one row', () => {
    const s = new BatchSizer(limits);
    // 10,000 rows of 10 KiB: 100 MiB.
    expect(s.observe(1_500, 10_000, 10_000 * 10 * 1024)).toBe(1_638);
    // Rows of 1 MiB: 16 of them, under min_batch_size.
    expect(s.observe(1_500, 1_638, 1_638 * MiB)).toBe(16);
    // One row bigger than the bound: still one row a page.
    expect(s.observe(1_500, 16, 16 * 40 * MiB)).toBe(1);
    expect(s.observe(1_500, 1, 40 * MiB)).toBe(1);
  });

  it('never grows past the byte bound, and returns to the time-steered size when rows narrow again', () => {
    const s = new BatchSizer(limits);
    // Fast pages of 2 KiB rows: time says grow (to 15,000), bytes say at most 8,192 rows.
    expect(s.observe(10, 10_000, 10_000 * 2 * 1024)).toBe(8_192);
    expect(s.observe(10, 8_192, 8_192 * 2 * 1024)).toBe(8_192);
    // Narrow rows again: the byte cap lifts; the time-steered size did not grow while capped.
    expect(s.observe(10, 8_192, narrow(8_192))).toBe(15_000);
    expect(s.observe(10, 15_000, narrow(15_000))).toBe(22_500);
  });

  it('lets time shrink a capped page further, never below min_batch_size by time alone', () => {
    const s = new BatchSizer({ ...limits, min: 100 });
    expect(s.observe(1_000, 10_000, 10_000 * 4 * 1024)).toBe(4_096);
    // Four times over the target: a quarter of the 4,096 rows read.
    expect(s.observe(8_000, 4_096, 4_096 * 4 * 1024)).toBe(1_024);
    expect(s.observe(100_000, 1_024, 1_024 * 4 * 1024)).toBe(102);
    expect(s.observe(100_000, 102, 102 * 4 * 1024)).toBe(100);
  });
});
