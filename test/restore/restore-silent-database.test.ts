/**
 * `auditlog restore` against a database connection that stays open but stops answering (a stalled
 * proxy or firewall; the TCP fault proxy's blackhole), mid-load: the restore must give the
 * connection up after statement_timeout + 5 s, as archive sessions do, and exit 1 with DB_QUERY;
 * the batch in flight is not committed and not recorded, and the same command run again restores
 * every row exactly once. Found as a known gap: restore sessions had no client-side deadline and
 * waited forever (past SIGTERM, which waits for the batch in flight).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable } from '../helpers/events-table.js';
import { runCli, startCli } from '../helpers/run-cli.js';
import { startTcpFaultProxy, type TcpFaultProxy } from '../helpers/tcp-fault-proxy.js';
import { AuditlogError } from '../../src/core/errors.js';
import { isQueryDeadlineError } from '../../src/db/connect.js';
import { commitOutcomeUnknown, silentConnectionError } from '../../src/restore/load-error.js';

const ROWS = 30;
const STATEMENT_TIMEOUT_MS = 2_000;
const DEADLINE_MS = STATEMENT_TIMEOUT_MS + 5_000;

let dir: string;
let db: TestDatabase;
let config: string;
let tcp: TcpFaultProxy;
/** The test's own session, direct to the server: never the restore's. */
let app: pg.Client;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'restore-silent-'));
  db = await createTestDatabase();
  config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 10\n  batch_size: 5\n  statement_timeout_ms: ${STATEMENT_TIMEOUT_MS}\ndatabases:\n  - name: app\n    url: \${RESTORE_SILENT_DB_URL}\n    tables:\n      - name: events\n        timestamp_column: happened_at\n`,
  );
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  app = new pg.Client({ connectionString: db.url, application_name: 'restore-silent-test' });
  await app.connect();
  tcp = await startTcpFaultProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
});
afterEach(async () => {
  await app.end();
  await tcp.stop();
});

/**
 * The restore's sessions on the test database, optionally only those waiting on a lock. Not on
 * `app`: inside its transaction pg_stat_activity is a snapshot taken once.
 */
async function restoreBackends(waitingOnLock: boolean): Promise<number[]> {
  const r = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name = 'auditlog-manager' AND datname = current_database() AND (NOT $1 OR wait_event_type = 'Lock')`,
    [waitingOnLock],
  );
  return r.rows.map((x) => x.pid);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const diffSql = '(SELECT * FROM events EXCEPT ALL SELECT * FROM snapshot) UNION ALL (SELECT * FROM snapshot EXCEPT ALL SELECT * FROM events)';

describe('restore with every database connection left open but silent (TCP proxy blackhole)', () => {
  it('mid-load: gives up after statement_timeout + 5 s with DB_QUERY and exit 1, the batch in flight not committed; the same command restores every row exactly once', async () => {
    await createEventsTable(db, { rows: ROWS, stepMinutes: 60, endDaysAgo: 20 });
    await db.query('CREATE TABLE snapshot AS SELECT * FROM events');
    const direct = { RESTORE_SILENT_DB_URL: db.url };
    const proxied = { RESTORE_SILENT_DB_URL: tcp.urlFor(db.url) };
    expect((await runCli(['archive', '--config', config], direct)).code).toBe(0);
    expect(Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n)).toBe(0);

    // An uncommitted row with the newest key holds the last batch's insert on the key's index:
    // the batches before it commit, then the load waits inside a transaction — mid-load.
    await app.query('BEGIN');
    await app.query(`INSERT INTO events (id, happened_at, kind, body, note) VALUES ($1, now(), 'blocker', '{}', 'blocker')`, [ROWS]);
    const args = ['restore', '--config', config, '--table', 'events', '--batch-size', '5', '--jobs', '1', '--json'];
    const run = startCli(args, proxied, 90_000);
    await until('the restore to wait on the blocking row', async () => (await restoreBackends(true)).length > 0);
    const since = performance.now();
    tcp.blackhole();
    // The load's statement now completes on the server; its answer goes nowhere.
    await app.query('ROLLBACK');
    const failed = await run.result;
    const took = performance.now() - since;

    expect(failed.signal).toBeNull();
    expect(failed.code).toBe(1);
    const summary = JSON.parse(failed.stdout);
    expect(summary.status).toBe('failed');
    expect(summary.error.code).toBe('DB_QUERY');
    expect(summary.error.message).toContain(`no answer from the database "app" within ${DEADLINE_MS} ms`);
    expect(summary.error.message).toContain('this batch was not committed');
    expect(summary.error.message).toContain('rerun the same command to continue');
    expect(summary.error.details).toMatchObject({ deadline_ms: DEADLINE_MS, commit_sent: false });
    expect(summary.error.message).toContain(`restoring archive object ${summary.error.details.key} into public.events stopped`);
    // The load gives up at the deadline; releasing the restore's table lock on its own silent
    // session takes at most one more: bounded, not forever.
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
    expect(took).toBeLessThan(2 * DEADLINE_MS + 10_000);

    // End the blackhole: its connections reset, the sessions behind them end and roll back.
    tcp.dropAll();
    tcp.mode = 'pass';
    await until('the restore sessions to end', async () => (await restoreBackends(false)).length === 0);
    // Nothing of the batch in flight: only whole earlier batches, each row as archived.
    const loaded = await db.query<{ id: string }>('SELECT id::text AS id FROM events ORDER BY id');
    expect(loaded.rows.length).toBeGreaterThan(0);
    expect(loaded.rows.length).toBeLessThan(ROWS);
    expect(loaded.rows.map((r) => r.id)).not.toContain(String(ROWS));
    expect((await db.query('SELECT * FROM events EXCEPT ALL SELECT * FROM snapshot')).rows).toEqual([]);

    // The same command, the network back: the watermark skips what committed, the rest loads,
    // with --conflict fail (a row loaded but unrecorded would stop it with RESTORE_CONFLICT).
    const rerun = await runCli(args, proxied);
    expect(rerun.code).toBe(0);
    const again = JSON.parse(rerun.stdout);
    expect(again.status).toBe('ok');
    expect(again.rows.restored).toBe(ROWS - loaded.rows.length);
    expect((await db.query(diffSql)).rows).toEqual([]);
  }, 120_000);
});

describe('the error of a batch whose connection was given up as silent (pure)', () => {
  const deadline = new AuditlogError('DB_QUERY', 'no answer from the database "app" within 7000 ms (…)', { details: { database: 'app', deadline_ms: 7000 } });
  const target = { schema: 'public', table: 'events' };
  const word = (commit?: { sent: boolean; recordedWithRows: boolean; strategy: string }, objects = ['k1', 'k2']): AuditlogError => silentConnectionError(deadline, target, objects, commit);

  it('before COMMIT: not committed, rerun the same command; the deadline error stays recognizable', () => {
    const e = word({ sent: false, recordedWithRows: false, strategy: 'fail' });
    expect(e.code).toBe('DB_QUERY');
    expect(e.message).toMatch(/^restoring archive object k1 \(and 1 more objects of this batch\) into public\.events stopped: no answer from the database "app"/);
    expect(e.message).toContain('this batch was not committed');
    expect(e.message.endsWith('rerun the same command to continue')).toBe(true);
    expect(e.details).toMatchObject({ deadline_ms: 7000, commit_sent: false, key: 'k1', objects: ['k1', 'k2'] });
    expect(isQueryDeadlineError(e)).toBe(true);
    expect(e.cause).toBe(deadline);
  });

  it('a COMMIT without an answer is never called not committed: with the database watermark the same command decides it, else --conflict skip', () => {
    const withRows = word({ sent: true, recordedWithRows: true, strategy: 'fail' });
    expect(withRows.message).toContain('whether it committed is unknown');
    expect(withRows.message).not.toContain('not committed');
    expect(withRows.message).toContain('rerun the same command to continue (it loads this batch only if it did not commit)');
    const apart = word({ sent: true, recordedWithRows: false, strategy: 'fail' });
    expect(apart.message).toContain('not recorded as restored');
    expect(apart.message).toContain('rerun the same command with --conflict skip');
    expect(word({ sent: true, recordedWithRows: false, strategy: 'upsert' }).message).not.toContain('--conflict skip');
  });

  it('outside a batch: names the target, no batch', () => {
    const e = word(undefined, []);
    expect(e.message).toMatch(/^restore into public\.events stopped: no answer/);
    expect(e.message).not.toContain('this batch');
    expect(e.details).not.toHaveProperty('objects');
  });
});

describe('after COMMIT was sent, which errors leave its outcome unknown (pure)', () => {
  it('the connection\'s own (no SQLSTATE), class 08 and class 57 (a terminated backend may have committed locally); any other SQLSTATE is the server\'s answer: rolled back', () => {
    // Found in review: these were reported as "this batch was rolled back".
    expect(commitOutcomeUnknown(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', syscall: 'read' }))).toBe(true);
    expect(commitOutcomeUnknown(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(commitOutcomeUnknown(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(commitOutcomeUnknown(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(true);
    expect(commitOutcomeUnknown(Object.assign(new Error('could not serialize access'), { code: '40001' }))).toBe(false);
    expect(commitOutcomeUnknown(Object.assign(new Error('duplicate key value'), { code: '23505' }))).toBe(false);
  });
});
