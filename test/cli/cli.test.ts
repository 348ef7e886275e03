/**
 * The CLI contract (DESIGN.md §3) through the real executable: help, exit codes 0/1/2, one-line
 * errors naming the problem and the fix, secrets never printed, and an end-to-end archive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { runCli } from '../helpers/run-cli.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';

let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cli-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, yaml: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, yaml);
  return file;
}

const validYaml = (archiveDir: string, table = 'events'): string => `
local:
  path: ${archiveDir}
defaults:
  retention_days: 10
  batch_size: 5
databases:
  - name: app
    url: \${CLI_TEST_DB_URL}
    tables:
      - name: ${table}
        timestamp_column: happened_at
`;

describe('auditlog CLI', () => {
  it('prints help for the program and each command, exit 0', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of ['archive', 'config', 'demo']) expect(top.stdout).toContain(cmd);
    const archive = await runCli(['archive', '--help']);
    expect(archive.code).toBe(0);
    for (const flag of ['--config', '--dry-run', '--database', '--table', '--verbose', '--quiet', '--json']) expect(archive.stdout).toContain(flag);
  });

  it('exits 2 on usage errors: no command, unknown command, missing --config', async () => {
    expect((await runCli([])).code).toBe(2);
    const unknown = await runCli(['archvie']);
    expect(unknown.code).toBe(2);
    // Without --help, commander's own error with its suggestion is kept (found in review).
    expect(unknown.stderr).toContain("unknown command 'archvie'");
    expect(unknown.stderr).toContain('(Did you mean archive?)');
    const missing = await runCli(['archive']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--config');
    // A command group without its subcommand prints the group's help, as a usage error; asked for, help exits 0.
    for (const group of ['holds', 'watermarks', 'audit', 'config']) {
      const r = await runCli([group]);
      expect(r.code, group).toBe(2);
      expect(r.stderr).toContain(`Usage: auditlog ${group}`);
    }
    expect((await runCli(['holds', '--help'])).code).toBe(0);
    expect((await runCli(['help', 'holds'])).code).toBe(0);
    // A misspelt command with --help printed the program's help and exited 0: a script's typo passed.
    // Wherever the help flag stands (found in review: before the misspelt word it still passed).
    for (const [argv, typo, help] of [
      [['archvie', '--help'], 'archvie', 'auditlog --help'],
      [['holds', 'lst', '--help'], 'lst', 'auditlog holds --help'],
      [['watermarks', 'rest', '-h'], 'rest', 'auditlog watermarks --help'],
      [['--help', 'nosuch'], 'nosuch', 'auditlog --help'],
      [['holds', '-h', 'lst'], 'lst', 'auditlog holds --help'],
    ] as const) {
      const r = await runCli([...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toBe(`error: unknown command '${typo}'\n(run \`${help}\` for the commands)\n`);
      expect(r.stdout).toBe('');
    }
    expect((await runCli(['watermarks', 'list', '--help'])).code).toBe(0);
  });

  it('exits 2 with one line naming the file when the config file is missing', async () => {
    const r = await runCli(['archive', '--config', join(dir, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('nope.yaml');
    expect(r.stderr).toContain('CONFIG_NOT_FOUND');
  });

  it('exits 2 naming the path, expectation and found value for an invalid config, touching nothing', async () => {
    await createEventsTable(db, { rows: 5, stepMinutes: 1, endDaysAgo: 20 });
    const file = await configFile('bad.yaml', validYaml(join(dir, 'bad-archive')).replace('timestamp_column: happened_at', 'timestamp_column: happened_at\n        retention_days: -3'));
    const r = await runCli(['archive', '--config', file], { CLI_TEST_DB_URL: db.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('databases[0].tables[0].retention_days');
    expect(r.stderr).toContain('-3');
    expect(await rowIds(db)).toHaveLength(5);
  });

  it('exits 2 naming an unset environment variable', async () => {
    const file = await configFile('env.yaml', validYaml(join(dir, 'env-archive')));
    const r = await runCli(['config', 'validate', '--config', file], { CLI_TEST_DB_URL: undefined });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CLI_TEST_DB_URL');
  });

  it('config validate: exit 2 naming daemon.schedule for an invalid or never-firing schedule', async () => {
    for (const [schedule, problem] of [['bogus cron', 'is not a valid cron expression'], ['0 0 30 2 *', 'never fires']]) {
      const file = await configFile('schedule.yaml', `${validYaml(join(dir, 'schedule-archive'))}daemon:\n  schedule: "${schedule}"\n`);
      const r = await runCli(['config', 'validate', '--config', file], { CLI_TEST_DB_URL: 'postgres://app@127.0.0.1:1/app' });
      expect(r.code).toBe(2);
      expect(r.stdout).not.toContain('config ok');
      expect(r.stderr).toContain(`daemon.schedule: "${schedule}" ${problem}`);
      expect(r.stderr).toContain('[CONFIG_INVALID]');
    }
  });

  it('audit list/verify --since: an impossible or loosely written day is a one-line USAGE error (exit 2), not a shifted day', async () => {
    const file = await configFile('since.yaml', validYaml(join(dir, 'since-archive')));
    const env = { CLI_TEST_DB_URL: db.url };
    for (const command of ['list', 'verify']) {
      for (const since of ['2026-02-30', '2026-1-1', '2026-13-01', '2026-01-31T12:00:00', 'yesterday']) {
        const r = await runCli(['audit', command, '-c', file, '--since', since], env);
        expect(r.code, `${command} ${since}: ${r.stderr}`).toBe(2);
        expect(r.stderr.trim().split('\n')).toEqual([
          `auditlog: --since expects a day as YYYY-MM-DD (UTC) or an ISO 8601 instant with Z or an offset (e.g. 2026-01-31T12:00:00Z), got "${since}" [USAGE]`,
        ]);
      }
    }
    // Usage errors above come first; with a valid --since, an archive directory that does not exist is refused.
    const nowhere = await runCli(['audit', 'list', '-c', file, '--since', '2026-02-28', '--json'], env);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain(`local.path ${join(dir, 'since-archive')} is not a directory: no audit trail to read`);
    await mkdir(join(dir, 'since-archive'));
    const day = await runCli(['audit', 'list', '-c', file, '--since', '2026-02-28', '--json'], env);
    expect(day.code, day.stderr).toBe(0);
    const instant = await runCli(['audit', 'list', '-c', file, '--since', '2026-02-28T23:30:00+01:00', '--json'], env);
    expect(instant.code, instant.stderr).toBe(0);
  });

  it('config validate: ok for a good file, masks secrets with --print, and checks connections on request', async () => {
    const file = await configFile('validate.yaml', validYaml(join(dir, 'validate-archive')));
    const ok = await runCli(['config', 'validate', '--config', file, '--print'], { CLI_TEST_DB_URL: 'postgres://app:hunter2-secret@127.0.0.1:1/app' });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('config ok');
    expect(ok.stdout).toContain('****');
    expect(ok.stdout + ok.stderr).not.toContain('hunter2-secret');
    const check = await runCli(['config', 'validate', '--config', file, '--check-connections'], { CLI_TEST_DB_URL: 'postgres://app:hunter2-secret@127.0.0.1:1/app' });
    expect(check.code).toBe(1);
    expect(check.stderr).toContain('cannot connect to database "app"');
    expect(check.stdout + check.stderr).not.toContain('hunter2-secret');
  });

  it('archives end to end with the local backend: dry run first, then for real; summary as text and JSON', async () => {
    await db.query('DROP TABLE IF EXISTS events');
    // Every two hours around the 10-day cutoff, the nearest an hour from it on either side: 15 rows
    // old, 15 not. (Rows at fixed times of day, as createEventsTable seeds them, put one on the
    // cutoff every two hours: a run a few seconds after an even UTC hour archived one row more than
    // the count taken just before.)
    await createEventsTable(db, { rows: 0, stepMinutes: 120, endDaysAgo: 9 });
    await db.query(
      `INSERT INTO events (id, happened_at, kind, body, note)
       SELECT g, now() - interval '10 days' + make_interval(mins => (g - 15) * 120 - 60), 'kind' || (g % 5), jsonb_build_object('g', g), 'note ' || g
         FROM generate_series(1, 30) g`,
    );
    const old = Number((await db.query(`SELECT count(*) AS n FROM events WHERE happened_at < now() - interval '10 days'`)).rows[0].n);
    expect(old).toBe(15);
    const file = await configFile('e2e.yaml', validYaml(join(dir, 'e2e-archive')));
    const env = { CLI_TEST_DB_URL: db.url };

    const dry = await runCli(['archive', '--config', file, '--dry-run'], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('dry run');
    expect(dry.stdout).toMatch(new RegExp(`app/public\\.events\\s+dry-run\\s+${old}\\s`));
    expect(await rowIds(db)).toHaveLength(30);

    const real = await runCli(['archive', '--config', file, '--json'], env);
    expect(real.code).toBe(0);
    const summary = JSON.parse(real.stdout) as { failed: number; tables: { rowsArchived: number; status: string }[] };
    expect(summary.failed).toBe(0);
    expect(summary.tables[0]).toMatchObject({ rowsArchived: old, status: 'archived' });
    // JSON log lines on stderr, each with the run id.
    const logLines = real.stderr.trim().split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    for (const l of logLines) expect(JSON.parse(l)).toHaveProperty('run_id');
    expect(await rowIds(db)).toHaveLength(30 - old);

    const again = await runCli(['archive', '--config', file], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/app\/public\.events\s+nothing-to-archive\s+0/);
  });

  it('exits 1 when a table fails, after archiving the others', async () => {
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 10, stepMinutes: 60, endDaysAgo: 20 });
    await db.query('CREATE TABLE IF NOT EXISTS nokey (happened_at timestamptz)');
    const file = await configFile('fail.yaml', validYaml(join(dir, 'fail-archive'), 'nokey') + '      - name: events\n        timestamp_column: happened_at\n');
    const r = await runCli(['archive', '--config', file], { CLI_TEST_DB_URL: db.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('NO_PRIMARY_KEY');
    expect(await rowIds(db)).toHaveLength(0);
  });

  it('exits 1 naming the endpoint when the S3 endpoint is unreachable, deleting nothing', async () => {
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 10, stepMinutes: 60, endDaysAgo: 20 });
    const file = await configFile(
      's3-down.yaml',
      validYaml('unused').replace(/local:\n  path: unused\n/, 's3:\n  bucket: audit-archive\n  endpoint: http://127.0.0.1:9\n  force_path_style: true\n  access_key_id: AKIAEXAMPLE\n  secret_access_key: s3cr3t-value-xyz\n  retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 20 }\n'),
    );
    const r = await runCli(['archive', '--config', file], { CLI_TEST_DB_URL: db.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('STORAGE_UNREACHABLE');
    expect(r.stderr).toContain('http://127.0.0.1:9');
    expect(r.stdout + r.stderr).not.toContain('s3cr3t-value-xyz');
    expect(await rowIds(db)).toHaveLength(10);
  });

  it('demo: embedded PostgreSQL, a seeded table, the old half archived to a local directory', async () => {
    const demoDir = join(dir, 'demo');
    const r = await runCli(['demo', '--rows', '2000', '--dir', demoDir], {}, 180_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/table public\.audit_log: 2000 rows before, 1000 after/);
    expect(r.stdout).toContain(join(demoDir, 'archive'));
    const archive = await inspectArchive(new LocalObjectStore({ path: join(demoDir, 'archive') }));
    expect(archive.pendingMarkers).toEqual([]);
    expect(archive.objects.reduce((n, o) => n + o.meta.record_count, 0)).toBe(1000);
    // A second demo starts over from a fresh table and archive; --json prints its summary as JSON.
    const again = await runCli(['demo', '--rows', '2000', '--dir', demoDir, '--json'], {}, 180_000);
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout) as { failed: number; archive: { path: string; dataObjects: string[] }; table: { rowsBefore: number; rowsAfter: number } };
    expect(summary).toMatchObject({ failed: 0, archive: { path: join(demoDir, 'archive') }, table: { rowsBefore: 2000, rowsAfter: 1000 } });
    expect(summary.archive.dataObjects).toHaveLength(archive.objects.length);
  });

  it('demo never deletes an archive it did not make, and names a --dir that is a file', async () => {
    // Found by probing: `demo --dir .` beside a configuration with local.path ./archive deleted the real archive.
    const foreign = join(dir, 'not-a-demo');
    await mkdir(join(foreign, 'archive', 'app', 'public.audit_log'), { recursive: true });
    await writeFile(join(foreign, 'archive', 'app', 'public.audit_log', 'kept.jsonl.gz'), 'real archive');
    const refused = await runCli(['demo', '--rows', '10', '--dir', foreign]);
    expect(refused.code).toBe(2);
    const archiveDir = join(foreign, 'archive');
    expect(refused.stderr).toBe(
      `auditlog: ${archiveDir} is not empty and is not an archive auditlog demo made (no _auditlog/demo.json in it): the demo starts from an empty archive and would delete it; choose another --dir (if it is an older version's demo archive, remove it: rm -r '${archiveDir}') [USAGE]\n`,
    );
    expect(await readFile(join(archiveDir, 'app', 'public.audit_log', 'kept.jsonl.gz'), 'utf8')).toBe('real archive');
    // Nor one a real configuration went on writing into after a demo (the previous test's): the marker alone is not enough.
    const reused = join(dir, 'demo');
    await mkdir(join(reused, 'archive', 'demo', 'public.other_table'), { recursive: true });
    await writeFile(join(reused, 'archive', 'demo', 'public.other_table', 'kept.jsonl.gz'), 'real archive');
    const mixed = await runCli(['demo', '--rows', '10', '--dir', reused]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain('is not an archive auditlog demo made (it holds more than the demo table)');
    expect(await readFile(join(reused, 'archive', 'demo', 'public.other_table', 'kept.jsonl.gz'), 'utf8')).toBe('real archive');
    // An `archive` that is a file is refused, not removed.
    const fileArchive = join(dir, 'file-archive');
    await mkdir(fileArchive, { recursive: true });
    await writeFile(join(fileArchive, 'archive'), 'not a directory');
    expect((await runCli(['demo', '--rows', '10', '--dir', fileArchive])).code).toBe(2);
    expect(await readFile(join(fileArchive, 'archive'), 'utf8')).toBe('not a directory');
    const file = join(dir, 'a-file');
    await writeFile(file, 'x');
    const notDir = await runCli(['demo', '--rows', '10', '--dir', file]);
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toMatch(/--dir .*a-file is a file, not a directory/);
  });
});

