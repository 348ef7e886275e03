/** The adaptive request rate limiter on a fake clock: its sleep advances time instead of waiting. */
import { describe, expect, it } from 'vitest';
import { CUT_COOLDOWN_MS, RequestRateLimiter, type RateChange } from '../../src/storage/request-rate-limiter.js';
import type { ErrorClassification } from '../../src/storage/retry-policy.js';

function setup(ratePerSecond?: number) {
  let t = 1_000_000;
  const slept: number[] = [];
  const changes: RateChange[] = [];
  const limiter = new RequestRateLimiter({
    ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
    onRateChange: (c) => changes.push(c),
  });
  /** Acquires `n` tokens one after another and returns the fake time of each. */
  const acquireTimes = async (n: number): Promise<number[]> => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      await limiter.acquire();
      times.push(t);
    }
    return times;
  };
  return {
    limiter,
    slept,
    changes,
    acquireTimes,
    advance: (ms: number) => void (t += ms),
    get now() {
      return t;
    },
  };
}

const throttling: ErrorClassification = { retryable: true, retryClass: 'throttling', code: 'STORAGE_UNREACHABLE', reason: 'HTTP 503 SlowDown', status: 503 };
const serverError: ErrorClassification = { retryable: true, retryClass: 'server_error', code: 'STORAGE_UNREACHABLE', reason: 'HTTP 500 InternalError', status: 500 };

/** Most timestamps within any window of `windowMs`. */
function maxInWindow(times: number[], windowMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('RequestRateLimiter', () => {
  it('without a limit never waits', async () => {
    const s = setup();
    await s.acquireTimes(500);
    expect(s.slept).toEqual([]);
    expect(s.limiter.ratePerSecond).toBeUndefined();
  });

  it('holds a configured rate over any one-second window (burst: a tenth of a second)', async () => {
    const s = setup(20);
    const times = await s.acquireTimes(200);
    expect(maxInWindow(times, 1_000)).toBeLessThanOrEqual(22);
    // 200 requests at 20/s, two of them from the initial burst: about ten seconds.
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(9_850);
    expect(times.at(-1)! - times[0]!).toBeLessThanOrEqual(10_000);
  });

  it('serves concurrent callers in order, still at the rate', async () => {
    const s = setup(10);
    const order: number[] = [];
    const times: number[] = [];
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        s.limiter.acquire().then(() => {
          order.push(i);
          times.push(s.now);
        }),
      ),
    );
    expect(order).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(maxInWindow(times, 1_000)).toBeLessThanOrEqual(11);
  });

  it('a SlowDown halves the rate and drops saved tokens; answers within the cooldown are the same event', async () => {
    const s = setup(40);
    s.limiter.observe({ attempt: 1, classification: throttling });
    expect(s.limiter.ratePerSecond).toBe(20);
    // No burst after a cut, although the bucket was full: the next request waits its 1/20 s turn.
    await s.limiter.acquire();
    expect(s.slept).toEqual([50]);
    s.limiter.observe({ attempt: 2, classification: throttling });
    s.advance(CUT_COOLDOWN_MS - 51);
    s.limiter.observe({ attempt: 3, classification: throttling });
    expect(s.limiter.ratePerSecond).toBe(20);
    s.advance(1);
    s.limiter.observe({ attempt: 1, classification: throttling });
    expect(s.limiter.ratePerSecond).toBe(10);
    expect(s.changes.map((c) => [c.previous, c.ratePerSecond, c.reason])).toEqual([
      [40, 20, 'throttled'],
      [20, 10, 'throttled'],
    ]);
    const times = await s.acquireTimes(50);
    expect(maxInWindow(times, 1_000)).toBeLessThanOrEqual(11);
  });

  it('never cuts below one request per second (or the configured rate when that is lower)', () => {
    const s = setup(3);
    for (let i = 0; i < 10; i++) {
      s.limiter.throttled();
      s.advance(CUT_COOLDOWN_MS);
    }
    expect(s.limiter.ratePerSecond).toBe(1);
    const slow = setup(0.2);
    slow.limiter.throttled();
    expect(slow.limiter.ratePerSecond).toBe(0.2);
  });

  it('other failures leave the rate alone', () => {
    const s = setup(40);
    s.limiter.observe({ attempt: 1, classification: serverError });
    expect(s.limiter.ratePerSecond).toBe(40);
  });

  it('recovers gradually on successes, up to the configured rate and no further', async () => {
    const s = setup(40);
    s.limiter.throttled();
    expect(s.limiter.ratePerSecond).toBe(20);
    s.limiter.observe({ attempt: 1 });
    // A tenth of the ceiling per second of traffic: +4/s at 20 successes per second = +0.2 per success.
    expect(s.limiter.ratePerSecond).toBeCloseTo(20.2, 6);
    let successes = 1;
    while (s.limiter.ratePerSecond! < 40) {
      s.limiter.observe({ attempt: 1 });
      successes++;
    }
    // About five seconds' worth of traffic, not a jump back.
    expect(successes).toBeGreaterThan(100);
    expect(successes).toBeLessThan(200);
    expect(s.limiter.ratePerSecond).toBe(40);
    s.limiter.observe({ attempt: 1 });
    expect(s.limiter.ratePerSecond).toBe(40);
    expect(s.changes.at(-1)).toMatchObject({ ratePerSecond: 40, reason: 'restored' });
  });

  it('with no limit configured, a SlowDown starts one at half the observed rate, which is lifted once recovered', async () => {
    const s = setup();
    // 50 requests per second for two seconds.
    for (let i = 0; i < 100; i++) {
      await s.limiter.acquire();
      s.advance(20);
    }
    s.limiter.observe({ attempt: 1, classification: throttling });
    // The request exactly one second old is out of the window: 49 or 50 of them.
    expect(s.limiter.ratePerSecond).toBeGreaterThanOrEqual(24.5);
    expect(s.limiter.ratePerSecond).toBeLessThanOrEqual(25);
    expect(s.changes[0]).toMatchObject({ previous: undefined, reason: 'throttled' });
    const times = await s.acquireTimes(50);
    expect(maxInWindow(times, 1_000)).toBeLessThanOrEqual(27);
    while (s.limiter.ratePerSecond !== undefined) s.limiter.observe({ attempt: 1 });
    expect(s.changes.at(-1)).toMatchObject({ ratePerSecond: undefined, reason: 'restored' });
    const sleptBefore = s.slept.length;
    await s.acquireTimes(100);
    expect(s.slept.length).toBe(sleptBefore);
  });
});
