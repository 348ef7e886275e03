import { describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { classifyFsError, classifyS3Error, IncompleteBodyError } from '../../src/storage/retry-policy.js';
import { RetryAbortedError, RetryGaveUpError, withRetry } from '../../src/storage/with-retry.js';

/** The shape @aws-sdk/client-s3 gives a service error. */
function s3Error(name: string, status: number, headers: Record<string, string> = {}): Error {
  const error = Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, $fault: status >= 500 ? 'server' : 'client' });
  Object.defineProperty(error, '$response', { value: { statusCode: status, headers }, enumerable: false });
  return error;
}

function networkError(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

describe('classifyS3Error', () => {
  it.each([
    ['SlowDown', 503],
    ['InternalError', 500],
    ['ServiceUnavailable', 503],
    ['RequestTimeout', 400],
    ['Throttling', 400],
    ['Unknown', 502],
    ['Unknown', 504],
    ['Unknown', 408],
    ['Unknown', 429],
    ['BadDigest', 400],
  ])('retries %s (HTTP %i)', (name, status) => {
    expect(classifyS3Error(s3Error(name, status)).retryable).toBe(true);
  });

  it.each([
    ['AccessDenied', 403, 'STORAGE_ACCESS'],
    ['InvalidAccessKeyId', 403, 'STORAGE_ACCESS'],
    ['SignatureDoesNotMatch', 403, 'STORAGE_ACCESS'],
    ['RequestTimeTooSkewed', 403, 'STORAGE_ACCESS'],
    ['ExpiredToken', 400, 'STORAGE_ACCESS'],
    ['Unknown', 403, 'STORAGE_ACCESS'],
    ['NoSuchBucket', 404, 'STORAGE_NOT_FOUND'],
    ['NotFound', 404, 'STORAGE_NOT_FOUND'],
    ['PreconditionFailed', 412, 'STORAGE_CONFLICT'],
    ['InvalidArgument', 400, 'STORAGE_IO'],
    ['EntityTooLarge', 400, 'STORAGE_IO'],
    ['Unknown', 301, 'STORAGE_IO'],
  ])('fails %s (HTTP %i) at once as %s', (name, status, code) => {
    const classification = classifyS3Error(s3Error(name, status));
    expect(classification.retryable).toBe(false);
    expect(classification.code).toBe(code);
    expect(classification.status).toBe(status);
  });

  it.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH'])('retries the network error %s', (code) => {
    expect(classifyS3Error(networkError(code))).toMatchObject({ retryable: true, code: 'STORAGE_UNREACHABLE', reason: code });
  });

  it('retries "socket hang up", TimeoutError and a short body', () => {
    expect(classifyS3Error(new Error('socket hang up')).retryable).toBe(true);
    expect(classifyS3Error(Object.assign(new Error('request timed out'), { name: 'TimeoutError', code: 'ETIMEDOUT' }))).toMatchObject({
      retryable: true,
      reason: 'TimeoutError (ETIMEDOUT)',
    });
    expect(classifyS3Error(new IncompleteBodyError(100, 10)).retryable).toBe(true);
  });

  it('does not retry a host name that does not resolve, but calls it unreachable', () => {
    expect(classifyS3Error(networkError('ENOTFOUND', 'getaddrinfo ENOTFOUND nowhere.invalid'))).toMatchObject({ retryable: false, code: 'STORAGE_UNREACHABLE' });
  });

  it('treats missing credentials as an access problem', () => {
    const error = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
    expect(classifyS3Error(error)).toMatchObject({ retryable: false, code: 'STORAGE_ACCESS' });
  });

  it('reads Retry-After from the response', () => {
    expect(classifyS3Error(s3Error('SlowDown', 503, { 'Retry-After': '3' })).retryAfterMs).toBe(3_000);
  });

  it('never retries our own AuditlogErrors, and unknown errors are plain I/O failures', () => {
    expect(classifyS3Error(new AuditlogError('VERIFY_FAILED', 'x'))).toMatchObject({ retryable: false, code: 'STORAGE_IO' });
    expect(classifyS3Error(new AuditlogError('STORAGE_CONFLICT', 'x'))).toMatchObject({ retryable: false, code: 'STORAGE_CONFLICT' });
    expect(classifyS3Error('a string')).toMatchObject({ retryable: false, code: 'STORAGE_IO' });
    expect(classifyS3Error(new TypeError('bug'))).toMatchObject({ retryable: false, code: 'STORAGE_IO' });
  });
});

describe('classifyFsError', () => {
  it.each([
    ['EAGAIN', true, 'STORAGE_IO'],
    ['EBUSY', true, 'STORAGE_IO'],
    ['EMFILE', true, 'STORAGE_IO'],
    ['EACCES', false, 'STORAGE_ACCESS'],
    ['EROFS', false, 'STORAGE_ACCESS'],
    ['ENOENT', false, 'STORAGE_NOT_FOUND'],
    ['EISDIR', false, 'STORAGE_CONFLICT'],
    ['ENOTDIR', false, 'STORAGE_CONFLICT'],
    ['ENOSPC', false, 'STORAGE_IO'],
    ['EIO', false, 'STORAGE_IO'],
  ])('%s: retryable %s, %s', (code, retryable, storageCode) => {
    expect(classifyFsError(networkError(code))).toMatchObject({ retryable, code: storageCode, errorCode: code });
  });
});

describe('withRetry', () => {
  const retry = { max_attempts: 4, base_delay_ms: 100, max_delay_ms: 300 };

  it('counts attempts, sleeps full-jitter delays between them and reports each retry', async () => {
    const slept: number[] = [];
    const seen: number[] = [];
    const notices: Array<[number, number]> = [];
    const result = await withRetry(
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 4) throw networkError('ECONNRESET');
        return 'done';
      },
      { policy: (e) => classifyS3Error(e), retry, random: () => 0.999, sleep: async (ms) => void slept.push(ms), onRetry: (n) => notices.push([n.attempt, n.delayMs]) },
    );
    expect(result).toBe('done');
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(slept).toEqual([99, 199, 299]);
    expect(notices).toEqual([
      [1, 99],
      [2, 199],
      [3, 299],
    ]);
  });

  it('stops at max_attempts with a RetryGaveUpError carrying the count and the last cause', async () => {
    let calls = 0;
    const last = s3Error('SlowDown', 503);
    const error = await withRetry(
      async () => {
        calls += 1;
        throw last;
      },
      { policy: (e) => classifyS3Error(e), retry, sleep: async () => undefined },
    ).catch((e: unknown) => e);
    expect(calls).toBe(4);
    expect(error).toBeInstanceOf(RetryGaveUpError);
    expect((error as RetryGaveUpError).attempts).toBe(4);
    expect((error as RetryGaveUpError).cause).toBe(last);
  });

  it.each(['during the back-off wait', 'during the next attempt'])('given up by its signal %s, names the failure it was retrying', async (when) => {
    const giveUp = new AbortController();
    const error = await withRetry(
      async (attempt) => {
        if (attempt === 1) throw s3Error('SlowDown', 503);
        // The second attempt is cut by the abort, as the SDK's request is.
        giveUp.abort(new Error('no answer within 5000 ms'));
        throw new Error('aborted');
      },
      {
        policy: (e) => classifyS3Error(e),
        retry,
        signal: giveUp.signal,
        sleep: async () => {
          if (when === 'during the back-off wait') giveUp.abort(new Error('no answer within 5000 ms'));
        },
      },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryAbortedError);
    expect((error as RetryAbortedError).lastFailure).toMatch(/503/);
    expect((error as RetryAbortedError).message).toMatch(/no answer within 5000 ms \(last attempt: .*503/);
  });

  it('gives up at once on a permanent failure', async () => {
    let calls = 0;
    const error = await withRetry(
      async () => {
        calls += 1;
        throw s3Error('AccessDenied', 403);
      },
      { policy: (e) => classifyS3Error(e), retry, sleep: async () => expect.unreachable('no sleep') },
    ).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect((error as RetryGaveUpError).attempts).toBe(1);
    expect((error as RetryGaveUpError).classification.code).toBe('STORAGE_ACCESS');
  });

  it('passes AuditlogErrors through untouched and unretried', async () => {
    let calls = 0;
    const own = new AuditlogError('VERIFY_FAILED', 'checksum mismatch');
    await expect(
      withRetry(
        async () => {
          calls += 1;
          throw own;
        },
        { policy: () => ({ retryable: true, code: 'STORAGE_IO', reason: 'x' }), retry },
      ),
    ).rejects.toBe(own);
    expect(calls).toBe(1);
  });

  it('makes exactly one attempt when max_attempts is 1', async () => {
    let calls = 0;
    await withRetry(
      async () => {
        calls += 1;
        throw networkError('ECONNRESET');
      },
      { policy: (e) => classifyS3Error(e), retry: { ...retry, max_attempts: 1 } },
    ).catch(() => undefined);
    expect(calls).toBe(1);
  });
});
