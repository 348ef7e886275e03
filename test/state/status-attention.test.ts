/**
 * `auditlog status` exits 1 for a table that needs attention, through the real CLI on a real
 * database (local mode): a table that fails on every run before its progress starts (a foreign
 * pending marker refused by reconciliation) shows that failure, batches in flight with no live
 * run holding the table need attention, and the markers and checkpoint of a live run do not.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable } from '../helpers/events-table.js';
import { runCli, startCli } from '../helpers/run-cli.js';
import { checkpointKey, pendingPrefix, tablePrefix, tableStateKey } from '../../src/core/archive-layout.js';
import { fileLockPath } from '../../src/state/file-lock.js';
import { lockTag } from '../../src/db/advisory-lock.js';
import type { TableState } from '../../src/state/table-state.js';

const id = { database: 'app', schema: 'public', table: 'events' };
let db: TestDatabase;
let dir: string;
let archive: string;
let config: string;

beforeEach(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'status-attention-'));
  archive = join(dir, 'archive');
  config = join(dir, 'config.json');
  await writeFile(
    config,
    JSON.stringify({
      local: { path: archive },
      defaults: { retention_days: 10, batch_size: 10 },
      databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }],
    }),
  );
  await createEventsTable(db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
});

afterEach(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const inArchive = (key: string): string => join(archive, ...key.split('/'));

async function storedState(): Promise<TableState> {
  return JSON.parse(await readFile(inArchive(tableStateKey(id)), 'utf8')) as TableState;
}

/** A pending marker as another archiver, reading another database, leaves it under the same prefix. */
async function foreignMarker(): Promise<void> {
  const key = `${pendingPrefix(tablePrefix(id.database, id.schema, id.table))}2026-11-09-000000000000-0000000000000000.json`;
  await mkdir(join(inArchive(key), '..'), { recursive: true });
  const marker = { data_object: 'x', metadata_object: 'y', run_id: 'other', created_at: '2026-01-01T00:00:00Z', delete_txid: null, origin: { system_identifier: '1', database: 'otherdb' } };
  await writeFile(inArchive(key), JSON.stringify(marker));
}

/** A session holding the table's advisory lock as a live archiver's does, its lock tag naming `runId`. */
async function holdAdvisoryLock(runId: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url, application_name: 'auditlog' });
  await client.connect();
  await client.query(`${lockTag(runId, new Date())}SELECT pg_advisory_lock(x'6175646c'::int, 'public.events'::regclass::oid::int)`);
  return client;
}

async function archiveOnce(): Promise<void> {
  const r = await runCli(['archive', '--config', config, '--quiet']);
  expect(r.code, r.stderr).toBe(0);
}

describe('auditlog status', () => {
  it('exits 1 and shows the failure when every run fails before its progress starts (foreign pending marker)', async () => {
    await archiveOnce();
    await db.query(`INSERT INTO events (id, happened_at) SELECT g, now() - interval '20 days' FROM generate_series(100, 110) g`);
    await foreignMarker();
    for (let i = 0; i < 2; i++) {
      const failed = await runCli(['archive', '--config', config, '--quiet']);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('STORAGE_CONFLICT');
    }
    const state = await storedState();
    expect(state.last_run).toMatchObject({ status: 'failed', error: { code: 'STORAGE_CONFLICT' } });
    // The watermark of the earlier success is kept: only the last run changes.
    expect(state.watermark).not.toBeNull();

    const status = await runCli(['status', '--config', config]);
    expect(status.code, status.stdout).toBe(1);
    expect(status.stdout).toMatch(/last run: {3}failed at .* STORAGE_CONFLICT: pending marker/);
    expect(status.stdout).toContain('in flight:  1 batch(es)');
  });

  it('exits 1 for batches in flight when no live run holds the table, and 0 while a live run holds it', async () => {
    await archiveOnce();
    expect((await runCli(['status', '--config', config])).code).toBe(0);
    await foreignMarker();
    const stuck = await runCli(['status', '--config', config]);
    expect(stuck.stdout).toContain('lock:       free');
    expect(stuck.code, stuck.stdout).toBe(1);

    // A run in progress: its batches in flight are its business, not an alarm.
    const holder = await holdAdvisoryLock('run-live');
    try {
      const live = await runCli(['status', '--config', config]);
      expect(live.stdout).toContain('run run-live');
      expect(live.code, live.stdout).toBe(0);
    } finally {
      await holder.end();
    }
  });

  it('counts a live lock file as a live run too, and a stale one not', async () => {
    await archiveOnce();
    await foreignMarker();
    const file = fileLockPath(archive, id);
    await mkdir(join(file, '..'), { recursive: true });
    const now = new Date().toISOString();
    // This test process is alive on this host: the lock file is live.
    await writeFile(file, JSON.stringify({ pid: process.pid, hostname: hostname(), run_id: 'run-file', acquired_at: now, heartbeat_at: now }));
    const live = await runCli(['status', '--config', config]);
    expect(live.stdout).toContain('lock file:  held by pid');
    expect(live.code, live.stdout).toBe(0);

    await writeFile(file, JSON.stringify({ pid: 2 ** 22 + 1, hostname: hostname(), run_id: 'run-file', acquired_at: now, heartbeat_at: now }));
    const stale = await runCli(['status', '--config', config]);
    expect(stale.stdout).toContain('lock file:  stale');
    expect(stale.code, stale.stdout).toBe(1);
  });

  it("does not flag the live run's own checkpoint, but does flag an interrupted run's while another run holds the lock", async () => {
    await archiveOnce();
    const checkpoint = (runId: string) => ({
      format: 'auditlog-checkpoint', ...id, run_id: runId, started_at: new Date().toISOString(), updated_at: new Date().toISOString(),
      batches_committed: 1, rows_archived: 10, position: null,
    });
    await mkdir(join(inArchive(checkpointKey(id)), '..'), { recursive: true });
    await writeFile(inArchive(checkpointKey(id)), JSON.stringify(checkpoint('run-live')));
    const holder = await holdAdvisoryLock('run-live');
    try {
      const own = await runCli(['status', '--config', config]);
      // Found by probing: the live run's own checkpoint read "did not finish … (the next run resumes it)".
      expect(own.stdout).toContain("checkpoint: run run-live in progress (it holds the table's lock): 1 batches committed as of its last checkpoint save (");
      expect(own.code, own.stdout).toBe(0);
      await writeFile(inArchive(checkpointKey(id)), JSON.stringify(checkpoint('run-crashed')));
      const interrupted = await runCli(['status', '--config', config]);
      expect(interrupted.stdout).toContain('checkpoint: run run-crashed did not finish: 1 batches committed as of its last checkpoint save (');
      expect(interrupted.code, interrupted.stdout).toBe(1);
    } finally {
      await holder.end();
    }
    expect((await runCli(['status', '--config', config])).code).toBe(1);
  });

  it('keeps the last run of the table when a run is refused with LOCK_HELD: the table is being archived by the holder', async () => {
    await archiveOnce();
    const before = (await storedState()).last_run;
    const holder = await holdAdvisoryLock('run-live');
    try {
      const refused = await runCli(['archive', '--config', config, '--quiet']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('LOCK_HELD');
    } finally {
      await holder.end();
    }
    expect((await storedState()).last_run).toEqual(before);
    expect((await runCli(['status', '--config', config])).code).toBe(0);
  });
});

describe('auditlog watermarks reset', () => {
  it('refuses while a live run holds the table (that run would write its watermark back), naming the holder; works once it ends', async () => {
    await writeFile(
      config,
      JSON.stringify({
        local: { path: archive },
        defaults: { retention_days: 10, batch_size: 3, pause_between_batches_ms: 700 },
        checkpoints: { every_batches: 1 },
        databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }],
      }),
    );
    const run = startCli(['archive', '--config', config, '--quiet']);
    // Wait for the run's first watermark save: it is archiving now, ten batches to go.
    const deadline = Date.now() + 30_000;
    while ((await readFile(inArchive(tableStateKey(id)), 'utf8').catch(() => undefined)) === undefined) {
      if (Date.now() > deadline) throw new Error('the run saved no watermark');
      await new Promise((r) => setTimeout(r, 100));
    }
    const during = await runCli(['watermarks', 'reset', '--config', config, '--table', 'events']);
    const finished = await run.result;
    expect(finished.code, finished.stderr).toBe(0);
    expect(during.code).toBe(1);
    expect(during.stdout.trim().split('\n')).toHaveLength(1);
    expect(during.stdout).toMatch(/^app\/public\.events: could not reset the watermark: .*is being archived .*by pid \d+/);
    // Nothing was reset, so nothing was silently undone: the watermark is the run's.
    expect((await storedState()).watermark).not.toBeNull();

    const after = await runCli(['watermarks', 'reset', '--config', config, '--table', 'events']);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toContain('app/public.events: watermark reset');
    expect((await storedState()).watermark).toBeNull();
    // The reset's own lock is gone with it: status shows both locks free.
    const status = await runCli(['status', '--config', config]);
    expect(status.stdout).toContain('lock:       free');
    expect(status.stdout).toContain('lock file:  free');
    expect(status.code, status.stdout).toBe(0);
  });
});
