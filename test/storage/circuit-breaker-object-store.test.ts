/**
 * The circuit breaker decorator over a scripted in-memory store (the boundary below the logic
 * under test), with a fake clock: which failures count, what an open circuit answers, trials.
 */
import { describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { CircuitBreaker } from '../../src/storage/circuit-breaker.js';
import { CircuitBreakerObjectStore, CircuitGuard, isUnhealthyStorageFailure } from '../../src/storage/circuit-breaker-object-store.js';
import type { DeleteManyResult, ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';

type Outcome = 'ok' | AuditlogError;

const unreachable = (): AuditlogError =>
  new AuditlogError('STORAGE_UNREACHABLE', 'S3 put s3://b/k failed after 4 attempts (HTTP 500 InternalError): check ...', {
    details: { operation: 'put', reason: 'HTTP 500 InternalError', attempts: 4, transient: true },
  });

/** Answers each call with the next scripted outcome ('ok' once the script runs out) and counts calls. */
class ScriptedStore implements ObjectStore {
  readonly description = 's3://bucket/prefix/';
  calls = 0;
  script: Outcome[] = [];

  private async next(): Promise<void> {
    this.calls += 1;
    const outcome = this.script.shift() ?? 'ok';
    if (outcome !== 'ok') throw outcome;
  }
  async put(): Promise<void> {
    await this.next();
  }
  async get(): Promise<Buffer | undefined> {
    await this.next();
    return undefined;
  }
  async head(): Promise<ObjectInfo | undefined> {
    await this.next();
    return undefined;
  }
  async delete(): Promise<void> {
    await this.next();
  }
  async deleteMany(): Promise<DeleteManyResult> {
    await this.next();
    return { failed: [] };
  }
  async check(): Promise<void> {
    await this.next();
  }
  async *list(): AsyncIterable<ObjectInfo> {
    await this.next();
    yield { key: 'a', size: 1 };
    await this.next();
    yield { key: 'b', size: 1 };
  }
}

function setup(failureThreshold = 2, recoveryTimeoutMs = 30_000) {
  let t = Date.parse('2026-01-01T00:00:00Z');
  const now = (): number => t;
  const inner = new ScriptedStore();
  const breaker = new CircuitBreaker({ failureThreshold, recoveryTimeoutMs, now });
  const guard = new CircuitGuard({ breaker, endpoint: 's3://bucket/prefix/ (http://127.0.0.1:9000)', settingPath: 's3.circuit_breaker', now });
  const store = new CircuitBreakerObjectStore(inner, guard);
  return { inner, breaker, guard, store, advance: (ms: number) => void (t += ms) };
}

async function rejection(promise: Promise<unknown>): Promise<AuditlogError> {
  const error = await promise.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuditlogError);
  return error as AuditlogError;
}

describe('isUnhealthyStorageFailure', () => {
  it('counts unreachable endpoints and transient I/O, not decisions', () => {
    expect(isUnhealthyStorageFailure(unreachable())).toBe(true);
    expect(isUnhealthyStorageFailure(new AuditlogError('STORAGE_UNREACHABLE', 'ENOTFOUND', { details: { transient: false } }))).toBe(true);
    expect(isUnhealthyStorageFailure(new AuditlogError('STORAGE_IO', 'BadDigest x4', { details: { transient: true } }))).toBe(true);
    expect(isUnhealthyStorageFailure(new AuditlogError('STORAGE_IO', 'InvalidArgument', { details: { transient: false } }))).toBe(false);
    expect(isUnhealthyStorageFailure(new AuditlogError('STORAGE_ACCESS', 'AccessDenied'))).toBe(false);
    expect(isUnhealthyStorageFailure(new AuditlogError('STORAGE_NOT_FOUND', 'NoSuchBucket'))).toBe(false);
    expect(isUnhealthyStorageFailure(new AuditlogError('STORAGE_CONFLICT', 'PreconditionFailed'))).toBe(false);
    expect(isUnhealthyStorageFailure(new Error('ECONNRESET'))).toBe(false);
  });
});

describe('CircuitBreakerObjectStore', () => {
  it('opens after failure_threshold unhealthy operations: the tripping call reports the circuit, then calls fail at once without reaching the store', async () => {
    const s = setup(2, 30_000);
    s.inner.script = [unreachable(), unreachable()];
    const first = await rejection(s.store.put('k', Buffer.from('x')));
    expect(first.code).toBe('STORAGE_UNREACHABLE');
    const tripped = await rejection(s.store.put('k', Buffer.from('x')));
    expect(tripped.code).toBe('STORAGE_CIRCUIT_OPEN');
    expect(tripped.exitCode).toBe(1);
    expect(tripped.message).toContain('storage circuit opened: 2 consecutive storage operations failed against s3://bucket/prefix/ (http://127.0.0.1:9000) (last: put: HTTP 500 InternalError)');
    expect(tripped.message).toContain('the next trial request goes at 2026-01-01T00:00:30.000Z (in 30s)');
    expect(tripped.message).toContain('s3.circuit_breaker');
    expect(tripped.message).not.toContain('\n');
    expect(tripped.cause).toBeInstanceOf(AuditlogError);

    s.advance(10_000);
    const calls = s.inner.calls;
    for (const call of [s.store.get('k'), s.store.head('k'), s.store.delete('k'), s.store.deleteMany(['k']), s.store.check(), s.store.put('k', Buffer.from('x'))]) {
      const refused = await rejection(call);
      expect(refused.code).toBe('STORAGE_CIRCUIT_OPEN');
      expect(refused.message).toContain('storage circuit open: 2 consecutive storage operations failed against s3://bucket/prefix/ (http://127.0.0.1:9000)');
      expect(refused.message).toContain('(in 20s)');
      expect(refused.details).toMatchObject({ failures: 2, state: 'OPEN', retry_at: '2026-01-01T00:00:30.000Z', endpoint: 's3://bucket/prefix/ (http://127.0.0.1:9000)' });
    }
    const listing = await rejection((async () => {
      for await (const _ of s.store.list('')) expect.unreachable('no listing while open');
    })());
    expect(listing.code).toBe('STORAGE_CIRCUIT_OPEN');
    expect(s.inner.calls).toBe(calls);
  });

  it('not found, access denied, conflicts and rejected requests never open it, and count as the endpoint being alive', async () => {
    const s = setup(2);
    s.inner.script = [
      unreachable(),
      new AuditlogError('STORAGE_ACCESS', 'AccessDenied'),
      unreachable(),
      new AuditlogError('STORAGE_NOT_FOUND', 'NoSuchBucket'),
      new AuditlogError('STORAGE_CONFLICT', 'exists'),
      new AuditlogError('STORAGE_IO', 'InvalidArgument', { details: { transient: false } }),
      unreachable(),
    ];
    for (let i = 0; i < 7; i++) await s.store.put('k', Buffer.from('x')).catch(() => undefined);
    expect(await s.store.get('missing')).toBeUndefined();
    expect(s.breaker.snapshot()).toMatchObject({ state: 'CLOSED', failures: 0 });
    expect(s.inner.calls).toBe(8);
  });

  it('lets one trial through after recovery_timeout_ms: success closes the circuit', async () => {
    const s = setup(1, 5_000);
    s.inner.script = [unreachable()];
    expect((await rejection(s.store.check())).code).toBe('STORAGE_CIRCUIT_OPEN');
    s.advance(5_000);
    await s.store.check();
    expect(s.breaker.snapshot().state).toBe('CLOSED');
    await s.store.put('k', Buffer.from('x'));
    expect(s.inner.calls).toBe(3);
  });

  it('a failed trial re-opens it, and a call arriving during the trial is refused', async () => {
    const s = setup(1, 5_000);
    s.inner.script = [unreachable()];
    await rejection(s.store.check());
    s.advance(5_000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    s.inner.check = async () => {
      s.inner.calls += 1;
      await gate;
      throw unreachable();
    };
    const trial = s.store.check();
    const during = await rejection(s.store.get('k'));
    expect(during.code).toBe('STORAGE_CIRCUIT_OPEN');
    expect(during.message).toContain('a trial request is in flight');
    release();
    const failedTrial = await rejection(trial);
    expect(failedTrial.code).toBe('STORAGE_CIRCUIT_OPEN');
    expect(failedTrial.message).toContain('storage circuit opened: 2 consecutive');
    expect(s.breaker.snapshot()).toMatchObject({ state: 'OPEN', failures: 2 });
    expect(s.inner.calls).toBe(2);
  });

  it('a listing is one operation; stopping early counts as a success', async () => {
    const s = setup(1);
    const keys: string[] = [];
    for await (const o of s.store.list('')) {
      keys.push(o.key);
      break;
    }
    expect(keys).toEqual(['a']);
    s.inner.script = ['ok', unreachable()];
    const error = await rejection((async () => {
      for await (const _ of s.store.list('')) void _;
    })());
    expect(error.code).toBe('STORAGE_CIRCUIT_OPEN');
    expect(s.breaker.snapshot().state).toBe('OPEN');
  });

  it('the per-attempt hook refuses retries while the circuit is open, and a refused call does not count as a failure', async () => {
    const s = setup(1, 5_000);
    expect(() => s.guard.beforeAttempt()).not.toThrow();
    s.inner.script = [unreachable()];
    await rejection(s.store.put('k', Buffer.from('x')));
    expect(() => s.guard.beforeAttempt()).toThrow(/storage circuit open/);
    s.advance(5_000);
    // The trial's attempts go out; a refusal raised inside a call releases its permit without a verdict.
    expect(() => s.guard.beforeAttempt()).not.toThrow();
    s.inner.put = async () => {
      throw s.guard.openError(s.breaker.snapshot(), 'refused');
    };
    await rejection(s.store.put('k', Buffer.from('x')));
    expect(s.breaker.snapshot()).toMatchObject({ state: 'HALF_OPEN', trialInFlight: false, failures: 1 });
  });
});
