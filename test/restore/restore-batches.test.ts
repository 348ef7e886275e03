/** How restore cuts archive objects into batches: an object that fits a batch is never split. */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';

const f = useArchiveFixture();

/** A logger that keeps the "batch restored" lines. */
function batchLog(): { logger: pino.Logger; batches: Array<{ rows: number; objects: number }> } {
  const batches: Array<{ rows: number; objects: number }> = [];
  const logger = pino({ level: 'debug' }, {
    write: (line: string) => {
      const entry = JSON.parse(line) as { msg: string; rows: number; objects: number };
      if (entry.msg === 'batch restored') batches.push(entry);
    },
  });
  return { logger, batches };
}

describe('restore batches', () => {
  it('never splits an object that fits in a batch: its final part would wait for every batch in flight', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 4 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    const log = batchLog();
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'copy' }, batchSize: 6, logger: log.logger });
    expect(s.rows).toEqual({ restored: 20, inserted: 20, conflicts: 0 });
    // Objects of 4 rows in batches of up to 6 rows: one object per batch, none split over two.
    expect(log.batches.map((b) => [b.objects, b.rows])).toEqual(Array.from({ length: 5 }, () => [1, 4]));
  });
});
