/**
 * A fresh database per call (DESIGN.md §6). The server is, in order: DATABASE_URL; the machine's
 * PostgreSQL at 127.0.0.1:5432 as postgres; else an embedded PostgreSQL started once per test
 * worker in a temporary directory, which its watchdog stops and deletes when the worker ends.
 * AUDITLOG_TEST_POSTGRES=embedded forces the embedded server, to exercise that path in CI.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { createScratchDatabase, isPostgresReachable } from '../../src/db/scratch-database.js';

/** pg's result with rows of any shape, so a TestDatabase also serves where a Queryable is expected. */
export type TestQueryResult<R> = Omit<pg.QueryResult, 'rows'> & { rows: R[] };

export interface TestDatabase {
  name: string;
  url: string;
  query<R = any>(sql: string, params?: unknown[]): Promise<TestQueryResult<R>>;
  drop(): Promise<void>;
}

const LOCAL_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

let serverUrl: Promise<string> | undefined;

export function getTestServerUrl(): Promise<string> {
  serverUrl ??= chooseServer();
  return serverUrl;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const scratch = await createScratchDatabase(await getTestServerUrl(), 'auditlog_test');
  let pool: pg.Pool | undefined;
  const getPool = (): pg.Pool => {
    if (pool === undefined) {
      pool = new pg.Pool({ connectionString: scratch.url, max: 4 });
      // Tests kill sessions on purpose (pg_terminate_backend); an idle client's error must not crash the worker.
      pool.on('error', () => undefined);
    }
    return pool;
  };
  return {
    name: scratch.name,
    url: scratch.url,
    query: <R>(sql: string, params?: unknown[]) => getPool().query(sql, params) as Promise<TestQueryResult<R>>,
    async drop() {
      await pool?.end();
      pool = undefined;
      await scratch.drop();
    },
  };
}

async function chooseServer(): Promise<string> {
  const fromEnv = process.env.DATABASE_URL;
  // An explicit server is used or fails loudly, never silently replaced by another one.
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (process.env.AUDITLOG_TEST_POSTGRES !== 'embedded' && (await isPostgresReachable(LOCAL_SERVER_URL, 1_000))) {
    return LOCAL_SERVER_URL;
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'auditlog-test-pg-'));
  const server = await startEmbeddedPostgres({ dataDir, persistent: false });
  return server.url;
}
