/**
 * Connections the archiver destroys on purpose (fencePool / abortPoolConnections when a table is
 * refused its lock, loses it, or is stopped) are not "database connection error"s: found by
 * probing, every LOCK_HELD, LOCK_LOST or STOPPED table logged one or two such warnings carrying
 * the lock or stop message, which sent operators looking for a network problem.
 */
import { describe, expect, it } from 'vitest';
import { abandonClient, buildSessionSettings, createClient } from '../../src/db/connect.js';
import pg from 'pg';
import pino from 'pino';
import { Writable } from 'node:stream';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';

const fx = useArchiveFixture();

function capturingLogger(): { logger: pino.Logger; lines: () => { level: number; msg: string; err?: string }[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; err?: string }) };
}

describe('connections ended on purpose', () => {
  it('a table refused with LOCK_HELD logs no "database connection error" (the next table runs on the same pool)', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11, table: 'second' });
    const holder = new pg.Client({ connectionString: fx.db.url, application_name: 'other-archiver' });
    await holder.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(x'6175646c'::int, 'public.events'::regclass::oid::int)`);
      const log = capturingLogger();
      const run = await archiveWith(fx.configFor([eventsTable, { name: 'second', timestamp_column: 'happened_at' }]), fx.store, { logger: log.logger });
      expect(run.tables[0]!.error?.code).toBe('LOCK_HELD');
      expect(run.tables[1]!.status).toBe('archived');
      expect(log.lines().filter((l) => l.msg === 'database connection error')).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('a table stopped mid-run logs no "database connection error"', async () => {
    await createEventsTable(fx.db, { rows: 60, stepMinutes: 60, endDaysAgo: 11 });
    const stop = new AbortController();
    let commits = 0;
    const log = capturingLogger();
    const run = await archiveWith(fx.configFor([eventsTable], { batch_size: 5, batches_in_flight: 1 }), fx.store, {
      logger: log.logger,
      signal: stop.signal,
      failOnStop: true,
      onPhase: (phase) => {
        if (phase === 'after-commit' && ++commits === 2) stop.abort('SIGTERM');
      },
    });
    expect(run.tables[0]!.error?.code).toBe('STOPPED');
    // A destroyed socket reports its error on a later tick: give it the time to.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(log.lines().filter((l) => l.msg === 'database connection error')).toEqual([]);
  });

  it('a lock session closed on purpose reports nothing, not even the "Connection terminated unexpectedly" its close brings (found in review)', async () => {
    const heard: string[] = [];
    const client = createClient({
      database: { name: 'app', url: fx.db.url, connection_pool_size: 1 } as never,
      applicationName: 'auditlog-test-abandon',
      settings: buildSessionSettings({ statement_timeout_ms: 60_000, lock_timeout_ms: 5_000, idle_in_transaction_session_timeout_ms: 60_000 }),
      onBackgroundError: (e) => heard.push(e.message),
    });
    await client.connect();
    abandonClient(client, new Error('table lock lost (deliberate)'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(heard).toEqual([]);
  });
});
