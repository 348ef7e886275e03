/**
 * A run is killed (SIGKILL, the real CLI) after batches committed and before their pending markers
 * were removed; then the configured name is made to point at another table whose rows carry the
 * same keys and the same xmins (two tables filled in one transaction, their schemas swapped).
 * Found by probing: reconciliation saw "archived versions still in the table", removed the
 * committed objects, and their rows — already deleted from the real table — were lost. A delete
 * transaction that committed now outweighs rows that look archived: the table stops with
 * STORAGE_CONFLICT and nothing is touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '../helpers/postgres.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { runCli } from '../helpers/run-cli.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reconcile-swap-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('reconciliation after the configured name was given to another table', () => {
  it('stops with STORAGE_CONFLICT instead of removing committed objects whose delete committed', async () => {
    const db = await createTestDatabase();
    try {
      // One simple-protocol query is one transaction: both tables' rows get the same xmin.
      await db.query(`
        CREATE SCHEMA x; CREATE SCHEMA y;
        CREATE TABLE x.t (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, origin text NOT NULL);
        CREATE TABLE y.t (LIKE x.t INCLUDING ALL);
        INSERT INTO x.t SELECT g, date_trunc('day', now()) - interval '20 days' + make_interval(mins => g), 'x' FROM generate_series(1, 40) g;
        INSERT INTO y.t SELECT g, date_trunc('day', now()) - interval '20 days' + make_interval(mins => g), 'y' FROM generate_series(1, 40) g;`);
      const local = { path: join(dir, 'archive') };
      const file = join(dir, 'config.json');
      await writeFile(file, JSON.stringify({ local, defaults: { retention_days: 10, batch_size: 8, batches_in_flight: 1 }, databases: [{ name: 'app', url: db.url, tables: [{ schema: 'x', name: 't', timestamp_column: 'happened_at' }] }] }));

      const crashed = await runCli(['archive', '--config', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' });
      expect(crashed.signal).toBe('SIGKILL');
      const store = new LocalObjectStore(local);
      const before = await inspectArchive(store);
      const archivedIds = before.objects.flatMap((o) => o.meta.primary_keys.map((k) => k[0]));
      expect(archivedIds).toHaveLength(24);
      expect(before.pendingMarkers.length).toBeGreaterThanOrEqual(1);
      const countOf = async (schema: string): Promise<number> => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.t`)).rows[0]!.n);
      expect(await countOf('x')).toBe(16);

      await db.query('BEGIN; ALTER SCHEMA x RENAME TO tmp; ALTER SCHEMA y RENAME TO x; ALTER SCHEMA tmp RENAME TO y; COMMIT;');
      const rerun = await runCli(['archive', '--config', file, '--json']);
      expect(rerun.code, rerun.stderr).toBe(1);
      const table = (JSON.parse(rerun.stdout) as { tables: { status: string; error?: { code: string; message: string } }[] }).tables[0]!;
      expect(table.status).toBe('failed');
      expect(table.error?.code).toBe('STORAGE_CONFLICT');
      expect(table.error?.message).toMatch(/its delete transaction \d+ committed, yet rows of it are in x\.t in their archived versions \(key and xmin\), and that name now holds another table \(oid \d+\) than the one the batch was read from \(oid \d+/);

      // Every committed object is still there, with its rows (the original x's, deleted from it),
      // and nothing was deleted from either table.
      const after = await inspectArchive(store);
      expect(after.objects.map((o) => o.key)).toEqual(before.objects.map((o) => o.key));
      expect(after.objects.flatMap((o) => o.lines.map((l) => (JSON.parse(l) as { origin: string }).origin))).toEqual(archivedIds.map(() => 'x'));
      expect(after.pendingMarkers).toEqual(before.pendingMarkers);
      expect(await countOf('x')).toBe(40);
      expect(await countOf('y')).toBe(16);
    } finally {
      await db.drop();
    }
  });
});
