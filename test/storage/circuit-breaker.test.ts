import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitPermit, type CircuitStateChange } from '../../src/storage/circuit-breaker.js';

function setup(failureThreshold = 3, recoveryTimeoutMs = 1_000) {
  let t = 10_000;
  const changes: CircuitStateChange[] = [];
  const breaker = new CircuitBreaker({ failureThreshold, recoveryTimeoutMs, now: () => t, onStateChange: (c) => changes.push(c) });
  const admit = (): CircuitPermit => {
    const a = breaker.admit();
    if (!a.admitted) throw new Error(`refused in ${a.snapshot.state}`);
    return a.permit;
  };
  return {
    breaker,
    changes,
    admit,
    advance: (ms: number) => void (t += ms),
    get now() {
      return t;
    },
    /** Fails `n` admitted calls in a row. */
    failCalls: (n: number) => {
      for (let i = 0; i < n; i++) breaker.fail(admit(), `HTTP 500 #${i + 1}`);
    },
  };
}

describe('CircuitBreaker', () => {
  it('stays CLOSED below the threshold, and a success resets the consecutive count', () => {
    const c = setup(3);
    c.failCalls(2);
    expect(c.breaker.snapshot()).toMatchObject({ state: 'CLOSED', failures: 2, lastFailure: 'HTTP 500 #2' });
    c.breaker.succeed(c.admit());
    expect(c.breaker.snapshot()).toMatchObject({ state: 'CLOSED', failures: 0 });
    c.failCalls(2);
    expect(c.breaker.snapshot().state).toBe('CLOSED');
    expect(c.changes).toEqual([]);
  });

  it('CLOSED → OPEN at failure_threshold consecutive failures; OPEN refuses every call until the recovery timeout', () => {
    const c = setup(3, 1_000);
    c.failCalls(3);
    const openedAt = c.now;
    expect(c.breaker.snapshot()).toMatchObject({ state: 'OPEN', failures: 3, openedAt, retryAt: openedAt + 1_000, trialInFlight: false });
    expect(c.changes).toEqual([{ from: 'CLOSED', to: 'OPEN', failures: 3, at: openedAt }]);
    expect(c.breaker.isRefusing()).toBe(true);
    c.advance(999);
    const refused = c.breaker.admit();
    expect(refused.admitted).toBe(false);
    expect(refused.admitted === false && refused.snapshot).toMatchObject({ state: 'OPEN', retryAt: openedAt + 1_000 });
    expect(c.breaker.isRefusing()).toBe(true);
  });

  it('OPEN → HALF_OPEN after the recovery timeout: exactly one trial goes through, the others are refused', () => {
    const c = setup(2, 1_000);
    c.failCalls(2);
    c.advance(1_000);
    expect(c.breaker.isRefusing()).toBe(false);
    const trial = c.admit();
    expect(trial.trial).toBe(true);
    expect(c.breaker.snapshot()).toMatchObject({ state: 'HALF_OPEN', trialInFlight: true });
    const second = c.breaker.admit();
    expect(second.admitted).toBe(false);
    expect(second.admitted === false && second.snapshot.trialInFlight).toBe(true);
    expect(c.changes.map((x) => `${x.from}>${x.to}`)).toEqual(['CLOSED>OPEN', 'OPEN>HALF_OPEN']);
  });

  it('HALF_OPEN → CLOSED when the trial succeeds', () => {
    const c = setup(2, 1_000);
    c.failCalls(2);
    c.advance(1_500);
    c.breaker.succeed(c.admit());
    expect(c.breaker.snapshot()).toEqual({ state: 'CLOSED', failures: 0, trialInFlight: false });
    expect(c.changes.map((x) => x.to)).toEqual(['OPEN', 'HALF_OPEN', 'CLOSED']);
    // Closed again: the count starts from zero.
    c.failCalls(1);
    expect(c.breaker.snapshot().state).toBe('CLOSED');
  });

  it('HALF_OPEN → OPEN when the trial fails, with the recovery timer restarted', () => {
    const c = setup(2, 1_000);
    c.failCalls(2);
    c.advance(1_200);
    const state = c.breaker.fail(c.admit(), 'ECONNREFUSED');
    expect(state).toBe('OPEN');
    expect(c.breaker.snapshot()).toMatchObject({ state: 'OPEN', failures: 3, lastFailure: 'ECONNREFUSED', openedAt: c.now, retryAt: c.now + 1_000 });
    c.advance(999);
    expect(c.breaker.admit().admitted).toBe(false);
    c.advance(1);
    expect(c.admit().trial).toBe(true);
    expect(c.changes.map((x) => x.to)).toEqual(['OPEN', 'HALF_OPEN', 'OPEN', 'HALF_OPEN']);
  });

  it('a trial released without a verdict lets the next call be the trial', () => {
    const c = setup(1, 1_000);
    c.failCalls(1);
    c.advance(1_000);
    c.breaker.release(c.admit());
    expect(c.breaker.snapshot()).toMatchObject({ state: 'HALF_OPEN', trialInFlight: false });
    expect(c.admit().trial).toBe(true);
  });

  it('a trial that never reports back is replaced after another recovery timeout, and its late verdict is ignored', () => {
    const c = setup(1, 1_000);
    c.failCalls(1);
    c.advance(1_000);
    const lost = c.admit();
    c.advance(999);
    expect(c.breaker.admit().admitted).toBe(false);
    c.advance(1);
    const replacement = c.admit();
    expect(replacement.trial).toBe(true);
    c.breaker.succeed(lost);
    expect(c.breaker.snapshot().state).toBe('HALF_OPEN');
    c.breaker.succeed(replacement);
    expect(c.breaker.snapshot().state).toBe('CLOSED');
  });

  it('calls admitted before the circuit opened: late failures are counted, late successes do not close it', () => {
    const c = setup(2, 1_000);
    const early = c.admit();
    const earlier = c.admit();
    c.failCalls(2);
    c.breaker.fail(early, 'timeout');
    expect(c.breaker.snapshot()).toMatchObject({ state: 'OPEN', failures: 3, lastFailure: 'timeout' });
    c.breaker.succeed(earlier);
    expect(c.breaker.snapshot()).toMatchObject({ state: 'OPEN', failures: 3 });
    expect(c.changes).toHaveLength(1);
  });

  it('opens on the first failure with failure_threshold 1, and rejects invalid settings', () => {
    const c = setup(1);
    c.failCalls(1);
    expect(c.breaker.snapshot().state).toBe('OPEN');
    expect(() => new CircuitBreaker({ failureThreshold: 0, recoveryTimeoutMs: 1 })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ failureThreshold: 1, recoveryTimeoutMs: -1 })).toThrow(RangeError);
  });
});
