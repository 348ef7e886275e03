/**
 * Create-only writes (PutOptions.ifAbsent) and the probe that says whether a store honours them.
 * s3rver ignores If-None-Match, so "supported" on S3 is shown through the fault proxy's emulation
 * of the feature (test/helpers/fault-proxy.ts), which AWS S3, MinIO and R2 have natively.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalObjectStore, probeHardLinks } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { S3Config } from '../../src/config/schema.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let proxy: FaultProxy;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});
beforeEach(async () => {
  proxy = await startFaultProxy(s3.endpoint, { emulateConditionalCreate: true });
});
afterEach(async () => {
  await proxy.stop();
});

const fastRetry = { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 5 };
let n = 0;

function s3Store(endpoint: string, overrides: Partial<S3Config> = {}): S3ObjectStore {
  n += 1;
  return new S3ObjectStore(s3.s3Config({ endpoint, prefix: `cond-${Date.now()}-${n}/`, retry: fastRetry, ...overrides }));
}

async function keysUnder(store: S3ObjectStore | LocalObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

describe('conditionalCreate probe', () => {
  it('plain s3rver stores the second If-None-Match PUT: unsupported, and the probe object is removed', async () => {
    const store = s3Store(s3.endpoint);
    const support = await store.conditionalCreate();
    expect(support.supported).toBe(false);
    expect(support.reason).toContain('ignores the header');
    expect(await keysUnder(store, '_auditlog/')).toEqual([]);
  });

  it('a server that answers 412 (s3rver behind the emulating proxy): supported, probed once per store, probe object removed', async () => {
    const store = s3Store(proxy.endpoint);
    let puts = 0;
    proxy.rule = (r) => {
      if (r.method === 'PUT') puts++;
      return 'pass';
    };
    expect((await store.conditionalCreate()).supported).toBe(true);
    expect((await store.conditionalCreate()).supported).toBe(true);
    expect(puts).toBe(2);
    expect(proxy.refusedCreates).toHaveLength(1);
    expect(proxy.refusedCreates[0]).toContain('/_auditlog/probe/');
    expect(await keysUnder(store, '_auditlog/')).toEqual([]);
  });

  it('a probe that fails for another reason is "unsupported", never an error', async () => {
    const store = s3Store(proxy.endpoint);
    proxy.rule = (r) => (r.method === 'PUT' ? { status: 403, code: 'AccessDenied' } : 'pass');
    const support = await store.conditionalCreate();
    expect(support.supported).toBe(false);
    expect(support.reason).toContain('probe failed');
  });

  it('the local directory store supports it where the file system has hard links, and leaves no probe file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cond-local-'));
    try {
      expect((await new LocalObjectStore({ path: dir }).conditionalCreate()).supported).toBe(true);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a local file system without hard links (link answers EPERM, as vfat or some FUSE mounts do): unsupported, never an error, no probe file left', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cond-nolink-'));
    try {
      const noLinks = (): Promise<void> => Promise.reject(Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' }));
      const support = await probeHardLinks(dir, noLinks);
      expect(support.supported).toBe(false);
      expect(support.reason).toContain('no usable hard links');
      expect(await readdir(dir)).toEqual([]);
      // A file system whose link replaces the name (no EEXIST) cannot be trusted either.
      expect((await probeHardLinks(dir, () => Promise.resolve())).supported).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('create-only put on S3 (emulating proxy)', () => {
  it('writes a new key; refuses an existing one with alreadyExists after one request (412 is not retried), leaving the object as it was', async () => {
    const store = s3Store(proxy.endpoint);
    expect(await store.put('a/k', Buffer.from('first'), { ifAbsent: true })).toEqual({});
    let puts = 0;
    proxy.rule = (r) => {
      if (r.method === 'PUT') puts++;
      return 'pass';
    };
    expect(await store.put('a/k', Buffer.from('second'), { ifAbsent: true })).toEqual({ alreadyExists: true });
    expect(puts).toBe(1);
    expect((await store.get('a/k'))?.toString()).toBe('first');
  });

  it('a multipart create-only put over an existing key is refused at CompleteMultipartUpload and its upload aborted', async () => {
    const store = s3Store(proxy.endpoint, { multipart_threshold_mb: 5, multipart_part_size_mb: 5 });
    await store.put('big', Buffer.from('small original'));
    const body = Buffer.alloc(6 * 1024 * 1024, 7);
    // The key check before the upload misses it (as if the object appeared just after it): the
    // refusal comes from the completion.
    proxy.rule = (r) => (r.method === 'HEAD' && r.path.endsWith('/big') ? { status: 404, code: 'NotFound' } : 'pass');
    expect(await store.put('big', body, { ifAbsent: true })).toEqual({ alreadyExists: true });
    proxy.rule = () => 'pass';
    expect((await store.get('big'))?.toString()).toBe('small original');
    expect(await store.put('big-new', body, { ifAbsent: true })).toEqual({});
    expect((await store.get('big-new'))?.equals(body)).toBe(true);
  });

  it('a server that honours If-None-Match on PutObject but not on CompleteMultipartUpload (plain s3rver ignores both): a multipart create-only put still never replaces an object', async () => {
    // Found in review: the probe proves the header on PutObject only, and with create-only writes
    // the batch no longer checks its key first; the multipart path checks it itself.
    const store = s3Store(s3.endpoint, { multipart_threshold_mb: 5, multipart_part_size_mb: 5 });
    await store.put('big', Buffer.from('committed original'));
    expect(await store.put('big', Buffer.alloc(6 * 1024 * 1024, 7), { ifAbsent: true })).toEqual({ alreadyExists: true });
    expect((await store.get('big'))?.toString()).toBe('committed original');
  });

  it('409 ConditionalRequestConflict is retried', async () => {
    const store = s3Store(proxy.endpoint);
    let puts = 0;
    proxy.rule = (r) => (r.method === 'PUT' && ++puts === 1 ? { status: 409, code: 'ConditionalRequestConflict' } : 'pass');
    expect(await store.put('c', Buffer.from('x'), { ifAbsent: true })).toEqual({});
    expect(puts).toBe(2);
  });

  it('a retry whose first attempt was stored (answer lost) reports alreadyExists: the caller compares content', async () => {
    const store = s3Store(proxy.endpoint);
    let puts = 0;
    proxy.rule = (r) => (r.method === 'PUT' && ++puts === 1 ? 'reset-mid-response' : 'pass');
    expect(await store.put('r', Buffer.from('mine'), { ifAbsent: true })).toEqual({ alreadyExists: true });
    expect((await store.get('r'))?.toString()).toBe('mine');
  });
});

describe('create-only put on the local store', () => {
  it('refuses an existing key: the old object stays, no temp file is left; a new key is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cond-local-'));
    try {
      const store = new LocalObjectStore({ path: dir });
      await store.put('d/k', Buffer.from('old'));
      expect(await store.put('d/k', Buffer.from('new'), { ifAbsent: true })).toEqual({ alreadyExists: true });
      expect((await readFile(join(dir, 'd', 'k'))).toString()).toBe('old');
      expect(await readdir(join(dir, 'd'))).toEqual(['k']);
      expect(await store.put('d/other', Buffer.from('fresh'), { ifAbsent: true })).toEqual({});
      expect((await readdir(join(dir, 'd'))).sort()).toEqual(['k', 'other']);
      expect((await store.get('d/other'))?.toString()).toBe('fresh');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
