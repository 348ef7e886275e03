/**
 * Create-only writes in the archive pipeline (docs/format.md "Commit protocol"): where the server
 * refuses a PUT over an existing object (If-None-Match: *), no batch HEADs its key first, and no
 * write — late, repeated or foreign — replaces an object. s3rver lacks the feature: the fault proxy
 * emulates it (test/helpers/fault-proxy.ts), as AWS S3, MinIO and R2 answer.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { startFaultProxy, type FaultProxy, type RequestInfo } from '../helpers/fault-proxy.js';
import { noteApplicationChanges, type ExpectedRows } from '../helpers/invariant-checker.js';
import type { Config } from '../../src/config/schema.js';
import { validateArchive } from '../../src/validate/validate-archive.js';
import { events, finishAndCheck } from './finish-and-check.js';
import { configBehindProxy, ROWS, runThroughProxy, seedOldEvents } from './behind-storage-proxy.js';

const fx = useArchiveFixture();
let proxy: FaultProxy;
beforeEach(async () => {
  proxy = await startFaultProxy(fx.s3.endpoint, { emulateConditionalCreate: true });
});
afterEach(async () => {
  await proxy.stop();
});

const isData = (r: RequestInfo): boolean => r.path.includes('.jsonl.gz');

const seedEvents = (rows = ROWS): Promise<ExpectedRows> => seedOldEvents(fx, rows);

const proxiedConfig = (s3: Partial<NonNullable<Config['s3']>> = {}, defaults: Record<string, unknown> = {}): Config => configBehindProxy(fx, proxy.endpoint, s3, defaults);

/**
 * Holds the first `method` request to a data object at the proxy (delivered when the test calls
 * deliverHeld) and runs one batch whose row 7 the application changes after the upload, so the
 * guarded delete skips it and the object is rewritten without it.
 */
async function runRewriteHolding(method: 'PUT' | 'DELETE'): Promise<{ config: Config; summary: Awaited<ReturnType<typeof archiveWith>>; held: () => boolean }> {
  let held = false;
  proxy.rule = (r) => {
    if (held || r.method !== method || !isData(r)) return 'pass';
    held = true;
    return 'hold';
  };
  let changed = false;
  const config = proxiedConfig({ request_timeout_ms: 400 }, { batch_size: 1000, batches_in_flight: 1 });
  const summary = await runThroughProxy(config, {
    onPhase: async (phase) => {
      if (phase !== 'after-upload' || changed) return;
      changed = true;
      await fx.db.query(`UPDATE events SET note = 'changed' WHERE id = 7`);
    },
  });
  expect(changed).toBe(true);
  expect(summary.tables[0]!.error).toBeUndefined();
  expect(summary.tables[0]!.rowsArchived).toBe(ROWS - 1);
  expect(await rowIds(fx.db)).toEqual(['7']);
  return { config, summary, held: () => held };
}

async function validateFindings(config: Config): Promise<unknown[]> {
  const direct = fx.configFor([eventsTable]);
  const report = await validateArchive({ config: direct, store: fx.store, databases: config.databases, deep: true, deepThreshold: 0, concurrency: 2, checkDatabase: true });
  return report.tables.flatMap((t) => t.findings);
}

describe('a server with conditional writes', () => {
  it('no batch HEADs its data key; every row is archived exactly once', async () => {
    const expected = await seedEvents();
    let dataHeads = 0;
    proxy.rule = (r) => {
      if (r.method === 'HEAD' && isData(r)) dataHeads++;
      return 'pass';
    };
    const summary = await runThroughProxy(proxiedConfig());
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(ROWS);
    expect(summary.tables[0]!.batches).toBeGreaterThan(1);
    expect(dataHeads).toBe(0);
    await finishAndCheck(fx, expected, { scenario: 'storage: conditional writes, normal run (no HEAD of data keys)', injected: 'none (fault proxy emulates If-None-Match: *)', archived: ROWS });
  });

  it('a data or sidecar PUT stored though its answer was lost: the retry gets 412, the bytes are found identical, the batch goes on', async () => {
    const expected = await seedEvents();
    // The first data PUT and the first sidecar PUT (counted apart: which request comes third
    // depended on how the batches in flight interleaved, and the test failed now and then).
    let dataPuts = 0;
    let sidecarPuts = 0;
    proxy.rule = (r) => {
      if (r.method !== 'PUT' || r.path.includes('_auditlog/')) return 'pass';
      const first = isData(r) ? ++dataPuts === 1 : r.path.includes('.metadata.json') && ++sidecarPuts === 1;
      return first ? 'reset-mid-response' : 'pass';
    };
    const summary = await runThroughProxy(proxiedConfig());
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(ROWS);
    expect(proxy.refusedCreates.filter((p) => p.includes('.jsonl.gz'))).not.toHaveLength(0);
    expect(proxy.refusedCreates.filter((p) => p.includes('.metadata.json'))).not.toHaveLength(0);
    await finishAndCheck(fx, expected, { scenario: 'storage: conditional writes, PUTs stored but their answers lost (retries get 412)', injected: 'HTTP proxy (emulating If-None-Match: *): the first data PUT and the first sidecar PUT stored, then their connections reset', archived: ROWS });
  });

  it('a late first PUT of a batch rewritten without a changed row is refused (412): validate finds nothing, every row once', async () => {
    // docs/reliability.md "A write the archiver gave up on can land late": without conditional
    // writes the late original replaced the committed rewrite (SIZE_MISMATCH/CHECKSUM_MISMATCH).
    const expected = await seedEvents();
    const { config, held } = await runRewriteHolding('PUT');
    expect(held()).toBe(true);
    await noteApplicationChanges(fx.db, events, expected, 'id = 7', []);

    expect(await proxy.deliverHeld()).toEqual([412]);
    expect(await validateFindings(config)).toEqual([]);
    const archive = await inspectArchive(fx.store);
    expect(archive.objects.reduce((sum, o) => sum + o.meta.record_count, 0)).toBe(ROWS - 1);
    await finishAndCheck(fx, expected, {
      scenario: 'storage: the first data PUT of a rewritten batch lands after the run (conditional writes)',
      injected: 'HTTP proxy (emulating If-None-Match: *): the first data PUT held unanswered (request_timeout_ms 400), delivered after the run; row 7 updated after upload',
      archived: ROWS,
    });
  });

  it('a rewrite deletes no data key, so a DELETE storage completes late cannot remove the committed rewrite', async () => {
    // Found in review: the rewrite deleted its first object and PUT the rewrite create-only under
    // the same key; the first DELETE held and delivered after the run removed the committed
    // rewrite (12 rows in neither table nor archive). A rewrite now replaces its object in place.
    const expected = await seedEvents();
    const { config, held } = await runRewriteHolding('DELETE');
    await noteApplicationChanges(fx.db, events, expected, 'id = 7', []);
    await proxy.deliverHeld();
    expect(held()).toBe(false);
    expect(await validateFindings(config)).toEqual([]);
    await finishAndCheck(fx, expected, {
      scenario: 'storage: a batch rewritten under conditional writes, any DELETE of a data key delivered late',
      injected: 'HTTP proxy (emulating If-None-Match: *): the first DELETE of a data key held unanswered (request_timeout_ms 400), delivered after the run; row 7 updated after upload',
      archived: ROWS,
    });
  });

  it('rows restored into the table meet their committed object at the create-only PUT: it is never overwritten, the copies are deleted against it', async () => {
    await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('CREATE TABLE events_copy AS SELECT * FROM events');
    const config = proxiedConfig({}, { batch_size: 50 });
    expect((await runThroughProxy(config)).tables[0]!.rowsArchived).toBe(12);
    const snapshot = async (): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      for await (const o of fx.store.list('')) if (!o.key.startsWith('_auditlog/')) out.set(o.key, (await fx.store.get(o.key))!.toString('base64'));
      return out;
    };
    const before = await snapshot();
    expect([...before.keys()].filter((k) => k.endsWith('.jsonl.gz'))).toHaveLength(1);

    await fx.db.query('INSERT INTO events SELECT * FROM events_copy');
    proxy.refusedCreates.length = 0;
    const again = await runThroughProxy(config);
    expect(again.tables[0]!.error).toBeUndefined();
    expect(again.tables[0]!.rowsArchived).toBe(12);
    // The data PUT was refused (412), and the HEAD path's decision ran on what was there.
    expect(proxy.refusedCreates.filter((p) => p.includes('.jsonl.gz'))).toHaveLength(1);
    expect(await rowIds(fx.db)).toEqual([]);
    expect(await snapshot()).toEqual(before);
    expect((await inspectArchive(fx.store)).pendingMarkers).toEqual([]);
  });

  it('an uncommitted object of other content at the key stops the table with STORAGE_CONFLICT and is not overwritten', async () => {
    const { key, config } = await archivedThenRestored();
    await fx.store.delete(key.replace(/\.jsonl\.gz$/, '.metadata.json'));
    await fx.store.put(key, Buffer.from('someone else'));
    proxy.refusedCreates.length = 0;

    const summary = await runThroughProxy(config);
    expect(summary.tables[0]!.error?.code).toBe('STORAGE_CONFLICT');
    expect(proxy.refusedCreates.filter((p) => p.includes('.jsonl.gz'))).toHaveLength(1);
    expect((await fx.store.get(key))?.toString()).toBe('someone else');
    expect(await rowIds(fx.db)).toHaveLength(12);
  });

  it('a sidecar already at the key that this batch did not write stops the table with STORAGE_CONFLICT: nothing deleted, that sidecar left in place', async () => {
    const { key, config } = await archivedThenRestored();
    const metaKey = key.replace(/\.jsonl\.gz$/, '.metadata.json');
    await fx.store.delete(key);
    await fx.store.put(metaKey, Buffer.from('{"stale":"sidecar"}'));

    const summary = await runThroughProxy(config);
    expect(summary.tables[0]!.error?.code).toBe('STORAGE_CONFLICT');
    expect(summary.tables[0]!.error?.message).toContain('nothing was deleted');
    expect((await fx.store.get(metaKey))?.toString()).toBe('{"stale":"sidecar"}');
    expect(await rowIds(fx.db)).toHaveLength(12);
  });
});

/** 12 rows archived into one object through the proxy, then put back into the table (as a restore would): its key and config. */
async function archivedThenRestored(): Promise<{ key: string; config: Config }> {
  await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
  await fx.db.query('CREATE TABLE events_copy AS SELECT * FROM events');
  const config = proxiedConfig({}, { batch_size: 50 });
  expect((await runThroughProxy(config)).tables[0]!.rowsArchived).toBe(12);
  const objects = (await inspectArchive(fx.store)).objects;
  expect(objects).toHaveLength(1);
  await fx.db.query('INSERT INTO events SELECT * FROM events_copy');
  return { key: objects[0]!.key, config };
}
