/**
 * `retry.retryable_errors`: every retryable failure belongs to one class; classes left out of the
 * list fail at once. And the per-attempt hooks the rate limiter and circuit breaker hang on.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { RETRY_ERROR_CLASSES, retrySchema, s3Schema, type RetryErrorClass } from '../../src/config/schema.js';
import { classifyFsError, classifyS3Error, IncompleteBodyError } from '../../src/storage/retry-policy.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { RetryGaveUpError, withRetry, type AttemptOutcome } from '../../src/storage/with-retry.js';
import { respondWithS3Error, startFaultHttpServer, type FaultHttpServer } from '../helpers/fault-http-server.js';

function s3Error(name: string, status: number): Error {
  const error = Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status } });
  Object.defineProperty(error, '$response', { value: { statusCode: status, headers: {} }, enumerable: false });
  return error;
}

const coded = (code: string): Error => Object.assign(new Error(code), { code });

describe('retry classes', () => {
  it.each<[string, Error, RetryErrorClass]>([
    ['503 SlowDown', s3Error('SlowDown', 503), 'throttling'],
    ['429', s3Error('Unknown', 429), 'throttling'],
    ['400 Throttling', s3Error('Throttling', 400), 'throttling'],
    ['500 InternalError', s3Error('InternalError', 500), 'server_error'],
    ['502', s3Error('Unknown', 502), 'server_error'],
    ['503 ServiceUnavailable', s3Error('ServiceUnavailable', 503), 'server_error'],
    ['408', s3Error('Unknown', 408), 'timeout'],
    ['400 RequestTimeout', s3Error('RequestTimeout', 400), 'timeout'],
    ['ETIMEDOUT', coded('ETIMEDOUT'), 'timeout'],
    ['TimeoutError', Object.assign(new Error('timed out'), { name: 'TimeoutError' }), 'timeout'],
    ['ECONNRESET', coded('ECONNRESET'), 'connection'],
    ['ECONNREFUSED', coded('ECONNREFUSED'), 'connection'],
    ['socket hang up', new Error('socket hang up'), 'connection'],
    ['short body', new IncompleteBodyError(10, 5), 'connection'],
    ['400 BadDigest', s3Error('BadDigest', 400), 'checksum'],
    ['400 XAmzContentSHA256Mismatch', s3Error('XAmzContentSHA256Mismatch', 400), 'checksum'],
  ])('S3: %s is %s', (_, error, retryClass) => {
    expect(classifyS3Error(error)).toMatchObject({ retryable: true, retryClass });
  });

  it.each<[string, RetryErrorClass]>([
    ['EAGAIN', 'busy'],
    ['EBUSY', 'busy'],
    ['EMFILE', 'busy'],
    ['ETIMEDOUT', 'timeout'],
    ['ESTALE', 'connection'],
  ])('local: %s is %s', (code, retryClass) => {
    expect(classifyFsError(coded(code))).toMatchObject({ retryable: true, retryClass });
  });

  it('permanent failures have no class', () => {
    expect(classifyS3Error(s3Error('AccessDenied', 403)).retryClass).toBeUndefined();
    expect(classifyS3Error(coded('ENOTFOUND')).retryClass).toBeUndefined();
    expect(classifyFsError(coded('EACCES')).retryClass).toBeUndefined();
  });

  it('the schema accepts the classes, defaults to all of them (unset) and refuses unknown ones', () => {
    expect(retrySchema.parse({}).retryable_errors).toBeUndefined();
    expect(retrySchema.parse({ retryable_errors: ['throttling', 'timeout'] }).retryable_errors).toEqual(['throttling', 'timeout']);
    expect(retrySchema.parse({ retryable_errors: [...RETRY_ERROR_CLASSES] }).retryable_errors).toHaveLength(6);
    expect(retrySchema.safeParse({ retryable_errors: ['503'] }).success).toBe(false);
  });
});

describe('withRetry with retryable_errors', () => {
  const base = { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 1 };

  async function attemptsFor(error: Error, retryable_errors?: RetryErrorClass[]): Promise<{ calls: number; failure: RetryGaveUpError }> {
    let calls = 0;
    const failure = await withRetry(
      async () => {
        calls++;
        throw error;
      },
      { policy: (e) => classifyS3Error(e), retry: { ...base, ...(retryable_errors === undefined ? {} : { retryable_errors }) }, sleep: async () => undefined },
    ).catch((e: unknown) => e as RetryGaveUpError);
    expect(failure).toBeInstanceOf(RetryGaveUpError);
    return { calls, failure };
  }

  it('retries every class when unset', async () => {
    for (const error of [s3Error('SlowDown', 503), s3Error('InternalError', 500), coded('ETIMEDOUT'), coded('ECONNRESET'), s3Error('BadDigest', 400)]) {
      const { calls, failure } = await attemptsFor(error);
      expect(calls).toBe(4);
      expect(failure.excludedClass).toBeUndefined();
    }
  });

  it('fails a class left out at once, and still retries the listed ones', async () => {
    const only = ['server_error', 'connection'] satisfies RetryErrorClass[];
    const slowDown = await attemptsFor(s3Error('SlowDown', 503), only);
    expect(slowDown.calls).toBe(1);
    expect(slowDown.failure.excludedClass).toBe('throttling');
    expect(slowDown.failure.classification.code).toBe('STORAGE_UNREACHABLE');
    expect((await attemptsFor(coded('ETIMEDOUT'), only)).calls).toBe(1);
    expect((await attemptsFor(s3Error('BadDigest', 400), only)).calls).toBe(1);
    expect((await attemptsFor(s3Error('InternalError', 500), only)).calls).toBe(4);
    expect((await attemptsFor(coded('ECONNRESET'), only)).calls).toBe(4);
  });

  it('an empty list retries nothing; permanent failures stay permanent whatever the list', async () => {
    expect((await attemptsFor(s3Error('InternalError', 500), [])).calls).toBe(1);
    const denied = await attemptsFor(s3Error('AccessDenied', 403), [...RETRY_ERROR_CLASSES]);
    expect(denied.calls).toBe(1);
    expect(denied.failure.excludedClass).toBeUndefined();
  });

  it('runs beforeAttempt before every attempt and reports each outcome to afterAttempt', async () => {
    const events: string[] = [];
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls++;
        events.push(`send ${calls}`);
        if (calls < 3) throw s3Error('SlowDown', 503);
        return 'ok';
      },
      {
        policy: (e) => classifyS3Error(e),
        retry: base,
        sleep: async () => undefined,
        beforeAttempt: (attempt) => void events.push(`before ${attempt}`),
        afterAttempt: (o: AttemptOutcome) => void events.push(`after ${o.attempt} ${o.classification?.retryClass ?? 'ok'}`),
      },
    );
    expect(result).toBe('ok');
    expect(events).toEqual(['before 1', 'send 1', 'after 1 throttling', 'before 2', 'send 2', 'after 2 throttling', 'before 3', 'send 3', 'after 3 ok']);
  });

  it('an AuditlogError from beforeAttempt ends the operation without another attempt', async () => {
    const refusal = new AuditlogError('STORAGE_CIRCUIT_OPEN', 'open');
    let calls = 0;
    const error = await withRetry(
      async () => {
        calls++;
        throw coded('ECONNRESET');
      },
      {
        policy: (e) => classifyS3Error(e),
        retry: base,
        sleep: async () => undefined,
        beforeAttempt: (attempt) => {
          if (attempt > 1) throw refusal;
        },
      },
    ).catch((e: unknown) => e);
    expect(error).toBe(refusal);
    expect(calls).toBe(1);
  });
});

describe('S3ObjectStore with retryable_errors', () => {
  let fault: FaultHttpServer;
  let store: S3ObjectStore | undefined;
  beforeEach(async () => {
    fault = await startFaultHttpServer();
  });
  afterEach(async () => {
    store?.destroy();
    await fault.stop();
  });

  function makeStore(retryable_errors: RetryErrorClass[]): S3ObjectStore {
    const config = s3Schema.parse({
      bucket: 'fault-bucket',
      endpoint: fault.endpoint,
      force_path_style: true,
      access_key_id: 'AKIAEXAMPLEKEY0001',
      secret_access_key: 'example-secret-value',
      retry: { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 1, retryable_errors },
    });
    store = new S3ObjectStore(config, { sleep: async () => undefined });
    return store;
  }

  it('fails a SlowDown at once when throttling is not listed, saying so; a 500 is still retried', async () => {
    const s = makeStore(['server_error']);
    fault.enqueue(respondWithS3Error(503, 'SlowDown'));
    const error = (await s.get('a').catch((e: unknown) => e)) as AuditlogError;
    expect(error).toBeInstanceOf(AuditlogError);
    expect(error.code).toBe('STORAGE_UNREACHABLE');
    expect(error.message).toContain('(not retried: `throttling` is not in s3.retry.retryable_errors)');
    expect(error.details).toMatchObject({ attempts: 1, transient: true });
    expect(fault.requests).toHaveLength(1);

    fault.enqueue(respondWithS3Error(500, 'InternalError'), { kind: 'respond', status: 200, body: 'fine' });
    expect((await s.get('b'))?.toString()).toBe('fine');
    expect(fault.requests).toHaveLength(3);
  });
});
