/**
 * column_map across schema eras, through the real executable (found by probing): a mapping holds
 * only for objects archived before the rename. A rename followed by re-adding the old name
 * restores both eras exactly with the plain form; a swap needs `archived_before` (without it the
 * config is refused, exit 2, nothing loaded). And a --target-table the restore would create with
 * a primary key some selected objects lack is refused before anything is created, also in --dry-run.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
let db: TestDatabase;
let config: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'restore-column-map-'));
  db = await createTestDatabase();
  config = join(dir, 'config.yaml');
});
afterEach(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const env = (): Record<string, string> => ({ COLUMN_MAP_DB_URL: db.url });

async function writeConfig(tableExtra = ''): Promise<void> {
  await writeFile(
    config,
    `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 30\ndatabases:\n  - name: app\n    url: \${COLUMN_MAP_DB_URL}\n    tables:\n      - name: t\n        timestamp_column: created_at\n${tableExtra}`,
  );
}

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli([...args.slice(0, 1), '--config', config, ...args.slice(1)], env());
}

/** Rows of `a` and `b` (same columns) that the other lacks: [] when equal as sets, with counts checked by the caller. */
async function differences(a: string, b: string): Promise<unknown[]> {
  return (await db.query(`(SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b}) UNION ALL (SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a})`)).rows;
}

/** Era 1: rows 1–5 archived with (s, note). */
async function firstEra(): Promise<void> {
  await db.query(`CREATE TABLE t (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, s text, note text)`);
  await db.query(`INSERT INTO t SELECT g, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour', 'str' || g, 'note' || g FROM generate_series(1, 5) g`);
  await db.query('CREATE TABLE snap1 AS TABLE t');
  const r = await cli('archive');
  expect(r.code).toBe(0);
}

async function secondArchive(): Promise<void> {
  await db.query('CREATE TABLE snap2 AS TABLE t');
  const r = await cli('archive');
  expect(r.code).toBe(0);
  expect((await db.query('SELECT count(*)::int AS n FROM t')).rows[0]).toEqual({ n: 0 });
}

async function count(table: string): Promise<number> {
  return (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
}

describe('column_map across eras (CLI)', () => {
  it('rename, then the old name added again: the plain map restores both eras exactly, into the live table and a new one', async () => {
    await writeConfig('        column_map: { note: note2 }\n');
    await firstEra();
    await db.query('ALTER TABLE t RENAME note TO note2');
    await db.query('ALTER TABLE t ADD COLUMN note text');
    await db.query(`INSERT INTO t SELECT g, timestamptz '2020-02-01 00:00:00+00' + g * interval '1 hour', 'str' || g, 'old_' || g, 'new_' || g FROM generate_series(6, 8) g`);
    await secondArchive();
    await db.query(`CREATE VIEW expected AS SELECT id, created_at, s, note AS note2, NULL::text AS note FROM snap1 UNION ALL SELECT id, created_at, s, note2, note FROM snap2`);

    const r = await cli('restore', '--table', 't', '--json');
    expect(r.stderr).not.toContain('"level":50');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.rows.inserted).toBe(8);
    expect(summary.drift).toEqual([
      'added column "note" (text): not in the archive, gets NULL',
      expect.stringMatching(/^renamed column "note" → "note2" \(column_map\) in 1 object \(app\/public\.t\/year=2020\/month=01\//),
      expect.stringMatching(/^column_map "note" → "note2" not applied to 1 object \(app\/public\.t\/year=2020\/month=02\/.*\): already has a column "note2" \(archived after the rename\), so "note" is taken by name$/),
    ]);
    expect(await count('t')).toBe(8);
    expect(await differences('t', 'expected')).toEqual([]);

    // A new --target-table gets the names the objects are loaded under: no "note" left empty beside "note2" for era 1.
    const created = await cli('restore', '--table', 't', '--target-table', 'public.newtab');
    expect(created.code).toBe(0);
    const columns = await db.query<{ name: string }>(`SELECT attname AS name FROM pg_attribute WHERE attrelid = 'public.newtab'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
    expect(columns.rows.map((c) => c.name)).toEqual(['id', 'created_at', 's', 'note2', 'note']);
    expect(await count('newtab')).toBe(8);
    expect(await differences('newtab', 'expected')).toEqual([]);
  });

  it('a swap of two names restores both eras exactly with archived_before, and is refused at load without it (exit 2, nothing loaded)', async () => {
    await writeConfig();
    await firstEra();
    // Between the two archive runs: every object of the first run was archived before it, none of the second.
    await new Promise((r) => setTimeout(r, 20));
    const bound = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    await db.query('ALTER TABLE t RENAME s TO tmp');
    await db.query('ALTER TABLE t RENAME note TO s');
    await db.query('ALTER TABLE t RENAME tmp TO note');
    await db.query(`INSERT INTO t (id, created_at, s, note) SELECT g, timestamptz '2020-02-01 00:00:00+00' + g * interval '1 hour', 'S_' || g, 'NOTE_' || g FROM generate_series(6, 8) g`);
    await secondArchive();
    await db.query(`CREATE VIEW expected AS SELECT id, created_at, note AS s, s AS note FROM snap1 UNION ALL SELECT id, created_at, s, note FROM snap2`);

    await writeConfig('        column_map: { s: note, note: s }\n');
    const refused = await cli('restore', '--table', 't');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('column_map.s: "s" → "note" is part of a chain or swap of names');
    expect(refused.stderr).toContain(`write it as { to: note, archived_before: <ISO 8601 instant of the rename> }`);
    expect(refused.stderr).toContain('column_map.note: "note" → "s"');
    expect(refused.stderr).toContain('[CONFIG_INVALID]');
    expect(await count('t')).toBe(0);

    await writeConfig(`        column_map:\n          s: { to: note, archived_before: "${bound}" }\n          note: { to: s, archived_before: ${bound} }\n`);
    const r = await cli('restore', '--table', 't', '--json');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.rows.inserted).toBe(8);
    expect(summary.drift).toContainEqual(expect.stringMatching(new RegExp(`^column_map "s" → "note" not applied to 1 object \\(app/public\\.t/year=2020/month=02/.*\\): archived at or after its archived_before ${bound.replace(/\./g, '\\.')}, so "s" is taken by name$`)));
    expect(await count('t')).toBe(8);
    // The swap left the columns in the other order (note, s): compared by name.
    expect(await differences('(SELECT id, created_at, s, note FROM t) x', 'expected')).toEqual([]);
  });

  it('a new --target-table whose key (the newest object\'s) some objects lack is refused before it is created, and the dry run says so too', async () => {
    await writeConfig();
    await firstEra();
    await db.query('ALTER TABLE t ADD COLUMN uid int');
    await db.query(`INSERT INTO t SELECT g, timestamptz '2020-02-01 00:00:00+00' + g * interval '1 hour', 'str' || g, 'note' || g, 100 + g FROM generate_series(6, 8) g`);
    await db.query('ALTER TABLE t DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (uid)');
    await secondArchive();

    for (const dry of [['--dry-run'], []]) {
      const r = await cli('restore', '--table', 't', '--target-table', 'public.newtab', ...dry);
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toMatch(
        /cannot create public\.newtab with primary key \(uid\), the newest object's: 1 of the 2 selected objects \(e\.g\. app\/public\.t\/year=2020\/month=01\/[^)]*\) lack column "uid" .* create public\.newtab yourself .*\[SCHEMA_DRIFT\]/,
      );
      expect((await db.query(`SELECT to_regclass('public.newtab') IS NULL AS missing`)).rows[0]).toEqual({ missing: true });
    }

    // The way out the error names: a table made by hand, here keyed on id.
    await db.query('CREATE TABLE newtab (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, s text, note text, uid int)');
    const byHand = await cli('restore', '--table', 't', '--target-table', 'public.newtab');
    expect(byHand.code).toBe(0);
    expect(await count('newtab')).toBe(8);
    expect(await differences('newtab', `(SELECT *, NULL::int AS uid FROM snap1 UNION ALL SELECT * FROM snap2) e`)).toEqual([]);
  });
});
