import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { etagIsMd5Of, S3ObjectStore, type S3ObjectStoreOptions } from '../../src/storage/s3-object-store.js';
import type { S3Config } from '../../src/config/schema.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { collectList, runObjectStoreContract, sha256Hex } from './object-store-contract.js';

let server: S3TestServer;
const stores: S3ObjectStore[] = [];
let namespace = 0;

function makeStore(overrides: Partial<S3Config> = {}, options: S3ObjectStoreOptions = {}): S3ObjectStore {
  const store = new S3ObjectStore(server.s3Config(overrides), options);
  stores.push(store);
  return store;
}

/** A store over a prefix no other test uses: s3rver is shared by the file. */
function freshStore(options: S3ObjectStoreOptions = {}): S3ObjectStore {
  namespace += 1;
  return makeStore({ prefix: `t${namespace}/` }, options);
}

beforeAll(async () => {
  server = await startS3Server();
});

afterEach(() => {
  for (const store of stores.splice(0)) store.destroy();
});

afterAll(async () => {
  await server.stop();
});

describe('S3ObjectStore on s3rver: ObjectStore contract', () => {
  runObjectStoreContract({ store: () => freshStore() });
});

describe('S3ObjectStore on s3rver', () => {
  it('describes itself as s3://bucket/prefix/', () => {
    expect(makeStore({ prefix: 'archives/' }).description).toBe(`s3://${server.bucket}/archives/`);
  });

  it('writes every key under the configured prefix and lists keys relative to it', async () => {
    const store = makeStore({ prefix: 'scoped/' });
    const unprefixed = makeStore({ prefix: '' });
    await store.put('db/a.txt', Buffer.from('a'));
    expect((await unprefixed.head('scoped/db/a.txt'))?.size).toBe(1);
    expect((await collectList(store, 'db/')).map((o) => o.key)).toEqual(['db/a.txt']);
  });

  it('confirms the bytes of a single-part PUT from its ETag only when asked, never for a multipart upload', async () => {
    const store = freshStore({ multipartThresholdBytes: 5 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 });
    const small = Buffer.from('{"a":1}\n');
    expect(await store.put('etag/small.json', small, { confirmBytes: true })).toEqual({ bytesConfirmed: true });
    expect(await store.put('etag/small.json', small)).toEqual({});
    const big = randomBytes(6 * 1024 * 1024);
    expect(await store.put('etag/big.bin', big, { confirmBytes: true })).toEqual({});
  });

  it('reads an ETag as the MD5 of a body only when it is exactly that digest', () => {
    const body = Buffer.from('sidecar');
    const md5 = createHash('md5').update(body).digest('hex');
    expect(etagIsMd5Of(`"${md5}"`, body)).toBe(true);
    expect(etagIsMd5Of(md5.toUpperCase(), body)).toBe(true);
    expect(etagIsMd5Of(`"${md5}-2"`, body)).toBe(false);
    const oneDigitOff = md5.slice(0, 31) + (md5.endsWith('0') ? '1' : '0');
    expect(etagIsMd5Of(`"${oneDigitOff}"`, body)).toBe(false);
    expect(etagIsMd5Of(`"${createHash('md5').update('other').digest('hex')}"`, body)).toBe(false);
    expect(etagIsMd5Of(undefined, body)).toBe(false);
  });

  it('uploads 20 MB as a multipart upload of buffered parts and reads back the exact bytes', async () => {
    const store = freshStore();
    const prefix = `t${namespace}/`;
    const body = randomBytes(20_000_000);
    const eventsBefore = server.events.length;
    await store.put('big/object.jsonl.gz', body, { sha256Hex: sha256Hex(body), isDataObject: true });
    // s3rver reports a completed multipart upload as a POST, a single PutObject as a PUT.
    // The resume record (_auditlog/multipart/…) is written before the parts and removed after Complete.
    // Only this store's keys: s3rver's events arrive asynchronously, and under load an earlier
    // test's last event (its record's removal) came in after eventsBefore was taken.
    const mine = (): typeof server.events => server.events.slice(eventsBefore).filter((e) => e.key.startsWith(prefix));
    await vi.waitFor(() =>
      expect(mine().map((e) => [e.eventName, e.key.includes('/_auditlog/multipart/') ? 'record' : e.key.slice(prefix.length)])).toEqual([
        ['ObjectCreated:Put', 'record'],
        ['ObjectCreated:Post', 'big/object.jsonl.gz'],
        ['ObjectRemoved:Delete', 'record'],
      ]),
    );
    expect((await store.head('big/object.jsonl.gz'))?.size).toBe(body.length);
    const back = await store.get('big/object.jsonl.gz');
    expect(back?.length).toBe(body.length);
    expect(sha256Hex(back!)).toBe(sha256Hex(body));
  });

  it('uses a single PutObject below the multipart threshold, with the exact size stored (no aws-chunked framing)', async () => {
    const store = freshStore({ multipartThresholdBytes: 8 * 1024 * 1024 });
    const body = randomBytes(3 * 1024 * 1024);
    const eventsBefore = server.events.length;
    await store.put('single/object.bin', body, { sha256Hex: sha256Hex(body) });
    await vi.waitFor(() => expect(server.events.slice(eventsBefore).map((e) => [e.eventName, e.size])).toEqual([['ObjectCreated:Put', body.length]]));
    expect((await store.head('single/object.bin'))?.size).toBe(body.length);
  });

  it('honours a lower multipart threshold and a custom part size', async () => {
    const store = freshStore({ multipartThresholdBytes: 6 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024, partConcurrency: 2 });
    const body = randomBytes(11 * 1024 * 1024 + 7);
    await store.put('parts/three.bin', body, { sha256Hex: sha256Hex(body) });
    expect(sha256Hex((await store.get('parts/three.bin'))!)).toBe(sha256Hex(body));
  });

  it('paginates list() past 1000 keys, in order, without duplicates', async () => {
    const store = freshStore();
    const prefix = store.description.slice(`s3://${server.bucket}/`.length);
    const keys = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}.txt`);
    await server.seedObjects(keys.map((key) => ({ key: `${prefix}${key}`, body: Buffer.from(key) })));
    const listed = await collectList(store, 'many/');
    expect(listed.map((o) => o.key)).toEqual(keys);
    expect(listed.every((o) => o.size === 'many/0000.txt'.length)).toBe(true);

    const smallPages = makeStore({ prefix }, { listPageSize: 100 });
    expect((await collectList(smallPages, 'many/')).map((o) => o.key)).toEqual(keys);
  });

  it('skips the empty folder placeholders an S3 console creates, but not a non-empty key ending in "/"', async () => {
    const store = freshStore();
    const prefix = store.description.slice(`s3://${server.bucket}/`.length);
    await server.seedObjects([
      { key: `${prefix}db/`, body: Buffer.alloc(0) },
      { key: `${prefix}db/year=2024/`, body: Buffer.alloc(0) },
      { key: `${prefix}db/year=2024/a.txt`, body: Buffer.from('a') },
      { key: `${prefix}db/odd/`, body: Buffer.from('not a folder') },
    ]);
    expect((await collectList(store, 'db/')).map((o) => o.key)).toEqual(['db/odd/', 'db/year=2024/a.txt']);
  });

  it('deletes 2,500 keys with DeleteObjects in chunks of 1,000 (3 requests), leaving every other key', async () => {
    let attempts = 0;
    const store = freshStore({ afterAttempt: () => void (attempts += 1) });
    const prefix = store.description.slice(`s3://${server.bucket}/`.length);
    const doomed = Array.from({ length: 2_500 }, (_, i) => `bulk/${String(i).padStart(4, '0')}.json`);
    const kept = ['bulk/keep-1.json', 'bulk/zz/keep-2.json'];
    await server.seedObjects([...doomed, ...kept].map((key) => ({ key: `${prefix}${key}`, body: Buffer.from(key) })));
    // A few keys that never existed, in the middle of a chunk: not an error.
    const result = await store.deleteMany([...doomed.slice(0, 1_200), 'bulk/missing-a.json', 'bulk/missing-b.json', ...doomed.slice(1_200)]);
    expect(result).toEqual({ failed: [] });
    expect(attempts).toBe(3);
    expect((await collectList(store, 'bulk/')).map((o) => o.key)).toEqual(kept);
  });

  it('accepts storage class and SSE settings on data objects', async () => {
    namespace += 1;
    const store = makeStore({ prefix: `t${namespace}/`, storage_class: 'STANDARD_IA', sse: 'AES256' });
    await store.put('classy/data.jsonl.gz', Buffer.from('data'), { isDataObject: true });
    await store.put('classy/data.metadata.json', Buffer.from('{}'), { contentType: 'application/json' });
    expect((await store.get('classy/data.jsonl.gz'))?.toString()).toBe('data');
  });

  it('check() names a missing bucket and the fix, with STORAGE_NOT_FOUND', async () => {
    const store = makeStore({ bucket: 'no-such-bucket-here' });
    const error = await store.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditlogError);
    expect((error as AuditlogError).code).toBe('STORAGE_NOT_FOUND');
    expect((error as AuditlogError).message).toContain('"no-such-bucket-here"');
    expect((error as AuditlogError).message).toContain('s3.bucket');
    expect((error as AuditlogError).message).not.toContain('\n');
    expect((error as AuditlogError).details).toMatchObject({ bucket: 'no-such-bucket-here', attempts: 1 });
  });

  it('fails fast with STORAGE_ACCESS on an unknown access key, never echoing the credentials', async () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY';
    const slept: number[] = [];
    const store = makeStore(
      { access_key_id: 'AKIAUNKNOWNKEY123456', secret_access_key: secret },
      { sleep: async (ms) => void slept.push(ms) },
    );
    const errors = await Promise.all([
      store.check().catch((e: unknown) => e),
      store.get('x.txt').catch((e: unknown) => e),
      store.put('x.txt', Buffer.from('x')).catch((e: unknown) => e),
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(AuditlogError);
      expect((error as AuditlogError).code).toBe('STORAGE_ACCESS');
      const printed = `${(error as AuditlogError).message} ${JSON.stringify((error as AuditlogError).toJSON())}`;
      expect(printed).not.toContain(secret);
      expect(printed).not.toContain('AKIAUNKNOWNKEY123456');
    }
    expect((errors[1] as AuditlogError).message).toContain('InvalidAccessKeyId');
    expect(slept).toEqual([]);
  });

  it('an endpoint without force_path_style whose bucket subdomain does not resolve names that address and s3.force_path_style (found by probing)', async () => {
    const hidden = makeStore({ endpoint: 'http://s3.invalid:9000', force_path_style: false });
    const error = await hidden.check().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'STORAGE_UNREACHABLE' });
    expect((error as AuditlogError).message).toBe(
      `S3 check s3://${server.bucket} failed (ENOTFOUND): cannot resolve ${server.bucket}.s3.invalid, the bucket's virtual-hosted-style address at http://s3.invalid:9000; set s3.force_path_style: true (most S3-compatible servers need it), or fix s3.endpoint`,
    );
    // Path style: the endpoint's own host is what failed, and the message stays about it.
    const typo = makeStore({ endpoint: 'http://s3.invalid:9000', force_path_style: true });
    expect(((await typo.check().catch((e: unknown) => e)) as AuditlogError).message).toContain('cannot reach http://s3.invalid:9000; check s3.endpoint, DNS and TLS settings');
  });

  it('reports an unreachable endpoint (a closed port) quickly as STORAGE_UNREACHABLE', async () => {
    const port = await findClosedPort();
    const slept: number[] = [];
    const store = new S3ObjectStore(
      { ...server.s3Config(), endpoint: `http://127.0.0.1:${port}`, retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 10 } },
      { sleep: async (ms) => void slept.push(ms) },
    );
    stores.push(store);
    const started = Date.now();
    const error = await store.check().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(error).toMatchObject({ code: 'STORAGE_UNREACHABLE' });
    expect((error as AuditlogError).message).toContain(`http://127.0.0.1:${port}`);
    expect((error as AuditlogError).message).toContain('after 2 attempts');
    expect((error as AuditlogError).message).toContain('ECONNREFUSED');
    expect(slept).toHaveLength(1);
  });
});

async function findClosedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
