/**
 * SIGTERM/SIGINT/SIGHUP to the real one-shot CLI (a CronJob pod being stopped, a Ctrl-C, the SSH
 * session that started it logging out): the run stops
 * cleanly instead of dying. No new batch or table starts, the batches in flight settle, the
 * summary says "stopped" (exit 1: the work did not finish), the audit trail records a failure,
 * the locks are released, no pending marker is left, and a rerun archives every row exactly once.
 * A second signal ends the process at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable } from '../helpers/events-table.js';
import { runCli, startCli, type CliResult } from '../helpers/run-cli.js';
import { checkArchiveInvariant, expectRowsOf, snapshotRows } from '../helpers/invariant-checker.js';
import { fileLockPath } from '../../src/state/file-lock.js';

let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stop-signals-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ROWS = 200;

/** Two tables, small batches one at a time with a pause: a run takes many seconds, so a signal lands mid-run. */
async function setUp(name: string, pauseMs: number): Promise<{ file: string; archivePath: string }> {
  db = await createTestDatabase();
  await createEventsTable(db, { rows: ROWS, stepMinutes: 30, endDaysAgo: 11 });
  await createEventsTable(db, { table: 'second', rows: 20, stepMinutes: 30, endDaysAgo: 11 });
  const archivePath = join(dir, name);
  const file = join(dir, `${name}.json`);
  const config = {
    local: { path: archivePath },
    defaults: { retention_days: 10, batch_size: 8, pause_between_batches_ms: pauseMs },
    databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }, { name: 'second', timestamp_column: 'happened_at' }] }],
  };
  await writeFile(file, JSON.stringify(config));
  return { file, archivePath };
}

async function countRows(table: string): Promise<number> {
  return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
}

/** Waits until the table has lost rows (at least one batch committed): the run is well under way. */
async function untilRowsBelow(table: string, n: number, deadlineMs = 60_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while ((await countRows(table)) >= n) {
    if (Date.now() > until) throw new Error(`${table} still has ${n} rows or more`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Summary {
  failed: number;
  stopped?: { code: string; message: string };
  tables: { table: string; status: string; stopped?: boolean; rowsArchived: number; error?: { code: string; message: string } }[];
}

function parseSummary(result: CliResult): Summary {
  expect(result.stdout.trim(), result.stderr).not.toBe('');
  return JSON.parse(result.stdout) as Summary;
}


/** A stop, not a crash: exit 1 of its own, no stack trace, the stop said once. */
function expectStoppedCleanly(stopped: { signal: NodeJS.Signals | null; code: number | null; stderr: string }): void {
  expect(stopped.signal, stopped.stderr).toBeNull();
  expect(stopped.code, stopped.stderr).toBe(1);
  expect(stopped.stderr).not.toMatch(/Unhandled|at .*main\.js/);
  expect(stopped.stderr.match(/stop requested/g)).toHaveLength(1);
}
describe('archive on SIGTERM/SIGINT/SIGHUP', () => {
  // SIGHUP (an SSH logout, an operator expecting a reload) killed the run on the spot: exit 129,
  // no summary, lock file left. It stops cleanly like the others.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`${signal} mid-run: in-flight batch settles, summary says stopped, exit 1, lock released, no marker left, rerun archives every row once`, async () => {
      const { file, archivePath } = await setUp(`archive-${signal}`, 400);
      try {
        const expected = await expectRowsOf(db, { table: 'events' });
        const { child, result } = startCli(['archive', '--config', file, '--json']);
        await untilRowsBelow('events', ROWS);
        child.kill(signal);
        const stopped = await result;
        expectStoppedCleanly(stopped);
        const summary = parseSummary(stopped);
        expect(summary.stopped?.code).toBe('STOPPED');
        expect(summary.stopped?.message).toContain(`stopped by ${signal}`);
        expect(summary.failed).toBe(2);
        const [events, second] = summary.tables;
        expect(events).toMatchObject({ table: 'events', status: 'failed', stopped: true, error: { code: 'STOPPED' } });
        expect(events!.rowsArchived).toBeGreaterThan(0);
        expect(events!.rowsArchived).toBeLessThan(ROWS);
        // The second table never started: reported, not silently left out.
        expect(second).toMatchObject({ table: 'second', status: 'failed', stopped: true, rowsArchived: 0, error: { code: 'STOPPED' } });
        expect(await countRows('second')).toBe(20);
        expect(await countRows('events')).toBe(ROWS - events!.rowsArchived);

        // Locks released, nothing in flight: the invariant holds as is, no marker to reconcile.
        expect(existsSync(fileLockPath(archivePath, { database: 'app', schema: 'public', table: 'events' }))).toBe(false);
        const mid = await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local: { path: archivePath } }, expected });
        expect(mid.problems).toEqual([]);
        expect(mid.pendingMarkers).toBe(0);
        expect(mid.rowsArchived).toBe(events!.rowsArchived);

        // The audit trail has the failure of the run and of the table.
        const audit = await runCli(['audit', 'list', '--config', file, '--json']);
        expect(audit.code, audit.stderr).toBe(0);
        const { records } = JSON.parse(audit.stdout) as { records: { event: string; table: string | null; error: { code: string } | null }[] };
        expect(records.filter((r) => r.event === 'ARCHIVE_FAILURE' && r.table === 'events' && r.error?.code === 'STOPPED')).toHaveLength(1);
        expect(records.filter((r) => r.event === 'ARCHIVE_FAILURE' && r.table === null)).toHaveLength(1);

        // A rerun starts at once (no LOCK_HELD) and finishes the job: every row exactly once.
        await writeFile(file, (await readFile(file, 'utf8')).replace('"pause_between_batches_ms":400', '"pause_between_batches_ms":0'));
        // (The checker reads the whole archive and both tables have keys 1..n: events alone first.)
        const rerun = await runCli(['archive', '--config', file, '--json', '--table', 'events']);
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(rerun.stderr).not.toContain('LOCK_HELD');
        const after = await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local: { path: archivePath } }, expected });
        expect(after.problems).toEqual([]);
        expect(after.rowsArchived).toBe(ROWS);
        expect(after.rowsInTable).toBe(0);
        expect(after.pendingMarkers).toBe(0);
        const rest = await runCli(['archive', '--config', file, '--json']);
        expect(rest.code, rest.stderr).toBe(0);
        expect(await countRows('second')).toBe(0);
      } finally {
        await db.drop();
      }
    }, 120_000);
  }

  it('a second SIGTERM ends the process at once (the default action)', async () => {
    const { file } = await setUp('archive-twice', 2_000);
    try {
      const { child, result } = startCli(['archive', '--config', file, '--json']);
      await untilRowsBelow('events', ROWS);
      child.kill('SIGTERM');
      // The first stop waits for the 2 s pause; the second does not wait.
      await new Promise((r) => setTimeout(r, 300));
      expect(child.exitCode).toBeNull();
      expect(child.signalCode).toBeNull();
      child.kill('SIGTERM');
      const killed = await result;
      expect(killed.signal).toBe('SIGTERM');
      expect(killed.stderr).toContain('stop requested');
      expect(killed.stdout).toBe('');
    } finally {
      await db.drop();
    }
  }, 60_000);
});

describe('restore on SIGTERM/SIGHUP', () => {
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    it(`${signal}: stops between batches: the batches loaded stay (with their watermark), summary says stopped, exit 1, lock released; a rerun of the same command restores the rest`, async () => {
      const { file, archivePath } = await setUp(`restore-${signal}`, 0);
      try {
        const original = await snapshotRows(db, { table: 'events' });
        const archived = await runCli(['archive', '--config', file, '--table', 'events', '--json']);
        expect(archived.code, archived.stderr).toBe(0);
        expect(await countRows('events')).toBe(0);
        // Each restored row takes 20 ms: the restore of 200 rows, 8 per batch, lasts seconds.
        await db.query(`CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$`);
        await db.query(`CREATE TRIGGER slow BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION slow_insert()`);
        const args = ['restore', '--config', file, '--table', 'events', '--batch-size', '8', '--jobs', '1', '--json'];
        const { child, result } = startCli(args);
        const until = Date.now() + 60_000;
        while ((await countRows('events')) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        child.kill(signal);
        const stopped = await result;
        expectStoppedCleanly(stopped);
        expect(stopped.stdout.trim(), stopped.stderr).not.toBe('');
        const summary = JSON.parse(stopped.stdout) as { status: string; error?: { code: string; message: string }; rows: { restored: number } };
        expect(summary.status).toBe('failed');
        expect(summary.error?.code).toBe('STOPPED');
        expect(summary.error?.message).toContain(`stopped by ${signal}`);
        expect(summary.rows.restored).toBeGreaterThan(0);
        expect(summary.rows.restored).toBeLessThan(ROWS);
        // Whole batches only: what the summary counts is what the table holds.
        expect(await countRows('events')).toBe(summary.rows.restored);
        expect(existsSync(fileLockPath(archivePath, { database: 'app', schema: 'public', table: 'events' }))).toBe(false);

        const audit = await runCli(['audit', 'list', '--config', file, '--json']);
        const { records } = JSON.parse(audit.stdout) as { records: { event: string; error: { code: string } | null }[] };
        expect(records.filter((r) => r.event === 'RESTORE_FAILURE' && r.error?.code === 'STOPPED')).toHaveLength(1);

        // The same command again (--conflict fail): the lock is free, the watermark skips what was loaded.
        const rerun = await runCli(args);
        expect(rerun.code, rerun.stderr).toBe(0);
        const restored = await snapshotRows(db, { table: 'events' });
        expect(restored.size).toBe(ROWS);
        expect([...restored].filter(([k, v]) => original.get(k) !== v)).toEqual([]);
      } finally {
        await db.drop();
      }
    }, 120_000);
  }
});
