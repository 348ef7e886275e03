/**
 * A decoder that fails in itself (out of memory, an allocation refused) is a failure of the run,
 * never "does not decompress": reconciliation would remove a sidecar-less object for that,
 * validate report it DECOMPRESS_FAILED, restore skip it as corrupt. The failure is injected at the codec boundary (decompressBody); the
 * rest is the real pipeline against PostgreSQL and the local store.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { tablePrefix } from '../../src/core/archive-layout.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { validateArchive } from '../../src/validate/validate-archive.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { restoreWith } from '../helpers/restore-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { storageBackends } from '../helpers/storage-backends.js';
import { putSidecarlessBatch, rleFrame } from '../helpers/zstd-frames.js';

const injected = vi.hoisted(() => ({ failure: undefined as undefined | (() => Error) }));

vi.mock('../../src/archive/codec.js', async (importOriginal) => {
  const codec = await importOriginal<typeof import('../../src/archive/codec.js')>();
  return {
    ...codec,
    decompressBody: (...args: Parameters<typeof codec.decompressBody>) => {
      if (injected.failure !== undefined && args[0] === 'zstd') return Promise.reject(injected.failure());
      return codec.decompressBody(...args);
    },
  };
});

const { DecoderFailedError } = await import('../../src/archive/codec.js');
const PREFIX = tablePrefix('app', 'public', 'events');

describe('a zstd decoder that fails in itself', () => {
  let db: TestDatabase;
  let store: ObjectStore;
  let storage: Record<string, unknown>;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    db = await createTestDatabase();
    await createEventsTable(db, { rows: 7, stepMinutes: 10, endDaysAgo: 11 });
    ({ store, storage, cleanup } = await storageBackends(() => undefined as never, 'zstd')[0]!.make());
  });
  afterEach(async () => {
    injected.failure = undefined;
    await cleanup?.();
    await db?.drop();
  });

  it('stops the table with the decoder\'s error, keeps the object and its marker, deletes nothing', async () => {
    const { key, marker } = await putSidecarlessBatch(store, PREFIX, '2020-01-01', 'unlucky', rleFrame(1024));
    injected.failure = () => new DecoderFailedError('the zstd decoder failed (RangeError: Array buffer allocation failed)');
    const config = buildConfig({ ...storage, defaults: { retention_days: 10, batch_size: 7, compression: 'zstd' }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] });
    const run = await archiveWith(config, store);
    expect(run.tables[0]!.error).toMatchObject({ code: 'INTERNAL' });
    expect(run.tables[0]!.error!.message).toMatch(/^could not decode .*unlucky\.jsonl\.zst: the zstd decoder failed \(RangeError: Array buffer allocation failed\) — a failure of this process, not a verdict on the object; the object and its pending marker were left as they are and nothing was deleted/);
    expect(await store.get(key)).toBeDefined();
    expect(await store.get(marker)).toBeDefined();
    expect(await rowIds(db)).toHaveLength(7);

    // The next run, with a working decoder, reconciles it as before (not JSON lines: nothing written).
    injected.failure = undefined;
    const again = await archiveWith(config, store);
    expect(again.failed).toBe(0);
    expect(again.tables[0]!.reconciled).toMatchObject({ removed: 1 });
    expect(await store.get(key)).toBeUndefined();
  });

  it('validate --deep stops with it instead of reporting the object damaged; restore stops instead of skipping it as corrupt', async () => {
    const config = buildConfig({ ...storage, defaults: { retention_days: 10, batch_size: 7, compression: 'zstd' }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] });
    expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(7);
    injected.failure = () => new DecoderFailedError('the zstd decoder failed (RangeError: Array buffer allocation failed)');
    await expect(validateArchive({ config, store, databases: config.databases, deep: true, deepThreshold: 0, concurrency: 2, checkDatabase: false })).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringMatching(/^could not decode .*\.jsonl\.zst: the zstd decoder failed .*not a verdict on the object; validate stopped without a report/),
    });
    const restored = await restoreWith(config, store, { table: 'events', onCorrupt: 'skip' });
    expect(restored.error).toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/not a verdict on the object; nothing of it was loaded/) });
    expect(restored.rows.restored).toBe(0);
  });
});
