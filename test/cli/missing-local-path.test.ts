/**
 * A `local.path` that does not exist (a typo) through the real executable: every command that
 * reads an existing archive refuses it as validate does (exit 2, one line naming local.path)
 * instead of reporting an empty, clean archive; no dry run, and no `config validate`, creates the
 * directory; `archive` still creates it on its first run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'missing-local-path-'));
  db = await createTestDatabase();
  await createEventsTable(db, { rows: 20, stepMinutes: 120, endDaysAgo: 11 });
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function configFor(name: string, path: string, extra: Record<string, unknown> = {}): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify({ ...extra, local: { path }, defaults: { retention_days: 10, batch_size: 7 }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] }));
  return file;
}

const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

describe('a local.path that does not exist', () => {
  it('is refused (exit 2, one line naming local.path) by every command that reads the archive, and none of them creates it', async () => {
    const typo = join(dir, 'archvie', 'audit');
    const file = await configFor('typo', typo);
    const commands: [string[], string][] = [
      [['audit', 'verify'], 'no audit trail to read'],
      [['audit', 'list'], 'no audit trail to read'],
      [['status'], 'no archive state to show'],
      [['watermarks', 'list'], 'no watermark to list'],
      [['watermarks', 'reset', '--all'], 'no watermark to reset'],
      [['validate'], 'nothing to validate'],
      [['restore', '--table', 'events', '--dry-run'], 'nothing to restore'],
      [['restore', '--table', 'events'], 'nothing to restore'],
      // Found by probing: cleanup said "0 file(s) deleted", exit 0.
      [['cleanup'], 'nothing to clean up'],
      [['cleanup', '--dry-run'], 'nothing to clean up'],
    ];
    for (const [args, consequence] of commands) {
      const r = await runCli([...args, '--config', file]);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([
        `auditlog: local.path ${typo} is not a directory: ${consequence}; check local.path in the config (an archive run creates the directory on its first run) [CONFIG_INVALID]`,
      ]);
      expect(await exists(join(dir, 'archvie')), `${args.join(' ')} created the directory`).toBe(false);
    }
    // A usage error is still named first, as validate does.
    for (const args of [['restore', '--table', 'nope'], ['status', '--table', 'nope'], ['validate', '--table', 'nope']]) {
      const r = await runCli([...args, '--config', file]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain('--table nope is not in the configuration');
    }
    const since = await runCli(['audit', 'verify', '--since', 'yesterday', '--config', file]);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since expects a day');
  });

  it('archive --dry-run, config validate --check-connections and health create nothing; archive creates the directory on its first run', async () => {
    const fresh = join(dir, 'fresh', 'archive');
    const file = await configFor('fresh', fresh);
    const dry = await runCli(['archive', '--config', file, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    const check = await runCli(['config', 'validate', '--config', file, '--check-connections']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain('ok: storage');
    // health is a probe: healthy (the directory can be created), but it created it, after which
    // the read-only commands no longer told a typo from an empty archive.
    const health = await runCli(['health', '--config', file]);
    expect(health.code, health.stdout + health.stderr).toBe(0);
    expect(health.stdout).toMatch(/^ok {3}storage /m);
    expect(await exists(join(dir, 'fresh'))).toBe(false);
    expect((await runCli(['status', '--config', file])).code).toBe(2);
    expect(await rowIds(db)).toHaveLength(20);

    const real = await runCli(['archive', '--config', file, '--quiet']);
    expect(real.code, real.stderr).toBe(0);
    expect(await readdir(fresh)).toContain('app');
    expect(await rowIds(db)).toEqual([]);
    // Now the archive exists: the same commands read it.
    for (const args of [['status'], ['audit', 'verify'], ['validate'], ['restore', '--table', 'events', '--dry-run']]) {
      const r = await runCli([...args, '--config', file]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
  });

  it('with the audit trail in the database, the refused restore is recorded there (it could not be when the trail was opened after the check)', async () => {
    const typo = join(dir, 'archvie-db', 'audit');
    const file = await configFor('typo-db', typo, { compliance: { audit: { backend: 'database', schema: 'public', table: 'typo_trail' } } });
    const r = await runCli(['restore', '--table', 'events', '--config', file]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `auditlog: local.path ${typo} is not a directory: nothing to restore; check local.path in the config (an archive run creates the directory on its first run) [CONFIG_INVALID]`,
    ]);
    expect(await exists(join(dir, 'archvie-db'))).toBe(false);
    const trail = await db.query<{ event: string; record: string }>('SELECT event, record FROM public.typo_trail ORDER BY id');
    expect(trail.rows.map((t) => t.event)).toEqual(['ERROR']);
    expect(JSON.parse(trail.rows[0]!.record)).toMatchObject({ event: 'ERROR', status: 'error', error: { code: 'CONFIG_INVALID' }, details: { command: 'restore' } });
    // An unknown --table is still the error named.
    const unknown = await runCli(['restore', '--table', 'nope', '--config', file]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--table nope is not in the configuration');
  });

  it('a dry run writes not even a probe file into an existing archive directory', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const file = await configFor('empty', empty);
    // A probe file created and removed leaves no entry, but it moves the directory's mtime.
    const beforeNs = (await stat(empty, { bigint: true })).mtimeNs;
    const dry = await runCli(['archive', '--config', file, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await readdir(empty)).toEqual([]);
    expect((await stat(empty, { bigint: true })).mtimeNs).toBe(beforeNs);
  });
});
