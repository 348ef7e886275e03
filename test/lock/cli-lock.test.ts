/**
 * Locking through the real executable on the local backend: two archivers at once, a lock file
 * left by another host, --force-unlock, and what status shows.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { serializeFileLockContent } from '../../src/core/file-lock-state.js';
import { LOCK_NAMESPACE } from '../../src/db/advisory-lock.js';
import { fileLockPath, readFileLock } from '../../src/state/file-lock.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';

let root: string;
let dir: string;
let archiveDir: string;
let db: TestDatabase;
let config: string;
const env = (): Record<string, string> => ({ CLI_TEST_DB_URL: db.url });
const lockFile = (): string => fileLockPath(archiveDir, { database: 'app', schema: 'public', table: 'events' });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cli-lock-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
beforeEach(async (t) => {
  db = await createTestDatabase();
  dir = join(root, t.task.id);
  archiveDir = join(dir, 'archive');
  await mkdir(dir, { recursive: true });
  config = join(dir, 'archiver.yaml');
  await writeFile(
    config,
    `local:
  path: ${archiveDir}
defaults:
  retention_days: 10
  batch_size: 20
  pause_between_batches_ms: 100
lock:
  heartbeat_interval_ms: 2000
  stale_after_ms: 600000
databases:
  - name: app
    url: \${CLI_TEST_DB_URL}
    tables:
      - name: events
        timestamp_column: happened_at
`,
  );
});
afterEach(async () => {
  await db.drop();
});

const writeLockFile = async (heartbeatAgoMs: number): Promise<void> => {
  const stamp = new Date(Date.now() - heartbeatAgoMs).toISOString();
  await mkdir(join(lockFile(), '..'), { recursive: true });
  await writeFile(lockFile(), serializeFileLockContent({ pid: 1, hostname: 'other-host', run_id: 'their-run', acquired_at: stamp, heartbeat_at: stamp }));
};

describe('archive locking through the CLI', () => {
  it('two archivers at once on one table: exactly one archives, the other is refused naming it, no row twice', async () => {
    await createEventsTable(db, { rows: 400, stepMinutes: 1, endDaysAgo: 20 });
    const [a, b] = await Promise.all([runCli(['archive', '--config', config], env()), runCli(['archive', '--config', config], env())]);
    const results = [a, b].sort((x, y) => (x.code ?? 9) - (y.code ?? 9));
    const [winner, loser] = results as [typeof a, typeof a];
    expect(winner.code, winner.stdout + winner.stderr + loser.stdout + loser.stderr).toBe(0);
    expect(winner.stdout).toMatch(/app\/public\.events\s+archived\s+400\s/);
    expect(loser.code).toBe(1);
    expect(loser.stdout).toContain('[LOCK_HELD]');
    expect(loser.stdout).toMatch(/is being archived (into this directory )?by pid \d+/);
    expect(await rowIds(db)).toEqual([]);
    const archive = await inspectArchive(new LocalObjectStore({ path: archiveDir }));
    const counts = archivedKeyCounts(archive);
    expect(counts.size).toBe(400);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(archive.pendingMarkers).toEqual([]);
    expect(await readFileLock(lockFile())).toBeUndefined();
  }, 120_000);

  it('refuses a live lock file of another host; --force-unlock removes it, says whose it was, and the run proceeds', async () => {
    await createEventsTable(db, { rows: 10, stepMinutes: 1, endDaysAgo: 20 });
    await writeLockFile(0);
    const refused = await runCli(['archive', '--config', config], env());
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('[LOCK_HELD]');
    expect(refused.stdout).toContain('pid 1 on other-host (run their-run)');
    expect(refused.stdout).toContain('--force-unlock');
    expect(await rowIds(db)).toHaveLength(10);

    const status = await runCli(['status', '--config', config], env());
    expect(status.stdout).toContain('lock file:  held by pid 1 on other-host (run their-run)');
    expect(status.stdout).toContain('lock:       free');

    const forced = await runCli(['archive', '--config', config, '--force-unlock'], env());
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain(`force-unlock: app/public.events: removed lock file ${lockFile()}, held by pid 1 on other-host (run their-run)`);
    expect(forced.stderr).toContain('force-unlock: app/public.events: advisory lock free');
    expect(await rowIds(db)).toEqual([]);
    expect(await readFileLock(lockFile())).toBeUndefined();
  }, 120_000);

  it('takes over a stale lock file by itself, with a warning; status calls it stale first', async () => {
    await createEventsTable(db, { rows: 10, stepMinutes: 1, endDaysAgo: 20 });
    await writeLockFile(3_600_000);
    const status = await runCli(['status', '--config', config], env());
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/lock file: {2}stale \(last heartbeat 1h 0m ago, longer than stale_after_ms \(600000 ms\)\), left by pid 1 on other-host/);
    const run = await runCli(['archive', '--config', config], env());
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('took over the stale lock file of app/public.events');
    expect(run.stderr).toContain('run their-run');
    expect(await rowIds(db)).toEqual([]);
  }, 120_000);

  it('--force-unlock never ends another session: it prints the holder and the SQL, and the table is refused', async () => {
    await createEventsTable(db, { rows: 10, stepMinutes: 1, endDaysAgo: 20 });
    const holder = new pg.Client({ connectionString: db.url, application_name: 'stuck-archiver' });
    await holder.connect();
    try {
      const oid = (await holder.query(`SELECT 'public.events'::regclass::oid::int AS oid`)).rows[0].oid as number;
      await holder.query('SELECT pg_advisory_lock($1::int, $2::int)', [LOCK_NAMESPACE, oid]);
      const pid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      const r = await runCli(['archive', '--config', config, '--force-unlock'], env());
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`advisory lock held by pid ${pid} (application_name "stuck-archiver"`);
      expect(r.stderr).toContain(`SELECT pg_terminate_backend(${pid});`);
      expect(r.stdout).toContain('[LOCK_HELD]');
      expect((await holder.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      expect(await rowIds(db)).toHaveLength(10);
      // The refused run took and gave back its lock file: nothing is left for the holder to trip over.
      expect(await readFileLock(lockFile())).toBeUndefined();
    } finally {
      await holder.end();
    }
  }, 120_000);

  it('a lock file that cannot be created or read is a STORAGE_IO naming the file, not a lost database connection; nothing moves (found by probing)', async () => {
    await createEventsTable(db, { rows: 10, stepMinutes: 1, endDaysAgo: 20 });
    // A directory where the lock file goes: the same raw EISDIR (with a syscall) as EACCES or EROFS would be.
    await mkdir(lockFile(), { recursive: true });
    for (const args of [['archive', '--config', config], ['watermarks', 'reset', '--config', config, '--table', 'events']]) {
      const r = await runCli(args, env());
      expect(r.code, args[0]).toBe(1);
      expect(r.stdout + r.stderr).toContain(`the lock file of app/public.events (${lockFile()}) could not be created or read: EISDIR`);
      expect(r.stdout + r.stderr).not.toContain('connection to the database');
      expect(r.stdout + r.stderr).not.toContain('DB_CONNECT');
    }
    const json = await runCli(['archive', '--config', config, '--json'], env());
    expect(JSON.parse(json.stdout).tables[0].error.code).toBe('STORAGE_IO');
    expect(await rowIds(db)).toHaveLength(10);
  });

  it('documents --force-unlock in the help', async () => {
    const help = await runCli(['archive', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--force-unlock');
    expect(help.stdout).toContain('Not with --dry-run');
  });

  it('--dry-run --force-unlock is refused (USAGE, exit 2, one line): the live holder\'s lock file stays, no row moves', async () => {
    // Found in review: a dry run removed a live holder's lock file.
    await createEventsTable(db, { rows: 10, stepMinutes: 1, endDaysAgo: 20 });
    await writeLockFile(0);
    for (const args of [['--dry-run', '--force-unlock'], ['--force-unlock', '--dry-run']]) {
      const r = await runCli(['archive', '--config', config, ...args], env());
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--force-unlock cannot be combined with --dry-run');
      expect(r.stderr).toContain('USAGE');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toContain('removed lock file');
      expect((await readFileLock(lockFile()))?.content).toMatchObject({ pid: 1, hostname: 'other-host', run_id: 'their-run' });
    }
    expect(await rowIds(db)).toHaveLength(10);
  });
});
