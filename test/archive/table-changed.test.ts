/**
 * A column added while a run archives the table (found in review): ADD COLUMN … DEFAULT keeps
 * every row's xmin, so the guarded delete alone would remove rows whose archived lines lack the
 * new column. The delete checks the columns under its table lock and rolls back instead.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';

const fx = useArchiveFixture();

describe('a column added during a run', () => {
  it('rolls back the delete of the batch in flight (TABLE_CHANGED); the rerun archives those rows with the new column, each exactly once', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const config = fx.configFor([eventsTable], { batch_size: 10, batches_in_flight: 1 });
    let batches = 0;
    const first = await archiveWith(config, fx.store, {
      onPhase: async (phase) => {
        if (phase === 'after-metadata' && ++batches === 2) await fx.db.query('ALTER TABLE events ADD COLUMN extra int DEFAULT 7');
      },
    });
    expect(first.tables[0]!.status).toBe('failed');
    expect(first.tables[0]!.error?.code).toBe('TABLE_CHANGED');
    expect(first.tables[0]!.error?.message).toContain('extra integer');
    const left = await rowIds(fx.db);
    expect(left.length).toBeGreaterThan(0);

    const second = await archiveWith(config, fx.store);
    expect(second.tables[0]!.error).toBeUndefined();
    expect(await rowIds(fx.db)).toEqual([]);
    const archive = await inspectArchive(fx.store);
    expect(archive.pendingMarkers).toEqual([]);
    const lines = new Map<string, string[]>();
    for (const o of archive.objects) o.meta.primary_keys.forEach((k, i) => lines.set(k[0]!, [...(lines.get(k[0]!) ?? []), o.lines[i]!]));
    expect(lines.size).toBe(30);
    expect([...lines.values()].every((l) => l.length === 1)).toBe(true);
    // Every row still in the table after the first run was archived with the column it had when deleted.
    for (const id of left) expect(JSON.parse(lines.get(id)![0]!)).toMatchObject({ extra: 7 });
  });
});

describe('a foreign key ON DELETE CASCADE added during a run', () => {
  it('rolls back the delete of the batch in flight (TABLE_CHANGED) with what the cascade did, and the next run refuses the table', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('CREATE TABLE refs (ref_id bigserial PRIMARY KEY, event_id bigint NOT NULL)');
    await fx.db.query('INSERT INTO refs (event_id) SELECT id FROM events');
    const config = fx.configFor([eventsTable], { batch_size: 10, batches_in_flight: 1 });
    let batches = 0;
    const first = await archiveWith(config, fx.store, {
      onPhase: async (phase) => {
        // NOT VALID: the rows of the batch already committed are gone, which validation would refuse; the action applies all the same.
        if (phase === 'after-metadata' && ++batches === 2) await fx.db.query('ALTER TABLE refs ADD CONSTRAINT refs_event FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE NOT VALID');
      },
    });
    // Found by probing: the cascade deleted every referencing row of each later batch, archived nowhere, and the run exited 0.
    expect(first.tables[0]!.status).toBe('failed');
    expect(first.tables[0]!.error?.code).toBe('TABLE_CHANGED');
    expect(first.tables[0]!.error?.message).toContain('is referenced by foreign key "refs_event" of public.refs with ON DELETE CASCADE');
    const refs = async (): Promise<number> => Number((await fx.db.query<{ n: string }>('SELECT count(*) AS n FROM refs')).rows[0]!.n);
    expect(await refs()).toBe(30);
    const left = await rowIds(fx.db);
    expect(left.length).toBeGreaterThanOrEqual(20);

    const second = await archiveWith(config, fx.store);
    expect(second.tables[0]!.error?.code).toBe('TABLE_NOT_SUPPORTED');
    expect(await rowIds(fx.db)).toEqual(left);
    expect(await refs()).toBe(30);
  });
});
