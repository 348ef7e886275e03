/**
 * A row too large to archive, through the real CLI against a real database: PostgreSQL cannot
 * render a JSON value over 1 GB, and this Node.js cannot hold a line over its string limit (which
 * validate needs). Either way the table fails with ROW_TOO_LARGE naming the row and the hold that
 * gets past it, every row stays in the table, the other tables of the run are archived, exit 1.
 *
 * The rows are built cheaply: one value repeated, compressed by lz4 in TOAST to a few MB. The
 * bytea row fails PostgreSQL's allocation at once (its hex form alone is over 1 GB), so the real
 * failure costs about a second rather than the ten a text row of control characters takes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';

const MiB = 1024 * 1024;

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'row-too-large-'));
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * `name`: 30 ordinary rows 20 days old and, 15th in timestamp order (past the first page's
 * 10-row size sample, so the page read itself fails), row 1000 with `value` in `big`.
 */
async function createTable(name: string, type: string, value: string, index: boolean): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, big ${type} COMPRESSION lz4)`);
  if (index) await db.query(`CREATE INDEX ON ${name} (created_at, id)`);
  await db.query(`INSERT INTO ${name} SELECT g, now() - interval '20 days' - make_interval(secs => 100 - g), NULL FROM generate_series(1, 30) g`);
  await db.query(`INSERT INTO ${name} VALUES (1000, now() - interval '20 days' - make_interval(secs => 100 - 15.5), ${value})`);
}

const ids = async (table: string): Promise<string[]> => (await db.query<{ id: string }>(`SELECT id::text AS id FROM ${table} ORDER BY id`)).rows.map((r) => r.id);

describe('a row too large to archive', () => {
  it('fails its table with ROW_TOO_LARGE naming the row, deletes nothing of it, and archives the other tables', async () => {
    // 513 MiB of bytea: its hex form (2 × 513 MiB) is over PostgreSQL's 1 GB allocation limit.
    await createTable('pg_limit', 'bytea', `convert_to(repeat(repeat('x', ${MiB}), 513), 'SQL_ASCII')`, true);
    // 513 MiB of text: a JSON line PostgreSQL renders, but longer than the longest Node.js string.
    await createTable('node_limit', 'text', `repeat(repeat('x', ${MiB}), 513)`, false);
    await createTable('ordinary', 'text', `'fine'`, false);
    const before = { pg_limit: await ids('pg_limit'), node_limit: await ids('node_limit') };
    expect(before.pg_limit).toHaveLength(31);

    const config = join(dir, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        local: { path: join(dir, 'archive') },
        defaults: { retention_days: 10 },
        databases: [
          {
            name: 'app',
            url: db.url,
            tables: ['pg_limit', 'node_limit', 'ordinary'].map((name) => ({ name, timestamp_column: 'created_at' })),
          },
        ],
      }),
    );
    const run = await runCli(['archive', '--config', config, '--json']);

    expect(run.code, run.stderr).toBe(1);
    const summary = JSON.parse(run.stdout) as { tables: { table: string; status: string; error?: { code: string; message: string } }[] };
    const byTable = new Map(summary.tables.map((t) => [t.table, t]));
    for (const table of ['pg_limit', 'node_limit']) {
      const t = byTable.get(table)!;
      expect(t.status, table).toBe('failed');
      expect(t.error?.code, table).toBe('ROW_TOO_LARGE');
      expect(t.error?.message, table).toContain(`the row id = '1000' of public.${table} in database app is too large to archive`);
      expect(t.error?.message, table).toContain(`legal hold (where: "id = '1000'")`);
      expect(t.error?.message, table).not.toContain('\n');
    }
    expect(byTable.get('pg_limit')!.error!.message).toContain('limited to 1 GB');
    expect(byTable.get('node_limit')!.error!.message).toMatch(/its JSON line is 537919\d{3} bytes, over the \d+ bytes a line may have/);
    expect(byTable.get('ordinary')!.status).toBe('archived');

    expect(await ids('pg_limit')).toEqual(before.pg_limit);
    expect(await ids('node_limit')).toEqual(before.node_limit);
    expect(await ids('ordinary')).toEqual([]);
  });
});
