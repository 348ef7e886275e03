/**
 * Pending markers of committed batches go in bulk (marker-sweeper.ts): a run leaves none behind,
 * on s3rver and in a directory, on success and when the table fails; and the per-batch marker
 * DELETE is gone from the wire, replaced by a few DeleteObjects for the whole run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { startFaultProxy, type FaultProxy, type RequestInfo } from '../helpers/fault-proxy.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import type { DeleteManyResult } from '../../src/storage/object-store.js';

const fx = useArchiveFixture();
let proxy: FaultProxy;
let dir: string;
beforeEach(async () => {
  proxy = await startFaultProxy(fx.s3.endpoint);
  dir = await mkdtemp(join(tmpdir(), 'markers-'));
});
afterEach(async () => {
  await proxy.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A local store that counts how markers are removed: one by one (the old path) or in bulk. */
class CountingLocalStore extends LocalObjectStore {
  pendingDeletes = 0;
  bulkDeletes: string[][] = [];
  private inBulk = false;
  override async delete(key: string): Promise<void> {
    // The local deleteMany unlinks key by key through delete(): those are not the old path.
    if (!this.inBulk && key.startsWith('_auditlog/pending/')) this.pendingDeletes += 1;
    return super.delete(key);
  }
  override async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    this.bulkDeletes.push([...keys]);
    this.inBulk = true;
    try {
      return await super.deleteMany(keys);
    } finally {
      this.inBulk = false;
    }
  }
}

describe('pending markers of committed batches are removed in bulk', () => {
  it('S3: no marker left, no per-batch marker DELETE, a few DeleteObjects for the whole run', async () => {
    await createEventsTable(fx.db, { rows: 120, stepMinutes: 20, endDaysAgo: 11 });
    const requests: RequestInfo[] = [];
    proxy.rule = (r) => {
      requests.push(r);
      return 'pass';
    };
    const config = fx.configFor([eventsTable], { batch_size: 2 });
    config.s3 = { ...config.s3!, endpoint: proxy.endpoint };
    const summary = await archiveWith(config, await createObjectStore(config));
    const t = summary.tables[0]!;
    expect(t.error).toBeUndefined();
    expect(t.rowsArchived).toBe(120);
    // At most 2 rows a batch, and a batch never spans two days.
    expect(t.batches).toBeGreaterThanOrEqual(60);
    expect((await inspectArchive(fx.store)).pendingMarkers).toEqual([]);

    const markerDeletes = requests.filter((r) => r.method === 'DELETE' && r.path.includes('_auditlog/pending'));
    const bulkDeletes = requests.filter((r) => r.method === 'POST' && /[?&]delete(&|=|$)/.test(r.path));
    expect(markerDeletes).toEqual([]);
    // One at 50 markers and one at the end of the table; one more per ~2 s the run takes.
    expect(bulkDeletes.length).toBeGreaterThanOrEqual(2);
    expect(bulkDeletes.length).toBeLessThan(t.batches / 5);
    // Was 8 requests per batch (marker DELETE included): now 7 plus a share of the bulk deletes and the run's own.
    const perBatch = requests.filter((r) => r.path.includes('/app/public.events/') || r.path.includes('_auditlog/pending') || bulkDeletes.includes(r)).length / t.batches;
    expect(perBatch).toBeLessThan(7.5);
  });

  it('local directory: no marker left, none deleted one by one', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 20, endDaysAgo: 11 });
    const store = new CountingLocalStore({ path: dir });
    const config = buildConfig({ local: { path: dir }, defaults: { retention_days: 10, batch_size: 4 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] });
    const summary = await archiveWith(config, store);
    expect(summary.tables[0]!.rowsArchived).toBe(30);
    expect((await inspectArchive(store)).pendingMarkers).toEqual([]);
    expect(store.pendingDeletes).toBe(0);
    expect(store.bulkDeletes.flat()).toHaveLength(summary.tables[0]!.batches);
    expect(store.bulkDeletes.flat().every((k) => k.startsWith('_auditlog/pending/'))).toBe(true);
  });

  it('a table that fails mid-run still removes the markers of the batches that committed, before it ends', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 20, endDaysAgo: 11 });
    const config = fx.configFor([eventsTable], { batch_size: 4, batches_in_flight: 1 });
    let uploads = 0;
    const summary = await archiveWith(config, fx.store, {
      onPhase: (phase) => {
        if (phase === 'after-metadata' && ++uploads === 4) throw new Error('injected: the fourth batch fails before its delete');
      },
    });
    const t = summary.tables[0]!;
    expect(t.status).toBe('failed');
    expect(t.batches).toBe(3);
    expect(await rowIds(fx.db)).toHaveLength(30 - 12);
    // Only the failed batch's marker is left: it is in flight (its rows are still in the table).
    const archive = await inspectArchive(fx.store);
    expect(archive.pendingMarkers).toHaveLength(1);
    expect(archive.objects).toHaveLength(4);
  });
});
