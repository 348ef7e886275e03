/**
 * Versions of a row archived under two primary-key definitions, through the real CLI. Found by
 * probing: a row archived under (id), restored into the live table, changed, and archived again
 * after the key became (id, created_at) was not matched as superseded, and `--conflict skip` into
 * a fresh table restored the OLD version, exit 0. Now a key found under both definitions is
 * loaded only with --conflict overwrite/upsert into a table keyed by the later definition (the
 * version archived last wins; rows differing in created_at all stay), and refused otherwise
 * before anything is loaded. A history where the key changed and no row was archived under both
 * restores exactly, as before.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli, type CliResult } from '../helpers/run-cli.js';

let dir: string;
let db: TestDatabase;
let config: string;
const env = (): Record<string, string> => ({ KEY_CHANGE_DB_URL: db.url });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'restore-key-change-'));
  db = await createTestDatabase();
  config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 10\ndatabases:\n  - name: app\n    url: \${KEY_CHANGE_DB_URL}\n    tables:\n      - name: t\n        timestamp_column: created_at\n`,
  );
  await db.query(`CREATE TABLE t (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, n int)`);
  await db.query(`INSERT INTO t SELECT g, timestamptz '2020-01-01 10:00:00+00' + g * interval '1 hour', g * 1000 FROM generate_series(1, 5) g`);
});
afterEach(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const cli = (...args: string[]): Promise<CliResult> => runCli([args[0]!, '--config', config, ...args.slice(1)], env());
const rows = async (table: string): Promise<string[]> => (await db.query<{ r: string }>(`SELECT id || ':' || n AS r FROM ${table} ORDER BY id, created_at`)).rows.map((x) => x.r);
const newKey = `ALTER TABLE t DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (id, created_at)`;

async function archive(): Promise<void> {
  const r = await cli('archive');
  expect(r.code, r.stderr).toBe(0);
}

describe('restore across a primary-key change (CLI)', () => {
  it('a refusal into a --target-table it created drops that table again; a key column renamed in column_map is the same key in the dry run as in the real run', async () => {
    await archive();
    expect((await cli('restore', '--table', 't')).code).toBe(0);
    await db.query(`UPDATE t SET n = 999 WHERE id = 3`);
    await db.query(newKey);
    await archive();
    const refused = await cli('restore', '--table', 't', '--target-table', 'public.newtab', '--conflict', 'skip');
    expect(refused.code).toBe(1);
    expect(refused.stdout + refused.stderr).toContain('[SCHEMA_DRIFT]');
    expect((await db.query(`SELECT to_regclass('public.newtab') IS NULL AS gone`)).rows[0], refused.stdout + refused.stderr).toEqual({ gone: true });
    // created_at renamed since, mapped back: the dry run into a new table keys it (id, created_on) as the real run does.
    await db.query(`ALTER TABLE t RENAME COLUMN created_at TO created_on`);
    const mapped = `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 10\ndatabases:\n  - name: app\n    url: \${KEY_CHANGE_DB_URL}\n    tables:\n      - name: t\n        timestamp_column: created_on\n        column_map:\n          created_at: created_on\n`;
    await writeFile(config, mapped);
    const dry = await cli('restore', '--table', 't', '--target-table', 'public.newtab', '--conflict', 'overwrite', '--dry-run');
    expect(dry.stdout + dry.stderr).not.toContain('[SCHEMA_DRIFT]');
    expect(dry.code).toBe(0);
    const real = await cli('restore', '--table', 't', '--target-table', 'public.newtab', '--conflict', 'overwrite');
    expect(real.code, real.stdout + real.stderr).toBe(0);
    expect((await db.query<{ r: string }>(`SELECT id || ':' || n AS r FROM newtab ORDER BY id`)).rows.map((x) => x.r)).toEqual(['1:1000', '2:2000', '3:999', '4:4000', '5:5000']);
  });

  it("the probe's history: never the older version; skip and fail refused before loading, overwrite into a table keyed (id, created_at) gives the newest", async () => {
    await archive();
    expect((await cli('restore', '--table', 't')).code).toBe(0);
    await db.query(`UPDATE t SET n = 999 WHERE id = 3`);
    await db.query(newKey);
    await archive();
    await db.query(`CREATE TABLE fresh (LIKE t INCLUDING ALL)`);
    await db.query(`CREATE TABLE oldshape (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, n int)`);

    for (const conflict of ['skip', 'fail']) {
      const r = await cli('restore', '--table', 't', '--target-table', 'public.fresh', '--conflict', conflict, '--jobs', '1');
      expect(r.code).toBe(1);
      const out = r.stdout + r.stderr;
      expect(out).toContain('[SCHEMA_DRIFT]');
      expect(out).toMatch(/key \(id\)=\("\d"\) was archived under primary key \(id\) \(archive object app\/public\.t\/.*\) and again, later, under primary key \(id, created_at\)/);
      expect(out).toContain(`--conflict ${conflict} would`);
      expect(out).toContain('restore with --conflict overwrite into a table whose key is (id, created_at)');
      expect(await rows('fresh')).toEqual([]);
    }
    // A table keyed (id) cannot tell rows that differ in created_at apart.
    const narrow = await cli('restore', '--table', 't', '--target-table', 'public.oldshape', '--conflict', 'overwrite');
    expect(narrow.code).toBe(1);
    expect(narrow.stdout + narrow.stderr).toContain('the key of public.oldshape is (id), not (id, created_at)');
    expect(await rows('oldshape')).toEqual([]);

    const ok = await cli('restore', '--table', 't', '--target-table', 'public.fresh', '--conflict', 'overwrite');
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(await rows('fresh')).toEqual(['1:1000', '2:2000', '3:999', '4:4000', '5:5000']);

    // A --target-table the tool creates gets the newest key: skip refused, overwrite then exact.
    const created = await cli('restore', '--table', 't', '--target-table', 'public.newtab', '--conflict', 'skip');
    expect(created.code).toBe(1);
    expect(created.stdout + created.stderr).toContain('[SCHEMA_DRIFT]');
    const filled = await cli('restore', '--table', 't', '--target-table', 'public.newtab', '--conflict', 'overwrite');
    expect(filled.code, filled.stdout + filled.stderr).toBe(0);
    expect(await rows('newtab')).toEqual(['1:1000', '2:2000', '3:999', '4:4000', '5:5000']);
  });

  it('rows that share an id but differ in created_at under the new key both stay with overwrite', async () => {
    await archive();
    await db.query(newKey);
    await db.query(`INSERT INTO t VALUES (3, timestamptz '2020-01-02 10:00:00+00', -3)`);
    await archive();
    await db.query(`CREATE TABLE fresh (LIKE t INCLUDING ALL)`);
    expect((await cli('restore', '--table', 't', '--target-table', 'public.fresh', '--conflict', 'skip')).code).toBe(1);
    const r = await cli('restore', '--table', 't', '--target-table', 'public.fresh', '--conflict', 'overwrite');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await rows('fresh')).toEqual(['1:1000', '2:2000', '3:3000', '3:-3', '4:4000', '5:5000']);
  });

  it('a key change with no row archived under both restores exactly, into every target, as before', async () => {
    await archive();
    await db.query(newKey);
    await db.query(`INSERT INTO t SELECT g, timestamptz '2020-01-01 10:00:00+00' + g * interval '1 hour', g * 1000 FROM generate_series(6, 8) g`);
    await archive();
    const all = ['1:1000', '2:2000', '3:3000', '4:4000', '5:5000', '6:6000', '7:7000', '8:8000'];
    await db.query(`CREATE TABLE fresh (LIKE t INCLUDING ALL)`);
    const fresh = await cli('restore', '--table', 't', '--target-table', 'public.fresh');
    expect(fresh.code, fresh.stdout + fresh.stderr).toBe(0);
    expect(fresh.stdout).toContain('8 loaded: 8 inserted, 0 conflicts');
    expect(await rows('fresh')).toEqual(all);
    const skip = await cli('restore', '--table', 't', '--target-table', 'public.newtab', '--conflict', 'skip');
    expect(skip.code, skip.stdout + skip.stderr).toBe(0);
    expect(await rows('newtab')).toEqual(all);
    const live = await cli('restore', '--table', 't');
    expect(live.code, live.stdout + live.stderr).toBe(0);
    expect(await rows('t')).toEqual(all);
  });
});
