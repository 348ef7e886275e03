/**
 * A key archived twice — restored into the live table, changed, archived again by a later run —
 * comes back in the version archived last, whatever --batch-size and --conflict: the older
 * versions are counted as superseded, not as conflicts, and `fail` does not fail on them (found
 * by probing: the older version won or `fail` stopped, depending on how the versions were batched).
 */
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import type { Candidate } from '../../src/restore/restore-options.js';
import { objectsThatMayShareKeys } from '../../src/restore/superseded-lines.js';
import { RunEvents } from '../../src/core/run-events.js';

const f = useArchiveFixture();
const target = { schema: 'public', table: 'restored' };

/** ids 1–10 archived by one run; back in the table, 6–10 deleted and 3 changed; 1–5 archived again by a later run. */
async function archiveTwice(): Promise<ReturnType<typeof f.configFor>> {
  await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
  const config = f.configFor([eventsTable], { batch_size: 50 });
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
  expect((await restoreWith(config, f.store, { table: 'events' })).rows.inserted).toBe(10);
  await f.db.query('DELETE FROM events WHERE id > 5');
  await f.db.query(`UPDATE events SET note = 'second version' WHERE id = 3`);
  await new Promise((r) => setTimeout(r, 5));
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(5);
  return config;
}

async function notes(table = 'restored'): Promise<string[]> {
  const r = await f.db.query<{ id: string; note: string }>(`SELECT id::text AS id, note FROM ${table} ORDER BY id::bigint`);
  return r.rows.map((x) => `${x.id}:${x.note.startsWith('note') ? 'first' : x.note}`);
}

const NEWEST = ['1:first', '2:first', '3:second version', '4:first', '5:first', '6:first', '7:first', '8:first', '9:first', '10:first'];

describe('a key archived by two runs', () => {
  it.each([
    ['fail', undefined],
    ['fail', 1],
    ['skip', undefined],
    ['skip', 1],
    ['overwrite', 1],
    ['upsert', 3],
  ] as const)('restores the version archived last into a new table (--conflict %s, --batch-size %s)', async (conflict, batchSize) => {
    const config = await archiveTwice();
    const s = await restoreWith(config, f.store, { table: 'events', target, conflict, ...(batchSize === undefined ? {} : { batchSize }) });
    expect(s.error).toBeUndefined();
    expect(s.status).toBe('ok');
    expect(s.rows).toEqual({ restored: 10, inserted: 10, conflicts: 0, skippedByTriggers: 0, superseded: 5 });
    expect(s.objects.restored).toBe(2);
    expect(await notes()).toEqual(NEWEST);
  });

  it('restores the version archived last into a partitioned target', async () => {
    const config = await archiveTwice();
    await f.db.query(`CREATE TABLE restored (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, kind text, body jsonb, note text) PARTITION BY RANGE (id)`);
    await f.db.query(`CREATE TABLE restored_lo PARTITION OF restored FOR VALUES FROM (0) TO (4)`);
    await f.db.query(`CREATE TABLE restored_hi PARTITION OF restored FOR VALUES FROM (4) TO (100)`);
    const s = await restoreWith(config, f.store, { table: 'events', target, conflict: 'upsert', batchSize: 1 });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 10, inserted: 10, conflicts: 0, skippedByTriggers: 0, superseded: 5 });
    expect(await notes()).toEqual(NEWEST);
  });

  it('a dry run counts the superseded versions on their own', async () => {
    const config = await archiveTwice();
    const s = await restoreWith(config, f.store, { table: 'events', target, dryRun: true });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 10, inserted: 10, conflicts: 0, skippedByTriggers: 0, superseded: 5 });
  });

  it('a rerun after a restore stopped midway ends with the version archived last and honest counts', async () => {
    const config = await archiveTwice();
    await f.db.query(`CREATE TABLE restored (LIKE events INCLUDING ALL)`);
    // Stops the load at key 4 of the later run's object: the earlier object (all but its keys 6–10 superseded) is done by then.
    await f.db.query(`CREATE FUNCTION stop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = 4 THEN RAISE EXCEPTION 'stopped'; END IF; RETURN NEW; END $$`);
    await f.db.query(`CREATE TRIGGER stop BEFORE INSERT ON restored FOR EACH ROW EXECUTE FUNCTION stop()`);
    const first = await restoreWith(config, f.store, { table: 'events', target, batchSize: 1, jobs: 1 });
    expect(first.status).toBe('failed');
    expect(first.rows).toEqual({ restored: 8, inserted: 8, conflicts: 0, skippedByTriggers: 0, superseded: 5 });
    await f.db.query(`DROP TRIGGER stop ON restored`);
    const rerun = await restoreWith(config, f.store, { table: 'events', target, batchSize: 1, jobs: 1, conflict: 'skip' });
    expect(rerun.error).toBeUndefined();
    expect(rerun.objects.skippedByWatermark).toBe(1);
    // The earlier object is recorded as restored, yet its superseded lines stay out; the later one's three committed keys conflict.
    expect(rerun.rows).toEqual({ restored: 5, inserted: 2, conflicts: 3, skippedByTriggers: 0, superseded: 0 });
    expect(await notes()).toEqual(NEWEST);
  });
});

/**
 * After each committed batch, until it succeeds: the application inserts `id` again (`select`
 * gives the row's values), once the run has deleted it. Batches commit out of order with
 * several in flight, so "the first commit" need not be the one that deleted it (a flaky first
 * version of these tests inserted it while still there).
 */
function reinsertOnceGone(events: RunEvents, id: number, select: string): () => Promise<boolean> {
  let chain: Promise<unknown> = Promise.resolve();
  let done = false;
  events.on('batch:committed', () => {
    chain = chain.then(async () => {
      if (done) return;
      const r = await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note) ${select} HAVING NOT EXISTS (SELECT 1 FROM events WHERE id = ${id})`);
      done = r.rowCount === 1;
    });
  });
  return async () => {
    await chain;
    return done;
  };
}

describe('a key archived twice by one run', () => {
  /**
   * ids 1–40, 3 h apart, archived 4 a batch. Once the batch holding id 1 commits (ids 1–4 gone from
   * the table), the application inserts id 1 again dated after id 40: the same run reaches it
   * later and archives it again, in a later object of the same run.
   */
  async function archiveTwiceInOneRun(): Promise<ReturnType<typeof f.configFor>> {
    await createEventsTable(f.db, { rows: 40, stepMinutes: 180, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 4 });
    const events = new RunEvents();
    const reinserted = reinsertOnceGone(events, 1, `SELECT 1, max(happened_at) + interval '1 minute', 'kind1', '{"g": 1}', 'second version' FROM events`);
    const summary = await archiveWith(config, f.store, { events });
    expect(await reinserted()).toBe(true);
    expect(summary.tables[0]!.rowsArchived).toBe(41);
    expect(await f.db.query('SELECT 1 FROM events')).toHaveProperty('rowCount', 0);
    return config;
  }

  it.each([
    ['fail', 1],
    ['skip', 1],
    ['skip', undefined],
  ] as const)('restores the version archived last (--conflict %s, --batch-size %s)', async (conflict, batchSize) => {
    const config = await archiveTwiceInOneRun();
    const s = await restoreWith(config, f.store, { table: 'events', target, conflict, ...(batchSize === undefined ? {} : { batchSize }) });
    expect(s.error).toBeUndefined();
    expect(s.rows).toEqual({ restored: 40, inserted: 40, conflicts: 0, skippedByTriggers: 0, superseded: 1 });
    const one = await f.db.query<{ note: string }>(`SELECT note FROM restored WHERE id = 1`);
    expect(one.rows).toEqual([{ note: 'second version' }]);
  });
});

describe('a key one run archived again in its pass behind the watermark', () => {
  /**
   * A first run archives ids 1–10 and leaves its watermark 20 days back. ids 11–30 come after it.
   * The second run's main pass archives them; right after its first batch commits, the
   * application inserts id 11 again dated 25 days back, behind the watermark: the same run's
   * second pass archives that later version in an object of an EARLIER day. Ordering a run's
   * objects by key took the older version for the newer one.
   */
  it('restores the version archived last, though its object sorts first', async () => {
    await createEventsTable(f.db, { rows: 10, stepMinutes: 60, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 4 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(10);
    await f.db.query(
      `INSERT INTO events (id, happened_at, kind, body, note)
       SELECT g, now() - interval '19 days' + make_interval(hours => g), 'kind', '{}', 'first' FROM generate_series(11, 30) g`,
    );
    const events = new RunEvents();
    const reinserted = reinsertOnceGone(events, 11, `SELECT 11, now() - interval '25 days', 'kind', '{}', 'second version'`);
    const second = await archiveWith(config, f.store, { events });
    expect(await reinserted()).toBe(true);
    expect(second.tables[0]!.rowsArchived).toBe(21);
    expect((await f.db.query('SELECT 1 FROM events')).rowCount).toBe(0);

    for (const batchSize of [1, undefined]) {
      await f.db.query('DROP TABLE IF EXISTS restored');
      const s = await restoreWith(config, f.store, { table: 'events', target, conflict: 'fail', ...(batchSize === undefined ? {} : { batchSize }) });
      expect(s.error).toBeUndefined();
      expect(s.rows).toEqual({ restored: 30, inserted: 30, conflicts: 0, skippedByTriggers: 0, superseded: 1 });
      const eleven = await f.db.query<{ note: string }>(`SELECT note FROM restored WHERE id = 11`);
      expect(eleven.rows, `--batch-size ${batchSize}`).toEqual([{ note: 'second version' }]);
    }
  });
});

describe('one run, batches starting at the same timestamp (one bulk transaction)', () => {
  // Object names are "<time of day>-<batch id hash>": batches that start at the same instant are
  // ordered by the hash, so which of two versions sorted later was chance (found in review: 45 and
  // 50 rows failed on the day it was found, the other sizes passed).
  it.each([41, 43, 45, 47, 49, 50])('restores the version archived last (%s rows at one timestamp)', async (n) => {
    await createEventsTable(f.db, { rows: n, stepMinutes: 0, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 4, batches_in_flight: 1 });
    const events = new RunEvents();
    // Once id 1 is gone, the application inserts it again a second later: the run's last batch, starting at the same instant, takes it.
    const reinserted = reinsertOnceGone(events, 1, `SELECT 1, max(happened_at) + interval '1 second', 'k', '{}', 'second version' FROM events`);
    const run = await archiveWith(config, f.store, { events });
    expect(await reinserted()).toBe(true);
    expect(run.tables[0]!.rowsArchived).toBe(n + 1);
    const s = await restoreWith(config, f.store, { table: 'events', target, conflict: 'skip' });
    expect(s.error).toBeUndefined();
    expect(s.rows).toMatchObject({ restored: n, inserted: n, conflicts: 0, superseded: 1 });
    const one = await f.db.query<{ note: string }>(`SELECT note FROM restored WHERE id = 1`);
    expect(one.rows).toEqual([{ note: 'second version' }]);
  });
});

describe('two runs of one table that overlap in time', () => {
  // Found in review: only the table lock keeps runs apart, so a cron run of every table started at
  // 02:00:00 can reach this table after a manual --table run started at 02:00:05 finished with it.
  // Ordered by run start, the manual run's OLDER version was restored.
  it('restores the version written last, not the one of the run that started last', async () => {
    await createEventsTable(f.db, { rows: 10, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 50 });
    expect((await archiveWith(config, f.store, { runId: '20261201T020005Z-bbbbbb' })).tables[0]!.rowsArchived).toBe(10);
    await f.db.query(`INSERT INTO events (id, happened_at, kind, body, note) VALUES (3, now() - interval '25 days', 'kind', '{}', 'second version')`);
    expect((await archiveWith(config, f.store, { runId: '20261201T020000Z-aaaaaa' })).tables[0]!.rowsArchived).toBe(1);
    const s = await restoreWith(config, f.store, { table: 'events', target, conflict: 'skip' });
    expect(s.error).toBeUndefined();
    expect(s.rows).toMatchObject({ restored: 10, conflicts: 0, superseded: 1 });
    const three = await f.db.query<{ note: string }>(`SELECT note FROM restored WHERE id = 3`);
    expect(three.rows).toEqual([{ note: 'second version' }]);
  });
});

describe('objectsThatMayShareKeys', () => {
  const obj = (key: string, run: string, lo: string, hi: string, type = 'bigint') =>
    ({ key, meta: { run_id: run, primary_key_columns: ['id'], columns: [{ name: 'id', type }], min_primary_key: [lo], max_primary_key: [hi] } }) as unknown as Candidate;
  it('holds only objects whose integer key ranges overlap, within one run too', () => {
    expect(objectsThatMayShareKeys([obj('a', 'r1', '1', '10'), obj('b', 'r1', '5', '20')])).toEqual(new Set(['a', 'b']));
    expect(objectsThatMayShareKeys([obj('a', 'r1', '1', '10'), obj('b', 'r1', '11', '20')])).toEqual(new Set());
    expect(objectsThatMayShareKeys([obj('a', 'r1', '1', '10')])).toEqual(new Set());
    expect(objectsThatMayShareKeys([obj('a', 'r1', '1', '10'), obj('b', 'r1', '11', '20'), obj('c', 'r2', '21', '30')])).toEqual(new Set());
    expect(objectsThatMayShareKeys([obj('a', 'r1', '1', '100'), obj('b', 'r1', '101', '200'), obj('c', 'r2', '150', '150'), obj('d', 'r2', '300', '400')])).toEqual(new Set(['b', 'c']));
    // A wide object reaching over several later ones: each of them overlaps it.
    expect(objectsThatMayShareKeys([obj('a', 'r1', '1', '100'), obj('b', 'r2', '10', '20'), obj('c', 'r2', '30', '40')])).toEqual(new Set(['a', 'b', 'c']));
  });
  it('holds every object for keys that are not integers, within one run too', () => {
    expect(objectsThatMayShareKeys([obj('a', 'r1', 'a', 'b', 'text'), obj('b', 'r2', 'x', 'y', 'text')])).toEqual(new Set(['a', 'b']));
    expect(objectsThatMayShareKeys([obj('a', 'r1', 'a', 'b', 'text'), obj('b', 'r1', 'x', 'y', 'text')])).toEqual(new Set(['a', 'b']));
  });
});
