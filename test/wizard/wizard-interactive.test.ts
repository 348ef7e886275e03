import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { BIN, ROOT, runCli } from '../helpers/run-cli.js';

const run = promisify(execFile);
const DOWN = '\u001b[B';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'auditlog-wizard-pty-'));
  await db.query(`CREATE TABLE audit_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, updated_at timestamptz, payload text)`);
  await db.query(`CREATE INDEX ON audit_log (created_at)`);
  await db.query(`INSERT INTO audit_log SELECT i, now() - make_interval(days => i) - interval '1 hour', now(), repeat('x', 200) FROM generate_series(0, 999) i`);
  await db.query(`CREATE TABLE events (tenant_id int, seq int, occurred_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, seq))`);
  await db.query(`INSERT INTO events SELECT i % 2, i, now() - make_interval(days => i) FROM generate_series(0, 9) i`);
  await db.query('ANALYZE');
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Drives `auditlog wizard` in a pseudo-terminal (python3's pty module), answering each prompt as it appears. */
async function drive(args: string[], env: Record<string, string>, steps: [string, string][]): Promise<{ code: number | null; transcript: string; failed_step?: string }> {
  const spec = JSON.stringify({ argv: [BIN, ...args], env, steps, cwd: ROOT, timeout: 30 });
  const { stdout } = await run('python3', [join(ROOT, 'test', 'wizard', 'pty-drive.py'), spec], { maxBuffer: 10 * 1024 * 1024, timeout: 90_000 });
  return JSON.parse(stdout) as { code: number | null; transcript: string };
}

describe('auditlog wizard in a terminal', () => {
  it('asks each question with @inquirer/prompts and writes the answers as a valid config', async () => {
    const file = join(dir, 'interactive.yaml');
    const archive = join(dir, 'archive');
    const result = await drive(['wizard', '--output', file], { DATABASE_URL: db.url }, [
      // Both tables ("a" selects all), then confirm.
      ['Tables to archive:', 'a\r'],
      // audit_log has two timestamp candidates, so the wizard asks; the indexed created_at is the default.
      ['Timestamp column of public\\.audit_log', '\r'],
      ['Retention of public\\.audit_log in days', '120\r'],
      ['Retention of public\\.events in days', '\r'],
      ['Archive to:', `${DOWN}\r`],
      ['Archive directory:', `${archive}\r`],
      ['Write the configuration to', '\r'],
    ]);
    expect(result.failed_step, result.transcript).toBeUndefined();
    expect(result.code, result.transcript).toBe(0);
    if (process.env.WIZARD_PTY_DEBUG) console.log(result.transcript);
    expect(result.transcript).toContain('database: using DATABASE_URL from the environment (written as ${DATABASE_URL})');
    expect(result.transcript).toContain('created_at (timestamptz, indexed)');
    expect(result.transcript).toContain('warning: occurred_at has no index');
    expect(result.transcript).toContain(`wrote ${file}`);
    const yaml = await readFile(file, 'utf8');
    expect(yaml).toContain('url: ${DATABASE_URL}');
    expect(yaml).toContain(`path: ${archive}`);
    expect(yaml).toMatch(/- name: audit_log\n\s+timestamp_column: created_at\n\s+primary_key: id\n\s+retention_days: 120/);
    expect(yaml).toMatch(/- name: events\n\s+timestamp_column: occurred_at\n\s+primary_key:\n\s+- tenant_id\n\s+- seq\n/);
    expect(yaml).toMatch(/defaults:\n\s+retention_days: 90/);
    const validate = await runCli(['config', 'validate', '-c', file], { DATABASE_URL: db.url });
    expect(validate.code, validate.stderr).toBe(0);
  }, 120_000);

  it('says why a table without a key is skipped and goes on with the others', async () => {
    await db.query(`CREATE TABLE IF NOT EXISTS zz_no_key (created_at timestamptz)`);
    const result = await drive(['wizard'], { DATABASE_URL: db.url }, [
      ['Tables to archive:', 'a\r'],
      ['Timestamp column of public\\.audit_log', '\r'],
      ['Retention of public\\.audit_log in days', '\r'],
      ['Retention of public\\.events in days', '\r'],
      ['Archive to:', '\r'],
      ['Bucket:', 'audit-archive\r'],
      ['Key prefix', '\r'],
      ['Region:', 'eu-west-1\r'],
      ['Endpoint', '\r'],
      ['Server-side encryption:', '\r'],
      ['Print the configuration\\?', '\r'],
    ]);
    expect(result.failed_step, result.transcript).toBeUndefined();
    expect(result.code, result.transcript).toBe(0);
    expect(result.transcript).toMatch(/skipped: public\.zz_no_key has no primary key .* cannot be archived until it has one/);
    expect(result.transcript).toMatch(/bucket: audit-archive\s+prefix: archives\/\s+region: eu-west-1\s+sse: AES256/);
    expect(result.transcript).not.toContain('zz_no_key\n    timestamp_column');
  }, 120_000);

  it('skips a table with a DELETE trigger or a rule ON DELETE, saying why in the words of `archive`, and goes on', async () => {
    await db.query(`CREATE TABLE zz_trigger (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)`);
    await db.query(`CREATE FUNCTION zz_keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$`);
    await db.query(`CREATE TRIGGER zz_keep_rows BEFORE DELETE ON zz_trigger FOR EACH ROW EXECUTE FUNCTION zz_keep()`);
    await db.query(`CREATE TABLE zz_rule (id bigint PRIMARY KEY, created_at timestamptz NOT NULL)`);
    await db.query(`CREATE RULE zz_rule_nothing AS ON DELETE TO zz_rule DO INSTEAD NOTHING`);
    const result = await drive(['wizard'], { DATABASE_URL: db.url }, [
      ['Tables to archive:', 'a\r'],
      ['Timestamp column of public\\.audit_log', '\r'],
      ['Retention of public\\.audit_log in days', '\r'],
      ['Retention of public\\.events in days', '\r'],
      ['Archive to:', `${DOWN}\r`],
      ['Archive directory:', `${join(dir, 'skip-archive')}\r`],
      ['Print the configuration\\?', '\r'],
    ]);
    expect(result.failed_step, result.transcript).toBeUndefined();
    expect(result.code, result.transcript).toBe(0);
    // No question is asked about either table: no timestamp, no retention.
    expect(result.transcript).not.toMatch(/Retention of public\.zz_(trigger|rule)/);
    const flat = result.transcript.replace(/\r?\n/g, ' ');
    expect(flat).toMatch(/skipped: public\.zz_trigger \(database "[^"]+"\) has DELETE trigger\(s\) "zz_keep_rows" on public\.zz_trigger \(BEFORE ROW, public\.zz_keep\(\)\)/);
    expect(flat).toMatch(/skipped: public\.zz_rule \(database "[^"]+"\) has rule\(s\) ON DELETE public\.zz_rule\.zz_rule_nothing/);
    expect(result.transcript).toMatch(/- name: audit_log\s/);
    expect(result.transcript).not.toMatch(/name: zz_(trigger|rule)/);
  }, 120_000);

  it('Ctrl+C at a prompt cancels cleanly: exit 2, no stack trace, nothing written', async () => {
    const file = join(dir, 'cancelled.yaml');
    const result = await drive(['wizard', '--output', file], { DATABASE_URL: db.url }, [['Tables to archive:', '\u0003']]);
    expect(result.failed_step, result.transcript).toBeUndefined();
    expect(result.code, result.transcript).toBe(2);
    expect(result.transcript).toContain('wizard cancelled; nothing written');
    expect(result.transcript).not.toMatch(/INTERNAL|at .*\.js:\d+/);
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  }, 120_000);
});
