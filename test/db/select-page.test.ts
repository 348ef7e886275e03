/**
 * The archive's page read on a checked-out connection of the tool's pool: a connection killed in
 * the middle of it fails that read (the run then fails the table) — it must not crash the process
 * with an unheard 'error' event, and the pool must stay usable.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable } from '../helpers/events-table.js';
import { loadTablePlan } from '../../src/db/catalog.js';
import { selectCutoff, selectPage } from '../../src/db/archive-queries.js';
import { defaultsSchema, tableSchema, type DatabaseConfig } from '../../src/config/schema.js';
import { buildSessionSettings, createPool } from '../../src/db/connect.js';

let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db.drop();
});

describe('selectPage', () => {
  it('a connection killed during the page read rejects the read, and the next read works', async () => {
    await createEventsTable(db, { rows: 6, stepMinutes: 60, endDaysAgo: 11 });
    const defaults = defaultsSchema.parse({ retention_days: 10 });
    const database = { name: 'app', url: db.url, connection_pool_size: 2 } as DatabaseConfig;
    const pool = createPool({ database, applicationName: 'select-page-test', settings: buildSessionSettings(defaults), onBackgroundError: () => undefined });
    try {
      const plan = await loadTablePlan(pool, 'app', tableSchema.parse({ name: 'events', timestamp_column: 'happened_at' }), defaults);
      const cutoff = await selectCutoff(pool, plan);
      // A filter that sleeps per row keeps the COPY running long enough to be killed. (Config
      // refuses such filters; the plan is built by hand here.)
      const slow = { ...plan, holdFilters: [{ where: "pg_catalog.pg_sleep(0.5)::text = 'never'" }] };
      const read = selectPage(pool, slow, cutoff, null, 100);
      let killed = false;
      for (let i = 0; i < 200 && !killed; i++) {
        await new Promise((r) => setTimeout(r, 25));
        const r = await db.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'select-page-test' AND query LIKE 'COPY%'`);
        killed = r.rows.length > 0;
      }
      expect(killed).toBe(true);
      await expect(read).rejects.toThrow(/terminat|connection/i);
      const pages = await selectPage(pool, plan, cutoff, null, 100);
      expect(pages.flatMap((p) => p.keys)).toHaveLength(6);
    } finally {
      await pool.end();
    }
  });
});
