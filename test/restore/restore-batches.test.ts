/**
 * How restore loads batches. The three ways a batch reaches the target (load-batch.ts
 * LoadPath) give the same rows: COPY straight into an empty key range (`direct`), COPY of converted rows into the staging
 * table (`converted`, when keys may exist), and json_populate_record (`json`, for what the
 * conversion cannot do exactly). The fidelity table's edge values round-trip through each, a
 * COPY that meets an existing key after all falls back without losing or doubling a row, and an
 * object that fits a batch is never split.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { FIXTURE, JSON_FIXTURE, JSON_TABLE, SCHEMA, TABLE } from '../helpers/fidelity-fixture.js';
import { restoreWith } from '../helpers/restore-run.js';
import { quoteQualified } from '../../src/db/quote-ident.js';
import type { BatchMetadata } from '../../src/core/batch-metadata.js';

const f = useArchiveFixture();

/** A logger that keeps the "batch restored" lines. */
function batchLog(): { logger: pino.Logger; batches: Array<{ rows: number; objects: number; path: string; inserted: number }> } {
  const batches: Array<{ rows: number; objects: number; path: string; inserted: number }> = [];
  const logger = pino({ level: 'debug' }, {
    write: (line: string) => {
      const entry = JSON.parse(line) as { msg: string; rows: number; objects: number; path: string; inserted: number };
      if (entry.msg === 'batch restored') batches.push(entry);
    },
  });
  return { logger, batches };
}

describe('restore batches', () => {
  it('restore the fidelity table exactly through COPY into the target, the converted staging path and json_populate_record', async () => {
    await f.db.query(FIXTURE);
    const table = quoteQualified(SCHEMA, TABLE);
    // jsonb[] is one of the types never converted (its JSON null elements); without it every other column converts.
    await f.db.query(`ALTER TABLE ${table} DROP COLUMN jarr`);
    const before = (await f.db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${table} t ORDER BY id`)).rows.slice(0, 5);
    const config = f.configFor([{ schema: SCHEMA, name: TABLE, timestamp_column: 'at' }], { retention_days: 30, batch_size: 2 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(5);

    // One line per batch: each line takes the path its own values allow.
    const one = batchLog();
    const s = await restoreWith(config, f.store, { table: TABLE, target: { schema: SCHEMA, table: 'one' }, batchSize: 1, logger: one.logger });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 5, inserted: 5, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect((await f.db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${quoteQualified(SCHEMA, 'one')} t ORDER BY id`)).rows).toEqual(before);
    // Row 5's json column holds a JSON string, which json_populate_record re-escapes: that line is left to it.
    // (The second line of a split object finds the first one's row in its key range: the staging path.)
    const paths = one.batches.map((b) => b.path);
    expect(paths.filter((p) => p === 'json')).toHaveLength(1);
    expect(paths.filter((p) => p === 'direct').length).toBeGreaterThanOrEqual(3);

    // Keys of the range already there: the converted rows go through the staging table and ON CONFLICT.
    const whole = batchLog();
    const first = await restoreWith(config, f.store, { table: TABLE, target: { schema: SCHEMA, table: 'some' }, batchSize: 1, logger: whole.logger });
    expect(first.rows.inserted).toBe(5);
    await f.db.query(`DELETE FROM ${quoteQualified(SCHEMA, 'some')} WHERE id IN (1, 4)`);
    const again = batchLog();
    const s2 = await restoreWith(config, f.store, { table: TABLE, target: { schema: SCHEMA, table: 'some' }, batchSize: 1, conflict: 'skip', ignoreWatermark: true, logger: again.logger });
    expect(s2.error).toBeUndefined();
    expect(s2.rows).toEqual({ restored: 5, inserted: 2, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    expect(again.batches.filter((b) => b.path === 'converted').length).toBeGreaterThanOrEqual(3);
    expect((await f.db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${quoteQualified(SCHEMA, 'some')} t ORDER BY id`)).rows).toEqual(before);

    // Into the live table, whole batches.
    const live = await restoreWith(config, f.store, { table: TABLE });
    expect(live.rows).toEqual({ restored: 5, inserted: 5, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect((await f.db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${table} t ORDER BY id LIMIT 5`)).rows).toEqual(before);
  });

  it('restore json values written as their text (\\u0000, escapes in a top-level string, outer whitespace) exactly through every path', async () => {
    await f.db.query(JSON_FIXTURE);
    const table = quoteQualified(SCHEMA, JSON_TABLE);
    // The domain column is never converted: without it, lines convert unless a value needs PostgreSQL.
    await f.db.query(`ALTER TABLE ${table} DROP COLUMN d`);
    const rows = async (t: string): Promise<string[]> => (await f.db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${t} t ORDER BY id`)).rows.map((r) => r.row);
    const before = (await rows(table)).slice(0, 9);
    const config = f.configFor([{ schema: SCHEMA, name: JSON_TABLE, timestamp_column: 'at' }], { retention_days: 30, batch_size: 100 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(9);

    // One line per batch: the lines written as text convert (COPY into the target, or the staging table after the first);
    // row 9's top-level string is left to json_populate_record.
    const one = batchLog();
    const s = await restoreWith(config, f.store, { table: JSON_TABLE, target: { schema: SCHEMA, table: 'json one' }, batchSize: 1, logger: one.logger });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 9, inserted: 9, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect(await rows(quoteQualified(SCHEMA, 'json one'))).toEqual(before);
    const paths = one.batches.map((b) => b.path);
    expect(paths.filter((p) => p === 'json')).toHaveLength(1);
    expect(paths).toContain('direct');

    // The whole object in one batch: row 9 sends every line through json_populate_record.
    const whole = batchLog();
    const w = await restoreWith(config, f.store, { table: JSON_TABLE, target: { schema: SCHEMA, table: 'json whole' }, logger: whole.logger });
    expect(w.error).toBeUndefined();
    expect(w.rows).toEqual({ restored: 9, inserted: 9, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect(whole.batches.map((b) => b.path)).toEqual(['json']);
    expect(await rows(quoteQualified(SCHEMA, 'json whole'))).toEqual(before);

    // Keys of the range already there: the lines that convert go through the staging table and ON CONFLICT.
    await f.db.query(`DELETE FROM ${quoteQualified(SCHEMA, 'json one')} WHERE id <> 9`);
    const again = batchLog();
    const s2 = await restoreWith(config, f.store, { table: JSON_TABLE, target: { schema: SCHEMA, table: 'json one' }, batchSize: 1, conflict: 'skip', ignoreWatermark: true, logger: again.logger });
    expect(s2.error).toBeUndefined();
    expect(s2.rows).toEqual({ restored: 9, inserted: 8, conflicts: 1, skippedByTriggers: 0, superseded: 0 });
    expect(again.batches.filter((b) => b.path === 'converted').length).toBeGreaterThanOrEqual(1);
    expect(await rows(quoteQualified(SCHEMA, 'json one'))).toEqual(before);
  });

  it('a COPY into the target that meets an existing key after all is rolled back and the batch loads through ON CONFLICT', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
    const original = (await f.db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM events t ORDER BY id`)).rows;
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    // Sidecars whose key ranges miss the rows: the range probe sees no existing key, the COPY does.
    const sidecars: string[] = [];
    for await (const o of f.store.list('app/public.events/')) if (o.key.endsWith('.metadata.json')) sidecars.push(o.key);
    expect(sidecars.length).toBe(3);
    const setRanges = async (min: string, max: string): Promise<void> => {
      for (const key of sidecars) {
        const meta = JSON.parse((await f.store.get(key))!.toString('utf8')) as BatchMetadata;
        await f.store.put(key, Buffer.from(JSON.stringify({ ...meta, min_primary_key: [min], max_primary_key: [max] })));
      }
    };
    await setRanges('-2', '-1');
    await f.db.query(`INSERT INTO events SELECT v.id, now(), 'live', '{}', 'live row' FROM (VALUES (1), (9), (20)) v(id)`);
    const log = batchLog();
    const s = await restoreWith(config, f.store, { table: 'events', conflict: 'skip', logger: log.logger });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    expect(log.batches.map((b) => b.path)).toContain('converted');
    const now = (await f.db.query<{ id: string; row: string }>(`SELECT id, ROW(t.*)::text AS row FROM events t ORDER BY id`)).rows;
    expect(now.length).toBe(20);
    for (const r of now) expect(r.row).toEqual(['1', '9', '20'].includes(r.id) ? expect.stringContaining('live row') : original[Number(r.id) - 1]!.row);

    // --conflict fail still names the key when the COPY found it.
    await f.db.query(`DELETE FROM events WHERE id NOT IN (1, 9, 20)`);
    const failed = await restoreWith(config, f.store, { table: 'events', conflict: 'fail', ignoreWatermark: true, jobs: 1 });
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('RESTORE_CONFLICT');
    expect(failed.error?.message).toMatch(/Key \(id\)=\(1\) already exists/);

    // A key range the key type cannot read only rules out the direct COPY.
    await setRanges('not a number', '-1');
    const odd = await restoreWith(config, f.store, { table: 'events', conflict: 'skip', ignoreWatermark: true });
    expect(odd.error).toBeUndefined();
    expect(odd.rows).toEqual({ restored: 20, inserted: 17, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
  });

  it('counts the rows a trigger on the target drops on their own, not as conflicts: such a target is loaded with INSERT, not COPY (found by probing)', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    await f.db.query(`CREATE FUNCTION odd_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$`);
    await f.db.query(`CREATE TRIGGER odd_only BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION odd_only()`);
    const log = batchLog();
    const s = await restoreWith(config, f.store, { table: 'events', logger: log.logger });
    expect(s.error).toBeUndefined();
    expect(s.status).toBe('ok');
    expect(s.rows).toEqual({ restored: 20, inserted: 10, conflicts: 0, skippedByTriggers: 10, superseded: 0 });
    expect(log.batches.map((b) => b.path)).not.toContain('direct');
    expect(Number((await f.db.query<{ n: string }>(`SELECT count(*) AS n FROM events`)).rows[0]!.n)).toBe(10);

    // skip: keys already there are conflicts, also where the trigger would have dropped the row anyway.
    await f.db.query(`DELETE FROM events WHERE id > 10`);
    const skip = await restoreWith(config, f.store, { table: 'events', conflict: 'skip', ignoreWatermark: true });
    expect(skip.rows).toEqual({ restored: 20, inserted: 5, conflicts: 5, skippedByTriggers: 10, superseded: 0 });

    // upsert: a BEFORE UPDATE trigger that drops the update of some existing rows.
    await f.db.query(`CREATE FUNCTION keep_seven() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF OLD.id = 7 THEN RETURN NULL; END IF; RETURN NEW; END $$`);
    await f.db.query(`CREATE TRIGGER keep_seven BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION keep_seven()`);
    await f.db.query(`UPDATE events SET note = 'changed' WHERE id IN (3, 5)`);
    const up = await restoreWith(config, f.store, { table: 'events', conflict: 'upsert', ignoreWatermark: true });
    expect(up.error).toBeUndefined();
    // 20 lines: 10 even ids dropped on insert, 10 odd ids already there; id 7's update dropped too.
    expect(up.rows).toEqual({ restored: 20, inserted: 0, conflicts: 9, skippedByTriggers: 11, superseded: 0 });
    expect(Number((await f.db.query<{ n: string }>(`SELECT count(*) AS n FROM events WHERE note = 'changed'`)).rows[0]!.n)).toBe(0);
  });

  it('counts rows a trigger on a partition of a partitioned target drops', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    await f.db.query(`CREATE TABLE parted (LIKE events) PARTITION BY RANGE (id)`);
    await f.db.query(`ALTER TABLE parted ADD PRIMARY KEY (id)`);
    await f.db.query(`CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (MINVALUE) TO (11)`);
    await f.db.query(`CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (11) TO (MAXVALUE)`);
    await f.db.query(`CREATE FUNCTION drop_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`);
    await f.db.query(`CREATE TRIGGER drop_all BEFORE INSERT ON parted_high FOR EACH ROW EXECUTE FUNCTION drop_all()`);
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'parted' } });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 20, inserted: 10, conflicts: 0, skippedByTriggers: 10, superseded: 0 });
    expect(Number((await f.db.query<{ n: string }>(`SELECT count(*) AS n FROM parted`)).rows[0]!.n)).toBe(10);

    // upsert, where a partition's BEFORE UPDATE trigger drops the updates of the rows already there:
    // a partitioned target returns no xmax, so inserted rows are counted from the keys (found in review).
    await f.db.query(`DROP TRIGGER drop_all ON parted_high`);
    await f.db.query(`CREATE TRIGGER drop_updates BEFORE UPDATE ON parted_low FOR EACH ROW EXECUTE FUNCTION drop_all()`);
    const up = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'parted' }, conflict: 'upsert', ignoreWatermark: true });
    expect(up.error).toBeUndefined();
    expect(up.rows).toEqual({ restored: 20, inserted: 10, conflicts: 0, skippedByTriggers: 10, superseded: 0 });
    expect(Number((await f.db.query<{ n: string }>(`SELECT count(*) AS n FROM parted`)).rows[0]!.n)).toBe(20);
  });

  it('loads a target whose key is DEFERRABLE with INSERT, not COPY: a key inserted meanwhile would only fail at COMMIT (found in review)', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable]);
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    await f.db.query(`CREATE TABLE deferred (LIKE events INCLUDING DEFAULTS, PRIMARY KEY (id) DEFERRABLE INITIALLY DEFERRED)`);
    const log = batchLog();
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'deferred' }, logger: log.logger });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 20, inserted: 20, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    expect(log.batches.length).toBeGreaterThan(0);
    expect(log.batches.map((b) => b.path)).not.toContain('direct');
  });

  it('never splits an object that fits in a batch: its final part would wait for every batch in flight', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 4 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    const log = batchLog();
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'copy' }, batchSize: 6, logger: log.logger });
    expect(s.rows).toEqual({ restored: 20, inserted: 20, conflicts: 0, skippedByTriggers: 0, superseded: 0 });
    // Objects of 4 rows in batches of up to 6 rows: one object per batch, none split over two.
    expect(log.batches.map((b) => [b.objects, b.rows])).toEqual(Array.from({ length: 5 }, () => [1, 4]));
  });
});
