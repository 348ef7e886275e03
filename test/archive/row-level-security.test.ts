/**
 * Row-level security that applies to the archiver's (or restorer's) role, against a real
 * PostgreSQL and s3rver. Found by probing: a DELETE policy stricter than the SELECT policy made
 * the archiver upload rows it could not delete and rewrite them out of their object on every run,
 * reported as "changed or locked"; a policy on the legal-holds table hid holds, so held rows were
 * archived and deleted. Now such a table is refused before anything is read, and a query RLS would
 * filter fails instead (sessions run with row_security off).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { restoreWith } from '../helpers/restore-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import type { Config } from '../../src/config/schema.js';

const fx = useArchiveFixture();

let role: string;
beforeEach(async () => {
  role = `rls_${fx.db.name}`.slice(0, 60);
  // A password, so the login works under password authentication too (the embedded fallback).
  await fx.db.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'rls-pw'`);
  await fx.db.query(`GRANT USAGE ON SCHEMA public TO "${role}"`);
});
afterEach(async () => {
  await fx.db.query(`DROP OWNED BY "${role}"`);
  await fx.db.query(`DROP ROLE "${role}"`);
});

/** The fixture's config, connecting as the test's role instead of the superuser. */
function asRole(config: Config): Config {
  const url = new URL(fx.db.url);
  url.username = role;
  url.password = 'rls-pw';
  config.databases[0]!.url = url.toString();
  return config;
}

const dataObjects = async (): Promise<string[]> => (await inspectArchive(fx.store)).objects.map((o) => o.key).filter((k) => !k.startsWith('_auditlog/'));

describe('row-level security', () => {
  it('refuses a table whose policies apply to the archiver before reading a row; with BYPASSRLS every row is archived once', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 20 });
    await fx.db.query(`ALTER TABLE events ENABLE ROW LEVEL SECURITY`);
    await fx.db.query(`CREATE POLICY see_all ON events FOR SELECT USING (true)`);
    await fx.db.query(`CREATE POLICY lock_all ON events FOR UPDATE USING (true)`);
    await fx.db.query(`CREATE POLICY delete_even ON events FOR DELETE USING (id % 2 = 0)`);
    await fx.db.query(`GRANT SELECT, UPDATE, DELETE ON events TO "${role}"`);

    for (let run = 0; run < 2; run++) {
      const refused = await archiveWith(asRole(fx.configFor([eventsTable], { batch_size: 100 })), fx.store);
      expect(refused.tables[0]).toMatchObject({ status: 'failed', rowsArchived: 0, error: { code: 'DB_PRIVILEGE' } });
      expect(refused.tables[0]!.error!.message).toContain(`row-level security applies to role ${role} on public.events`);
      expect(refused.tables[0]!.error!.message).toContain(`ALTER ROLE ${role} BYPASSRLS`);
      expect(await rowIds(fx.db)).toHaveLength(10);
      expect(await dataObjects()).toEqual([]);
    }

    await fx.db.query(`ALTER ROLE "${role}" BYPASSRLS`);
    const archived = await archiveWith(asRole(fx.configFor([eventsTable], { batch_size: 100 })), fx.store);
    expect(archived.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 10, rowsSkipped: 0 });
    expect(await rowIds(fx.db)).toEqual([]);
    const archive = await inspectArchive(fx.store);
    expect(archive.objects.flatMap((o) => o.meta.primary_keys.map((k) => String(k[0]))).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 10 }, (_, i) => String(i + 1)));
  });

  it('a policy that hides rows of the legal-holds table keeps every table of the database (LEGAL_HOLD_UNAVAILABLE), instead of archiving held rows', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 20 });
    await fx.db.query(`GRANT SELECT, UPDATE, DELETE ON events TO "${role}"`);
    await fx.db.query(`CREATE TABLE legal_holds (table_name text, record_filter text, reason text, set_by text, expires_at timestamptz)`);
    await fx.db.query(`INSERT INTO legal_holds VALUES ('events', NULL, 'Case 7', 'counsel', NULL)`);
    await fx.db.query(`GRANT SELECT ON legal_holds TO "${role}"`);
    await fx.db.query(`ALTER TABLE legal_holds ENABLE ROW LEVEL SECURITY`);
    await fx.db.query(`CREATE POLICY legal_only ON legal_holds FOR SELECT USING (current_user = 'legal_team')`);

    const config = asRole(buildConfig({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 100 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }], legal_holds: { check_table: {} } }));
    const summary = await archiveWith(config, fx.store);
    expect(summary.tables[0]).toMatchObject({ status: 'failed', rowsArchived: 0, error: { code: 'LEGAL_HOLD_UNAVAILABLE' } });
    expect(summary.tables[0]!.error!.message).toContain('row-level security');
    expect(await rowIds(fx.db)).toHaveLength(10);
    expect(await dataObjects()).toEqual([]);
  });

  it('restore refuses a target whose policies apply to the restoring role, naming the fix; nothing is restored', async () => {
    await createEventsTable(fx.db, { rows: 6, stepMinutes: 60, endDaysAgo: 20 });
    const archived = await archiveWith(fx.configFor([eventsTable], { batch_size: 100 }), fx.store);
    expect(archived.tables[0]!.rowsArchived).toBe(6);
    await fx.db.query(`ALTER TABLE events ENABLE ROW LEVEL SECURITY`);
    await fx.db.query(`CREATE POLICY own_kind ON events USING (kind = 'kind1')`);
    await fx.db.query(`GRANT SELECT, INSERT, UPDATE ON events TO "${role}"`);
    await fx.db.query(`GRANT CREATE ON SCHEMA public TO "${role}"`);

    for (const dryRun of [true, false]) {
      const refused = await restoreWith(asRole(fx.configFor([eventsTable])), fx.store, { table: 'events', dryRun });
      expect(refused).toMatchObject({ status: 'failed', error: { code: 'DB_PRIVILEGE' }, rows: { restored: 0 } });
      expect(refused.error!.message).toContain(`row-level security applies to role ${role} on public.events`);
    }
    expect(await rowIds(fx.db)).toEqual([]);

    await fx.db.query(`ALTER ROLE "${role}" BYPASSRLS`);
    const restored = await restoreWith(asRole(fx.configFor([eventsTable])), fx.store, { table: 'events' });
    expect(restored.rows.restored).toBe(6);
    expect(await rowIds(fx.db)).toEqual(['1', '2', '3', '4', '5', '6']);
  });
});
