/**
 * The audit trail in a database table (compliance.audit.backend: database): written by the real
 * CLI, appendable with only SELECT and INSERT granted (UPDATE/DELETE then refused by PostgreSQL),
 * serialized so concurrent appends never fork, and verified from the rows themselves.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { runCli } from '../helpers/run-cli.js';
import { DatabaseAuditTrail, readDatabaseAuditRecords, streamDatabaseAuditRecords } from '../../src/compliance/database-audit-trail.js';
import { verifyAuditChain } from '../../src/compliance/verify-audit-chain.js';
import { buildCreateAuditTableSql } from '../../src/db/audit-queries.js';

const fx = useArchiveFixture();

async function configFile(backend: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-dbaudit-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(
    file,
    JSON.stringify({
      s3: fx.s3cfg,
      compliance: { audit: { backend, schema: 'public', table: 'audit_trail' } },
      defaults: { retention_days: 10, batch_size: 8 },
      databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }],
    }),
  );
  return file;
}

describe('audit trail in a database table', () => {
  it('a record that cannot be written mid-run fails the run (exit 1, saying how many), though every row was archived', async () => {
    // Found in review: the run used to exit 0 with a gap in its trace.
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const file = await configFile('database');
    await fx.db.query(buildCreateAuditTableSql('public', 'audit_trail'));
    await fx.db.query(`CREATE FUNCTION refuse_success() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.event = 'ARCHIVE_SUCCESS' THEN RAISE EXCEPTION 'audit disk full'; END IF; RETURN NEW; END $$`);
    await fx.db.query('CREATE TRIGGER refuse_success BEFORE INSERT ON public.audit_trail FOR EACH ROW EXECUTE FUNCTION refuse_success()');
    const r = await runCli(['archive', '-c', file, '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ failed: 0 });
    expect(r.stderr).toMatch(/\b[1-9]\d* audit record\(s\) could not be written/);
    expect(await rowIds(fx.db)).toEqual([]);
    const events = await fx.db.query<{ event: string }>('SELECT event FROM public.audit_trail ORDER BY id');
    expect(events.rows.map((e) => e.event)).toEqual(['ARCHIVE_START', 'ARCHIVE_PROGRESS']);
  });

  it('the CLI writes the records as rows; verify passes, then fails naming the row after an edited or deleted one', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const file = await configFile('both');
    expect((await runCli(['archive', '-c', file, '--quiet'])).code).toBe(0);
    const rows = (await fx.db.query<{ id: string; event: string; table_name: string | null }>('SELECT id::text, event, table_name FROM audit_trail ORDER BY id')).rows;
    expect(rows.map((r) => [r.event, r.table_name])).toEqual([
      ['ARCHIVE_START', null],
      ['ARCHIVE_PROGRESS', 'events'],
      ['ARCHIVE_SUCCESS', 'events'],
      ['ARCHIVE_SUCCESS', null],
    ]);
    const ok = await runCli(['audit', 'verify', '-c', file]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('(table public.audit_trail): 4 record(s), 0 problem(s)');
    expect(ok.stdout).toMatch(/\(storage [^)]*\): 4 record\(s\), 0 problem\(s\)/);

    // The columns beside the record are copies for querying, which the chain does not cover: an
    // edit of them alone is found by comparing (found by probing: verify passed).
    await fx.db.query(`UPDATE audit_trail SET event = 'RESTORE_SUCCESS', table_name = 'nothing', sha256 = '00' WHERE id = $1`, [rows[2]!.id]);
    const columns = await runCli(['audit', 'verify', '-c', file]);
    expect(columns.code).toBe(1);
    expect(columns.stdout).toContain(`EDITED: public.audit_trail#${rows[2]!.id.padStart(19, '0')}: its columns sha256, event, table_name disagree with its record: the row was edited`);
    expect(columns.stdout).toMatch(/\(storage [^)]*\): 4 record\(s\), 0 problem\(s\)/);
    await fx.db.query(`UPDATE audit_trail SET event = 'ARCHIVE_SUCCESS', table_name = 'events' WHERE id = $1`, [rows[2]!.id]);
    const one = await runCli(['audit', 'verify', '-c', file]);
    expect(one.stdout).toContain(`EDITED: public.audit_trail#${rows[2]!.id.padStart(19, '0')}: its column sha256 disagrees with its record`);
    await fx.db.query(`UPDATE audit_trail SET sha256 = encode(sha256(convert_to(record, 'UTF8')), 'hex') WHERE id = $1`, [rows[2]!.id]);
    expect((await runCli(['audit', 'verify', '-c', file])).code).toBe(0);

    await fx.db.query(`UPDATE audit_trail SET record = replace(record, '"records":20', '"records":2') WHERE id = $1`, [rows[1]!.id]);
    const edited = await runCli(['audit', 'verify', '-c', file]);
    expect(edited.code).toBe(1);
    expect(edited.stdout).toContain(`BROKEN: public.audit_trail#${rows[2]!.id.padStart(19, '0')}`);

    await fx.db.query(`DELETE FROM audit_trail WHERE id = $1`, [rows[1]!.id]);
    expect((await runCli(['audit', 'verify', '-c', file])).code).toBe(1);
  });

  it('a row inserted by hand that links to an older row is BROKEN (exit 1), not a benign fork: this chain never forks (found by probing)', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const file = await configFile('database');
    expect((await runCli(['archive', '-c', file, '--quiet'])).code).toBe(0);
    const rows = (await fx.db.query<{ id: string }>('SELECT id::text FROM audit_trail ORDER BY id')).rows;
    // A forged record appended after the newest one, linking (as a copy of it) to the second
    // row: in a storage trail that is what two runs appending at once look like.
    const forged = await fx.db.query<{ id: string }>(
      `INSERT INTO audit_trail (event, run_id, database_name, schema_name, table_name, record, sha256)
       SELECT event, run_id, database_name, schema_name, table_name, record, sha256 FROM audit_trail WHERE id = $1 RETURNING id::text`,
      [rows[2]!.id],
    );
    const r = await runCli(['audit', 'verify', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('(table public.audit_trail): 5 record(s), 1 problem(s), 0 fork(s)');
    expect(r.stdout).toContain(
      `BROKEN: public.audit_trail#${forged.rows[0]!.id.padStart(19, '0')}: it links to an earlier record (sha256 ${JSON.parse((await fx.db.query<{ record: string }>('SELECT record FROM audit_trail WHERE id = $1', [rows[2]!.id])).rows[0]!.record).prev_sha256}), not to the record just before it (public.audit_trail#${rows[3]!.id.padStart(19, '0')})`,
    );
  });

  it('an audit table that is not there is a one-line configuration error naming it (exit 2), for list and verify', async () => {
    // Found by probing: `relation "public.audit_trail" does not exist [INTERNAL]` with a stack trace, exit 1.
    const file = await configFile('database');
    await fx.db.query('DROP TABLE IF EXISTS audit_trail');
    for (const args of [['audit', 'list'], ['audit', 'verify']]) {
      const r = await runCli([...args, '-c', file]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toEqual([
        'auditlog: the audit table public.audit_trail cannot be read: relation "public.audit_trail" does not exist: check compliance.audit (database, schema, table) in the config — the trail is written there by the first run [CONFIG_INVALID]',
      ]);
    }
  });

  it('a second writer whose clock is 5 s behind: rows keep write order (id), verify finds no problem', async () => {
    const pool = new pg.Pool({ connectionString: fx.db.url, max: 2 });
    try {
      const ahead = new DatabaseAuditTrail(pool, 'public', 'audit_trail', 'a', () => new Date('2026-11-30T10:00:05.000Z'));
      const behind = new DatabaseAuditTrail(pool, 'public', 'audit_trail', 'b', () => new Date('2026-11-30T10:00:00.000Z'));
      await ahead.open();
      await ahead.append({ event: 'ARCHIVE_START', runId: 'run-a', status: 'started' });
      await behind.append({ event: 'ARCHIVE_START', runId: 'run-b', status: 'started' });
      await ahead.append({ event: 'ARCHIVE_SUCCESS', runId: 'run-a', status: 'ok' });
      expect(verifyAuditChain(await readDatabaseAuditRecords(pool, 'public', 'audit_trail'))).toMatchObject({ records: 3, problems: [], forks: [] });
    } finally {
      await pool.end();
    }
  });

  it('SELECT and INSERT are all the archiver needs; with only those granted, UPDATE and DELETE are refused; concurrent appends never fork', async () => {
    const role = `auditlog_writer_${randomBytes(4).toString('hex')}`;
    await fx.db.query(buildCreateAuditTableSql('public', 'audit_trail'));
    await fx.db.query(`CREATE ROLE ${role} LOGIN`);
    try {
      await fx.db.query(`GRANT SELECT, INSERT ON public.audit_trail TO ${role}`);
      const url = new URL(fx.db.url);
      url.username = role;
      const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
      try {
        const trails = [new DatabaseAuditTrail(pool, 'public', 'audit_trail', 'a'), new DatabaseAuditTrail(pool, 'public', 'audit_trail', 'b')];
        for (const t of trails) await t.open();
        await Promise.all(Array.from({ length: 10 }, (_, i) => trails[i % 2]!.append({ event: 'ARCHIVE_START', runId: `run-${i}`, status: 'started' })));
        const whole = await readDatabaseAuditRecords(pool, 'public', 'audit_trail');
        // Id order, not the text order of ids (1, 10, 2, …) a bare ORDER BY on the text alias gave.
        expect(whole.map((w) => w.key)).toEqual(whole.map((w) => w.key).sort());
        const report = verifyAuditChain(whole);
        expect(report).toMatchObject({ records: 10, problems: [], forks: [] });
        // list and verify read the table in keyset pages: pages of 3 (and one ending exactly on a page) give the same rows in the same order.
        for (const pageSize of [3, 5]) {
          const paged = [];
          for await (const item of streamDatabaseAuditRecords(pool, 'public', 'audit_trail', pageSize)) paged.push([item.key, item.body.toString('utf8')]);
          expect(paged.map((p) => p[0])).toEqual(whole.map((w) => w.key));
          expect(paged).toEqual(whole.map((w) => [w.key, w.body.toString('utf8')]));
        }
        await expect(pool.query('UPDATE public.audit_trail SET event = $1', ['X'])).rejects.toThrow(/permission denied/);
        await expect(pool.query('DELETE FROM public.audit_trail')).rejects.toThrow(/permission denied/);
      } finally {
        await pool.end();
      }
    } finally {
      await fx.db.query(`DROP OWNED BY ${role}`);
      await fx.db.query(`DROP ROLE ${role}`);
    }
  });
});
