/**
 * Contention (issue #3): two archivers started at once on the same table, the application updating
 * and deleting rows of batches in flight, and the application holding row locks. Exactly one
 * archiver works; changed rows are never deleted in a version other than the one archived (I2);
 * locked rows are skipped without waiting. A clean rerun and the checker follow each.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { expectRowsOf, noteApplicationChanges, type ExpectedRows } from '../helpers/invariant-checker.js';
import { runCli } from '../helpers/run-cli.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { checkNow, events, expectNothingLostYet, finishAndCheck } from './finish-and-check.js';

const fx = useArchiveFixture();
let app: pg.Client;
beforeEach(async () => {
  app = new pg.Client({ connectionString: fx.db.url, application_name: 'the-application' });
  await app.connect();
});
afterEach(async () => {
  await app.end();
});

const ROWS = 50;

async function seedEvents(): Promise<ExpectedRows> {
  // ids 1..50, in time order, every one past the 10-day retention.
  await createEventsTable(fx.db, { rows: ROWS, stepMinutes: 20, endDaysAgo: 11 });
  return expectRowsOf(fx.db, events);
}

interface CliSummary {
  tables: { status: string; rowsArchived: number; error?: { code: string } }[];
}

describe('two archivers started at once on the same table', () => {
  it('exactly one works: the other is refused (LOCK_HELD) or finds nothing left, and no row is archived twice', async () => {
    const expected = await seedEvents();
    const file = join(tmpdir(), `two-archivers-${Date.now()}.json`);
    await writeFile(file, JSON.stringify({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 7 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] }));
    const runs = await Promise.all([runCli(['archive', '--config', file, '--json']), runCli(['archive', '--config', file, '--json'])]);
    const tables = runs.map((r) => (JSON.parse(r.stdout) as CliSummary).tables[0]!);
    const worked = tables.filter((t) => t.rowsArchived > 0);
    expect(worked).toHaveLength(1);
    expect(worked[0]!.rowsArchived).toBe(ROWS);
    const other = tables.find((t) => t !== worked[0])!;
    expect(other.error?.code === 'LOCK_HELD' || other.status === 'nothing-to-archive').toBe(true);
    await finishAndCheck(fx, expected, { scenario: 'concurrency: two archivers (CLI processes) started at once', injected: 'a second archiver process on the same table', archived: ROWS });
  });
});

describe('the application changes rows while the archiver runs', () => {
  it('updated rows are archived in their new version later, rows moved out of the range stay, deleted rows are in no object, a late old row is archived', async () => {
    const expected = await seedEvents();
    let deleted: string[] = [];
    let changed = false;
    // Other batches in flight wait at their next phase until the changes are noted: one that read a
    // changed row's new version could otherwise archive and delete it before the note is taken,
    // and the checker would hold the archived (last) version for a stale one (seen once under load).
    let noted: Promise<void> | undefined;
    const config = fx.configFor([eventsTable]);
    const summary = await archiveWith(config, await createObjectStore(config), {
      onPhase: async (phase) => {
        // Not before a commit: that batch holds its deleted rows locked, and the UPDATE below would wait for it.
        if (noted !== undefined && phase !== 'before-commit') await noted;
        // While the first batch (ids 1..7, read before this) is uploaded: id 7 changes under it.
        if (phase !== 'after-upload' || changed) return;
        changed = true;
        let done!: () => void;
        noted = new Promise((resolve) => (done = resolve));
        try {
          await app.query(`UPDATE events SET note = note || ' (edited)', body = body || '{"edited": true}' WHERE id % 7 = 0`);
          await app.query(`UPDATE events SET happened_at = now() WHERE id % 13 = 0`);
          deleted = (await app.query<{ id: string }>(`DELETE FROM events WHERE id % 11 = 0 RETURNING id::text AS id`)).rows.map((r) => JSON.stringify([r.id]));
          // A late arrival: an old timestamp behind what this run has already read.
          await app.query(`INSERT INTO events (id, happened_at, kind, note) SELECT 1001, min(happened_at) - interval '1 minute', 'late', 'inserted late' FROM events`);
          // Now, while every changed row is still in the table: their versions from here on are the last ones.
          await noteApplicationChanges(fx.db, events, expected, 'id % 7 = 0 OR id % 13 = 0 OR id = 1001', deleted);
        } finally {
          done();
        }
      },
    });
    expect(changed).toBe(true);
    expect(summary.tables[0]!.error).toBeUndefined();
    // At least id 7: read, then changed, so its batch's guarded delete left it in the table.
    expect(summary.tables[0]!.rowsSkipped).toBeGreaterThanOrEqual(1);
    expect(deleted).toHaveLength(4);
    expectNothingLostYet(await checkNow(fx, expected));
    // 50 rows, less 4 deleted and 3 made recent (13, 26, 39), plus the late one (behind the watermark: the rerun's second pass).
    const report = await finishAndCheck(fx, expected, {
      scenario: 'concurrency: application updates, re-dates, deletes and inserts old rows while batches are in flight',
      injected: 'application session: UPDATE/DELETE on rows of the batch being uploaded, INSERT of a row older than all others',
      archived: ROWS - 4 - 3 + 1,
      invariant: 'as above, against each row\'s last version; rows the application deleted are in no object (I2: no stale delete)',
    });
    expect(report.rowsInTable).toBe(3);
  });

  it('rows the application holds locked are skipped without waiting, and archived once released', async () => {
    const expected = await seedEvents();
    await app.query('BEGIN');
    await app.query('SELECT * FROM events WHERE id IN (3, 10, 20) FOR UPDATE');
    // A lock_timeout far above the bound below: only not waiting at all keeps the run under it.
    const config = fx.configFor([eventsTable], { lock_timeout_ms: 60_000 });
    const started = Date.now();
    const summary = await archiveWith(config, await createObjectStore(config));
    const elapsed = Date.now() - started;
    await app.query('COMMIT');
    expect(summary.tables[0]!.rowsSkipped).toBe(3);
    expect(summary.tables[0]!.rowsArchived).toBe(ROWS - 3);
    expect(elapsed).toBeLessThan(30_000);
    expectNothingLostYet(await checkNow(fx, expected));
    await finishAndCheck(fx, expected, { scenario: 'concurrency: application holds row locks on rows of a batch', injected: 'application session: SELECT … FOR UPDATE on 3 old rows during the run', archived: ROWS });
  });
});
