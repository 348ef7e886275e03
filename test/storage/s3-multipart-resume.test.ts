/**
 * Multipart resume and cleanup against a real S3-compatible server (s3rver, whose missing
 * ListParts/ListMultipartUploads/Abort are answered from its own upload store by the test
 * helper), with a fault proxy in front to cut the connection mid-upload and to count requests.
 */
import { randomBytes } from 'node:crypto';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { S3Config } from '../../src/config/schema.js';
import { multipartStateKey, parseMultipartState } from '../../src/storage/multipart-state.js';
import { S3ObjectStore, type MultipartEvent, type S3ObjectStoreOptions } from '../../src/storage/s3-object-store.js';
import { startFaultProxy, type FaultAction, type FaultProxy, type RequestInfo } from '../helpers/fault-proxy.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { sha256Hex } from './object-store-contract.js';

const MIB = 1024 * 1024;
const KEY = 'app/public.events/year=2025/month=01/day=02/000000000000-abc.jsonl.gz';

let server: S3TestServer;
let proxy: FaultProxy;
let raw: S3Client;
const stores: S3ObjectStore[] = [];
let namespace = 0;

beforeAll(async () => {
  server = await startS3Server();
  proxy = await startFaultProxy(server.endpoint);
  raw = new S3Client({ region: 'us-east-1', endpoint: server.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
});

afterEach(() => {
  for (const store of stores.splice(0)) store.destroy();
  proxy.rule = () => 'pass';
});

afterAll(async () => {
  raw.destroy();
  await proxy.stop();
  await server.stop();
});

function freshPrefix(): string {
  namespace += 1;
  return `mp${namespace}/`;
}

function makeStore(prefix: string, options: S3ObjectStoreOptions = {}, overrides: Partial<S3Config> = {}): S3ObjectStore {
  const store = new S3ObjectStore(
    server.s3Config({ prefix, endpoint: proxy.endpoint, retry: { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1 }, ...overrides }),
    { multipartThresholdBytes: 6 * MIB, partSizeBytes: 5 * MIB, partConcurrency: 1, ...options },
  );
  stores.push(store);
  return store;
}

/** Records every request the proxy sees (method and path with query) and applies `decide`. */
function recordRequests(decide: (req: RequestInfo, log: RequestInfo[]) => FaultAction = () => 'pass'): RequestInfo[] {
  const log: RequestInfo[] = [];
  proxy.rule = (req) => {
    log.push(req);
    return decide(req, log);
  };
  return log;
}

const isPartUpload = (req: RequestInfo): boolean => req.method === 'PUT' && /[?&]partNumber=/.test(req.path);
const partNumbers = (log: RequestInfo[]): number[] => log.filter(isPartUpload).map((r) => Number(/[?&]partNumber=(\d+)/.exec(r.path)![1]));

async function uploadsUnder(prefix: string): Promise<Array<{ key: string; uploadId: string }>> {
  const out = await raw.send(new ListMultipartUploadsCommand({ Bucket: server.bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

/** A put that loses the connection for good after `parts` parts were accepted: parts, upload and resume record stay behind, as after kill -9. */
async function interruptedPut(prefix: string, body: Buffer, parts: number, key = KEY): Promise<void> {
  const store = makeStore(prefix);
  recordRequests((req, log) => (log.filter(isPartUpload).length > parts ? 'reset' : 'pass'));
  await expect(store.put(key, body, { sha256Hex: sha256Hex(body), isDataObject: true })).rejects.toMatchObject({ code: 'STORAGE_UNREACHABLE' });
  proxy.rule = () => 'pass';
}

async function readState(prefix: string) {
  const body = await makeStore(prefix).get(multipartStateKey(`${prefix}${KEY}`));
  return body === undefined ? undefined : parseMultipartState(body);
}

describe('multipart resume', () => {
  it('after an interrupted upload, sends only the missing parts, completes byte-identical, and removes the resume record', async () => {
    const prefix = freshPrefix();
    const body = randomBytes(16 * MIB + 10);
    await interruptedPut(prefix, body, 2);
    const state = await readState(prefix);
    expect(state).toMatchObject({ key: `${prefix}${KEY}`, size: body.length, sha256: sha256Hex(body), part_size: 5 * MIB });
    expect(await uploadsUnder(prefix)).toEqual([{ key: `${prefix}${KEY}`, uploadId: state!.upload_id }]);

    const events: MultipartEvent[] = [];
    const store = makeStore(prefix, { onMultipart: (e) => events.push(e) });
    const log = recordRequests();
    await store.put(KEY, body, { sha256Hex: sha256Hex(body), isDataObject: true });
    expect(partNumbers(log)).toEqual([3, 4]);
    expect(log.some((r) => r.method === 'POST' && /[?&]uploads/.test(r.path))).toBe(false);
    expect(events).toEqual([{ kind: 'resumed', key: `${prefix}${KEY}`, uploadId: state!.upload_id, partsReused: 2, partsUploaded: 2 }]);
    const back = await store.get(KEY);
    expect(back?.equals(body)).toBe(true);
    expect(await readState(prefix)).toBeUndefined();
    expect(await uploadsUnder(prefix)).toEqual([]);
  });

  it('uploads again a part whose bytes on the server differ (ETag is not its MD5)', async () => {
    const prefix = freshPrefix();
    const body = randomBytes(11 * MIB);
    await interruptedPut(prefix, body, 2);
    const state = (await readState(prefix))!;
    // Part 2 replaced by other bytes of the same size: only its MD5 ETag can tell.
    await raw.send(new UploadPartCommand({ Bucket: server.bucket, Key: state.key, UploadId: state.upload_id, PartNumber: 2, Body: randomBytes(5 * MIB) }));

    const store = makeStore(prefix);
    const log = recordRequests();
    await store.put(KEY, body, { sha256Hex: sha256Hex(body), isDataObject: true });
    expect(partNumbers(log)).toEqual([2, 3]);
    expect((await store.get(KEY))?.equals(body)).toBe(true);
  });

  it('aborts the old upload and starts afresh when the record is for another body', async () => {
    const prefix = freshPrefix();
    await interruptedPut(prefix, randomBytes(11 * MIB), 1);
    const old = (await readState(prefix))!;

    const body = randomBytes(12 * MIB);
    const events: MultipartEvent[] = [];
    const store = makeStore(prefix, { onMultipart: (e) => events.push(e) });
    const log = recordRequests();
    await store.put(KEY, body, { sha256Hex: sha256Hex(body), isDataObject: true });
    expect(log.some((r) => r.method === 'DELETE' && r.path.includes(`uploadId=${old.upload_id}`))).toBe(true);
    expect(partNumbers(log)).toEqual([1, 2, 3]);
    expect(events).toEqual([{ kind: 'restarted', key: `${prefix}${KEY}`, reason: 'different-body' }]);
    expect((await store.get(KEY))?.equals(body)).toBe(true);
    expect(await readState(prefix)).toBeUndefined();
    expect(await uploadsUnder(prefix)).toEqual([]);
  });

  it('starts afresh when the recorded upload no longer exists (NoSuchUpload)', async () => {
    const prefix = freshPrefix();
    const body = randomBytes(11 * MIB);
    await interruptedPut(prefix, body, 1);
    const old = (await readState(prefix))!;
    await raw.send(new AbortMultipartUploadCommand({ Bucket: server.bucket, Key: old.key, UploadId: old.upload_id }));

    const events: MultipartEvent[] = [];
    const store = makeStore(prefix, { onMultipart: (e) => events.push(e) });
    const log = recordRequests();
    await store.put(KEY, body, { sha256Hex: sha256Hex(body), isDataObject: true });
    expect(events).toEqual([{ kind: 'restarted', key: `${prefix}${KEY}`, reason: 'upload-gone' }]);
    expect(partNumbers(log)).toEqual([1, 2, 3]);
    expect((await store.get(KEY))?.equals(body)).toBe(true);
    expect(await readState(prefix)).toBeUndefined();
  });
});

describe('cleanup of interrupted multipart uploads', () => {
  it('aborts only old uploads of archiver keys and their records; dry run changes nothing; objects stay', async () => {
    const prefix = freshPrefix();
    const store = makeStore(prefix);
    await store.put('app/public.events/year=2025/month=01/day=02/kept.jsonl.gz', Buffer.from('committed'));
    await interruptedPut(prefix, randomBytes(11 * MIB), 1);
    const orphan = (await readState(prefix))!;
    // Another application's upload under the same prefix: not ours, never aborted.
    const foreign = makeStore(prefix);
    recordRequests((req, log) => (log.filter(isPartUpload).length > 1 ? 'reset' : 'pass'));
    await expect(foreign.put('other-app/upload.bin', randomBytes(11 * MIB))).rejects.toMatchObject({ code: 'STORAGE_UNREACHABLE' });
    proxy.rule = () => 'pass';
    await server.backdateUploads(2);
    // Started after the backdating: one hour is not over for it.
    await interruptedPut(prefix, randomBytes(11 * MIB), 1, KEY.replace('-abc', '-young'));
    expect(await uploadsUnder(prefix)).toHaveLength(3);

    const cutoff = new Date(Date.now() - 3_600_000);
    const dry = await store.cleanupInterrupted({ olderThan: cutoff, dryRun: true });
    const stateKey = multipartStateKey(`${prefix}${KEY}`);
    expect(dry.items).toEqual([
      { kind: 'multipart-upload', key: KEY, uploadId: orphan.upload_id, since: expect.any(String), action: 'would-abort' },
      { kind: 'multipart-state', key: stateKey, uploadId: orphan.upload_id, since: orphan.created_at, action: 'would-delete' },
    ]);
    expect(await uploadsUnder(prefix)).toHaveLength(3);

    const done = await store.cleanupInterrupted({ olderThan: cutoff, dryRun: false });
    expect(done.items).toEqual([
      { kind: 'multipart-upload', key: KEY, uploadId: orphan.upload_id, since: expect.any(String), action: 'aborted' },
      { kind: 'multipart-state', key: stateKey, uploadId: orphan.upload_id, since: orphan.created_at, action: 'deleted' },
    ]);
    expect(await readState(prefix)).toBeUndefined();
    const left = await uploadsUnder(prefix);
    expect(left).toHaveLength(2);
    expect(left.map((u) => u.uploadId)).not.toContain(orphan.upload_id);
    expect((await store.get('app/public.events/year=2025/month=01/day=02/kept.jsonl.gz'))?.toString()).toBe('committed');
  });

  it('deletes old resume records whose upload is gone, and keeps records of live uploads', async () => {
    const prefix = freshPrefix();
    const store = makeStore(prefix);
    await interruptedPut(prefix, randomBytes(11 * MIB), 1);
    const gone = (await readState(prefix))!;
    await raw.send(new AbortMultipartUploadCommand({ Bucket: server.bucket, Key: gone.key, UploadId: gone.upload_id }));
    // A cutoff in the future makes every record old enough; the one left has no upload any more.
    const report = await store.cleanupInterrupted({ olderThan: new Date(Date.now() + 60_000), dryRun: false });
    expect(report.items).toEqual([{ kind: 'multipart-state', key: multipartStateKey(`${prefix}${KEY}`), uploadId: gone.upload_id, since: gone.created_at, action: 'deleted' }]);
    expect(await readState(prefix)).toBeUndefined();
  });

  it('never aborts an upload this process has in flight, however old the cutoff says it is', async () => {
    const prefix = freshPrefix();
    const body = randomBytes(16 * MIB);
    let sweep: Promise<unknown> | undefined;
    const store = makeStore(prefix, {
      onPartUploaded: ({ partNumber }) => {
        if (partNumber === 1) sweep = store.cleanupInterrupted({ olderThan: new Date(Date.now() + 3_600_000), dryRun: false });
      },
    });
    await store.put(KEY, body, { sha256Hex: sha256Hex(body) });
    const report = (await sweep) as { items: Array<{ action: string; kind: string }> };
    expect(report.items.filter((i) => i.kind === 'multipart-upload')).toEqual([]);
    expect((await store.get(KEY))?.equals(body)).toBe(true);
  });
});
