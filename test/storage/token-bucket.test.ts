import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/storage/token-bucket.js';

/** Requests a greedy caller gets through in [0, windowMs] when it takes a token whenever one is there. */
function greedyCount(bucket: TokenBucket, windowMs: number, start = 0): number {
  let t = start;
  let passed = 0;
  while (t <= start + windowMs) {
    const wait = bucket.tryTake(t);
    if (wait === 0) passed++;
    else t += wait;
  }
  return passed;
}

describe('TokenBucket', () => {
  it('lets a full burst through at once, then spaces requests 1/rate apart', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, now: 0 });
    expect([bucket.tryTake(0), bucket.tryTake(0), bucket.tryTake(0)]).toEqual([0, 0, 0]);
    expect(bucket.tryTake(0)).toBe(100);
    expect(bucket.tryTake(50)).toBe(50);
    expect(bucket.tryTake(100)).toBe(0);
    expect(bucket.tryTake(100)).toBe(100);
  });

  it('respects the rate over a window: at most burst + rate × seconds', () => {
    for (const [rate, burst] of [
      [10, 1],
      [50, 5],
      [2.5, 1],
      [200, 20],
    ] as const) {
      const passed = greedyCount(new TokenBucket({ ratePerSecond: rate, burst, now: 0 }), 10_000);
      expect(passed).toBeLessThanOrEqual(burst + rate * 10);
      expect(passed).toBeGreaterThanOrEqual(Math.floor(burst + rate * 10) - 1);
    }
  });

  it('never saves up more than the burst, however long it was idle', () => {
    const bucket = new TokenBucket({ ratePerSecond: 100, burst: 4, now: 0, initialTokens: 0 });
    let passed = 0;
    while (bucket.tryTake(60_000) === 0) passed++;
    expect(passed).toBe(4);
  });

  it('starts empty when asked to, and a new rate applies from then on', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 1, now: 0, initialTokens: 0 });
    expect(bucket.tryTake(0)).toBe(100);
    bucket.setRate(2, 1, 0);
    expect(bucket.tryTake(0)).toBe(500);
    expect(bucket.ratePerSecond).toBe(2);
    expect(greedyCount(bucket, 5_000, 0)).toBeLessThanOrEqual(11);
  });

  it('drain drops saved tokens', () => {
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 5, now: 0 });
    bucket.drain(0);
    expect(bucket.tryTake(0)).toBe(100);
  });

  it('rejects a rate or burst that cannot work', () => {
    expect(() => new TokenBucket({ ratePerSecond: 0, burst: 1, now: 0 })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: 1, burst: 0.5, now: 0 })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSecond: Number.POSITIVE_INFINITY, burst: 1, now: 0 })).toThrow(RangeError);
  });
});
