/**
 * Two configurations that share one archive prefix for two different databases (the same
 * `databases[].name`, another server): found in review, the second run's reconciliation took the
 * first run's in-flight batch for its own, removed its object, and the first run then deleted its
 * rows — lost. A marker records the database it was read from; another database never decides on it.
 * The same database under a new name (ALTER DATABASE … RENAME) is not another one: its cluster's
 * system identifier and its oid are the same.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createTestDatabase, getTestServerUrl } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import { ObjectTableStateStore } from '../../src/state/state-stores.js';
import { replaceDatabaseInUrl } from '../../src/db/scratch-database.js';
import { quoteIdent } from '../../src/db/quote-ident.js';

const id = { database: 'app', schema: 'public', table: 'events' };

const fx = useArchiveFixture();

describe('a pending marker of another database', () => {
  it('stops the other run with STORAGE_CONFLICT and touches nothing; the first run finishes with every row archived once', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const other = await createTestDatabase();
    try {
      await other.query('CREATE TABLE events (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, kind text, body jsonb, note text)');
      await other.query(`INSERT INTO events SELECT g + 100, now() - interval '30 days', 'other', NULL, NULL FROM generate_series(1, 5) g`);
      const configA = fx.configFor([eventsTable], { batch_size: 50, batches_in_flight: 1 });
      const configB = buildConfig({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 50 }, databases: [{ name: 'app', url: other.url, tables: [eventsTable] }] });

      let release!: () => void;
      const paused = new Promise<void>((r) => (release = r));
      let reached!: () => void;
      const atMetadata = new Promise<void>((r) => (reached = r));
      const runA = archiveWith(configA, fx.store, {
        onPhase: async (phase) => {
          if (phase === 'after-metadata') {
            reached();
            await paused;
          }
        },
      });
      await atMetadata;
      const inFlight = await inspectArchive(fx.store);
      expect(inFlight.pendingMarkers).toHaveLength(1);

      const runB = await archiveWith(configB, fx.store);
      expect(runB.tables[0]!.status).toBe('failed');
      expect(runB.tables[0]!.error?.code).toBe('STORAGE_CONFLICT');
      expect(runB.tables[0]!.error?.message).toContain('share one archive prefix');
      // The advice must not strand A's batch: finish it first, then separate the prefixes.
      expect(runB.tables[0]!.error?.message).toContain('Finish those batches first');
      expect(runB.tables[0]!.error?.message).toContain('changing either before strands the batches in flight');
      expect(await rowIds(other)).toHaveLength(5);
      // A's object, sidecar and marker are exactly as they were. The table's state now records B's
      // failure, so `status` shows the conflict; A writes its own result back when it finishes.
      expect((await inspectArchive(fx.store)).allKeys).toEqual([...inFlight.allKeys, '_auditlog/state/app/public.events.json'].sort());
      expect(await new ObjectTableStateStore(fx.store).get(id)).toMatchObject({ last_run: { status: 'failed', error: { code: 'STORAGE_CONFLICT' } } });

      release();
      const a = await runA;
      expect(a.tables[0]!.rowsArchived).toBe(10);
      expect(await rowIds(fx.db)).toEqual([]);
      const archive = await inspectArchive(fx.store);
      expect(archive.pendingMarkers).toEqual([]);
      expect(await new ObjectTableStateStore(fx.store).get(id)).toMatchObject({ last_run: { status: 'archived', rows_archived: 10 } });
      expect(archive.objects.flatMap((o) => o.meta.primary_keys.map((k) => k[0])).sort((x, y) => Number(x) - Number(y))).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    } finally {
      await other.drop();
    }
  });
});

/** A statement on the server's maintenance database (renames cannot run from the database renamed). */
async function onServer(sql: string, params: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: await getTestServerUrl() });
  await client.connect();
  try {
    await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/** Renames a database, ending its other sessions first (a rename needs none). */
async function renameDatabase(from: string, to: string): Promise<void> {
  await onServer('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [from]);
  await onServer(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
}

describe('the same database renamed while batches are in flight', () => {
  it('is recognised by its system identifier and oid: the rerun under the new name reconciles them, every row archived once', async () => {
    // Found by probing: every run after the rename failed with STORAGE_CONFLICT "two configurations
    // share one archive prefix", and following that advice stranded the batches in flight.
    const dir = await mkdtemp(join(tmpdir(), 'renamed-db-'));
    const original = fx.db.name;
    const renamed = `${original}_renamed`;
    let isRenamed = false;
    try {
      await createEventsTable(fx.db, { rows: 50, stepMinutes: 30, endDaysAgo: 11 });
      const expected = await expectRowsOf(fx.db, { table: 'events' });
      const configFile = async (url: string): Promise<string> => {
        const file = join(dir, 'archiver.json');
        await writeFile(file, JSON.stringify({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 8, batches_in_flight: 2 }, databases: [{ name: 'app', url, tables: [eventsTable] }] }));
        return file;
      };
      const crashed = await runCli(['archive', '--config', await configFile(fx.db.url), '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' });
      expect(crashed.signal).toBe('SIGKILL');
      const inFlight = (await inspectArchive(fx.store)).pendingMarkers;
      expect(inFlight.length).toBeGreaterThan(0);

      await renameDatabase(original, renamed);
      isRenamed = true;
      const rerun = await runCli(['archive', '--config', await configFile(replaceDatabaseInUrl(fx.db.url, renamed)), '--json']);
      expect(rerun.code, rerun.stderr).toBe(0);
      const table = (JSON.parse(rerun.stdout) as { tables: { status: string; reconciled?: { committed: number } }[] }).tables[0]!;
      expect(table.status).toBe('archived');
      expect(table.reconciled?.committed).toBeGreaterThan(0);

      await renameDatabase(renamed, original);
      isRenamed = false;
      const report = await checkArchiveInvariant({ db: fx.db, table: { table: 'events' }, source: { s3: fx.s3cfg }, expected });
      expect(report.problems).toEqual([]);
      expect(report.pendingMarkers).toBe(0);
      expect(report.rowsArchived).toBe(50);
      expect(report.rowsInTable).toBe(0);
    } finally {
      if (isRenamed) await renameDatabase(renamed, original);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
