/**
 * The advisory lock's heartbeat against a real PostgreSQL, and a run whose lock goes away mid-table:
 * it stops before its next delete (LOCK_LOST), loses no row, and a rerun archives each row once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireTableLock, confirmAdvisoryLock, findLockHolder, LOCK_NAMESPACE } from '../../src/db/advisory-lock.js';
import type { TablePlan } from '../../src/core/table-plan.js';
import { buildSessionSettings, createClient } from '../../src/db/connect.js';
import { defaultsSchema } from '../../src/config/schema.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { fileLockPath, readFileLock } from '../../src/state/file-lock.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import { recordScenario } from '../resilience/figures.js';

let db: TestDatabase;
let dir: string;
const clients: pg.Client[] = [];

beforeEach(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'auditlog-advisory-'));
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

/** A session as the archiver opens its lock connection: its settings, and no value parsed (every value is text). */
const connect = async (url = db.url, applicationName = 'auditlog-test'): Promise<pg.Client> => {
  const c = createClient({ database: { name: 'app', url, connection_pool_size: 2, tables: [] }, applicationName, settings: buildSessionSettings(defaultsSchema.parse({})) });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
};

const planOf = async (): Promise<TablePlan> => {
  const oid = (await db.query<{ oid: number }>(`SELECT 'public.events'::regclass::oid::int AS oid`)).rows[0]!.oid;
  return { database: 'app', schema: 'public', table: 'events', oid } as TablePlan;
};

const waitFor = async (cond: () => boolean, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A table's lock taken with a 50 ms heartbeat, confirmed held after a few beats. */
async function heldWithHeartbeat(): Promise<{ client: pg.Client; lock: Awaited<ReturnType<typeof acquireTableLock>>; lost: string[] }> {
  await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
  const plan = await planOf();
  const client = await connect();
  const lost: string[] = [];
  const lock = await acquireTableLock(client, plan, { heartbeat: { intervalMs: 50, timeoutMs: 2_000 }, onLost: (r) => lost.push(r) });
  await new Promise((r) => setTimeout(r, 200));
  expect(lock.isHeld()).toBe(true);
  return { client, lock, lost };
}

describe('a lock session shared with another client (a pooler in transaction mode)', () => {
  // Found by probing through PgBouncer: two archivers on one server backend both "held" the
  // re-entrant advisory lock, and rows were deleted and archived nowhere.
  it('a second lock on a server session that already carries another lock token is refused (DB_SESSION), and the lock is not taken', async () => {
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const shared = await connect();
    const first = await acquireTableLock(shared, plan, { runId: 'run-a' });
    // The second archiver's lock client, handed the same server backend by the pooler.
    await expect(acquireTableLock(shared, plan, { runId: 'run-b' })).rejects.toMatchObject({ code: 'DB_SESSION', message: expect.stringContaining('pooler in transaction mode') });
    // Still exactly one hold on the lock: one unlock frees it for a direct session.
    await first.release();
    const direct = await acquireTableLock(await connect(), plan, { runId: 'run-c' });
    expect(direct.isHeld()).toBe(true);
  });

  it('two acquisitions interleaved on one server session (as a pooler interleaves two clients): exactly one gets the lock', async () => {
    // Found in review: with the token check, the lock and the token in three statements, both got it.
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const shared = await connect();
    const results = await Promise.allSettled([acquireTableLock(shared, plan, { runId: 'run-a' }), acquireTableLock(shared, plan, { runId: 'run-b' })]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
    expect(refused.reason).toMatchObject({ code: 'DB_SESSION' });
  });

  it('the heartbeat loses the lock once its session carries another token (the backend went to another client)', async () => {
    const { client, lock, lost } = await heldWithHeartbeat();
    // What another client's lock acquisition on the same backend leaves: its own token.
    await client.query(`SELECT set_config('auditlog.lock_token', 'run-b:other', false)`);
    await waitFor(() => !lock.isHeld());
    expect(lost).toEqual(['heartbeat failed: the advisory lock is no longer granted to this session']);
  });
});

describe('advisory lock heartbeat', () => {
  it('confirms the lock on its own session, and sees it gone once released there', async () => {
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const client = await connect();
    const lock = await acquireTableLock(client, plan);
    expect(await confirmAdvisoryLock(client, plan.oid)).toBe(true);
    // Another session sees the lock in pg_locks, but it is not granted to *that* backend.
    expect(await confirmAdvisoryLock(await connect(), plan.oid)).toBe(false);
    await client.query('SELECT pg_advisory_unlock($1::int, $2::int)', [LOCK_NAMESPACE, plan.oid]);
    expect(await confirmAdvisoryLock(client, plan.oid)).toBe(false);
    expect(lock.isHeld()).toBe(true);
  });

  it('fences the commit: another session sees the lock granted to the lock session, and not once it was released or taken over', async () => {
    // Found in review: isHeld() only knows the last heartbeat; the delete asks the database itself before COMMIT.
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const lockSession = await connect();
    const deleteSession = await connect();
    const lock = await acquireTableLock(lockSession, plan);
    expect(await lock.confirmFrom!(deleteSession)).toBe(true);
    await lockSession.query('SELECT pg_advisory_unlock($1::int, $2::int)', [LOCK_NAMESPACE, plan.oid]);
    expect(lock.isHeld()).toBe(true);
    expect(await lock.confirmFrom!(deleteSession)).toBe(false);
    // Another archiver takes it: granted, but to another pid.
    const other = await acquireTableLock(await connect(), plan);
    expect(await other.confirmFrom!(deleteSession)).toBe(true);
    expect(await lock.confirmFrom!(deleteSession)).toBe(false);
  });

  it('marks the lock lost when the session stays connected but no longer holds it: only the heartbeat can tell', async () => {
    const { client, lock, lost } = await heldWithHeartbeat();
    await client.query('SELECT pg_advisory_unlock_all()');
    await waitFor(() => !lock.isHeld());
    expect(lock.lostReason()).toBe('heartbeat failed: the advisory lock is no longer granted to this session');
    expect(lost).toEqual([lock.lostReason()]);
    // The connection itself is fine: no 'error' or 'end' event could have told.
    expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe('1');
    await lock.release();
  });

  it('marks the lock lost when a heartbeat gets no answer within heartbeat_timeout_ms', async () => {
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const proxy = await startBlackholeProxy(new URL(db.url));
    try {
      const url = new URL(db.url);
      url.host = `127.0.0.1:${proxy.port}`;
      const client = await connect(url.toString());
      const lock = await acquireTableLock(client, plan, { heartbeat: { intervalMs: 50, timeoutMs: 1_000 } });
      await new Promise((r) => setTimeout(r, 200));
      expect(lock.isHeld()).toBe(true);
      proxy.blackhole();
      await waitFor(() => !lock.isHeld());
      expect(lock.lostReason()).toBe('heartbeat failed: no answer within 1000 ms');
    } finally {
      await proxy.close();
    }
  });

  it('names the holder\'s run, since when it holds the lock and when it was last active', async () => {
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const first = await connect(db.url, 'archiver-one');
    const lock = await acquireTableLock(first, plan, { runId: '20261130T010000Z-abc123', heartbeat: { intervalMs: 50, timeoutMs: 2_000 } });
    await new Promise((r) => setTimeout(r, 150));
    const holder = await findLockHolder(await connect(), plan.oid);
    expect(holder).toMatchObject({ application_name: 'archiver-one', run_id: '20261130T010000Z-abc123' });
    expect(holder?.held_since).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const second = acquireTableLock(await connect(), plan);
    await expect(second).rejects.toMatchObject({ code: 'LOCK_HELD' });
    const message = ((await second.catch((e: unknown) => e)) as Error).message;
    for (const part of ['archiver-one', 'run 20261130T010000Z-abc123', 'lock held since', 'connected since', 'last active', `pg_terminate_backend(${holder!.pid})`]) {
      expect(message).toContain(part);
    }
    await lock.release();
    expect(await findLockHolder(db, plan.oid)).toBeNull();
  });

  it('names the holder\'s run right after it took the lock, before its first heartbeat', async () => {
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const lock = await acquireTableLock(await connect(db.url, 'archiver-one'), plan, { runId: '20261130T020000Z-def456', heartbeat: { intervalMs: 60_000, timeoutMs: 2_000 } });
    expect(await findLockHolder(await connect(), plan.oid)).toMatchObject({ application_name: 'archiver-one', run_id: '20261130T020000Z-def456' });
    await lock.release();
  });

  it('never names a session of another database that holds the same (namespace, oid) pair', async () => {
    await createEventsTable(db, { rows: 1, stepMinutes: 1, endDaysAgo: 20 });
    const plan = await planOf();
    const other = await createTestDatabase();
    try {
      const foreign = await connect(other.url, 'other-database');
      await foreign.query('SELECT pg_advisory_lock($1::int, $2::int)', [LOCK_NAMESPACE, plan.oid]);
      expect(await findLockHolder(db, plan.oid)).toBeNull();
      const lock = await acquireTableLock(await connect(), plan);
      await lock.release();
      await foreign.end();
    } finally {
      await other.drop();
    }
  });
});

describe('a run that loses its table lock', () => {
  it('stops before the next delete with LOCK_LOST, keeps every row exactly once, and a rerun completes', async () => {
    await createEventsTable(db, { rows: 30, stepMinutes: 1, endDaysAgo: 20 });
    const expected = await expectRowsOf(db, { table: 'events' });
    const { oid } = await planOf();
    const store = new LocalObjectStore({ path: dir });
    const config = buildConfig({
      local: { path: dir },
      defaults: { retention_days: 10, batch_size: 5, batches_in_flight: 1 },
      lock: { heartbeat_interval_ms: 300, heartbeat_timeout_ms: 290 },
      databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }],
    });
    let uploads = 0;
    let terminated = 0;
    const summary = await archiveWith(config, store, {
      onPhase: async (phase) => {
        if (phase !== 'after-metadata') return;
        // Several heartbeats pass while the first batch waits: a healthy lock must survive them.
        if (++uploads === 1) await new Promise((resolve) => setTimeout(resolve, 1_000));
        if (uploads !== 3) return;
        const r = await db.query(
          // pg_locks lists every database's locks: only this database's (oids repeat across test databases).
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks
            WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = $1::int::oid AND objid = $2::int::oid AND granted`,
          [LOCK_NAMESPACE, oid],
        );
        terminated = r.rowCount ?? 0;
        // Let the lock connection's end be noticed (its event, or the next heartbeat).
        await new Promise((resolve) => setTimeout(resolve, 500));
      },
    });
    expect(terminated).toBe(1);
    const t = summary.tables[0]!;
    expect(t.status).toBe('failed');
    expect(t.error?.code).toBe('LOCK_LOST');
    expect(t.error?.message).toContain('app/public.events');
    expect(t.error?.message).toContain('the next run reconciles');
    expect(t.error?.message).not.toContain('no longer granted');
    expect(t.rowsArchived).toBe(10);
    // The lock file of local mode went with the run, though the run failed.
    expect(await readFileLock(fileLockPath(dir, { database: 'app', schema: 'public', table: 'events' }))).toBeUndefined();

    // Every row is in the table or in a committed object (no pending marker), never both, never lost.
    const archive = await inspectArchive(store);
    expect(archive.pendingMarkers).toHaveLength(1);
    const inFlight = new Set(archive.pendingMarkers.map((m) => m.slice(m.lastIndexOf('/') + 12, -'.json'.length)));
    const committed = archive.objects.filter((o) => ![...inFlight].some((name) => o.key.endsWith(`${name}.jsonl.gz`)));
    const committedIds = committed.flatMap((o) => o.meta.primary_keys.map((k) => k[0]!));
    const inTable = await rowIds(db);
    expect(committedIds).toHaveLength(10);
    expect(new Set([...committedIds, ...inTable]).size).toBe(30);
    expect(committedIds.length + inTable.length).toBe(30);
    const atStop = await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local: { path: dir } }, expected });
    expect(atStop.rowsLost + atStop.rowsDuplicated + atStop.staleCopies + atStop.rowsInTableAndArchive, atStop.problems.join('\n')).toBe(0);

    const rerun = await archiveWith(config, store);
    expect(rerun.failed).toBe(0);
    expect(await rowIds(db)).toEqual([]);
    const after = await inspectArchive(store);
    expect(after.pendingMarkers).toEqual([]);
    const counts = archivedKeyCounts(after);
    expect(counts.size).toBe(30);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    // The fault-injection suite's independent checker (content, not only keys), and its figures.
    const report = await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local: { path: dir } }, expected });
    expect(report.problems).toEqual([]);
    expect(report.rowsArchived).toBe(30);
    await recordScenario('database: the table lock\'s backend terminated mid-run (heartbeat and connection events stop the run before the next delete)', 'pg_terminate_backend of the advisory-lock session after the third batch\'s metadata, local storage', report);
  });
});

describe('a lock lost while a DELETE runs', () => {
  it('rolls the delete back instead of committing it: the batch\'s rows stay, a rerun archives them once', async () => {
    await createEventsTable(db, { rows: 12, stepMinutes: 1, endDaysAgo: 20 });
    const { oid } = await planOf();
    const store = new LocalObjectStore({ path: dir });
    const config = buildConfig({
      local: { path: dir },
      defaults: { retention_days: 10, batch_size: 4, batches_in_flight: 1 },
      lock: { heartbeat_interval_ms: 300, heartbeat_timeout_ms: 290 },
      databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }],
    });
    let commits = 0;
    const summary = await archiveWith(config, store, {
      onPhase: async (phase) => {
        // The second batch's DELETE has run, its transaction is open: now the lock goes.
        if (phase !== 'before-commit' || ++commits !== 2) return;
        await db.query(
          `SELECT pg_terminate_backend(pid) FROM pg_locks
            WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = $1::int::oid AND objid = $2::int::oid AND granted`,
          [LOCK_NAMESPACE, oid],
        );
        await new Promise((resolve) => setTimeout(resolve, 500));
      },
    });
    const t = summary.tables[0]!;
    expect(t.error?.code).toBe('LOCK_LOST');
    expect(t.error?.message).toContain('stopped before committing the delete of');
    expect(t.rowsArchived).toBe(4);
    expect((await rowIds(db)).map(Number).sort((a, b) => a - b)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);

    const rerun = await archiveWith(config, store);
    expect(rerun.failed).toBe(0);
    expect(await rowIds(db)).toEqual([]);
    const counts = archivedKeyCounts(await inspectArchive(store));
    expect(counts.size).toBe(12);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});

/** A TCP pass-through to PostgreSQL that can start swallowing every byte (a network partition). */
async function startBlackholeProxy(target: URL): Promise<{ port: number; blackhole(): void; close(): Promise<void> }> {
  let dropping = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    client.on('data', (d) => dropping || upstream.write(d));
    upstream.on('data', (d) => dropping || client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole: () => {
      dropping = true;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
