import { describe, expect, it } from 'vitest';
import { BatchSizer } from '../../src/archive/batch-sizer.js';

describe('BatchSizer', () => {
  const limits = { initial: 10_000, min: 1_000, max: 40_000, targetMs: 2_000 };

  it('shrinks in proportion when a full page runs over the target, down to min', () => {
    const s = new BatchSizer(limits);
    expect(s.observe(4_000, 10_000)).toBe(5_000);
    expect(s.observe(100_000, 5_000)).toBe(1_000);
    expect(s.observe(100_000, 1_000)).toBe(1_000);
  });

  it('grows by at most half again per page when well under the target, up to max', () => {
    const s = new BatchSizer(limits);
    expect(s.observe(10, 10_000)).toBe(15_000);
    expect(s.observe(10, 15_000)).toBe(22_500);
    expect(s.observe(10, 22_500)).toBe(33_750);
    expect(s.observe(10, 33_750)).toBe(40_000);
    expect(s.observe(10, 40_000)).toBe(40_000);
  });

  it('keeps the size near the target, and ignores short last pages', () => {
    const s = new BatchSizer(limits);
    expect(s.observe(2_300, 10_000)).toBe(10_000);
    expect(s.observe(1_100, 10_000)).toBe(10_000);
    expect(s.observe(60_000, 37)).toBe(10_000);
  });

  it('starts inside the bounds whatever the configured size', () => {
    expect(new BatchSizer({ ...limits, initial: 50 }).current).toBe(1_000);
    expect(new BatchSizer({ ...limits, initial: 90_000 }).current).toBe(40_000);
  });
});
