/**
 * The restore watermark counts only for the table the rows went into (its oid): a target dropped
 * since, or dropped and created again, is restored into afresh; the same table (also after a
 * VACUUM FULL, which gives it a new relfilenode) keeps skipping (found by probing: a dropped
 * --target-table was reported "already restored" and not created again). Entries of earlier
 * versions, without the oid, still count while a table of that name exists.
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import { restoreStateKey } from '../../src/restore/restore-watermarks.js';
import type { Config } from '../../src/config/schema.js';

const f = useArchiveFixture();
const scratch = { schema: 'public', table: 'scratch' };
const ALL = Array.from({ length: 20 }, (_, i) => String(i + 1)).sort();

async function archived(backend: 'storage' | 'database'): Promise<Config> {
  await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
  const config = buildConfig({ s3: f.s3cfg, defaults: { retention_days: 10, batch_size: 7 }, watermarks: { backend }, databases: [{ name: 'app', url: f.db.url, tables: [eventsTable] }] });
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
  return config;
}

async function scratchIds(): Promise<string[]> {
  return (await rowIds(f.db, 'public', 'scratch')).sort();
}

/** Rewrites the recorded entries as an earlier version wrote them: without target_oid. */
async function forgetTargetOids(backend: 'storage' | 'database'): Promise<void> {
  if (backend === 'database') {
    await f.db.query('ALTER TABLE public.auditlog_restore_watermarks DROP COLUMN target_oid');
    return;
  }
  const key = restoreStateKey({ database: 'app', schema: 'public', table: 'events' }, scratch);
  const doc = JSON.parse((await f.store.get(key))!.toString('utf8'));
  for (const entry of Object.values<Record<string, unknown>>(doc.objects)) {
    expect(entry.target_oid).toMatch(/^\d+$/);
    delete entry.target_oid;
  }
  await f.store.put(key, Buffer.from(JSON.stringify(doc)), { contentType: 'application/json' });
}

describe.each(['storage', 'database'] as const)('restore watermark and its target (backend %s)', (backend) => {
  it('restores into a dropped target again, and into one created again; the same table keeps skipping, VACUUM FULL or not', async () => {
    const config = await archived(backend);
    const first = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(first.rows.restored).toBe(20);
    const objects = first.objects.restored;

    await f.db.query('DROP TABLE scratch');
    const afterDrop = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(afterDrop.error).toBeUndefined();
    expect(afterDrop.targetCreated).toBe(true);
    expect(afterDrop.objects).toEqual({ selected: objects, restored: objects, skippedByWatermark: 0 });
    expect(await scratchIds()).toEqual(ALL);

    await f.db.query('DROP TABLE scratch');
    await f.db.query('CREATE TABLE scratch (LIKE events)');
    const recreated = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(recreated.targetCreated).toBe(false);
    expect(recreated.rows.restored).toBe(20);
    expect(await scratchIds()).toEqual(ALL);

    await f.db.query('VACUUM FULL scratch');
    const rerun = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(rerun.status).toBe('ok');
    expect(rerun.objects).toEqual({ selected: objects, restored: 0, skippedByWatermark: objects });
    expect(await scratchIds()).toEqual(ALL);
  });

  it('a dry run into a dropped target reports the table to create and every row', async () => {
    const config = await archived(backend);
    expect((await restoreWith(config, f.store, { table: 'events', target: scratch })).rows.restored).toBe(20);
    await f.db.query('DROP TABLE scratch');
    const dry = await restoreWith(config, f.store, { table: 'events', target: scratch, dryRun: true });
    expect(dry.targetCreated).toBe(true);
    expect(dry.rows).toEqual({ restored: 20, inserted: 20, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect(dry.objects.skippedByWatermark).toBe(0);
  });

  it('entries of earlier versions (no oid) count while the target exists, and not once it is gone', async () => {
    const config = await archived(backend);
    const first = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(first.rows.restored).toBe(20);
    await forgetTargetOids(backend);
    const rerun = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(rerun.objects).toEqual({ selected: first.objects.restored, restored: 0, skippedByWatermark: first.objects.restored });

    await f.db.query('DROP TABLE scratch');
    const again = await restoreWith(config, f.store, { table: 'events', target: scratch });
    expect(again.error).toBeUndefined();
    expect(again.targetCreated).toBe(true);
    expect(again.rows.restored).toBe(20);
    expect(await scratchIds()).toEqual(ALL);
    if (backend === 'database') {
      const oid = (await f.db.query<{ oid: string }>(`SELECT 'public.scratch'::regclass::oid::text AS oid`)).rows[0]!.oid;
      const recorded = await f.db.query<{ target_oid: string }>(`SELECT DISTINCT target_oid::text AS target_oid FROM public.auditlog_restore_watermarks WHERE target_table = 'scratch'`);
      expect(recorded.rows).toEqual([{ target_oid: oid }]);
    }
  });
});
