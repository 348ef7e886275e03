/**
 * Database faults during a run (issue #3): the archiver's backends terminated with
 * pg_terminate_backend mid-batch and mid-delete, a statement cancelled by statement_timeout, and
 * every connection reset by the TCP fault proxy (mid-batch, and during COMMIT with the server
 * unreachable afterwards, so the outcome cannot be checked until the next run), and every
 * connection left open but silent (a blackhole, mid-batch and during COMMIT). Each stops the
 * table with nothing lost; a clean rerun and the checker follow.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { expectRowsOf, type ExpectedRows } from '../helpers/invariant-checker.js';
import { startTcpFaultProxy, type TcpFaultProxy } from '../helpers/tcp-fault-proxy.js';
import type { BatchPhase } from '../../src/archive/archive-context.js';
import type { Config } from '../../src/config/schema.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { checkNow, events, expectNothingLostYet, finishAndCheck } from './finish-and-check.js';

const fx = useArchiveFixture();
/** The test's own session, as an operator's or the application's: never the archiver's. */
let app: pg.Client;
let tcp: TcpFaultProxy;
beforeEach(async () => {
  app = new pg.Client({ connectionString: fx.db.url, application_name: 'resilience-test' });
  await app.connect();
  tcp = await startTcpFaultProxy({ host: '127.0.0.1', port: Number(new URL(fx.db.url).port || 5432) });
});
afterEach(async () => {
  await app.end();
  await tcp.stop();
});

const ROWS = 50;

async function seedEvents(): Promise<ExpectedRows> {
  await createEventsTable(fx.db, { rows: ROWS, stepMinutes: 20, endDaysAgo: 11 });
  return expectRowsOf(fx.db, events);
}

/** One batch at a time, so "the n-th time a phase is reached" names one batch. */
function serialConfig(defaults: Record<string, unknown> = {}): Config {
  return fx.configFor([eventsTable], { batches_in_flight: 1, ...defaults });
}

/** Runs `fault` once, the n-th time the archiver reaches `phase`. */
function atPhase(phase: BatchPhase, n: number, fault: () => Promise<void>): (reached: BatchPhase) => Promise<void> {
  let seen = 0;
  return async (reached) => {
    if (reached === phase && ++seen === n) await fault();
  };
}

/** Terminates the archiver's sessions matching `state` (any when null) and waits until they are gone. */
async function terminateArchiverBackends(state: string | null): Promise<number> {
  // Pick the pids first: in one WHERE clause the planner may call pg_terminate_backend before the other tests, on any session.
  const r = await app.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name = 'auditlog-manager' AND datname = current_database() AND ($1::text IS NULL OR state = $1)`,
    [state],
  );
  const pids = r.rows.map((x) => x.pid);
  await app.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
  // pg_terminate_backend only signals: wait for the backends to exit, so the archiver's sockets are closed before it goes on.
  for (let i = 0; i < 200; i++) {
    const left = await app.query(`SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [pids]);
    if (left.rowCount === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return pids.length;
}

describe('pg_terminate_backend', () => {
  it.each([1, 3])('mid-batch (after the upload of the second batch, %i batches in flight): every archiver session killed, the table stops, nothing lost', async (inFlight) => {
    const expected = await seedEvents();
    let killed = 0;
    const config = serialConfig({ batches_in_flight: inFlight });
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('after-upload', 2, async () => {
        killed = await terminateArchiverBackends(null);
      }),
    });
    // The table lock's own connection and at least one pooled one.
    expect(killed).toBeGreaterThanOrEqual(2);
    expect(summary.tables[0]!.status).toBe('failed');
    const mid = await checkNow(fx, expected);
    expectNothingLostYet(mid);
    // What committed before the kill is archived, the rest is in the table.
    expect(mid.rowsInTable).toBe(ROWS - mid.rowsArchived);
    await finishAndCheck(fx, expected, {
      scenario: `database: pg_terminate_backend of every archiver session mid-batch (${inFlight} in flight)`,
      injected: 'PostgreSQL: pg_terminate_backend after the 2nd upload',
      archived: ROWS,
    });
  });

  it('mid-delete (the delete transaction, before COMMIT): the batch is reconciled against the table, nothing lost', async () => {
    const expected = await seedEvents();
    let killed = 0;
    const config = serialConfig();
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('before-commit', 1, async () => {
        killed = await terminateArchiverBackends('idle in transaction');
      }),
    });
    expect(killed).toBe(1);
    expect(summary.tables[0]!.status).toBe('failed');
    expect(summary.tables[0]!.error!.message).toContain('during COMMIT');
    const mid = await checkNow(fx, expected);
    expectNothingLostYet(mid);
    // The rolled-back batch's object was removed by the reconciliation right away.
    expect(mid.problems).toEqual([]);
    expect(await rowIds(fx.db)).toHaveLength(ROWS);
    await finishAndCheck(fx, expected, { scenario: 'database: pg_terminate_backend of the delete transaction before COMMIT', injected: 'PostgreSQL: pg_terminate_backend of the session idle in the delete transaction', archived: ROWS });
  });
});

describe('the database moved back in time (failover to a lagging standby, point-in-time restore)', () => {
  it("a batch left in flight whose delete transaction is in this database's future: decided as not committed, not a raw error on every run", async () => {
    // Found by probing: txid_status() raises 22023 for such an id, and the table failed with it on every run.
    await seedEvents();
    const config = serialConfig({ batch_size: 1000 });
    const crashed = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('before-commit', 1, async () => {
        throw new Error('simulated crash before COMMIT');
      }),
    });
    expect(crashed.tables[0]!.status).toBe('failed');
    const [markerKey, ...others] = (await inspectArchive(fx.store)).pendingMarkers;
    expect(others).toEqual([]);
    const marker = JSON.parse((await fx.store.get(markerKey!))!.toString('utf8')) as { delete_txid?: string | null; metadata_object: string };
    // Not even null: versions before the sidecar named the transaction read null as "no delete
    // started" and removed the object, committed or not (found in review).
    expect('delete_txid' in marker).toBe(false);
    // The delete transaction is named by the sidecar, written inside it.
    const sidecar = JSON.parse((await fx.store.get(marker.metadata_object))!.toString('utf8')) as { delete_txid?: string };
    expect(sidecar.delete_txid).toMatch(/^[0-9]+$/);
    // As if the database had been rolled back past the delete: its transaction id is not assigned yet.
    sidecar.delete_txid = String(BigInt(sidecar.delete_txid!) + 1_000_000n);
    await fx.store.put(marker.metadata_object, Buffer.from(JSON.stringify(sidecar)));
    // The application changes every row meanwhile, so no archived version is left to decide by.
    await app.query(`UPDATE events SET note = note || ' (changed)'`);
    const expected = await expectRowsOf(fx.db, events);
    await finishAndCheck(fx, expected, { scenario: "database: a batch in flight whose delete transaction is in the database's future", injected: 'metadata sidecar: delete_txid moved 1,000,000 ahead (a failover or PITR since), then every row of the batch updated', archived: ROWS });
  });
});

describe('an object at the batch key whose sidecar names a delete transaction that never committed', () => {
  it('is not taken for a committed archive: the table stops with its marker kept, and the next run reconciles it; every committed sidecar names a committed transaction', async () => {
    // Found in review: a sidecar is written inside its delete transaction, so an object with one is
    // committed only if that transaction is. Here its pending marker is lost (as after late writes);
    // before, the next batch deleted the rows "as copies" against it, leaving a committed object
    // whose sidecar names an aborted transaction — which a marker reappearing later would remove.
    const expected = await seedEvents();
    const config = serialConfig({ batch_size: 1000 });
    const crashed = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('before-commit', 1, async () => {
        throw new Error('simulated crash before COMMIT');
      }),
    });
    expect(crashed.tables[0]!.status).toBe('failed');
    const [markerKey, ...others] = (await inspectArchive(fx.store)).pendingMarkers;
    expect(others).toEqual([]);
    await fx.store.delete(markerKey!);
    const refused = await archiveWith(config, await createObjectStore(config));
    expect(refused.tables[0]!.error?.code).toBe('STORAGE_CONFLICT');
    expect(refused.tables[0]!.error?.message).toContain('did not commit');
    expect(await rowIds(fx.db)).toHaveLength(ROWS);
    expect((await inspectArchive(fx.store)).pendingMarkers).toEqual([markerKey]);
    await finishAndCheck(fx, expected, { scenario: 'storage: an object whose sidecar names an aborted delete, its marker lost', injected: 'a crash before COMMIT, then the pending marker removed', archived: ROWS });
    for (const o of (await inspectArchive(fx.store)).objects) {
      expect((await app.query('SELECT txid_status($1::bigint) AS s', [o.meta.delete_txid])).rows[0].s).toBe('committed');
    }
  });
});

describe('statement_timeout', () => {
  it('a delete that waits on a table lock past statement_timeout is cancelled (57014): the table stops, nothing lost', async () => {
    const expected = await seedEvents();
    // lock_timeout well above statement_timeout: the wait must end by the statement timeout.
    const config = serialConfig({ statement_timeout_ms: 500, lock_timeout_ms: 60_000 });
    let locked = false;
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('after-metadata', 2, async () => {
        await app.query('BEGIN');
        await app.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
        locked = true;
      }),
    });
    await app.query('ROLLBACK');
    expect(locked).toBe(true);
    expect(summary.tables[0]!.status).toBe('failed');
    expect(summary.tables[0]!.error!.message).toContain('57014');
    const mid = await checkNow(fx, expected);
    expectNothingLostYet(mid);
    expect(mid.rowsInTable).toBe(ROWS - mid.rowsArchived);
    await finishAndCheck(fx, expected, { scenario: 'database: statement_timeout cancels a delete waiting on a lock', injected: 'PostgreSQL: ACCESS EXCLUSIVE lock held by another session, statement_timeout 500 ms', archived: ROWS });
  });
});

describe('TCP fault proxy between the archiver and PostgreSQL', () => {
  function proxiedConfig(defaults: Record<string, unknown> = {}): Config {
    const config = serialConfig(defaults);
    config.databases[0]!.url = tcp.urlFor(fx.db.url);
    return config;
  }

  /** Ends the blackhole: its connections reset, the sessions behind them gone (their locks with them), new ones forwarded. */
  async function endBlackhole(): Promise<void> {
    tcp.dropAll();
    tcp.mode = 'pass';
    await terminateArchiverBackends(null);
  }

  /** Archives with every connection blackholed from `phase` of batch `n` on: the table's outcome, and the ms from the blackhole to the end of the run. */
  async function archiveBlackholedAt(config: Config, phase: BatchPhase, n: number): Promise<{ table: Awaited<ReturnType<typeof archiveWith>>['tables'][number]; took: number }> {
    let since = 0;
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase(phase, n, async () => {
        since = performance.now();
        tcp.blackhole();
      }),
    });
    expect(since).toBeGreaterThan(0);
    return { table: summary.tables[0]!, took: performance.now() - since };
  }

  /**
   * With the blackhole over: nothing lost so far (`atMid` checks more of that instant), then a
   * healthy rerun through the proxy archives every row once, and the scenario's figures are recorded.
   */
  async function finishAfterBlackhole(expected: ExpectedRows, figures: { scenario: string; injected: string }, atMid: (mid: Awaited<ReturnType<typeof checkNow>>) => Promise<void> | void): Promise<void> {
    await endBlackhole();
    const mid = await checkNow(fx, expected);
    expectNothingLostYet(mid);
    await atMid(mid);
    await finishAndCheck(fx, expected, { ...figures, archived: ROWS, config: proxiedConfig() });
  }

  describe('every connection left open but silent (blackhole: nothing forwarded, sockets kept open)', () => {
    // Found by probing: the run waited on its dead sockets for as long as the network stayed
    // down (minutes, past SIGTERM), and then failed as INTERNAL.
    const STATEMENT_TIMEOUT_MS = 2_000;
    const DEADLINE_MS = STATEMENT_TIMEOUT_MS + 5_000;

    it('mid-batch (after the 2nd upload): every query waiting gives up after statement_timeout + 5 s with DB_QUERY, nothing lost, the rerun archives every row once', async () => {
      const expected = await seedEvents();
      const config = proxiedConfig({ statement_timeout_ms: STATEMENT_TIMEOUT_MS });
      const { table, took } = await archiveBlackholedAt(config, 'after-upload', 2);
      expect(table.status).toBe('failed');
      expect(table.error!.code).toBe('DB_QUERY');
      expect(table.error!.message).toContain(`no answer from the database "app" within ${DEADLINE_MS} ms`);
      // The batch's delete gives up (after a deadline, or after the 15 s connect timeout when it
      // needed a new connection), then the lock's release does: bounded, not forever.
      expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
      expect(took).toBeLessThan(15_000 + 2 * DEADLINE_MS + 3_000);
      await finishAfterBlackhole(
        expected,
        {
          scenario: 'database: every connection silent mid-batch (TCP proxy blackhole)',
          injected: 'TCP proxy: nothing forwarded, sockets kept open, from after the 2nd upload; statement_timeout 2 s',
        },
        (mid) => expect(mid.rowsInTable).toBe(ROWS - mid.rowsArchived),
      );
    }, 60_000);

    it('before COMMIT: the COMMIT that gets no answer is an ambiguous outcome, left in flight for the next run, never taken as not committed', async () => {
      const expected = await seedEvents();
      const config = proxiedConfig({ statement_timeout_ms: STATEMENT_TIMEOUT_MS });
      const { table } = await archiveBlackholedAt(config, 'before-commit', 1);
      expect(table.status).toBe('failed');
      expect(table.error!.code).toBe('DB_QUERY');
      expect(table.error!.message).toContain('during COMMIT');
      expect(table.error!.message).toContain('no answer from the database');
      expect(table.error!.message).toContain('the next run reconciles it');
      await finishAfterBlackhole(
        expected,
        {
          scenario: 'database: every connection silent before COMMIT (TCP proxy blackhole)',
          injected: 'TCP proxy: nothing forwarded, sockets kept open, from just before the 1st COMMIT; statement_timeout 2 s',
        },
        async (mid) => {
          // The COMMIT never reached the server: the rows are all there, the batch's marker waits for the rerun.
          expect(mid.pendingMarkers).toBe(1);
          expect(await rowIds(fx.db)).toHaveLength(ROWS);
        },
      );
    }, 90_000);

    it('the table lock found lost by its heartbeat stops the work in flight at once (LOCK_LOST), long before statement_timeout', async () => {
      const expected = await seedEvents();
      // A statement_timeout far beyond the test: only the lost lock can end the run in time.
      const config = proxiedConfig({ statement_timeout_ms: 600_000 });
      config.lock = { ...config.lock, heartbeat_interval_ms: 500, heartbeat_timeout_ms: 250 };
      const { table, took } = await archiveBlackholedAt(config, 'after-upload', 2);
      expect(table.status).toBe('failed');
      expect(table.error!.code).toBe('LOCK_LOST');
      expect(table.error!.message).toContain('no answer within 250 ms');
      expect(took).toBeLessThan(10_000);
      await finishAfterBlackhole(
        expected,
        {
          scenario: 'database: every connection silent mid-batch, the table lock found lost (TCP proxy blackhole)',
          injected: 'TCP proxy: nothing forwarded, sockets kept open, from after the 2nd upload; heartbeat every 500 ms',
        },
        (mid) => expect(mid.rowsInTable).toBe(ROWS - mid.rowsArchived),
      );
    }, 60_000);
  });

  it('every connection reset mid-batch: the table stops before the next delete, nothing lost', async () => {
    const expected = await seedEvents();
    let dropped = 0;
    const config = proxiedConfig();
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('after-upload', 2, async () => {
        dropped = tcp.dropAll();
      }),
    });
    // The lock's connection and the pool's.
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect(summary.tables[0]!.status).toBe('failed');
    const mid = await checkNow(fx, expected);
    expectNothingLostYet(mid);
    expect(mid.rowsInTable).toBe(ROWS - mid.rowsArchived);
    await finishAndCheck(fx, expected, {
      scenario: 'database: every connection reset mid-batch (TCP proxy)',
      injected: 'TCP proxy: reset of every archiver connection after the 2nd upload',
      archived: ROWS,
      config: proxiedConfig(),
    });
  });

  it('the COMMIT succeeds but its answer is lost: the outcome is read back from the table, the batch stays archived once', async () => {
    const expected = await seedEvents();
    const config = proxiedConfig();
    let muted: Promise<void> | undefined;
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('before-commit', 1, async () => {
        tcp.muteReplies();
        // The COMMIT is sent after this hook returns: once the server shows no archiver session
        // in a transaction, it has committed, and only then does the archiver's connection drop.
        muted = (async () => {
          for (let i = 0; i < 400; i++) {
            const r = await app.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'auditlog-manager' AND datname = current_database() AND state = 'idle in transaction'`);
            if (r.rowCount === 0) break;
            await new Promise((resolve) => setTimeout(resolve, 25));
          }
          tcp.dropAll();
        })();
      }),
    });
    await muted;
    // Which failure the table reports first (the COMMIT, or the page read ahead on another reset
    // connection) is a race; what the store and the table hold afterwards is not.
    expect(summary.tables[0]!.status).toBe('failed');
    // When it is the COMMIT, the error says what reading the table back found: it did commit.
    const error = summary.tables[0]!.error!;
    if (error.message.includes('during COMMIT')) expect(error.message).toContain('read back from the table, the delete did commit: the batch is archived');
    else expect(error.code).toBe('DB_CONNECT');
    const mid = await checkNow(fx, expected);
    // The batch did commit: its rows are gone from the table and archived, and its marker was
    // resolved by reading the table back before this run ended (no pending marker is left).
    expect(mid.problems).toEqual([]);
    expect(mid.rowsArchived).toBeGreaterThan(0);
    expect(mid.rowsInTable).toBe(ROWS - mid.rowsArchived);
    await finishAndCheck(fx, expected, {
      scenario: 'database: COMMIT succeeds but its answer is lost (TCP proxy)',
      injected: 'TCP proxy: server replies dropped from before COMMIT, then every connection reset',
      archived: ROWS,
      config: proxiedConfig(),
    });
  });

  it('connections reset during the delete and the server unreachable afterwards: the batch stays in flight and the next run reconciles it', async () => {
    const expected = await seedEvents();
    const config = proxiedConfig();
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: atPhase('before-commit', 1, async () => {
        tcp.mode = 'refuse';
        tcp.dropAll();
      }),
    });
    expect(summary.tables[0]!.status).toBe('failed');
    const mid = await checkNow(fx, expected);
    expectNothingLostYet(mid);
    // The COMMIT's outcome could not be checked: the marker stays for the next run.
    expect(mid.pendingMarkers).toBe(1);
    expect(await rowIds(fx.db)).toHaveLength(ROWS);
    tcp.mode = 'pass';
    await finishAndCheck(fx, expected, {
      scenario: 'database: connection reset during the delete, server unreachable after (TCP proxy)',
      injected: 'TCP proxy: reset of every connection before COMMIT, new connections refused until the rerun',
      archived: ROWS,
      config: proxiedConfig(),
    });
  });
});
