/**
 * User DELETE triggers (found by probing): the guarded delete fires them, and what they change —
 * another row deleted, a row kept by a BEFORE trigger returning NULL — is archived nowhere. Such a
 * table is refused like one referenced ON DELETE CASCADE, unless its config says
 * `allow_delete_triggers: true`; trigger functions then run with the archiver's search_path
 * (pg_catalog), and an unqualified name in them fails with a message that says so.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, committedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import { runCli } from '../helpers/run-cli.js';

const fx = useArchiveFixture();
const ev = { name: 'ev', timestamp_column: 'created_at' };

/** Ten rows past the retention (ids 1–10) and row 1000 inside it. */
async function createEv(): Promise<void> {
  await fx.db.query(`CREATE TABLE ev (id int PRIMARY KEY, created_at timestamptz NOT NULL)`);
  await fx.db.query(`INSERT INTO ev SELECT g, timestamptz '2020-01-01' + g * interval '1 hour' FROM generate_series(1, 10) g`);
  await fx.db.query(`INSERT INTO ev VALUES (1000, now())`);
}

/** Deletes row 1000 (inside the retention) when row 1 is deleted. */
async function createSideEffectTrigger(): Promise<void> {
  await fx.db.query(`CREATE FUNCTION side() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.ev WHERE id = old.id + 999; RETURN old; END $$`);
  await fx.db.query(`CREATE TRIGGER t AFTER DELETE ON ev FOR EACH ROW EXECUTE FUNCTION side()`);
}

const ids = async (table = 'ev'): Promise<number[]> => (await fx.db.query<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`)).rows.map((r) => r.id);
const all = [...Array.from({ length: 10 }, (_, i) => i + 1), 1000];

/** Archives `table` in batches of 5, one in flight, running `create` once the first batch's sidecar is written (before its delete). */
async function archiveCreatingMidRun(table: typeof ev & { allow_delete_triggers?: boolean }, create: () => Promise<void>) {
  let created = false;
  const summary = await archiveWith(fx.configFor([table], { batch_size: 5, batches_in_flight: 1 }), fx.store, {
    onPhase: async (phase) => {
      if (phase === 'after-metadata' && !created) {
        created = true;
        await create();
      }
    },
  });
  expect(created).toBe(true);
  return summary;
}

describe('user DELETE triggers', () => {
  it('refuses a table with an AFTER DELETE trigger before reading a row: nothing deleted, nothing archived, the trigger and the fix named', async () => {
    await createEv();
    await createSideEffectTrigger();
    const summary = await archiveWith(fx.configFor([ev], { batch_size: 10 }), fx.store);
    const table = summary.tables[0]!;
    expect(table.status).toBe('failed');
    expect(table.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(table.error!.message).toContain('"t" on public.ev (AFTER ROW, public.side())');
    expect(table.error!.message).toContain('allow_delete_triggers: true');
    expect(table.error!.message).not.toContain('\n');
    expect(await ids()).toEqual(all);
    const archive = await inspectArchive(fx.store);
    expect(archive.objects).toEqual([]);
    expect(archive.pendingMarkers).toEqual([]);
  });

  it('refuses a BEFORE DELETE trigger that returns NULL (the rows would be uploaded and rewritten out of the object forever), and a statement-level one', async () => {
    await createEv();
    await fx.db.query(`CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`);
    await fx.db.query(`CREATE TRIGGER k BEFORE DELETE ON ev FOR EACH ROW EXECUTE FUNCTION keep()`);
    await fx.db.query(`CREATE TRIGGER s AFTER DELETE ON ev FOR EACH STATEMENT EXECUTE FUNCTION keep()`);
    const summary = await archiveWith(fx.configFor([ev], { batch_size: 10 }), fx.store);
    expect(summary.tables[0]!.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(summary.tables[0]!.error!.message).toContain('"k" on public.ev (BEFORE ROW, public.keep())');
    expect(summary.tables[0]!.error!.message).toContain('"s" on public.ev (AFTER STATEMENT, public.keep())');
    expect((await inspectArchive(fx.store)).objects).toEqual([]);
    // Disabled triggers never fire: the table is archived.
    await fx.db.query(`ALTER TABLE ev DISABLE TRIGGER k, DISABLE TRIGGER s`);
    const disabled = await archiveWith(fx.configFor([ev], { batch_size: 10 }), fx.store);
    expect(disabled.tables[0]!.error).toBeUndefined();
    expect(await ids()).toEqual([1000]);
  });

  it('refuses a partitioned table whose partition has a DELETE trigger; internal foreign-key triggers do not count', async () => {
    await fx.db.query(`CREATE TABLE pev (id int, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)`);
    await fx.db.query(`CREATE TABLE pev_2020 PARTITION OF pev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')`);
    await fx.db.query(`CREATE TABLE pev_rest PARTITION OF pev DEFAULT`);
    await fx.db.query(`INSERT INTO pev SELECT g, timestamptz '2020-01-01' + g * interval '1 hour' FROM generate_series(1, 10) g`);
    await fx.db.query(`CREATE TABLE refs (id int PRIMARY KEY, ev_id int, ev_at timestamptz, FOREIGN KEY (ev_id, ev_at) REFERENCES pev)`);
    await fx.db.query(`CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN old; END $$`);
    await fx.db.query(`CREATE TRIGGER p AFTER DELETE ON pev_2020 FOR EACH ROW EXECUTE FUNCTION noop()`);
    const pev = { name: 'pev', timestamp_column: 'created_at' };
    const refused = await archiveWith(fx.configFor([pev], { batch_size: 10 }), fx.store);
    expect(refused.tables[0]!.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(refused.tables[0]!.error!.message).toContain('"p" on public.pev_2020');
    expect(await ids('pev')).toHaveLength(10);
    await fx.db.query(`DROP TRIGGER p ON pev_2020`);
    const archived = await archiveWith(fx.configFor([pev], { batch_size: 10 }), fx.store);
    expect(archived.tables[0]!.error).toBeUndefined();
    expect(await ids('pev')).toEqual([]);
  });

  it('the CLI exits 1 on the refusal (as for ON DELETE CASCADE) and deletes nothing', async () => {
    await createEv();
    await createSideEffectTrigger();
    const dir = await mkdtemp(join(tmpdir(), 'delete-triggers-'));
    try {
      const file = join(dir, 'config.yaml');
      await writeFile(
        file,
        `local:\n  path: ${join(dir, 'archive')}\ndefaults:\n  retention_days: 10\n  batch_size: 10\ndatabases:\n  - name: app\n    url: ${fx.db.url}\n    tables:\n      - name: ev\n        timestamp_column: created_at\n`,
      );
      const run = await runCli(['archive', '--config', file]);
      expect(run.code).toBe(1);
      expect(run.stdout + run.stderr).toContain('TABLE_NOT_SUPPORTED');
      expect(await ids()).toEqual(all);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with allow_delete_triggers: true the table is archived and the trigger fires', async () => {
    await createEv();
    await fx.db.query(`CREATE TABLE deleted_log (id int)`);
    await fx.db.query(`CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.deleted_log VALUES (old.id); RETURN old; END $$`);
    await fx.db.query(`CREATE TRIGGER log AFTER DELETE ON ev FOR EACH ROW EXECUTE FUNCTION log_delete()`);
    const summary = await archiveWith(fx.configFor([{ ...ev, allow_delete_triggers: true }], { batch_size: 10 }), fx.store);
    expect(summary.tables[0]!.error).toBeUndefined();
    expect(summary.tables[0]!.rowsArchived).toBe(10);
    expect(await ids()).toEqual([1000]);
    expect(await ids('deleted_log')).toEqual(all.slice(0, 10));
    expect([...archivedKeyCounts(await inspectArchive(fx.store)).keys()].map(Number).sort((a, b) => a - b)).toEqual(all.slice(0, 10));
  });

  it('a DELETE trigger created during the run rolls back the delete in flight (TABLE_CHANGED): its side effect is undone', async () => {
    await createEv();
    const summary = await archiveCreatingMidRun(ev, createSideEffectTrigger);
    expect(summary.tables[0]!.error!.code).toBe('TABLE_CHANGED');
    expect(summary.tables[0]!.error!.message).toContain('"t" on public.ev');
    expect(await ids()).toEqual(all);
    // The batch's object stays in flight (its marker says its delete never committed) until a run reconciles it.
    expect(committedKeyCounts(await inspectArchive(fx.store)).size).toBe(0);
  });

  it('a BEFORE DELETE trigger returning NULL created during the run fails the table (TABLE_CHANGED), not skipped as rows changed since read (found by probing: exit 0, every later row "skipped")', async () => {
    await createEv();
    const summary = await archiveCreatingMidRun(ev, async () => {
      await fx.db.query(`CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`);
      await fx.db.query(`CREATE TRIGGER k BEFORE DELETE ON ev FOR EACH ROW EXECUTE FUNCTION keep()`);
    });
    expect(summary.tables[0]!.error?.code).toBe('TABLE_CHANGED');
    expect(summary.tables[0]!.error!.message).toContain('"k" on public.ev');
    expect(summary.tables[0]!.rowsArchived).toBe(0);
    expect(await ids()).toEqual(all);
    expect(committedKeyCounts(await inspectArchive(fx.store)).size).toBe(0);
  });

  it('a rule ON DELETE created during the run rolls back the delete in flight (TABLE_CHANGED), also with allow_delete_triggers (found in review)', async () => {
    await createEv();
    await fx.db.query(`ALTER TABLE ev ADD COLUMN deleted boolean NOT NULL DEFAULT false`);
    const summary = await archiveCreatingMidRun({ ...ev, allow_delete_triggers: true }, async () => {
      await fx.db.query(`CREATE RULE soft AS ON DELETE TO ev DO INSTEAD UPDATE ev SET deleted = true WHERE id = old.id RETURNING ev.*`);
    });
    expect(summary.tables[0]!.error!.code).toBe('TABLE_CHANGED');
    expect(summary.tables[0]!.error!.message).toContain('rule(s) ON DELETE public.ev.soft');
    expect(summary.tables[0]!.rowsArchived).toBe(0);
    // Neither deleted nor soft-deleted: the rewritten delete was rolled back.
    expect((await fx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ev WHERE NOT deleted`)).rows[0]!.n).toBe(11);
    expect(committedKeyCounts(await inspectArchive(fx.store)).size).toBe(0);
  });

  it('names the pinned search_path and the fix when a trigger function uses an unqualified name (42P01); nothing deleted', async () => {
    await createEv();
    await fx.db.query(`CREATE TABLE deleted_log (id int)`);
    await fx.db.query(`CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO deleted_log VALUES (old.id); RETURN old; END $$`);
    await fx.db.query(`CREATE TRIGGER log AFTER DELETE ON ev FOR EACH ROW EXECUTE FUNCTION log_delete()`);
    const config = fx.configFor([{ ...ev, allow_delete_triggers: true }], { batch_size: 10 });
    const failed = await archiveWith(config, fx.store);
    const error = failed.tables[0]!.error!;
    expect(error.code).toBe('DB_QUERY');
    expect(error.message).toContain('42P01');
    expect(error.message).toContain('search_path');
    expect(error.message).toContain('pg_catalog');
    expect(error.message).toContain('ALTER FUNCTION public.log_delete() SET search_path');
    expect(error.message).not.toContain('\n');
    expect(await ids()).toEqual(all);
    expect(await ids('deleted_log')).toEqual([]);
    // The fix the message names works.
    await fx.db.query(`ALTER FUNCTION public.log_delete() SET search_path = public`);
    const fixed = await archiveWith(config, fx.store);
    expect(fixed.tables[0]!.error).toBeUndefined();
    expect(await ids()).toEqual([1000]);
    expect(await ids('deleted_log')).toEqual(all.slice(0, 10));
  });

  it('refuses a table with a rule ON DELETE, even with allow_delete_triggers: a DO INSTEAD rule kept the rows while the delete reported them deleted (found in review)', async () => {
    await createEv();
    await fx.db.query(`ALTER TABLE ev ADD COLUMN deleted boolean NOT NULL DEFAULT false`);
    await fx.db.query(`CREATE RULE soft AS ON DELETE TO ev DO INSTEAD UPDATE ev SET deleted = true WHERE id = old.id RETURNING ev.*`);
    const summary = await archiveWith(fx.configFor([{ ...ev, allow_delete_triggers: true }], { batch_size: 10 }), fx.store);
    const table = summary.tables[0]!;
    expect(table.error!.code).toBe('TABLE_NOT_SUPPORTED');
    expect(table.error!.message).toContain('rule(s) ON DELETE public.ev.soft');
    expect(table.error!.message).not.toContain('\n');
    expect((await fx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ev WHERE NOT deleted`)).rows[0]!.n).toBe(11);
    expect((await inspectArchive(fx.store)).objects).toEqual([]);
    // Disabled, it rewrites nothing: the table archives.
    await fx.db.query(`ALTER TABLE ev DISABLE RULE soft`);
    const after = await archiveWith(fx.configFor([ev], { batch_size: 10 }), fx.store);
    expect(after.tables[0]!.error).toBeUndefined();
    expect(await ids()).toEqual([1000]);
  });
});
