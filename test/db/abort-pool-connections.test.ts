/**
 * abortPoolConnections destroys a pool's connections whatever state they are in. A client still
 * connecting or verifying its session (connect.ts) has no 'error' listener of the pool's yet: the
 * error its destroyed socket emits must not go unheard (found by the full test run: an uncaught
 * exception, which crashes the process, when a table failed while a connection was being opened).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { abortPoolConnections, buildSessionSettings, createPool } from '../../src/db/connect.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe('abortPoolConnections', () => {
  it('aborts connections at every point of their opening without an uncaught error; each waiter gets the abort error or its connection', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', onUncaught);
    const settings = buildSessionSettings({ statement_timeout_ms: 5_000, lock_timeout_ms: 1_000, idle_in_transaction_session_timeout_ms: 60_000 });
    const outcomes = new Set<string>();
    try {
      // Every delay from "connecting" through "session being verified" to "connected".
      for (let delayMs = 0; delayMs < 40; delayMs++) {
        const pool = createPool({ database: { name: 'app', url: db.url, connection_pool_size: 2, tables: [] } as never, applicationName: 'abort-test', settings });
        const abort = new Error(`aborted after ${delayMs} ms`);
        const waiter = pool.connect().then(
          (client) => {
            client.release(true);
            return 'connected';
          },
          (error: unknown) => {
            expect(error).toBe(abort);
            return 'aborted';
          },
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        abortPoolConnections(pool, abort);
        outcomes.add(await waiter);
        await new Promise((resolve) => setTimeout(resolve, 10));
        await pool.end().catch(() => undefined);
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
    // The loop reached connections while they were being opened, not only finished ones.
    expect(outcomes.has('aborted')).toBe(true);
  });
});
