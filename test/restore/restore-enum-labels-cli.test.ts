/**
 * Rows archived with an enum label renamed since (ALTER TYPE … RENAME VALUE), through the real
 * CLI. Found by probing: every target failed, also a --target-table whose column is text (the
 * staging table parsed the value as the enum), with a message naming neither column nor label.
 * Now the value goes through text wherever it does not go into that same enum, and where it does
 * the error names the column, the label and the fix, and nothing of the batch is loaded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
let db: TestDatabase;
let config: string;
const env = (): Record<string, string> => ({ ENUM_LABELS_DB_URL: db.url });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'restore-enum-labels-'));
  db = await createTestDatabase();
  config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 10\n  batch_size: 100\ndatabases:\n  - name: app\n    url: \${ENUM_LABELS_DB_URL}\n    tables:\n      - name: t\n        timestamp_column: created_at\n`,
  );
  await db.query(`CREATE TYPE mood AS ENUM ('happy', 'sad')`);
  await db.query(`CREATE TABLE t (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, m mood, ms mood[], note text)`);
  await db.query(`INSERT INTO t SELECT g, now() - interval '40 days' + g * interval '1 hour', CASE WHEN g % 2 = 0 THEN 'happy' ELSE 'sad' END::mood, ARRAY['happy', CASE WHEN g % 2 = 0 THEN 'happy' ELSE 'sad' END]::mood[], 'n' || g FROM generate_series(1, 4) g`);
  expect((await runCli(['archive', '--config', config], env())).code).toBe(0);
  await db.query(`ALTER TYPE mood RENAME VALUE 'sad' TO 'unhappy'`);
  // A later run archives the renamed label: both objects restore in one batch.
  await db.query(`INSERT INTO t SELECT g, now() - interval '30 days' + g * interval '1 hour', 'unhappy', '{unhappy}', 'n' || g FROM generate_series(5, 6) g`);
  expect((await runCli(['archive', '--config', config], env())).code).toBe(0);
  expect((await db.query(`SELECT count(*)::int AS n FROM t`)).rows[0]).toEqual({ n: 0 });
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const moods = async (table: string): Promise<string[]> => (await db.query<{ r: string }>(`SELECT id || ':' || m::text || ':' || ms::text AS r FROM ${table} ORDER BY id`)).rows.map((x) => x.r);
const ARCHIVED = ['1:sad:{happy,sad}', '2:happy:{happy,happy}', '3:sad:{happy,sad}', '4:happy:{happy,happy}', '5:unhappy:{unhappy}', '6:unhappy:{unhappy}'];

describe('restore after an enum label was renamed (CLI)', () => {
  it('into a --target-table whose columns are text and text[]: every archived label, exactly', async () => {
    await db.query(`CREATE TABLE astext (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, m text, ms text[], note text)`);
    const r = await runCli(['restore', '--config', config, '--table', 't', '--target-table', 'public.astext'], env());
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(await moods('astext')).toEqual(ARCHIVED);
  });

  it('into a --target-table whose columns are another enum (and its array) with the labels', async () => {
    await db.query(`CREATE TYPE feeling AS ENUM ('happy', 'sad', 'unhappy')`);
    await db.query(`CREATE TABLE asfeeling (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, m feeling, ms feeling[], note text)`);
    const r = await runCli(['restore', '--config', config, '--table', 't', '--target-table', 'public.asfeeling'], env());
    expect(r.code).toBe(0);
    expect(await moods('asfeeling')).toEqual(ARCHIVED);
  });

  it('into a --target-table whose column is an integer: refused before loading, as enum → integer is not a cast (text → integer would be)', async () => {
    await db.query(`CREATE TABLE asint (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, m integer, ms mood[], note text)`);
    const r = await runCli(['restore', '--config', config, '--table', 't', '--target-table', 'public.asint'], env());
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(`archived column "m" has type public.mood, which PostgreSQL cannot cast to integer`);
    expect(r.stdout + r.stderr).toContain('[SCHEMA_DRIFT]');
    expect((await db.query(`SELECT count(*)::int AS n FROM asint`)).rows[0]).toEqual({ n: 0 });
  });

  it('into the enum that lost the label: SCHEMA_DRIFT naming column, label and fix, nothing loaded; also in a dry run', async () => {
    for (const extra of [['--dry-run'], []]) {
      const r = await runCli(['restore', '--config', config, '--table', 't', ...extra], env());
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toContain('[SCHEMA_DRIFT]');
      expect(r.stdout + r.stderr).toContain(`archived column "m" holds the label 'sad' that enum type public.mood of column "m" does not have`);
      expect(r.stdout + r.stderr).toContain(`ALTER TYPE public.mood ADD VALUE 'sad'`);
      expect(r.stdout + r.stderr).toContain('--target-table');
      expect((await db.query(`SELECT count(*)::int AS n FROM t`)).rows[0]).toEqual({ n: 0 });
    }
    // The fix the message gives works.
    await db.query(`ALTER TYPE mood ADD VALUE 'sad'`);
    const fixed = await runCli(['restore', '--config', config, '--table', 't'], env());
    expect(fixed.code).toBe(0);
    expect(await moods('t')).toEqual(ARCHIVED);
  });
});
