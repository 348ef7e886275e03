/**
 * `auditlog restore` through the real executable: help, usage errors exit 2, a dry run writes
 * nothing, a restore brings back exactly the archived rows (EXCEPT both ways), a rerun is a
 * no-op, and a corrupt object makes the run exit 1 naming its key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable } from '../helpers/events-table.js';
import { runCli } from '../helpers/run-cli.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';

let dir: string;
let db: TestDatabase;
let config: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'restore-cli-'));
  db = await createTestDatabase();
  config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 10\n  batch_size: 5\ndatabases:\n  - name: app\n    url: \${RESTORE_CLI_DB_URL}\n    tables:\n      - name: events\n        timestamp_column: happened_at\n`,
  );
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const env = (): Record<string, string> => ({ RESTORE_CLI_DB_URL: db.url });
const count = async (): Promise<number> => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n);

describe('auditlog restore (CLI)', () => {
  it('prints help with every flag, exit 0', async () => {
    const r = await runCli(['restore', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--config', '--database', '--table', '--from', '--to', '--target-table', '--conflict', '--on-corrupt', '--strict-schema', '--ignore-watermark', '--drop-indexes', '--batch-size', '--jobs', '--dry-run', '--json']) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('exits 2 with a one-line error on bad flags, before touching anything', async () => {
    for (const args of [['--conflict', 'merge'], ['--on-corrupt', 'ignore'], ['--from', '2024-02-30'], ['--batch-size', '0'], ['--from', '2024-03-01', '--to', '2024-02-01']]) {
      const r = await runCli(['restore', '--config', config, '--table', 'events', ...args], env());
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain('[USAGE]');
    }
    const unknown = await runCli(['restore', '--config', config, '--table', 'nope'], env());
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--table nope is not in the configuration');
  });

  it('dry-runs, restores exactly, reruns as a no-op, and exits 1 naming a corrupt object', async () => {
    await createEventsTable(db, { rows: 23, stepMinutes: 60, endDaysAgo: 20 });
    await db.query('CREATE TABLE snapshot AS SELECT * FROM events');
    const archived = await runCli(['archive', '--config', config], env());
    expect(archived.code).toBe(0);
    expect(await count()).toBe(0);

    const dry = await runCli(['restore', '--config', config, '--table', 'events', '--dry-run', '--json'], env());
    expect(dry.code).toBe(0);
    const drySummary = JSON.parse(dry.stdout);
    expect(drySummary.dryRun).toBe(true);
    expect(drySummary.rows).toEqual({ restored: 23, inserted: 23, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect(await count()).toBe(0);

    const real = await runCli(['restore', '--config', config, '--database', 'app', '--table', 'public.events', '--conflict', 'fail'], env());
    expect(real.stderr).not.toContain('error');
    expect(real.code).toBe(0);
    expect(real.stdout).toContain('23 loaded: 23 inserted, 0 conflicts');
    const diff = await db.query('(SELECT * FROM events EXCEPT SELECT * FROM snapshot) UNION ALL (SELECT * FROM snapshot EXCEPT SELECT * FROM events)');
    expect(diff.rows).toEqual([]);
    expect(await count()).toBe(23);

    const rerun = await runCli(['restore', '--config', config, '--table', 'events', '--json'], env());
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout).rows.restored).toBe(0);

    const store = new LocalObjectStore({ path: join(dir, 'archive') });
    const victim = (await inspectArchive(store)).objects[2]!.key;
    const path = join(dir, 'archive', victim);
    const bytes = await readFile(path);
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(path, bytes);
    const corrupt = await runCli(['restore', '--config', config, '--table', 'events', '--ignore-watermark', '--conflict', 'skip', '--on-corrupt', 'skip'], env());
    expect(corrupt.code).toBe(1);
    expect(corrupt.stdout).toContain(victim);
    expect(corrupt.stdout).toMatch(/conflicts \(kept the existing rows\)/);
    // The advice matches the options in effect: skip was given, so it does not offer skip (found by probing).
    expect(corrupt.stdout).toMatch(new RegExp(`corrupt: {4}archive object ${victim} is corrupt or incomplete: SHA-256 of the stored bytes is [0-9a-f]{64}, metadata says [0-9a-f]{64}; nothing of it was loaded \\(skipped: --on-corrupt skip; restore it from a backup copy\\)\n`));
    expect(corrupt.stdout + corrupt.stderr).not.toContain('pass --on-corrupt skip');
    const failed = await runCli(['restore', '--config', config, '--table', 'events', '--ignore-watermark', '--conflict', 'skip'], env());
    expect(failed.code).toBe(1);
    expect(failed.stdout + failed.stderr).toContain(`archive object ${victim} is corrupt or incomplete`);
    expect(failed.stdout + failed.stderr).toContain('(restore it from a backup copy, or pass --on-corrupt skip to restore the others)');
  });
});
