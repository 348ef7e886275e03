/**
 * Two configurations that share one archive prefix for two different databases (the same
 * `databases[].name`, another server): found in review, the second run's reconciliation took the
 * first run's in-flight batch for its own, removed its object, and the first run then deleted its
 * rows — lost. A marker records the database it was read from; another database never decides on it.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { ObjectTableStateStore } from '../../src/state/state-stores.js';

const id = { database: 'app', schema: 'public', table: 'events' };

const fx = useArchiveFixture();

describe('a pending marker of another database', () => {
  it('stops the other run with STORAGE_CONFLICT and touches nothing; the first run finishes with every row archived once', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const other = await createTestDatabase();
    try {
      await other.query('CREATE TABLE events (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, kind text, body jsonb, note text)');
      await other.query(`INSERT INTO events SELECT g + 100, now() - interval '30 days', 'other', NULL, NULL FROM generate_series(1, 5) g`);
      const configA = fx.configFor([eventsTable], { batch_size: 50, batches_in_flight: 1 });
      const configB = buildConfig({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 50 }, databases: [{ name: 'app', url: other.url, tables: [eventsTable] }] });

      let release!: () => void;
      const paused = new Promise<void>((r) => (release = r));
      let reached!: () => void;
      const atMetadata = new Promise<void>((r) => (reached = r));
      const runA = archiveWith(configA, fx.store, {
        onPhase: async (phase) => {
          if (phase === 'after-metadata') {
            reached();
            await paused;
          }
        },
      });
      await atMetadata;
      const inFlight = await inspectArchive(fx.store);
      expect(inFlight.pendingMarkers).toHaveLength(1);

      const runB = await archiveWith(configB, fx.store);
      expect(runB.tables[0]!.status).toBe('failed');
      expect(runB.tables[0]!.error?.code).toBe('STORAGE_CONFLICT');
      expect(runB.tables[0]!.error?.message).toContain('share one archive prefix');
      expect(await rowIds(other)).toHaveLength(5);
      // A's object, sidecar and marker are exactly as they were. The table's state now records B's
      // failure, so `status` shows the conflict; A writes its own result back when it finishes.
      expect((await inspectArchive(fx.store)).allKeys).toEqual([...inFlight.allKeys, '_auditlog/state/app/public.events.json'].sort());
      expect(await new ObjectTableStateStore(fx.store).get(id)).toMatchObject({ last_run: { status: 'failed', error: { code: 'STORAGE_CONFLICT' } } });

      release();
      const a = await runA;
      expect(a.tables[0]!.rowsArchived).toBe(10);
      expect(await rowIds(fx.db)).toEqual([]);
      const archive = await inspectArchive(fx.store);
      expect(archive.pendingMarkers).toEqual([]);
      expect(await new ObjectTableStateStore(fx.store).get(id)).toMatchObject({ last_run: { status: 'archived', rows_archived: 10 } });
      expect(archive.objects.flatMap((o) => o.meta.primary_keys.map((k) => k[0])).sort((x, y) => Number(x) - Number(y))).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    } finally {
      await other.drop();
    }
  });
});
