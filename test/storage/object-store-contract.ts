/**
 * The behaviour every ObjectStore must have, run against each implementation so the local
 * backend and S3 cannot drift apart.
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import type { ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';

export interface ContractContext {
  /** A store over an empty namespace, fresh for each test. */
  store: () => ObjectStore;
}

export async function collectList(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const result: ObjectInfo[] = [];
  for await (const info of store.list(prefix)) result.push(info);
  return result;
}

export function sha256Hex(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

function everyByteValue(): Buffer {
  const body = Buffer.alloc(256 * 3);
  for (let i = 0; i < body.length; i += 1) body[i] = i % 256;
  return body;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function runObjectStoreContract(context: ContractContext): void {
  it('round-trips every byte value exactly, with the stored size equal to the body length', async () => {
    const store = context.store();
    const body = everyByteValue();
    await store.put('bytes/all.bin', body, { sha256Hex: sha256Hex(body), contentType: 'application/octet-stream' });
    const back = await store.get('bytes/all.bin');
    expect(back).toBeDefined();
    expect(back!.equals(body)).toBe(true);
    expect((await store.head('bytes/all.bin'))?.size).toBe(body.length);
    expect(await collectList(store, 'bytes/')).toEqual([expect.objectContaining({ key: 'bytes/all.bin', size: body.length })]);
  });

  it('round-trips an empty body and a 3 MiB random body', async () => {
    const store = context.store();
    const large = randomBytes(3 * 1024 * 1024);
    await store.put('sizes/empty', Buffer.alloc(0));
    await store.put('sizes/large.bin', large, { sha256Hex: sha256Hex(large), isDataObject: true });
    expect((await store.get('sizes/empty'))?.length).toBe(0);
    expect((await store.head('sizes/empty'))?.size).toBe(0);
    const back = await store.get('sizes/large.bin');
    expect(back?.length).toBe(large.length);
    expect(sha256Hex(back!)).toBe(sha256Hex(large));
    expect((await store.head('sizes/large.bin'))?.size).toBe(large.length);
  });

  it('lists only keys after startAfter, across directories, in key order (the audit trail finds its tail this way)', async () => {
    const store = context.store();
    const keys = ['after/2026/11/29/a.json', 'after/2026/11/30/a.json', 'after/2026/11/30/b.json', 'after/2026/12/01/a.json', 'after/2027/01/01/a.json'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    const listed: string[] = [];
    for await (const info of store.list('after/', { startAfter: 'after/2026/11/30/' })) listed.push(info.key);
    expect(listed).toEqual(keys.slice(1));
    const fromKey: string[] = [];
    for await (const info of store.list('after/', { startAfter: 'after/2026/11/30/a.json' })) fromKey.push(info.key);
    expect(fromKey).toEqual(keys.slice(2));
  });

  it('replaces an object on a second put', async () => {
    const store = context.store();
    await store.put('over/write.txt', Buffer.from('first version, longer'));
    await store.put('over/write.txt', Buffer.from('second'));
    expect((await store.get('over/write.txt'))?.toString()).toBe('second');
    expect((await store.head('over/write.txt'))?.size).toBe(6);
  });

  it('answers undefined for a missing object, not an error', async () => {
    const store = context.store();
    expect(await store.get('missing/nothing.bin')).toBeUndefined();
    expect(await store.head('missing/nothing.bin')).toBeUndefined();
  });

  it('treats a key prefix of existing objects as missing', async () => {
    const store = context.store();
    await store.put('dir/child.txt', Buffer.from('x'));
    expect(await store.get('dir')).toBeUndefined();
    expect(await store.head('dir')).toBeUndefined();
  });

  it('deletes idempotently', async () => {
    const store = context.store();
    await store.put('del/one.txt', Buffer.from('1'));
    await store.delete('del/one.txt');
    expect(await store.get('del/one.txt')).toBeUndefined();
    await store.delete('del/one.txt');
    await store.delete('del/never-existed.txt');
    expect(await collectList(store, 'del/')).toEqual([]);
  });

  it('deletes many keys at once: exactly the given ones, missing keys are fine, the others stay', async () => {
    const store = context.store();
    for (const name of ['a', 'b', 'c', 'keep']) await store.put(`many/${name}.json`, Buffer.from(name));
    await store.put('many/sub/d.json', Buffer.from('d'));
    const result = await store.deleteMany(['many/a.json', 'many/sub/d.json', 'many/never-existed.json', 'many/c.json', 'many/a.json']);
    expect(result).toEqual({ failed: [] });
    expect((await collectList(store, 'many/')).map((o) => o.key)).toEqual(['many/b.json', 'many/keep.json']);
    expect(await store.deleteMany([])).toEqual({ failed: [] });
  });

  it('refuses a bad key in deleteMany before deleting anything', async () => {
    const store = context.store();
    await store.put('guard/a.json', Buffer.from('a'));
    await expect(store.deleteMany(['guard/a.json', '../escape.json'])).rejects.toBeInstanceOf(AuditlogError);
    expect(await store.get('guard/a.json')).toEqual(Buffer.from('a'));
  });

  it('lists recursively under a prefix, in key order, with keys relative to the store root', async () => {
    const store = context.store();
    const keys = [
      'app/public.audit_log/year=2024/month=01/day=02/b.jsonl.gz',
      'app/public.audit_log/year=2024/month=01/day=02/b.metadata.json',
      'app/public.audit_log/year=2024/month=01/day=01/a.jsonl.gz',
      'app/public.audit_log/year=2023/month=12/day=31/z.jsonl.gz',
      'app/public.events/year=2024/month=01/day=01/c.jsonl.gz',
      'other/x.txt',
    ];
    for (const [i, key] of keys.entries()) await store.put(key, Buffer.alloc(i + 1, i));
    const all = await collectList(store, '');
    expect(all.map((o) => o.key)).toEqual([...keys].sort(byteOrder));
    expect(all.map((o) => o.size)).toEqual([...keys].sort(byteOrder).map((k) => keys.indexOf(k) + 1));

    const table = await collectList(store, 'app/public.audit_log/');
    expect(table.map((o) => o.key)).toEqual(keys.slice(0, 4).sort(byteOrder));

    // A prefix is a string prefix, as on S3: it may stop in the middle of a segment.
    const partial = await collectList(store, 'app/public.audit_log/year=2024/month=01/day=0');
    expect(partial).toHaveLength(3);
    expect((await collectList(store, 'app/public.')).length).toBe(5);
    expect(await collectList(store, 'app/public.audit_log/year=2025/')).toEqual([]);
    expect(await collectList(store, 'nothing-here')).toEqual([]);
  });

  it('refuses a body whose SHA-256 differs from the one given, and writes nothing', async () => {
    const store = context.store();
    const body = Buffer.from('the real bytes');
    const error = await store.put('sha/wrong.bin', body, { sha256Hex: sha256Hex(Buffer.from('other bytes')) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditlogError);
    expect((error as AuditlogError).code).toBe('VERIFY_FAILED');
    expect(await store.head('sha/wrong.bin')).toBeUndefined();
  });

  it.each([
    ['../escape.txt'],
    ['a/../../escape.txt'],
    ['/absolute/path.txt'],
    ['back\\slash.txt'],
    ['double//slash.txt'],
    ['trailing/'],
    ['./dot.txt'],
    [''],
  ])('rejects the key %j with an AuditlogError', async (key) => {
    const store = context.store();
    for (const attempt of [() => store.put(key, Buffer.from('x')), () => store.get(key), () => store.head(key), () => store.delete(key)]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AuditlogError);
      expect((error as AuditlogError).message).toContain(JSON.stringify(key));
    }
  });

  it('rejects a list prefix that escapes the root', async () => {
    const store = context.store();
    await expect(collectList(store, '../')).rejects.toBeInstanceOf(AuditlogError);
    await expect(collectList(store, '/abs')).rejects.toBeInstanceOf(AuditlogError);
  });

  it('passes check()', async () => {
    await expect(context.store().check()).resolves.toBeUndefined();
  });

  it('describes its location without secrets', () => {
    expect(context.store().description.length).toBeGreaterThan(0);
  });
}
