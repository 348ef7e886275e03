/**
 * I3: nothing is deleted unless the object read back from the store is exactly what was written.
 * A store that corrupts, truncates or loses what it is given must stop the table with
 * VERIFY_FAILED while every row stays in the table.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { DeleteManyResult, ObjectInfo, ObjectStore, PutOptions, PutResult } from '../../src/storage/object-store.js';
import { encodeBatch } from '../../src/archive/encode-batch.js';
import { verifyStoredBatch } from '../../src/archive/verify-object.js';
import { isDataKey } from '../../src/core/archive-layout.js';

/** A real local store whose data-object writes are damaged by `damage` (a misbehaving server or disk). */
class DamagingStore implements ObjectStore {
  readonly description = 'damaging store';
  constructor(
    private readonly inner: ObjectStore,
    private readonly damage: (body: Buffer) => Buffer | undefined,
  ) {}
  async put(key: string, body: Buffer, options?: PutOptions): Promise<PutResult | void> {
    if (!isDataKey(key)) return this.inner.put(key, body, options);
    const damaged = this.damage(body);
    if (damaged !== undefined) await this.inner.put(key, damaged);
  }
  get(key: string): Promise<Buffer | undefined> {
    return this.inner.get(key);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    return this.inner.deleteMany(keys);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  check(): Promise<void> {
    return this.inner.check();
  }
}

const fx = useArchiveFixture();

const damages: [string, (b: Buffer) => Buffer | undefined, string][] = [
  ['a flipped byte', (b) => Buffer.concat([b.subarray(0, 20), Buffer.from([b[20]! ^ 0xff]), b.subarray(21)]), 'SHA-256 of the stored bytes'],
  ['a truncated object', (b) => b.subarray(0, b.length - 7), 'stored size'],
  ['a lost write', () => undefined, 'object is missing'],
];

describe('verify before delete', () => {
  it.each(damages)('stops on %s and deletes nothing', async (_name, damage, check) => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 1, endDaysAgo: 20 });
    const inner = new LocalObjectStore({ path: await mkdtemp(join(tmpdir(), 'damaging-')) });
    const summary = await archiveWith(fx.configFor([eventsTable]), new DamagingStore(inner, damage));
    expect(summary.tables[0]!.error?.code).toBe('VERIFY_FAILED');
    expect(summary.tables[0]!.error?.message).toContain(check);
    expect(summary.tables[0]!.error?.message).toContain('nothing was deleted');
    expect(await rowIds(fx.db)).toHaveLength(20);
  });

  it('rejects a stored object of the right bytes count that decodes to other lines', async () => {
    const encoded = await encodeBatch(Buffer.from('{"id":1}\n{"id":2}\n'), 'gzip', 6);
    // Same length, different content: a wrong object that happens to match in size.
    const other = gzipSync(Buffer.from('{"id":1}\n{"id":3}\n'), { level: 6 });
    expect(other.length).toBe(encoded.body.length);
    const store = { get: async () => other } as unknown as ObjectStore;
    await expect(verifyStoredBatch(store, 'k.jsonl.gz', encoded)).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
  });

  it('encodes any batch losslessly, also one that barely compresses (output past the first zlib chunk)', async () => {
    const { randomBytes } = await import('node:crypto');
    for (const raw of [Buffer.from('{"id":1}\n'.repeat(50_000)), Buffer.from(`${randomBytes(600_000).toString('base64')}\n`)]) {
      const encoded = await encodeBatch(raw, 'gzip', 6);
      expect(gunzipSync(encoded.body).equals(raw)).toBe(true);
      expect(encoded.recordCount).toBe(raw.toString('utf8').split('\n').length - 1);
      expect(encoded.compressedBytes).toBe(encoded.body.length);
      await verifyStoredBatch({ get: async () => Buffer.from(encoded.body) } as unknown as ObjectStore, 'k.jsonl.gz', encoded);
    }
  });
});
