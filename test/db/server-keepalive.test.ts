/**
 * The archiver's sessions ask the server to probe their TCP connection (connect.ts): the server's
 * side of a connection whose client vanished otherwise lives ~2 h 11 min at the usual defaults,
 * keeping the table's advisory lock, so every later run failed LOCK_HELD against the archiver's
 * own dead session (found by probing the daemon). Both kinds of session: pool and lock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSessionSettings, connectLockClient, createPool } from '../../src/db/connect.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const KEEPALIVE_SQL = `SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS interval, current_setting('tcp_keepalives_count') AS count,
  CASE WHEN (SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()) IS NOT NULL THEN 'tcp' ELSE 'unix' END AS transport`;

describe('server-side TCP keepalive of the archiver\'s sessions', () => {
  const settings = buildSessionSettings({ statement_timeout_ms: 5_000, lock_timeout_ms: 1_000, idle_in_transaction_session_timeout_ms: 60_000 });
  const database = { name: 'app', connection_pool_size: 1, tables: [] };

  it('a pool session probes after 30 s idle, every 10 s, and gives up after 3 missed probes', async () => {
    const pool = createPool({ database: { ...database, url: db.url } as never, applicationName: 'keepalive-test', settings });
    try {
      const r = await pool.query<{ idle: string; interval: string; count: string; transport: string }>(KEEPALIVE_SQL);
      // Over a Unix socket PostgreSQL ignores (and reports 0 for) these: the test needs TCP to mean anything.
      expect(r.rows[0]).toEqual({ idle: '30', interval: '10', count: '3', transport: 'tcp' });
    } finally {
      await pool.end();
    }
  });

  it('so does the lock session, which holds the advisory lock', async () => {
    const client = await connectLockClient({ database: { ...database, url: db.url } as never, applicationName: 'keepalive-test', settings });
    try {
      const r = await client.query<{ idle: string; interval: string; count: string; transport: string }>(KEEPALIVE_SQL);
      expect(r.rows[0]).toEqual({ idle: '30', interval: '10', count: '3', transport: 'tcp' });
    } finally {
      await client.end();
    }
  });
});
