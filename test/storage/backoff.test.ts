import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeBackoffDelay, DEFAULT_MAX_RETRY_AFTER_MS, parseRetryAfter } from '../../src/core/backoff.js';

describe('computeBackoffDelay', () => {
  it('stays within full-jitter bounds: [0, min(max, base * 2^(attempt-1))]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, baseDelayMs, maxDelayMs, draw) => {
          const delay = computeBackoffDelay(attempt, { baseDelayMs, maxDelayMs, random: () => draw });
          const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
          expect(Number.isInteger(delay)).toBe(true);
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(ceiling);
        },
      ),
      { seed: 20_240_101 },
    );
  });

  it('doubles the ceiling per attempt and caps it', () => {
    const top = { baseDelayMs: 200, maxDelayMs: 1_000, random: () => 0.999_999 };
    expect([1, 2, 3, 4, 5, 60].map((n) => computeBackoffDelay(n, top))).toEqual([199, 399, 799, 999, 999, 999]);
    expect(computeBackoffDelay(3, { ...top, random: () => 0 })).toBe(0);
  });

  it('waits at least what Retry-After asks, bounded', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10_000_000 }), fc.double({ min: 0, max: 0.999, noNaN: true }), (attempt, retryAfterMs, draw) => {
        const delay = computeBackoffDelay(attempt, { baseDelayMs: 100, maxDelayMs: 5_000, random: () => draw, retryAfterMs });
        expect(delay).toBeGreaterThanOrEqual(Math.min(retryAfterMs, DEFAULT_MAX_RETRY_AFTER_MS));
        expect(delay).toBeLessThanOrEqual(Math.max(5_000, DEFAULT_MAX_RETRY_AFTER_MS));
      }),
      { seed: 7 },
    );
    expect(computeBackoffDelay(1, { baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0, retryAfterMs: 120_000, maxRetryAfterMs: 30_000 })).toBe(30_000);
    expect(computeBackoffDelay(1, { baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0, retryAfterMs: 0 })).toBe(0);
  });

  it('rejects a non-positive attempt', () => {
    expect(() => computeBackoffDelay(0, { baseDelayMs: 1, maxDelayMs: 1, random: () => 0 })).toThrow(RangeError);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');

  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('7', now)).toBe(7_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
  });

  it('ignores absent or unparsable values', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
  });
});
