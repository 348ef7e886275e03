/**
 * A database with idle_session_timeout, and storage slow enough that the restore's load session
 * sits idle longer than that between two objects (a large object downloading, a slow bucket).
 * Found as an intermittent "connection error" of the non-default-settings test on a loaded
 * machine: the server ended the idle load session and the restore failed. Every session a restore
 * opens is an active job's, so it keeps the database from ending it while it reads storage.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { restoreWith } from '../helpers/restore-run.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

/** The real local store, each read of a data object taking `ms` longer. */
function slowReads(store: LocalObjectStore, ms: number): ObjectStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'get') {
        return async (key: string) => {
          if (/\.jsonl\.(gz|zst)$/.test(key)) await sleep(ms);
          return target.get(key);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('restore under a database idle_session_timeout', () => {
  it('loads every row although each object takes longer to read than the database lets a session idle', async () => {
    const db = await createTestDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'restore-idle-'));
    try {
      await db.query(`CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL, note text)`);
      await db.query(`INSERT INTO t SELECT g, '2020-01-05 12:00:00+00'::timestamptz + make_interval(days => g % 3), 'n' || g FROM generate_series(1, 12) g`);
      const store = new LocalObjectStore({ path: dir });
      const config = buildConfig({ local: { path: dir }, defaults: { retention_days: 30, batch_size: 4 }, databases: [{ name: 'app', url: db.url, tables: [{ name: 't', timestamp_column: 'at' }] }] });
      expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(12);
      expect((await db.query('SELECT 1 FROM t')).rows).toEqual([]);

      await db.query(`ALTER DATABASE "${db.name}" SET idle_session_timeout = '300ms'`);
      const restored = await restoreWith(config, slowReads(store, 700), { table: 't' });
      expect(restored.error).toBeUndefined();
      expect(restored.rows).toMatchObject({ restored: 12, inserted: 12 });
      expect((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM t')).rows[0]!.n).toBe('12');
    } finally {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
