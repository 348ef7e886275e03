/**
 * Retry and error classification of S3ObjectStore against a scripted fake S3: exact request
 * counts, injected sleeps (no real waiting), and no secret in any message.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import type { S3Config } from '../../src/config/schema.js';
import { s3Schema } from '../../src/config/schema.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from '../../src/storage/s3-object-store.js';
import { serializeMultipartState } from '../../src/storage/multipart-state.js';
import type { RetryNotice } from '../../src/storage/with-retry.js';
import { respondWithS3Error, startFaultHttpServer, type FaultHttpServer, type ScriptedStep } from '../helpers/fault-http-server.js';

const ACCESS_KEY_ID = 'AKIAFAULTTESTKEY0001';
const SECRET = 'fault/Secret+Key/wJalrXUtnFEMI/K7MDENG';
const SESSION_TOKEN = 'FwoGZXIvYXdzEXAMPLESESSIONTOKENvalue';

let fault: FaultHttpServer;
let stores: S3ObjectStore[];
let slept: number[];
let notices: RetryNotice[];
/** Every AuditlogError a test saw; afterEach proves none carries a credential. */
let seenErrors: AuditlogError[];

beforeEach(async () => {
  fault = await startFaultHttpServer();
  stores = [];
  slept = [];
  notices = [];
  seenErrors = [];
});

afterEach(async () => {
  for (const store of stores) store.destroy();
  await fault.stop();
  for (const error of seenErrors) {
    const printed = [error.message, JSON.stringify(error.toJSON()), JSON.stringify(error.details)].join('\n');
    for (const secret of [SECRET, SESSION_TOKEN, ACCESS_KEY_ID]) expect(printed).not.toContain(secret);
  }
});

function makeStore(overrides: Partial<S3Config> = {}, options: S3ObjectStoreOptions = {}): S3ObjectStore {
  const config = s3Schema.parse({
    bucket: 'fault-bucket',
    prefix: 'archives/',
    endpoint: fault.endpoint,
    force_path_style: true,
    access_key_id: ACCESS_KEY_ID,
    secret_access_key: SECRET,
    session_token: SESSION_TOKEN,
    request_timeout_ms: 2_000,
    retry: { max_attempts: 4, base_delay_ms: 100, max_delay_ms: 1_000 },
  });
  const store = new S3ObjectStore(
    { ...config, ...overrides },
    {
      sleep: async (ms) => void slept.push(ms),
      random: () => 0.5,
      onRetry: (notice) => void notices.push(notice),
      ...options,
    },
  );
  stores.push(store);
  return store;
}

async function failure(promise: Promise<unknown>): Promise<AuditlogError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuditlogError);
  seenErrors.push(error as AuditlogError);
  expect((error as AuditlogError).message).not.toContain('\n');
  return error as AuditlogError;
}

function ok(body: string | Buffer = '', headers: Record<string, string> = {}): ScriptedStep {
  return { kind: 'respond', status: 200, headers, body };
}

describe('S3ObjectStore retries', () => {
  it('retries a 503 and succeeds with exactly 2 requests', async () => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(503, 'SlowDown'), ok('hello'));
    expect((await store.get('a.txt'))?.toString()).toBe('hello');
    expect(fault.requests).toHaveLength(2);
    expect(fault.requests.map((r) => `${r.method} ${new URL(r.url, fault.endpoint).pathname}`)).toEqual([
      'GET /fault-bucket/archives/a.txt',
      'GET /fault-bucket/archives/a.txt',
    ]);
    expect(slept).toEqual([50]);
    expect(notices.map((n) => [n.attempt, n.maxAttempts, n.classification.reason])).toEqual([[1, 4, 'HTTP 503 SlowDown']]);
  });

  it('retries a put after a 503 and resends the identical Buffer body: no aws-chunked framing, exact Content-Length, our SHA-256', async () => {
    const store = makeStore();
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const sha = createHash('sha256').update(body).digest();
    fault.enqueue(respondWithS3Error(503, 'ServiceUnavailable'), ok());
    await store.put('db/t/obj.jsonl.gz', body, { sha256Hex: sha.toString('hex'), isDataObject: true });
    expect(fault.requests).toHaveLength(2);
    for (const request of fault.requests) {
      expect(request.method).toBe('PUT');
      expect(request.body.equals(body)).toBe(true);
      expect(request.headers['content-length']).toBe(String(body.length));
      expect(request.headers['content-encoding']).toBeUndefined();
      expect(request.headers['x-amz-decoded-content-length']).toBeUndefined();
      expect(request.headers['x-amz-checksum-sha256']).toBe(sha.toString('base64'));
      expect(request.headers['x-amz-checksum-crc32']).toBeUndefined();
      expect(request.headers['x-amz-sdk-checksum-algorithm']).toBeUndefined();
    }
  });

  it.each([
    [500, 'InternalError'],
    [502, 'BadGateway'],
    [503, 'SlowDown'],
    [504, 'GatewayTimeout'],
    [408, 'RequestTimeout'],
    [429, 'TooManyRequests'],
    [400, 'RequestTimeout'],
    [400, 'BadDigest'],
  ])('retries HTTP %i %s', async (status, code) => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(status, code), ok('fine'));
    expect((await store.get('x'))?.toString()).toBe('fine');
    expect(fault.requests).toHaveLength(2);
  });

  it.each([
    [403, 'AccessDenied', 'STORAGE_ACCESS'],
    [403, 'InvalidAccessKeyId', 'STORAGE_ACCESS'],
    [403, 'SignatureDoesNotMatch', 'STORAGE_ACCESS'],
    [403, 'RequestTimeTooSkewed', 'STORAGE_ACCESS'],
    [400, 'ExpiredToken', 'STORAGE_ACCESS'],
    [404, 'NoSuchBucket', 'STORAGE_NOT_FOUND'],
    [400, 'InvalidArgument', 'STORAGE_IO'],
    [412, 'PreconditionFailed', 'STORAGE_CONFLICT'],
  ])('fails HTTP %i %s at once with %s after exactly 1 request', async (status, code, expected) => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(status, code));
    const error = await failure(store.put('x.bin', Buffer.from('x')));
    expect(error.code).toBe(expected);
    expect(error.message).toContain(code);
    expect(error.message).toContain('s3://fault-bucket/archives/x.bin');
    expect(error.details).toMatchObject({ attempts: 1, status, bucket: 'fault-bucket', key: 'archives/x.bin' });
    expect(fault.requests).toHaveLength(1);
    expect(slept).toEqual([]);
  });

  it('says what to do for each access failure', async () => {
    const store = makeStore();
    fault.enqueue(
      respondWithS3Error(403, 'RequestTimeTooSkewed'),
      respondWithS3Error(403, 'SignatureDoesNotMatch'),
      respondWithS3Error(400, 'ExpiredToken'),
      respondWithS3Error(403, 'AccessDenied'),
    );
    expect((await failure(store.get('a'))).message).toMatch(/clock.*NTP/);
    expect((await failure(store.get('a'))).message).toContain('s3.secret_access_key');
    expect((await failure(store.get('a'))).message).toContain('temporary credentials');
    expect((await failure(store.get('a'))).message).toContain('s3:GetObject');
  });

  it('retries a GET whose connection is destroyed mid-body', async () => {
    const store = makeStore();
    const body = Buffer.alloc(64 * 1024, 7);
    fault.enqueue({ kind: 'destroy-mid-body', body, sendBytes: 1000 }, ok(body));
    const back = await store.get('mid/body.bin');
    expect(back?.equals(body)).toBe(true);
    expect(fault.requests).toHaveLength(2);
    expect(notices[0]?.classification.code).toBe('STORAGE_UNREACHABLE');
  });

  it('retries a connection reset before any response', async () => {
    const store = makeStore();
    fault.enqueue({ kind: 'reset' }, ok('after reset'));
    expect((await store.get('r'))?.toString()).toBe('after reset');
    expect(fault.requests).toHaveLength(2);
  });

  it('times out a stalled request after request_timeout_ms and retries it', async () => {
    const store = makeStore({ request_timeout_ms: 300 });
    fault.enqueue({ kind: 'stall' }, ok('late but fine'));
    const started = Date.now();
    expect((await store.get('slow'))?.toString()).toBe('late but fine');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fault.requests).toHaveLength(2);
    expect(notices[0]?.classification.reason).toContain('TimeoutError');
  });

  // Found by probing: the advice was "raise s3.retry.max_attempts", which only makes the wait
  // longer when every attempt waits out request_timeout_ms.
  it('after attempts that all timed out, advises reachability and request_timeout_ms, not more attempts', async () => {
    const store = makeStore({ request_timeout_ms: 300, retry: { max_attempts: 2, base_delay_ms: 100, max_delay_ms: 1_000 } });
    fault.enqueue({ kind: 'stall' }, { kind: 'stall' });
    const e = await failure(store.get('never'));
    expect(e.code).toBe('STORAGE_UNREACHABLE');
    expect(e.message).toContain('failed after 2 attempts');
    expect(e.message).toContain('did not answer within s3.request_timeout_ms (300 ms)');
    expect(e.message).toContain('raise s3.request_timeout_ms if it is only slow');
    expect(e.message).not.toContain('max_attempts');
  });

  it('honours Retry-After (seconds) as the least delay', async () => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(503, 'SlowDown', { 'retry-after': '7' }), ok('x'));
    await store.get('k');
    expect(slept).toEqual([7_000]);
  });

  it('honours Retry-After given as an HTTP date', async () => {
    const store = makeStore();
    const at = new Date(Date.now() + 30_000).toUTCString();
    fault.enqueue(respondWithS3Error(429, 'SlowDown', { 'retry-after': at }), ok('x'));
    await store.get('k');
    expect(slept).toHaveLength(1);
    expect(slept[0]).toBeGreaterThan(25_000);
    expect(slept[0]).toBeLessThanOrEqual(30_000);
  });

  it('gives up after max_attempts with STORAGE_UNREACHABLE naming the attempts', async () => {
    const store = makeStore({ retry: { max_attempts: 3, base_delay_ms: 100, max_delay_ms: 1_000 } });
    fault.enqueue(respondWithS3Error(503, 'SlowDown'), respondWithS3Error(503, 'SlowDown'), respondWithS3Error(503, 'SlowDown'));
    const error = await failure(store.get('k'));
    expect(error.code).toBe('STORAGE_UNREACHABLE');
    expect(error.message).toContain('after 3 attempts');
    expect(error.message).toContain('s3.retry.max_attempts');
    expect(error.details).toMatchObject({ attempts: 3 });
    expect(fault.requests).toHaveLength(3);
    // Full jitter at random() = 0.5: half of 100, then half of 200.
    expect(slept).toEqual([50, 100]);
  });
});

function deleteResult(errors: Array<{ key: string; code: string; message: string }> = []): ScriptedStep {
  const body = errors.map((e) => `<Error><Key>${e.key}</Key><Code>${e.code}</Code><Message>${e.message}</Message></Error>`).join('');
  return ok(`<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body}</DeleteResult>`, { 'content-type': 'application/xml' });
}

describe('S3ObjectStore deleteMany', () => {
  it('sends one Quiet DeleteObjects under the prefix, with both the CRC32 the SDK adds and the Content-MD5 older servers require', async () => {
    const store = makeStore();
    fault.enqueue(deleteResult());
    expect(await store.deleteMany(['t/a.json', 't/b.json'])).toEqual({ failed: [] });
    expect(fault.requests).toHaveLength(1);
    const [request] = fault.requests;
    expect(request!.method).toBe('POST');
    expect(request!.url).toMatch(/^\/fault-bucket\/?\?delete/);
    const xml = request!.body.toString('utf8');
    expect(xml).toContain('<Key>archives/t/a.json</Key>');
    expect(xml).toContain('<Key>archives/t/b.json</Key>');
    expect(xml).toContain('<Quiet>true</Quiet>');
    // requestChecksumCalculation WHEN_REQUIRED still computes one: DeleteObjects requires a checksum.
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(request!.body));
    expect(request!.headers['x-amz-checksum-crc32']).toBe(crc.toString('base64'));
    expect(request!.headers['content-md5']).toBe(createHash('md5').update(request!.body).digest('base64'));
  });

  it('reports keys the server refused one by one as failed (relative keys, no secrets); NoSuchKey counts as deleted', async () => {
    const store = makeStore();
    fault.enqueue(
      deleteResult([
        { key: 'archives/t/b.json', code: 'AccessDenied', message: `Access Denied for ${ACCESS_KEY_ID}` },
        { key: 'archives/t/c.json', code: 'NoSuchKey', message: 'The specified key does not exist.' },
      ]),
    );
    const result = await store.deleteMany(['t/a.json', 't/b.json', 't/c.json']);
    expect(result.failed).toEqual([{ key: 't/b.json', reason: 'AccessDenied: Access Denied for ***' }]);
  });

  it('retries a 503 like every other request', async () => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(503, 'SlowDown'), deleteResult());
    expect(await store.deleteMany(['t/a.json'])).toEqual({ failed: [] });
    expect(fault.requests.map((r) => r.method)).toEqual(['POST', 'POST']);
  });

  it('a bulk delete refused by policy (403) falls back to per-key deletes; when those are refused too, the first refusal ends it, naming the permission', async () => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(403, 'AccessDenied'), respondWithS3Error(403, 'AccessDenied'));
    const { failed } = await store.deleteMany(['t/a.json', 't/b.json', 't/c.json']);
    expect(failed.map((f) => f.key)).toEqual(['t/a.json', 't/b.json', 't/c.json']);
    expect(failed[0]!.reason).toContain('s3:DeleteObject');
    expect(failed[2]!.reason).toMatch(/^not tried after the failure of t\/a\.json: /);
    expect(fault.requests.map((r) => r.method)).toEqual(['POST', 'DELETE']);
  });

  it('throws when the bucket is missing: per-key deletes would not fare better', async () => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(404, 'NoSuchBucket'));
    expect((await failure(store.deleteMany(['t/a.json']))).code).toBe('STORAGE_NOT_FOUND');
    expect(fault.requests).toHaveLength(1);
  });

  it('falls back to one DeleteObject per key on a server without DeleteObjects (501 NotImplemented), remembers it, and stops at the first key that fails', async () => {
    const store = makeStore();
    const deleted: ScriptedStep = { kind: 'respond', status: 204 };
    fault.enqueue(respondWithS3Error(501, 'NotImplemented'), deleted, respondWithS3Error(403, 'AccessDenied'));
    const first = await store.deleteMany(['t/a.json', 't/b.json', 't/c.json']);
    expect(first.failed.map((f) => f.key)).toEqual(['t/b.json', 't/c.json']);
    expect(first.failed[0]!.reason).toContain('s3:DeleteObject');
    // Never asked again: straight to per-key deletes.
    fault.enqueue(deleted, deleted);
    expect(await store.deleteMany(['t/c.json', 't/d.json'])).toEqual({ failed: [] });
    expect(fault.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual([
      'POST /fault-bucket/',
      'DELETE /fault-bucket/archives/t/a.json',
      'DELETE /fault-bucket/archives/t/b.json',
      'DELETE /fault-bucket/archives/t/c.json',
      'DELETE /fault-bucket/archives/t/d.json',
    ]);
  });

  it.each([
    [400, 'InvalidRequest'],
    [400, 'MalformedXML'],
  ])('falls back to per-key deletes when DeleteObjects is refused for its form (%i %s)', async (status, code) => {
    const store = makeStore();
    const deleted: ScriptedStep = { kind: 'respond', status: 204 };
    fault.enqueue(respondWithS3Error(status, code), deleted, deleted);
    expect(await store.deleteMany(['t/a.json', 't/b.json'])).toEqual({ failed: [] });
    expect(fault.requests.map((r) => r.method)).toEqual(['POST', 'DELETE', 'DELETE']);
  });
});

describe('S3ObjectStore results', () => {
  it('answers undefined for NoSuchKey and for a bare 404 HEAD', async () => {
    const store = makeStore();
    fault.enqueue(respondWithS3Error(404, 'NoSuchKey'), { kind: 'respond', status: 404 });
    expect(await store.get('gone')).toBeUndefined();
    expect(await store.head('gone')).toBeUndefined();
    expect(fault.requests).toHaveLength(2);
  });

  it('reports the size and server-side encryption from HEAD', async () => {
    const store = makeStore();
    fault.enqueue({ kind: 'respond', status: 200, headers: { 'content-length': '1234', 'x-amz-server-side-encryption': 'aws:kms' } });
    expect(await store.head('enc')).toEqual({ key: 'enc', size: 1234, serverSideEncryption: 'aws:kms' });
  });

  it('sends storage class and SSE on data objects, and SSE only on sidecars', async () => {
    const store = makeStore({ storage_class: 'GLACIER_IR', sse: 'aws:kms', sse_kms_key_id: 'arn:aws:kms:us-east-1:111122223333:key/abc' });
    fault.enqueue(ok(), ok());
    await store.put('d.jsonl.gz', Buffer.from('d'), { isDataObject: true });
    await store.put('d.metadata.json', Buffer.from('{}'), { contentType: 'application/json' });
    const [data, sidecar] = fault.requests;
    expect(data?.headers['x-amz-storage-class']).toBe('GLACIER_IR');
    expect(data?.headers['x-amz-server-side-encryption']).toBe('aws:kms');
    expect(data?.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe('arn:aws:kms:us-east-1:111122223333:key/abc');
    expect(sidecar?.headers['x-amz-storage-class']).toBeUndefined();
    expect(sidecar?.headers['x-amz-server-side-encryption']).toBe('aws:kms');
    expect(sidecar?.headers['content-type']).toBe('application/json');
  });

  it('lists across pages with continuation tokens, keys relative to the prefix', async () => {
    const store = makeStore();
    const page = (keys: string[], next?: string): ScriptedStep =>
      ok(
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>fault-bucket</Name><Prefix>archives/db/</Prefix><KeyCount>${keys.length}</KeyCount>` +
          `<IsTruncated>${next !== undefined}</IsTruncated>${next === undefined ? '' : `<NextContinuationToken>${next}</NextContinuationToken>`}` +
          keys.map((k) => `<Contents><Key>${k}</Key><Size>${k.length}</Size></Contents>`).join('') +
          '</ListBucketResult>',
        { 'content-type': 'application/xml' },
      );
    fault.enqueue(page(['archives/db/a', 'archives/db/b'], 'tok-1'), respondWithS3Error(503, 'SlowDown'), page(['archives/db/c']));
    const keys: string[] = [];
    for await (const info of store.list('db/')) keys.push(info.key);
    expect(keys).toEqual(['db/a', 'db/b', 'db/c']);
    expect(fault.requests).toHaveLength(3);
    expect(fault.requests[1]?.url).toContain('continuation-token=tok-1');
    expect(fault.requests[2]?.url).toContain('continuation-token=tok-1');
  });
  it('refuses a truncated listing without a continuation token rather than dropping keys', async () => {
    const store = makeStore();
    fault.enqueue(
      ok('<ListBucketResult><Name>fault-bucket</Name><IsTruncated>true</IsTruncated><Contents><Key>archives/a</Key><Size>1</Size></Contents></ListBucketResult>', {
        'content-type': 'application/xml',
      }),
    );
    const keys: string[] = [];
    const error = await failure(
      (async () => {
        for await (const info of store.list('')) keys.push(info.key);
      })(),
    );
    expect(error.code).toBe('STORAGE_IO');
    expect(error.message).toContain('continuation token');
    expect(keys).toEqual(['a']);
  });
});

describe('S3ObjectStore check()', () => {
  it('maps a missing bucket to STORAGE_NOT_FOUND naming the bucket and the fix', async () => {
    const store = makeStore();
    fault.enqueue({ kind: 'respond', status: 404 });
    const error = await failure(store.check());
    expect(error.code).toBe('STORAGE_NOT_FOUND');
    expect(error.message).toContain('bucket "fault-bucket" does not exist');
    expect(error.message).toContain(fault.endpoint);
    expect(error.message).toContain('s3.bucket');
    expect(fault.requests.map((r) => `${r.method} ${new URL(r.url, fault.endpoint).pathname}`)).toEqual(['HEAD /fault-bucket/']);
  });

  it('maps 403 to STORAGE_ACCESS naming the permission', async () => {
    const store = makeStore();
    fault.enqueue({ kind: 'respond', status: 403 });
    const error = await failure(store.check());
    expect(error.code).toBe('STORAGE_ACCESS');
    expect(error.message).toContain('s3:ListBucket');
    expect(fault.requests).toHaveLength(1);
  });

  it('points at s3.region when the bucket lives elsewhere (301)', async () => {
    const store = makeStore();
    fault.enqueue({ kind: 'respond', status: 301, headers: { 'x-amz-bucket-region': 'eu-west-1' } });
    const error = await failure(store.check());
    expect(error.message).toContain('s3.region');
    expect(fault.requests).toHaveLength(1);
  });
});

describe('S3ObjectStore multipart', () => {
  const MIB = 1024 * 1024;
  const multipartOptions: S3ObjectStoreOptions = { multipartThresholdBytes: 6 * MIB, partSizeBytes: 5 * MIB, partConcurrency: 1 };
  const initiated = ok('<InitiateMultipartUploadResult><Bucket>fault-bucket</Bucket><Key>archives/big</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>', {
    'content-type': 'application/xml',
  });
  const part = (n: number): ScriptedStep => ({ kind: 'respond', status: 200, headers: { etag: `"etag-${n}"` } });
  const completed = ok('<CompleteMultipartUploadResult><Location>x</Location><Bucket>fault-bucket</Bucket><Key>archives/big</Key><ETag>"abc-2"</ETag></CompleteMultipartUploadResult>', {
    'content-type': 'application/xml',
  });
  // The resume record: looked up before CreateMultipartUpload, written after it, deleted at the end.
  const noRecord = respondWithS3Error(404, 'NoSuchKey');
  const recordWritten = ok();
  const recordDeleted: ScriptedStep = { kind: 'respond', status: 204 };
  const errorIn200 = ok(
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>',
    { 'content-type': 'application/xml' },
  );

  it('uploads buffered parts with per-part SHA-256 and completes them in order', async () => {
    const store = makeStore({}, multipartOptions);
    const body = Buffer.alloc(6 * MIB + 10, 3);
    fault.enqueue(noRecord, initiated, recordWritten, part(1), part(2), completed, recordDeleted);
    await store.put('big', body, { sha256Hex: createHash('sha256').update(body).digest('hex') });
    const [lookup, create, record, p1, p2, complete, cleared] = fault.requests;
    expect(lookup?.method).toBe('GET');
    expect(lookup?.url).toMatch(/^\/fault-bucket\/archives\/_auditlog\/multipart\/[0-9a-f]{64}\.json/);
    expect(record?.method).toBe('PUT');
    expect(record?.url.split('?')[0]).toBe(lookup?.url.split('?')[0]);
    expect(JSON.parse(record!.body.toString())).toMatchObject({ key: 'archives/big', upload_id: 'up-1', size: body.length, part_size: 5 * MIB, checksum: 'SHA256' });
    expect(cleared?.method).toBe('DELETE');
    expect(cleared?.url.split('?')[0]).toBe(lookup?.url.split('?')[0]);
    expect(create?.url).toMatch(/^\/fault-bucket\/archives\/big\?uploads/);
    expect(create?.headers['x-amz-checksum-algorithm']).toBe('SHA256');
    expect(p1?.body.length).toBe(5 * MIB);
    expect(p2?.body.length).toBe(MIB + 10);
    expect(p1?.headers['content-length']).toBe(String(5 * MIB));
    expect(p1?.headers['x-amz-checksum-sha256']).toBe(createHash('sha256').update(body.subarray(0, 5 * MIB)).digest('base64'));
    expect(Buffer.concat([p1!.body, p2!.body]).equals(body)).toBe(true);
    expect(complete?.body.toString()).toMatch(/<PartNumber>1<\/PartNumber>.*<PartNumber>2<\/PartNumber>/s);
    expect(complete?.body.toString()).toContain('<ChecksumSHA256>');
  });

  it('treats a CompleteMultipartUpload 200 carrying <Error> as a failure, and retries it', async () => {
    const store = makeStore({}, multipartOptions);
    fault.enqueue(noRecord, initiated, recordWritten, part(1), part(2), errorIn200, completed, recordDeleted);
    await store.put('big', Buffer.alloc(6 * MIB + 10, 1));
    expect(fault.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'PUT', 'PUT', 'PUT', 'POST', 'POST', 'DELETE']);
    expect(notices).toHaveLength(1);
  });

  it('aborts the upload when completing keeps failing, and reports the failure', async () => {
    const store = makeStore({ retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 10 } }, multipartOptions);
    fault.enqueue(noRecord, initiated, recordWritten, part(1), part(2), errorIn200, errorIn200, { kind: 'respond', status: 204 }, recordDeleted);
    const error = await failure(store.put('big', Buffer.alloc(6 * MIB + 10, 1)));
    expect(error.code).toBe('STORAGE_UNREACHABLE');
    expect(error.message).toContain('after 2 attempts');
    expect(fault.requests.at(-1)?.url).toContain('/_auditlog/multipart/');
    const abort = fault.requests.at(-2);
    expect(abort?.method).toBe('DELETE');
    expect(new URL(abort!.url, fault.endpoint).searchParams.get('uploadId')).toBe('up-1');
  });

  it('aborts the upload when a part is refused, keeping the part error', async () => {
    const store = makeStore({}, multipartOptions);
    fault.enqueue(noRecord, initiated, recordWritten, respondWithS3Error(403, 'AccessDenied'), { kind: 'respond', status: 204 }, recordDeleted);
    const error = await failure(store.put('big', Buffer.alloc(6 * MIB + 10, 1)));
    expect(error.code).toBe('STORAGE_ACCESS');
    expect(fault.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'PUT', 'PUT', 'DELETE', 'DELETE']);
  });

  it('accepts a lost Complete response when the retry finds the upload done and the object the right size', async () => {
    const store = makeStore({}, multipartOptions);
    const body = Buffer.alloc(6 * MIB + 10, 1);
    fault.enqueue(
      noRecord,
      initiated,
      recordWritten,
      part(1),
      part(2),
      { kind: 'reset' },
      respondWithS3Error(404, 'NoSuchUpload'),
      {
        kind: 'respond',
        status: 200,
        headers: { 'content-length': String(body.length), etag: '"abc-2"' },
      },
      recordDeleted,
    );
    await store.put('big', body);
    expect(fault.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'PUT', 'PUT', 'PUT', 'POST', 'POST', 'HEAD', 'DELETE']);
  });
});

describe('S3ObjectStore multipart resume (S3 reports part checksums)', () => {
  const MIB = 1024 * 1024;
  const sha = (b: Buffer, encoding: 'hex' | 'base64') => createHash('sha256').update(b).digest(encoding);

  it('pages through ListParts, keeps parts whose SHA-256 matches, re-sends the others, and completes with every part', async () => {
    const store = makeStore({}, { multipartThresholdBytes: 6 * MIB, partSizeBytes: 5 * MIB, partConcurrency: 1 });
    const body = Buffer.alloc(16 * MIB + 10);
    for (let i = 0; i < body.length; i += 4096) body[i] = (i / 4096) % 251;
    const part = (n: number) => body.subarray((n - 1) * 5 * MIB, Math.min(body.length, n * 5 * MIB));
    const record = serializeMultipartState({
      key: 'archives/big',
      upload_id: 'up-old',
      part_size: 5 * MIB,
      size: body.length,
      sha256: sha(body, 'hex'),
      checksum: 'SHA256',
      settings: JSON.stringify({ contentType: null }),
      created_at: '2026-01-01T00:00:00.000Z',
    });
    const listed = (n: number, checksum: string) =>
      `<Part><PartNumber>${n}</PartNumber><ETag>"listed-${n}"</ETag><Size>${part(n).length}</Size><ChecksumSHA256>${checksum}</ChecksumSHA256></Part>`;
    const xml = { 'content-type': 'application/xml' };
    fault.enqueue(
      ok(record, { 'content-type': 'application/json', 'content-length': String(record.length) }),
      ok(`<ListPartsResult><UploadId>up-old</UploadId><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>${listed(1, sha(part(1), 'base64'))}${listed(2, sha(Buffer.from('other'), 'base64'))}</ListPartsResult>`, xml),
      ok(`<ListPartsResult><UploadId>up-old</UploadId><IsTruncated>false</IsTruncated>${listed(3, sha(part(3), 'base64'))}</ListPartsResult>`, xml),
      { kind: 'respond', status: 200, headers: { etag: '"new-2"' } },
      { kind: 'respond', status: 200, headers: { etag: '"new-4"' } },
      ok('<CompleteMultipartUploadResult><Key>archives/big</Key><ETag>"x-4"</ETag></CompleteMultipartUploadResult>', xml),
      { kind: 'respond', status: 204 },
    );
    await store.put('big', body, { sha256Hex: sha(body, 'hex') });
    const requests = fault.requests.map((r) => `${r.method} ${new URL(r.url, fault.endpoint).searchParams.toString()}`);
    expect(requests[1]).toContain('uploadId=up-old');
    expect(requests[2]).toContain('part-number-marker=2');
    const partsSent = fault.requests.filter((r) => r.method === 'PUT').map((r) => new URL(r.url, fault.endpoint).searchParams.get('partNumber'));
    expect(partsSent).toEqual(['2', '4']);
    expect(fault.requests[3]?.body.equals(part(2))).toBe(true);
    const complete = fault.requests[5]!.body.toString();
    expect([...complete.matchAll(/<ETag>([^<]+)<\/ETag>/g)].map((m) => m[1]!.replace(/&quot;/g, '"'))).toEqual(['"listed-1"', '"new-2"', '"listed-3"', '"new-4"']);
    expect(fault.requests[6]?.method).toBe('DELETE');
    expect(fault.pending()).toBe(0);
  });

  it('restarts (aborting the old upload) when ListParts is refused, instead of failing the put', async () => {
    const store = makeStore({}, { multipartThresholdBytes: 6 * MIB, partSizeBytes: 5 * MIB, partConcurrency: 1 });
    const body = Buffer.alloc(6 * MIB + 10, 7);
    const record = serializeMultipartState({
      key: 'archives/big',
      upload_id: 'up-old',
      part_size: 5 * MIB,
      size: body.length,
      sha256: sha(body, 'hex'),
      checksum: 'SHA256',
      settings: JSON.stringify({ contentType: null }),
      created_at: '2026-01-01T00:00:00.000Z',
    });
    const xml = { 'content-type': 'application/xml' };
    fault.enqueue(
      ok(record, { 'content-type': 'application/json', 'content-length': String(record.length) }),
      respondWithS3Error(403, 'AccessDenied'),
      { kind: 'respond', status: 204 },
      ok('<InitiateMultipartUploadResult><Bucket>fault-bucket</Bucket><Key>archives/big</Key><UploadId>up-new</UploadId></InitiateMultipartUploadResult>', xml),
      ok(),
      { kind: 'respond', status: 200, headers: { etag: '"p1"' } },
      { kind: 'respond', status: 200, headers: { etag: '"p2"' } },
      ok('<CompleteMultipartUploadResult><Key>archives/big</Key><ETag>"x-2"</ETag></CompleteMultipartUploadResult>', xml),
      { kind: 'respond', status: 204 },
    );
    await store.put('big', body, { sha256Hex: sha(body, 'hex') });
    expect(fault.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'DELETE', 'POST', 'PUT', 'PUT', 'PUT', 'POST', 'DELETE']);
    expect(new URL(fault.requests[2]!.url, fault.endpoint).searchParams.get('uploadId')).toBe('up-old');
    expect(new URL(fault.requests[7]!.url, fault.endpoint).searchParams.get('uploadId')).toBe('up-new');
  });
});

describe('S3ObjectStore secrets', () => {
  it('redacts credentials a server echoes back in an error message', async () => {
    const store = makeStore();
    fault.enqueue({
      kind: 'respond',
      status: 400,
      headers: { 'content-type': 'application/xml' },
      body: `<Error><Code>InvalidArgument</Code><Message>bad request from ${ACCESS_KEY_ID} signed with ${SECRET}</Message></Error>`,
    });
    const error = await failure(store.get('k'));
    expect(error.code).toBe('STORAGE_IO');
    expect(error.message).toContain('bad request from ***');
  });

  it('never names the credentials embedded in an endpoint URL', async () => {
    const store = makeStore({ endpoint: fault.endpoint.replace('http://', `http://user:${encodeURIComponent('pa55word-secret')}@`) });
    fault.enqueue(respondWithS3Error(403, 'AccessDenied'));
    const error = await failure(store.check());
    expect(error.message).not.toContain('pa55word-secret');
    expect(JSON.stringify(error.details)).not.toContain('pa55word-secret');
    expect(store.description).not.toContain('pa55word-secret');
  });
});
