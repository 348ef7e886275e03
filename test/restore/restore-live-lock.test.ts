/**
 * A restore into the live table (one the configuration archives) holds the table's archive lock:
 * it is refused while an archive run holds it, and an archive run starting meanwhile is refused
 * with LOCK_HELD naming the restore (found by probing: an archive run alongside took the rows
 * straight back out, the restore reported them restored, a rerun skipped them by watermark).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import pino from 'pino';
import { acquireTableLock, findLockHolder } from '../../src/db/advisory-lock.js';
import { buildSessionSettings, createClient } from '../../src/db/connect.js';
import { acquireRestoreLock } from '../../src/restore/restore-lock.js';
import { fileLockPath } from '../../src/state/file-lock.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { buildConfig } from '../helpers/archive-run.js';

const f = useArchiveFixture();
const ALL = Array.from({ length: 20 }, (_, i) => String(i + 1)).sort();

async function archived(): Promise<{ config: ReturnType<typeof f.configFor>; oid: number }> {
  await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
  const config = f.configFor([eventsTable]);
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
  expect(await rowIds(f.db)).toEqual([]);
  const oid = Number((await f.db.query<{ oid: string }>(`SELECT 'public.events'::regclass::oid::text AS oid`)).rows[0]!.oid);
  return { config, oid };
}

describe('restore into the live table and the archive lock', () => {
  it('is refused while an archive run holds the lock, naming it; a scratch target is not', async () => {
    const { config, oid } = await archived();
    const holder = new pg.Client({ connectionString: f.db.url, application_name: 'archiver-elsewhere' });
    await holder.connect();
    try {
      await acquireTableLock(holder, { database: 'app', schema: 'public', table: 'events', oid }, { runId: '20260101T000000Z-abc123' });
      const s = await restoreWith(config, f.store, { table: 'events' });
      expect(s.status).toBe('failed');
      expect(s.error?.code).toBe('LOCK_HELD');
      expect(s.error?.message).toMatch(/^restore into public\.events refused: app\/public\.events is being archived by pid \d+ \(application_name "archiver-elsewhere".*run 20260101T000000Z-abc123.*disable the archiver's schedule for the table and let the run end, then restore.*Nothing was restored$/);
      expect(s.rows.restored).toBe(0);
      expect(await rowIds(f.db)).toEqual([]);
      const scratch = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'scratch' } });
      expect(scratch.rows.restored).toBe(20);
    } finally {
      await holder.end();
    }
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error).toBeUndefined();
    expect(await rowIds(f.db)).toEqual(ALL);
  });

  it('holds the lock while it loads: an archive run meanwhile is refused with LOCK_HELD, and every row stays', async () => {
    const { config, oid } = await archived();
    // Slows each batch down so that the archive run surely starts while the restore loads.
    await f.db.query(`CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$`);
    await f.db.query(`CREATE TRIGGER slow BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION slow()`);
    const restore = restoreWith(config, f.store, { table: 'events', batchSize: 3, jobs: 1, runId: 'restore-run-1' });
    let holder = null;
    for (let i = 0; i < 100 && holder === null; i++) {
      holder = await findLockHolder(f.db, oid);
      if (holder === null) await new Promise((r) => setTimeout(r, 50));
    }
    expect(holder?.run_id).toBe('restore:restore-run-1');
    const archive = await archiveWith(config, f.store);
    expect(archive.tables[0]!.error?.code).toBe('LOCK_HELD');
    expect(archive.tables[0]!.error?.message).toContain('run restore:restore-run-1');
    const s = await restore;
    expect(s.error).toBeUndefined();
    expect(s.rows.restored).toBe(20);
    expect(await rowIds(f.db)).toEqual(ALL);
    expect(await findLockHolder(f.db, oid)).toBeNull();
    // Released: the next archive run takes the rows again (they are still older than the retention).
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
  });
});

const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/**
 * `Schema`.`Events`, partitioned by id into one partition `Schema`.`Events_p` (mixed case: names
 * are compared as the catalog spells them), with the 20 events rows, then archived as the
 * configuration says (`configured`): the parent or the partition.
 */
async function archivedPartitioned(schema: string, configured: string, config: (tables: Record<string, unknown>[]) => ReturnType<typeof f.configFor>, store: ObjectStore) {
  await createEventsTable(f.db, { schema, table: 'seed', rows: 20, stepMinutes: 30, endDaysAgo: 20 });
  await f.db.query(`CREATE TABLE ${q(schema)}."Events" (LIKE ${q(schema)}.seed INCLUDING ALL) PARTITION BY RANGE (id)`);
  await f.db.query(`CREATE TABLE ${q(schema)}."Events_p" PARTITION OF ${q(schema)}."Events" FOR VALUES FROM (MINVALUE) TO (MAXVALUE)`);
  await f.db.query(`INSERT INTO ${q(schema)}."Events" SELECT * FROM ${q(schema)}.seed`);
  await f.db.query(`DROP TABLE ${q(schema)}.seed`);
  const cfg = config([{ schema, name: configured, timestamp_column: 'happened_at' }]);
  expect((await archiveWith(cfg, store)).tables[0]!.rowsArchived).toBe(20);
  expect(await rowIds(f.db, schema, 'Events')).toEqual([]);
  const oid = Number((await f.db.query<{ oid: string }>(`SELECT $1::regclass::oid::text AS oid`, [`${q(schema)}.${q(configured)}`])).rows[0]!.oid);
  return { config: cfg, oid };
}

/** Slows each batch into the target down, so that an archive run surely starts while the restore loads. */
async function slowInserts(schema: string, table: string): Promise<void> {
  await f.db.query(`CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$`);
  await f.db.query(`CREATE TRIGGER slow BEFORE INSERT ON ${q(schema)}.${q(table)} FOR EACH STATEMENT EXECUTE FUNCTION slow()`);
}

async function waitForHolder(oid: number): Promise<string | null> {
  for (let i = 0; i < 100; i++) {
    const holder = await findLockHolder(f.db, oid);
    if (holder !== null) return holder.run_id;
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

describe('restore into a table sharing a partition tree with an archived table', () => {
  it('a partition of an archived partitioned table: holds the parent\'s lock, and an archive run meanwhile is refused', async () => {
    const { config, oid } = await archivedPartitioned('Audit', 'Events', (t) => f.configFor(t), f.store);
    await slowInserts('Audit', 'Events_p');
    const restore = restoreWith(config, f.store, { table: 'Events', target: { schema: 'Audit', table: 'Events_p' }, batchSize: 3, jobs: 1, runId: 'restore-part-1' });
    // Before the fix no lock was taken: the archive run below deleted restored rows through the parent.
    expect(await waitForHolder(oid)).toBe('restore:restore-part-1');
    const archive = await archiveWith(config, f.store);
    expect(archive.tables[0]!.error?.code).toBe('LOCK_HELD');
    expect(archive.tables[0]!.error?.message).toContain('run restore:restore-part-1');
    const s = await restore;
    expect(s.error).toBeUndefined();
    expect(s.rows.restored).toBe(20);
    expect(await rowIds(f.db, 'Audit', 'Events_p')).toEqual(ALL);
    expect(await findLockHolder(f.db, oid)).toBeNull();
  });

  it('is refused while an archive run of the partitioned parent holds its lock, naming it', async () => {
    const { config, oid } = await archivedPartitioned('Audit', 'Events', (t) => f.configFor(t), f.store);
    const holder = new pg.Client({ connectionString: f.db.url, application_name: 'archiver-elsewhere' });
    await holder.connect();
    try {
      await acquireTableLock(holder, { database: 'app', schema: 'Audit', table: 'Events', oid }, { runId: '20260101T000000Z-abc123' });
      const s = await restoreWith(config, f.store, { table: 'Events', target: { schema: 'Audit', table: 'Events_p' } });
      expect(s.error?.code).toBe('LOCK_HELD');
      expect(s.error?.message).toMatch(/^restore into Audit\.Events_p refused \(it is in the partition tree of Audit\.Events, which the configuration archives\): app\/Audit\.Events is being archived by pid \d+ .*run 20260101T000000Z-abc123.*Nothing was restored$/);
      expect(s.rows.restored).toBe(0);
      expect(await rowIds(f.db, 'Audit', 'Events')).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('the parent of an archived partition (local mode): holds the partition\'s lock file and advisory lock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'restore-live-lock-'));
    try {
      const store = new LocalObjectStore({ path: join(dir, 'archive') });
      const local = (tables: Record<string, unknown>[]) =>
        buildConfig({ local: { path: join(dir, 'archive') }, defaults: { retention_days: 10, batch_size: 7 }, databases: [{ name: 'app', url: f.db.url, tables }] });
      const { config, oid } = await archivedPartitioned('Audit', 'Events_p', local, store);
      await slowInserts('Audit', 'Events');
      const restore = restoreWith(config, store, { table: 'Events_p', target: { schema: 'Audit', table: 'Events' }, batchSize: 3, jobs: 1, runId: 'restore-part-2' });
      expect(await waitForHolder(oid)).toBe('restore:restore-part-2');
      // The very file an archive run of the configured partition takes.
      const file = fileLockPath(join(dir, 'archive'), { database: 'app', schema: 'Audit', table: 'Events_p' });
      expect(JSON.parse(await readFile(file, 'utf8')).run_id).toBe('restore:restore-part-2');
      const archive = await archiveWith(config, store);
      expect(archive.tables[0]!.error?.code).toBe('LOCK_HELD');
      expect(archive.tables[0]!.error?.message).toContain('restore:restore-part-2');
      const s = await restore;
      expect(s.error).toBeUndefined();
      expect(s.rows.restored).toBe(20);
      expect(await rowIds(f.db, 'Audit', 'Events_p')).toEqual(ALL);
      expect(await findLockHolder(f.db, oid)).toBeNull();
      // Released: the next archive run takes the rows again (they are still older than the retention).
      expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(20);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the restore lock session and idle_session_timeout', () => {
  // Found by the non-default-settings test under load: the lock session sits idle between
  // heartbeats, and a database's idle_session_timeout ended it (the restore failed LOCK_LOST).
  it('keeps the lock through idle periods longer than the database idle_session_timeout', async () => {
    const { config, oid } = await archived();
    await f.db.query(`ALTER DATABASE "${f.db.name}" SET idle_session_timeout = '100ms'`);
    const openClient = async (): Promise<pg.Client> => {
      const c = createClient({ database: config.databases[0]!, applicationName: 'restore-test', settings: buildSessionSettings(config.defaults) });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    };
    const lock = await acquireRestoreLock({
      config,
      database: 'app',
      target: { schema: 'public', table: 'events' },
      tables: [{ schema: 'public', table: 'events', oid: String(oid) }],
      runId: 'r-idle',
      openClient,
      logger: pino({ level: 'silent' }),
    });
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect(lock.lost()).toBeUndefined();
      expect((await findLockHolder(f.db, oid))?.run_id).toBe('restore:r-idle');
    } finally {
      await lock.release();
    }
  });
});
