/**
 * Per-test fixture for pipeline tests: one S3-compatible server per file, a fresh database and a
 * fresh bucket prefix per test.
 */
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { Config, S3Config } from '../../src/config/schema.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { buildConfig } from './archive-run.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { startS3Server, type S3TestServer } from './s3-server.js';

export interface ArchiveFixture {
  readonly db: TestDatabase;
  readonly s3: S3TestServer;
  readonly s3cfg: S3Config;
  readonly store: S3ObjectStore;
  configFor(tables: Record<string, unknown>[], defaults?: Record<string, unknown>): Config;
}

export function useArchiveFixture(): ArchiveFixture {
  let s3: S3TestServer;
  let db: TestDatabase;
  let s3cfg: S3Config;
  let store: S3ObjectStore;
  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3?.stop();
  });
  beforeEach(async (t) => {
    db = await createTestDatabase();
    s3cfg = s3.s3Config({ prefix: `t-${t.task.id}-${Date.now()}/` });
    store = new S3ObjectStore(s3cfg);
  });
  afterEach(async () => {
    await db?.drop();
  });
  return {
    get db() {
      return db;
    },
    get s3() {
      return s3;
    },
    get s3cfg() {
      return s3cfg;
    },
    get store() {
      return store;
    },
    configFor(tables, defaults = {}) {
      return buildConfig({ s3: s3cfg, defaults: { retention_days: 10, batch_size: 7, ...defaults }, databases: [{ name: 'app', url: db.url, tables }] });
    },
  };
}

export const eventsTable = { name: 'events', timestamp_column: 'happened_at' };
