import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedAuditTable } from '../../src/demo/seed-audit-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const now = new Date('2025-06-01T12:00:00Z');

describe('seedAuditTable', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('creates the DESIGN §7 table with the asked split around the retention cutoff', async () => {
    const result = await seedAuditTable(db, { schema: 'public', table: 'audit_log', rows: 3_001, oldFraction: 0.5, retentionDays: 365, now, chunkSize: 700 });
    expect(result).toEqual({ total: 3_001, olderThanRetention: 1_501, cutoff: new Date('2024-06-01T12:00:00Z') });

    const stats = await db.query(
      `SELECT min(created_at) AS first, max(created_at) AS last, avg(octet_length(row_to_json(t)::text))::int AS json_bytes,
              count(DISTINCT action) AS actions, count(*) FILTER (WHERE actor_id IS NULL) AS system_rows,
              bool_and(id = rank) AS ids_follow_time
         FROM (SELECT *, rank() OVER (ORDER BY created_at, id) FROM public.audit_log) t`,
    );
    const row = stats.rows[0];
    expect(row.first.getTime()).toBeGreaterThanOrEqual(now.getTime() - 730 * 86_400_000);
    expect(row.last.getTime()).toBeLessThanOrEqual(now.getTime());
    expect(row.json_bytes).toBeGreaterThan(450);
    expect(row.json_bytes).toBeLessThan(600);
    expect(Number(row.actions)).toBe(12);
    expect(Number(row.system_rows)).toBeGreaterThan(0);
    expect(row.ids_follow_time).toBe(true);

    const indexes = await db.query(`SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'audit_log' ORDER BY indexdef`);
    expect(indexes.rows.map((r) => r.indexdef)).toEqual([
      'CREATE INDEX audit_log_created_at_id_idx ON public.audit_log USING btree (created_at, id)',
      'CREATE UNIQUE INDEX audit_log_pkey ON public.audit_log USING btree (id)',
    ]);
    const next = await db.query(`INSERT INTO public.audit_log (created_at) VALUES (now()) RETURNING id`);
    expect(Number(next.rows[0].id)).toBe(3_002);
  });

  it('is deterministic for the same options and now, and quotes identifiers', async () => {
    const weird = 'weird "name";';
    await seedAuditTable(db, { schema: weird, table: weird, rows: 500, oldFraction: 0.3, retentionDays: 30, now });
    await seedAuditTable(db, { schema: 'again', table: 'audit_log', rows: 500, oldFraction: 0.3, retentionDays: 30, now, chunkSize: 97 });
    const digest = async (qualified: string): Promise<string> =>
      (await db.query(`SELECT md5(string_agg(row_to_json(t)::text, E'\\n' ORDER BY id)) AS d FROM ${qualified} t`)).rows[0].d;
    expect(await digest('"weird ""name"";"."weird ""name"";"')).toBe(await digest('again.audit_log'));
  });

  it('rows round-trip through row_to_json and json_populate_record, the archive format contract', async () => {
    const mismatches = await db.query(
      `SELECT count(*) AS n FROM public.audit_log t
        WHERE json_populate_record(null::public.audit_log, row_to_json(t)) IS DISTINCT FROM t`,
    );
    expect(Number(mismatches.rows[0].n)).toBe(0);
    const awkward = await db.query(`SELECT count(*) AS n FROM public.audit_log WHERE payload ? 'note' OR family(ip) = 6 OR tags = '{}'`);
    expect(Number(awkward.rows[0].n)).toBeGreaterThan(0);
  });

  it('refuses to overwrite an existing table unless asked to replace it', async () => {
    await expect(seedAuditTable(db, { schema: 'public', table: 'audit_log', rows: 10, oldFraction: 0.5, retentionDays: 365, now })).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('already exists'),
    });
    const replaced = await seedAuditTable(db, { schema: 'public', table: 'audit_log', rows: 10, oldFraction: 0.5, retentionDays: 365, now, replace: true });
    expect(replaced.total).toBe(10);
  });

  it('rejects impossible options before touching the database', async () => {
    await expect(seedAuditTable(db, { schema: 'public', table: 'x'.repeat(64), rows: -1, oldFraction: 2, retentionDays: 0 })).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/rows.*oldFraction.*retentionDays.*table/),
    });
  });
});
