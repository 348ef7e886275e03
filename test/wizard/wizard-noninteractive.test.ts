import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';
import { createWizardTables } from './wizard-fixture.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'auditlog-wizard-'));
  await createWizardTables(db);
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('auditlog wizard --yes', () => {
  it('writes a config that validates and archives, with the URL from the environment as ${VAR}', async () => {
    const file = join(dir, 'wizard.yaml');
    const archive = join(dir, 'archive');
    const env = { WIZ_DB_URL: db.url };
    const result = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log,events_composite', '--local-path', archive, '--output', file], env);
    expect(result.stderr).toContain('config ok');
    expect(result.code).toBe(0);
    const yaml = await readFile(file, 'utf8');
    expect(yaml).toContain('url: ${WIZ_DB_URL}');
    expect(yaml).not.toContain(db.url);
    // Several timestamp columns: the indexed NOT NULL one is chosen.
    expect(result.stderr).toMatch(/public\.audit_log:[\s\S]*timestamp candidate: updated_at \(timestamptz, no index\)[\s\S]*timestamp column: created_at \(suggested\)/);
    // No index on the timestamp: warned, with the index to add (timestamp first, then the key, for keyset pagination).
    expect(result.stderr).toContain('warning: occurred_at has no index');
    expect(result.stderr).toContain('CREATE INDEX CONCURRENTLY "events_composite_occurred_at_archive_idx" ON "public"."events_composite" ("occurred_at", "tenant_id", "seq");');
    expect(result.stderr).toContain('key: primary key (tenant_id, seq)');
    expect(yaml).toMatch(/primary_key:\s*\n\s*- tenant_id\n\s*- seq/);
    // The age distribution and the retention it suggests: 77.5% of audit_log is older than 90 days, 55% older than 180.
    expect(result.stderr).toContain('> 90 days: 310 (78%), > 180 days: 220 (55%)');
    expect(result.stderr).toContain('suggested retention: 90 days');
    expect(yaml).toContain('retention_days: 90');

    const validate = await runCli(['config', 'validate', '-c', file], env);
    expect(validate.stderr).toBe('');
    expect(validate.code).toBe(0);

    const run = await runCli(['archive', '-c', file], env);
    expect(run.code, run.stderr).toBe(0);
    const left = await db.query<{ audit: string; events: string }>(`SELECT (SELECT count(*) FROM audit_log)::text AS audit, (SELECT count(*) FROM events_composite)::text AS events`);
    expect(left.rows[0]).toEqual({ audit: '90', events: '90' });
    const objects = (await listFiles(archive)).filter((f) => f.endsWith('.jsonl.gz'));
    expect(objects.length).toBeGreaterThan(0);
  });

  it('keeps the suggested retention inside compliance bounds and writes them to compliance: (the config loads)', async () => {
    // The data alone suggests 90 days for audit_log (test above); policy says at least 180.
    const file = join(dir, 'bounded.yaml');
    const env = { WIZ_DB_URL: db.url };
    const result = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'a2'), '--min-retention-days', '180', '--max-retention-days', '400', '--output', file], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('suggested retention: 180 days (90 from the age of the rows, moved inside the compliance bounds)');
    const yaml = await readFile(file, 'utf8');
    expect(yaml).toContain('retention_days: 180');
    expect(yaml).toMatch(/compliance:\n\s+min_retention_days: 180\n\s+max_retention_days: 400/);
    expect((await runCli(['config', 'validate', '-c', file], env)).code).toBe(0);
    // An explicit retention outside the bounds is refused by the same schema, and nothing is written.
    const out = join(dir, 'refused.yaml');
    const refused = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'a3'), '--min-retention-days', '180', '--retention-days', '30', '--output', out], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('180');
    await expect(readFile(out, 'utf8')).rejects.toThrow();
    const swapped = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--min-retention-days', '400', '--max-retention-days', '180'], env);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toContain('swap them');
  });

  it('refuses --retention-days over 100000 (the schema\'s bound) before touching the database, writing nothing', async () => {
    const out = join(dir, 'huge-retention.yaml');
    const r = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'a-huge'), '--retention-days', '2500000', '--output', out], { WIZ_DB_URL: db.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('auditlog: --retention-days expects a whole number of days from 1 to 100000, got "2500000" [USAGE]\n');
    await expect(readFile(out, 'utf8')).rejects.toThrow();
  });

  it('writes S3 settings and credentials from the environment as placeholders, never their values', async () => {
    const env = { DATABASE_URL: db.url, AWS_ACCESS_KEY_ID: 'AKIAWIZARDTEST', AWS_SECRET_ACCESS_KEY: 'wizard-secret-value-123' };
    const result = await runCli(['wizard', '--yes', '--database-url', db.url, '--tables', 'audit_log', '--bucket', 'audit-archive', '--prefix', 'prod', '--region', 'eu-west-1', '--endpoint', 'http://127.0.0.1:9000', '--sse', 'aws:kms', '--sse-kms-key-id', 'alias/audit', '--storage-class', 'GLACIER_IR', '--retention-days', '365'], env);
    expect(result.code, result.stderr).toBe(0);
    const yaml = result.stdout;
    // The URL given as a flag is the value of DATABASE_URL: written as the placeholder.
    expect(yaml).toContain('url: ${DATABASE_URL}');
    expect(yaml).toContain('access_key_id: ${AWS_ACCESS_KEY_ID}');
    expect(yaml).toContain('secret_access_key: ${AWS_SECRET_ACCESS_KEY}');
    expect(yaml).not.toContain('wizard-secret-value-123');
    expect(yaml).not.toContain(db.url);
    expect(yaml).toMatch(/bucket: audit-archive\n\s+prefix: prod\/\n\s+region: eu-west-1\n\s+endpoint: http:\/\/127\.0\.0\.1:9000\n\s+force_path_style: true/);
    expect(yaml).toContain('storage_class: GLACIER_IR');
    expect(yaml).toContain('sse: aws:kms');
    expect(yaml).toContain('retention_days: 365');
    const file = join(dir, 's3.yaml');
    await import('node:fs/promises').then((fs) => fs.writeFile(file, yaml));
    const validate = await runCli(['config', 'validate', '-c', file, '--print'], env);
    expect(validate.code, validate.stderr).toBe(0);
    expect(validate.stdout).toContain('"storage_class": "GLACIER_IR"');
  });

  it('refuses a table without a primary key, explaining why and how to fix it (exit 2, nothing written)', async () => {
    const file = join(dir, 'nopk.yaml');
    const result = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'no_pk', '--local-path', join(dir, 'a'), '--output', file], { WIZ_DB_URL: db.url });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/public\.no_pk has no primary key \(nor a unique index over NOT NULL columns\): it cannot be archived until it has one.*ALTER TABLE "public"\."no_pk" ADD PRIMARY KEY/);
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('reports what `archive` would refuse (a DELETE trigger, a rule ON DELETE) in its words, and writes nothing', async () => {
    const env = { WIZ_DB_URL: db.url };
    // The words `archive` itself uses for these tables, from a run of a hand-written config.
    const handWritten = join(dir, 'hand-written.yaml');
    await writeFile(
      handWritten,
      `local:\n  path: ${join(dir, 'hand-archive')}\ndatabases:\n  - name: ${db.name}\n    url: \${WIZ_DB_URL}\n    tables:\n      - name: trig_log\n        timestamp_column: created_at\n      - name: soft_log\n        timestamp_column: created_at\n`,
    );
    const archive = await runCli(['archive', '-c', handWritten, '--dry-run', '--json'], env);
    expect(archive.code, archive.stderr).toBe(1);
    const summary = JSON.parse(archive.stdout) as { tables: { table: string; error?: { code: string; message: string } }[] };
    const archiveSays = new Map(summary.tables.map((t) => [t.table, t.error]));
    expect(archiveSays.get('trig_log')?.code).toBe('TABLE_NOT_SUPPORTED');
    expect(archiveSays.get('soft_log')?.code).toBe('TABLE_NOT_SUPPORTED');

    const file = join(dir, 'refused-by-archive.yaml');
    const result = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log,trig_log,soft_log', '--local-path', join(dir, 'r'), '--output', file], env);
    expect(result.code, result.stderr).toBe(2);
    // Each refused table: the reason in archive's exact words, under the table's heading.
    expect(result.stderr).toContain(`\npublic.trig_log:\n  refused: ${archiveSays.get('trig_log')!.message}\n`);
    expect(result.stderr).toContain(`\npublic.soft_log:\n  refused: ${archiveSays.get('soft_log')!.message}\n`);
    expect(result.stderr).toMatch(/refused: public\.trig_log \(database "[^"]+"\) has DELETE trigger\(s\) "trig_log_after_delete" on public\.trig_log \(AFTER ROW, public\.trig_log_note_delete\(\)\).*set allow_delete_triggers: true/);
    expect(result.stderr).toMatch(/refused: public\.soft_log \(database "[^"]+"\) has rule\(s\) ON DELETE public\.soft_log\.soft_log_soft_delete/);
    // The ordinary table is inspected as usual and not refused.
    expect(result.stderr).toMatch(/\npublic\.audit_log:\n  key: primary key \(id\)\n/);
    expect(result.stderr).not.toMatch(/refused: public\.audit_log/);
    // Neither left out silently nor written to fail the first run: one USAGE line naming both, nothing written.
    expect(result.stderr.split('\n').filter((l) => l.startsWith('auditlog:'))).toEqual([
      'auditlog: `auditlog archive` would refuse public.trig_log, public.soft_log (reasons above): fix them, or leave them out of --tables; nothing written [USAGE]',
    ]);
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);

    // Each alone is refused too; the ordinary table alone is written, with nothing refused.
    for (const table of ['trig_log', 'soft_log']) {
      const alone = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', table, '--local-path', join(dir, 'r')], env);
      expect(alone.code, alone.stderr).toBe(2);
      expect(alone.stdout).toBe('');
      expect(alone.stderr).toContain(`refused: ${archiveSays.get(table)!.message}`);
    }
    const ordinary = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'r')], env);
    expect(ordinary.code, ordinary.stderr).toBe(0);
    expect(ordinary.stderr).not.toContain('refused:');
    expect(ordinary.stdout).toMatch(/- name: audit_log\n\s+timestamp_column: created_at\n\s+primary_key: id/);
    expect(ordinary.stdout).not.toMatch(/trig_log|soft_log/);
  });

  it('uses a unique index over NOT NULL columns when there is no primary key, and quotes odd names', async () => {
    const result = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'Mixed Case', '--local-path', join(dir, 'b')], { WIZ_DB_URL: db.url });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('key: unique index (code)');
    expect(result.stderr).toContain('timestamp column: logged_on (suggested)');
    expect(result.stderr).toContain('CREATE INDEX CONCURRENTLY "Mixed Case_logged_on_archive_idx" ON "public"."Mixed Case" ("logged_on", "code");');
    expect(result.stdout).toContain('name: Mixed Case');
  });

  it('names the flag that is missing, the table or column that does not exist, and refuses to overwrite', async () => {
    const env = { WIZ_DB_URL: db.url };
    const base = ['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL'];
    const noTables = await runCli([...base, '--local-path', dir], env);
    expect(noTables.code).toBe(2);
    expect(noTables.stderr).toMatch(/which tables\? pass --tables/);
    const noBucket = await runCli([...base, '--tables', 'audit_log'], env);
    expect(noBucket.code).toBe(2);
    expect(noBucket.stderr).toMatch(/no bucket: pass --bucket/);
    const badTable = await runCli([...base, '--tables', 'nope', '--local-path', dir], env);
    expect(badTable.stderr).toMatch(/--tables nope: no such table/);
    expect(badTable.code).toBe(2);
    const badColumn = await runCli([...base, '--tables', 'audit_log', '--timestamp-column', 'actor', '--local-path', dir], env);
    expect(badColumn.stderr).toMatch(/--timestamp-column actor: public\.audit_log has no timestamptz\/timestamp\/date column of that name \(candidates: created_at, updated_at, archived_on\)/);
    expect(badColumn.code).toBe(2);
    // A pair naming a table not chosen (a typo) was dropped silently and the suggested column used (found by probing).
    const badPair = await runCli([...base, '--tables', 'audit_log', '--timestamp-column', 'audit_lgo=updated_at', '--local-path', dir], env);
    expect(badPair.stderr).toMatch(/--timestamp-column audit_lgo=updated_at: audit_lgo is not one of the tables chosen \(public\.audit_log\); correct the name, or add the table to --tables/);
    expect(badPair.code).toBe(2);
    const halfPair = await runCli([...base, '--tables', 'audit_log', '--timestamp-column', 'created_at,audit_log=updated_at', '--local-path', dir], env);
    expect(halfPair.stderr).toMatch(/--timestamp-column "created_at": expected TABLE=COLUMN for each table, or one COLUMN for all/);
    expect(halfPair.code).toBe(2);
    const twice = await runCli([...base, '--tables', 'audit_log', '--timestamp-column', 'audit_log=created_at,public.audit_log=updated_at', '--local-path', dir], env);
    expect(twice.stderr).toMatch(/--timestamp-column names public\.audit_log twice: give one column per table/);
    expect(twice.code).toBe(2);
    const noTty = await runCli(['wizard', '--database-url-env', 'WIZ_DB_URL'], env);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/stdin is not a terminal: pass every answer as a flag .* with --yes/);
    const existing = join(dir, 'exists.yaml');
    await import('node:fs/promises').then((fs) => fs.writeFile(existing, 'keep me'));
    const overwrite = await runCli([...base, '--tables', 'audit_log', '--local-path', dir, '--output', existing], env);
    expect(overwrite.code).toBe(2);
    expect(overwrite.stderr).toMatch(/already exists: choose another --output, or pass --force/);
    expect(await readFile(existing, 'utf8')).toBe('keep me');
  });

  it('--force over an existing 0644 file leaves it 0600 (it may hold a password), replaced whole, no temp file left', async () => {
    const sub = join(dir, 'force-mode');
    await mkdir(sub);
    const file = join(sub, 'w.yaml');
    await writeFile(file, 'old: content\n');
    await chmod(file, 0o644);
    const result = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'forced'), '--output', file, '--force'], { WIZ_DB_URL: db.url });
    expect(result.code, result.stderr).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const yaml = await readFile(file, 'utf8');
    expect(yaml).toContain('url: ${WIZ_DB_URL}');
    expect(yaml).not.toContain('old: content');
    expect(await readdir(sub)).toEqual(['w.yaml']);
    // A new file is 0600 too.
    const fresh = join(sub, 'fresh.yaml');
    const created = await runCli(['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'forced'), '--output', fresh], { WIZ_DB_URL: db.url });
    expect(created.code, created.stderr).toBe(0);
    expect((await stat(fresh)).mode & 0o777).toBe(0o600);
  });

  it('a database URL the driver would misread is refused before connecting, in the words of config validate, never quoted', async () => {
    // Found by probing: "host=… dbname=…" failed as "getaddrinfo ENOTFOUND base", a raw "#" in the
    // password as a host cut out of it, and a mysql:// URL was inspected before being refused.
    const base = ['wizard', '--yes', '--tables', 'audit_log', '--local-path', join(dir, 'bad-url')];
    const cases: [string[], Record<string, string>, string][] = [
      [['--database-url', 'postgresql://nobody:pa@ss#word@127.0.0.1:1/none'], {}, 'the database URL: the URL has a "#" fragment'],
      [['--database-url', 'host=127.0.0.1 password=pa55word dbname=none'], {}, 'the database URL: expected a postgres:// connection URL, found no scheme'],
      [['--database-url-env', 'WIZ_BAD_URL'], { WIZ_BAD_URL: `mysql${db.url.slice(db.url.indexOf(':'))}` }, 'the database URL in WIZ_BAD_URL: expected a postgres:// or postgresql:// URL, found the scheme "mysql"'],
    ];
    for (const [args, env, message] of cases) {
      const result = await runCli([...base, ...args], env);
      expect(result.code, result.stderr).toBe(2);
      const lines = result.stderr.split('\n').filter((l) => l.startsWith('auditlog:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(message);
      expect(lines[0]).toMatch(/write postgres:\/\/user:password@host:port\/dbname .* \[USAGE\]$/);
      expect(result.stderr).not.toMatch(/ss#word|pa55word|tables \(largest first\)/);
    }
  });

  it('an --output that cannot be written is one USAGE line before the database is touched (it was INTERNAL with a stack trace, after the inspection)', async () => {
    // Nothing listens on port 1: an error about the database would mean the output was checked too late.
    const base = ['wizard', '--yes', '--database-url', 'postgresql://nobody@127.0.0.1:1/none', '--tables', 'audit_log', '--local-path', join(dir, 'unwritable')];
    const missing = join(dir, 'no-such-dir', 'sub', 'w.yaml');
    const noDir = await runCli([...base, '--output', missing], {});
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toMatch(new RegExp(`^auditlog: cannot write the configuration to ${missing} \\(its directory ${join(dir, 'no-such-dir', 'sub')}: ENOENT[^\\n]*\\); choose a writable --output path \\[USAGE\\]\\n$`));
    const isDir = await runCli([...base, '--output', dir, '--force'], {});
    expect(isDir.code).toBe(2);
    expect(isDir.stderr).toBe(`auditlog: cannot write the configuration to ${dir} (it is a directory); choose a writable --output path [USAGE]\n`);
  });

  it('a configuration the flags make invalid is one USAGE line naming the flag, never a file called "-"', async () => {
    const env = { WIZ_DB_URL: db.url };
    const base = ['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL'];
    const cases: [string[], string][] = [
      [['--tables', 'audit_log,audit_log', '--local-path', dir], 'auditlog: the configuration the wizard built (from --tables): databases[0].tables[1].name: table public.audit_log is listed twice; fix --tables and run the wizard again [USAGE]'],
      [['--tables', 'audit_log', '--bucket', 'ab'], 'auditlog: the configuration the wizard built (from --bucket): s3.bucket: expected a string of at least 3 characters, found "ab"; fix --bucket and run the wizard again [USAGE]'],
      [['--tables', 'audit_log', '--bucket', 'abc', '--endpoint', 'minio:9000'], 'auditlog: the configuration the wizard built (from --endpoint): s3.endpoint: expected an http:// or https:// URL, found "minio:9000"; fix --endpoint and run the wizard again [USAGE]'],
    ];
    for (const [flags, line] of cases) {
      const out = join(dir, 'invalid.yaml');
      const result = await runCli([...base, ...flags, '--output', out], env);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.split('\n').filter((l) => l.startsWith('auditlog:'))).toEqual([line]);
      expect(result.stderr).not.toContain(' -: ');
      await expect(readFile(out, 'utf8')).rejects.toThrow(/ENOENT/);
    }
  });

  it('--sse-kms-key-id without --sse aws:kms is refused in one USAGE line (it used to be dropped silently), nothing written', async () => {
    const env = { WIZ_DB_URL: db.url };
    const base = ['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log'];
    const cases: [string[], string][] = [
      [['--bucket', 'audit-archive'], 'without --sse'],
      [['--bucket', 'audit-archive', '--sse', 'AES256'], 'with --sse AES256'],
      [['--bucket', 'audit-archive', '--sse', 'none'], 'with --sse none'],
    ];
    for (const [flags, got] of cases) {
      const out = join(dir, 'kms.yaml');
      const result = await runCli([...base, ...flags, '--sse-kms-key-id', 'alias/audit', '--output', out], env);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.trim().split('\n')).toEqual([`auditlog: --sse-kms-key-id only applies with --sse aws:kms, got it ${got}: add --sse aws:kms (S3), or leave out --sse-kms-key-id [USAGE]`]);
      await expect(readFile(out, 'utf8')).rejects.toThrow(/ENOENT/);
    }
    const kms = await runCli([...base, '--bucket', 'audit-archive', '--sse', 'aws:kms', '--sse-kms-key-id', 'alias/audit'], env);
    expect(kms.code, kms.stderr).toBe(0);
    expect(kms.stdout).toMatch(/sse: aws:kms\n\s+sse_kms_key_id: alias\/audit/);
  });

  it('--local-path with S3 flags is refused in one USAGE line naming them (the S3 flags used to be dropped silently), nothing written', async () => {
    const env = { WIZ_DB_URL: db.url };
    const base = ['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--local-path', join(dir, 'both')];
    const cases: [string[], string][] = [
      [['--bucket', 'xyz', '--region', 'eu-west-1'], '--bucket, --region'],
      [['--sse-kms-key-id', 'alias/audit'], '--sse-kms-key-id'],
      [['--force-path-style'], '--force-path-style'],
      [['--storage-class', 'STANDARD_IA', '--endpoint', 'http://127.0.0.1:9000'], '--endpoint, --storage-class'],
    ];
    for (const [flags, named] of cases) {
      const out = join(dir, 'both.yaml');
      const result = await runCli([...base, ...flags, '--output', out], env);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.trim().split('\n')).toEqual([`auditlog: --local-path cannot be combined with ${named} (S3 settings): pass --local-path alone to archive to a directory, or leave it out to archive to S3 [USAGE]`]);
      await expect(readFile(out, 'utf8')).rejects.toThrow(/ENOENT/);
    }
  });

  it('--check-connections: storage that does not answer fails the wizard (exit 1) and nothing is written', async () => {
    const file = join(dir, 'unreachable.yaml');
    const result = await runCli(
      ['wizard', '--yes', '--database-url-env', 'WIZ_DB_URL', '--tables', 'audit_log', '--bucket', 'audit-archive', '--endpoint', 'http://127.0.0.1:1', '--check-connections', '--output', file],
      { WIZ_DB_URL: db.url, AWS_ACCESS_KEY_ID: 'AKIAX', AWS_SECRET_ACCESS_KEY: 'not-a-real-secret' },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/error: .*127\.0\.0\.1:1/);
    expect(result.stderr).toContain('the configuration was not written');
    expect(result.stderr).not.toContain('not-a-real-secret');
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
