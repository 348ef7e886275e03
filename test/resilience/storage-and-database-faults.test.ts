/**
 * Storage and database failures during a run: transient S3 errors are retried and change
 * nothing; a storage outage stops the table before any unverified delete; a database connection
 * killed during COMMIT is reconciled against the table; two archivers at once never double-archive.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';

const fx = useArchiveFixture();
let proxy: FaultProxy;
beforeEach(async () => {
  proxy = await startFaultProxy(fx.s3.endpoint);
});
afterEach(async () => {
  await proxy.stop();
});

const fastRetry = { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 5 };

function proxiedConfig(tables = [eventsTable]) {
  const config = fx.configFor(tables);
  config.s3 = { ...config.s3!, endpoint: proxy.endpoint, retry: fastRetry };
  return config;
}

async function oldIds(): Promise<string[]> {
  const r = await fx.db.query<{ id: string }>(`SELECT id::text AS id FROM events WHERE happened_at < now() - interval '10 days' ORDER BY id`);
  return r.rows.map((x) => x.id);
}

describe('fault injection', () => {
  it('retries 503 SlowDown, 500 and connection resets, and still archives every row exactly once', async () => {
    await createEventsTable(fx.db, { rows: 50, stepMinutes: 20, endDaysAgo: 11 });
    const old = await oldIds();
    proxy.rule = ({ method, nth }) => {
      if (nth % 4 === 0) return method === 'PUT' ? { status: 503, code: 'SlowDown' } : 'reset';
      if (method === 'GET' && nth % 5 === 0) return { status: 500, code: 'InternalError' };
      return 'pass';
    };
    const config = proxiedConfig();
    const summary = await archiveWith(config, new S3ObjectStore(config.s3!));
    expect(proxy.injected).toBeGreaterThan(5);
    expect(summary.failed).toBe(0);
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect([...counts.keys()].sort()).toEqual([...old].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await rowIds(fx.db)).toHaveLength(50 - old.length);
  });

  it('stops the table when storage goes down mid-run: the rows of unfinished batches stay in the table', async () => {
    await createEventsTable(fx.db, { rows: 50, stepMinutes: 20, endDaysAgo: 11 });
    const old = await oldIds();
    // Healthy for three data objects, then every PUT fails for good.
    let dataPuts = 0;
    proxy.rule = ({ method, path }) => {
      if (method === 'PUT' && path.includes('.jsonl.gz')) dataPuts++;
      return method === 'PUT' && dataPuts > 3 ? { status: 503, code: 'ServiceUnavailable' } : 'pass';
    };
    const config = proxiedConfig();
    const summary = await archiveWith(config, new S3ObjectStore(config.s3!));
    expect(summary.failed).toBe(1);
    expect(summary.tables[0]!.error!.code).toBe('STORAGE_UNREACHABLE');
    const archived = archivedKeyCounts(await inspectArchive(fx.store));
    const left = new Set(await rowIds(fx.db));
    expect(archived.size).toBeGreaterThan(0);
    for (const id of old) expect(left.has(id) !== archived.has(id), `row ${id}`).toBe(true);

    proxy.rule = () => 'pass';
    const rerun = await archiveWith(config, new S3ObjectStore(config.s3!));
    expect(rerun.failed).toBe(0);
    const after = await inspectArchive(fx.store);
    expect(after.pendingMarkers).toEqual([]);
    const counts = archivedKeyCounts(after);
    expect([...counts.keys()].sort()).toEqual([...old].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('reconciles a batch whose COMMIT lost its connection: rows still in the table are not left in the archive', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 20, endDaysAgo: 11 });
    const old = await oldIds();
    const killer = new pg.Client({ connectionString: fx.db.url });
    await killer.connect();
    let killed = 0;
    // One batch at a time, so the killed COMMIT is the only thing that happened.
    const summary = await archiveWith(fx.configFor([eventsTable], { batches_in_flight: 1 }), fx.store, {
      onPhase: async (phase) => {
        if (phase === 'before-commit' && killed === 0) {
          const r = await killer.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'auditlog-manager' AND state = 'idle in transaction' AND datname = current_database()`,
          );
          killed = r.rowCount ?? 0;
        }
      },
    });
    await killer.end();
    expect(killed).toBe(1);
    expect(summary.tables[0]!.status).toBe('failed');
    expect(summary.tables[0]!.error!.message).toContain('during COMMIT');
    const mid = await inspectArchive(fx.store);
    expect(mid.pendingMarkers).toEqual([]);
    expect(mid.objects).toHaveLength(0);
    expect(await rowIds(fx.db)).toHaveLength(30);

    const rerun = await archiveWith(fx.configFor([eventsTable]), fx.store);
    expect(rerun.failed).toBe(0);
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect([...counts.keys()].sort()).toEqual([...old].sort());
  });

  it('two archivers started at once: one archives, the other is refused, no row is archived twice', async () => {
    await createEventsTable(fx.db, { rows: 60, stepMinutes: 20, endDaysAgo: 11 });
    const old = await oldIds();
    const [a, b] = await Promise.all([archiveWith(fx.configFor([eventsTable]), fx.store), archiveWith(fx.configFor([eventsTable]), fx.store)]);
    const total = a.tables[0]!.rowsArchived + b.tables[0]!.rowsArchived;
    expect(total).toBe(old.length);
    const codes = [a, b].map((s) => s.tables[0]!.error?.code ?? 'ok').sort();
    // Either the second found the lock held, or it started after the first finished and found nothing.
    expect(codes[0] === 'LOCK_HELD' || (codes[0] === 'ok' && codes[1] === 'ok')).toBe(true);
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(counts.size).toBe(old.length);
  });
});
