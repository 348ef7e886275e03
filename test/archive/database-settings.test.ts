/**
 * A database (and a connection URL) with settings far from PostgreSQL's defaults: archive,
 * validate against the database and restore must give the same lines and the identical rows as
 * on a default database. Each setting here once changed what the archiver's SQL meant (found by
 * probing): standard_conforming_strings off turned the array bound check's pattern into another
 * one (arrays archived without their lower bound, then deleted), array_nulls off restored NULL
 * elements as "NULL", xmloption document refused xml fragments, serializable made the archiver's
 * own transactions fail each other, idle_session_timeout ended the lock session, and a URL's
 * ?options= replaced every pinned setting (local times archived under metadata saying UTC).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { storageBackends } from '../helpers/storage-backends.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { restoreWith } from '../helpers/restore-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { validateArchive } from '../../src/validate/validate-archive.js';
import { buildSessionSettings, createPool, splitUrlOptions } from '../../src/db/connect.js';
import { defaultsSchema } from '../../src/config/schema.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { startTcpFaultProxy } from '../helpers/tcp-fault-proxy.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

describe('splitUrlOptions', () => {
  it('takes the options parameter out of the URL and leaves the rest', () => {
    expect(splitUrlOptions('postgres://u:pw@h:5433/db?sslmode=disable&options=-c%20TimeZone%3DAsia%2FKathmandu')).toEqual({
      connectionString: 'postgres://u:pw@h:5433/db?sslmode=disable',
      options: '-c TimeZone=Asia/Kathmandu',
    });
    expect(splitUrlOptions('postgres://u@h/db')).toEqual({ connectionString: 'postgres://u@h/db' });
  });
});

const backends = storageBackends(() => s3, 'db-settings');

describe.each(backends)('a database with non-default settings, through the $name', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(`CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL, a text[], n int[], x xml, f double precision, iv interval)`);
    await db.query(
      `INSERT INTO t SELECT g, '2020-01-05 23:45:03.123456+00'::timestamptz + make_interval(days => g % 3), '[0:2]={x,NULL,z}', ARRAY[g, NULL], ('fragment <b>' || g || '</b> tail')::xml, 0.1 * g, make_interval(hours => g)
         FROM generate_series(1, 30) g`,
    );
    for (const setting of [
      'standard_conforming_strings = off',
      'array_nulls = off',
      "xmloption = 'document'",
      "default_transaction_isolation = 'serializable'",
      "idle_session_timeout = '300ms'",
      "TimeZone = 'Asia/Kathmandu'",
      "DateStyle = 'SQL, DMY'",
      "IntervalStyle = 'sql_standard'",
      'extra_float_digits = -15',
      'jit = on',
      'jit_above_cost = 0',
    ]) {
      await db.query(`ALTER DATABASE "${db.name}" SET ${setting}`);
    }
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('runs the archiver\'s sessions without JIT, whatever the database sets (a hold\'s EXISTS once cost 10x in JIT compilation)', async () => {
    const pool = createPool({ database: { name: 'settings', url: db.url, connection_pool_size: 1, tables: [] }, applicationName: 'auditlog-test', settings: buildSessionSettings(defaultsSchema.parse({})) });
    try {
      expect((await pool.query<{ jit: string }>(`SELECT current_setting('jit') AS jit`)).rows[0]).toEqual({ jit: 'off' });
    } finally {
      await pool.end();
    }
  });

  it('archives the same lines as a default database and restores the identical rows', async () => {
    // Read under the pinned settings, whatever the database says.
    const pinned = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET standard_conforming_strings = on; SET array_nulls = on`;
    const rowsOf = async (table: string): Promise<string[]> => {
      const r = (await db.query(`${pinned}; SELECT ROW(r.*)::text AS row FROM ${table} r ORDER BY id`)) as unknown as { rows: { row: string }[] }[];
      return r[r.length - 1]!.rows.map((x) => x.row);
    };
    const before = await rowsOf('t');
    const { store, storage, cleanup } = await backend.make();
    try {
      const url = `${db.url}?options=${encodeURIComponent('-c TimeZone=Asia/Kathmandu -c DateStyle=German')}`;
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 4, pause_between_batches_ms: 150 },
        databases: [{ name: 'settings', url, tables: [{ name: 't', timestamp_column: 'at' }] }],
      });
      const archived = await archiveWith(config, store);
      expect(archived.tables[0]!.error).toBeUndefined();
      expect(archived.tables[0]!.rowsArchived).toBe(30);

      const archive = await inspectArchive(store);
      const first = archive.objects.flatMap((o) => o.lines).find((l) => l.startsWith('{"id":1,'))!;
      expect(first).toBe(
        '{"id":1,"at":"2020-01-06T23:45:03.123456+00:00","a":"[0:2]={x,NULL,z}","n":[1,null],"x":"fragment <b>1</b> tail","f":0.1,"iv":"01:00:00"}',
      );
      // Objects are named and partitioned by UTC time.
      expect(archive.objects.every((o) => /\/day=0[5-7]\/234503123456-/.test(o.key))).toBe(true);
      expect(archive.objects[0]!.meta.session_settings).toMatchObject({ TimeZone: 'UTC', standard_conforming_strings: 'on', array_nulls: 'on' });

      const report = await validateArchive({ config, store, databases: config.databases, deep: true, deepThreshold: 0, concurrency: 2, checkDatabase: true });
      expect(report.tables[0]!.findings).toEqual([]);

      const restored = await restoreWith(config, store, { table: 't' });
      expect(restored.error).toBeUndefined();
      expect(restored.rows).toEqual({ restored: 30, inserted: 30, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
      expect(await rowsOf('t')).toEqual(before);
    } finally {
      await cleanup();
    }
  });
});

describe('a connection path that drops the startup options (a pooler with ignore_startup_parameters = options)', () => {
  // Found by probing through PgBouncer: every pinned setting fell back to the database's (real
  // values archived with fewer digits, intervals in another style, no lock_timeout), the rows were
  // deleted, and the metadata still claimed the pinned settings.
  it('archive refuses the database before reading a row (DB_SESSION), restore too; through the same path with the options kept, it archives', async () => {
    const db = await createTestDatabase();
    const proxy = await startTcpFaultProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
    const dir = await mkdtemp(join(tmpdir(), 'dropped-options-'));
    try {
      await db.query(`CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL, f real)`);
      await db.query(`INSERT INTO t SELECT g, now() - interval '40 days', 293.7 + g FROM generate_series(1, 5) g`);
      await db.query(`ALTER DATABASE "${db.name}" SET extra_float_digits = -3`);
      const config = buildConfig({
        local: { path: dir },
        defaults: { retention_days: 30 },
        databases: [{ name: 'settings', url: proxy.urlFor(db.url), tables: [{ name: 't', timestamp_column: 'at' }] }],
      });
      const store = new LocalObjectStore({ path: dir });
      proxy.dropStartupOptions = true;
      const refused = await archiveWith(config, store);
      expect(refused.tables[0]).toMatchObject({ status: 'failed', rowsArchived: 0, error: { code: 'DB_SESSION' } });
      expect(refused.tables[0]!.error!.message).toContain('startup "options" parameter did not reach PostgreSQL');
      expect((await db.query('SELECT count(*)::int AS n FROM t')).rows[0]).toEqual({ n: 5 });
      expect((await inspectArchive(store)).objects).toEqual([]);
      await expect(restoreWith(config, store, { table: 't' })).rejects.toMatchObject({ code: 'DB_SESSION' });

      proxy.dropStartupOptions = false;
      const archived = await archiveWith(config, store);
      expect(archived.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 5 });
      const lines = (await inspectArchive(store)).objects.flatMap((o) => o.lines);
      expect(lines.map((l) => (JSON.parse(l) as { f: number }).f).sort()).toEqual([294.7, 295.7, 296.7, 297.7, 298.7]);
    } finally {
      await proxy.stop();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
