/**
 * What a restore reads: a date range lists only its own day/month partitions (never the whole
 * table prefix) and restores only its rows; restore watermarks make a rerun a no-op, kept in the
 * bucket or in the database like the archive watermarks, and --ignore-watermark restores again.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import { tablePrefix } from '../../src/core/archive-layout.js';
import { dayOfKey, rangePrefixes } from '../../src/restore/select-objects.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const f = useArchiveFixture();

/** Records every list prefix and every key read. */
function spy(store: ObjectStore): { store: ObjectStore; lists: string[]; gets: string[] } {
  const lists: string[] = [];
  const gets: string[] = [];
  const wrapped: ObjectStore = {
    description: store.description,
    put: (k, b, o) => store.put(k, b, o),
    get: (k) => {
      gets.push(k);
      return store.get(k);
    },
    head: (k) => store.head(k),
    delete: (k) => store.delete(k),
    deleteMany: (k) => store.deleteMany(k),
    list: (p) => {
      lists.push(p);
      return store.list(p);
    },
    check: () => store.check(),
  };
  return { store: wrapped, lists, gets };
}

/** One row a day for 40 days, the newest 20 days ago: 40 day partitions over two or three months. */
async function archiveDays(config = f.configFor([eventsTable])): Promise<{ days: string[]; rowsByDay: Map<string, string[]> }> {
  await createEventsTable(f.db, { rows: 40, stepMinutes: 24 * 60, endDaysAgo: 20 });
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(40);
  const rowsByDay = new Map<string, string[]>();
  for (const o of (await inspectArchive(f.store)).objects) rowsByDay.set(dayOfKey(o.key)!, [...(rowsByDay.get(dayOfKey(o.key)!) ?? []), ...o.meta.primary_keys.map((k) => k[0]!)]);
  return { days: [...rowsByDay.keys()].sort(), rowsByDay };
}

const ids = async (): Promise<string[]> => (await f.db.query<{ id: string }>('SELECT id::text AS id FROM events ORDER BY events.id')).rows.map((r) => r.id);

describe('date-range restore', () => {
  it('computes whole months as one prefix and partial months day by day', () => {
    expect(rangePrefixes('2024-01-30', '2024-03-02')).toEqual([
      'year=2024/month=01/day=30/',
      'year=2024/month=01/day=31/',
      'year=2024/month=02/',
      'year=2024/month=03/day=01/',
      'year=2024/month=03/day=02/',
    ]);
    expect(rangePrefixes('2024-02-29', '2024-02-29')).toEqual(['year=2024/month=02/day=29/']);
    // Found by probing: Date.UTC reads years 0–99 as 1900–1999, and their months were listed day by day.
    expect(rangePrefixes('0050-01-01', '0050-12-31')).toHaveLength(12);
    expect(rangePrefixes('0050-02-01', '0050-02-28')).toEqual(['year=0050/month=02/']);
  });

  it('lists the whole table once for a range of more than 400 partitions, and still restores only the range', async () => {
    const { days, rowsByDay } = await archiveDays();
    const config = f.configFor([eventsTable]);
    const listed: string[] = [];
    const store = Object.create(f.store) as typeof f.store;
    store.list = (prefix, options) => {
      listed.push(prefix);
      return f.store.list(prefix, options);
    };
    // From the first archived day to a far future: centuries of months (found by probing: 2,400 listings took 20 s).
    const s = await restoreWith(config, store, { table: 'events', range: { from: days[3]!, to: '2199-12-31' } });
    expect(s.error).toBeUndefined();
    const table = tablePrefix('app', 'public', 'events');
    expect(listed.filter((p) => p.startsWith(table) && !p.includes('_auditlog'))).toEqual([table]);
    const expected = days.slice(3).flatMap((d) => rowsByDay.get(d)!);
    expect(s.rows.restored).toBe(expected.length);
    expect((await ids()).sort()).toEqual([...expected].sort());
  });

  it('lists and reads only the partitions of the range and restores only its rows', async () => {
    const { days, rowsByDay } = await archiveDays();
    const from = days[10]!;
    const to = days[14]!;
    const s3 = spy(f.store);
    const s = await restoreWith(f.configFor([eventsTable]), s3.store, { table: 'events', range: { from, to } });
    expect(s.error).toBeUndefined();
    const expected = days.slice(10, 15).flatMap((d) => rowsByDay.get(d)!).sort((a, b) => Number(a) - Number(b));
    expect(await ids()).toEqual(expected);
    const table = tablePrefix('app', 'public', 'events');
    const dataLists = s3.lists.filter((p) => !p.startsWith('_auditlog/'));
    expect(dataLists).not.toContain(table);
    expect(dataLists.every((p) => p.startsWith(`${table}year=`))).toBe(true);
    for (const key of s3.gets.filter((k) => !k.startsWith('_auditlog/'))) {
      expect(dayOfKey(key)! >= from && dayOfKey(key)! <= to).toBe(true);
    }
  });
});

describe('restore watermarks', () => {
  it('make a rerun a no-op (bucket), consider only the range of a range restore, and yield to --ignore-watermark', async () => {
    const { days, rowsByDay } = await archiveDays();
    const config = f.configFor([eventsTable]);
    const first = await restoreWith(config, f.store, { table: 'events', range: { from: days[0]!, to: days[4]! } });
    expect(first.rows.restored).toBe(5);
    // Two-row batches on two connections: records of concurrent batches must all land.
    const full = await restoreWith(config, f.store, { table: 'events', batchSize: 2, jobs: 2 });
    expect(full.error).toBeUndefined();
    // One row a day, one object a day: the range restore did the first five.
    expect(days.slice(0, 5).every((d) => rowsByDay.get(d)!.length === 1)).toBe(true);
    expect(full.objects.skippedByWatermark).toBe(5);
    expect(full.rows.restored).toBe(35);
    expect(await ids()).toHaveLength(40);

    const rerun = await restoreWith(config, f.store, { table: 'events' });
    expect(rerun.error).toBeUndefined();
    expect(rerun.objects.restored).toBe(0);
    expect(rerun.rows.restored).toBe(0);
    expect(rerun.objects.skippedByWatermark).toBe(rerun.objects.selected);
    expect((await inspectArchive(f.store)).allKeys.some((k) => k.startsWith('_auditlog/restore-state/app/public.events/public.events.json'))).toBe(true);

    const again = await restoreWith(config, f.store, { table: 'events', ignoreWatermark: true, conflict: 'skip' });
    expect(again.rows).toEqual({ restored: 40, inserted: 0, conflicts: 40, skippedByTriggers: 0, superseded: 0 });
  });

  it('write the storage document a few times per restore, not once per batch, and hold every object at the end', async () => {
    await archiveDays();
    const config = f.configFor([eventsTable]);
    // Counts the PUTs of the restore watermark document; everything else goes to the store as is.
    let puts = 0;
    const store = Object.create(f.store) as typeof f.store;
    store.put = async (key, body, options) => {
      if (key.startsWith('_auditlog/restore-state/')) puts++;
      return f.store.put(key, body, options);
    };
    // One object a batch: 40 batches. Found by probing: each wrote the whole document, n²/2 entries in all.
    const s = await restoreWith(config, store, { table: 'events', batchSize: 1, jobs: 1 });
    expect(s.error).toBeUndefined();
    expect(s.objects.restored).toBe(40);
    expect(puts).toBeGreaterThanOrEqual(1);
    expect(puts).toBeLessThan(10);
    const doc = JSON.parse((await f.store.get('_auditlog/restore-state/app/public.events/public.events.json'))!.toString('utf8')) as { objects: Record<string, unknown> };
    expect(Object.keys(doc.objects)).toHaveLength(40);
    const rerun = await restoreWith(config, f.store, { table: 'events' });
    expect(rerun.objects.skippedByWatermark).toBe(40);
  });

  it('record the objects restored before a failure, so the rerun skips them', async () => {
    await archiveDays();
    const config = f.configFor([eventsTable]);
    const keys = (await inspectArchive(f.store)).objects.map((o) => o.key).sort();
    const last = keys[keys.length - 1]!;
    const body = (await f.store.get(last))!;
    const at = Math.floor(body.length / 2);
    body[at] = body[at]! ^ 0x01;
    await f.store.put(last, body);
    const failed = await restoreWith(config, f.store, { table: 'events', batchSize: 1, jobs: 1 });
    expect(failed.error?.code).toBe('RESTORE_CORRUPT_OBJECT');
    expect(failed.objects.restored).toBe(39);
    const doc = JSON.parse((await f.store.get('_auditlog/restore-state/app/public.events/public.events.json'))!.toString('utf8')) as { objects: Record<string, unknown> };
    expect(Object.keys(doc.objects).sort()).toEqual(keys.slice(0, -1));
    const rerun = await restoreWith(config, f.store, { table: 'events', onCorrupt: 'skip' });
    expect(rerun.objects.skippedByWatermark).toBe(39);
    expect(rerun.rows.restored).toBe(0);
  });

  it('are kept per target: restoring into another table is not skipped', async () => {
    await archiveDays();
    const config = f.configFor([eventsTable]);
    expect((await restoreWith(config, f.store, { table: 'events' })).rows.restored).toBe(40);
    const other = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'events_copy' } });
    expect(other.rows.restored).toBe(40);
    const diff = await f.db.query('(SELECT * FROM events EXCEPT SELECT * FROM events_copy) UNION ALL (SELECT * FROM events_copy EXCEPT SELECT * FROM events)');
    expect(diff.rows).toEqual([]);
  });

  it('make a rerun a no-op with watermarks.backend: database, recorded in the same transaction as the rows', async () => {
    const config = buildConfig({
      s3: f.s3cfg,
      defaults: { retention_days: 10, batch_size: 7 },
      watermarks: { backend: 'database' },
      databases: [{ name: 'app', url: f.db.url, tables: [eventsTable] }],
    });
    await archiveDays(config);
    const first = await restoreWith(config, f.store, { table: 'events', batchSize: 3, jobs: 2 });
    expect(first.error).toBeUndefined();
    expect(first.rows.restored).toBe(40);
    expect(first.objects.restored).toBe(40);
    const recorded = await f.db.query<{ n: string; rows: string }>(
      `SELECT count(*)::text AS n, sum(rows)::text AS rows FROM public.auditlog_restore_watermarks WHERE database_name = 'app' AND schema_name = 'public' AND table_name = 'events' AND target_table = 'events'`,
    );
    expect(recorded.rows[0]).toEqual({ n: String(first.objects.restored), rows: '40' });
    const rerun = await restoreWith(config, f.store, { table: 'events' });
    expect(rerun.rows.restored).toBe(0);
    expect(rerun.objects.skippedByWatermark).toBe(first.objects.restored);
    expect((await inspectArchive(f.store)).allKeys.some((k) => k.startsWith('_auditlog/restore-state/'))).toBe(false);
  });
});

describe('restore reporting', () => {
  it('logs progress with rows/s and ETA, and a dry run into a missing target creates nothing', async () => {
    await archiveDays();
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const dry = await restoreWith(f.configFor([eventsTable]), f.store, { table: 'events', target: { schema: 'public', table: 'not_yet' }, dryRun: true, logger });
    expect(dry.error).toBeUndefined();
    expect(dry.targetCreated).toBe(true);
    expect(dry.rows).toEqual({ restored: 40, inserted: 40, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect((await f.db.query(`SELECT to_regclass('public.not_yet')::text AS t`)).rows[0].t).toBeNull();

    const s = await restoreWith(f.configFor([eventsTable]), f.store, { table: 'events', batchSize: 5, jobs: 1, progressIntervalMs: 0, logger });
    expect(s.rows.restored).toBe(40);
    const progress = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'restore progress');
    expect(progress.length).toBeGreaterThanOrEqual(7);
    const last = progress[progress.length - 1];
    expect(last).toMatchObject({ rows: 40, total_rows: 40, eta_seconds: 0 });
    expect(last.rows_per_second).toBeGreaterThan(0);
  });
});
