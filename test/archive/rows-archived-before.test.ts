/**
 * Rows that come back into the table after they were archived (a restore, a replayed import):
 * the next run produces the same batch key, finds the committed object with identical content,
 * and deletes the copies in the table. The committed object is never rewritten or removed —
 * whatever happens to the copies meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';

const fx = useArchiveFixture();

async function snapshotObjects(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const o of fx.store.list('')) {
    if (o.key.startsWith('_auditlog/')) continue;
    out.set(o.key, (await fx.store.get(o.key))!.toString('base64'));
  }
  return out;
}

describe('rows archived before, back in the table', () => {
  it('are deleted against the committed object, which stays byte-identical', async () => {
    await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('CREATE TABLE events_copy AS SELECT * FROM events');
    const config = fx.configFor([eventsTable], { batch_size: 50 });
    await archiveWith(config, fx.store);
    const before = await snapshotObjects();
    expect([...before.keys()].filter((k) => k.endsWith('.jsonl.gz'))).toHaveLength(1);

    await fx.db.query('INSERT INTO events SELECT * FROM events_copy');
    const again = await archiveWith(config, fx.store);
    expect(again.tables[0]!.rowsArchived).toBe(12);
    expect(await rowIds(fx.db)).toEqual([]);
    // Neither the data object nor its sidecar is rewritten.
    expect(await snapshotObjects()).toEqual(before);
  });

  it('when some copies vanish during the run, the committed object keeps every archived row and the other copies are deleted against it', async () => {
    await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('CREATE TABLE events_copy AS SELECT * FROM events');
    const config = fx.configFor([eventsTable], { batch_size: 50 });
    await archiveWith(config, fx.store);
    const before = await snapshotObjects();

    await fx.db.query('INSERT INTO events SELECT * FROM events_copy');
    const again = await archiveWith(config, fx.store, {
      onPhase: async (phase) => {
        // The application deletes one copy after the archiver read it.
        if (phase === 'after-marker') await fx.db.query('DELETE FROM events WHERE id = 5');
      },
    });
    expect(again.tables[0]!.status).not.toBe('failed');
    const archive = await inspectArchive(fx.store);
    expect(archive.objects[0]!.meta.record_count).toBe(12);
    expect(await snapshotObjects()).toEqual(before);
    expect(archive.pendingMarkers).toEqual([]);
    // The other copies were deleted against it: each is an exact copy of an archived row.
    expect(again.tables[0]!.rowsArchived).toBe(11);
    expect(await rowIds(fx.db)).toEqual([]);
  });
  it('are refused when they differ in what only the sidecar records: a JSON null back where an SQL NULL was archived stays in the table', async () => {
    // Found in review: the line of a JSON null and of an SQL NULL is the same `null`; only the
    // sidecar's json_null_values tells them apart, so comparing the bytes was not enough.
    await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('UPDATE events SET body = NULL WHERE id = 3');
    await fx.db.query('CREATE TABLE events_copy AS SELECT * FROM events');
    const config = fx.configFor([eventsTable], { batch_size: 50 });
    await archiveWith(config, fx.store);
    const before = await snapshotObjects();

    await fx.db.query('INSERT INTO events SELECT * FROM events_copy');
    await fx.db.query(`UPDATE events SET body = 'null'::jsonb WHERE id = 3`);
    const again = await archiveWith(config, fx.store);
    expect(again.tables[0]!.status).toBe('failed');
    expect(again.tables[0]!.error?.code).toBe('STORAGE_CONFLICT');
    expect(again.tables[0]!.rowsArchived).toBe(0);
    expect(await rowIds(fx.db)).toHaveLength(12);
    expect((await fx.db.query(`SELECT jsonb_typeof(body) AS t FROM events WHERE id = 3`)).rows[0].t).toBe('null');
    expect(await snapshotObjects()).toEqual(before);
  });
});
